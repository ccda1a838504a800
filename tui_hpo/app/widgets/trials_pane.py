"""Pane 1: the trials table, with the sort and filter that choose its rows.

Sorting and filtering 100,000 trials takes a few milliseconds of numpy, done in a thread worker
that takes the frame, the filter text and the sort as arguments and posts the row order
(``ViewReady``); the table only paints it.
"""

from __future__ import annotations

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.containers import Container

from tui_hpo.app.messages import ViewReady
from tui_hpo.app.widgets.trials_table import TrialsTable, ordered
from tui_hpo.data.frames import TrialFrame

TITLE = "1 trials"


class TrialsPane(Container):
    def __init__(self, *, id: str = "trials") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = TITLE
        self.frame: TrialFrame | None = None
        self.pareto: np.ndarray | None = None
        self.filter_text = ""
        """The filter asked for; what the rows show once its ViewReady is in."""
        self._good_filter = ""
        self.hide_ended = False
        """Pruned and failed trials left out (the screen's ``H``)."""
        self._pending_jump: int | None = None

    def compose(self) -> ComposeResult:
        yield TrialsTable(id="trials-table")

    @property
    def table(self) -> TrialsTable:
        return self.query_one(TrialsTable)

    def show(self, frame: TrialFrame, pareto: np.ndarray | None) -> None:
        """A new frame: sort and filter it again, off the UI thread."""
        self.frame = frame
        self.pareto = pareto
        self.refilter()

    def refilter(self) -> None:
        if self.frame is not None:
            table = self.table
            self.compute_view(
                self.frame, self.filter_text, self.hide_ended, table.sort_key, table.descending
            )

    @work(thread=True, exclusive=True, group="view", exit_on_error=False)
    def compute_view(
        self, frame: TrialFrame, filter_text: str, hide_ended: bool, sort_key: str, descending: bool
    ) -> None:
        from tui_hpo.data import filters

        rows = np.arange(len(frame))
        error = None
        try:
            rows = filters.rows_shown(frame, filter_text, hide_ended)
        except Exception as exc:  # FilterError and anything unexpected: one line
            error = getattr(exc, "message", str(exc))
        view = ordered(frame, rows, sort_key, descending)
        self.post_message(ViewReady(frame.generation, view, filter_text, error))

    def on_view_ready(self, message: ViewReady) -> None:
        frame = self.frame
        if frame is None or message.generation != frame.generation:
            return  # a newer frame is being sorted already
        if message.error:
            self.notify(message.error, severity="error")
            # back to what the last good filter showed (or to all, if that one broke too)
            fallback = self._good_filter if self._good_filter != message.filter_text else ""
            self._good_filter = fallback
            self.set_filter(fallback)
            return
        self._good_filter = message.filter_text
        table = self.table
        front = self.pareto
        table.highlight = (lambda i: bool(front[i])) if front is not None else None
        table.show(frame, message.view)
        if self._pending_jump is not None:
            number, self._pending_jump = self._pending_jump, None
            if not table.go_to_number(number):
                self.notify(f"no trial {number}", severity="warning")
        hidden = "pruned and failed hidden" if self.hide_ended else ""
        if message.filter_text or hidden:
            self.border_title = f"{TITLE} ({len(message.view)}/{len(frame)})"
            where = f"filter: {message.filter_text}" if message.filter_text else ""
            self.border_subtitle = " · ".join(w for w in (where, hidden) if w)
        else:
            self.border_title = TITLE
            self.border_subtitle = ""

    # keys the screen passes on ---------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.refilter()

    def set_hide(self, hide_ended: bool) -> None:
        self.hide_ended = hide_ended
        self.refilter()

    def sort_next(self) -> None:
        table = self.table
        keys = [c.key for c in table.columns] or ["number"]
        i = keys.index(table.sort_key) if table.sort_key in keys else -1
        table.sort_key = keys[(i + 1) % len(keys)]
        self.refilter()

    def reverse(self) -> None:
        self.table.descending = not self.table.descending
        self.refilter()

    def jump(self, number: int) -> None:
        """Put the cursor on trial ``number``; when the filter hides it, clear the filter."""
        if self.table.go_to_number(number):
            return
        if self.filter_text:
            self._pending_jump = number  # taken once the unfiltered view arrives
            self.set_filter("")
        else:
            self.notify(f"no trial {number}", severity="warning")
