"""Make a large Optuna study fast, by bulk inserts straight into Optuna's own tables.

What it is for: the app's readers (``tui_hpo.data.frames``) must stay quick at 100,000 trials, and
``benchmarks/read_figures.py`` measures them on such a study. Making one through Optuna's API
(``study.add_trials`` or real ``optimize`` runs) costs tens of milliseconds per trial, over an
hour for 100,000; this script writes the same rows with SQLAlchemy Core ``executemany``: about
15 s for 100,000 trials (2.8 million rows) on SQLite, 30 s on PostgreSQL (with ``COPY``), on a
busy 2-core machine.

How: the study itself is made through Optuna (``optuna.create_study`` on an ``RDBStorage``), so
the schema, the version rows, the study and its directions are exactly Optuna's. The trials and
everything hanging off them are then inserted with the table objects of
``optuna.storages._rdb.models`` (column names and types from one place), in transactions of
``--chunk`` trials, each table written in ``executemany`` batches of ``--batch`` rows (on
PostgreSQL by default with ``COPY`` through psycopg instead, several times faster there).

What the study looks like (seeded, so the same arguments give the same rows):

- trial numbers 0..N-1, consecutive in ``trial_id`` order; start times increasing, naive UTC
  (as Optuna 5's RDB storage keeps them);
- states: about 72% COMPLETE, 25% PRUNED (the worse trials more often, as a pruner would),
  3% FAIL (with Optuna's ``fail_reason`` system attr and tui-hpo's ``tui_hpo.fail_reason``), and
  the last ``--running`` trials RUNNING (no completion time, no values);
- params: ``lr`` (log float), ``x`` (float in [0, 1]), ``depth`` (int), then ``units``,
  ``optimizer`` (categorical), ``dropout``, ``momentum``, ``x5``... for larger ``--params``;
  stored in Optuna's internal representation with ``distribution_to_json``;
- values: one objective, a smooth loss of the params; two, a ZDT1-like trade-off; three or
  more, DTLZ2-like; all minimised, plus noise, so a Pareto front exists. PRUNED trials of a
  single-objective study carry their last intermediate value as their value (as Optuna's
  ``tell`` stores it); of a multi-objective study, none;
- intermediate values: a decaying learning curve towards objective 0's value, ``--max-steps``
  steps for COMPLETE trials, 1..max-1 for PRUNED, 0..max-1 for FAIL and RUNNING. (Optuna's
  ``Trial.report`` refuses multi-objective studies, but tui-hpo's worker writes intermediate
  values for them through the storage, so the rows are what a tui-hpo study holds.)
- tui-hpo's provenance user attrs on every trial: ``tui_hpo.host``, ``tui_hpo.gpu``,
  ``tui_hpo.sampler`` (``random`` for the first 5% of trials, then ``tpe``), ``tui_hpo.pid``,
  ``tui_hpo.runtime.worker``.

Run it on a storage nothing else writes to while it runs: trial ids are allocated from the
current maximum, not by the database. The study is for reading benchmarks: don't continue a
multi-objective one with Optuna's TPE sampler, which raises on PRUNED trials that have
intermediate values (``study.direction`` in ``_get_pruned_trial_score``).

Usage::

    python benchmarks/make_big_study.py --storage sqlite:////tmp/big.db --study big \\
        --trials 100000 --params 3 --objectives 2 --max-steps 20 [--seed 0] [--running 8]
    python benchmarks/make_big_study.py --create-db \\
        --storage postgresql+psycopg://postgres@127.0.0.1:5432/big --study big --trials 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import math
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import sqlalchemy as sa
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.storages._rdb import models
from optuna.trial import TrialState

HOSTS = ("gpu-box-1", "gpu-box-2", "gpu-box-3", "gpu-box-4")
GPUS_PER_HOST = 8
P_PRUNED = 0.25
P_FAIL = 0.03
RANDOM_STARTUP = 0.05  # share of trials (the first ones) tagged with the random sampler
EPOCH = dt.datetime(1970, 1, 1)

TEMPLATES: tuple[tuple[str, BaseDistribution], ...] = (
    ("lr", FloatDistribution(1e-5, 1e-1, log=True)),
    ("x", FloatDistribution(0.0, 1.0)),
    ("depth", IntDistribution(1, 12)),
    ("units", IntDistribution(16, 1024, step=16)),
    ("optimizer", CategoricalDistribution(("adam", "sgd", "rmsprop"))),
    ("dropout", FloatDistribution(0.0, 0.5, step=0.05)),
    ("momentum", FloatDistribution(0.5, 0.99)),
)


def param_specs(n: int) -> list[tuple[str, BaseDistribution]]:
    """The first ``n`` params: the templates, then plain floats ``x5``, ``x6``..."""
    specs = list(TEMPLATES[:n])
    specs += [(f"x{i}", FloatDistribution(0.0, 1.0)) for i in range(len(specs), n)]
    return specs


def to_internal(dist: BaseDistribution, u: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) draws mapped into the distribution, in Optuna's internal repr."""
    if isinstance(dist, CategoricalDistribution):
        return np.floor(u * len(dist.choices)).astype(np.float64)
    if isinstance(dist, IntDistribution):
        if dist.log:
            lo, hi = math.log(dist.low), math.log(dist.high + 1)
            return np.floor(np.exp(lo + u * (hi - lo))).clip(dist.low, dist.high)
        k = (dist.high - dist.low) // dist.step + 1
        return (dist.low + np.floor(u * k) * dist.step).astype(np.float64)
    assert isinstance(dist, FloatDistribution)
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high)
        return np.exp(lo + u * (hi - lo))
    if dist.step is not None:
        k = round((dist.high - dist.low) / dist.step) + 1
        return dist.low + np.floor(u * k) * dist.step
    return dist.low + u * (dist.high - dist.low)


def objectives(u: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(n, k) values to minimise from the params' unit draws ``u`` (n, >= 2): a trade-off."""
    n = len(u)
    noise = rng.normal(0.0, 0.01, size=(n, k))
    if k == 1:
        loss = 0.1 + (u[:, 0] - 0.3) ** 2 + 0.5 * ((u[:, 1:] - 0.5) ** 2).mean(axis=1)
        return (loss[:, None] * (1.0 + noise)).clip(min=1e-6)
    if k == 2:  # ZDT1: f1 = x1, f2 = g (1 - sqrt(f1 / g)), the front at g = 1
        f1 = u[:, 1]
        g = 1.0 + 9.0 * (u[:, [0] + list(range(2, u.shape[1]))] ** 2).mean(axis=1) / 4.0
        f2 = g * (1.0 - np.sqrt(f1 / g))
        return np.stack([f1, f2], axis=1) + noise
    # DTLZ2: points on a sphere of radius 1 + g, the front at g = 0
    theta = u[:, : k - 1] * (math.pi / 2)
    g = ((u[:, k - 1 :] - 0.5) ** 2).sum(axis=1) if u.shape[1] >= k else np.zeros(n)
    out = np.ones((n, k))
    for m in range(k):
        out[:, m] = (1.0 + g) * np.prod(np.cos(theta[:, : k - 1 - m]), axis=1)
        if m > 0:
            out[:, m] *= np.sin(theta[:, k - 1 - m])
    return out + noise


@dataclass
class Plan:
    """Every trial's numbers, drawn up front with numpy (cheap next to the inserts)."""

    state: np.ndarray  # TrialState values
    start: np.ndarray  # epoch seconds
    complete: np.ndarray  # NaN while running
    internal: np.ndarray  # (n, n_params) internal reprs
    values: np.ndarray  # (n, k); rows of non-COMPLETE trials unused
    steps: np.ndarray  # intermediate values per trial
    worker: np.ndarray  # 0..len(HOSTS) * GPUS_PER_HOST - 1


def plan(
    n: int, n_params: int, k: int, max_steps: int, running: int, seed: int, now: float
) -> Plan:
    rng = np.random.default_rng(seed)
    specs = param_specs(n_params)
    u = rng.random((n, max(n_params, k, 2)))
    internal = np.stack([to_internal(d, u[:, j]) for j, (_, d) in enumerate(specs)], axis=1)
    values = objectives(u, k, rng)

    running = min(running, n)
    ended = n - running
    state = np.full(n, TrialState.COMPLETE.value, dtype=np.int64)
    # the pruner stops the worse trials more often: P(pruned) rises with the summed ranks
    ranks = np.argsort(np.argsort(values[:ended], axis=0), axis=0).sum(axis=1)
    rank = np.argsort(np.argsort(ranks)) / max(ended - 1, 1)
    pruned = rng.random(ended) < 2 * P_PRUNED * rank
    failed = rng.random(ended) < P_FAIL
    state[:ended][pruned] = TrialState.PRUNED.value
    state[:ended][failed] = TrialState.FAIL.value
    state[ended:] = TrialState.RUNNING.value

    steps = np.full(n, max_steps, dtype=np.int64)
    if max_steps > 0:
        short = state != TrialState.COMPLETE.value
        partial = rng.integers(0, max_steps, size=n)  # 0..max-1
        steps[short] = partial[short]
        is_pruned = state == TrialState.PRUNED.value
        steps[is_pruned] = np.maximum(partial[is_pruned], 1)  # 1..max-1 (1 when max is 1)

    step_seconds = rng.lognormal(mean=0.5, sigma=0.4, size=n)  # about 1.8 s a step
    duration = 1.0 + np.maximum(steps, 1) * step_seconds
    gaps = rng.exponential(1.0, size=n) + 1e-3  # starts strictly increasing
    start = np.cumsum(gaps)
    complete = start + duration
    complete[ended:] = np.nan
    last = max(float(start[-1]) if n else 0.0, float(np.nanmax(complete)) if ended else 0.0)
    shift = now - 1.0 - last  # the newest event a second ago
    return Plan(
        state=state,
        start=start + shift,
        complete=complete + shift,
        internal=internal,
        values=values,
        steps=steps,
        worker=rng.integers(0, len(HOSTS) * GPUS_PER_HOST, size=n),
    )


def curve_points(
    target: np.ndarray, steps: np.ndarray, max_steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of trial, step, value) of every intermediate value: a decaying learning curve."""
    rows = np.repeat(np.arange(len(steps)), steps)
    first = np.cumsum(steps) - steps
    step = np.arange(len(rows)) - np.repeat(first, steps)
    tau = max(max_steps, 1) / 4.0
    amp = 1.0 + 0.5 * np.abs(target[rows])
    value = target[rows] + amp * np.exp(-step / tau) + rng.normal(0.0, 0.005, size=len(rows))
    return rows, step, value


def naive(seconds: float) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=round(seconds * 1e6))


def json_text(value: Any) -> str:
    return json.dumps(value)


# storage ---------------------------------------------------------------------------------------


def create_database(url: str) -> None:
    """Create the PostgreSQL database the URL names, if missing (``--create-db``)."""
    import psycopg
    from psycopg import sql

    target = sa.engine.make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as con:
        exists = con.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        ).fetchone()
        if not exists:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
            print(f"created database {target.database}")


def open_engine(url: str) -> sa.Engine:
    backend = sa.engine.make_url(url).get_backend_name()
    if backend != "sqlite":
        return sa.create_engine(url)
    path = sa.engine.make_url(url).database
    if not path or path == ":memory:":
        raise SystemExit("give a SQLite file, e.g. sqlite:////tmp/big.db")
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # stored in the file: set once, first
    finally:
        con.close()
    engine = sa.create_engine(url, connect_args={"timeout": 120})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_con: Any, _record: Any) -> None:
        cur = dbapi_con.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-262144")  # 256 MiB of page cache while loading
        cur.close()

    return engine


CHILD_TABLES = (
    models.TrialIntermediateValueModel,
    models.TrialValueModel,
    models.TrialParamModel,
    models.TrialUserAttributeModel,
    models.TrialSystemAttributeModel,
    models.TrialHeartbeatModel,
)


def delete_study(engine: sa.Engine, storage: optuna.storages.RDBStorage, name: str) -> None:
    """Remove a study and its trials with a few bulk deletes (Optuna's ORM cascade is slow)."""
    studies = models.StudyModel.__table__
    trials = models.TrialModel.__table__
    with engine.begin() as con:
        study_id = con.execute(
            sa.select(studies.c.study_id).where(studies.c.study_name == name)
        ).scalar()
        if study_id is None:
            return
        ids = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
        for model in CHILD_TABLES:
            table = model.__table__
            con.execute(table.delete().where(table.c.trial_id.in_(ids)))
        con.execute(trials.delete().where(trials.c.study_id == study_id))
    optuna.delete_study(study_name=name, storage=storage)
    print(f"deleted the old study {name!r}")


# rows -------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows for the trials ``lo..hi-1`` (positions in the plan)."""

    tables: dict[str, list[dict[str, Any]]]


def chunk_rows(
    p: Plan,
    lo: int,
    hi: int,
    *,
    first_trial_id: int,
    study_id: int,
    specs: Sequence[tuple[str, BaseDistribution]],
    max_steps: int,
    rng: np.random.Generator,
) -> Chunk:
    k = p.values.shape[1]
    states = [TrialState(s) for s in p.state[lo:hi].tolist()]
    trial_ids = [first_trial_id + i for i in range(lo, hi)]
    starts = p.start[lo:hi].tolist()
    completes = p.complete[lo:hi].tolist()
    trials = [
        {
            "trial_id": tid,
            "number": lo + i,
            "study_id": study_id,
            "state": state,
            "datetime_start": naive(starts[i]),
            "datetime_complete": None if math.isnan(completes[i]) else naive(completes[i]),
        }
        for i, (tid, state) in enumerate(zip(trial_ids, states, strict=True))
    ]

    finite = models.TrialValueModel.TrialValueType.FINITE
    values: list[dict[str, Any]] = []
    complete_rows = np.flatnonzero(p.state[lo:hi] == TrialState.COMPLETE.value)
    block = p.values[lo:hi].tolist()
    for r in complete_rows.tolist():
        for obj in range(k):
            values.append(
                {
                    "trial_id": trial_ids[r],
                    "objective": obj,
                    "value": block[r][obj],
                    "value_type": finite,
                }
            )

    params: list[dict[str, Any]] = []
    internal = p.internal[lo:hi].tolist()
    for j, (name, dist) in enumerate(specs):
        dist_json = distribution_to_json(dist)
        params.extend(
            {
                "trial_id": tid,
                "param_name": name,
                "param_value": row[j],
                "distribution_json": dist_json,
            }
            for tid, row in zip(trial_ids, internal, strict=True)
        )

    iv_type = models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE
    rows, step, value = curve_points(p.values[lo:hi, 0], p.steps[lo:hi], max_steps, rng)
    intermediate = [
        {
            "trial_id": trial_ids[r],
            "step": s,
            "intermediate_value": v,
            "intermediate_value_type": iv_type,
        }
        for r, s, v in zip(rows.tolist(), step.tolist(), value.tolist(), strict=True)
    ]
    if k == 1:  # Optuna's tell stores a pruned trial's last intermediate value as its value
        last: dict[int, float] = {}
        for r, v in zip(rows.tolist(), value.tolist(), strict=True):
            last[r] = v
        pruned_rows = np.flatnonzero(p.state[lo:hi] == TrialState.PRUNED.value).tolist()
        values.extend(
            {"trial_id": trial_ids[r], "objective": 0, "value": last[r], "value_type": finite}
            for r in pruned_rows
            if r in last
        )

    user_attrs: list[dict[str, Any]] = []
    system_attrs: list[dict[str, Any]] = []
    random_until = int(RANDOM_STARTUP * len(p.state))
    tpe = json_text({"name": "tpe", "kwargs": {}})
    rand = json_text({"name": "random", "kwargs": {"seed": 0}})
    host_json = [json_text(h) for h in HOSTS]
    gpu_json = [json_text(str(g)) for g in range(GPUS_PER_HOST)]
    for i, (tid, state, w) in enumerate(
        zip(trial_ids, states, p.worker[lo:hi].tolist(), strict=True)
    ):
        host, gpu = divmod(w, GPUS_PER_HOST)
        for key, value_json in (
            ("tui_hpo.host", host_json[host]),
            ("tui_hpo.gpu", gpu_json[gpu]),
            ("tui_hpo.sampler", rand if lo + i < random_until else tpe),
            ("tui_hpo.pid", json_text(20000 + 97 * w)),
            ("tui_hpo.worker", json_text(w + 1)),
        ):
            user_attrs.append({"trial_id": tid, "key": key, "value_json": value_json})
        if state == TrialState.FAIL:
            reason = json_text("RuntimeError: CUDA out of memory (synthetic)")
            user_attrs.append({"trial_id": tid, "key": "tui_hpo.fail_reason", "value_json": reason})
            system_attrs.append({"trial_id": tid, "key": "fail_reason", "value_json": reason})

    return Chunk(
        {
            "trials": trials,
            "trial_values": values,
            "trial_params": params,
            "trial_intermediate_values": intermediate,
            "trial_user_attributes": user_attrs,
            "trial_system_attributes": system_attrs,
        }
    )


TABLES: dict[str, sa.Table] = {
    "trials": models.TrialModel.__table__,
    "trial_values": models.TrialValueModel.__table__,
    "trial_params": models.TrialParamModel.__table__,
    "trial_intermediate_values": models.TrialIntermediateValueModel.__table__,
    "trial_user_attributes": models.TrialUserAttributeModel.__table__,
    "trial_system_attributes": models.TrialSystemAttributeModel.__table__,
}


def batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def copy_rows(con: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY through psycopg, in the connection's transaction (several times
    faster than executemany there). Enum columns go as their names, as SQLAlchemy stores them."""
    if not rows:
        return
    columns = list(rows[0])
    enums = {c for c in columns if isinstance(rows[0][c], enum.Enum)}
    getters = [(lambda r, c=c: r[c].name) if c in enums else (lambda r, c=c: r[c]) for c in columns]
    cursor = con.connection.driver_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(columns)
    with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([get(row) for get in getters])


# main -------------------------------------------------------------------------------------------


def generate(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict[str, int]:
    """Create the study and insert its trials; the row count of each table written."""
    url: str = args.storage
    backend = sa.engine.make_url(url).get_backend_name()
    if backend == "postgresql" and args.create_db:
        create_database(url)
    engine = open_engine(url)
    use_copy = args.method == "copy" or (args.method == "auto" and backend == "postgresql")
    if use_copy and backend != "postgresql":
        raise SystemExit("--method copy is for PostgreSQL only")
    started = time.perf_counter()
    storage = optuna.storages.RDBStorage(url, skip_table_creation=False)
    if args.replace:
        delete_study(engine, storage, args.study)
    directions = ["minimize"] * args.objectives
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=args.study, directions=directions)
    study_id = study._study_id
    storage.engine.dispose()  # the bulk load uses its own engine from here on
    made = time.perf_counter()

    now = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - EPOCH).total_seconds()
    p = plan(
        args.trials, args.params, args.objectives, args.max_steps, args.running, args.seed, now
    )
    specs = param_specs(args.params)
    rng = np.random.default_rng(args.seed + 1)
    counts = dict.fromkeys(TABLES, 0)
    trials = TABLES["trials"]
    build_s = insert_s = 0.0
    with engine.begin() as con:
        first_trial_id = (con.execute(sa.select(sa.func.max(trials.c.trial_id))).scalar() or 0) + 1
    for lo in range(0, args.trials, args.chunk):
        hi = min(lo + args.chunk, args.trials)
        t0 = time.perf_counter()
        chunk = chunk_rows(
            p,
            lo,
            hi,
            first_trial_id=first_trial_id,
            study_id=study_id,
            specs=specs,
            max_steps=args.max_steps,
            rng=rng,
        )
        t1 = time.perf_counter()
        with engine.begin() as con:
            for name, rows in chunk.tables.items():  # trials first: the others reference them
                if use_copy:
                    copy_rows(con, TABLES[name], rows)
                else:
                    for batch in batches(rows, args.batch):
                        con.execute(TABLES[name].insert(), batch)
                counts[name] += len(rows)
        t2 = time.perf_counter()
        build_s += t1 - t0
        insert_s += t2 - t1
        say(f"  {hi:>8,} / {args.trials:,} trials  ({t2 - started:6.1f} s)")
    if backend == "postgresql" and args.trials:  # ids were given, so move the sequence past them
        with engine.begin() as con:
            con.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                "(SELECT max(trial_id) FROM trials))"
            )
    with engine.begin() as con:  # planner statistics, as autovacuum would gather eventually
        con.exec_driver_sql("ANALYZE")
    total = time.perf_counter() - started
    engine.dispose()
    say(
        f"study {args.study!r} (id {study_id}): {args.trials:,} trials in {total:.1f} s "
        f"(create {made - started:.1f} s, build rows {build_s:.1f} s, insert {insert_s:.1f} s)"
    )
    for name, n in counts.items():
        say(f"  {name:<28} {n:>10,} rows")
    say(f"  {'total':<28} {sum(counts.values()):>10,} rows")
    return counts


def verify(url: str, name: str, say: Callable[[str], None] = print) -> None:
    """Load the study back through Optuna and show that it looks right (small studies only)."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    started = time.perf_counter()
    counts = {
        s.name: len(study.get_trials(deepcopy=False, states=(s,)))
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }
    say(f"optuna: {counts} ({time.perf_counter() - started:.1f} s)")
    for t in study.trials[:5]:
        say(
            f"  #{t.number} {t.state.name} values={t.values} params={t.params} "
            f"steps={len(t.intermediate_values)} start={t.datetime_start} "
            f"attrs={sorted(t.user_attrs)}"
        )
    if len(study.directions) > 1:
        say(f"  pareto front: {len(study.best_trials)} trials")
    else:
        say(f"  best: #{study.best_trial.number} value={study.best_value:.4g}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="sqlite:///PATH or postgresql+psycopg://")
    parser.add_argument("--study", default="big")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--params", type=int, default=3)
    parser.add_argument("--objectives", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=20, help="intermediate values a trial")
    parser.add_argument("--running", type=int, default=8, help="RUNNING trials at the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=10_000, help="trials per transaction")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per executemany")
    parser.add_argument(
        "--method",
        choices=("auto", "core", "copy"),
        default="auto",
        help="core: SQLAlchemy Core executemany; copy: PostgreSQL COPY; auto: copy on PostgreSQL",
    )
    parser.add_argument("--create-db", action="store_true", help="create the PostgreSQL database")
    parser.add_argument("--replace", action="store_true", help="delete a study of that name first")
    parser.add_argument(
        "--verify", action="store_true", help="load it back through Optuna (up to 20,000 trials)"
    )
    args = parser.parse_args(argv)
    if args.trials < 0 or args.params < 1 or args.objectives < 1 or args.max_steps < 0:
        parser.error("need --trials >= 0, --params >= 1, --objectives >= 1, --max-steps >= 0")
    if args.verify and args.trials > 20_000:
        parser.error("--verify reads every trial through Optuna: minutes above 20,000 trials")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    generate(args)
    if args.verify:
        verify(args.storage, args.study)
    return 0


if __name__ == "__main__":
    sys.exit(main())
