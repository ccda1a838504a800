"""SVG snapshots of the app's screens (pytest-textual-snapshot), at 80x24 and 160x48.

The storage is built fresh for every test with fixed content: studies made by plain Optuna with
``create_trial`` (fixed params, values, intermediate values and datetimes), no workers. The
screens show a few clock-dependent texts (the studies' "last activity ... ago", the study
header's "elapsed" and "trials/min", the duration of running trials); ``time.time`` is frozen
at one hour after the first trial started, so they read the same on every run. The storage
URL is relative (the test runs in its tmp folder) because the studies screen shows it.

Update after an intended change of the screens with ``pytest tests/test_app_snapshots.py
--snapshot-update`` and look at the SVGs (``snapshot_report.html`` shows any difference).
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import DataTable

from tui_hpo.app.app import TuiHpoApp
from tui_hpo.app.screens.studies import StudiesScreen
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.app.widgets.front_pane import FrontPane
from tui_hpo.app.widgets.trials_table import TrialsTable
from tui_hpo.storage.urls import parse_url

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

URL = "sqlite:///snapshots.db"
T0 = dt.datetime(2025, 1, 1, 12, 0, 0)  # naive UTC, as Optuna stores trial times
FROZEN_NOW = calendar.timegm(T0.timetuple()) + 3600.0
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}

SINGLE_STATES = [
    TrialState.COMPLETE,
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.COMPLETE,
    TrialState.FAIL,
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.COMPLETE,
    TrialState.COMPLETE,
]


def _timed(trial: optuna.trial.FrozenTrial, i: int) -> optuna.trial.FrozenTrial:
    trial.datetime_start = T0 + dt.timedelta(seconds=45 * i)
    trial.datetime_complete = T0 + dt.timedelta(seconds=45 * i + 30 + 2 * i)
    return trial


def build_storage() -> None:
    """Three studies with fixed content: one objective, two objectives, three objectives."""
    storage = optuna.storages.RDBStorage(URL)
    rng = np.random.default_rng(7)

    bowl = optuna.create_study(study_name="bowl", storage=storage)
    dists = {
        "x": FloatDistribution(-10.0, 10.0),
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "layers": IntDistribution(1, 4),
        "act": CategoricalDistribution(["relu", "tanh"]),
    }
    for i, state in enumerate(SINGLE_STATES):
        x = round(float(rng.uniform(-10, 10)), 3)
        lr = float(10 ** round(float(rng.uniform(-5, -1)), 3))
        layers = int(rng.integers(1, 5))
        act = ["relu", "tanh"][i % 2]
        final = round((x - 2) ** 2 + 0.1 * (np.log10(lr) + 3) ** 2 + layers, 4)
        steps = 10 if state != TrialState.PRUNED else 4
        curve = {s: round(final + 5.0 * (1 / (s + 1) - 0.1), 4) for s in range(steps)}
        bowl.add_trial(
            _timed(
                create_trial(
                    state=state,
                    params={"x": x, "lr": lr, "layers": layers, "act": act},
                    distributions=dists,
                    value=final if state == TrialState.COMPLETE else None,
                    intermediate_values=curve,
                ),
                i,
            )
        )

    front = optuna.create_study(
        study_name="front", storage=storage, directions=["minimize", "minimize"]
    )
    for i in range(12):
        x0 = round(i / 11, 3)
        x1 = round(float(rng.uniform(0, 0.6)) if i % 3 else 0.0, 3)
        g = 1 + 9 * x1
        f2 = round(g * (1 - np.sqrt(x0 / g)), 4)
        front.add_trial(
            _timed(
                create_trial(
                    params={"x0": x0, "x1": x1},
                    distributions={"x0": FloatDistribution(0, 1), "x1": FloatDistribution(0, 1)},
                    values=[x0, f2],
                ),
                i,
            )
        )

    sphere = optuna.create_study(study_name="sphere", storage=storage, directions=["minimize"] * 3)
    for i in range(6):
        a, b = (i % 3) * np.pi / 6, (i // 3) * np.pi / 4
        sphere.add_trial(
            _timed(
                create_trial(
                    params={"a": round(a, 4)},
                    distributions={"a": FloatDistribution(0, 2)},
                    values=[
                        round(np.cos(a) * np.cos(b), 4),
                        round(np.cos(a) * np.sin(b), 4),
                        round(float(np.sin(a)), 4),
                    ],
                ),
                i,
            )
        )
    storage.engine.dispose()


@pytest.fixture
def snapshot_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    build_storage()
    # The clock the app reads for ages and elapsed times (see the module docstring).
    monkeypatch.setattr(time, "time", lambda: FROZEN_NOW)
    return URL


async def _until(pilot: Pilot[Any], cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if cond():
                return
        except NoMatches:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture
def studies_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the studies screen's refreshes (StudiesLoaded handled)."""
    calls: list[int] = []
    original = StudiesScreen.on_studies_loaded

    def counted(self: StudiesScreen, message: Any) -> None:
        original(self, message)
        calls.append(len(calls))

    monkeypatch.setattr(StudiesScreen, "on_studies_loaded", counted)
    return calls


def studies_loaded(loads: list[int]) -> Callable[[Pilot[Any]], Any]:
    """Wait for the three studies, listed twice: the DataTable measures cells when idle, so
    right after the first load its header line can still have the header-wide column widths
    while the rows have the fitted ones (until the next poll repaints it)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app

        def fitted() -> bool:
            if not isinstance(app.screen, StudiesScreen) or len(loads) < 2:
                return False
            table = app.screen.query_one(DataTable)
            if table.row_count != 3:
                return False
            return all(
                column.content_width >= max(len(str(cell)) for cell in table.get_column(key))
                for key, column in table.columns.items()
            )

        await _until(pilot, fitted, "the three studies, listed twice, columns fitted")

    return run_before


def study_loaded(name: str, n_trials: int, curves: bool) -> Callable[[Pilot[Any]], Any]:
    """Wait until the study view shows every trial and what follows the selection (detail,
    curves when the trial reported any, hypervolume) has arrived from its thread workers."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app

        def settled() -> bool:
            screen = app.screen
            if not (isinstance(screen, StudyScreen) and screen.study == name):
                return False
            snap = screen.snapshot
            if snap is None or len(screen.query_one(TrialsTable).view) != n_trials:
                return False
            if screen._settle is not None:  # the selection's detail and plot marker pending
                return False
            if "trial 0" not in str(screen.query_one("#detail-text").render()):
                return False
            front_shown = screen.query_one("#front").display
            if front_shown and len(snap.directions) > 1:  # hypervolume: a thread worker
                if screen.query_one(FrontPane).hv_generation != snap.frame.generation:
                    return False
            if curves and screen.query_one("#detail").display:  # they come after the detail
                return "#0" in str(screen.query_one("#curves").render())
            return True

        await _until(pilot, settled, f"the study view of {name}, settled")

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_studies_screen(
    snap_compare: Any, snapshot_storage: str, studies_loads: list[int], size: str
) -> None:
    app = TuiHpoApp(parse_url(snapshot_storage))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=studies_loaded(studies_loads))


@pytest.mark.parametrize("size", SIZES)
def test_single_objective_study(snap_compare: Any, snapshot_storage: str, size: str) -> None:
    app = TuiHpoApp(parse_url(snapshot_storage), "bowl")
    run_before = study_loaded("bowl", len(SINGLE_STATES), curves=True)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_multi_objective_study(
    snap_compare: Any, snapshot_storage: str, studies_loads: list[int], size: str
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await studies_loaded(studies_loads)(pilot)
        await pilot.press("down")  # the studies screen, Enter on the second study
        await pilot.press("enter")
        await study_loaded("front", 12, curves=False)(pilot)

    app = TuiHpoApp(parse_url(snapshot_storage))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
