"""Exactly N trials across all workers: counting and taking a trial under one lock per study.

Optuna's own ``MaxTrialsCallback`` counts trials after the fact, so W workers can overshoot by
up to W-1. Here the count and the creation of the next trial happen under a lock that every
process of the study honours, whatever machine it runs on. Only the creation of the trial row
happens under the lock; the sampler runs outside it.

- A database server (PostgreSQL, MySQL): one transaction that locks the study's row in Optuna's
  ``studies`` table (``SELECT ... FOR UPDATE``, the lock Optuna's own ``create_new_trial``
  takes), reads the orders, counts, and creates or pops the trial on the same connection. The
  lock ends with the transaction, so it works through pgbouncer's transaction pooling, and a
  worker needs one connection for it (``storage.pool``).
- SQLite (one machine by nature): ``flock`` on a side file (``storage.locks``), with Optuna's
  own calls inside.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tui_hpo.control.orders import Orders, count_trials, read_orders, trial_slots
from tui_hpo.storage import tables
from tui_hpo.storage.locks import study_lock

if TYPE_CHECKING:
    import optuna


def take_trial(
    study: optuna.Study, engine: sa.Engine, worker_id: int | None = None
) -> tuple[int | None, Orders]:
    """The id of the next trial to run (a queued one first) and the orders it was taken under;
    no trial when the budget is spent or the orders say pause, stop or out of time.

    The orders are read under the lock, so a pause that committed before a worker got the lock
    is always seen. Mirrors ``Study.ask`` up to the point where the sampler runs, so that only
    the row's creation is serialised: the caller builds ``optuna.Trial(study, trial_id)``.
    """
    study._thread_local.cached_all_trials = None
    if engine.dialect.name == "sqlite":
        return _take_under_flock(study, engine, worker_id)
    taken, orders = _take_in_one_transaction(study._study_id, engine, worker_id)
    if taken is None:
        return None, orders
    trial_id, number, started = taken
    _tell_cache(study, trial_id, number, started)
    return trial_id, orders


def _take_under_flock(
    study: optuna.Study, engine: sa.Engine, worker_id: int | None
) -> tuple[int | None, Orders]:
    study_id = study._study_id
    with study_lock(engine, study_id):
        with engine.connect() as con:
            orders = read_orders(con, study_id, worker_id)
            if orders.paused or orders.must_leave:
                return None, orders
            taken, waiting = trial_slots(con, study_id)
            if orders.trial_budget is not None and taken >= orders.trial_budget:
                return None, orders
        # Optuna's queue pop reads every waiting trial; most of the time there is none
        trial_id = study._pop_waiting_trial_id() if waiting else None
        if trial_id is None:
            trial_id = study._storage.create_new_trial(study_id)
        return trial_id, orders


def _take_in_one_transaction(
    study_id: int, engine: sa.Engine, worker_id: int | None
) -> tuple[tuple[int, int, dt.datetime] | None, Orders]:
    """(trial id, number, start) of the trial taken, or None; and the orders."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    with engine.begin() as con:
        _lock_study_row(con, study_id)
        orders = read_orders(con, study_id, worker_id)
        if orders.paused or orders.must_leave:
            return None, orders
        taken, waiting = trial_slots(con, study_id)
        if orders.trial_budget is not None and taken >= orders.trial_budget:
            return None, orders
        now = dt.datetime.now()  # what Optuna stamps: this machine's naive local time
        if waiting:  # the oldest queued trial, as Optuna's queue pop takes it
            trial_id, number = con.execute(
                sa.select(trials.c.trial_id, trials.c.number)
                .where(trials.c.study_id == study_id, trials.c.state == TrialState.WAITING)
                .order_by(trials.c.trial_id)
                .limit(1)
            ).one()
            con.execute(
                trials.update()
                .where(trials.c.trial_id == trial_id)
                .values(state=TrialState.RUNNING, datetime_start=now)
            )
            return (trial_id, number, now), orders
        # what Optuna's create_new_trial writes; its number is the count of the study's trials
        # before it, which is all of them: none can be added while the study's row is locked
        number = taken + waiting
        (trial_id,) = con.execute(
            trials.insert().values(
                study_id=study_id, number=number, state=TrialState.RUNNING, datetime_start=now
            )
        ).inserted_primary_key
        return (trial_id, number, now), orders


def _tell_cache(study: optuna.Study, trial_id: int, number: int, started: dt.datetime) -> None:
    """Enter the trial in Optuna's per-process trial cache, as its own ``create_new_trial``
    does: ``Trial`` calls such as ``suggest_*`` look the trial up there. Only the number and id
    matter; an unfinished trial's fields are always read from the database."""
    from optuna.trial import FrozenTrial, TrialState

    storage = study._storage
    if not hasattr(storage, "_add_trials_to_cache"):  # no cache in front of this storage
        return
    from optuna.storages._cached_storage import _StudyInfo

    stub = FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=started,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=trial_id,
    )
    with storage._lock:
        if study._study_id not in storage._studies:
            storage._studies[study._study_id] = _StudyInfo()
        storage._add_trials_to_cache(study._study_id, [stub])


def _lock_study_row(con: sa.Connection, study_id: int) -> None:
    """The lock Optuna's own ``create_new_trial`` takes, held until the transaction ends."""
    o = tables.optuna_studies
    con.execute(sa.select(o.c.study_id).where(o.c.study_id == study_id).with_for_update())


def budget_left(engine: sa.Engine, study_id: int) -> int | None:
    """Trials the study may still start; None when its budget is open."""
    with engine.connect() as con:
        orders = read_orders(con, study_id)
        if orders.trial_budget is None:
            return None
        return max(0, orders.trial_budget - count_trials(con, study_id))


def add_to_budget(engine: sa.Engine, study_id: int, extra: int) -> None:
    """Widen the budget, e.g. by one for a trial queued again after it was cut short.

    Under the lock ``take_trial`` takes, so that a worker counting the budget sees it widened
    only together with the trial queued for it (callers queue first, then widen)."""
    st = tables.studies
    widen = (
        st.update()
        .where(st.c.study_id == study_id, st.c.trial_budget.is_not(None))
        .values(trial_budget=st.c.trial_budget + extra)
    )
    if engine.dialect.name == "sqlite":
        with study_lock(engine, study_id), engine.begin() as con:
            con.execute(widen)
        return
    with engine.begin() as con:
        _lock_study_row(con, study_id)
        con.execute(widen)
