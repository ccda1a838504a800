"""Pane 4: parameter importance (Optuna's default evaluator), recomputed as trials complete.

fANOVA takes seconds of CPU on a big study, so it runs in a thread worker, only while the pane
shows, and again only when COMPLETE trials have grown by a tenth (or five).
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Container

from tui_hpo.app.messages import ImportanceLoaded
from tui_hpo.app.widgets.plots import ImportancePlot
from tui_hpo.data.frames import TrialFrame


class ImportancePane(Container):
    def __init__(self, *, id: str = "importance") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "4 importance"
        self._computed_at = -1
        """COMPLETE trials when it was last computed."""

    def compose(self) -> ComposeResult:
        yield ImportancePlot(id="importance-plot")

    def update(self, frame: TrialFrame) -> None:
        if not self.display:
            return
        n = int(frame.complete_mask().sum())
        last = self._computed_at
        if last < 0 or n >= max(2, int(last * 1.1), last + 5):
            self._computed_at = n
            self.compute_importance(frame)

    @work(thread=True, exclusive=True, group="importance", exit_on_error=False)
    def compute_importance(self, frame: TrialFrame) -> None:
        from tui_hpo.data import importance

        n = int(frame.complete_mask().sum())
        self.post_message(ImportanceLoaded(importance.importances(frame), n))

    def on_importance_loaded(self, message: ImportanceLoaded) -> None:
        self.query_one(ImportancePlot).draw(message.importances, message.n_complete)
