"""Commands that only read: ``status`` and ``workers``."""

from __future__ import annotations

import json

import click

from tui_hpo.cli.options import storage_option, target
from tui_hpo.errors import UserError


def _summaries(storage: str | None, study: str | None) -> tuple[str, list]:  # type: ignore[type-arg]
    """The storage's masked URL and the summaries of its studies (or of ``study``), with the
    Slurm tasks of studies that have Slurm jobs as ``squeue`` shows them."""
    from tui_hpo.data import summaries
    from tui_hpo.storage.engines import open_storage

    where = target(storage)
    engine = open_storage(where, must_exist=True).engine
    with engine.connect() as con:
        if study is not None and study not in summaries.study_ids(con):
            raise UserError(f"no study named {study!r} in {where.masked}")
        return where.masked, summaries.summaries(con, study, queue=True)


@click.command()
@click.option("--study", "-s", default=None, help="Only this study, with its workers.")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (docs/status-json.md).")
def status(study: str | None, storage: str | None, as_json: bool) -> None:
    """Studies in the storage: trials per state, best value(s), workers."""
    from tui_hpo.cli import status_tables

    masked, found = _summaries(storage, study)
    if as_json:
        document = {"version": 1, "storage": masked, "studies": [s.to_json() for s in found]}
        click.echo(json.dumps(document, indent=2))
        return
    status_tables.print_status(masked, found, with_workers=study is not None)


@click.command()
@click.argument("study", required=False)
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@click.option("--all", "show_all", is_flag=True, help="Include workers that have exited.")
def workers(study: str | None, storage: str | None, as_json: bool, show_all: bool) -> None:
    """Every worker of STUDY (or of every study), on this machine and others; Slurm workers
    with their task (JOB_TASK), and tasks still pending in Slurm's queue."""
    from tui_hpo.cli import status_tables

    masked, found = _summaries(storage, study)
    if not show_all:
        for summary in found:
            summary.workers[:] = [w for w in summary.workers if w.state != "exited"]
    if as_json:
        rows = [dict(w.to_json(), study=s.name) for s in found for w in s.workers]
        click.echo(json.dumps({"version": 1, "storage": masked, "workers": rows}, indent=2))
        return
    console = status_tables.stdout_console()
    for summary in found:
        status_tables.print_workers(console, summary)
