"""Ending trials from outside the process that runs them.

Used when a worker died (its trial would otherwise stay RUNNING until the heartbeat grace
period ends) and by the control plane's fail-trial. The state change goes through Optuna's
storage API, which refuses to touch a trial that has already finished, so a worker that ends
its trial at the same moment wins cleanly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tui_hpo import attrs, registry, tables
from tui_hpo.errors import UserError
from tui_hpo.samplers import Spec

if TYPE_CHECKING:
    import optuna


def provenance(worker_id: int, gpu: str | None, sampler: Spec, pruner: Spec) -> dict[str, Any]:
    """The attrs that say where and how a trial ran (names in ``attrs``)."""
    return {
        attrs.HOST: socket.gethostname(),
        attrs.PID: os.getpid(),
        attrs.WORKER: worker_id,
        attrs.GPU: gpu,
        attrs.SAMPLER: {"name": sampler.name, "kwargs": sampler.kwargs},
        attrs.PRUNER: {"name": pruner.name, "kwargs": pruner.kwargs},
    }


def record_start(
    engine: sa.Engine,
    trial_id: int,
    values: dict[str, Any],
    *,
    heartbeat: bool,
    worker: tuple[int, int] | None = None,
) -> None:
    """Provenance attrs (and the first heartbeat, and the worker row's "running trial N"),
    in one transaction.

    Written straight into Optuna's tables, the same rows ``set_trial_user_attr`` writes, because
    seven separate writes per trial would cost more than a fast trial itself.
    """
    from optuna.storages._rdb import models

    ua = models.TrialUserAttributeModel.__table__
    sys_attrs = models.TrialSystemAttributeModel.__table__
    with engine.begin() as con:
        # a trial queued again by --retry-failed carries the lost run's attrs: start clean
        con.execute(ua.delete().where(ua.c.trial_id == trial_id, ua.c.key.startswith(attrs.PREFIX)))
        con.execute(
            sys_attrs.delete().where(
                sys_attrs.c.trial_id == trial_id, sys_attrs.c.key == attrs.OPTUNA_FAIL_REASON
            )
        )
        con.execute(
            ua.insert(),
            [
                {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                for k, v in values.items()
            ],
        )
        if heartbeat:
            hb = models.TrialHeartbeatModel.__table__
            con.execute(hb.insert().values(trial_id=trial_id, heartbeat=sa.func.now()))
        if worker is not None:
            worker_id, done = worker
            w = tables.workers
            con.execute(
                w.update()
                .where(w.c.worker_id == worker_id)
                .values(
                    state="running",
                    trial_number=sa.select(models.TrialModel.__table__.c.number)
                    .where(models.TrialModel.__table__.c.trial_id == trial_id)
                    .scalar_subquery(),
                    trials_done=done,
                    heartbeat_at=sa.func.now(),
                )
            )


def running_trials_of_worker(engine: sa.Engine, study_id: int, worker_id: int) -> list[int]:
    """Trial ids of RUNNING trials that the worker started (its ``tui_hpo.worker`` attr)."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    t = models.TrialModel.__table__
    ua = models.TrialUserAttributeModel.__table__
    query = (
        sa.select(t.c.trial_id)
        .join(ua, sa.and_(ua.c.trial_id == t.c.trial_id, ua.c.key == attrs.WORKER))
        .where(
            t.c.study_id == study_id,
            t.c.state == TrialState.RUNNING,
            ua.c.value_json == json.dumps(worker_id),
        )
    )
    with engine.connect() as con:
        return [row[0] for row in con.execute(query)]


def fail_trial(study: optuna.Study, engine: sa.Engine, trial_id: int, reason: str) -> bool:
    """FAIL a running trial with the reason; False when it had already finished.

    The state changes first, through Optuna (which refuses a finished trial, so a worker that
    ends the trial at the same moment wins cleanly); the reason is written after, straight into
    Optuna's attribute tables, because Optuna allows no attribute on a finished trial.
    """
    import optuna
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    try:
        if not study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    value = json.dumps(reason)
    with engine.begin() as con:
        for table, key in (
            (models.TrialSystemAttributeModel.__table__, attrs.OPTUNA_FAIL_REASON),
            (models.TrialUserAttributeModel.__table__, attrs.FAIL_REASON),
        ):
            con.execute(table.insert().values(trial_id=trial_id, key=key, value_json=value))
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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
    budget.add_to_budget(engine, study._study_id, 1)
    return True


def fail_running_of_worker(
    study: optuna.Study, engine: sa.Engine, worker_id: int, reason: str, *, retry: int | None = None
) -> int:
    """FAIL what a dead worker left RUNNING (and queue it again when ``retry`` allows),
    instead of waiting for the heartbeat grace period; returns how many trials were failed."""
    failed = 0
    for trial_id in running_trials_of_worker(engine, study._study_id, worker_id):
        if fail_trial(study, engine, trial_id, reason):
            failed += 1
            if retry:
                requeue(study, engine, study._storage.get_trial(trial_id), retry)
    return failed


# orders for one running trial ----------------------------------------------------------------


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial and the worker that runs it (None for a plain Optuna process)."""

    trial_id: int
    number: int
    worker: registry.WorkerRow | None
    host: str | None
    pid: int | None


def running_trial(engine: sa.Engine, study_id: int, number: int) -> RunningTrial:
    """Trial ``number`` of the study, which must be RUNNING, with its worker."""
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    ua = models.TrialUserAttributeModel.__table__
    with engine.connect() as con:
        row = con.execute(
            sa.select(t.c.trial_id, t.c.state).where(t.c.study_id == study_id, t.c.number == number)
        ).first()
        if row is None:
            raise UserError(f"trial {number} does not exist in this study")
        trial_id, state = row
        if state.name != "RUNNING":
            raise UserError(f"trial {number} is not running (it is {state.name})")
        found = dict(
            con.execute(
                sa.select(ua.c.key, ua.c.value_json).where(
                    ua.c.trial_id == trial_id,
                    ua.c.key.in_([attrs.WORKER, attrs.HOST, attrs.PID]),
                )
            ).all()
        )
        values = {k: json.loads(v) for k, v in found.items()}
        worker = None
        if attrs.WORKER in values:
            rows = [w for w in registry.list_workers(con, study_id)
                    if w.worker_id == values[attrs.WORKER]]  # fmt: skip
            worker = rows[0] if rows else None
    return RunningTrial(trial_id, number, worker, values.get(attrs.HOST), values.get(attrs.PID))


def _add_order(
    engine: sa.Engine, study_id: int, trial: RunningTrial, action: str, **values: object
) -> int:
    with engine.begin() as con:
        result = con.execute(
            tables.requests.insert().values(
                study_id=study_id,
                trial_id=trial.trial_id,
                trial_number=trial.number,
                worker_id=trial.worker.worker_id if trial.worker else None,
                action=action,
                issued_by=f"{socket.gethostname()}:{os.getpid()}",
                **values,
            )
        )
        return int(result.inserted_primary_key[0])


def order_prune(engine: sa.Engine, study_id: int, number: int) -> RunningTrial:
    """Trial ``number`` ends PRUNED at its next ``should_prune``, wherever it runs."""
    trial = running_trial(engine, study_id, number)
    _add_order(engine, study_id, trial, "prune")
    return trial


def take_prune_order(engine: sa.Engine, trial_id: int) -> bool:
    """Whether someone asked to prune this trial; the order is marked done when taken.

    A read first (cheap, indexed) and a write only when an order is there, since this runs at
    every ``should_prune`` of every trial.
    """
    r = tables.requests
    pending = (r.c.trial_id == trial_id, r.c.action == "prune", r.c.handled_at.is_(None))
    with engine.connect() as con:
        if con.execute(sa.select(r.c.request_id).where(*pending).limit(1)).first() is None:
            return False
    with engine.begin() as con:
        con.execute(r.update().where(*pending).values(handled_at=sa.func.now(), outcome="pruned"))
    return True


def pending_fail_orders(engine: sa.Engine, worker_id: int) -> list[tuple[int, int, int]]:
    """(request id, trial id, trial number) of fail orders for the worker's trials."""
    r = tables.requests
    with engine.connect() as con:
        return [
            (a, b, c)
            for a, b, c in con.execute(
                sa.select(r.c.request_id, r.c.trial_id, r.c.trial_number).where(
                    r.c.worker_id == worker_id, r.c.action == "fail", r.c.handled_at.is_(None)
                )
            )
        ]


def mark_order_done(engine: sa.Engine, request_id: int, outcome: str) -> None:
    r = tables.requests
    with engine.begin() as con:
        con.execute(
            r.update()
            .where(r.c.request_id == request_id)
            .values(handled_at=sa.func.now(), outcome=outcome)
        )


def order_state(engine: sa.Engine, request_id: int) -> tuple[bool, str | None]:
    r = tables.requests
    with engine.connect() as con:
        handled, outcome = con.execute(
            sa.select(r.c.handled_at, r.c.outcome).where(r.c.request_id == request_id)
        ).one()
    return handled is not None, outcome


def is_worker_process(worker: registry.WorkerRow) -> bool:
    """Whether the worker's pid on this machine is still that worker's process, not a later
    process that got the same pid: a supervised one carries its supervisor's pid in its
    environment, any other must have started before its row was written."""
    from tui_hpo.worker_config import SUPERVISOR_ENV

    try:
        with open(f"/proc/{worker.pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        return False
    if worker.supervisor_pid is not None:
        return f"{SUPERVISOR_ENV}={worker.supervisor_pid}".encode() in environ
    try:
        import psutil

        started = psutil.Process(worker.pid).create_time()
    except Exception:
        return False
    registered = worker.started_at.replace(tzinfo=dt.timezone.utc).timestamp()
    return started <= registered + 5


def kill_local(worker: registry.WorkerRow) -> bool:
    """SIGKILL a worker's process on this machine, if it is still that process; a SIGKILL
    because the point is a worker that no longer answers (hung in a C call or a sleep)."""
    if not is_worker_process(worker):
        return False
    try:
        os.kill(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


FAIL_ORDER_WAIT_S = 10.0


def order_fail(
    study: optuna.Study, engine: sa.Engine, number: int, *, wait: float = FAIL_ORDER_WAIT_S
) -> str:
    """End trial ``number`` FAIL now; returns what was done, in words.

    On this machine the caller kills the worker process itself and marks the trial; the
    worker's supervisor (or the launcher) sees it die and starts a replacement. On another
    machine the order waits in the storage for the supervisor there, which does the same.
    """
    trial = running_trial(engine, study._study_id, number)
    here = socket.gethostname()
    reason = f"failed on request from {here} (fail-trial)"
    host = trial.worker.host if trial.worker else trial.host
    pid = trial.worker.pid if trial.worker else trial.pid
    if host == here or host is None:
        # FAIL first: the supervisor that sees its worker die then finds the trial ended
        fail_trial(study, engine, trial.trial_id, reason)
        killed = (
            trial.worker is not None and trial.worker.pid != os.getpid()
            and kill_local(trial.worker)
        )  # fmt: skip
        _add_order(engine, study._study_id, trial, "fail", handled_at=sa.func.now(),
                   outcome="killed locally" if killed else "marked FAIL")  # fmt: skip
        if killed:
            return f"trial {number} FAIL; its worker (pid {pid}) was killed"
        return f"trial {number} FAIL; no local process was running it"
    request_id = _add_order(engine, study._study_id, trial, "fail")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        done, outcome = order_state(engine, request_id)
        if done:
            return f"trial {number} FAIL; on {host}: {outcome}"
        time.sleep(0.2)
    return (
        f"trial {number}: fail order sent to {host}; its supervisor has not taken it yet "
        "(it will when it next polls)"
    )


# queueing trials -----------------------------------------------------------------------------


def known_distributions(engine: sa.Engine, study_id: int) -> dict[str, Any]:
    """The distribution of each param the study has seen (the latest one wins)."""
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    p = models.TrialParamModel.__table__
    latest = (
        sa.select(p.c.param_name, sa.func.max(p.c.param_id).label("pid"))
        .join(t, t.c.trial_id == p.c.trial_id)
        .where(t.c.study_id == study_id)
        .group_by(p.c.param_name)
        .subquery()
    )
    with engine.connect() as con:
        rows = con.execute(
            sa.select(p.c.param_name, p.c.distribution_json).join(
                latest, latest.c.pid == p.c.param_id
            )
        ).all()
    return {name: json_to_distribution(text) for name, text in rows}


def check_params(params: dict[str, Any], distributions: dict[str, Any]) -> None:
    """Each param must be one the study knows, with a value its distribution holds."""
    if not distributions:
        return  # nothing known yet: the objective's suggest calls will judge them
    unknown = sorted(set(params) - set(distributions))
    if unknown:
        raise UserError(
            f"unknown param(s) {', '.join(map(repr, unknown))}: the study knows "
            f"{', '.join(sorted(distributions))}"
        )
    for name, value in params.items():
        dist = distributions[name]
        try:
            ok = dist._contains(dist.to_internal_repr(value))
        except (TypeError, ValueError, KeyError):
            ok = False
        if not ok:
            raise UserError(f"param {name!r}={value!r} is outside its distribution {dist}")


def enqueue(study: optuna.Study, engine: sa.Engine, params: dict[str, Any]) -> None:
    """Queue a trial with these params; it runs next, on top of the trial budget."""
    from tui_hpo import budget

    check_params(params, known_distributions(engine, study._study_id))
    study.enqueue_trial(params, skip_if_exists=False)
    budget.add_to_budget(engine, study._study_id, 1)
