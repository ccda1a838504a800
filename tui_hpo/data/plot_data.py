"""What each plot of the plots pane draws, computed from the columnar frame with numpy.

The plots are optuna-dashboard's (slice, parallel coordinates, contour, EDF, rank, many
learning curves) plus a per-worker timeline, for studies of any size: a terminal shows at most
a few thousand cells, so every figure here is bounded by the plot's size, not by the number of
trials. Scatters keep an even sample (the best trials always in it), the contour and the
timeline are binned to the plot's own cells, the EDF is read at fixed quantiles. At 100,000
trials each figure takes a few milliseconds (``benchmarks/plot_figures.py``).

A figure is plain data (``Figure``: series of points, lines or cells, with ticks and labels);
``app/widgets/plots_pane.py`` hands it to plotext. Nothing here imports textual or plotext, so
it is computed in a thread worker and tested without a screen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tui_hpo.data.frames import STATE_CODE, ParamColumn, TrialFrame

KINDS = ("slice", "parallel", "contour", "edf", "rank", "curves", "timeline")
"""The plots, in the order ``v`` goes through them."""

TITLES = {
    "slice": "slice",
    "parallel": "parallel coordinates",
    "contour": "contour",
    "edf": "EDF",
    "rank": "rank",
    "curves": "learning curves",
    "timeline": "timeline",
}

POINTS = 2000
"""Most points a scatter draws: more than a terminal plot of 160x48 has cells for."""
LINES = 80
"""Most trials the parallel coordinates draw (the best among them): plotext draws a line's
segments one by one in Python, about 0.1 ms each, so this bounds the plot's time."""
CURVES = 60
"""Most trials the learning-curves plot draws (the best among them): each is a path of its
own for plotext, the costly part of that plot."""
BEST = 10
"""How many of the best trials are drawn on top, in their own colour."""

BANDS = ("green", "cyan", "blue", "orange", "red")
"""Colours from the best fifth of the values to the worst (16-colour terminals show them)."""
STATE_COLOURS = {"COMPLETE": "green", "PRUNED": "orange", "FAIL": "red", "RUNNING": "cyan"}
CELL = "█"


@dataclass(frozen=True)
class Series:
    """One colour of one figure. ``x``/``y``: 1-D for points and cells; for lines 2-D, one
    row per line (NaN ends a line early)."""

    x: np.ndarray
    y: np.ndarray
    kind: Literal["points", "lines", "cells"]
    colour: str
    label: str | None = None


@dataclass(frozen=True)
class Figure:
    title: str
    xlabel: str = ""
    ylabel: str = ""
    series: tuple[Series, ...] = ()
    xticks: tuple[Sequence[float], Sequence[str]] | None = None
    yticks: tuple[Sequence[float], Sequence[str]] | None = None
    xlog: bool = False
    ylog: bool = False
    ylim: tuple[float, float] | None = None
    note: str = ""
    """What the figure left out or how it was read (``2,000 of 100,000 trials``)."""
    empty: str = ""
    """Set when there is nothing to draw: the line to show instead."""
    details: dict[str, object] = field(default_factory=dict)
    """Facts for tests and the pane's subtitle (bins, counts)."""


@dataclass(frozen=True)
class Choice:
    """What the keys chose: the plot, its params (x, y) and its objective."""

    kind: str = "slice"
    x: int = 0
    y: int = 1
    objective: int = 0


# helpers ------------------------------------------------------------------------------------


def even_sample(rows: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``rows``, evenly spread and in order (the same every redraw, so a
    plot doesn't flicker between polls)."""
    if len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).astype(np.int64)]


def done_rows(frame: TrialFrame, rows: np.ndarray, k: int) -> np.ndarray:
    """The rows among ``rows`` of COMPLETE trials with a finite objective ``k``."""
    rows = np.asarray(rows, dtype=np.int64)
    if frame.n_objectives == 0 or k >= frame.n_objectives:
        return rows[:0]
    values = frame.values[rows, k]
    keep = (frame.state[rows] == STATE_CODE["COMPLETE"]) & np.isfinite(values)
    return rows[keep]


def loss(frame: TrialFrame, rows: np.ndarray, k: int) -> np.ndarray:
    """Objective ``k`` signed so that smaller is better."""
    sign = -1.0 if frame.directions[k] == "maximize" else 1.0
    return sign * frame.values[rows, k]


def best_rows(frame: TrialFrame, rows: np.ndarray, k: int, n: int = BEST) -> np.ndarray:
    """The ``n`` best of ``rows`` (done rows), best first."""
    if len(rows) <= n:
        return rows[np.argsort(loss(frame, rows, k), kind="stable")]
    part = np.argpartition(loss(frame, rows, k), n)[:n]
    chosen = rows[part]
    return chosen[np.argsort(loss(frame, chosen, k), kind="stable")]


def sample_with_best(frame: TrialFrame, rows: np.ndarray, k: int, limit: int) -> np.ndarray:
    """An even sample of ``rows`` that always holds the best ones."""
    if len(rows) <= limit:
        return rows
    best = best_rows(frame, rows, k)
    return np.union1d(even_sample(rows, limit - len(best)), best)


def bands(frame: TrialFrame, rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's fifth of the values (0: the best fifth), by rank: ties share a band."""
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(np.argsort(loss(frame, rows, k), kind="stable"), kind="stable")
    return np.minimum(order * len(BANDS) // max(len(rows), 1), len(BANDS) - 1)


def axis_of(param: ParamColumn, rows: np.ndarray) -> tuple[np.ndarray, dict[str, object]]:
    """A param's values for an axis: numbers as they are (a log axis for a log distribution),
    a categorical one as the index of its choice, with the choices as ticks."""
    values = param.values[rows]
    dist = param.distribution
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return values, {"ticks": (list(range(len(choices))), [str(c)[:12] for c in choices])}
    log = bool(getattr(dist, "log", False))
    if type(dist).__name__ == "IntDistribution" and not log and getattr(dist, "step", 1) == 1:
        return values, {"log": False, "ints": (int(dist.low), int(dist.high))}
    return values, {"log": log}


def spread(
    values: np.ndarray, axis: dict[str, object], numbers: np.ndarray
) -> tuple[np.ndarray, tuple[Sequence[float], Sequence[str]] | None]:
    """A scatter's axis for a param of few values (categorical, or int with a step of 1):
    each point moved by up to 0.3 either way, by its trial number (the same each redraw), so
    trials on the same value show as a cloud instead of one dot; and ticks at the values."""
    ticks = axis.get("ticks")
    span = axis.get("ints")
    if ticks is None and span is None:
        return values, None
    if ticks is None:
        low, high = span  # type: ignore[misc]
        shown = range(low, high + 1, max(1, (high - low + 1) // 8))
        ticks = (list(shown), [str(v) for v in shown])
        if high - low > 40:
            return values, None
    offset = ((numbers.astype(np.float64) * 0.6180339887) % 1.0 - 0.5) * 0.6
    return values + offset, ticks  # type: ignore[return-value]


def params_of(frame: TrialFrame) -> list[str]:
    return sorted(frame.params)


def pick_params(frame: TrialFrame, choice: Choice) -> tuple[str | None, str | None]:
    """The x and y params the keys chose (cycling through the study's params)."""
    names = params_of(frame)
    if not names:
        return None, None
    x = names[choice.x % len(names)]
    others = [name for name in names if name != x]
    if not others:
        return x, None
    return x, others[(choice.y - 1) % len(others)]


def _shown(n: int, of: int) -> str:
    return f"{n:,} of {of:,} trials" if n < of else f"{of:,} trials"


# the figures --------------------------------------------------------------------------------


def slice_figure(frame: TrialFrame, rows: np.ndarray, choice: Choice) -> Figure:
    """One param against the objective, a point per trial; the best ones on top."""
    k = choice.objective
    name, _ = pick_params(frame, choice)
    done = done_rows(frame, rows, k)
    title = f"slice · {name} → {frame.objective_name(k)}"
    if name is None or not len(done):
        return Figure(title, empty=_nothing(name))
    done = done[~np.isnan(frame.params[name].values[done])]
    if not len(done):
        return Figure(title, empty=f"no finished trial has {name}")
    shown = sample_with_best(frame, done, k, POINTS)
    best = best_rows(frame, done, k)
    rest = np.setdiff1d(shown, best)
    x, axis = axis_of(frame.params[name], rest)
    bx, _ = axis_of(frame.params[name], best)
    x, xticks = spread(x, axis, frame.number[rest])
    bx, _ = spread(bx, axis, frame.number[best])
    series = [
        Series(x, frame.values[rest, k], "points", "blue", "trials"),
        Series(bx, frame.values[best, k], "points", "green", f"best {len(best)}"),
    ]
    return Figure(
        title,
        xlabel=name,
        ylabel=frame.objective_name(k),
        series=tuple(series),
        xticks=xticks,
        xlog=bool(axis.get("log")),
        note=_shown(len(shown), len(done)),
        details={"points": len(shown)},
    )


def parallel_figure(
    frame: TrialFrame, rows: np.ndarray, choice: Choice, width: int = 160
) -> Figure:
    """Every param and the objective as vertical axes scaled to 0-1, a line per trial coloured
    by its fifth of the values, the best ones drawn last, on top. As many axes as the width
    has room for (about 12 columns each)."""
    k = choice.objective
    done = done_rows(frame, rows, k)
    names = params_of(frame)[: max(1, width // 12 - 1)]
    title = f"parallel coordinates · {frame.objective_name(k)}"
    if not names or not len(done):
        return Figure(title, empty=_nothing(names[0] if names else None))
    shown = sample_with_best(frame, done, k, LINES)
    columns = []
    for name in names:
        column = frame.params[name]
        values = column.values[shown].astype(np.float64)
        if getattr(column.distribution, "log", False):
            values = np.log10(np.where(values > 0, values, np.nan))
        columns.append(values)
    columns.append(frame.values[shown, k].astype(np.float64))
    matrix = np.column_stack(columns)
    low, high = np.nanmin(matrix, axis=0), np.nanmax(matrix, axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (matrix - low) / span
    band = bands(frame, shown, k)
    best = np.isin(shown, best_rows(frame, done, k))
    xs = np.arange(len(columns), dtype=np.float64)
    series = []
    for b in reversed(range(len(BANDS))):  # the worst first, so the best end up on top
        pick = (band == b) & ~best
        if pick.any():
            lines = scaled[pick]
            series.append(Series(np.broadcast_to(xs, lines.shape), lines, "lines", BANDS[b], None))
    if best.any():
        lines = scaled[best]
        label = f"best {best.sum()}"
        series.append(Series(np.broadcast_to(xs, lines.shape), lines, "lines", "green+", label))
    labels = [n[:10] for n in names] + [frame.objective_name(k)[:10]]
    return Figure(
        title,
        series=tuple(series),
        xticks=(list(xs), labels),
        yticks=([0.0, 1.0], ["min", "max"]),
        note=_shown(len(shown), len(done)) + " · colour: fifth of the values, green best",
        details={"axes": labels, "lines": len(shown)},
    )


def contour_figure(
    frame: TrialFrame, rows: np.ndarray, choice: Choice, cols: int = 60, lines: int = 20
) -> Figure:
    """Two params binned; each bin coloured by the best value among its trials (its fifth of
    the bins' values), empty where no trial fell. A continuous param gets a bin per column
    (or line) of the plot; a categorical one, or an int one of few values, a bin per value,
    and its bin is drawn as wide as its share of the axis, so a 3 x 6 grid fills the plot as
    a heat map instead of 18 dots."""
    k = choice.objective
    px, py = pick_params(frame, choice)
    title = f"contour · {px} × {py} → best {frame.objective_name(k)}"
    done = done_rows(frame, rows, k)
    if px is None or py is None:
        return Figure(title, empty="the contour needs two params: this study has fewer")
    x, ax = axis_of(frame.params[px], done)
    y, ay = axis_of(frame.params[py], done)
    ok = ~np.isnan(x) & ~np.isnan(y)
    done, x, y = done[ok], x[ok], y[ok]
    if not len(done):
        return Figure(title, empty=f"no finished trial has both {px} and {py}")
    bx = _Bins.of(x, ax, cols)
    by = _Bins.of(y, ay, lines)
    nx, ny = bx.count, by.count
    value = loss(frame, done, k)
    best = np.full(nx * ny, np.inf)
    np.minimum.at(best, by.at * nx + bx.at, value)
    filled = np.flatnonzero(np.isfinite(best))
    order = np.argsort(np.argsort(best[filled], kind="stable"), kind="stable")
    band = np.full(nx * ny, -1, dtype=np.int64)
    band[filled] = np.minimum(order * len(BANDS) // max(len(filled), 1), len(BANDS) - 1)
    # each character cell of the plot takes the band of the bin it lies in
    drawn = band.reshape(ny, nx)[by.char_bin[:, None], bx.char_bin[None, :]]
    series = []
    for b in reversed(range(len(BANDS))):
        at = np.argwhere(drawn == b)
        if len(at):
            label = "best fifth" if b == 0 else ("worst fifth" if b == len(BANDS) - 1 else None)
            series.append(
                Series(bx.char_pos[at[:, 1]], by.char_pos[at[:, 0]], "cells", BANDS[b], label)
            )
    return Figure(
        title,
        xlabel=px,
        ylabel=py,
        series=tuple(series),
        xticks=bx.ticks,
        yticks=by.ticks,
        xlog=bx.log,
        ylog=by.log,
        note=f"{len(done):,} trials in {len(filled)} of {nx * ny} bins",
        details={"cells": len(filled), "grid": (nx, ny)},
    )


@dataclass(frozen=True)
class _Bins:
    """One axis of the contour: each value's bin, and for each of the plot's ``n`` character
    positions along the axis its place (in the data's units) and its bin."""

    at: np.ndarray
    count: int
    char_pos: np.ndarray
    char_bin: np.ndarray
    ticks: tuple[Sequence[float], Sequence[str]] | None = None
    log: bool = False

    @classmethod
    def of(cls, values: np.ndarray, axis: dict[str, object], n: int) -> _Bins:
        ticks = axis.get("ticks")
        span = axis.get("ints")
        if ticks is not None or (span is not None and span[1] - span[0] < n):  # type: ignore[index]
            if ticks is not None:
                low, count = 0, len(ticks[0])  # type: ignore[index]
            else:
                low, high = span  # type: ignore[misc]
                count = high - low + 1
                shown = range(low, high + 1, max(1, count // 8))
                ticks = (list(shown), [str(v) for v in shown])
            # twice the plot's characters: the plot is a little narrower than ``n`` (its
            # ticks), and a bin drawn at every second character would show gaps
            edges = np.linspace(low - 0.5, low + count - 0.5, 2 * n + 1)
            pos = (edges[:-1] + edges[1:]) / 2
            at = np.clip(np.rint(values).astype(np.int64) - low, 0, count - 1)
            char_bin = np.clip(np.rint(pos).astype(np.int64) - low, 0, count - 1)
            return cls(at, count, pos, char_bin, ticks)  # type: ignore[arg-type]
        log = bool(axis.get("log")) and bool((values > 0).all())
        scale = np.log10(values) if log else values
        low_f, high_f = float(scale.min()), float(scale.max())
        if high_f <= low_f:
            high_f = low_f + 1.0
        edges = np.linspace(low_f, high_f, n + 1)
        at = np.clip(np.searchsorted(edges, scale, side="right") - 1, 0, n - 1)
        centres = (edges[:-1] + edges[1:]) / 2
        pos = 10.0**centres if log else centres
        return cls(at, n, pos, np.arange(n), None, log)


def edf_figure(frame: TrialFrame, rows: np.ndarray, choice: Choice, points: int = 400) -> Figure:
    """The share of trials whose objective is at most x, read at ``points`` quantiles."""
    k = choice.objective
    done = done_rows(frame, rows, k)
    title = f"EDF · {frame.objective_name(k)}"
    if not len(done):
        return Figure(title, empty=_nothing(""))
    values = np.sort(frame.values[done, k])
    n = len(values)
    at = np.unique(np.linspace(0, n - 1, min(points, n)).astype(np.int64))
    x = values[at]
    y = (at + 1) / n
    return Figure(
        title,
        xlabel=frame.objective_name(k),
        ylabel="share of trials ≤ x",
        series=(Series(x, y, "lines", "cyan", None),),
        note=f"{n:,} finished trials",
        details={"points": len(at)},
    )


def rank_figure(frame: TrialFrame, rows: np.ndarray, choice: Choice) -> Figure:
    """Two params, a point per trial coloured by its rank's fifth (green: the best fifth), as
    optuna-dashboard's rank plot: where the good trials sit, whatever the values' scale."""
    k = choice.objective
    px, py = pick_params(frame, choice)
    title = f"rank · {px} × {py or 'trial'} by {frame.objective_name(k)}"
    done = done_rows(frame, rows, k)
    if px is None or not len(done):
        return Figure(title, empty=_nothing(px))
    x, ax = axis_of(frame.params[px], done)
    if py is None:
        y, ay = frame.number[done].astype(np.float64), {}
    else:
        y, ay = axis_of(frame.params[py], done)
    ok = ~np.isnan(x) & ~np.isnan(y)
    done = done[ok]
    if not len(done):
        return Figure(title, empty=f"no finished trial has {px} and {py}")
    band = bands(frame, done, k)
    keep = even_sample(np.arange(len(done)), POINTS)
    keep = np.union1d(keep, np.flatnonzero(band == 0)[:BEST])
    numbers = frame.number[done][keep]
    xs, xticks = spread(x[ok][keep], ax, numbers)
    ys, yticks = spread(y[ok][keep], ay, numbers)
    series = []
    for b in reversed(range(len(BANDS))):
        pick = band[keep] == b
        if pick.any():
            label = "best fifth" if b == 0 else ("worst fifth" if b == len(BANDS) - 1 else None)
            series.append(Series(xs[pick], ys[pick], "points", BANDS[b], label))
    return Figure(
        title,
        xlabel=px,
        ylabel=py or "trial number",
        series=tuple(series),
        xticks=xticks,
        yticks=yticks,
        xlog=bool(ax.get("log")),
        ylog=bool(ay.get("log")),
        note=_shown(len(keep), len(done)),
        details={"points": len(keep)},
    )


def curve_trials(frame: TrialFrame, rows: np.ndarray, choice: Choice) -> np.ndarray:
    """The rows whose learning curves the curves plot reads (at most ``CURVES``): the best
    finished ones, then an even sample of the finished and pruned ones."""
    k = choice.objective
    done = done_rows(frame, rows, k)
    pruned = rows[frame.state[rows] == STATE_CODE["PRUNED"]]
    best = best_rows(frame, done, k) if len(done) else done
    rest = even_sample(np.union1d(done, pruned), CURVES - len(best))
    return np.union1d(rest, best)


def curves_figure(
    frame: TrialFrame,
    rows: np.ndarray,
    choice: Choice,
    curves: dict[int, list[tuple[int, float]]],
) -> Figure:
    """The intermediate values of many trials at once (``curve_trials``): pruned ones dimmed,
    finished ones in cyan, the best ones on top in green."""
    k = choice.objective
    title = "learning curves (intermediate values)"
    # the rows whose curves were read (``curve_trials``, by the caller before its read)
    chosen = rows[np.isin(frame.trial_id[rows], np.fromiter(curves, dtype=np.int64))]
    done = done_rows(frame, rows, k)
    best = set(frame.trial_id[best_rows(frame, done, k)].tolist()) if len(done) else set()
    groups: dict[str, list[list[tuple[int, float]]]] = {"gray": [], "cyan": [], "green": []}
    for row in chosen.tolist():
        points = curves.get(int(frame.trial_id[row])) or []
        if not points:
            continue
        if int(frame.trial_id[row]) in best:
            groups["green"].append(points)
        elif frame.state[row] == STATE_CODE["PRUNED"]:
            groups["gray"].append(points)
        else:
            groups["cyan"].append(points)
    labels = {"gray": "pruned", "cyan": "finished", "green": f"best {len(best)}"}
    series = []
    for colour, found in groups.items():
        if not found:
            continue
        width = max(len(p) for p in found)
        x = np.full((len(found), width), np.nan)
        y = np.full((len(found), width), np.nan)
        for i, points in enumerate(found):
            x[i, : len(points)] = [s for s, _ in points]
            y[i, : len(points)] = [v for _, v in points]
        series.append(Series(x, y, "lines", colour, labels[colour]))
    drawn = sum(len(g) for g in groups.values())
    if not drawn:
        return Figure(title, empty="no trial reported intermediate values (trial.report)")
    return Figure(
        title,
        xlabel="step",
        ylabel=frame.objective_name(k),
        series=tuple(series),
        note=f"{drawn} trials' curves (the best {len(best)}, a sample of the rest)",
        details={"lines": drawn, "pruned": len(groups["gray"])},
    )


def timeline_figure(
    frame: TrialFrame, rows: np.ndarray, now: float, cols: int = 60, lines: int = 20
) -> Figure:
    """Trials as bars along time, one line per worker (host, worker number and GPU): each
    cell is the state that held that worker for most of that stretch of time, or empty where
    it was idle for most of it. Idle GPUs, stragglers, and the time pruning saved show."""
    title = "timeline · one line per worker, coloured by state"
    rows = np.asarray(rows, dtype=np.int64)
    started = rows[~np.isnan(frame.start[rows])]
    if not len(started):
        return Figure(title, empty="no trial has started yet")
    start = frame.start[started]
    end = np.where(np.isnan(frame.complete[started]), now, frame.complete[started])
    end = np.maximum(end, start)
    labels, line = _worker_lines(frame, started)
    if len(labels) > lines:  # the busiest workers: the rest would not fit
        busy = np.bincount(line, weights=end - start, minlength=len(labels))
        keep = np.sort(np.argsort(-busy, kind="stable")[:lines])
        remap = np.full(len(labels), -1)
        remap[keep] = np.arange(len(keep))
        line = remap[line]
        ok = line >= 0
        started, start, end, line = started[ok], start[ok], end[ok], line[ok]
        labels = labels[keep]
    t0, t1 = float(start.min()), float(end.max())
    width = max((t1 - t0) / cols, 1e-9)
    first = np.minimum(((start - t0) / width).astype(np.int64), cols - 1)
    last = np.minimum(((end - t0) / width).astype(np.int64), cols - 1)
    spans = last - first + 1
    trial = np.repeat(np.arange(len(started)), spans)
    offset = np.arange(len(trial)) - np.repeat(np.cumsum(spans) - spans, spans)
    cell = first[trial] + offset
    lo = t0 + cell * width
    overlap = np.minimum(end[trial], lo + width) - np.maximum(start[trial], lo)
    states = frame.state[started][trial]
    n_states = len(STATE_CODE)
    flat = (line[trial] * cols + cell) * n_states + states
    size = len(labels) * cols * n_states
    time = np.bincount(flat, weights=np.maximum(overlap, 0), minlength=size)
    time = time.reshape(len(labels), cols, n_states)
    busiest = time.argmax(axis=2)
    busy = time.sum(axis=2) >= 0.5 * width
    divisor, unit = _unit(t1 - t0)
    centres = (np.arange(cols) + 0.5) * width / divisor
    series = []
    for name, colour in STATE_COLOURS.items():
        at = np.argwhere(busy & (busiest == STATE_CODE[name]))
        if len(at):
            y = at[:, 0].astype(np.float64)
            series.append(Series(centres[at[:, 1]], y, "cells", colour, name.lower()))
    idle = 1.0 - float(busy.mean()) if busy.size else 0.0
    return Figure(
        title,
        xlabel=f"{unit} since the first trial started",
        series=tuple(series),
        yticks=(list(range(len(labels))), [str(label)[:18] for label in labels]),
        # a band above the top line for the legend, which would hide its bars otherwise
        ylim=(-0.5, len(labels) - 0.5 + max(1.0, 0.3 * len(labels))),
        note=f"{len(labels)} workers · {idle:.0%} of worker time idle",
        details={"workers": [str(label) for label in labels], "idle": idle, "span": t1 - t0},
    )


def _worker_lines(frame: TrialFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The workers' labels (``host w3 gpu1``: worker 3 on GPU 1) and each row's line among
    them. The codes are combined into one key first, so only the
    few distinct workers get a label made in Python, not each of 100,000 trials."""
    columns = [frame.host, frame.worker, frame.gpu]
    codes = []
    for column in columns:
        if column is None:
            codes.append(np.full(len(rows), -1, dtype=np.int64))
        else:
            codes.append(np.asarray(column.codes, dtype=np.int64)[rows])
    key = np.zeros(len(rows), dtype=np.int64)
    for c in codes:
        key = key * (int(c.max(initial=-1)) + 2) + (c + 1)
    unique, first, line = np.unique(key, return_index=True, return_inverse=True)
    labels: list[str] = []
    for at in first.tolist():
        host, worker, gpu = (
            column[int(rows[at])] if column is not None else "" for column in columns
        )
        words = [host or "?"]
        if worker:
            words.append(f"w{worker}")
        if gpu and gpu != "none":  # a worker on the CPU records GPU "none"
            words.append(f"gpu{gpu}")
        labels.append(" ".join(words))
    del unique
    order = sorted(range(len(labels)), key=lambda i: _natural(labels[i]))
    place = np.empty(len(labels), dtype=np.int64)
    place[order] = np.arange(len(labels))
    return np.array([labels[i] for i in order], dtype=object), place[line.reshape(-1)]


def _natural(text: str) -> list[object]:
    """``w2`` before ``w10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _nothing(param: str | None) -> str:
    if param is None:
        return "this study's trials have no params yet"
    return "no finished trial to plot yet (the filter, or hiding pruned and failed, may hide them)"


def figure(
    frame: TrialFrame,
    rows: np.ndarray,
    choice: Choice,
    size: tuple[int, int],
    now: float,
    curves: dict[int, list[tuple[int, float]]] | None = None,
) -> Figure:
    """The figure the keys chose, for a plot of ``size`` (columns, lines) of the terminal."""
    cols, lines = max(size[0] - 14, 10), max(size[1] - 6, 4)
    kind = choice.kind
    if kind == "slice":
        return slice_figure(frame, rows, choice)
    if kind == "parallel":
        return parallel_figure(frame, rows, choice, size[0])
    if kind == "contour":
        return contour_figure(frame, rows, choice, cols, lines)
    if kind == "edf":
        return edf_figure(frame, rows, choice, points=max(cols * 2, 50))
    if kind == "rank":
        return rank_figure(frame, rows, choice)
    if kind == "curves":
        return curves_figure(frame, rows, choice, curves or {})
    if kind == "timeline":
        return timeline_figure(frame, rows, now, cols, lines)
    raise ValueError(f"no plot {kind!r}")
