"""Objectives by name (``--metric-names``, or ``objective.metric_names``): Optuna's own
``study.set_metric_names``, shown by ``status`` and its JSON; bad names are one line and
leave the storage as it was."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import optuna
import pytest

pytestmark = pytest.mark.e2e

Cli = Callable[..., subprocess.CompletedProcess[str]]
NO_GPU = {"TUI_HPO_GPU_COUNT": "0"}


def _status(cli: Cli, url: str, study: str) -> dict[str, object]:
    done = cli("status", "--study", study, "--json", "--storage", url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["studies"][0]


def test_launch_names_the_objectives(cli: Cli, sqlite_url: str) -> None:
    done = cli(
        "launch",
        "objectives.synthetic:zdt1",
        "--study",
        "z",
        "--storage",
        sqlite_url,
        "-n",
        "4",
        "--metric-names",
        "f1,f2",
        env=NO_GPU,
    )
    assert done.returncode == 0, done.stderr
    assert optuna.load_study(study_name="z", storage=sqlite_url).metric_names == ["f1", "f2"]
    assert _status(cli, sqlite_url, "z")["metric_names"] == ["f1", "f2"]


def test_status_shows_the_best_by_name(cli: Cli, sqlite_url: str) -> None:
    done = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        "q",
        "--storage",
        sqlite_url,
        "-n",
        "3",
        "--metric-names",
        "loss",
        env=NO_GPU,
    )
    assert done.returncode == 0, done.stderr
    summary = _status(cli, sqlite_url, "q")
    best = summary["best"]
    assert isinstance(best, dict) and set(best["named"]) == {"loss"}
    table = cli("status", "--storage", sqlite_url).stdout
    assert "loss " in table


def test_the_objectives_own_names_are_taken(cli: Cli, sqlite_url: str, workdir: object) -> None:
    from pathlib import Path

    path = Path(str(workdir)) / "named.py"
    path.write_text(
        "def objective(trial):\n"
        "    x = trial.suggest_float('x', 0, 1)\n"
        "    return x, 1 - x\n"
        "objective.directions = ['minimize', 'maximize']\n"
        "objective.metric_names = ['error', 'accuracy']\n"
    )
    done = cli("create", f"{path}:objective", "--study", "n", "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    assert _status(cli, sqlite_url, "n")["metric_names"] == ["error", "accuracy"]


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ("a,b", "2 metric name(s) (a,b) for a study with 1 objective(s)"),
        ("value", "'value' is a word the filter language uses"),
        ("state", "'state' is a word the filter language uses"),
        ("value1", "'value1' is a word the filter language uses"),
    ],
)
def test_bad_names_are_one_line_and_write_nothing(
    cli: Cli, sqlite_url: str, names: str, says: str
) -> None:
    done = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        "bad",
        "--storage",
        sqlite_url,
        "-n",
        "2",
        "--metric-names",
        names,
        env=NO_GPU,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --metric-names: {says}" or says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    listed = cli("status", "--storage", sqlite_url)
    assert "bad" not in listed.stdout


def test_two_objectives_with_one_name(cli: Cli, sqlite_url: str) -> None:
    done = cli(
        "launch",
        "objectives.synthetic:zdt1",
        "--study",
        "z",
        "--storage",
        sqlite_url,
        "-n",
        "2",
        "--metric-names",
        "f,f",
        env=NO_GPU,
    )
    assert done.returncode == 2
    assert "'f' names two objectives" in done.stderr
