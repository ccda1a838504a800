"""Acting on this machine's worker processes: freeze, thaw, and scaling their number.

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

from tui_hpo import registry, tables, trials
from tui_hpo.errors import UserError

FROZEN_HEARTBEAT = dt.datetime(2999, 1, 1)
"""A heartbeat no grace period reaches: the frozen trial is never stale."""


@dataclass(frozen=True)
class Outcome:
    done: list[registry.WorkerRow]
    elsewhere: list[registry.WorkerRow]


def live_workers(engine: sa.Engine, study_id: int) -> list[registry.WorkerRow]:
    with engine.connect() as con:
        return [
            w
            for w in registry.list_workers(con, study_id, include_exited=False)
            if w.state != "lost"
        ]


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
        if w.state == "frozen" or not trials.is_worker_process(w):
            continue
        running = trials.running_trials_of_worker(engine, study_id, w.worker_id)
        if w.supervisor_pid is None:
            _set_trial_heartbeats(engine, running, FROZEN_HEARTBEAT)
        registry.update(engine, w.worker_id, state="frozen")
        _signal(w.pid, signal.SIGSTOP)
        _wait_stopped(w.pid)
        done.append(w)
    return Outcome(done, elsewhere)


def thaw(engine: sa.Engine, study_id: int) -> Outcome:
    from tui_hpo import control

    with engine.connect() as con:
        paused = control.read_orders(con, study_id).paused
    done, elsewhere = [], []
    for w in live_workers(engine, study_id):
        if w.state != "frozen":
            continue
        if not w.is_local:
            elsewhere.append(w)
            continue
        if trials.is_worker_process(w):
            _signal(w.pid, signal.SIGCONT)
        running = trials.running_trials_of_worker(engine, study_id, w.worker_id)
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


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class Scaled:
    before: int
    started: list[int | None]
    stopping: list[registry.WorkerRow]


def scale(engine: sa.Engine, study_id: int, study: str, storage_url: str, target: int) -> Scaled:
    """Grow or shrink this machine's workers of the study to ``target``.

    New workers are started like ``launch`` started the first ones (same objective, GPUs
    round-robin with the fewest workers first); shrinking asks the newest workers to leave after
    their current trial.
    """
    from tui_hpo.launcher import WorkerRecipe, spawn_worker

    if target < 0:
        raise UserError("scale takes a number of workers, 0 or more")
    local = [w for w in live_workers(engine, study_id) if w.is_local and not w.stop_requested]
    if target < len(local):
        leaving = sorted(local, key=lambda w: w.worker_id)[target:]
        with engine.begin() as con:
            w = tables.workers
            con.execute(
                w.update()
                .where(w.c.worker_id.in_([r.worker_id for r in leaving]))
                .values(stop_requested=True)
            )
        return Scaled(len(local), [], leaving)
    if target == len(local):
        return Scaled(len(local), [], [])
    st = tables.studies
    with engine.connect() as con:
        text = con.execute(sa.select(st.c.launch_json).where(st.c.study_id == study_id)).scalar()
    if not text:
        raise UserError(
            f"study {study!r} was not launched by tui-hpo here, so there is no recipe for more "
            "workers: use tui-hpo launch (or tui-hpo worker) to start them"
        )
    recipe = WorkerRecipe.from_json(text, study, storage_url)
    load = {g: 0 for g in recipe.gpus}
    for w in local:
        if w.gpu is not None and w.gpu.isdigit() and int(w.gpu) in load:
            load[int(w.gpu)] += 1
    started: list[int | None] = []
    with engine.begin() as con:  # a scale-up undoes a study-wide stop
        con.execute(st.update().where(st.c.study_id == study_id).values(stop_requested=False))
    for _ in range(target - len(local)):
        gpu: int | None = None
        if load:
            gpu = min(load, key=lambda g: (load[g], g))
            if recipe.workers_per_gpu is not None and load[gpu] >= recipe.workers_per_gpu:
                raise UserError(
                    f"no GPU slot left for another worker ({len(load)} GPU(s) x "
                    f"{recipe.workers_per_gpu} per GPU)"
                )
            load[gpu] += 1
        spawn_worker(recipe, gpu)
        started.append(gpu)
    return Scaled(len(local), started, [])
