"""Starting worker processes on this machine and looking after them while they run.

Workers are started in sessions of their own (``start_new_session``): a Ctrl-C in the
launcher's terminal, the launcher's exit or a dropped SSH connection doesn't reach them; only an
explicit stop does. The storage URL travels in the environment (``TUI_HPO_STORAGE``), never on
the command line, so ``ps`` doesn't show a password. Each worker writes its own log file.

Everything is checked before the first process starts (``plan``), so a bad input leaves the
storage as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tui_hpo import budget, control, gpus, reads, registry
from tui_hpo.errors import FAILURE, UserError
from tui_hpo.samplers import Spec
from tui_hpo.storage import Heartbeat, StorageURL, open_storage

STOP_WAIT_S = 15.0
"""How long stopped workers get to tell their trial's outcome before SIGKILL."""


@dataclass(frozen=True)
class LaunchRequest:
    objective: str
    study: str
    storage: StorageURL
    n_trials: int | None
    workers: int
    gpus: str | None = None
    workers_per_gpu: int | None = None
    sampler: Spec | None = None
    pruner: Spec | None = None
    timeout: float | None = None
    seed: int | None = None
    directions: list[str] | None = None
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    log_dir: Path | None = None


@dataclass(frozen=True)
class Plan:
    """A request with every check done: what will be created and started."""

    request: LaunchRequest
    objective: str
    directions: list[str]
    gpu_per_worker: list[int | None]
    log_dir: Path


def plan(request: LaunchRequest) -> Plan:
    """Check everything that can be checked without writing to the storage."""
    import optuna

    from tui_hpo import objective as objective_mod
    from tui_hpo.storage import check_reachable

    if request.n_trials is not None and request.n_trials < 1:
        raise UserError("--n-trials must be at least 1")
    if request.workers < 1:
        raise UserError("--workers must be at least 1")
    if request.timeout is not None and request.timeout <= 0:
        raise UserError("--timeout must be more than 0 seconds")
    available = gpus.gpu_count()
    chosen = gpus.parse_gpus(request.gpus, available)
    per_worker = gpus.assign_gpus(request.workers, chosen, request.workers_per_gpu)
    spec, func = objective_mod.load(request.objective)
    check_reachable(request.storage, must_exist=False)
    existing = None
    if not (request.storage.is_sqlite and not request.storage.sqlite_path.exists()):  # type: ignore[union-attr]
        storage = open_storage(request.storage)
        try:
            study = optuna.load_study(study_name=request.study, storage=storage)
            existing = [d.name.lower() for d in study.directions]
        except KeyError:
            pass
        finally:
            storage.engine.dispose()
    dirs = objective_mod.choose_directions(request.directions, func, existing)
    log_dir = (request.log_dir or Path("tui-hpo-logs") / _safe(request.study)).absolute()
    return Plan(request, spec.text, dirs, per_worker, log_dir)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


@dataclass
class WorkerProcess:
    index: int
    gpu: int | None
    log_path: Path
    process: subprocess.Popen[bytes]
    replaced: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


class Launcher:
    """Creates (or loads) the study, starts the workers, replaces ones that die."""

    def __init__(self, plan: Plan) -> None:
        import optuna

        self.plan = plan
        req = plan.request
        self.storage = open_storage(req.storage, heartbeat=req.heartbeat)
        self.engine = self.storage.engine
        self.study = optuna.create_study(
            study_name=req.study,
            storage=self.storage,
            directions=plan.directions,
            load_if_exists=True,
        )
        self.study_id = self.study._study_id
        control.prepare_run(
            self.engine,
            self.study_id,
            n_trials=req.n_trials,
            timeout=req.timeout,
            seed=req.seed,
            sampler=req.sampler,
            pruner=req.pruner,
        )
        self.workers: list[WorkerProcess] = []
        self.restarts = 0
        self.max_restarts = 3 * req.workers
        self.crashed: list[str] = []
        plan.log_dir.mkdir(parents=True, exist_ok=True)

    # starting ------------------------------------------------------------------------------

    def start(self) -> None:
        for index, gpu in enumerate(self.plan.gpu_per_worker):
            self.workers.append(self._spawn(index, gpu))

    def _spawn(self, index: int, gpu: int | None) -> WorkerProcess:
        req = self.plan.request
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = self.plan.log_dir / f"worker-{index}-{stamp}-{len(self.workers)}.log"
        env = dict(os.environ)
        env["TUI_HPO_STORAGE"] = req.storage.url
        env.update(gpus.worker_env(gpu))
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable, "-m", "tui_hpo", "worker", self.plan.objective,
            "--study", req.study,
            "--heartbeat-interval", str(req.heartbeat.interval),
            "--log-file", str(log_path),
        ]  # fmt: skip
        if req.heartbeat.grace_period is not None:
            cmd += ["--grace-period", str(req.heartbeat.grace_period)]
        if req.heartbeat.retry_failed:
            cmd += ["--retry-failed", str(req.heartbeat.retry_failed)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return WorkerProcess(index, gpu, log_path, process)

    # watching ------------------------------------------------------------------------------

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if not w.replaced and w.process.poll() is None]

    def check(self) -> None:
        """Deal with workers that died: fail their trial now, start one in their place."""
        for w in self.workers:
            code = w.process.poll()
            if code is None or w.replaced or code == 0:
                continue
            w.replaced = True
            self._fail_trials_of(w.pid, f"worker pid {w.pid} died ({_describe(code)})")
            left = budget.budget_left(self.engine, self.study_id)
            if left == 0:
                continue
            if self.restarts >= self.max_restarts:
                self.crashed.append(f"worker {w.index} exited with {_describe(code)}: {w.log_path}")
                continue
            self.restarts += 1
            self.workers.append(self._spawn(w.index, w.gpu))

    def _fail_trials_of(self, pid: int, reason: str, *, requeue: bool = True) -> int:
        """FAIL the RUNNING trials a dead local worker left, instead of waiting for the grace
        period; the heartbeat sweep does the same for workers on other machines."""
        from tui_hpo import trials

        retry = self.plan.request.heartbeat.retry_failed if requeue else None
        return trials.fail_running_of_worker(self.study, self.engine, pid, reason, retry=retry)

    def summary(self) -> reads.StudySummary:
        with self.engine.connect() as con:
            return reads.summarize(con, self.study_id, self.plan.request.study)

    def wait(self, poll: float = 0.5) -> None:
        while self.alive():
            self.check()
            time.sleep(poll)
        self.check()

    # stopping ------------------------------------------------------------------------------

    def stop(self) -> int:
        """Stop every worker now: running trials end FAIL with the reason; returns how many
        trials were still left RUNNING and had to be failed here."""
        for w in self.alive():
            _signal(w.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        failed = 0
        for w in self.alive():
            _signal(w.process, signal.SIGKILL)
            w.process.wait()
        for w in self.workers:
            failed += self._fail_trials_of(
                w.pid, "worker stopped: launch interrupted", requeue=False
            )
            if w.process.returncode is not None and w.process.returncode < 0:
                with self.engine.begin() as con:
                    _mark_exited(con, w.pid, w.process.returncode)
        return failed

    def exit_code(self) -> int:
        s = self.summary()
        if self.crashed:
            return FAILURE
        if s.trial_budget is not None and s.n_ended < s.trial_budget:
            return FAILURE
        return 0


def _mark_exited(con: object, pid: int, code: int) -> None:
    import socket

    from tui_hpo import tables

    w = tables.workers
    con.execute(  # type: ignore[attr-defined]
        w.update()
        .where(w.c.pid == pid, w.c.host == socket.gethostname(), w.c.state != "exited")
        .values(state="exited", exit_code=code, trial_number=None)
    )


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


__all__ = ["LaunchRequest", "Launcher", "Plan", "plan", "registry"]
