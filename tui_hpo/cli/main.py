"""The ``tui-hpo`` command: one click group, a subcommand per job.

Heavy imports (optuna, torch, textual) happen inside the subcommands, so ``tui-hpo --help``
stays fast. Anything the user got wrong surfaces as ``UserError``: one line on stderr and a
non-zero exit (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tui_hpo.cli import export, run, script, serve, show, steer, studies
from tui_hpo.cli.options import mask_own_title, storage_option, target
from tui_hpo.errors import FAILURE, UserError, one_line


class Group(click.Group):
    """Turns UserError (and a storage that stops answering) into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            # one line, whatever the user typed into a name (a newline in a JSON key, say)
            click.echo("error: " + " ".join(exc.message.splitlines()), err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if type(exc).__module__.startswith("sqlalchemy"):
                click.echo(f"error: storage failed: {one_line(exc)}", err=True)
                ctx.exit(FAILURE)
            raise


@click.group(
    cls=Group,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tui-hpo")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run, watch and steer Optuna hyperparameter searches on GPU machines.

    With no command, opens the full-screen app on the default storage (see `tui-hpo ui`).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(ui)


@cli.command()
@storage_option
@click.option("--study", "-s", default=None, help="Open this study directly.")
def ui(storage: str | None = None, study: str | None = None) -> None:
    """Open the full-screen app on the storage (workers outlive it)."""
    from tui_hpo.app.app import run as run_app
    from tui_hpo.errors import UserError
    from tui_hpo.storage.engines import act_as, check_reachable, crowded

    where = target(storage)
    mask_own_title(where)
    act_as("app")
    try:
        check_reachable(where, must_exist=False)
    except UserError as exc:
        if not crowded(exc):
            raise
        # a server with no free slot just now: the app says so in its banner and retries
    run_app(where, study)


for command in (
    run.launch,
    run.create,
    run.worker,
    show.status,
    show.workers,
    show.logs,
    export.export,
    serve.serve,
    *steer.COMMANDS,
    *studies.COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    """The ``tui-hpo`` script. A worker or a launch that is done leaves without tearing down
    its interpreter (``script``); what must happen at exit happens first: engines are disposed
    where they are used, logs and output flushed here."""
    script.as_script = True
    try:
        cli(prog_name="tui-hpo")
    except SystemExit as exc:
        if not script.exit_fast:
            raise
        import logging

        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed pipe: nothing more to say to it
        os._exit(code)
