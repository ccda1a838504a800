"""More tui-hpo processes than a PostgreSQL server has connection slots (issue 10).

A worker needs at most one connection at a time and none while it waits, so a crowd of
workers shares a small server; when the server is full, processes wait for a slot with
jittered backoff instead of dying with "too many clients". These tests run real launches
against a server of their own (``own_postgres``: 13 slots, 3 of them reserved for the
superuser, so tui-hpo, connecting as a plain role, gets 10) and against the shared test
server, and sample ``pg_stat_activity`` while they run (``ConnectionSampler``): the counts
are per role (``application_name``: ``tui-hpo worker``, ``supervisor``, ``launch``,
``command``) and per client process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest

from tests.support import (
    Background,
    Cli,
    ConnectionSampler,
    OwnPostgres,
    admin_dsn,
    clean_env,
    kill_worker,
    load_trials,
    run_cli,
    wait_for,
    worker_rows,
)

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUADRATIC = "objectives.synthetic:quadratic"
WORKER = "tui-hpo worker"
CROWD_WORDS = ("too many clients", "remaining connection slots", "sorry,")
"""The server's own refusal, which must never reach a log as an error (the waiting line says
"no free connection slot" in tui-hpo's words)."""


def _env(url: str, sleep: str) -> dict[str, str]:
    return {"TUI_HPO_STORAGE": url, "TUI_HPO_DEMO_SLEEP": sleep, "TUI_HPO_GPU_COUNT": "0"}


def _logs(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob("*.log"))}


def _assert_no_crash(texts: dict[str, str]) -> None:
    """No traceback and no server refusal shown as an error, in any of the texts."""
    for name, text in texts.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
        refusals = [
            line
            for line in text.splitlines()
            if any(words in line.lower() for words in CROWD_WORDS)
        ]
        assert not refusals, f"{name} shows the server's refusal: {refusals[:3]}"


def _stop_all(url: str, study: str, read_url: str | None = None) -> None:
    """Stop the study's workers and kill what is left (a failed test must not leave a crowd
    of processes behind on a 2-core machine); ``read_url`` reads the registry when ``url``'s
    role may find the server full."""
    run_cli("stop", study, env={"TUI_HPO_STORAGE": url}, timeout=120)
    try:
        rows = worker_rows(read_url or url)
    except Exception:
        return
    for row in rows:
        for pid in (row["pid"], row.get("supervisor_pid")):
            kill_worker(pid)


# the fixture itself ---------------------------------------------------------------------------


def test_own_server_refuses_a_plain_role_beyond_its_slots(own_postgres: OwnPostgres) -> None:
    """What the other tests rely on: the server has the slots asked for, the plain role that
    tui-hpo uses is refused beyond them, and the superuser still gets in to count."""
    assert own_postgres.setting("max_connections") == "13"
    assert own_postgres.setting("superuser_reserved_connections") == "3"
    dsn = own_postgres.url.replace("postgresql+psycopg://", "postgresql://")
    held = []
    try:
        for i in range(own_postgres.slots):
            held.append(psycopg.connect(dsn, application_name=f"tui-hpo test {i}"))
        with pytest.raises(psycopg.OperationalError, match="remaining connection slots"):
            psycopg.connect(dsn, connect_timeout=5)
        assert own_postgres.connections("tui-hpo test") == own_postgres.slots
    finally:
        for con in held:
            con.close()
    assert wait_for(lambda: own_postgres.connections("") == 0, 10, "the slots to be free")


# a crowd of workers on 10 slots ---------------------------------------------------------------


@pytest.fixture
def crowd_study(own_postgres: OwnPostgres) -> Iterator[str]:
    study = "crowd"
    try:
        yield study
    finally:
        _stop_all(own_postgres.url, study, own_postgres.admin_url)


def test_more_workers_than_slots_finish_the_budget_exactly(
    own_postgres: OwnPostgres, crowd_study: str, cli: Cli, tmp_path: Path
) -> None:
    """14 workers (each a supervisor and a trial process) and the launcher share 10 slots:
    the launch ends with exactly 60 COMPLETE trials, every worker exits 0, nothing crashes,
    and no process ever holds more than one connection."""
    url, study, workers, budget = own_postgres.url, crowd_study, 14, 60
    assert workers > own_postgres.slots
    logs = tmp_path / "logs"
    with ConnectionSampler(own_postgres.admin_dsn, database="hpo", user="hpo") as sampler:
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
            env=_env(url, "0.02"),  # 10 steps: 0.2 s a trial
            cwd=tmp_path,
            timeout=600,
        )
    assert sampler.error is None, sampler.error
    assert out.returncode == 0, out.stderr[-3000:]

    trials = load_trials(own_postgres.admin_url, study)
    states = [t.state for t in trials]
    assert len(trials) == budget, (len(trials), states)
    assert states == [optuna.trial.TrialState.COMPLETE] * budget

    rows = worker_rows(own_postgres.admin_url)
    assert len(rows) == workers, rows  # none died and was replaced
    assert [(r["state"], r["exit_code"]) for r in rows] == [("exited", 0)] * workers
    assert sum(r["trials_done"] for r in rows) == budget

    texts = _logs(logs)
    assert len(texts) == workers, list(texts)
    _assert_no_crash({**texts, "launch stderr": out.stderr, "launch stdout": out.stdout})

    peaks = {role: sampler.peak(role) for role in ("tui-hpo worker", "tui-hpo supervisor")}
    peaks["tui-hpo launch"] = sampler.peak("tui-hpo launch")
    print(f"samples {len(sampler.samples)}, peaks {peaks}, all {sampler.peak('')}")
    assert len(sampler.samples) > 20, "the sampler saw too little of the launch"
    assert sampler.peak("") <= own_postgres.slots
    assert sampler.peak("tui-hpo") == sampler.peak(""), "a connection without tui-hpo's name"
    assert peaks["tui-hpo worker"] <= workers
    assert peaks["tui-hpo launch"] <= 1
    # the server was really full at some point (processes were turned away and waited):
    # otherwise this test proved nothing
    assert any("no free connection slot" in t for t in [*texts.values(), out.stderr]), (
        "no process ever waited for a slot"
    )
    # one connection per process at a time, the trial heartbeat included
    assert sampler.crowded_processes == [], sampler.crowded_processes[:5]


def test_a_command_waits_for_a_slot_on_a_full_server(
    own_postgres: OwnPostgres, cli: Cli, tmp_path: Path
) -> None:
    """`tui-hpo status` against a server with no free slot waits (no traceback, no error) and
    answers once a slot frees up."""
    url, study = own_postgres.url, "full"
    made = cli("create", QUADRATIC, "--study", study, "--n-trials", "5", env=_env(url, "0"))
    assert made.returncode == 0, made.stderr
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    held = [
        psycopg.connect(dsn, application_name="someone else") for _ in range(own_postgres.slots)
    ]
    try:
        status = Background(
            ["status", "--study", study, "--json"],
            clean_env(_env(url, "0")),
            tmp_path,
            "status",
        )
        time.sleep(4)  # several backoff rounds
        assert status.process.poll() is None, (
            f"status did not wait for a slot: exit {status.process.returncode}\n{status.stderr()}"
        )
        assert own_postgres.connections("tui-hpo") == 0  # refused, not holding one
    finally:
        for con in held[:3]:
            con.close()
    try:
        assert status.wait(timeout=60) == 0, status.stderr()
    finally:
        for con in held[3:]:
            con.close()
    answer = json.loads(status.out.read_text())
    assert answer["studies"][0]["name"] == study
    assert answer["studies"][0]["counts"]["COMPLETE"] == 0
    _assert_no_crash({"status stderr": status.stderr()})


# the shared server: 8 workers, then paused ----------------------------------------------------


@pytest.fixture
def shared_study(postgres_url: str) -> Iterator[str]:
    study = "eight"
    try:
        yield study
    finally:
        _stop_all(postgres_url, study)


def test_eight_workers_hold_at_most_eight_and_none_while_paused(
    postgres_url: str, shared_study: str, cli: Cli, tmp_path: Path
) -> None:
    """On the shared server (its database of this test only): 8 working workers hold at most
    8 worker connections, one per process; paused, they hold none within a few seconds."""
    url, study, workers = postgres_url, shared_study, 8
    database = url.rsplit("/", 1)[1]
    started = cli(
        "launch",
        QUADRATIC,
        "--study",
        study,
        "--n-trials",
        "100000",
        "--workers",
        str(workers),
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--poll-interval",
        "0.2",
        "--log-dir",
        str(tmp_path / "logs"),
        "--detach",
        env=_env(url, "0.05"),  # 0.5 s a trial
        cwd=tmp_path,
    )
    assert started.returncode == 0, started.stderr
    with ConnectionSampler(admin_dsn(), database=database) as sampler:

        def all_working() -> bool:
            rows = worker_rows(url)
            return len(rows) == workers and all(r["trials_done"] >= 2 for r in rows)

        wait_for(all_working, 240, "every worker to run trials", every=1)
        time.sleep(5)  # a stretch of steady work, sampled
        working_samples = len(sampler.samples)
        working_peak = sampler.peak(WORKER)

        paused = cli("pause", study, env={"TUI_HPO_STORAGE": url})
        assert paused.returncode == 0, paused.stderr

        def all_paused() -> bool:
            rows = worker_rows(url)
            return all(r["state"] == "paused" for r in rows)

        wait_for(all_paused, 60, "every worker to be paused", every=0.5)
        time.sleep(3)  # "after a few seconds"
        settled, since = len(sampler.samples), time.monotonic()
        time.sleep(4)
        paused_samples, until = sampler.samples[settled:], time.monotonic()
    assert sampler.error is None, sampler.error
    print(
        f"working: {working_samples} samples, peak {working_peak} worker connections, "
        f"peak per process {sampler.most_per_process}; paused: {paused_samples[-1:]}"
    )
    assert working_samples > 20
    assert 1 <= working_peak <= workers
    assert sampler.most_per_process.get(WORKER, 0) == 1
    assert sampler.crowded_processes == [], sampler.crowded_processes[:5]
    assert len(paused_samples) > 10, "too few samples while paused"
    # a paused worker looks at its orders every poll interval on a connection it closes at
    # once; none keeps one (seen without a break for over a second)
    assert sampler.held(WORKER, longer_than=1.0, start=since, end=until) == []
    assert sampler.held("tui-hpo", longer_than=1.0, start=since, end=until) == []
    polls = sum(s.get(WORKER, 0) for s in paused_samples) / len(paused_samples)
    assert polls < workers / 2, f"{polls:.2f} worker connections on average while paused"
    assert max(s.get("tui-hpo launch", 0) for s in paused_samples) == 0  # --detach: gone

    resumed = cli("resume", study, env={"TUI_HPO_STORAGE": url})
    assert resumed.returncode == 0, resumed.stderr
    _assert_no_crash(_logs(tmp_path / "logs"))
