"""Terminal plots (plotext through textual-plotext): Pareto front, best value or hypervolume
over time, learning curves, parameter importance.

Colours are plotext's basic names (green, red, cyan, yellow, blue, magenta, white), which map
to the 16 ANSI colours, so plots stay readable in 16 and 256-colour terminals alike. Big
studies are thinned for drawing (dominated points only; the front is always drawn whole).
"""

from __future__ import annotations

import numpy as np
from textual_plotext import PlotextPlot

from tui_hpo.data.analysis import best_history
from tui_hpo.data.frames import TrialFrame

MAX_POINTS = 4000
CURVE_COLORS = ("cyan", "orange", "magenta", "green", "blue", "red", "white")


def _thin(idx: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return idx[np.linspace(0, len(idx) - 1, limit).astype(int)]


class ParetoPlot(PlotextPlot):
    """Completed trials of a multi-objective study on two of its objectives; the front apart
    from dominated points; the selected trial marked."""

    def draw(
        self,
        frame: TrialFrame,
        front: np.ndarray,
        axes: tuple[int, int],
        selected: int | None,
    ) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        a, b = axes
        done = frame.complete_mask() & ~np.isnan(frame.values).any(axis=1)
        dominated = np.flatnonzero(done & ~front)
        on_front = np.flatnonzero(front)
        if len(dominated):
            d = _thin(dominated)
            plt.scatter(
                frame.values[d, a],
                frame.values[d, b],
                marker="dot",
                color="blue",
                label="dominated",
            )
        if len(on_front):
            order = on_front[np.argsort(frame.values[on_front, a])]
            plt.plot(
                frame.values[order, a],
                frame.values[order, b],
                marker="dot",
                color="green",
                label=f"front ({len(on_front)})",
            )
        if selected is not None and done[selected]:
            label = f"#{int(frame.number[selected])}"
            plt.scatter(
                [frame.values[selected, a]],
                [frame.values[selected, b]],
                marker="@",
                color="red",
                label=label,
            )
        name_a, name_b = frame.objective_name(a), frame.objective_name(b)
        plt.xlabel(f"{frame.directions[a][:3]} {name_a}")
        plt.ylabel(f"{frame.directions[b][:3]} {name_b}")
        plt.title(f"Pareto front: {name_a} and {name_b}")
        self.refresh()


class HistoryPlot(PlotextPlot):
    """Best value so far (one objective) or hypervolume of the front so far (several)."""

    def draw_best(self, frame: TrialFrame, selected: int | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        numbers, best = best_history(frame)
        done = frame.complete_mask() & ~np.isnan(frame.values[:, 0])
        idx = _thin(np.flatnonzero(done))
        if len(idx):
            plt.scatter(
                frame.number[idx], frame.values[idx, 0], marker="dot", color="blue", label="value"
            )
        if len(numbers):
            plt.plot(numbers, best, color="green", label="best")
        if selected is not None and done[selected]:
            plt.scatter(
                [int(frame.number[selected])], [frame.values[selected, 0]], marker="@", color="red"
            )
        plt.title(f"best {frame.objective_name(0)} over trials")
        plt.xlabel("trial")
        self.refresh()

    def draw_hypervolume(self, numbers: np.ndarray, volumes: np.ndarray) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if len(numbers):
            plt.plot(numbers, volumes, marker="dot", color="green")
        plt.title("hypervolume over trials")
        plt.xlabel("trial")
        self.refresh()


class CurvesPlot(PlotextPlot):
    """Intermediate values of the selected trial, with pinned trials overlaid."""

    def draw(self, curves: dict[int, list[tuple[int, float]]], labels: dict[int, str]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        for n, (trial_id, points) in enumerate(curves.items()):
            if not points:
                continue
            steps = [s for s, _ in points]
            values = [v for _, v in points]
            plt.plot(
                steps,
                values,
                marker="dot",
                color=CURVE_COLORS[n % len(CURVE_COLORS)],
                label=labels.get(trial_id, str(trial_id)),
            )
        plt.title("intermediate values")
        plt.xlabel("step")
        self.refresh()


class ImportancePlot(PlotextPlot):
    """Parameter importance as horizontal bars."""

    def draw(self, importances: dict[str, float], n_complete: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if importances:
            names = list(importances)[::-1]
            plt.bar(
                names,
                [importances[n] for n in names],
                orientation="horizontal",
                color="cyan",
                width=0.4,
            )
        plt.title(f"param importance (fANOVA, {n_complete} complete)")
        self.refresh()
