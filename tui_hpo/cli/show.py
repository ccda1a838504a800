"""Commands that only read: ``status``, ``workers`` and ``logs``."""

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


@click.command()
@click.argument("study")
@click.argument("trial", type=int)
@storage_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the trial ends.")
def logs(study: str, trial: int, storage: str | None, follow: bool) -> None:
    """The output (stdout and stderr) of command trial TRIAL of STUDY, kept by its worker."""
    import time

    from tui_hpo.data import outputs, summaries
    from tui_hpo.storage.engines import open_engine

    where = target(storage)
    engine = open_engine(where, must_exist=True)

    def read() -> outputs.TrialOutput:
        with engine.connect() as con:
            study_id = summaries.study_ids(con).get(study)
            if study_id is None:
                raise UserError(f"no study named {study!r} in {where.masked}")
            found = outputs.trial_output(con, study_id, trial)
        if found is None:
            raise UserError(f"study {study!r} has no trial {trial}")
        return found

    found = read()
    if found.path is None:
        raise UserError(
            f"trial {trial} of {study!r} ran a Python function: its output is in its worker's "
            f"log (tui-hpo workers {study} --all)"
        )
    if not found.is_local:
        raise UserError(f"trial {trial} ran on {found.host}: its output is there, in {found.path}")
    out = click.get_binary_stream("stdout")
    try:
        with open(found.path, "rb") as handle:
            out.write(handle.read())
            out.flush()
            checked = time.monotonic()
            while follow and not found.ended:
                chunk = handle.read()
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                time.sleep(0.2)
                if time.monotonic() - checked > 1.0:
                    found, checked = read(), time.monotonic()
            out.write(handle.read())  # what came between the last read and the trial's end
    except FileNotFoundError:
        raise UserError(f"trial {trial}'s output {found.path} is gone") from None
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
