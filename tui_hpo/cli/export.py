"""``tui-hpo export``: a study's trials as CSV or JSON, in the columns of Optuna's
``study.trials_dataframe()``, without pandas and without reading trials through Optuna
(``tui_hpo.data.export`` says what comes out and why)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click

from tui_hpo.cli.options import storage_option, target
from tui_hpo.errors import UserError

FORMATS = ("csv", "json")  # the same as tui_hpo.data.export.FORMATS, without importing numpy


def _format(fmt: str | None, output: str | None) -> str:
    """The format asked for; without one, ``json`` for an output file named ``*.json``, else
    ``csv``."""
    if fmt is None:
        return "json" if output and output.lower().endswith(".json") else "csv"
    chosen = fmt.strip().lower()
    if chosen not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: use csv or json")
    return chosen


def _write_stdout(write: Callable[[TextIO], None]) -> None:
    out: TextIO = click.get_text_stream("stdout")
    try:
        write(out)
        out.flush()
    except BrokenPipeError:
        # the reader left (``| head``): not an error; keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@click.command()
@click.argument("study")
@click.option(
    "--format",
    "fmt",
    default=None,
    metavar="csv|json",
    help="Output format (default: json for an --output named *.json, else csv).",
)
@click.option(
    "--filter",
    "filter_text",
    default="",
    metavar="EXPR",
    help="Only the trials this matches, in the app's filter language "
    "('state == complete and lr < 1e-3').",
)
@click.option(
    "--output", "-o", default=None, metavar="FILE", help="Write to FILE (default: stdout)."
)
@storage_option
def export(
    study: str, fmt: str | None, filter_text: str, output: str | None, storage: str | None
) -> None:
    """Every trial of STUDY as CSV or JSON: the columns of Optuna's trials_dataframe()
    (number, values, datetimes, duration, params_*, user_attrs_*, system_attrs_*, state),
    then tui-hpo's sampler and fail_reason."""
    from tui_hpo.data import export as exporting
    from tui_hpo.data import filters, summaries
    from tui_hpo.storage.engines import open_storage

    chosen = _format(fmt, output)
    if output is not None and Path(output).is_dir():
        raise UserError(f"can't write {output}: it is a folder")
    filters.parse(filter_text)  # a mistake in the text is reported before the storage is opened
    where = target(storage)
    engine = open_storage(where, must_exist=True).engine
    try:
        with engine.connect() as con:
            ids = summaries.study_ids(con)
        if study not in ids:
            known = ", ".join(sorted(ids)[:10]) or "none"
            raise UserError(f"no study named {study!r} in this storage (studies: {known})")
        table = exporting.read_table(engine, ids[study]).filtered(filter_text)
    finally:
        engine.dispose()

    def write(out: TextIO) -> None:
        table.write(out, chosen)

    if output is None or output == "-":
        _write_stdout(write)
    else:
        exporting.write_file(output, write)
        click.echo(f"{len(table)} trials of {study!r} written to {output} ({chosen})", err=True)
