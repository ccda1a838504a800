"""A storage opened for watching: the reads the app needs, as immutable snapshots.

The app holds one ``Session`` and calls it only from thread workers; nothing here imports
Textual, and the app runs no SQL of its own. Steering goes through ``tui_hpo.steering`` with
this session's storage, exactly as the CLI does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.control.orders import (
    Orders,
    SettingChange,
    read_orders,
    settings_history,
    study_id_of,
)
from tui_hpo.data import summaries
from tui_hpo.data.analysis import pareto_mask
from tui_hpo.data.frames import StudyReader, TrialFrame
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import StorageURL

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class StudyRow:
    """One line of the studies screen."""

    summary: summaries.StudySummary
    live_workers: int


@dataclass(frozen=True)
class StudySnapshot:
    """Everything the study view shows, read in one poll."""

    name: str
    study_id: int
    directions: tuple[str, ...]
    frame: TrialFrame
    orders: Orders
    workers: list[registry.WorkerRow]
    history: list[SettingChange]
    read_at: float
    pareto: Any = None  # np.ndarray mask, multi-objective only
    frozen: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return self.frame.counts()

    @property
    def ended_at(self) -> float | None:
        """When the search ended (its last trial's end, epoch seconds): once no worker is left
        and no trial runs or waits. None while it goes on, or before any trial ended."""
        if any(w.state not in ("exited", "lost") for w in self.workers):
            return None
        counts = self.counts
        if counts["RUNNING"] or counts["WAITING"]:
            return None
        ends = self.frame.complete[~np.isnan(self.frame.complete)]
        return float(ends.max()) if len(ends) else None

    @property
    def finished(self) -> bool:
        """Over with its budget spent (or with none set); over early is ``stopped``."""
        budget = self.orders.trial_budget
        counts = self.counts
        ended = counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]
        return self.ended_at is not None and (budget is None or ended >= budget)

    @property
    def elapsed_s(self) -> float:
        """From the first trial's start to now, or to the end of a search that is over."""
        starts = self.frame.start[~np.isnan(self.frame.start)]
        if len(starts) == 0:
            return 0.0
        end = self.ended_at
        return (self.read_at if end is None else end) - float(starts.min())

    @property
    def trials_per_minute(self) -> float:
        """Trials ended per minute: over the last ten minutes while the search runs, over the
        whole run once it is over."""
        ended = self.frame.complete[~np.isnan(self.frame.complete)]
        if self.ended_at is not None:
            run = self.elapsed_s
            return len(ended) / run * 60 if run > 0 else 0.0
        window = min(600.0, self.elapsed_s)
        if window <= 0:
            return 0.0
        return float((ended >= self.read_at - window).sum()) / window * 60


QUEUE_EVERY_S = 5.0
"""How often the study view asks ``squeue`` about a study's Slurm tasks (slurmctld serves a
whole cluster; the view polls every second)."""


@dataclass
class _StudyCache:
    reader: StudyReader
    frame_generation: int = -1
    pareto: Any = None
    queue: Any = None
    """The study's Slurm tasks as last read (``registry.slurm_queue``), and when."""
    queue_read_at: float = -1e9


class Session:
    """One storage, shared by the app's thread workers (SQLAlchemy's pool is thread-safe; each
    StudyReader is used by one poll at a time, guarded by a lock).

    Made without I/O, so the app can make it on its UI thread and hand it to thread workers;
    the storage is opened by the first read that needs it, in that worker, and a storage that
    is down then is that read's error (a banner), not a crash at start."""

    def __init__(self, target: StorageURL) -> None:
        self.target = target
        self._storage: optuna.storages.RDBStorage | None = None
        self._open_lock = threading.Lock()
        self._studies: dict[int, _StudyCache] = {}
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        with self._open_lock:
            if self._storage is None:
                self._storage = open_storage(self.target, must_exist=False, pre_ping=True)
            return self._storage

    @property
    def engine(self) -> sa.Engine:
        return self.storage.engine

    # reads -----------------------------------------------------------------------------------

    def studies(self) -> list[StudyRow]:
        with self.engine.connect() as con:
            rows = summaries.summaries(con)
        return [
            StudyRow(s, sum(w.state not in ("exited", "lost") for w in s.workers)) for s in rows
        ]

    def study_id(self, name: str) -> int:
        """Looked up once per name: a study's id never changes, and the study view polls
        every second."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = study_id_of(self.engine, name)
        return found

    def snapshot(self, name: str) -> StudySnapshot:
        study_id = self.study_id(name)
        with self._lock:
            cache = self._studies.get(study_id)
            if cache is None:
                with self.engine.connect() as con:
                    dirs = summaries.directions(con, study_id)
                cache = _StudyCache(StudyReader(self.engine, study_id, dirs))
                self._studies[study_id] = cache
            frame = cache.reader.poll()
            if len(frame.directions) > 1 and cache.frame_generation != frame.generation:
                cache.pareto = pareto_mask(frame)
            cache.frame_generation = frame.generation
            pareto = cache.pareto
        with self.engine.connect() as con:
            orders = read_orders(con, study_id)
            workers = registry.list_workers(con, study_id)
            history = settings_history(con, study_id)
            queue = self._queue(con, study_id)
        if queue:
            workers = registry.with_slurm_queue(workers, queue, study_id)
        return StudySnapshot(
            name=name,
            study_id=study_id,
            directions=frame.directions,
            frame=frame,
            orders=orders,
            workers=workers,
            history=history,
            read_at=time.time(),
            pareto=pareto,
            frozen=any(w.state == "frozen" for w in workers),
        )

    def _queue(self, con: sa.Connection, study_id: int) -> Any:
        """The study's Slurm tasks, read again at most every ``QUEUE_EVERY_S``."""
        cache = self._studies[study_id]
        if time.monotonic() - cache.queue_read_at >= QUEUE_EVERY_S:
            cache.queue = registry.slurm_queue(con, study_id)
            cache.queue_read_at = time.monotonic()
        return cache.queue

    def forget(self, name: str) -> None:
        """Drop what is cached about study ``name`` (its id, its reader): called once it is
        deleted, so a study made later under the same name is looked up afresh."""
        with self._lock:
            study_id = self._ids.pop(name, None)
            if study_id is not None:
                self._studies.pop(study_id, None)

    def reader(self, study_id: int) -> StudyReader:
        with self._lock:
            return self._studies[study_id].reader

    def curves(self, study_id: int, trial_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
        return self.reader(study_id).curves(trial_ids)

    def detail(self, study_id: int, trial_id: int) -> dict[str, Any]:
        return self.reader(study_id).detail(trial_id)
