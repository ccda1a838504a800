"""A search whose every trial fails stops by itself (``--max-consecutive-failures``): the
launch and its workers leave, and the launch says why in one line, naming the last fail
reason. Real launches and workers on SQLite."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import load_trials

pytestmark = pytest.mark.e2e

BROKEN = """\
def objective(trial):
    trial.suggest_float("x", 0, 1)
    raise ValueError("the data folder is missing")
"""

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def broken(workdir: Path) -> str:
    (workdir / "broken.py").write_text(BROKEN)
    return f"{workdir / 'broken.py'}:objective"


def _states(url: str, study: str) -> list[str]:
    return [t.state.name for t in load_trials(url, study)]


def test_a_launch_with_no_budget_stops_after_n_failures(
    cli: Cli, sqlite_url: str, broken: str, workdir: Path
) -> None:
    done = cli(
        "launch",
        broken,
        "--study",
        "b",
        "--storage",
        sqlite_url,
        "--workers",
        "2",
        "--max-consecutive-failures",
        "5",
        "--heartbeat-interval",
        "1",
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if "failed trials in a row" in x]
    assert len(lines) == 1, done.stderr
    assert "stopped after 5 failed trials in a row" in lines[0]
    assert "ValueError: the data folder is missing" in lines[0]
    states = _states(sqlite_url, "b")
    assert states and set(states) == {"FAIL"}  # nothing left RUNNING
    assert 5 <= len(states) <= 7  # the other worker may have ended one more meanwhile
    workers = json.loads(cli("workers", "b", "--all", "--json", "--storage", sqlite_url).stdout)
    assert {w["state"] for w in workers["workers"]} == {"exited"}


def test_zero_turns_the_rule_off(cli: Cli, sqlite_url: str, broken: str) -> None:
    done = cli(
        "launch",
        broken,
        "--study",
        "b",
        "--storage",
        sqlite_url,
        "--n-trials",
        "12",
        "--max-consecutive-failures",
        "0",
        timeout=120,
    )
    assert done.returncode == 1  # every trial failed: still not a success
    assert "failed trials in a row" not in done.stderr
    assert _states(sqlite_url, "b") == ["FAIL"] * 12


def test_a_worker_started_by_hand_stops_too(
    cli: Cli, sqlite_url: str, broken: str, workdir: Path
) -> None:
    assert cli("create", broken, "--study", "b", "--storage", sqlite_url).returncode == 0
    done = cli(
        "worker",
        broken,
        "--study",
        "b",
        "--storage",
        sqlite_url,
        "--max-consecutive-failures",
        "3",
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "stopped after 3 failed trials in a row" in done.stderr
    assert "ValueError: the data folder is missing" in done.stderr
    assert _states(sqlite_url, "b") == ["FAIL"] * 3


def test_a_new_launch_on_a_failed_study_starts_afresh(
    cli: Cli, sqlite_url: str, broken: str, workdir: Path
) -> None:
    """The earlier run's failures don't count against the next one."""
    cli(
        "launch",
        broken,
        "--study",
        "b",
        "--storage",
        sqlite_url,
        "--max-consecutive-failures",
        "3",
        timeout=120,
    )
    (workdir / "fixed.py").write_text(
        "def objective(trial):\n    return trial.suggest_float('x', 0, 1)\n"
    )
    done = cli(
        "launch",
        f"{workdir / 'fixed.py'}:objective",
        "--study",
        "b",
        "--storage",
        sqlite_url,
        "--n-trials",
        "4",
        "--max-consecutive-failures",
        "3",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _states(sqlite_url, "b")[-4:] == ["COMPLETE"] * 4


def test_the_limit_travels_with_the_scale_recipe(sqlite_url: str) -> None:
    """What `launch` records for `scale`: the limit travels with the recipe."""
    from tui_hpo.runtime.spawn import WorkerRecipe
    from tui_hpo.storage.engines import Heartbeat

    recipe = WorkerRecipe(
        objective="o:f",
        study="s",
        storage_url=sqlite_url,
        gpus=[],
        workers_per_gpu=None,
        heartbeat=Heartbeat(),
        log_dir=Path("/tmp"),
        max_consecutive_failures=4,
    )
    back = WorkerRecipe.from_json(recipe.to_json(), "s", sqlite_url)
    assert back.max_consecutive_failures == 4
    assert "--max-consecutive-failures" in back.worker_config(Path("/tmp/x.log")).worker_args()
