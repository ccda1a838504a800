"""Exactly N trials across all workers: counting and taking a trial under one lock per study.

Optuna's own ``MaxTrialsCallback`` counts trials after the fact, so W workers can overshoot by
up to W-1. Here the count and the creation of the next trial happen under a lock that every
process of the study honours, whatever machine it runs on (``storage.locks``).
Only the creation of the trial row happens under the lock; the sampler runs outside it.
"""

from __future__ import annotations

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
    study_id = study._study_id
    with study_lock(engine, study_id):
        with engine.connect() as con:
            orders = read_orders(con, study_id, worker_id)
            if orders.paused or orders.must_leave:
                return None, orders
            taken, waiting = trial_slots(con, study_id)
            if orders.trial_budget is not None and taken >= orders.trial_budget:
                return None, orders
        study._thread_local.cached_all_trials = None
        # Optuna's queue pop reads every waiting trial; most of the time there is none
        trial_id = study._pop_waiting_trial_id() if waiting else None
        if trial_id is None:
            trial_id = study._storage.create_new_trial(study_id)
        return trial_id, orders


def budget_left(engine: sa.Engine, study_id: int) -> int | None:
    """Trials the study may still start; None when its budget is open."""
    with engine.connect() as con:
        orders = read_orders(con, study_id)
        if orders.trial_budget is None:
            return None
        return max(0, orders.trial_budget - count_trials(con, study_id))


def add_to_budget(engine: sa.Engine, study_id: int, extra: int) -> None:
    """Widen the budget, e.g. by one for a trial re-queued by ``--retry-failed``."""
    with study_lock(engine, study_id), engine.begin() as con:
        st = tables.studies
        con.execute(
            st.update()
            .where(st.c.study_id == study_id, st.c.trial_budget.is_not(None))
            .values(trial_budget=st.c.trial_budget + extra)
        )
