"""Orders for one running trial, from any machine: prune it at its next report, or fail it now.

Both travel as rows of ``tui_hpo_requests``. A prune order is taken by the trial itself at its
next ``should_prune``. A fail order for a trial on this machine is carried out by the caller
(it kills the worker process and marks the trial); one for a trial elsewhere waits for the
supervisor on that host, which does the same. Killing is SIGKILL because the point of
fail-trial is a trial that no longer answers (hung in a C call or a sleep).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.control.ending import fail_trial
from tui_hpo.control.local_workers import kill_local
from tui_hpo.errors import UserError
from tui_hpo.storage import attrs, tables

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class RunningTrial:
    """A RUNNING trial and the worker that runs it (None for a plain Optuna process)."""

    trial_id: int
    number: int
    worker: registry.WorkerRow | None
    host: str | None
    pid: int | None


def not_running(number: int, state: str) -> str:
    """Why trial ``number`` can't be pruned or failed: the words every front end uses."""
    return f"trial {number} is not running (it is {state})"


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
            raise UserError(not_running(number, state.name))
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
            rows = [
                w
                for w in registry.list_workers(con, study_id)
                if w.worker_id == values[attrs.WORKER]
            ]
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
        fail_trial(engine, trial.trial_id, reason)
        killed = (
            trial.worker is not None
            and trial.worker.pid != os.getpid()
            and kill_local(trial.worker)
        )
        _add_order(
            engine,
            study._study_id,
            trial,
            "fail",
            handled_at=sa.func.now(),
            outcome="killed locally" if killed else "marked FAIL",
        )
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
