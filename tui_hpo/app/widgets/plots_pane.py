"""Pane 7: the plots (slice, parallel coordinates, contour, EDF, rank, many learning curves,
the per-worker timeline), one at a time, chosen and steered from the keyboard.

The trials table's filter and the hide-pruned-and-failed key apply here too
(``filters.rows_shown``). A thread worker takes the frame, the filter, the choice and the
plot's size as arguments, reads the learning curves when the curves plot needs them, computes
the figure (``data.plot_data``: bounded by the plot's size, not the study's) and posts it; the
handler only hands it to plotext. A hidden pane computes nothing: it catches up when shown.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult, RenderResult
from textual.containers import Container
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui_hpo.app.messages import FigureReady
from tui_hpo.data import plot_data
from tui_hpo.data.frames import TrialFrame
from tui_hpo.data.plot_data import Choice, Figure
from tui_hpo.data.session import Session
from tui_hpo.errors import one_line

TITLE = "7 plots"


def paint(plt: Any, figure: Figure) -> None:
    """Hand ``figure`` to plotext (``plt``: textual-plotext's, or the plotext module itself, as
    ``benchmarks/plot_figures.py`` uses it)."""
    plt.clear_data()
    plt.clear_figure()
    for s in figure.series:
        if not s.x.size:
            continue  # plotext fails on an empty series beside a log axis
        if s.kind == "points":
            plt.scatter(s.x.tolist(), s.y.tolist(), marker="dot", color=s.colour, label=s.label)
        elif s.kind == "cells":
            plt.scatter(
                s.x.tolist(), s.y.tolist(), marker=plot_data.CELL, color=s.colour, label=s.label
            )
        else:
            label = s.label
            for x, y in zip(s.x, s.y, strict=True):
                ok = ~np.isnan(y)
                if ok.any():
                    plt.plot(x[ok].tolist(), y[ok].tolist(), color=s.colour, label=label)
                    label = None
    if figure.xticks is not None:
        plt.xticks(list(figure.xticks[0]), list(figure.xticks[1]))
    if figure.yticks is not None:
        plt.yticks(list(figure.yticks[0]), list(figure.yticks[1]))
    if figure.ylim is not None:
        plt.ylim(*figure.ylim)
    # plotext takes the log of the axis' span: one value (or none) has no span to take
    if figure.xlog and _spans(figure, "x"):
        plt.xscale("log")
    if figure.ylog and _spans(figure, "y"):
        plt.yscale("log")
    plt.title(figure.title)
    plt.xlabel(figure.xlabel)
    plt.ylabel(figure.ylabel)


def _spans(figure: Figure, axis: str) -> bool:
    """Whether the figure's values on ``axis`` are positive and not all one value."""
    found = [getattr(s, axis).reshape(-1) for s in figure.series if s.x.size]
    if not found:
        return False
    values = np.concatenate(found)
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool((values > 0).all()) and float(values.min()) < values.max()


class FigurePlot(PlotextPlot):
    """Draws a ``plot_data.Figure``."""

    def draw(self, figure: Figure) -> None:
        paint(self.plt, figure)
        self.refresh()

    def render(self) -> RenderResult:
        """plotext's own build, or one line where plotext fails on a figure it can't lay out
        (a paint that raises would take the whole app down)."""
        try:
            return super().render()
        except Exception as exc:  # plotext's layout arithmetic on odd data
            return Text(f"this plot could not be drawn here: {one_line(exc, limit=120)}")


class PlotsPane(Container):
    def __init__(self, *, id: str = "plots") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = TITLE
        self.frame: TrialFrame | None = None
        self.session: Session | None = None
        self.filter_text = ""
        self.hide_ended = False
        self.choice = Choice()
        self.figure: Figure | None = None
        """The figure on show (for tests and the subtitle)."""
        self._stale = True

    def compose(self) -> ComposeResult:
        yield Static("", id="plot-empty")
        yield FigurePlot(id="figure")

    def on_mount(self) -> None:
        self.query_one("#plot-empty").display = False

    # what the screen hands down ------------------------------------------------------------

    def show(self, frame: TrialFrame, session: Session) -> None:
        self.frame, self.session = frame, session
        self.redraw()

    def set_view(self, filter_text: str, hide_ended: bool) -> None:
        self.filter_text, self.hide_ended = filter_text, hide_ended
        self.redraw()

    def step_kind(self, step: int) -> None:
        kinds = plot_data.KINDS
        at = kinds.index(self.choice.kind)
        self.choice = replace(self.choice, kind=kinds[(at + step) % len(kinds)])
        self.redraw()

    def step_param(self, axis: str) -> None:
        if axis == "x":
            self.choice = replace(self.choice, x=self.choice.x + 1)
        else:
            self.choice = replace(self.choice, y=self.choice.y + 1)
        self.redraw()

    def step_objective(self) -> None:
        n = self.frame.n_objectives if self.frame is not None else 1
        self.choice = replace(self.choice, objective=(self.choice.objective + 1) % max(n, 1))
        self.redraw()

    def redraw(self) -> None:
        """Compute the figure again, unless the pane is hidden (then when it is shown)."""
        self._stale = True
        if self.frame is None or self.session is None or not self.display:
            return
        plot = self.query_one(FigurePlot)
        size = (max(plot.size.width, 40), max(plot.size.height, 12))
        study_id = self.frame.study_id
        self._stale = False
        self.compute(
            self.session, study_id, self.frame, self.filter_text, self.hide_ended, self.choice, size
        )

    def shown(self) -> None:
        """The screen made the pane visible: catch up on what changed meanwhile."""
        if self._stale:
            self.redraw()

    def on_resize(self) -> None:
        if self.display:
            self.redraw()

    @work(thread=True, exclusive=True, group="plot", exit_on_error=False)
    def compute(
        self,
        session: Session,
        study_id: int,
        frame: TrialFrame,
        filter_text: str,
        hide_ended: bool,
        choice: Choice,
        size: tuple[int, int],
    ) -> None:
        from tui_hpo.data.filters import rows_shown

        try:
            rows = rows_shown(frame, filter_text, hide_ended)
            curves = None
            if choice.kind == "curves":
                wanted = plot_data.curve_trials(frame, rows, choice)
                curves = session.curves(study_id, frame.trial_id[wanted].tolist())
            figure = plot_data.figure(frame, rows, choice, size, time.time(), curves)
        except Exception as exc:  # a filter mistake or a storage error: one line
            error = getattr(exc, "message", None) or one_line(exc, limit=200)
            self.post_message(FigureReady(frame.generation, choice, None, error))
            return
        self.post_message(FigureReady(frame.generation, choice, figure))

    def on_figure_ready(self, message: FigureReady) -> None:
        if message.choice != self.choice:
            return  # the keys asked for another one since
        empty = self.query_one("#plot-empty", Static)
        plot = self.query_one(FigurePlot)
        figure = message.figure
        self.figure = figure
        self.border_title = self._title()
        if figure is None or figure.empty:
            empty.update(message.error or (figure.empty if figure else ""))
            empty.display, plot.display = True, False
            self.border_subtitle = ""
            return
        empty.display, plot.display = False, True
        plot.draw(figure)
        hidden = " · pruned and failed hidden" if self.hide_ended else ""
        where = f" · filter: {self.filter_text}" if self.filter_text.strip() else ""
        self.border_subtitle = f"{figure.note}{where}{hidden}"

    def _title(self) -> str:
        """Every plot's name with the one on show reversed where the width has room; else the
        one on show and its place among them."""
        kinds = plot_data.KINDS
        if self.size.width >= 110:
            names = " ".join(
                f"[reverse]{plot_data.TITLES[k]}[/]"
                if k == self.choice.kind
                else plot_data.TITLES[k]
                for k in kinds
            )
            return f"{TITLE}: {names} · v next"
        at = kinds.index(self.choice.kind) + 1
        return f"{TITLE}: {plot_data.TITLES[self.choice.kind]} ({at}/{len(kinds)}) · v next"
