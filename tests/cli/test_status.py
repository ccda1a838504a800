"""``tui-hpo status`` and ``status --json`` (docs/status-json.md) against studies built here.

Values are checked against what Optuna itself reads from the same storage: counts per state,
the best trial, the Pareto front, and the workers that ran the trials.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.support import Cli, run_cli

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDE = {"COLUMNS": "300"}
"""The table read as on a wide terminal: rich sizes output to 80 columns when stdout is not a
terminal (see test_status_table_is_complete_when_piped)."""

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
STUDY_KEYS = {
    "name",
    "study_id",
    "directions",
    "n_trials",
    "budget",
    "counts",
    "best",
    "pareto_front_size",
    "sampler",
    "pruner",
    "paused",
    "last_activity",
    "workers",
}
WORKER_KEYS = {
    "worker_id",
    "host",
    "pid",
    "gpu",
    "state",
    "trial",
    "trials_done",
    "exit_code",
    "heartbeat_age_s",
    "log",
}


def status_json(url: str, *args: str) -> dict[str, Any]:
    proc = run_cli("status", "--json", "--storage", url, *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


def open_study(url: str, name: str) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    storage = optuna.storages.RDBStorage(url)
    return optuna.load_study(study_name=name, storage=storage), storage


def expected_counts(study: optuna.Study) -> dict[str, int]:
    c = Counter(t.state.name for t in study.get_trials())
    return {s: c[s] for s in STATES}


def last_activity(study: optuna.Study) -> str:
    when = max(t.datetime_complete or t.datetime_start for t in study.get_trials())
    return when.isoformat(sep=" ", timespec="seconds")


def test_status_of_a_launched_study(cli: Cli, storage_url: str, workdir: Path) -> None:
    logs = workdir / "logs"
    proc = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        "S",
        "--storage",
        storage_url,
        "--n-trials",
        "12",
        "--workers",
        "2",
        "--log-dir",
        str(logs),
        env={"TUI_HPO_GPU_COUNT": "0"},
    )
    assert proc.returncode == 0, proc.stderr

    doc = status_json(storage_url)
    assert doc["version"] == 1
    assert doc["storage"] == storage_url  # nothing to mask
    (s,) = doc["studies"]
    assert set(s) >= STUDY_KEYS
    study, storage = open_study(storage_url, "S")
    try:
        trials = study.get_trials()
        assert s["name"] == "S"
        assert s["study_id"] == study._study_id
        assert s["directions"] == ["minimize"]
        assert s["n_trials"] == 12 == len(trials)
        assert s["budget"] == 12
        assert s["counts"] == expected_counts(study)
        assert sum(s["counts"][k] for k in ("COMPLETE", "PRUNED", "FAIL")) == 12
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        best = min(complete, key=lambda t: t.value)
        assert s["best"] == {"trial": best.number, "values": [best.value]}
        assert s["best"]["trial"] == study.best_trial.number
        assert s["pareto_front_size"] is None
        assert s["sampler"] == {"name": "tpe", "kwargs": {}}
        assert s["pruner"] == {"name": "median", "kwargs": {}}
        assert s["paused"] is False
        assert s["last_activity"] == last_activity(study)
        dt.datetime.fromisoformat(s["last_activity"])
    finally:
        storage.engine.dispose()

    done_by_pid = Counter(t.user_attrs["tui_hpo.pid"] for t in trials)
    workers = s["workers"]
    assert len(workers) == 2
    for w in workers:
        assert set(w) >= WORKER_KEYS
        assert w["host"] == socket.gethostname()
        assert w["gpu"] == "none"
        assert w["state"] == "exited"
        assert w["exit_code"] == 0
        assert w["trial"] is None
        assert w["trials_done"] == done_by_pid[w["pid"]]
        assert isinstance(w["heartbeat_age_s"], (int, float)) and w["heartbeat_age_s"] >= 0
        assert Path(w["log"]).parent == logs and Path(w["log"]).is_file()
    assert {w["pid"] for w in workers} == set(done_by_pid)
    assert sorted(w["worker_id"] for w in workers) == sorted(
        {t.user_attrs["tui_hpo.worker"] for t in trials}
    )

    # the table
    table = cli("status", "--storage", storage_url, env=WIDE)
    assert table.returncode == 0, table.stderr
    assert f"storage {storage_url}" in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("S "))
    assert "12/12" in row
    assert f"{best.value:.6g}" in row and f"#{best.number}" in row
    with_workers = cli("status", "--study", "S", "--storage", storage_url, env=WIDE)
    assert with_workers.returncode == 0, with_workers.stderr
    assert "workers of S" in with_workers.stdout
    for w in workers:
        assert str(w["pid"]) in with_workers.stdout


def _plain_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    if trial.number == 1:
        raise optuna.TrialPruned()
    if trial.number == 3:
        raise ValueError("plain script failure")
    return -((x - 1) ** 2)


def test_status_of_plain_optuna_studies(cli: Cli, storage_url: str, workdir: Path) -> None:
    optuna.storages.RDBStorage(storage_url).engine.dispose()  # Optuna's tables, no study yet
    assert status_json(storage_url)["studies"] == []
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        plain = optuna.create_study(study_name="plain", storage=storage, direction="maximize")
        plain.optimize(_plain_objective, n_trials=6, catch=(ValueError,))
        mo = optuna.create_study(
            study_name="plain-mo", storage=storage, directions=["minimize", "maximize"]
        )
        mo.optimize(lambda t: (t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 1)), 8)
        optuna.create_study(study_name="empty", storage=storage)
        plain_counts = expected_counts(plain)
        plain_best = plain.best_trial
        front = len(mo.best_trials)
        plain_id, activity = plain._study_id, last_activity(plain)
    finally:
        storage.engine.dispose()
    assert plain_counts == {"COMPLETE": 4, "PRUNED": 1, "FAIL": 1, "RUNNING": 0, "WAITING": 0}

    doc = status_json(storage_url)
    studies = {s["name"]: s for s in doc["studies"]}
    assert set(studies) == {"plain", "plain-mo", "empty"}
    s = studies["plain"]
    assert s["study_id"] == plain_id
    assert s["directions"] == ["maximize"]
    assert s["n_trials"] == 6
    assert s["budget"] is None
    assert s["counts"] == plain_counts
    assert s["best"] == {"trial": plain_best.number, "values": [plain_best.value]}
    assert s["pareto_front_size"] is None
    assert s["workers"] == []
    assert s["last_activity"] == activity

    m = studies["plain-mo"]
    assert m["directions"] == ["minimize", "maximize"]
    assert m["best"] is None
    assert m["pareto_front_size"] == front > 0
    assert m["counts"]["COMPLETE"] == 8

    e = studies["empty"]
    assert e["n_trials"] == 0 and e["best"] is None and e["last_activity"] is None
    assert e["counts"] == dict.fromkeys(STATES, 0)

    table = cli("status", "--storage", storage_url, env=WIDE)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    row = next(line for line in lines if line.startswith("plain "))
    assert "6" in row.split() and f"#{plain_best.number}" in row
    mo_row = next(line for line in lines if line.startswith("plain-mo "))
    assert "front" in mo_row and str(front) in mo_row.split()


def test_password_is_masked(cli: Cli, postgres_url: str, workdir: Path) -> None:
    # trust auth ignores the password, so the URL works while carrying one
    url = make_url(postgres_url).set(password="s3cret").render_as_string(hide_password=False)
    assert "s3cret" in url
    masked = url.replace("s3cret", "***")
    storage = optuna.storages.RDBStorage(url)
    try:
        optuna.create_study(study_name="S", storage=storage).optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=2
        )
    finally:
        storage.engine.dispose()
    outputs = []
    for args in (["status"], ["status", "--json"], ["status", "--study", "S"]):
        proc = cli(*args, "--storage", url, env=WIDE)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    assert json.loads(outputs[1].strip())["storage"] == masked
    error = cli("status", "--study", "nope", "--storage", url)
    assert error.returncode == 2
    outputs.append(error.stdout + error.stderr)
    launch = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        "S",
        "--storage",
        url,
        "--n-trials",
        "1",
        "--log-dir",
        str(workdir / "logs"),
        env={"TUI_HPO_GPU_COUNT": "0", **WIDE},
    )
    assert launch.returncode == 0, launch.stderr
    outputs.append(launch.stdout + launch.stderr)
    for text in outputs:
        assert "s3cret" not in text
    assert all("***" in text for text in outputs)
    for log in (workdir / "logs").glob("*.log"):
        assert "s3cret" not in log.read_text()
    # nor is the password kept in tui-hpo's own tables (launch_json, settings, workers)
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            for table in ("tui_hpo_studies", "tui_hpo_settings", "tui_hpo_workers"):
                rows = con.execute(sa.text(f"SELECT * FROM {table}")).all()
                assert rows and "s3cret" not in repr(rows)
    finally:
        engine.dispose()


def test_running_and_waiting_trials_are_not_ended(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    storage = optuna.storages.RDBStorage(sqlite_url)
    try:
        study = optuna.create_study(study_name="S", storage=storage)
        study.ask()  # RUNNING, as a worker in the middle of a trial leaves it
        study.enqueue_trial({"x": 1.0})  # WAITING
    finally:
        storage.engine.dispose()
    (s,) = status_json(sqlite_url)["studies"]
    assert s["counts"] == {**dict.fromkeys(STATES, 0), "RUNNING": 1, "WAITING": 1}
    assert s["n_trials"] == 2 and s["best"] is None
    proc = cli("status", "--storage", sqlite_url, env=WIDE)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("S "))
    # study, directions, ended, complete, pruned, fail, running, waiting, best
    assert row.split()[:9] == ["S", "min", "0", "0", "0", "0", "1", "1", "-"]


def test_status_table_is_complete_when_piped(sqlite_url: str, workdir: Path) -> None:
    name = "a-study-with-a-rather-long-name-indeed"
    storage = optuna.storages.RDBStorage(sqlite_url)
    try:
        study = optuna.create_study(study_name=name, storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0.1, 1) / 3, n_trials=3)
        best = study.best_trial
    finally:
        storage.engine.dispose()
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [sys.executable, "-m", "tui_hpo", "status", "--storage", sqlite_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert name in proc.stdout
    assert f"{best.value:.6g}" in proc.stdout and f"#{best.number}" in proc.stdout
