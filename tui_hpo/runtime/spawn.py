"""Starting one worker on this machine: a supervisor in a session of its own, and its log.

Workers are started in sessions of their own (``setsid``): a Ctrl-C in the launcher's
terminal, the launcher's exit or a dropped SSH connection doesn't reach them; only an explicit
stop does. The storage URL travels in the environment (``worker_config.worker_environ``), never
on the command line, so ``ps`` doesn't show a password. Each worker writes its own log file.

``launch`` starts its first workers through here, and ``scale`` (from a shell or the app) adds
more of the same from the recipe the launch kept with the study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_hpo.control.failure_streak import DEFAULT_LIMIT as DEFAULT_FAILURE_LIMIT
from tui_hpo.errors import UserError
from tui_hpo.machine import gpus
from tui_hpo.runtime.worker_config import POLL_INTERVAL_S, WorkerConfig, worker_environ
from tui_hpo.storage.engines import Heartbeat


@dataclass(frozen=True)
class WorkerRecipe:
    """How a study's workers are started on this machine; kept with the study so that
    ``scale`` starts more of the same."""

    objective: str
    study: str
    storage_url: str
    gpus: list[int]
    workers_per_gpu: int | None
    heartbeat: Heartbeat
    log_dir: Path
    poll_interval: float | None = None
    trial_timeout: float | None = None
    max_consecutive_failures: int = DEFAULT_FAILURE_LIMIT
    token: str = ""
    """Names this launch: workers started before the study is ready wait for it (below)."""
    started_at: str = ""
    """When the launch started (local time, ISO): its workers count failed trials in a row
    from then on (``control.failure_streak``), whichever of them started first."""

    def to_json(self) -> str:
        # the URL stays out: it may hold a password, and whoever scales has it already
        return json.dumps(
            {
                "objective": self.objective,
                "gpus": self.gpus,
                "workers_per_gpu": self.workers_per_gpu,
                "heartbeat_interval": self.heartbeat.interval,
                "grace_period": self.heartbeat.grace_period,
                "retry_failed": self.heartbeat.retry_failed,
                "log_dir": str(self.log_dir),
                "trial_timeout": self.trial_timeout,
                "token": self.token,
                "started_at": self.started_at,
                "poll_interval": self.poll_interval,
                "max_consecutive_failures": self.max_consecutive_failures,
            }
        )

    @classmethod
    def from_json(cls, text: str, study: str, storage_url: str) -> WorkerRecipe:
        return cls.from_dict(json.loads(text), study, storage_url)

    @classmethod
    def from_dict(cls, d: dict[str, Any], study: str, storage_url: str) -> WorkerRecipe:
        return cls(
            objective=d["objective"],
            study=study,
            storage_url=storage_url,
            gpus=list(d["gpus"]),
            workers_per_gpu=d["workers_per_gpu"],
            heartbeat=Heartbeat(d["heartbeat_interval"], d["grace_period"], d["retry_failed"]),
            log_dir=Path(d["log_dir"]),
            trial_timeout=d.get("trial_timeout"),
            token=d.get("token", ""),
            started_at=d.get("started_at", ""),
            poll_interval=d.get("poll_interval"),
            max_consecutive_failures=d.get("max_consecutive_failures", DEFAULT_FAILURE_LIMIT),
        )

    def gpus_for(self, count: int, taken: list[str | None]) -> list[int | None]:
        """GPUs for ``count`` more workers beside workers on the ``taken`` GPUs: round-robin
        with the fewest workers first, within ``workers_per_gpu``; None for each when the
        recipe has no GPU. All or nothing: one line when there is no room for all."""
        load = {g: 0 for g in self.gpus}
        for gpu in taken:
            if gpu is not None and gpu.isdigit() and int(gpu) in load:
                load[int(gpu)] += 1
        chosen: list[int | None] = []
        for _ in range(count):
            if not load:
                chosen.append(None)
                continue
            gpu = min(load, key=lambda g: (load[g], g))
            if self.workers_per_gpu is not None and load[gpu] >= self.workers_per_gpu:
                raise UserError(
                    f"no GPU slot left for another worker ({len(load)} GPU(s) x "
                    f"{self.workers_per_gpu} per GPU)"
                )
            load[gpu] += 1
            chosen.append(gpu)
        return chosen

    def worker_config(self, log_path: Path) -> WorkerConfig:
        from tui_hpo.storage.urls import parse_url

        return WorkerConfig(
            objective=self.objective,
            study=self.study,
            storage=parse_url(self.storage_url),
            heartbeat=self.heartbeat,
            log_path=str(log_path),
            poll_interval=self.poll_interval or POLL_INTERVAL_S,
            trial_timeout=self.trial_timeout,
            max_consecutive_failures=self.max_consecutive_failures,
        )


class ForkedProcess:
    """A child made with ``os.fork``, with the part of ``Popen``'s interface used here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode


@dataclass
class WorkerProcess:
    """A supervisor process started here and the GPU it was given."""

    gpu: int | None
    log_path: Path
    process: subprocess.Popen[bytes] | ForkedProcess
    handled: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


def spawn_worker(recipe: WorkerRecipe, gpu: int | None) -> WorkerProcess:
    """Start one worker (a supervisor and the process it runs) in a session of its own.

    A single-threaded caller (``launch``, ``scale`` from a shell) forks the supervisor: it
    then costs no Python start-up and no imports, which is most of a short search's start-up
    on a small machine (the supervisor only watches; the trial process it starts is a fresh
    interpreter, so CUDA state and the like never cross the fork). A caller with threads (the
    app) must not fork, and starts ``tui-hpo worker`` instead.
    """
    import threading

    stamp = time.strftime("%Y%m%d-%H%M%S")
    recipe.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = recipe.log_dir / f"worker-gpu{'cpu' if gpu is None else gpu}-{stamp}-{os.getpid()}"
    log_path = _new_file(log_path)
    env = worker_environ(
        recipe.storage_url, gpu_env=gpus.worker_env(gpu), launch_token=recipe.token or None
    )
    config = recipe.worker_config(log_path)
    if threading.active_count() == 1:
        return WorkerProcess(gpu, log_path, _fork_supervisor(config, env))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui_hpo", "worker", *config.worker_args()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return WorkerProcess(gpu, log_path, process)


def _new_file(stem: Path) -> Path:
    """``stem-N.log`` for the first N not taken, created here (a forked supervisor opens its
    log only later, so the name must be taken before the next worker picks one)."""
    n = 0
    while True:
        path = Path(f"{stem}-{n}.log")
        try:
            path.touch(exist_ok=False)
        except FileExistsError:
            n += 1
            continue
        return path


def _fork_supervisor(config: WorkerConfig, env: dict[str, str]) -> ForkedProcess:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else what is buffered here would be written twice
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:  # the child: never return into the launcher's code
        code = _run_forked_supervisor(config, env)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run_forked_supervisor(config: WorkerConfig, env: dict[str, str]) -> int:
    """What ``tui-hpo worker`` does, in a forked copy of this process: its own session (a
    Ctrl-C or a hang-up of the launcher's terminal doesn't reach it), output to its log, and
    a name in ``ps`` that says what it is (instead of the launcher's command line)."""
    import logging

    import setproctitle

    from tui_hpo.runtime import supervisor

    # the title first: setproctitle can only reuse the memory of argv and the environment as
    # the process started with, and changing the environment first would leave it none
    setproctitle.setproctitle(f"tui-hpo worker {config.objective} --study {config.study}")
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(str(config.log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    os.environ.update({k: v for k, v in env.items() if os.environ.get(k) != v})
    logging.getLogger().handlers.clear()
    try:
        return supervisor.run(config)
    except UserError as exc:
        print("error: " + " ".join(exc.message.splitlines()), file=sys.stderr)
        return exc.exit_code
