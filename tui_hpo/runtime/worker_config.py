"""What a worker is asked to do, shared by the worker, its supervisor and whoever starts them.

Kept apart from ``worker`` so the supervisor, which never runs trials, starts without
importing Optuna. The argument list and the environment of a ``tui-hpo worker`` process are
built here, once, for every way one is started (a launch's fork, the app's exec, the
supervisor's trial process).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tui_hpo.control.failure_streak import DEFAULT_LIMIT as DEFAULT_FAILURE_LIMIT
from tui_hpo.control.orders import LAUNCH_TOKEN_ENV
from tui_hpo.control.registry import SUPERVISOR_ENV
from tui_hpo.storage.engines import Heartbeat
from tui_hpo.storage.urls import StorageURL

POLL_INTERVAL_S = 0.5
"""How often a paused or idle worker looks at its orders again (``--poll-interval``)."""

STORAGE_ENV = "TUI_HPO_STORAGE"
"""How a worker gets the storage URL: its environment, never its argv (a password in argv
shows in ``ps`` to every user of the machine)."""


@dataclass(frozen=True)
class WorkerConfig:
    objective: str
    study: str
    storage: StorageURL
    heartbeat: Heartbeat
    log_path: str | None = None
    poll_interval: float = POLL_INTERVAL_S
    trial_timeout: float | None = None
    """Seconds a trial may run before its supervisor kills the process and fails the trial."""
    max_consecutive_failures: int = DEFAULT_FAILURE_LIMIT
    """The worker leaves after this many failed trials of the study in a row; 0: never."""

    def worker_args(self, *, trial_process: bool = False) -> list[str]:
        """``tui-hpo worker`` arguments for this config. The trial process (started by the
        supervisor) leaves out ``--trial-timeout``, which its supervisor enforces, and says
        ``--no-supervisor``."""
        hb = self.heartbeat
        args = [
            self.objective,
            "--study",
            self.study,
            "--heartbeat-interval",
            str(hb.interval),
            "--poll-interval",
            str(self.poll_interval),
        ]
        if hb.grace_period is not None:
            args += ["--grace-period", str(hb.grace_period)]
        if hb.retry_failed:
            args += ["--retry-failed", str(hb.retry_failed)]
        if self.log_path is not None:
            args += ["--log-file", self.log_path]
        if self.max_consecutive_failures != DEFAULT_FAILURE_LIMIT:
            args += ["--max-consecutive-failures", str(self.max_consecutive_failures)]
        if trial_process:
            return [*args, "--no-supervisor"]
        if self.trial_timeout is not None:
            args += ["--trial-timeout", str(self.trial_timeout)]
        return args


def worker_environ(
    storage_url: str,
    *,
    gpu_env: dict[str, str] | None = None,
    launch_token: str | None = None,
    supervisor_pid: int | None = None,
) -> dict[str, str]:
    """The whole environment of a worker process: this one's, plus the storage URL, unbuffered
    output (its log is a file), its GPU and the launch it belongs to."""
    env = dict(os.environ)
    env[STORAGE_ENV] = storage_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(gpu_env or {})
    if launch_token:
        env[LAUNCH_TOKEN_ENV] = launch_token
    if supervisor_pid is not None:
        env[SUPERVISOR_ENV] = str(supervisor_pid)
    return env


def setup_logging(log_path: str | None, *, quiet_optuna: bool = True) -> None:
    """Log lines to stderr (the launcher points it at the worker's log file)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [worker pid %(process)d] %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if quiet_optuna:
        import optuna

        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def safe_name(name: str) -> str:
    """A study name as a folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


def default_log_dir(study: str) -> Path:
    """Where a study's worker logs go unless ``--log-dir`` says: ``./tui-hpo-logs/STUDY``."""
    return Path("tui-hpo-logs") / safe_name(study)


def trial_output_dir(config: WorkerConfig) -> Path:
    """Where a worker keeps the output of its command trials: ``trials/`` beside its log."""
    if config.log_path:
        return Path(config.log_path).absolute().parent / "trials"
    return (default_log_dir(config.study) / "trials").absolute()
