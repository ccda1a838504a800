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


@steering_command()
@click.argument("trial", type=int)
@click.argument("tags", nargs=-1)
def tag(study: str, storage: str | None, trial: int, tags: tuple[str, ...]) -> None:
    """Tag trial TRIAL of STUDY with TAGS (one word each: no blank, no comma), whatever its
    state; the app's filter finds them with `tag = NAME`."""
    _steer(storage, study, "tag", trial, list(tags))


@steering_command()
@click.argument("trial", type=int)
@click.argument("tags", nargs=-1)
def untag(study: str, storage: str | None, trial: int, tags: tuple[str, ...]) -> None:
    """Remove TAGS from trial TRIAL of STUDY."""
    _steer(storage, study, "untag", trial, list(tags))


@steering_command()
@click.argument("trial", type=int, required=False)
@click.option("--set", "text", default=None, metavar="TEXT", help="Save TEXT as the note.")
@click.option("--file", "path", default=None, metavar="FILE", help="Save FILE's text (- stdin).")
@click.option("--edit", is_flag=True, help="Edit the note in $EDITOR, then save it.")
def note(
    study: str,
    storage: str | None,
    trial: int | None,
    text: str | None,
    path: str | None,
    edit: bool,
) -> None:
    """Print the note of STUDY, or of its trial TRIAL; with --set, --file or --edit, save one.

    Notes are optuna-dashboard's own (Markdown): a note written here shows there, and one
    written there shows here. An empty text clears the note.
    """
    from tui_hpo import steering
    from tui_hpo.errors import UserError

    if sum((text is not None, path is not None, edit)) > 1:
        raise UserError("give one of --set, --file and --edit")
    steered = steering.Steered(target(storage), study)
    if path is not None:
        text = _read_text(path)
    elif edit:
        current = steering.read_note(steered, trial).message
        edited = click.edit(current, extension=".md", require_save=True)
        if edited is None:
            click.echo(f"{study}: note not changed")
            return
        # an editor ends the file with a newline the note did not have
        text = edited[:-1] if edited.endswith("\n") and not current.endswith("\n") else edited
    if text is None:
        body = steering.read_note(steered, trial).message
        if body:
            click.echo(body, nl=not body.endswith("\n"))
        else:  # nothing on stdout, so `> note.md` gets an empty file
            whose = "the study" if trial is None else f"trial {trial}"
            click.echo(f"{study}: {whose} has no note", err=True)
        return
    click.echo(steering.note(steered, trial, text).message)


def _read_text(path: str) -> str:
    """A note's text from a file (``-``: stdin), or one line saying why it can't be read."""
    import sys

    from tui_hpo.errors import UserError

    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UserError(f"--file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"--file {path}: not UTF-8 text") from None


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
    tag,
    untag,
    note,
)
