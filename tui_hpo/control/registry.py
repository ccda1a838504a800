"""Worker rows: who works on a study, where, doing what, and when it last said so.

Each worker process registers itself in ``tui_hpo_workers`` and beats every few seconds from a
thread, so any machine that opens the storage can list workers on other machines. A worker
whose beats stop without an exit row is shown as ``lost`` (killed, or its machine gone).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass

import sqlalchemy as sa

from tui_hpo.control.orders import db_now
from tui_hpo.storage import tables

BEAT_INTERVAL_S = 2.0
LOST_AFTER_S = 30.0
"""A worker silent this long without an exit row is lost: 15 missed beats, far beyond any
stall of a healthy process (a long GIL-holding C call pauses trials, not this thread)."""

SUPERVISOR_ENV = "TUI_HPO_SUPERVISOR_PID"
"""Set by the supervisor for the process it starts, which records it in its worker row: the
supervisor finds its process's row by it, and a pid check tells that process from a later one
that got the same pid (``local_workers.is_worker_process``)."""

STATES = ("starting", "running", "idle", "paused", "frozen", "exited", "lost")


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

    @property
    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def to_json(self) -> dict[str, object]:
        return {
            "worker_id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
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
        }


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
            )
        )
    return rows


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
