"""Connections that tui-hpo workers hold on PostgreSQL, and what a crowd of them gets done.

Issue 10's target: at least 120 workers against a server with ``max_connections=100`` finish a
study with exact counts and no worker crashes; a working worker needs at most one connection
at a time (its heartbeat included), an idle or paused one none, the launcher at most one. This
script measures that, for each worker count asked for (8, 32 and 120 by default), on a
PostgreSQL server of its own (``tests.support.OwnPostgres``: ``max_connections`` 100 of which
3 are reserved for the superuser, so tui-hpo, connecting as a plain role, gets 97), directly or
through pgbouncer in transaction-pooling mode (``--pgbouncer``).

One run, W workers and a budget of B trials of a short objective (one ``suggest_float`` and a
sleep, 0.05 s by default, so the trials are mostly waiting, as training is for the database):

1. ``tui-hpo create`` and ``tui-hpo pause`` the study, then ``tui-hpo launch`` it (not
   detached: the launcher is part of the crowd). The workers start, find the study paused and
   wait: once every worker says ``paused``, ``pg_stat_activity`` is sampled for a few seconds.
   That is the **idle** figure (connections per worker while nothing runs).
2. ``tui-hpo resume``: every worker starts trials at once. ``pg_stat_activity`` is sampled
   every 0.25 s until the launch exits; each connection is traced to the local process holding
   it (its client port), so the **peak per process** is the most connections one tui-hpo
   process held at one moment, and the **peak** totals are per role (``application_name``:
   ``tui-hpo worker`` / ``supervisor`` / ``launch``).
3. Trials per second: the budget over the time from ``resume`` to the last trial's end (every
   worker is already started, so start-up is not in it); wall time from ``launch`` to its exit
   is printed beside it.
4. Failures: a launch that did not exit 0, FAIL or unfinished trials, a finished count other
   than the budget, a worker that did not exit 0, a traceback or the server's "too many
   clients" refusal in any worker log.

Through pgbouncer, the server's own count is what pgbouncer holds (at most ``--pool-size``);
the per-process and per-role figures come from pgbouncer's ``SHOW CLIENTS`` instead.

Run from the repository root (it imports ``tests.support``), as root or as a user that can
start PostgreSQL (root: the servers run as ``postgres`` through ``runuser``)::

    .venv/bin/python benchmarks/connections.py                      # 8, 32, 120 workers
    .venv/bin/python benchmarks/connections.py --pgbouncer          # the same through pgbouncer
    .venv/bin/python benchmarks/connections.py --workers 8 --budget 80 --both
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402  (after the path: run as a script)
    ConnectionSampler,
    OwnPostgres,
    PgBouncer,
    PgBouncerClients,
    clean_env,
    kill_worker,
    wait_for,
    worker_rows,
)

SLEEP_ENV = "TUI_HPO_BENCH_SLEEP"
ROLES = ("tui-hpo worker", "tui-hpo supervisor", "tui-hpo launch")
REFUSALS = ("too many clients", "remaining connection slots", "query_wait_timeout")


def objective(trial: Any) -> float:
    """The benchmark's trial: one parameter and a sleep (``TUI_HPO_BENCH_SLEEP`` seconds), so
    that a trial costs the database what a real one does and the CPU almost nothing."""
    x = trial.suggest_float("x", -10.0, 10.0)
    time.sleep(float(os.environ.get(SLEEP_ENV, "0.05")))
    return (x - 2.0) ** 2


@dataclass
class RunResult:
    """What one run measured."""

    mode: str
    workers: int
    budget: int
    idle_held: int = 0
    """Connections held (seen without a break for over a second) while every worker was
    paused, all roles: the launcher's shows here, a paused worker's must not."""
    idle_held_worker: int = 0
    """The same, worker role only."""
    idle_mean: float = 0.0
    """All tui-hpo connections per sample then, on average: the passing polls for orders."""
    peak_worker: int = 0
    peak_supervisor: int = 0
    peak_launch: int = 0
    peak_all: int = 0
    peak_per_process: int = 0
    """The most connections one tui-hpo process held in one sample."""
    server_peak: int = 0
    """Server connections of the tui-hpo role (through pgbouncer: pgbouncer's)."""
    finished: int = 0
    complete: int = 0
    trials_per_s: float = 0.0
    wall_s: float = 0.0
    start_s: float = 0.0
    """From launch to every worker waiting, paused."""
    failures: list[str] | None = None


def _cli(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tui_hpo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tui-hpo {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out.stdout


def _admin(server: OwnPostgres) -> Any:
    """A superuser connection to the storage's database, for reading what was written."""
    import psycopg

    return psycopg.connect(server.admin_dsn.rsplit("/", 1)[0] + f"/{server.DATABASE}")


def _state_counts(server: OwnPostgres, study: str) -> tuple[dict[str, int], float]:
    """Trials per state, and when the last one ended (epoch seconds)."""
    with _admin(server) as con:
        rows = con.execute(
            "SELECT t.state, count(*), max(t.datetime_complete) FROM trials t"
            " JOIN studies s USING (study_id) WHERE s.study_name = %s GROUP BY t.state",
            [study],
        ).fetchall()
    # Optuna stamps trials with this machine's naive local time: .timestamp() reads it so
    last = max((end.timestamp() for _state, _n, end in rows if end is not None), default=0.0)
    return {str(state): int(n) for state, n, _end in rows}, last


def run_one(
    workers: int,
    budget: int,
    *,
    pgbouncer: bool,
    max_connections: int,
    pool_size: int,
    sleep: float,
    poll_interval: float,
    work_dir: Path,
) -> RunResult:
    """One launch of ``workers`` on a fresh server (and pgbouncer), measured as the module
    docstring says."""
    mode = f"pgbouncer (pool {pool_size})" if pgbouncer else "PostgreSQL"
    result = RunResult(mode, workers, budget, failures=[])
    assert result.failures is not None
    study = f"conn-{workers}"
    logs = work_dir / f"logs-{'bouncer' if pgbouncer else 'pg'}-{workers}"
    with OwnPostgres(max_connections=max_connections) as server:
        bouncer = PgBouncer(server, pool_size=pool_size) if pgbouncer else None
        if bouncer is not None:
            bouncer.start()
        url = bouncer.url if bouncer is not None else server.url
        env = clean_env({"TUI_HPO_STORAGE": url, "TUI_HPO_GPU_COUNT": "0", SLEEP_ENV: str(sleep)})
        objective_ref = f"{Path(__file__).resolve()}:objective"
        _cli("create", objective_ref, "--study", study, "--sampler", "random", env=env)
        _cli("pause", study, env=env)
        server_side = ConnectionSampler(
            server.admin_dsn, database="hpo", user="hpo", every=0.25, per_process=bouncer is None
        )
        clients = PgBouncerClients(bouncer, every=0.25) if bouncer is not None else server_side
        launch: subprocess.Popen[str] | None = None
        try:
            with contextlib.ExitStack() as sampling:
                for sampler in {id(server_side): server_side, id(clients): clients}.values():
                    sampling.enter_context(sampler)
                started = time.monotonic()
                launch = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tui_hpo",
                        "launch",
                        objective_ref,
                        "--study",
                        study,
                        "--n-trials",
                        str(budget),
                        "--workers",
                        str(workers),
                        "--pruner",
                        "none",
                        "--poll-interval",
                        str(poll_interval),
                        "--max-consecutive-failures",
                        "0",
                        "--log-dir",
                        str(logs),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=env,
                    cwd=work_dir,
                )

                def all_paused() -> bool:
                    if launch is not None and launch.poll() is not None:
                        raise RuntimeError(f"launch exited early: {launch.stderr}")
                    rows = worker_rows(server.admin_url)
                    return len(rows) >= workers and all(r["state"] == "paused" for r in rows)

                try:
                    wait_for(all_paused, 60 + 5 * workers, "every worker to wait", every=1)
                except AssertionError:
                    states = [r["state"] for r in worker_rows(server.admin_url)]
                    paused_now = states.count("paused")
                    result.failures.append(
                        f"start-up: {paused_now} of {workers} workers waiting after"
                        f" {time.monotonic() - started:.0f} s ({len(states)} registered)"
                    )
                    result.wall_s = time.monotonic() - started
                    return result
                result.start_s = time.monotonic() - started
                time.sleep(2)  # let the last ones settle
                first_idle, since = len(clients.samples), time.monotonic()
                time.sleep(5)
                idle, until = clients.samples[first_idle:], time.monotonic()
                window = {"longer_than": 1.0, "start": since, "end": until}
                result.idle_held = len(clients.held("tui-hpo", **window))
                result.idle_held_worker = len(clients.held(ROLES[0], **window))
                result.idle_mean = sum(
                    sum(n for k, n in s.items() if k.startswith("tui-hpo")) for s in idle
                ) / max(1, len(idle))
                first_working = len(clients.samples)
                crowded_before = len(clients.crowded_processes)
                _cli("resume", study, env=env)
                resumed = time.time()
                _, err = launch.communicate(timeout=3600)
                result.wall_s = time.monotonic() - started
            working = clients.samples[first_working:]
            result.peak_worker = max((s.get(ROLES[0], 0) for s in working), default=0)
            result.peak_supervisor = max((s.get(ROLES[1], 0) for s in working), default=0)
            result.peak_launch = max((s.get(ROLES[2], 0) for s in clients.samples), default=0)
            result.peak_all = max(
                (sum(n for k, n in s.items() if k.startswith("tui-hpo")) for s in working),
                default=0,
            )
            result.peak_per_process = max(clients.most_per_process.values(), default=0)
            result.server_peak = server_side.peak("")
            for sampler in {id(server_side): server_side, id(clients): clients}.values():
                if sampler.error is not None:
                    result.failures.append(f"sampler: {sampler.error}")
            if clients.crowded_processes[crowded_before:]:
                name, pid, n = clients.crowded_processes[crowded_before]
                result.failures.append(f"{name} pid {pid} held {n} connections at once")

            if launch.returncode != 0:
                result.failures.append(f"launch exited {launch.returncode}: {err.strip()[-300:]}")
            counts, end = _state_counts(server, study)
            result.complete = counts.get("COMPLETE", 0)
            result.finished = sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL"))
            if counts.get("FAIL"):
                result.failures.append(f"{counts['FAIL']} FAIL trial(s)")
            if result.finished != budget:
                result.failures.append(f"{result.finished} finished, budget {budget}")
            if end > resumed:
                result.trials_per_s = result.finished / (end - resumed)
            rows = worker_rows(server.admin_url)
            bad = [r for r in rows if r["exit_code"] != 0]
            if bad or len(rows) != workers:
                result.failures.append(
                    f"{len(rows)} worker rows, {len(bad)} without exit 0: "
                    f"{[(r['worker_id'], r['state'], r['exit_code']) for r in bad[:5]]}"
                )
            for log in sorted(logs.glob("*.log")):
                text = log.read_text(errors="replace")
                if "Traceback" in text or any(w in text.lower() for w in REFUSALS):
                    result.failures.append(f"traceback or refusal in {log.name}")
                    break
        finally:
            if launch is not None and launch.poll() is None:
                _kill_tree(launch.pid)
            _kill_workers(server.admin_url)
            if bouncer is not None:
                bouncer.remove()
    return result


def _kill_tree(pid: int) -> None:
    """SIGKILL a launch and every process under it (its supervisors and their workers)."""
    import psutil

    try:
        launch = psutil.Process(pid)
        tree = [*launch.children(recursive=True), launch]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _kill_workers(url: str) -> None:
    try:
        rows = worker_rows(url)
    except Exception:
        return
    for row in rows:
        for pid in (row["pid"], row.get("supervisor_pid")):
            kill_worker(pid)


def _table(results: list[RunResult]) -> str:
    head = (
        "| storage | W | budget | finished | idle: held by workers / all (mean) | peak worker conns"
        " (per worker) | peak supervisor / launch | peak all (per worker) | most per process"
        " | server conns | trials/s | start-up / wall | failures |"
    )
    lines = [head, "|" + " --- |" * 13]
    for r in results:
        w = r.workers
        lines.append(
            f"| {r.mode} | {w} | {r.budget} | {r.finished} ({r.complete} COMPLETE)"
            f" | {r.idle_held_worker} / {r.idle_held} ({r.idle_mean:.1f})"
            f" | {r.peak_worker} ({r.peak_worker / w:.2f})"
            f" | {r.peak_supervisor} / {r.peak_launch} | {r.peak_all} ({r.peak_all / w:.2f})"
            f" | {r.peak_per_process} | {r.server_peak} | {r.trials_per_s:.1f}"
            f" | {r.start_s:.0f} / {r.wall_s:.0f} s | {'; '.join(r.failures or []) or 'none'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="8,32,120", help="comma-separated worker counts")
    parser.add_argument(
        "--budget", type=int, default=None, help="trials per run (default 5 per worker, min 60)"
    )
    parser.add_argument("--pgbouncer", action="store_true", help="through pgbouncer only")
    parser.add_argument("--both", action="store_true", help="directly and through pgbouncer")
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--pool-size", type=int, default=10, help="pgbouncer default_pool_size")
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds per trial")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import tempfile

    modes = [False, True] if args.both else [args.pgbouncer]
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="tui-hpo-conn-bench-") as tmp:
        for bounced in modes:
            for workers in [int(w) for w in args.workers.split(",")]:
                budget = args.budget or max(60, 5 * workers)
                print(f"{'pgbouncer' if bounced else 'PostgreSQL'}: {workers} workers, "
                      f"{budget} trials ...", file=sys.stderr, flush=True)  # fmt: skip
                result = run_one(
                    workers,
                    budget,
                    pgbouncer=bounced,
                    max_connections=args.max_connections,
                    pool_size=args.pool_size,
                    sleep=args.sleep,
                    poll_interval=args.poll_interval,
                    work_dir=Path(tmp),
                )
                results.append(result)
                print(_table([result]).splitlines()[-1], file=sys.stderr, flush=True)
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 1 if any(r.failures for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
