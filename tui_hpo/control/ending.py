"""Ending trials from outside the process that runs them.

Used when a worker died (its trial would otherwise stay RUNNING until the heartbeat grace
period ends) and by the control plane's fail-trial. A trial that has already finished is never
touched, so a worker that ends its trial at the same moment wins cleanly.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tui_hpo.control import budget
from tui_hpo.control.provenance import running_trials_of_worker
from tui_hpo.storage import attrs

if TYPE_CHECKING:
    import optuna


def fail_trial(engine: sa.Engine, trial_id: int, reason: str) -> bool:
    """FAIL a running (or waiting) trial with the reason; False when it had already finished.

    The state and the reason change in one transaction, so no reader ever sees the trial FAIL
    without its reason (a test caught a supervisor's FAIL read between the two). The update
    only matches an unfinished trial: a worker that ends the trial at the same moment either
    wins cleanly (nothing matches here) or finds it finished (Optuna refuses to tell it). The
    reason goes straight into Optuna's attribute tables, as Optuna allows no attribute on a
    finished trial; the values are what ``set_trial_state_values`` would write.
    """
    import datetime as dt

    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    trials = models.TrialModel.__table__
    value = json.dumps(reason)
    with engine.begin() as con:
        ended = con.execute(
            trials.update()
            .where(
                trials.c.trial_id == trial_id,
                trials.c.state.in_([TrialState.RUNNING, TrialState.WAITING]),
            )
            .values(state=TrialState.FAIL, datetime_complete=dt.datetime.now())
        ).rowcount
        if not ended:
            return False
        for table, key in (
            (models.TrialSystemAttributeModel.__table__, attrs.OPTUNA_FAIL_REASON),
            (models.TrialUserAttributeModel.__table__, attrs.FAIL_REASON),
        ):
            con.execute(table.delete().where(table.c.trial_id == trial_id, table.c.key == key))
            con.execute(table.insert().values(trial_id=trial_id, key=key, value_json=value))
    return True


def requeue(
    study: optuna.Study, engine: sa.Engine, trial: optuna.trial.FrozenTrial, max_retry: int
) -> bool:
    """Queue a trial that lost its worker again (Optuna's RetryHeartbeatStaleTrialCallback),
    widening the budget by one: ``--n-trials`` counts trials that end, and the lost run is one
    of them. False when the trial has used up its retries."""
    import optuna

    if len(trial.system_attrs.get("retry_history", [])) >= max_retry:
        return False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
    budget.add_to_budget(engine, study._study_id, 1)
    return True


def run_again(study: optuna.Study, engine: sa.Engine, trial: optuna.trial.FrozenTrial) -> None:
    """Queue the params of a run that was cut short (preempted, cancelled) for another worker,
    linked to it by ``tui_hpo.retry_of``, and widen the budget by one: the cut run counts as an
    ended trial, and the budget is of trials that ran to their end."""
    import optuna

    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={attrs.RETRY_OF: trial.number},
        )
    )
    budget.add_to_budget(engine, study._study_id, 1)  # after the queue: see add_to_budget


def fail_running_of_worker(
    study: optuna.Study, engine: sa.Engine, worker_id: int, reason: str, *, retry: int | None = None
) -> int:
    """FAIL what a dead worker left RUNNING (and queue it again when ``retry`` allows),
    instead of waiting for the heartbeat grace period; returns how many trials were failed."""
    failed = 0
    for trial_id in running_trials_of_worker(engine, study._study_id, worker_id):
        if fail_trial(engine, trial_id, reason):
            failed += 1
            if retry:
                requeue(study, engine, study._storage.get_trial(trial_id), retry)
    return failed
