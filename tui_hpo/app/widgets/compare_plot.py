"""The compare screen's plot: several studies' best-so-far curves on one set of axes.

A study's curve is its first objective's best value over its COMPLETE trials, in its own
direction (``analysis.best_history``), drawn against trial number; the legend names the studies
and each keeps the colour its row has in the compare screen's table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from textual_plotext import PlotextPlot

from tui_hpo.data.analysis import best_history
from tui_hpo.data.frames import TrialFrame

COLORS = (
    ("cyan", "cyan"),
    ("orange", "yellow"),
    ("magenta", "magenta"),
    ("green", "green"),
    ("blue", "blue"),
    ("red", "red"),
    ("white", "bright_white"),
)
"""(plotext's name, Rich's name) of the same ANSI colour, one pair per study compared: plotext
calls ANSI 3 ``orange`` and has no ``yellow``, so one name for both would not match."""

LEGEND_ROOM = 0.12
"""Room above the highest curve per line of legend, as a share of the values' span: plotext
draws the legend over the plot's top left corner, where best-so-far curves start."""


def curve_color(i: int) -> str:
    """The plotext colour of the ``i``-th study compared."""
    return COLORS[i % len(COLORS)][0]


def row_color(i: int) -> str:
    """The Rich colour of the ``i``-th study compared: its curve's colour, for the table."""
    return COLORS[i % len(COLORS)][1]


class BestCurvesPlot(PlotextPlot):
    """Best value so far of each study (first objective) against trial number."""

    def draw(self, frames: Sequence[tuple[str, TrialFrame]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        empty = []
        lows: list[float] = []
        highs: list[float] = []
        for i, (name, frame) in enumerate(frames):
            numbers, best = best_history(frame)
            finite = best[np.isfinite(best)]
            if not len(finite):
                empty.append(name)
                continue
            lows.append(float(finite.min()))
            highs.append(float(finite.max()))
            arrow = "↑" if frame.directions[0] == "maximize" else "↓"
            plt.plot(
                numbers.tolist(),
                best.tolist(),
                marker="braille",
                color=curve_color(i),
                label=f"{name} {arrow}",
            )
        if highs:
            low, high = min(lows), max(highs)
            span = (high - low) or abs(high) or 1.0
            plt.ylim(low - 0.05 * span, high + LEGEND_ROOM * (len(highs) + 1) * span)
        title = "best value so far (first objective)"
        if empty:
            title += f"; no complete trial yet: {', '.join(empty)}"
        plt.title(title)
        plt.xlabel("trial")
        self.refresh()
