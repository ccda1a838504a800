"""Pane 2: the Pareto front on two objectives and the hypervolume so far (several objectives),
or the best value so far (one).

Plots are drawn on the UI thread from the frame in hand, at most every ``PLOT_EVERY_S`` while
trials stream in; the hypervolume history, which costs more, is computed by a thread worker
that takes the frame and posts the curve.
"""

from __future__ import annotations

import time

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.containers import Container

from tui_hpo.app.messages import HypervolumeLoaded
from tui_hpo.app.widgets.plots import HistoryPlot, ParetoPlot
from tui_hpo.data.frames import TrialFrame
from tui_hpo.data.session import StudySnapshot

PLOT_EVERY_S = 2.0


class FrontPane(Container):
    def __init__(self, *, id: str = "front") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "2 pareto/best"
        self.axes = (0, 1)
        self.hv_generation = -1
        self._hv: tuple[np.ndarray, np.ndarray] | None = None
        self._plotted_at = 0.0

    def compose(self) -> ComposeResult:
        yield ParetoPlot(id="pareto")
        yield HistoryPlot(id="history")

    def paint(self, snap: StudySnapshot, selected: int | None, *, force: bool = False) -> None:
        """Redraw when shown; while trials stream in, at most every PLOT_EVERY_S (plotting
        thousands of points takes the UI thread tens of ms)."""
        if not self.display:
            return
        now = time.monotonic()
        if not force and now - self._plotted_at < PLOT_EVERY_S:
            return
        self._plotted_at = now
        frame = snap.frame
        history = self.query_one(HistoryPlot)
        pareto = self.query_one(ParetoPlot)
        pareto.display = frame.n_objectives > 1
        if frame.n_objectives == 1:
            history.draw_best(frame, selected)
            return
        k = frame.n_objectives
        self.axes = (self.axes[0] % k, self.axes[1] % k)
        pareto.draw(frame, snap.pareto, self.axes, selected)
        if self._hv is not None and self.hv_generation == frame.generation:
            history.draw_hypervolume(*self._hv)
        else:
            self.compute_hypervolume(frame)

    @work(thread=True, exclusive=True, group="hypervolume", exit_on_error=False)
    def compute_hypervolume(self, frame: TrialFrame) -> None:
        from tui_hpo.data.analysis import hypervolume_history

        numbers, volumes = hypervolume_history(frame)
        self.post_message(HypervolumeLoaded(frame.generation, numbers, volumes))

    def on_hypervolume_loaded(self, message: HypervolumeLoaded) -> None:
        self.hv_generation = message.generation
        self._hv = (message.numbers, message.volumes)
        self.query_one(HistoryPlot).draw_hypervolume(message.numbers, message.volumes)

    def next_axes(self, n_objectives: int) -> None:
        """The next pair of objectives to plot (three or more objectives)."""
        pairs = [(a, b) for a in range(n_objectives) for b in range(a + 1, n_objectives)]
        self.axes = (
            pairs[(pairs.index(self.axes) + 1) % len(pairs)] if self.axes in pairs else pairs[0]
        )

    def front_neighbour(self, snap: StudySnapshot, selected: int | None, step: int) -> int | None:
        """The number of the trial ``step`` places along the front (sorted on the first plotted
        objective) from the selected one; None when there is no front."""
        if snap.pareto is None or not snap.pareto.any():
            return None
        frame = snap.frame
        front = np.flatnonzero(snap.pareto)
        front = front[np.argsort(frame.values[front, self.axes[0]])]
        where = np.flatnonzero(front == selected)
        pos = (int(where[0]) + step) % len(front) if len(where) else 0
        return int(frame.number[front[pos]])
