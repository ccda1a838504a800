"""What several commands share: the storage option, the heartbeat options, turning them into
checked values, and the process title that keeps a password out of ``ps``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tui_hpo.storage.engines import Heartbeat
    from tui_hpo.storage.urls import StorageURL

STORAGE_HELP = (
    "Storage URL (default: $TUI_HPO_STORAGE, else $OPTUNA_STORAGE, else sqlite:///tui-hpo.db)."
)


def storage_option(func: Any) -> Any:
    return click.option("--storage", "storage", default=None, help=STORAGE_HELP)(func)


def slurm_options(func: Any) -> Any:
    """``--slurm`` and ``--slurm-args``, as ``launch`` and ``worker`` take them."""
    func = click.option(
        "--slurm-args",
        default=None,
        metavar="ARGS",
        help="sbatch options for the array, one shell-quoted string "
        '("-p gpu --time=04:00:00"); --gres=gpu:1 unless they ask for GPUs.',
    )(func)
    func = click.option(
        "--slurm",
        is_flag=True,
        help="Submit the workers to Slurm as one job array of --workers tasks (docs/slurm.md).",
    )(func)
    return func


def heartbeat_options(func: Any) -> Any:
    """Options every way of running workers takes: heartbeats, retries, time limits, and when
    to give up on an objective that keeps failing."""
    func = click.option(
        "--max-consecutive-failures",
        type=int,
        default=10,
        show_default=True,
        metavar="N",
        help="Stop after N failed trials in a row (0: never).",
    )(func)
    func = click.option(
        "--trial-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="A trial running longer is failed and its worker process replaced.",
    )(func)
    func = click.option(
        "--retry-failed",
        type=int,
        default=None,
        metavar="N",
        help="Queue a trial whose worker died again, up to N times.",
    )(func)
    func = click.option(
        "--grace-period",
        type=int,
        default=None,
        metavar="SECONDS",
        help="A running trial without a heartbeat this long is failed (default: 2 x interval).",
    )(func)
    func = click.option(
        "--heartbeat-interval",
        type=int,
        default=10,
        show_default=True,
        metavar="SECONDS",
        help="How often a running trial's heartbeat is recorded.",
    )(func)
    return func


def target(url: str | None, *, quiet_optuna: bool = True) -> StorageURL:
    """The checked storage URL; also quiets Optuna's INFO logging, which would scribble over
    the progress bar and the status table (not for the supervisor, which never loads Optuna
    unless it must)."""
    from tui_hpo.storage.urls import parse_url, resolve_url

    if quiet_optuna:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return parse_url(resolve_url(url))


def heartbeat(interval: int, grace: int | None, retry: int | None) -> Heartbeat:
    from tui_hpo.storage.engines import Heartbeat

    return Heartbeat(interval=interval, grace_period=grace, retry_failed=retry)


def mask_own_title(storage: StorageURL) -> None:
    """Replace this process's title (``ps``, ``/proc/PID/cmdline``) with its command line with
    the storage URL masked: a long-running command that was given ``--storage`` with a password
    would otherwise show it to every user of the machine for as long as it runs."""
    if storage.masked == storage.url:
        return
    import setproctitle

    words = [arg.replace(storage.url, storage.masked) for arg in sys.argv[1:]]
    setproctitle.setproctitle(" ".join(["tui-hpo", *words]))
