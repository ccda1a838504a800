"""Commands on whole studies: ``copy-study`` (with a filter: how bad trials are dropped, since
Optuna can't delete one) and ``delete-study``. Each parses its arguments, calls its verb in
``tui_hpo.steering`` and prints the outcome; the checks and the words are the verb's."""

from __future__ import annotations

import sys

import click

from tui_hpo.cli.options import STORAGE_HELP, target


def _hide_urls(*urls: str | None) -> None:
    """Mask passwords of the URLs given on the command line in this process's title while it
    runs (a copy of a big study takes a while); as ``options.mask_own_title``, for two URLs."""
    from tui_hpo.storage.urls import mask_url

    shown = [(u, mask_url(u)) for u in urls if u and mask_url(u) != u]
    if not shown:
        return
    import setproctitle

    words = []
    for arg in sys.argv[1:]:
        for url, masked in shown:
            arg = arg.replace(url, masked)
        words.append(arg)
    setproctitle.setproctitle(" ".join(["tui-hpo", *words]))


@click.command("copy-study")
@click.argument("src")
@click.argument("dst")
@click.option(
    "--filter",
    "filter_text",
    default=None,
    metavar="EXPR",
    help="Copy only the trials this matches, in the app's filter language "
    "('state == complete and lr < 1e-3'); default: every trial.",
)
@click.option("--storage", "storage", default=None, help=STORAGE_HELP)
@click.option(
    "--to-storage",
    default=None,
    metavar="URL",
    help="Make the copy in this storage instead (a new SQLite file is created).",
)
def copy_study(
    src: str, dst: str, filter_text: str | None, storage: str | None, to_storage: str | None
) -> None:
    """Copy study SRC as a new study DST, all of its trials or those --filter matches.

    The copy is a plain Optuna study: directions, metric names, study attrs, and each trial
    with its state, values, params, intermediate values, attrs and times. Its trials are
    renumbered 0, 1, 2... in SRC's order; attrs that name a trial number (tui_hpo.retry_of)
    keep SRC's numbers. Workers, orders and sampler settings are not copied.
    """
    from tui_hpo import steering
    from tui_hpo.storage.urls import parse_url

    _hide_urls(storage, to_storage)
    where = target(storage)
    to = parse_url(to_storage) if to_storage is not None else None
    outcome = steering.copy_study(steering.Steered(where, src), dst, filter_text=filter_text, to=to)
    click.echo(outcome.message)


@click.command("delete-study")
@click.argument("study")
@click.option("--storage", "storage", default=None, help=STORAGE_HELP)
@click.option("--yes", "-y", is_flag=True, help="Don't ask first (needed without a terminal).")
@click.option("--force", is_flag=True, help="Delete it even while workers of it are live.")
@click.pass_context
def delete_study(
    ctx: click.Context, study: str, storage: str | None, yes: bool, force: bool
) -> None:
    """Delete STUDY for good: its trials, and tui-hpo's own rows for it (orders, settings,
    workers, curves). Refused while it has live workers, unless --force. Asks first, unless
    --yes; without a terminal to ask in, --yes is required."""
    from tui_hpo import steering
    from tui_hpo.errors import UserError

    def confirm(question: str) -> bool:
        if not sys.stdin.isatty():
            raise UserError(
                f"delete-study deletes {study!r} for good and there is no terminal to ask "
                "in: add --yes"
            )
        return click.confirm(question, default=False)

    _hide_urls(storage)
    outcome = steering.delete_study(
        steering.Steered(target(storage), study), force=force, confirm=None if yes else confirm
    )
    click.echo(outcome.message)
    if not outcome.details.get("deleted"):
        ctx.exit(1)


COMMANDS = (copy_study, delete_study)
