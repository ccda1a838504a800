"""Acting on this machine's worker processes: freeze, thaw, kill; and telling a worker's
process from a later one that got the same pid.

Freezing stops a worker's trial process with SIGSTOP: it keeps its memory, GPU memory
included, and its trial resumes exactly where it was on SIGCONT. A stopped process sends no
heartbeats, so its supervisor, which keeps running, beats for the frozen trial meanwhile: the
trial is not swept as stale while frozen, and if the machine dies it is swept as usual. A
worker without a supervisor (a plain script under ``tui_hpo.attach``) has its trial's heartbeat
moved far into the future instead, until ``thaw``.

The row is marked before the SIGSTOP and the SIGCONT comes before the row is written back: a
process stopped inside a write transaction would hold SQLite's write lock.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from dataclasses import dataclass

import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.control.orders import read_orders
from tui_hpo.control.provenance import running_trials_of_worker
from tui_hpo.control.registry import SUPERVISOR_ENV, live_workers
from tui_hpo.machine.process_tree import descendants, kill_tree, signal_tree

FROZEN_HEARTBEAT = dt.datetime(2999, 1, 1)
"""A heartbeat no grace period reaches: the frozen trial is never stale."""


@dataclass(frozen=True)
class Outcome:
    done: list[registry.WorkerRow]
    elsewhere: list[registry.WorkerRow]


def _set_trial_heartbeats(engine: sa.Engine, trial_ids: list[int], when: object) -> None:
    from optuna.storages._rdb import models

    if not trial_ids:
        return
    hb = models.TrialHeartbeatModel.__table__
    with engine.begin() as con:
        con.execute(hb.update().where(hb.c.trial_id.in_(trial_ids)).values(heartbeat=when))


def freeze(engine: sa.Engine, study_id: int) -> Outcome:
    done, elsewhere = [], []
    for w in live_workers(engine, study_id):
        if not w.is_local:
            elsewhere.append(w)
            continue
        if w.state == "frozen" or not is_worker_process(w):
            continue
        running = running_trials_of_worker(engine, study_id, w.worker_id)
        if w.supervisor_pid is None:
            _set_trial_heartbeats(engine, running, FROZEN_HEARTBEAT)
        registry.update(engine, w.worker_id, state="frozen")
        signal_tree(w.pid, signal.SIGSTOP)  # a command trial's program, in its own group, too
        for pid in (w.pid, *descendants(w.pid)):
            _wait_stopped(pid)
        done.append(w)
    return Outcome(done, elsewhere)


def thaw(engine: sa.Engine, study_id: int) -> Outcome:
    with engine.connect() as con:
        paused = read_orders(con, study_id).paused
    done, elsewhere = [], []
    for w in live_workers(engine, study_id):
        if w.state != "frozen":
            continue
        if not w.is_local:
            elsewhere.append(w)
            continue
        if is_worker_process(w):
            signal_tree(w.pid, signal.SIGCONT)
        running = running_trials_of_worker(engine, study_id, w.worker_id)
        _set_trial_heartbeats(engine, running, sa.func.now())
        state = "running" if running else ("paused" if paused else "idle")
        registry.update(engine, w.worker_id, state=state)
        done.append(w)
    return Outcome(done, elsewhere)


def _wait_stopped(pid: int, timeout: float = 2.0) -> None:
    """Return once the kernel shows the process stopped: a signal is delivered when the process
    next runs, and ``freeze`` promises stopped processes when it returns."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[0] in ("T", "t", "Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.005)


def is_worker_process(worker: registry.WorkerRow) -> bool:
    """Whether the worker's pid on this machine is still that worker's process, not a later
    process that got the same pid: a supervised one carries its supervisor's pid in its
    environment, any other must have started before its row was written."""
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
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return False
    kill_tree(worker.pid)  # and a command trial's program, which runs in a group of its own
    return True
