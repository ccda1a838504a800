"""What a worker is asked to do, shared by the worker and its supervisor.

Kept apart from ``worker`` so the supervisor, which never runs trials, starts without
importing Optuna.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from tui_hpo.storage import Heartbeat, StorageURL

POLL_INTERVAL_S = 0.5
"""How often a paused or idle worker looks at its orders again (``--poll-interval``)."""

LAUNCH_TOKEN_ENV = "TUI_HPO_LAUNCH_TOKEN"
"""Set by ``launch`` for the workers it starts: they wait until that launch is recorded."""

SUPERVISOR_ENV = "TUI_HPO_SUPERVISOR_PID"
"""Set by the supervisor for the process it starts, which records it in its worker row: the
supervisor finds its process's row by it, and a pid check tells that process from a later one
that got the same pid."""


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

    def trial_process_args(self) -> list[str]:
        """``tui-hpo worker`` arguments of the process that runs trials, started by the
        supervisor (the storage URL goes through the environment, not argv)."""
        hb = self.heartbeat
        args = [self.objective, "--study", self.study, "--heartbeat-interval", str(hb.interval),
                "--poll-interval", str(self.poll_interval)]  # fmt: skip
        if hb.grace_period is not None:
            args += ["--grace-period", str(hb.grace_period)]
        if hb.retry_failed:
            args += ["--retry-failed", str(hb.retry_failed)]
        if self.log_path is not None:
            args += ["--log-file", self.log_path]
        return [*args, "--no-supervisor"]


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
