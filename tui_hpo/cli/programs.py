"""A program as the objective, from the command line: ``--sweep FILE`` or ``--command CMD``
with ``--param`` and ``--metric`` (docs/sweeps.md).

Both end as a sweep file that every worker reads (``sweep:PATH``, wherever it runs): the user's
own file as it is, or one written beside the workers' logs when flags made it (``--command``)
or changed where trials run (``--cwd``). The file is written only once every check passed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tui_hpo.errors import UserError


def program_options(func: Any) -> Any:
    """The options of ``launch`` and ``create`` that name a program instead of a function."""
    for option in reversed(
        [
            click.option(
                "--sweep",
                "sweep_file",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="A W&B sweep file (program, command, method, metric, parameters, ...): "
                "each trial runs its program.",
            ),
            click.option(
                "--command",
                "command",
                default=None,
                metavar="CMD",
                help="A program to run per trial, {param} filled in: 'python train.py --lr {lr}'.",
            ),
            click.option(
                "--param",
                "params",
                multiple=True,
                metavar="NAME=DIST:ARGS",
                help="With --command: lr=log_uniform_values:1e-5:1e-1, layers=int_uniform:1:8, "
                "act=values:relu,tanh.",
            ),
            click.option(
                "--metric",
                "metrics",
                multiple=True,
                metavar="NAME[:GOAL]",
                help="With --command: the metric the program prints (val_loss:minimize); "
                "repeat for several objectives.",
            ),
            click.option(
                "--cwd",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="Where each trial's program runs (default: the sweep file's folder, or "
                "here with --command).",
            ),
        ]
    ):
        func = option(func)
    return func


@dataclass(frozen=True)
class Objective:
    """What the objective is, once the command line is read."""

    text: str | None
    """``module:function`` or ``file.py:function`` as given, or None for a program."""
    sweep: Any = None
    """The checked ``Sweep``, for a program."""
    mapping: dict[str, Any] | None = None
    """The sweep file to write for the workers (flags or ``--cwd``), or None: the user's own."""


def read_objective(
    objective: str | None,
    sweep_file: Path | None,
    command: str | None,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    cwd: Path | None,
) -> Objective:
    """The one objective the command line names, checked; nothing is written yet."""
    given = [
        name
        for name, v in (("OBJECTIVE", objective), ("--sweep", sweep_file), ("--command", command))
        if v is not None
    ]
    if len(given) != 1:
        what = " and ".join(given) if given else "none"
        raise UserError(
            "give one objective: MODULE:FUNCTION, FILE.py:FUNCTION, --sweep FILE or "
            f"--command 'CMD' (got {what})"
        )
    if command is None:
        for flag, value in (("--param", params), ("--metric", metrics)):
            if value:
                raise UserError(f"{flag} needs --command (a sweep file names its own)")
    if objective is not None and not objective.lower().endswith((".yaml", ".yml")):
        if objective.startswith("sweep:"):
            sweep_file = Path(objective.removeprefix("sweep:"))
        else:
            if cwd is not None:
                raise UserError("--cwd applies to a program (--sweep or --command)")
            return Objective(objective)
    elif objective is not None:
        sweep_file = Path(objective)
    from tui_hpo.runtime import sweeps

    if command is not None:
        if not metrics:
            raise UserError("--command needs --metric NAME[:minimize|maximize] (what it prints)")
        mapping = sweeps.sweep_from_flags(
            command, list(params), list(metrics), cwd=(cwd or Path.cwd()).absolute()
        )
        return Objective(None, sweeps.sweep_from_mapping(mapping), mapping)
    assert sweep_file is not None
    path = sweep_file.expanduser().absolute()
    if not path.is_file():
        raise UserError(f"sweep file {sweep_file} not found")
    sweep = sweeps.load_sweep(path, cwd=cwd.absolute() if cwd else None)
    if cwd is None:
        return Objective(f"sweep:{path}", sweep)
    mapping = dict(sweep.raw)
    mapping["cwd"] = str(sweep.cwd)
    return Objective(None, sweep, mapping)


@contextlib.contextmanager
def objective_text(objective: Objective, log_dir: Path) -> Iterator[str]:
    """The spec workers load. A sweep made from flags is written beside their logs, and taken
    away again (with the folder, if it made it) when a later check fails: bad input leaves
    nothing behind."""
    if objective.text is not None:
        yield objective.text
        return
    from tui_hpo.runtime import sweeps

    path = (log_dir / "sweep.yaml").absolute()
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    sweeps.dump_sweep(objective.mapping or {}, path)
    try:
        yield f"sweep:{path}"
    except BaseException:
        path.unlink(missing_ok=True)
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def say_warnings(objective: Objective) -> None:
    for line in getattr(objective.sweep, "warnings", ()):
        click.echo(f"warning: {line}", err=True)
