"""SVG snapshots of the compare screen (``space`` on studies, then ``v``) at 80x24 and 160x48:
three studies' counts per state and their best-so-far curves in one plot, with a legend.

Same conventions as ``test_snapshots.py``: a fresh storage in the test's tmp folder, studies
made by plain Optuna with ``create_trial`` (fixed params, values and datetimes), no workers.
The compare screen shows no clock-dependent text. Update with ``pytest
tests/app/test_compare_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from textual.pilot import Pilot
from textual.widgets import DataTable, LoadingIndicator

from tests.app.test_snapshots import SIZES, T0, URL, _until
from tui_hpo.app.app import TuiHpoApp
from tui_hpo.app.screens.compare import CompareScreen
from tui_hpo.app.screens.studies import StudiesScreen
from tui_hpo.storage.urls import parse_url

pytestmark = pytest.mark.e2e

STUDIES = ("tpe", "random", "warm")


def build_storage() -> None:
    """Three searches of one loss: ``tpe`` converges, ``random`` wanders, ``warm`` starts
    lower and is still going (a trial running, one waiting, one failed)."""
    storage = optuna.storages.RDBStorage(URL)
    rng = np.random.default_rng(11)
    dists = {"x": FloatDistribution(-5.0, 5.0)}
    plans: dict[str, list[tuple[TrialState, float | None]]] = {"tpe": [], "random": [], "warm": []}
    for i in range(40):
        state = TrialState.PRUNED if i % 7 == 3 else TrialState.COMPLETE
        plans["tpe"].append((state, round(2 + 18 * 0.88**i * float(rng.uniform(0.5, 1.5)), 4)))
    for _ in range(40):
        plans["random"].append((TrialState.COMPLETE, round(2 + float(rng.uniform(0, 20)), 4)))
    for i in range(22):
        state = TrialState.FAIL if i == 5 else TrialState.COMPLETE
        plans["warm"].append((state, round(4 + 8 * 0.9**i * float(rng.uniform(0.3, 1)), 4)))
    plans["warm"] += [(TrialState.RUNNING, None), (TrialState.WAITING, None)]
    for name in STUDIES:
        study = optuna.create_study(study_name=name, storage=storage)
        for i, (state, value) in enumerate(plans[name]):
            finished = state.is_finished()
            trial = create_trial(
                state=state,
                params={"x": round(float(np.sqrt(value - 2)), 4)} if value is not None else {},
                distributions=dists if value is not None else {},
                value=value if state == TrialState.COMPLETE else None,
            )
            trial.datetime_start = (
                T0 + dt.timedelta(seconds=40 * i) if state != TrialState.WAITING else None
            )
            trial.datetime_complete = T0 + dt.timedelta(seconds=40 * i + 30) if finished else None
            study.add_trial(trial)
    storage.engine.dispose()


@pytest.fixture
def compare_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    build_storage()
    return URL


async def _compare_all(pilot: Pilot[Any]) -> None:
    """Mark the three studies from the studies screen, then ``v``; wait for the read."""
    app = pilot.app

    def listed() -> bool:
        screen = app.screen
        return isinstance(screen, StudiesScreen) and len(screen.rows) == len(STUDIES)

    await _until(pilot, listed, "the three studies")
    table = app.screen.query_one("#studies", DataTable)
    for name in STUDIES:
        table.move_cursor(row=table.get_row_index(name))
        await pilot.pause()
        await pilot.press("space")
    await pilot.press("v")

    def loaded() -> bool:
        """Read, drawn, the loading indicator gone and the table's columns fitted to their
        cells (the DataTable measures them when idle, after the rows are in)."""
        screen = app.screen
        if not isinstance(screen, CompareScreen) or len(screen.frames) != len(STUDIES):
            return False
        if screen.query(LoadingIndicator):
            return False
        table = screen.query_one("#compare-counts", DataTable)
        return table.row_count == len(STUDIES) and all(
            column.content_width >= max(len(str(cell)) for cell in table.get_column(key))
            for key, column in table.columns.items()
        )

    await _until(pilot, loaded, "the compare screen, loaded and drawn")
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES)
def test_compare_screen(snap_compare: Any, compare_storage: str, size: str) -> None:
    app = TuiHpoApp(parse_url(compare_storage))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_compare_all)
