"""Ending trials from outside the process that runs them.

Used when a worker died (its trial would otherwise stay RUNNING until the heartbeat grace
period ends) and by the control plane's fail-trial. The state change goes through Optuna's
storage API, which refuses to touch a trial that has already finished, so a worker that ends
its trial at the same moment wins cleanly.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tui_hpo import attrs

if TYPE_CHECKING:
    import optuna


def running_trials_of_worker(
    engine: sa.Engine, study_id: int, pid: int, host: str | None = None
) -> list[int]:
    """Trial ids of RUNNING trials that the worker (host, pid) started."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    t = models.TrialModel.__table__
    ua = models.TrialUserAttributeModel.__table__
    host_attr = ua.alias("host_attr")
    query = (
        sa.select(t.c.trial_id)
        .join(ua, sa.and_(ua.c.trial_id == t.c.trial_id, ua.c.key == attrs.PID))
        .join(
            host_attr,
            sa.and_(host_attr.c.trial_id == t.c.trial_id, host_attr.c.key == attrs.HOST),
        )
        .where(
            t.c.study_id == study_id,
            t.c.state == TrialState.RUNNING,
            ua.c.value_json == json.dumps(pid),
            host_attr.c.value_json == json.dumps(host or socket.gethostname()),
        )
    )
    with engine.connect() as con:
        return [row[0] for row in con.execute(query)]


def fail_trial(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    """FAIL a running trial with the reason; False when it had already finished."""
    import optuna
    from optuna.trial import TrialState

    try:
        if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    storage.set_trial_system_attr(trial_id, attrs.OPTUNA_FAIL_REASON, reason)
    storage.set_trial_user_attr(trial_id, attrs.FAIL_REASON, reason)
    return True


def requeue(
    study: optuna.Study, engine: sa.Engine, trial: optuna.trial.FrozenTrial, max_retry: int
) -> bool:
    """Queue a trial that lost its worker again (Optuna's RetryHeartbeatStaleTrialCallback),
    widening the budget by one: ``--n-trials`` counts trials that end, and the lost run is one
    of them. False when the trial has used up its retries."""
    import optuna

    from tui_hpo import budget

    if len(trial.system_attrs.get("retry_history", [])) >= max_retry:
        return False
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
    budget.add_to_budget(engine, study._study_id, 1)
    return True


def fail_running_of_worker(
    study: optuna.Study, engine: sa.Engine, pid: int, reason: str, *, retry: int | None = None
) -> int:
    """FAIL what a dead worker on this machine left RUNNING (and queue it again when
    ``retry`` allows); returns how many trials were failed."""
    failed = 0
    for trial_id in running_trials_of_worker(engine, study._study_id, pid):
        if fail_trial(study._storage, trial_id, reason):
            failed += 1
            if retry:
                requeue(study, engine, study._storage.get_trial(trial_id), retry)
    return failed
