"""A storage opened for the app: every read and every command the app needs, behind one object.

The app holds a ``Session`` and calls it only from thread workers; nothing here imports
Textual, and the app runs no SQL of its own. Reads return immutable snapshots; commands go
through the same core functions as the CLI, so a key in the app and a command in a shell do
exactly the same thing.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tui_hpo import control, processes, reads, registry, trialdata, trials
from tui_hpo.errors import UserError
from tui_hpo.samplers import parse_kwargs, pruner_spec, sampler_spec
from tui_hpo.storage import StorageURL, open_storage


@dataclass(frozen=True)
class StudyRow:
    """One line of the studies screen."""

    summary: reads.StudySummary
    live_workers: int


@dataclass(frozen=True)
class StudySnapshot:
    """Everything the study view shows, read in one poll."""

    name: str
    study_id: int
    directions: tuple[str, ...]
    frame: trialdata.TrialFrame
    orders: control.Orders
    workers: list[registry.WorkerRow]
    history: list[control.SettingChange]
    read_at: float
    pareto: Any = None  # np.ndarray mask, multi-objective only
    frozen: bool = False

    @property
    def counts(self) -> dict[str, int]:
        return self.frame.counts()

    @property
    def trials_per_minute(self) -> float:
        """Trials ended per minute over the last ten minutes (or since the first start)."""
        window = min(600.0, self.elapsed_s)
        if window <= 0:
            return 0.0
        ended = self.frame.complete[~_isnan(self.frame.complete)]
        return float((ended >= self.read_at - window).sum()) / window * 60

    @property
    def elapsed_s(self) -> float:
        starts = self.frame.start[~_isnan(self.frame.start)]
        return 0.0 if len(starts) == 0 else self.read_at - float(starts.min())


def _isnan(a: Any) -> Any:
    import numpy as np

    return np.isnan(a)


@dataclass
class _StudyCache:
    reader: trialdata.StudyReader
    frame_generation: int = -1
    pareto: Any = None


@dataclass(frozen=True)
class HardwareRow:
    """CPU/RSS of a local worker process and the figures of its GPU, where they answer."""

    pid: int
    cpu_percent: float | None
    rss_mb: float | None
    gpu_util: float | None
    gpu_mem_mb: float | None


class Session:
    """One storage, opened once, shared by the app's thread workers (SQLAlchemy's pool is
    thread-safe; each StudyReader is used by one poll at a time, guarded by a lock)."""

    def __init__(self, target: StorageURL) -> None:
        self.target = target
        self.storage = open_storage(target, must_exist=False, pre_ping=True)
        self.engine: sa.Engine = self.storage.engine
        self._studies: dict[int, _StudyCache] = {}
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def masked_url(self) -> str:
        return self.target.masked

    # reads -----------------------------------------------------------------------------------

    def studies(self) -> list[StudyRow]:
        with self.engine.connect() as con:
            summaries = reads.summaries(con)
        return [
            StudyRow(s, sum(w.state not in ("exited", "lost") for w in s.workers))
            for s in summaries
        ]

    def study_id(self, name: str) -> int:
        """Looked up once per name: a study's id never changes, and the study view polls
        every second."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = control.study_id_of(self.engine, name)
        return found

    def snapshot(self, name: str) -> StudySnapshot:
        study_id = self.study_id(name)
        with self._lock:
            cache = self._studies.get(study_id)
            if cache is None:
                with self.engine.connect() as con:
                    dirs = reads.directions(con, study_id)
                cache = _StudyCache(trialdata.StudyReader(self.engine, study_id, dirs))
                self._studies[study_id] = cache
            frame = cache.reader.poll()
            if len(frame.directions) > 1 and cache.frame_generation != frame.generation:
                cache.pareto = trialdata.pareto_mask(frame)
            cache.frame_generation = frame.generation
            pareto = cache.pareto
        with self.engine.connect() as con:
            orders = control.read_orders(con, study_id)
            workers = registry.list_workers(con, study_id)
            history = control.settings_history(con, study_id)
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

    def reader(self, study_id: int) -> trialdata.StudyReader:
        with self._lock:
            return self._studies[study_id].reader

    def curves(self, study_id: int, trial_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
        return self.reader(study_id).curves(trial_ids)

    def detail(self, study_id: int, trial_id: int) -> dict[str, Any]:
        return self.reader(study_id).detail(trial_id)

    def hardware(self, workers: list[registry.WorkerRow]) -> dict[int, HardwareRow]:
        from tui_hpo import hardware

        return hardware.figures([w.pid for w in workers if w.is_local and w.state != "exited"])

    def log_tail(self, path: str | None, lines: int = 200) -> list[str]:
        """The last lines of a local worker's log (empty when there is none to read)."""
        if not path or not os.path.isfile(path):
            return []
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
        return list(deque(text.splitlines(), maxlen=lines))

    # commands ---------------------------------------------------------------------------------

    def pause(self, study_id: int, paused: bool) -> str:
        control.set_paused(self.engine, study_id, paused)
        return "paused: running trials finish, none starts" if paused else "resumed"

    def freeze(self, study_id: int, frozen: bool) -> str:
        outcome = (processes.freeze if frozen else processes.thaw)(self.engine, study_id)
        verb = "froze" if frozen else "thawed"
        text = f"{verb} {len(outcome.done)} local worker(s)"
        if outcome.elsewhere:
            text += f"; {len(outcome.elsewhere)} on other hosts left as they are"
        return text

    def set_setting(self, study_id: int, kind: str, name: str, kwargs_text: str) -> str:
        make = sampler_spec if kind == "sampler" else pruner_spec
        spec = make(name, parse_kwargs(kwargs_text, "kwargs"))
        control.set_setting(self.engine, study_id, kind, spec)
        return f"{kind} {spec.label()} from every worker's next trial"

    def prune_trial(self, study_id: int, number: int) -> str:
        trials.order_prune(self.engine, study_id, number)
        return f"trial {number} ends PRUNED at its next report"

    def fail_trial(self, name: str, number: int) -> str:
        import optuna

        study = optuna.load_study(study_name=name, storage=self.storage)
        return trials.order_fail(study, self.engine, number)

    def enqueue(self, name: str, params_text: str) -> str:
        import optuna

        params = parse_kwargs(params_text, "params")
        if not params:
            raise UserError("give at least one param")
        study = optuna.load_study(study_name=name, storage=self.storage)
        trials.enqueue(study, self.engine, params)
        return f"queued {params}"

    def stop(self, study_id: int) -> str:
        control.request_stop(self.engine, study_id)
        return "every worker leaves after its current trial"

    def scale(self, study_id: int, name: str, delta: int) -> str:
        local = [w for w in processes.live_workers(self.engine, study_id)
                 if w.is_local and not w.stop_requested]  # fmt: skip
        target = max(0, len(local) + delta)
        result = processes.scale(self.engine, study_id, name, self.target.url, target)
        if result.started:
            return f"started {len(result.started)} worker(s): {len(local)} -> {target}"
        if result.stopping:
            return f"{len(result.stopping)} worker(s) leave after their current trial"
        return f"{target} local worker(s)"

    def launch(self, form: NewStudy) -> str:
        """Create the study and start its workers, detached: they outlive the app.

        Runs ``tui-hpo launch --detach`` as a subprocess: the same checks and messages as in a
        shell, and the objective (torch, say) is imported there, not into the app.
        """
        import subprocess
        import sys

        args = [sys.executable, "-m", "tui_hpo", "launch", form.objective, "--study", form.study,
                "--workers", str(form.workers), "--sampler", form.sampler,
                "--pruner", form.pruner, "--detach"]  # fmt: skip
        if form.n_trials is not None:
            args += ["--n-trials", str(form.n_trials)]
        for flag, value in (
            ("--directions", form.directions),
            ("--gpus", form.gpus),
            ("--sampler-kwargs", form.sampler_kwargs),
            ("--pruner-kwargs", form.pruner_kwargs),
            ("--log-dir", form.log_dir),
        ):
            if value:
                args += [flag, value]
        env = dict(os.environ, TUI_HPO_STORAGE=self.target.url)
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        lines = [x for x in (done.stderr + done.stdout).splitlines() if x.strip()]
        if done.returncode != 0:
            errors = [x for x in lines if x.startswith("error:")] or lines[-1:]
            raise UserError(errors[0].removeprefix("error: ") if errors else "launch failed")
        return f"launched {form.workers} worker(s) on {form.study}"


@dataclass(frozen=True)
class NewStudy:
    """What the new-study form asks for."""

    study: str
    objective: str
    directions: str = ""
    sampler: str = "tpe"
    sampler_kwargs: str = ""
    pruner: str = "median"
    pruner_kwargs: str = ""
    n_trials: int | None = 100
    workers: int = 2
    gpus: str = ""
    log_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def settings_text(history: list[control.SettingChange]) -> list[str]:
    """The switch history as lines for the header's tooltip and the help."""
    return [
        f"{c.set_at:%Y-%m-%d %H:%M:%S} {c.kind} {c.spec.label()}"
        + (f" ({c.set_by})" if c.set_by else "")
        for c in history
    ]


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
