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

SUPERVISED_ENV = "TUI_HPO_WORKER_ID"
"""Set by the supervisor for the process it starts: the worker row it created for it."""


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
