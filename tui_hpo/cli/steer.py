"""The steering commands: each parses its arguments, calls its verb in ``tui_hpo.steering`` and
prints the outcome, the same words the app shows for the same key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from tui_hpo.cli.options import storage_option, target


def _steer(storage: str | None, study: str, verb: str, *args: Any) -> None:
    """Run ``tui_hpo.steering.<verb>`` on the study and print what it says (imported here, not
    at the top, so that ``tui-hpo --help`` stays fast)."""
    from tui_hpo import steering

    outcome = getattr(steering, verb)(steering.Steered(target(storage), study), *args)
    click.echo(outcome.message)


def steering_command(name: str | None = None) -> Callable[[Any], click.Command]:
    """A click command taking the STUDY argument and --storage, as every steering command does."""

    def decorate(func: Any) -> click.Command:
        return click.command(name)(click.argument("study")(storage_option(func)))

    return decorate


@steering_command()
def pause(study: str, storage: str | None) -> None:
    """Let running trials finish; start no new trial until resume."""
    _steer(storage, study, "pause")


@steering_command()
def resume(study: str, storage: str | None) -> None:
    """Undo pause: workers take new trials again."""
    _steer(storage, study, "resume")


@steering_command()
def freeze(study: str, storage: str | None) -> None:
    """Stop this machine's workers at once (SIGSTOP); they keep their GPU memory."""
    _steer(storage, study, "freeze")


@steering_command()
def thaw(study: str, storage: str | None) -> None:
    """Continue frozen workers (SIGCONT) exactly where they were."""
    _steer(storage, study, "thaw")


@steering_command("set-sampler")
@click.argument("name")
@click.option("--kwargs", default=None, metavar="JSON", help="Sampler arguments.")
def set_sampler(study: str, storage: str | None, name: str, kwargs: str | None) -> None:
    """Switch the sampler of a running study (tpe, gp, cmaes, nsga2, nsga3, qmc, random, grid)."""
    _steer(storage, study, "set_sampler", name, kwargs)


@steering_command("set-pruner")
@click.argument("name")
@click.option("--kwargs", default=None, metavar="JSON", help="Pruner arguments.")
def set_pruner(study: str, storage: str | None, name: str, kwargs: str | None) -> None:
    """Switch the pruner of a running study (median, percentile, hyperband, ..., none)."""
    _steer(storage, study, "set_pruner", name, kwargs)


@steering_command("prune-trial")
@click.argument("number", type=int)
def prune_trial(study: str, storage: str | None, number: int) -> None:
    """Running trial NUMBER ends PRUNED at its next report."""
    _steer(storage, study, "prune_trial", number)


@steering_command("fail-trial")
@click.argument("number", type=int)
def fail_trial(study: str, storage: str | None, number: int) -> None:
    """Running trial NUMBER ends FAIL now; its worker process is killed and replaced."""
    _steer(storage, study, "fail_trial", number)


@steering_command()
@click.option("--params", required=True, metavar="JSON", help='e.g. {"lr": 0.001, "depth": 4}')
def enqueue(study: str, storage: str | None, params: str) -> None:
    """Queue a trial with these params; it runs next (on top of the trial budget)."""
    _steer(storage, study, "enqueue", params)


@steering_command()
def stop(study: str, storage: str | None) -> None:
    """Every worker of STUDY, on every machine, leaves after its current trial (pending Slurm
    tasks are cancelled)."""
    _steer(storage, study, "stop")


@steering_command()
@click.argument("workers", type=int)
def scale(study: str, storage: str | None, workers: int) -> None:
    """Grow or shrink this machine's workers of STUDY to WORKERS.

    Under Slurm (a study launched with --slurm, with no worker on this machine outside
    Slurm), its Slurm workers instead: more submits a new array of the missing tasks; fewer
    cancels pending tasks first, then starting ones, then asks the newest running workers to
    leave after their current trial.
    """
    _steer(storage, study, "scale", workers)


COMMANDS = (
    pause,
    resume,
    freeze,
    thaw,
    set_sampler,
    set_pruner,
    prune_trial,
    fail_trial,
    enqueue,
    stop,
    scale,
)
