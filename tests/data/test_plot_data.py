"""``data.plot_data``: what each plot draws, on frames built in memory (no storage, no screen),
checked against brute force; and that at 100,000 trials every figure stays bounded by the
plot's size (how long it takes is ``benchmarks/plot_figures.py``'s job)."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tui_hpo.data import plot_data
from tui_hpo.data.filters import rows_shown
from tui_hpo.data.frames import STATE_CODE, Categorical, ParamColumn, TrialFrame
from tui_hpo.data.plot_data import Choice

COMPLETE, PRUNED, FAIL, RUNNING = (STATE_CODE[s] for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))


def make_frame(n: int, seed: int = 0, direction: str = "minimize") -> TrialFrame:
    """``n`` trials on 6 workers (3 hosts), 10 minutes each one after another per worker;
    a tenth pruned, a twentieth failed, the last 6 running."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 5, n)
    lr = 10 ** rng.uniform(-5, -1, n)
    layers = rng.integers(1, 7, n).astype(np.float64)
    act = rng.integers(0, 3, n).astype(np.float64)
    value = (x - 1) ** 2 + 0.3 * layers + act
    state = np.full(n, COMPLETE, dtype=np.int8)
    state[::10] = PRUNED
    state[5::20] = FAIL
    state[-6:] = RUNNING
    value[state != COMPLETE] = np.nan
    worker = np.arange(n) % 6
    start = 1_000_000.0 + (np.arange(n) // 6) * 600.0
    complete = start + 590.0
    complete[state == RUNNING] = np.nan
    return TrialFrame(
        study_id=1,
        directions=(direction,),
        trial_id=np.arange(n, dtype=np.int64) + 1,
        number=np.arange(n, dtype=np.int64),
        state=state,
        values=value.reshape(-1, 1),
        start=start,
        complete=complete,
        params={
            "x": ParamColumn("x", FloatDistribution(-5, 5), x),
            "lr": ParamColumn("lr", FloatDistribution(1e-5, 1e-1, log=True), lr),
            "layers": ParamColumn("layers", IntDistribution(1, 6), layers),
            "act": ParamColumn("act", CategoricalDistribution(["relu", "tanh", "gelu"]), act),
        },
        host=Categorical((worker // 2).astype(np.int32), ("box-a", "box-b", "box-c")),
        gpu=Categorical((worker % 2).astype(np.int32), ("0", "1")),
        sampler=Categorical(np.full(n, -1, dtype=np.int32), ()),
        worker=Categorical(worker.astype(np.int32), tuple(str(w + 1) for w in range(6))),
    )


def points(figure: plot_data.Figure) -> int:
    return sum(int(np.isfinite(s.y).sum()) for s in figure.series)


def test_slice_draws_every_finished_trial_and_the_best_on_top() -> None:
    frame = make_frame(200)
    rows = np.arange(len(frame))
    figure = plot_data.slice_figure(frame, rows, Choice("slice", x=3))  # x: sorted names
    assert figure.xlabel == "x"
    done = (frame.state == COMPLETE).sum()
    assert figure.details["points"] == done == points(figure)
    best = figure.series[-1]
    want = np.sort(frame.values[frame.state == COMPLETE, 0])[: plot_data.BEST]
    assert np.allclose(np.sort(best.y), want)


def test_parallel_axes_scale_to_0_1_and_colour_by_fifth() -> None:
    frame = make_frame(300)
    figure = plot_data.parallel_figure(frame, np.arange(300), Choice("parallel"))
    assert figure.details["axes"] == ["act", "layers", "lr", "x", "value"]
    ys = np.concatenate([s.y.reshape(-1) for s in figure.series])
    assert np.nanmin(ys) == 0.0 and np.nanmax(ys) == 1.0
    assert figure.series[-1].colour == "green+"  # the best, drawn last
    best_values = figure.series[-1].y[:, -1]  # the objective axis
    others = np.concatenate([s.y[:, -1] for s in figure.series[:-1]])
    assert best_values.max() <= others.min()  # minimize: the best lines end lowest


def test_contour_bins_hold_the_best_value_of_their_trials() -> None:
    frame = make_frame(500)
    rows = np.arange(500)
    figure = plot_data.contour_figure(frame, rows, Choice("contour", x=0, y=1), 30, 10)
    assert (figure.xlabel, figure.ylabel) == ("act", "layers")  # (y skips x's name)
    assert figure.details["grid"] == (3, 6)  # a bin per choice and per int
    done = frame.state == COMPLETE
    best = {}
    for a, lay, v in zip(
        frame.params["act"].values[done],
        frame.params["layers"].values[done],
        frame.values[done, 0],
        strict=True,
    ):
        best[(a, lay)] = min(v, best.get((a, lay), np.inf))
    assert figure.details["cells"] == len(best)
    green = next(s for s in figure.series if s.colour == "green")
    cells = {(round(float(a)), round(float(lay))) for a, lay in zip(green.x, green.y, strict=True)}
    ranked = sorted(best, key=best.__getitem__)
    assert ranked[0] in cells  # the best bin is drawn green
    assert ranked[-1] not in cells


def test_edf_is_the_share_at_or_below() -> None:
    frame = make_frame(1000)
    figure = plot_data.edf_figure(frame, np.arange(1000), Choice("edf"), points=50)
    (s,) = figure.series
    values = frame.values[frame.state == COMPLETE, 0]
    assert np.all(np.diff(s.y) > 0) and s.y[-1] == 1.0
    for x, y in zip(s.x, s.y, strict=True):
        assert (values <= x).mean() >= y - 1e-12


def test_rank_colours_the_best_fifth_green() -> None:
    frame = make_frame(500)
    figure = plot_data.rank_figure(frame, np.arange(500), Choice("rank", x=3, y=2))
    green = next(s for s in figure.series if s.colour == "green")
    done = frame.state == COMPLETE
    cut = np.quantile(frame.values[done, 0], 0.2)
    x = frame.params["x"].values
    chosen = np.isin(np.round(x, 9), np.round(green.x, 9)) & done
    assert (frame.values[chosen, 0] <= cut + 1e-9).all()


def test_curves_choose_the_best_and_dim_the_pruned() -> None:
    frame = make_frame(400)
    rows = np.arange(400)
    chosen = plot_data.curve_trials(frame, rows, Choice("curves"))
    assert len(chosen) <= plot_data.CURVES
    curves = {int(frame.trial_id[r]): [(s, float(r + s)) for s in range(5)] for r in chosen}
    figure = plot_data.curves_figure(frame, rows, Choice("curves"), curves)
    by_colour = {s.colour: s for s in figure.series}
    assert by_colour["green"].y.shape[0] == plot_data.BEST
    pruned = int((frame.state[chosen] == PRUNED).sum())
    assert pruned > 0 and by_colour["gray"].y.shape[0] == pruned
    hidden = rows_shown(frame, "", hide_ended=True)
    again = plot_data.curves_figure(frame, hidden, Choice("curves"), curves)
    assert "gray" not in {s.colour for s in again.series}


def test_timeline_lines_per_worker_and_idle_time() -> None:
    frame = make_frame(60)
    figure = plot_data.timeline_figure(frame, np.arange(60), now=1_000_000.0 + 6000, cols=50)
    assert figure.details["workers"] == [
        "box-a w1 gpu0",
        "box-a w2 gpu1",
        "box-b w3 gpu0",
        "box-b w4 gpu1",
        "box-c w5 gpu0",
        "box-c w6 gpu1",
    ]
    assert float(figure.details["idle"]) < 0.1  # back to back, 10 s apart
    colours = {s.colour for s in figure.series}
    assert {"green", "orange", "red", "cyan"} <= colours
    # worker 1 gone for the second half: its line is idle there
    frame2 = make_frame(60)
    keep = ~((frame2.worker.codes == 0) & (frame2.number >= 30))
    rows = np.flatnonzero(keep)
    idle = plot_data.timeline_figure(frame2, rows, now=1_000_000.0 + 6000, cols=50)
    assert float(idle.details["idle"]) > float(figure.details["idle"]) + 0.05


def test_hide_and_filter_choose_the_rows() -> None:
    frame = make_frame(100)
    hidden = rows_shown(frame, "", hide_ended=True)
    assert not np.isin(frame.state[hidden], [PRUNED, FAIL]).any()
    assert len(hidden) == int(np.isin(frame.state, [COMPLETE, RUNNING]).sum())
    both = rows_shown(frame, "x > 0", hide_ended=True)
    assert set(both) == {r for r in hidden if frame.params["x"].values[r] > 0}


def test_pick_params_cycles_and_never_repeats() -> None:
    frame = make_frame(10)
    seen = {plot_data.pick_params(frame, Choice(x=i, y=j)) for i in range(4) for j in range(1, 4)}
    assert len(seen) == 12 and all(x != y for x, y in seen)


def test_no_trials_is_a_line_not_a_failure() -> None:
    frame = make_frame(10)
    for kind in plot_data.KINDS:
        figure = plot_data.figure(frame, np.arange(0), Choice(kind), (80, 20), 0.0, {})
        assert figure.empty, kind


@pytest.mark.parametrize("size", [(78, 16), (158, 40)])
def test_a_hundred_thousand_trials_stay_bounded_by_the_plot(size: tuple[int, int]) -> None:
    frame = make_frame(100_000)
    rows = np.arange(len(frame))
    cells = size[0] * size[1]
    for kind in plot_data.KINDS:
        choice = Choice(kind, x=3, y=2)
        curves = None
        if kind == "curves":
            chosen = plot_data.curve_trials(frame, rows, choice)
            curves = {int(frame.trial_id[r]): [(s, 1.0) for s in range(20)] for r in chosen}
        figure = plot_data.figure(frame, rows, choice, size, 2_000_000.0, curves)
        assert not figure.empty, kind
        assert points(figure) <= max(2 * plot_data.POINTS, 4 * cells), (kind, points(figure))


def test_a_cpu_worker_is_named_without_a_gpu() -> None:
    """A worker on the CPU records GPU "none": its line says host and worker only."""
    from dataclasses import replace

    frame = make_frame(12)
    cpu = replace(frame, gpu=Categorical(np.zeros(12, dtype=np.int32), ("none",)))
    figure = plot_data.timeline_figure(cpu, np.arange(12), now=1_000_000.0 + 3000)
    assert figure.details["workers"][:2] == ["box-a w1", "box-a w2"]
