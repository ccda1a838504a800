"""Worker rows: who works on a study, where, doing what, and when it last said so.

Each worker process registers itself in ``tui_hpo_workers`` and beats every few seconds from a
thread, so any machine that opens the storage can list workers on other machines. A worker
whose beats stop without an exit row is shown as ``lost`` (killed, or its machine gone).

A worker started by Slurm records its task (``JOB_TASK``). Tasks that wait in Slurm's queue, or
run but have not registered yet, have no row; ``with_queue`` reads them from ``squeue`` (only
for a study with Slurm jobs recorded in ``tui_hpo_slurm_jobs``) and shows them as ``pending``
and ``starting`` rows beside the registered workers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from dataclasses import dataclass, replace

import sqlalchemy as sa

from tui_hpo.control.orders import db_now
from tui_hpo.machine import slurm
from tui_hpo.storage import tables

BEAT_INTERVAL_S = 2.0
LOST_AFTER_S = 30.0
"""A worker silent this long without an exit row is lost: 15 missed beats, far beyond any
stall of a healthy process (a long GIL-holding C call pauses trials, not this thread)."""

SUPERVISOR_ENV = "TUI_HPO_SUPERVISOR_PID"
"""Set by the supervisor for the process it starts, which records it in its worker row: the
supervisor finds its process's row by it, and a pid check tells that process from a later one
that got the same pid (``local_workers.is_worker_process``)."""

STATES = ("pending", "starting", "running", "idle", "paused", "frozen", "exited", "lost")
"""``pending``: a Slurm task still waiting in the queue (no process yet)."""


@dataclass(frozen=True)
class WorkerRow:
    worker_id: int
    study_id: int
    host: str
    pid: int
    gpu: str | None
    log_path: str | None
    supervisor_pid: int | None
    sampler: str | None
    stop_requested: bool
    state: str
    trial_number: int | None
    trials_done: int
    exit_code: int | None
    started_at: dt.datetime
    heartbeat_age_s: float
    slurm_job: str | None = None
    """The Slurm task it runs in (``JOB_TASK``), for a worker started by Slurm."""
    slurm_state: str | None = None
    """The task's state in Slurm's queue (PENDING, RUNNING, ...); None when not looked up or
    no longer queued."""
    slurm_reason: str | None = None
    """Why a pending task waits (Resources, Priority, ...)."""

    @property
    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def is_queued(self) -> bool:
        """A Slurm task with no worker row yet (pending, or running but not registered)."""
        return self.worker_id < 0

    @property
    def where(self) -> str:
        """The host, with the Slurm task when there is one (``node 1234_5``)."""
        if self.slurm_job is None:
            return self.host
        return f"{self.host} {self.slurm_job}" if self.host else self.slurm_job

    def to_json(self) -> dict[str, object]:
        return {
            "worker_id": None if self.is_queued else self.worker_id,
            "host": self.host or None,
            "pid": self.pid or None,
            "gpu": self.gpu,
            "supervisor_pid": self.supervisor_pid,
            "state": self.state,
            "trial": self.trial_number,
            "sampler": self.sampler,
            "trials_done": self.trials_done,
            "exit_code": self.exit_code,
            "started_at": self.started_at.isoformat(sep=" ", timespec="seconds"),
            "heartbeat_age_s": round(self.heartbeat_age_s, 1),
            "log": self.log_path,
            "slurm_job": self.slurm_job,
            "slurm_state": self.slurm_state,
            "slurm_reason": self.slurm_reason,
        }


def slurm_task() -> str | None:
    """This process's Slurm task, ``JOB_TASK`` (``JOB`` for a job that is no array), or None
    outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def register(
    engine: sa.Engine,
    study_id: int,
    *,
    gpu: str | None,
    log_path: str | None,
    supervisor_pid: int | None = None,
) -> int:
    with engine.begin() as con:
        result = con.execute(
            tables.workers.insert().values(
                study_id=study_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                gpu=gpu,
                log_path=log_path,
                supervisor_pid=supervisor_pid,
                state="starting",
                trials_done=0,
                stop_requested=False,
                slurm_job=slurm_task(),
            )
        )
        return int(result.inserted_primary_key[0])


def update(engine: sa.Engine, worker_id: int, **values: object) -> None:
    """Set columns of the worker's row and beat at the same time."""
    w = tables.workers
    with engine.begin() as con:
        con.execute(
            w.update()
            .where(w.c.worker_id == worker_id)
            .values(heartbeat_at=sa.func.now(), **values)
        )


def request_worker_stop(engine: sa.Engine, worker_ids: list[int]) -> None:
    """These workers leave after their current trial (``scale`` shrinking a study)."""
    w = tables.workers
    with engine.begin() as con:
        con.execute(w.update().where(w.c.worker_id.in_(worker_ids)).values(stop_requested=True))


def delete(engine: sa.Engine, worker_id: int) -> None:
    """Forget a worker that never ran (its process refused its input)."""
    w = tables.workers
    with engine.begin() as con:
        con.execute(w.delete().where(w.c.worker_id == worker_id))


def list_workers(
    con: sa.Connection, study_id: int | None = None, *, include_exited: bool = True
) -> list[WorkerRow]:
    w = tables.workers
    query = sa.select(w).order_by(w.c.worker_id)
    if study_id is not None:
        query = query.where(w.c.study_id == study_id)
    if not include_exited:
        query = query.where(w.c.state != "exited")
    now = db_now(con)
    rows = []
    for r in con.execute(query).mappings():
        age = max(0.0, (now - r["heartbeat_at"]).total_seconds())
        state = r["state"]
        if state not in ("exited", "frozen") and age > LOST_AFTER_S:
            state = "lost"
        rows.append(
            WorkerRow(
                worker_id=r["worker_id"],
                study_id=r["study_id"],
                host=r["host"],
                pid=r["pid"],
                gpu=r["gpu"],
                log_path=r["log_path"],
                supervisor_pid=r["supervisor_pid"],
                sampler=r["sampler"],
                stop_requested=bool(r["stop_requested"]),
                state=state,
                trial_number=r["trial_number"],
                trials_done=r["trials_done"],
                exit_code=r["exit_code"],
                started_at=r["started_at"],
                heartbeat_age_s=age,
                slurm_job=r["slurm_job"],
            )
        )
    return rows


# Slurm ---------------------------------------------------------------------------------------


def record_slurm_job(
    engine: sa.Engine, study_id: int, job_id: str, tasks: int, recipe: dict[str, object]
) -> None:
    """Keep a submitted array with the study, so any machine finds its queued tasks."""
    with engine.begin() as con:
        con.execute(
            tables.slurm_jobs.insert().values(
                job_id=job_id,
                study_id=study_id,
                tasks=tasks,
                recipe_json=json.dumps(recipe),
                submitted_by=socket.gethostname(),
            )
        )


def _job_order(job_id: str) -> tuple[int, str]:
    """Slurm numbers jobs upwards: newer is larger, as a number (``"100"`` after ``"99"``)."""
    return (int(job_id), job_id) if job_id.isdigit() else (-1, job_id)


def slurm_jobs(con: sa.Connection, study_id: int) -> list[str]:
    """The ids of the study's Slurm arrays, oldest first."""
    j = tables.slurm_jobs
    rows = con.execute(sa.select(j.c.job_id).where(j.c.study_id == study_id))
    return sorted((r[0] for r in rows), key=_job_order)


def slurm_recipe(con: sa.Connection, study_id: int) -> dict[str, object] | None:
    """How the study's newest Slurm array was submitted (what ``scale`` submits more of)."""
    jobs = slurm_jobs(con, study_id)
    if not jobs:
        return None
    j = tables.slurm_jobs
    text = con.execute(sa.select(j.c.recipe_json).where(j.c.job_id == jobs[-1])).scalar()
    return json.loads(text) if text else None


def slurm_queue(con: sa.Connection, study_id: int) -> list[slurm.QueuedTask] | None:
    """The study's tasks in Slurm's queue: [] without asking Slurm when the study has no Slurm
    job; None when ``squeue`` can't say (not on this machine, or slurmctld away)."""
    from tui_hpo.errors import UserError

    jobs = slurm_jobs(con, study_id)
    if not jobs:
        return []
    try:
        return slurm.queue(jobs)
    except UserError:
        return None


def with_slurm_queue(
    rows: list[WorkerRow],
    queue: list[slurm.QueuedTask],
    study_id: int,
    now: dt.datetime | None = None,
) -> list[WorkerRow]:
    """The worker rows with the queue's word on each Slurm worker (its task's state), then a
    row for each task that has no worker yet: ``pending`` (waiting in the queue, with why) and
    ``starting`` (running, its worker not registered yet). Those rows have negative ids."""
    by_task = {t.name: t for t in queue}
    out = []
    named = set()
    for row in rows:
        task = by_task.get(row.slurm_job or "")
        if row.slurm_job:
            named.add(row.slurm_job)
        out.append(row if task is None else replace(row, slurm_state=task.state))
    when = now or dt.datetime.now()
    for task in queue:
        if task.name in named or task.state not in ("PENDING", "CONFIGURING", "RUNNING"):
            continue
        out.append(
            WorkerRow(
                worker_id=-(len(out) + 1),
                study_id=study_id,
                host=task.node if not task.pending else "",
                pid=0,
                gpu=None,
                log_path=None,
                supervisor_pid=None,
                sampler=None,
                stop_requested=False,
                state="pending" if task.pending else "starting",
                trial_number=None,
                trials_done=0,
                exit_code=None,
                started_at=when,
                heartbeat_age_s=0.0,
                slurm_job=task.name,
                slurm_state=task.state,
                slurm_reason=task.reason or None,
            )
        )
    return out


def with_queue(con: sa.Connection, study_id: int, rows: list[WorkerRow]) -> list[WorkerRow]:
    """``with_slurm_queue`` with the study's queue read now (no ``squeue`` for a study that
    never had a Slurm job)."""
    queue = slurm_queue(con, study_id)
    if not queue:
        return rows
    return with_slurm_queue(rows, queue, study_id, db_now(con))


class Beater:
    """Keeps the worker's row fresh from a daemon thread while trials run in the main one."""

    def __init__(self, engine: sa.Engine, worker_id: int, interval: float = BEAT_INTERVAL_S):
        self._engine = engine
        self._worker_id = worker_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tui-hpo-beat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        w = tables.workers
        while not self._stop.wait(self._interval):
            try:
                with self._engine.begin() as con:
                    con.execute(
                        w.update()
                        .where(w.c.worker_id == self._worker_id)
                        .values(heartbeat_at=sa.func.now())
                    )
            except sa.exc.SQLAlchemyError:
                continue  # storage briefly away: the next beat tries again


def live_workers(engine: sa.Engine, study_id: int) -> list[WorkerRow]:
    with engine.connect() as con:
        return [w for w in list_workers(con, study_id, include_exited=False) if w.state != "lost"]
