"""What ``tui-hpo launch`` costs over plain Optuna worker processes, in trials per second.

Two ways to run the same N trials of a trivial objective with W processes on one shared storage:

(a) ``tui-hpo launch FILE:objective --n-trials N --workers W`` as a real subprocess
    (``python -m tui_hpo launch ...``), timed from its start until it exits. This includes the
    launcher's own start-up, study creation, its checks, the W worker processes it spawns (each
    importing Python, Optuna and tui-hpo), the per-trial bookkeeping of tui-hpo's worker loop
    (orders, budget lock, provenance attributes, worker-row updates, heartbeats) and the
    launcher noticing that the workers are done.
(b) W plain processes started at once, each doing
    ``optuna.load_study(...).optimize(objective, n_trials=N // W)`` (the remainder spread over
    the first ones), timed from the first start until the last exits. They pay Python and
    Optuna's import too, but nothing else.

The objective only suggests one float and returns its square, so a trial is almost entirely
framework and storage work: this is the worst case for tui-hpo's per-trial overhead, which
disappears behind any real training run. Trials per second = ended trials (COMPLETE, PRUNED,
FAIL, counted in the storage afterwards) / wall time. The target is tui-hpo >= 0.95 x plain.

Fairness choices, all the same for both sides:

- Storage: a fresh one per run (a new SQLite file, or a new PostgreSQL database made and
  dropped with psycopg) with Optuna's tables already created before the clock starts. Plain's
  study is created before its clock too (``load_study`` needs it); tui-hpo creates its own
  study and tables on the clock, since that is part of what ``launch`` does.
- Sampler: ``random`` by default, because it costs next to nothing and does not read the
  trial history, so what is left is the framework's overhead. ``tpe`` (what users get by
  default) reads every trial per sample on both sides and so dilutes the difference; pass
  ``--sampler tpe`` or ``both`` to see it. No seed on either side.
- SQLite tuning: tui-hpo switches the file to WAL, waits up to 120 s for the write lock and
  uses ``synchronous=NORMAL``. By default the plain workers get the same (equal footing:
  the comparison is the framework, not the storage settings) and Optuna's logging at WARNING
  (tui-hpo's workers also quiet Optuna). ``--bare-plain`` instead runs plain Optuna out of the
  box: the bare URL (rollback journal, 5 s lock wait) and Optuna's default INFO logging, which
  costs plain an extra best-trial query per trial.

Besides the end-to-end rate, each run reports a "span" rate: ended trials / (last trial's end -
first trial's start), from the timestamps Optuna stores; "outside" = wall - span is start-up
and shut-down, the span rate the steady per-trial throughput. "CPU" is the user + system time
of the side's whole process tree per trial (``RUSAGE_CHILDREN``; PostgreSQL's own server
processes are not in it): less sensitive than wall time to other load on the machine.

Every process of both sides imports its code from cached byte-code (``PYTHONPYCACHEPREFIX`` in
the system's temp folder, filled by an untimed warm-up run of each side), as on a normal
install, even where the environment sets ``PYTHONDONTWRITEBYTECODE``. Each run alternates which
side goes first; the figures are medians over ``--repeat`` runs.

The objective lives in this file; tui-hpo loads it as ``benchmarks/launch_overhead.py:objective``
without running ``__main__``, and the plain workers import this same file as a module and run
it with a hidden first argument. Run ``python benchmarks/launch_overhead.py --help`` for the
options; ``make bench`` runs the defaults (SQLite, N=400, W=4, random sampler, 3 repeats).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

HERE = Path(__file__).resolve()
OBJECTIVE_SPEC = f"{HERE}:objective"
PLAIN_WORKER = "_plain-worker"
"""Hidden first argument: run as one plain Optuna worker process."""
PLAIN_CMD = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(HERE.parent)!r}); "
    "import launch_overhead; sys.exit(launch_overhead.main())",
]
"""A plain worker imports this file as a module, as tui-hpo does, so both read cached byte-code."""
STUDY = "launch-overhead"
TARGET = 0.95
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SQLITE_BUSY_TIMEOUT_S = 120  # what tui_hpo.storage.engines uses
RUN_TIMEOUT_S = 900.0
PYCACHE = Path(tempfile.gettempdir()) / "tui-hpo-bench-pycache"
"""Byte-code cache of both sides' processes (see ``_child_env``)."""
ENDED = ("COMPLETE", "PRUNED", "FAIL")


def objective(trial: optuna.Trial) -> float:
    """A trivial trial: nearly all of its time is the framework's and the storage's."""
    x = trial.suggest_float("x", -10.0, 10.0)
    return x * x


objective.directions = ["minimize"]  # type: ignore[attr-defined]


# storages --------------------------------------------------------------------------------------


@contextmanager
def fresh_storage(kind: str, work: Path, pg_url: str) -> Iterator[str]:
    """A new, empty storage URL for one run; removed afterwards."""
    if kind == "sqlite":
        path = work / f"{uuid.uuid4().hex[:12]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(pg_url)
    name = f"tui_hpo_bench_{uuid.uuid4().hex[:12]}"
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _set_wal(url: str) -> None:
    import sqlite3

    from sqlalchemy.engine import make_url

    con = sqlite3.connect(str(make_url(url).database), timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _on_sqlite_connect(dbapi_con: Any, _record: Any) -> None:
    cur = dbapi_con.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_plain_storage(url: str, *, tuned: bool) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage as a plain user would open it; ``tuned`` adds tui-hpo's SQLite
    settings (the WAL mode itself is set once on the file, before the clock)."""
    import optuna
    import sqlalchemy

    if not (tuned and url.startswith("sqlite")):
        return optuna.storages.RDBStorage(url)
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    )
    sqlalchemy.event.listen(storage.engine, "connect", _on_sqlite_connect)
    storage.engine.dispose()
    return storage


def prepare_storage(url: str, *, study: str | None, tuned_sqlite: bool) -> None:
    """Off the clock: Optuna's tables, plus the study when ``study`` is given (plain side)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if url.startswith("sqlite") and tuned_sqlite:
        _set_wal(url)
    storage = optuna.storages.RDBStorage(url)
    if study is not None:
        optuna.create_study(study_name=study, storage=storage, direction="minimize")
    storage.engine.dispose()


def read_outcome(url: str) -> tuple[dict[str, int], dt.datetime | None, dt.datetime | None]:
    """Trials per state, the first trial's start and the last one's end (Optuna stores both
    as naive local times)."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            counts = {
                str(getattr(state, "name", state)): int(n)
                for state, n in con.execute(
                    sa.select(t.c.state, sa.func.count()).group_by(t.c.state)
                )
            }
            first, last = con.execute(
                sa.select(sa.func.min(t.c.datetime_start), sa.func.max(t.c.datetime_complete))
            ).one()
    finally:
        engine.dispose()
    return counts, _as_datetime(first), _as_datetime(last)


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


# the two sides ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    side: str  # "plain" or "tui-hpo"
    wall_s: float
    ended: int
    failed: int
    span_s: float | None
    head_s: float | None
    """From the first process start to the first trial's start: start-up."""
    cpu_s: float
    """CPU time (user + system) of the side's whole process tree; the database server's own
    CPU (PostgreSQL) is not in it. Less sensitive than wall time to a busy machine."""

    @property
    def rate(self) -> float:
        return self.ended / self.wall_s

    @property
    def span_rate(self) -> float | None:
        return self.ended / self.span_s if self.span_s else None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_all(procs: Sequence[subprocess.Popen[bytes]], started: float, what: str) -> float:
    try:
        for p in procs:
            p.wait(timeout=max(1.0, RUN_TIMEOUT_S - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        # SIGINT first: ``tui-hpo launch`` then stops its workers, which run in sessions of
        # their own and would outlive a SIGKILL of the launcher.
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise SystemExit(f"{what} ran past {RUN_TIMEOUT_S:.0f} s") from None
    return time.perf_counter() - started


def _child_env() -> dict[str, str]:
    """The environment both sides' processes get: no inherited storage, and byte-code caching
    on, as on a normal install, even where the caller's environment sets
    ``PYTHONDONTWRITEBYTECODE`` (which would recompile tui-hpo's modules in every process).
    The cache lives outside the repository, in ``PYCACHE`` (kept between invocations, so
    ``--no-warm-up`` after a first run still finds it filled); ``warm_up`` fills it."""
    env = dict(os.environ)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_tui_hpo(url: str, work: Path, n_trials: int, workers: int, sampler: str) -> Run:
    prepare_storage(url, study=None, tuned_sqlite=False)  # tui-hpo sets WAL itself
    log_dir = work / f"logs-{uuid.uuid4().hex[:8]}"
    cmd = [
        sys.executable,
        "-m",
        "tui_hpo",
        "launch",
        OBJECTIVE_SPEC,
        "--study",
        STUDY,
        "--storage",
        url,
        "--n-trials",
        str(n_trials),
        "--workers",
        str(workers),
        "--sampler",
        sampler,
        "--gpus",
        "none",
        "--log-dir",
        str(log_dir),
    ]
    out_path = work / "launch.out"
    with open(out_path, "wb") as out:
        cpu = _children_cpu()
        started, epoch = time.perf_counter(), time.time()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_child_env(),
        )
        wall = _wait_all([proc], started, "tui-hpo launch")
        cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        logs = "".join(
            f"\n--- {path.name}:\n" + "\n".join(path.read_text().splitlines()[-15:])
            for path in sorted(log_dir.glob("*.log"))
        )
        raise SystemExit(
            f"tui-hpo launch exited with {proc.returncode}:\n{out_path.read_text()[-3000:]}{logs}"
        )
    shutil.rmtree(log_dir, ignore_errors=True)
    return _outcome("tui-hpo", url, wall, epoch, cpu)


def run_plain(
    url: str, work: Path, n_trials: int, workers: int, sampler: str, *, bare: bool
) -> Run:
    prepare_storage(url, study=STUDY, tuned_sqlite=not bare)
    shares = [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]
    shares = [share for share in shares if share > 0]  # more workers than trials
    logs = [work / f"plain-{i}.log" for i in range(len(shares))]
    handles = [open(path, "wb") for path in logs]  # closed below
    try:
        cpu = _children_cpu()
        started, epoch = time.perf_counter(), time.time()
        procs = [
            subprocess.Popen(
                [*PLAIN_CMD, PLAIN_WORKER, url, STUDY, str(share), sampler]
                + (["--bare"] if bare else []),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=_child_env(),
            )
            for share, handle in zip(shares, handles, strict=True)
        ]
        wall = _wait_all(procs, started, "plain workers")
        cpu = _children_cpu() - cpu
    finally:
        for handle in handles:
            handle.close()
    bad = [(p.returncode, log) for p, log in zip(procs, logs, strict=True) if p.returncode != 0]
    if bad:
        code, log = bad[0]
        raise SystemExit(f"a plain worker exited with {code}:\n{log.read_text()[-3000:]}")
    return _outcome("plain", url, wall, epoch, cpu)


def _outcome(side: str, url: str, wall: float, epoch: float, cpu: float) -> Run:
    counts, first, last = read_outcome(url)
    ended = sum(counts.get(s, 0) for s in ENDED)
    span = (last - first).total_seconds() if first and last else None
    head = first.timestamp() - epoch if first else None
    return Run(side, wall, ended, counts.get("FAIL", 0), span, head, cpu)


def plain_worker(argv: Sequence[str]) -> int:
    """One plain Optuna worker: ``load_study(...).optimize(objective, n_trials=...)``."""
    parser = argparse.ArgumentParser(prog=f"launch_overhead.py {PLAIN_WORKER}")
    parser.add_argument("url")
    parser.add_argument("study")
    parser.add_argument("n_trials", type=int)
    parser.add_argument("sampler", choices=("random", "tpe"))
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args(argv)

    import optuna

    if not args.bare:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = optuna.samplers
    sampler = samplers.RandomSampler() if args.sampler == "random" else samplers.TPESampler()
    storage: str | optuna.storages.RDBStorage = (
        args.url if args.bare else open_plain_storage(args.url, tuned=True)
    )
    study = optuna.load_study(study_name=args.study, storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=args.n_trials)
    return 0


# the comparison --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Result:
    storage: str
    sampler: str
    plain: list[Run]
    tui: list[Run]

    @property
    def plain_rate(self) -> float:
        return statistics.median(r.rate for r in self.plain)

    @property
    def tui_rate(self) -> float:
        return statistics.median(r.rate for r in self.tui)

    @property
    def ratio(self) -> float:
        return self.tui_rate / self.plain_rate

    @staticmethod
    def span_rate(runs: list[Run]) -> float | None:
        return _median([r.span_rate for r in runs])

    @staticmethod
    def cpu_ms_per_trial(runs: list[Run]) -> float:
        return statistics.median(1000 * r.cpu_s / max(1, r.ended) for r in runs)

    @staticmethod
    def outside_span(runs: list[Run]) -> float | None:
        """Seconds of the wall time outside the trials' span: start-up and shut-down."""
        return _median([r.wall_s - r.span_s if r.span_s else None for r in runs])

    @staticmethod
    def head(runs: list[Run]) -> float | None:
        """Seconds of start-up: first process start to first trial start."""
        return _median([r.head_s for r in runs])

    @staticmethod
    def tail(runs: list[Run]) -> float | None:
        """Seconds of shut-down: last trial end to last process exit."""
        return _median(
            [r.wall_s - r.span_s - r.head_s if r.span_s and r.head_s else None for r in runs]
        )


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def run_side(
    side: str, kind: str, sampler: str, n_trials: int, args: argparse.Namespace, work: Path
) -> Run:
    with fresh_storage(kind, work, args.pg_url) as url:
        if side == "plain":
            return run_plain(url, work, n_trials, args.workers, sampler, bare=args.bare_plain)
        return run_tui_hpo(url, work, n_trials, args.workers, sampler)


def warm_up(kinds: list[str], samplers: list[str], args: argparse.Namespace, work: Path) -> None:
    """One small untimed run of each side per storage and sampler: fills the byte-code cache
    (see ``_child_env``) and the OS page cache, so the first timed run pays no more than the
    others."""
    for kind in kinds:
        for sampler in samplers:
            for side in ("plain", "tui-hpo"):
                run_side(side, kind, sampler, args.workers, args, work)


def compare(
    kind: str,
    sampler: str,
    args: argparse.Namespace,
    work: Path,
    say: Callable[[str], None],
) -> Result:
    plain: list[Run] = []
    tui: list[Run] = []
    for i in range(args.repeat):
        # Alternate which side goes first so drift (caches, a busy neighbour) hits both alike.
        order = ("plain", "tui-hpo") if i % 2 == 0 else ("tui-hpo", "plain")
        for side in order:
            run = run_side(side, kind, sampler, args.n_trials, args, work)
            (plain if side == "plain" else tui).append(run)
            span = f"{run.span_rate:7.1f}/s" if run.span_rate else "      -"
            fails = f", {run.failed} FAIL" if run.failed else ""
            say(
                f"  {kind:<10} {sampler:<6} run {i + 1}/{args.repeat} {side:<7}: "
                f"{run.ended} trials in {run.wall_s:6.2f} s = {run.rate:7.1f}/s "
                f"(span {span}), CPU {1000 * run.cpu_s / max(1, run.ended):5.1f} ms/trial, "
                f"start-up {_fmt(run.head_s, 4, '.2f')} s{fails}"
            )
            if run.ended != args.n_trials:
                say(f"  warning: {run.ended} trials ended, not {args.n_trials}")
    return Result(kind, sampler, plain, tui)


def report(results: list[Result], args: argparse.Namespace) -> str:
    baseline = "plain Optuna out of the box" if args.bare_plain else "plain Optuna, same storage"
    lines = [
        "",
        f"N={args.n_trials} trials, W={args.workers} workers, median of {args.repeat} run(s); "
        f"baseline: {baseline}; {os.cpu_count()} CPU(s)",
        "trials/s = ended trials / wall time from first process start to last exit; span = "
        "first trial start to last trial end; outside = wall - span = start-up (to the first "
        "trial's start) + shut-down (after the last trial's end); "
        "CPU = user+system of all the side's processes per trial",
        f"{'storage':<10} {'sampler':<7} {'plain/s':>8} {'tui-hpo/s':>9} {'ratio':>6} | "
        f"{'span plain/s':>12} {'span tui/s':>10} {'ratio':>6} | "
        f"{'outside plain s':>15} {'outside tui s':>13} "
        f"{'start-up plain/tui s':>20} {'shut-down plain/tui s':>21} | "
        f"{'CPU ms/trial plain':>18} {'tui':>6}",
    ]
    for r in results:
        sp, st = r.span_rate(r.plain), r.span_rate(r.tui)
        sr = st / sp if sp and st else None
        op, ot = r.outside_span(r.plain), r.outside_span(r.tui)
        lines.append(
            f"{r.storage:<10} {r.sampler:<7} {r.plain_rate:8.1f} {r.tui_rate:9.1f} "
            f"{r.ratio:6.3f} | {_fmt(sp, 12)} {_fmt(st, 10)} {_fmt(sr, 6, '.3f')} | "
            f"{_fmt(op, 15, '.2f')} {_fmt(ot, 13, '.2f')} "
            f"{_fmt(r.head(r.plain), 10, '.2f')}/{_fmt(r.head(r.tui), 9, '.2f')} "
            f"{_fmt(r.tail(r.plain), 11, '.2f')}/{_fmt(r.tail(r.tui), 9, '.2f')} | "
            f"{r.cpu_ms_per_trial(r.plain):18.1f} {r.cpu_ms_per_trial(r.tui):6.1f}"
        )
    lines.append("")
    for r in results:
        verdict = "met" if r.ratio >= TARGET else "not met"
        lines.append(
            f"{r.storage} {r.sampler}: tui-hpo/plain = {r.ratio:.3f}; target >= {TARGET}: {verdict}"
        )
    return "\n".join(lines)


def _fmt(value: float | None, width: int, spec: str = ".1f") -> str:
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="launch_overhead.py",
        description="Trials/s of `tui-hpo launch` against plain Optuna worker processes "
        "on a trivial objective (see the module docstring).",
    )
    parser.add_argument("--n-trials", type=int, default=400, help="trials per run (default 400)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument(
        "--storage-kind", choices=("sqlite", "postgresql", "both"), default="sqlite"
    )
    parser.add_argument(
        "--sampler",
        choices=("random", "tpe", "both"),
        default="random",
        help="random (default: isolates the framework), tpe (Optuna's default), or both",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; median reported")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG,
        help=f"PostgreSQL server to make scratch databases on (default {DEFAULT_PG})",
    )
    parser.add_argument(
        "--bare-plain",
        action="store_true",
        help="plain side as Optuna ships: bare URL (no WAL, 5 s lock wait), INFO logging",
    )
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed warm-up runs")
    args = parser.parse_args(argv)
    if args.n_trials < 1 or args.workers < 1 or args.repeat < 1:
        parser.error("--n-trials, --workers and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [PLAIN_WORKER]:
        return plain_worker(argv[1:])
    args = parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.storage_kind == "both" else [args.storage_kind]
    samplers = ["random", "tpe"] if args.sampler == "both" else [args.sampler]

    def say(line: str) -> None:
        print(line, flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="tui-hpo-bench-") as tmp:
        if not args.no_warm_up:
            say("warming up (untimed: one small run of each side)")
            warm_up(kinds, samplers, args, Path(tmp))
        for kind in kinds:
            for sampler in samplers:
                results.append(compare(kind, sampler, args, Path(tmp), say))
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
