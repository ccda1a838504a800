"""tui-hpo through pgbouncer in transaction-pooling mode (issue 10: thousands of workers).

pgbouncer's transaction pooling hands a server connection to a client for one transaction at a
time, so nothing may depend on session state: no server-side prepared statements (psycopg's
``prepare_threshold=None``) and no lock that outlives a transaction (the trial budget is taken
under a row lock inside one transaction). These tests start Debian's pgbouncer in front of a
PostgreSQL server of their own (``pgbouncer`` fixture: ``default_pool_size = 4``) and run real
workers, steering commands and a launch through it; the server's ``pg_stat_activity`` shows
how many server connections carried them all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest

from tests.support import (
    Cli,
    ConnectionSampler,
    OwnPostgres,
    PgBouncer,
    PgBouncerClients,
    kill_worker,
    load_trials,
    run_cli,
    wait_for,
    worker_rows,
)

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUADRATIC = "objectives.synthetic:quadratic"


def _env(url: str, sleep: str = "0") -> dict[str, str]:
    return {"TUI_HPO_STORAGE": url, "TUI_HPO_DEMO_SLEEP": sleep, "TUI_HPO_GPU_COUNT": "0"}


def _status(url: str, study: str) -> dict[str, Any]:
    out = run_cli("status", "--study", study, "--json", env=_env(url))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return dict(json.loads(out.stdout)["studies"][0])


def _ended(counts: dict[str, int]) -> int:
    return counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]


def _no_traceback(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"
        # what pgbouncer says when a client leans on session state it does not keep
        for words in ("prepared statement", "advisory", "server conn crashed"):
            assert words not in text.lower(), f"{log.name} mentions {words!r}:\n{text[-3000:]}"


@pytest.fixture
def bounced_study(pgbouncer: PgBouncer) -> Iterator[str]:
    study = "bounced"
    try:
        yield study
    finally:
        run_cli("stop", study, env=_env(pgbouncer.url), timeout=120)
        try:
            rows = worker_rows(pgbouncer.server.admin_url)
        except Exception:
            rows = []
        for row in rows:
            for pid in (row["pid"], row.get("supervisor_pid")):
                kill_worker(pid)


def test_pgbouncer_passes_queries_in_transaction_mode(pgbouncer: PgBouncer) -> None:
    """The fixture itself: pgbouncer runs in transaction mode with the pool size asked for,
    and a psycopg client gets through it to the test's own server."""
    with psycopg.connect(pgbouncer.dsn, prepare_threshold=None, connect_timeout=5) as con:
        row = con.execute("SELECT current_user, current_database(), inet_server_port()").fetchone()
    assert row == ("hpo", "hpo", pgbouncer.server.port)
    config = pgbouncer.ini.read_text()
    assert "pool_mode = transaction" in config
    assert f"default_pool_size = {pgbouncer.pool_size}" in config


def test_workers_through_pgbouncer_spend_the_budget_exactly(
    pgbouncer: PgBouncer, own_postgres: OwnPostgres, bounced_study: str, cli: Cli, tmp_path: Path
) -> None:
    """10 workers through a pool of 4 server connections: the launch ends with exactly the
    budget's trials, all COMPLETE, every worker exits 0, the server never carries more than
    the pool's 4 connections for tui-hpo, and no tui-hpo process holds more than one client
    connection to pgbouncer at a time."""
    url, study, workers, budget = pgbouncer.url, bounced_study, 10, 50
    logs = tmp_path / "logs"
    server_side = ConnectionSampler(
        own_postgres.admin_dsn, database="hpo", user="hpo", per_process=False
    )
    with server_side as sampler, PgBouncerClients(pgbouncer, every=0.2) as clients:
        out = cli(
            "launch",
            QUADRATIC,
            "--study",
            study,
            "--n-trials",
            str(budget),
            "--workers",
            str(workers),
            "--sampler",
            "random",
            "--pruner",
            "none",
            "--log-dir",
            str(logs),
            env=_env(url, "0.02"),
            cwd=tmp_path,
            timeout=600,
        )
    assert sampler.error is None, sampler.error
    assert clients.error is None, clients.error
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]

    trials = load_trials(own_postgres.admin_url, study)  # read past the pooler: what was written
    assert len(trials) == budget
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * budget
    assert [t.number for t in trials] == list(range(budget))
    rows = worker_rows(own_postgres.admin_url)
    assert len(rows) == workers, rows
    assert [(r["state"], r["exit_code"]) for r in rows] == [("exited", 0)] * workers
    assert sum(r["trials_done"] for r in rows) == budget
    _no_traceback(logs)

    print(f"server connections: peak {sampler.peak('')} in {len(sampler.samples)} samples")
    assert len(sampler.samples) > 20, "the sampler saw too little of the launch"
    assert 1 <= sampler.peak("") <= pgbouncer.pool_size
    print(f"pgbouncer clients: peak {clients.peak('tui-hpo')}, {clients.most_per_process}")
    assert clients.peak("tui-hpo worker") >= 2, "the workers never overlapped: nothing pooled"
    assert clients.crowded_processes == [], clients.crowded_processes[:5]


def test_status_pause_and_resume_through_pgbouncer(
    pgbouncer: PgBouncer, own_postgres: OwnPostgres, bounced_study: str, cli: Cli, tmp_path: Path
) -> None:
    """Steering through the pooler: `status` reads the study, `pause` stops new trials
    (running ones finish, none starts while paused), `resume` lets the workers spend the rest
    of the budget, exactly."""
    url, study, workers, budget = pgbouncer.url, bounced_study, 4, 60
    logs = tmp_path / "logs"
    launched = cli(
        "launch",
        QUADRATIC,
        "--study",
        study,
        "--n-trials",
        str(budget),
        "--workers",
        str(workers),
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--poll-interval",
        "0.2",
        "--log-dir",
        str(logs),
        "--detach",
        env=_env(url, "0.1"),  # 10 steps: 1 s a trial
        cwd=tmp_path,
    )
    assert launched.returncode == 0, launched.stderr
    wait_for(lambda: _ended(_status(url, study)["counts"]) >= 2, 180, "trials to end", every=1)

    paused = cli("pause", study, env=_env(url))
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: _status(url, study)["counts"]["RUNNING"] == 0, 60, "running trials to end")
    at_pause = _status(url, study)
    assert at_pause["paused"] is True
    assert _ended(at_pause["counts"]) < budget, "the budget was spent before the pause"
    time.sleep(3)  # six poll intervals: any worker that ignored the pause would start a trial
    later = _status(url, study)
    assert later["n_trials"] == at_pause["n_trials"], (at_pause["counts"], later["counts"])
    assert {w["state"] for w in later["workers"]} <= {"paused", "exited"}

    resumed = cli("resume", study, env=_env(url))
    assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: _ended(_status(url, study)["counts"]) == budget, 240, "the budget", every=1)
    wait_for(
        lambda: all(r["state"] == "exited" for r in worker_rows(own_postgres.admin_url)),
        60,
        "the workers to leave",
    )
    final = _status(url, study)
    assert final["paused"] is False
    assert final["n_trials"] == budget
    assert final["counts"]["COMPLETE"] == budget
    assert [r["exit_code"] for r in worker_rows(own_postgres.admin_url)] == [0] * workers
    _no_traceback(logs)
