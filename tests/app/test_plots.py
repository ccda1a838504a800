"""The plots pane (7, ``v``) and the hide-pruned-and-failed key (``H``), driven with the
keyboard on a study of fixed trials: four workers on two hosts, float, log, int and
categorical params, complete, pruned and failed trials with learning curves, and an idle
stretch on one worker. What is asserted is what the pane draws (its figure) and what the
table shows; SVG snapshots of each plot at 80x24 and 160x48 show how it looks.

Update the snapshots with ``pytest tests/app/test_plots.py --snapshot-update`` and look at
the SVGs.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from textual.pilot import Pilot

from tests.app.pilot import SMALL, WIDE, NotingApp, open_study, prompt, run, text, until
from tests.app.pilot import shown_states as table_states
from tests.app.test_snapshots import SIZES
from tui_hpo.app.app import TuiHpoApp
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.app.widgets.plots_pane import PlotsPane
from tui_hpo.data import plot_data
from tui_hpo.storage.urls import parse_url

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

URL = "sqlite:///plots.db"
STUDY = "runs"
N = 40
T0 = dt.datetime(2025, 1, 1, 12, 0, 0)
FROZEN_NOW = calendar.timegm(T0.timetuple()) + 3 * 3600.0
DISTS = {
    "x": FloatDistribution(-5.0, 5.0),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "layers": IntDistribution(1, 6),
    "act": CategoricalDistribution(["relu", "tanh", "gelu"]),
}


def state_of(i: int) -> TrialState:
    if i % 7 == 6:
        return TrialState.FAIL
    if i % 5 == 4:
        return TrialState.PRUNED
    return TrialState.COMPLETE


PRUNED = sum(state_of(i) == TrialState.PRUNED for i in range(N))
FAILED = sum(state_of(i) == TrialState.FAIL for i in range(N))
COMPLETE = N - PRUNED - FAILED


def build(url: str) -> None:
    """Trial i runs on worker i % 4 (two per host, one GPU each), one after another on each
    worker, 5 to 9 minutes long; worker 4 sits idle for an hour after its third trial."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=STUDY, storage=storage)
    clock = [T0] * 4
    for i in range(N):
        w = i % 4
        x = -5.0 + (i * 37 % 100) / 10.0
        lr = 10 ** (-5 + (i * 13 % 40) / 10.0)
        layers = 1 + i % 6
        act = ("relu", "tanh", "gelu")[i % 3]
        value = (x - 1.0) ** 2 + 0.3 * layers + (0.5 if act == "tanh" else 0.0)
        state = state_of(i)
        steps = 3 if state == TrialState.PRUNED else 8
        curve = {s: value + 4.0 / (s + 1) for s in range(steps)}
        if w == 3 and i == 11:
            clock[w] += dt.timedelta(hours=1)
        start = clock[w]
        end = start + dt.timedelta(minutes=5 + i % 5)
        clock[w] = end + dt.timedelta(seconds=20)
        trial = create_trial(
            state=state,
            params={"x": x, "lr": lr, "layers": layers, "act": act},
            distributions=DISTS,
            value=value if state == TrialState.COMPLETE else None,
            intermediate_values=curve if state != TrialState.FAIL else {},
            user_attrs={
                "tui_hpo.host": f"gpu-box-{w // 2}",
                "tui_hpo.worker": w + 1,
                "tui_hpo.gpu": str(w % 2),
            },
        )
        trial.datetime_start = start
        trial.datetime_complete = end
        study.add_trial(trial)
    storage.engine.dispose()


@pytest.fixture
def plots_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "0")
    build(URL)
    monkeypatch.setattr(time, "time", lambda: FROZEN_NOW)
    return URL


def pane(app: TuiHpoApp) -> PlotsPane:
    return app.screen.query_one(PlotsPane)


def drawn(app: TuiHpoApp, kind: str) -> plot_data.Figure | None:
    """The pane's figure once it is the one for ``kind`` (and drawn), else None."""
    screen = app.screen
    if not isinstance(screen, StudyScreen) or screen.active != "plots":
        return None
    plots = pane(app)
    figure = plots.figure
    if plots.choice.kind != kind or figure is None or plots._stale:
        return None
    return figure if figure.title.startswith(plot_data.TITLES[kind]) else None


async def wait_plot(pilot: Pilot[Any], kind: str) -> plot_data.Figure:
    app = pilot.app
    await until(pilot, lambda: drawn(app, kind) is not None, f"the {kind} plot")
    figure = drawn(app, kind)
    assert figure is not None
    return figure


def test_every_plot_from_the_keyboard(plots_storage: str) -> None:
    async def scenario() -> None:
        app = NotingApp(plots_storage, STUDY)
        async with app.run_test(size=SMALL) as pilot:
            await open_study(pilot, app, STUDY, N)
            await pilot.press("v")  # the first v shows the pane, on the slice
            figure = await wait_plot(pilot, "slice")
            assert not figure.empty
            assert figure.details["points"] == COMPLETE  # every finished trial, no more
            assert figure.xlabel == "act" and figure.xticks is not None  # categorical ticks
            assert list(figure.xticks[1]) == ["relu", "tanh", "gelu"]
            seen = {"slice": figure}
            for kind in plot_data.KINDS[1:]:
                await pilot.press("v")
                seen[kind] = await wait_plot(pilot, kind)
                assert not seen[kind].empty, (kind, seen[kind].empty)
            assert seen["parallel"].details["axes"] == ["act", "layers", "lr", "x", "value"]
            assert seen["edf"].series[0].y[-1] == 1.0
            curves = seen["curves"].details
            assert curves["lines"] == COMPLETE + PRUNED and curves["pruned"] == PRUNED
            timeline = seen["timeline"]
            assert timeline.details["workers"] == [
                "gpu-box-0 w1 gpu0",
                "gpu-box-0 w2 gpu1",
                "gpu-box-1 w3 gpu0",
                "gpu-box-1 w4 gpu1",
            ]
            assert 0.05 < float(timeline.details["idle"]) < 0.5  # worker 4's idle hour shows
            await pilot.press("v")  # round again
            await wait_plot(pilot, "slice")
            await pilot.press("V")
            await wait_plot(pilot, "timeline")

    run(scenario())


def test_the_keys_choose_params_and_the_filter_applies(plots_storage: str) -> None:
    async def scenario() -> None:
        app = NotingApp(plots_storage, STUDY)
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, STUDY, N)
            await pilot.press("v")
            assert (await wait_plot(pilot, "slice")).xlabel == "act"
            await pilot.press("o")
            await until(pilot, lambda: (drawn(app, "slice") or _none).xlabel == "layers", "x")
            await pilot.press("v", "v")  # contour: x and y
            contour = await wait_plot(pilot, "contour")
            assert (contour.xlabel, contour.ylabel) == ("layers", "act")
            assert contour.yticks is not None  # a row per choice
            await pilot.press("y")
            await until(pilot, lambda: (drawn(app, "contour") or _none).ylabel == "lr", "y")
            assert (drawn(app, "contour") or _none).ylog  # lr is a log distribution
            await pilot.press("V", "V")
            await wait_plot(pilot, "slice")
            await prompt(pilot, "slash", "x > 0")
            want = sum(
                1
                for i in range(N)
                if state_of(i) == TrialState.COMPLETE and -5.0 + (i * 37 % 100) / 10.0 > 0
            )
            await until(
                pilot,
                lambda: (drawn(app, "slice") or _none).details.get("points") == want,
                "the filtered slice",
            )
            assert "filter: x > 0" in str(pane(app).border_subtitle)

    run(scenario())


def test_hiding_pruned_and_failed_keeps_the_counts(plots_storage: str) -> None:
    async def scenario() -> None:
        app = NotingApp(plots_storage, STUDY)
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, STUDY, N)
            await pilot.press("H")
            await until(pilot, lambda: set(table_states(app)) == {"COMPLETE"}, "hidden rows")
            assert len(table_states(app)) == COMPLETE
            counts = text(app.screen.query_one("#counts"))
            assert f"pruned {PRUNED}" in counts and f"fail {FAILED}" in counts  # counts keep them
            assert app.noted("pruned and failed trials hidden")
            for _ in plot_data.KINDS[: plot_data.KINDS.index("curves") + 1]:
                await pilot.press("v")
            curves = await wait_plot(pilot, "curves")
            await until(
                pilot,
                lambda: (drawn(app, "curves") or _none).details.get("pruned") == 0,
                "no pruned curve",
            )
            assert curves is not None
            assert "pruned and failed hidden" in str(pane(app).border_subtitle)
            await pilot.press("H")
            await until(pilot, lambda: len(table_states(app)) == N, "every row again")
            await until(
                pilot,
                lambda: (drawn(app, "curves") or _none).details.get("pruned") == PRUNED,
                "the pruned curves again",
            )

    run(scenario())


_none = plot_data.Figure("", details={})
"""What ``drawn`` stands for while the wanted figure is not in yet, so a lambda can read it."""


@pytest.mark.parametrize("kind", plot_data.KINDS)
@pytest.mark.parametrize("size", SIZES)
def test_plot_snapshots(snap_compare: Any, plots_storage: str, size: str, kind: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await until(
            pilot,
            lambda: isinstance(app.screen, StudyScreen) and app.screen.snapshot is not None,
            "the study",
        )
        for _ in range(plot_data.KINDS.index(kind) + 1):
            await pilot.press("v")
        await wait_plot(pilot, kind)
        await pilot.pause(0.2)

    app = TuiHpoApp(parse_url(plots_storage), STUDY)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
