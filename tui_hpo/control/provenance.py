"""Where and how a trial ran: the provenance attrs a worker writes as it starts one, and the
lookup of the trials a worker left RUNNING (by its ``tui_hpo.worker`` attr)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import sqlalchemy as sa

from tui_hpo.control.specs import Spec
from tui_hpo.storage import attrs, tables


def attrs_for(worker_id: int, gpu: str | None, sampler: Spec, pruner: Spec) -> dict[str, Any]:
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
        # a trial queued again by --retry-failed carries the lost run's attrs: start clean,
        # but for the link to that run and the tags someone gave the trial while it waited
        con.execute(
            ua.delete().where(
                ua.c.trial_id == trial_id,
                ua.c.key.startswith(attrs.PREFIX),
                ua.c.key.notin_((attrs.RETRY_OF, attrs.TAGS)),
            )
        )
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
