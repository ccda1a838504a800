"""The ``tui-hpo`` command: one click group, a subcommand per job.

Heavy imports (optuna, torch, textual) happen inside the subcommands, so ``tui-hpo --help``
stays fast. Anything the user got wrong surfaces as ``UserError``: one line on stderr and a
non-zero exit (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tui_hpo.errors import FAILURE, UserError

STORAGE_HELP = (
    "Storage URL (default: $TUI_HPO_STORAGE, else $OPTUNA_STORAGE, else sqlite:///tui-hpo.db)."
)


class Group(click.Group):
    """Turns UserError (and a storage that stops answering) into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except Exception as exc:
            if type(exc).__module__.startswith("sqlalchemy"):
                from tui_hpo.storage import _one_line

                click.echo(f"error: storage failed: {_one_line(exc)}", err=True)
                ctx.exit(FAILURE)
            raise


def storage_option(func: Any) -> Any:
    return click.option("--storage", "storage", default=None, help=STORAGE_HELP)(func)


def heartbeat_options(func: Any) -> Any:
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


def _target(url: str | None) -> Any:
    """The checked storage URL; also quiets Optuna's INFO logging, which would scribble over
    the progress bar and the status table."""
    import optuna

    from tui_hpo.storage import parse_url, resolve_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return parse_url(resolve_url(url))


def _heartbeat(interval: int, grace: int | None, retry: int | None) -> Any:
    from tui_hpo.storage import Heartbeat

    return Heartbeat(interval=interval, grace_period=grace, retry_failed=retry)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tui-hpo")
def cli() -> None:
    """Run, watch and steer Optuna hyperparameter searches on GPU machines."""


@cli.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study name (created if missing).")
@storage_option
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run (all workers).")
@click.option("--workers", "-w", type=int, default=1, show_default=True)
@click.option("--gpus", default=None, help="GPUs to use: all (default when any), none, or 0,1.")
@click.option("--workers-per-gpu", type=int, default=None, metavar="K", help="At most K per GPU.")
@click.option(
    "--sampler", default=None, help="tpe (default), gp, cmaes, nsga2, nsga3, qmc, random, grid."
)
@click.option("--sampler-kwargs", default=None, metavar="JSON")
@click.option(
    "--pruner",
    default=None,
    help="median (default), percentile, hyperband, "
    "successive-halving, threshold, wilcoxon, patient, none.",
)
@click.option("--pruner-kwargs", default=None, metavar="JSON")
@click.option(
    "--timeout", type=float, default=None, metavar="SECONDS", help="Start no trial after this long."
)
@click.option("--seed", type=int, default=None, help="Base seed (each worker adds its id).")
@click.option(
    "--direction",
    "--directions",
    "directions",
    multiple=True,
    help="minimize or maximize; repeat or comma-separate for several objectives.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Worker logs (default: ./tui-hpo-logs/STUDY).",
)
@heartbeat_options
def launch(
    objective: str,
    study: str,
    storage: str | None,
    n_trials: int | None,
    workers: int,
    gpus: str | None,
    workers_per_gpu: int | None,
    sampler: str | None,
    sampler_kwargs: str | None,
    pruner: str | None,
    pruner_kwargs: str | None,
    timeout: float | None,
    seed: int | None,
    directions: tuple[str, ...],
    log_dir: Path | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
) -> None:
    """Start WORKERS worker processes on OBJECTIVE (module:function or file.py:function)."""
    from tui_hpo import launcher, progress
    from tui_hpo.objective import parse_directions
    from tui_hpo.samplers import parse_kwargs, pruner_spec, sampler_spec

    if sampler_kwargs and not sampler:
        raise UserError("--sampler-kwargs needs --sampler")
    if pruner_kwargs and not pruner:
        raise UserError("--pruner-kwargs needs --pruner")
    request = launcher.LaunchRequest(
        objective=objective,
        study=study,
        storage=_target(storage),
        n_trials=n_trials,
        workers=workers,
        gpus=gpus,
        workers_per_gpu=workers_per_gpu,
        sampler=(
            sampler_spec(sampler, parse_kwargs(sampler_kwargs, "--sampler-kwargs"))
            if sampler
            else None
        ),
        pruner=(
            pruner_spec(pruner, parse_kwargs(pruner_kwargs, "--pruner-kwargs")) if pruner else None
        ),
        timeout=timeout,
        seed=seed,
        directions=parse_directions(directions),
        heartbeat=_heartbeat(heartbeat_interval, grace_period, retry_failed),
        log_dir=log_dir,
    )
    plan = launcher.plan(request)
    sys.exit(progress.run_launch(plan))


@cli.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study to join (must exist).")
@storage_option
@click.option("--log-file", default=None, hidden=True)
@heartbeat_options
def worker(
    objective: str,
    study: str,
    storage: str | None,
    log_file: str | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
) -> None:
    """Run trials of STUDY in this process until its budget is spent or it is stopped.

    Start it on any machine that can reach the storage to add that machine to the search.
    """
    from tui_hpo import worker as worker_mod

    config = worker_mod.WorkerConfig(
        objective=objective,
        study=study,
        storage=_target(storage),
        heartbeat=_heartbeat(heartbeat_interval, grace_period, retry_failed),
        log_path=log_file,
    )
    sys.exit(worker_mod.run(config))


@cli.command()
@click.option("--study", "-s", default=None, help="Only this study, with its workers.")
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable (docs/status-json.md).")
def status(study: str | None, storage: str | None, as_json: bool) -> None:
    """Studies in the storage: trials per state, best value(s), workers."""
    from tui_hpo import progress, reads
    from tui_hpo.storage import open_storage

    target = _target(storage)
    engine = open_storage(target, must_exist=True).engine
    with engine.connect() as con:
        if study is not None and study not in reads.study_ids(con):
            raise UserError(f"no study named {study!r} in {target.masked}")
        summaries = reads.summaries(con, study)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "version": 1,
                    "storage": target.masked,
                    "studies": [s.to_json() for s in summaries],
                },
                indent=2,
            )
        )
        return
    progress.print_status(target.masked, summaries, with_workers=study is not None)


def main() -> None:
    cli(prog_name="tui-hpo")
