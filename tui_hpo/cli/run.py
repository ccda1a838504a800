"""Commands that run a search: ``launch`` (a study and its workers), ``create`` (a study for
workers started elsewhere) and ``worker`` (one worker joining a study, or ``--slurm``: an array
of them submitted to Slurm)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tui_hpo.cli.options import (
    heartbeat,
    heartbeat_options,
    mask_own_title,
    slurm_options,
    storage_option,
    target,
)
from tui_hpo.cli.programs import objective_text, program_options, read_objective, say_warnings
from tui_hpo.cli.script import quick_start_and_exit
from tui_hpo.errors import UserError
from tui_hpo.storage.urls import STORAGE_FILE_ENV


def _study_name(study: str | None, sweep: Any) -> str:
    name = study or getattr(sweep, "name", None)
    if not name:
        raise UserError(
            "--study is needed" + (" (or a name: in the sweep file)" if sweep is not None else "")
        )
    return name


def _sweep_settings(settings: dict[str, Any], sweep: Any) -> None:
    """A sweep's sampler (its method) and pruner (its early_terminate) where no flag chose one;
    a sweep without early_terminate prunes nothing, as W&B."""
    from tui_hpo.control.specs import pruner_spec

    if settings["sampler"] is None:
        settings["sampler"] = sweep.sampler
    if settings["pruner"] is None:
        settings["pruner"] = sweep.pruner or pruner_spec("none")


def _study_settings(
    sampler: str | None,
    sampler_kwargs: str | None,
    pruner: str | None,
    pruner_kwargs: str | None,
    directions: tuple[str, ...],
    metric_names: tuple[str, ...],
) -> dict[str, Any]:
    """What ``launch`` and ``create`` record about the study itself, checked."""
    from tui_hpo.control.specs import parse_kwargs, pruner_spec, sampler_spec
    from tui_hpo.runtime.objectives import parse_directions, parse_metric_names

    if sampler_kwargs and not sampler:
        raise UserError("--sampler-kwargs needs --sampler")
    if pruner_kwargs and not pruner:
        raise UserError("--pruner-kwargs needs --pruner")
    return {
        "sampler": sampler_spec(sampler, parse_kwargs(sampler_kwargs, "--sampler-kwargs"))
        if sampler
        else None,
        "pruner": pruner_spec(pruner, parse_kwargs(pruner_kwargs, "--pruner-kwargs"))
        if pruner
        else None,
        "directions": parse_directions(directions),
        "metric_names": parse_metric_names(metric_names),
    }


@click.command()
@click.argument("objective", required=False)
@program_options
@click.option(
    "--study", "-s", default=None, help="Study name (created if missing; a sweep's name)."
)
@storage_option
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run (all workers).")
@click.option(
    "--workers",
    "-w",
    type=int,
    default=None,
    help="Local worker processes (default 1, or 0 with --hosts); with --slurm, array tasks.",
)
@click.option(
    "--hosts",
    default=None,
    metavar="HOST[:N],...",
    help="Also start N workers on each host through ssh (storage URL kept out of argv).",
)
@click.option(
    "--ssh-command",
    default="ssh",
    envvar="TUI_HPO_SSH",
    show_default=True,
    help="The ssh client and its options, e.g. 'ssh -F ~/.ssh/hpo_config'.",
)
@click.option(
    "--remote-command",
    default=None,
    help="How to run tui-hpo on the hosts or the Slurm nodes (e.g. /opt/venv/bin/tui-hpo; "
    "default: tui-hpo over ssh, this Python under Slurm).",
)
@slurm_options
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
    "--metric-names",
    "metric_names",
    multiple=True,
    metavar="NAMES",
    help="Names of the objectives, in order (error,n_params): shown, and usable in filters.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Worker logs (default: ./tui-hpo-logs/STUDY).",
)
@click.option(
    "--poll-interval",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How often a paused or idle worker checks its orders (default 0.5).",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Return once the workers are started (with --slurm: once queued; prints the job id).",
)
@heartbeat_options
def launch(
    objective: str | None,
    sweep_file: Path | None,
    command: str | None,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    cwd: Path | None,
    study: str | None,
    storage: str | None,
    n_trials: int | None,
    workers: int | None,
    hosts: str | None,
    ssh_command: str,
    remote_command: str | None,
    slurm: bool,
    slurm_args: str | None,
    gpus: str | None,
    workers_per_gpu: int | None,
    sampler: str | None,
    sampler_kwargs: str | None,
    pruner: str | None,
    pruner_kwargs: str | None,
    timeout: float | None,
    seed: int | None,
    directions: tuple[str, ...],
    metric_names: tuple[str, ...],
    log_dir: Path | None,
    poll_interval: float | None,
    detach: bool,
    trial_timeout: float | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
    max_consecutive_failures: int,
) -> None:
    """Start WORKERS worker processes on OBJECTIVE (module:function or file.py:function), or
    on a program: --sweep FILE (a W&B sweep file) or --command 'CMD' with --param and --metric.

    Until the budget is spent it shows progress; Ctrl-C stops the workers (their running
    trials end FAIL). With --slurm the workers are one Slurm job array instead: Ctrl-C cancels
    its pending tasks and lets the running workers finish their trial.
    """
    quick_start_and_exit()
    from tui_hpo.runtime import launcher

    chosen = read_objective(objective, sweep_file, command, params, metrics, cwd)
    settings = _study_settings(
        sampler, sampler_kwargs, pruner, pruner_kwargs, directions, metric_names
    )
    sweep = chosen.sweep
    study = _study_name(study, sweep)
    if sweep is not None:  # the file's own choices, where no flag says otherwise
        n_trials = n_trials if n_trials is not None else sweep.run_cap
        workers = workers if workers is not None else sweep.workers
        gpus = gpus if gpus is not None else sweep.gpus
        trial_timeout = trial_timeout if trial_timeout is not None else sweep.trial_timeout
        _sweep_settings(settings, sweep)
    where = target(storage, quiet_optuna=False)  # Optuna is quieted after the fork
    mask_own_title(where)
    from tui_hpo.storage.engines import act_as

    act_as("launch")
    say_warnings(chosen)
    log_dir = log_dir or launcher.default_log_dir(study)
    with objective_text(chosen, log_dir) as spec:
        request = launcher.LaunchRequest(
            objective=spec,
            study=study,
            storage=where,
            n_trials=n_trials,
            workers=workers if workers is not None else (0 if hosts else 1),
            hosts=hosts,
            ssh_command=ssh_command,
            remote_command=remote_command or "tui-hpo",
            slurm=slurm,
            slurm_args=slurm_args,
            slurm_command=remote_command,
            gpus=gpus,
            workers_per_gpu=workers_per_gpu,
            timeout=timeout,
            seed=seed,
            heartbeat=heartbeat(heartbeat_interval, grace_period, retry_failed),
            log_dir=log_dir,
            poll_interval=poll_interval,
            trial_timeout=trial_timeout,
            max_consecutive_failures=max_consecutive_failures,
            **settings,
        )
        started = launcher.Launcher(launcher.plan(request), early_start=True)
    from tui_hpo.cli import progress  # rich: after the workers are on their way

    sys.exit(progress.run_launch(started, detach=detach))


@click.command()
@click.argument("objective", required=False)
@program_options
@click.option(
    "--study", "-s", default=None, help="Study name (created if missing; a sweep's name)."
)
@storage_option
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run (all workers).")
@click.option("--sampler", default=None)
@click.option("--sampler-kwargs", default=None, metavar="JSON")
@click.option("--pruner", default=None)
@click.option("--pruner-kwargs", default=None, metavar="JSON")
@click.option("--seed", type=int, default=None)
@click.option("--direction", "--directions", "directions", multiple=True)
@click.option("--metric-names", "metric_names", multiple=True, metavar="NAMES")
def create(
    objective: str | None,
    sweep_file: Path | None,
    command: str | None,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    cwd: Path | None,
    study: str | None,
    storage: str | None,
    n_trials: int | None,
    sampler: str | None,
    sampler_kwargs: str | None,
    pruner: str | None,
    pruner_kwargs: str | None,
    seed: int | None,
    directions: tuple[str, ...],
    metric_names: tuple[str, ...],
) -> None:
    """Create STUDY with its budget, sampler and pruner, and start no worker.

    For workers started elsewhere: `tui-hpo worker` under Slurm, say (docs/slurm.md).
    """
    from tui_hpo.runtime import launcher

    chosen = read_objective(objective, sweep_file, command, params, metrics, cwd)
    settings = _study_settings(
        sampler, sampler_kwargs, pruner, pruner_kwargs, directions, metric_names
    )
    study = _study_name(study, chosen.sweep)
    if chosen.sweep is not None:
        n_trials = n_trials if n_trials is not None else chosen.sweep.run_cap
        _sweep_settings(settings, chosen.sweep)
    where = target(storage)
    say_warnings(chosen)
    with objective_text(chosen, launcher.default_log_dir(study)) as spec:
        request = launcher.LaunchRequest(
            objective=spec,
            study=study,
            storage=where,
            n_trials=n_trials,
            workers=1,
            gpus="none",
            seed=seed,
            **settings,
        )
        run = launcher.Launcher(launcher.plan(request))
    budget = f"budget {n_trials}" if n_trials else "no budget"
    click.echo(f"{study}: ready ({','.join(run.plan.directions)}, {budget}); no worker started")


@click.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study to join (must exist).")
@storage_option
@click.option(
    "--storage-file",
    default=None,
    envvar=STORAGE_FILE_ENV,
    metavar="PATH",
    help="Read the storage URL from this file (its first line): how workers under a "
    f"scheduler get it (${STORAGE_FILE_ENV} too).",
)
@slurm_options
@click.option(
    "--workers",
    "-w",
    type=int,
    default=None,
    help="With --slurm: array tasks to submit, one worker each.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --slurm: the tasks' logs (default: ./tui-hpo-logs/STUDY).",
)
@click.option("--log-file", default=None, hidden=True)
@click.option(
    "--poll-interval",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How often a paused or idle worker checks its orders (default 0.5).",
)
@click.option("--no-supervisor", is_flag=True, hidden=True)
@heartbeat_options
def worker(
    objective: str,
    study: str,
    storage: str | None,
    storage_file: str | None,
    slurm: bool,
    slurm_args: str | None,
    workers: int | None,
    log_dir: Path | None,
    log_file: str | None,
    poll_interval: float | None,
    no_supervisor: bool,
    trial_timeout: float | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
    max_consecutive_failures: int,
) -> None:
    """Run trials of STUDY until its budget is spent or it is stopped.

    Start it on any machine that can reach the storage to add that machine to the search. It
    runs as two processes: a small supervisor that obeys fail-trial (kills and replaces the
    trial process) and the process that runs trials. With --slurm it submits WORKERS of them
    to Slurm as one job array instead, and returns once they are queued.
    """
    quick_start_and_exit()

    from tui_hpo.runtime import worker_config

    if storage is not None and storage_file is not None:
        source = click.get_current_context().get_parameter_source("storage_file")
        if source != click.core.ParameterSource.ENVIRONMENT:
            raise UserError("give --storage or --storage-file, not both")
        storage_file = None  # --storage on the command line beats the environment's file
    if not slurm:
        for flag, value in (
            ("--workers", workers),
            ("--slurm-args", slurm_args),
            ("--log-dir", log_dir),
        ):
            if value is not None:
                raise UserError(f"{flag} needs --slurm (without it, this is one worker)")
    if storage_file is not None:
        from tui_hpo.storage.urls import read_storage_file

        storage = read_storage_file(storage_file)
    where = target(storage, quiet_optuna=no_supervisor or slurm)
    mask_own_title(where)
    if poll_interval is not None and poll_interval <= 0:
        raise UserError("--poll-interval must be more than 0 seconds")
    if trial_timeout is not None and trial_timeout <= 0:
        raise UserError("--trial-timeout must be more than 0 seconds")
    if max_consecutive_failures < 0:
        raise UserError("--max-consecutive-failures must be 0 (never stop) or more")
    config = worker_config.WorkerConfig(
        objective=objective,
        study=study,
        storage=where,
        heartbeat=heartbeat(heartbeat_interval, grace_period, retry_failed),
        log_path=log_file,
        poll_interval=poll_interval or worker_config.POLL_INTERVAL_S,
        trial_timeout=trial_timeout,
        max_consecutive_failures=max_consecutive_failures,
    )
    if slurm:
        _submit_workers(config, workers, slurm_args, log_dir)
        return
    if no_supervisor:
        from tui_hpo.runtime import worker as trial_process

        sys.exit(trial_process.run(config))
    from tui_hpo.runtime import supervisor
    from tui_hpo.runtime.objectives import parse_spec

    parse_spec(objective)  # its form; the trial process loads it (exit 2: no restart loop)
    sys.exit(supervisor.run(config))


def _submit_workers(
    config: Any, workers: int | None, slurm_args: str | None, log_dir: Path | None
) -> None:
    """``worker --slurm``: an array of WORKERS workers for an existing study, its arguments
    checked by slurmctld (``sbatch --test-only``) before anything is submitted."""
    from tui_hpo.control.orders import study_id_of
    from tui_hpo.runtime import slurm
    from tui_hpo.runtime.objectives import parse_spec
    from tui_hpo.runtime.worker_config import default_log_dir
    from tui_hpo.storage.engines import open_engine

    if workers is None or workers < 1:
        raise UserError("--slurm needs --workers N (array tasks to submit), N at least 1")
    parse_spec(config.objective)
    recipe, _ = slurm.make_recipe(
        objective=config.objective,
        study=config.study,
        worker_args=config.worker_args()[3:],
        slurm_args=slurm_args,
        log_dir=log_dir or default_log_dir(config.study),
    )
    engine = open_engine(config.storage, must_exist=True)
    try:
        study_id = study_id_of(engine, config.study)
        slurm.check(recipe, workers)
        job = slurm.submit(engine, study_id, config.storage, recipe, workers)
    finally:
        engine.dispose()
    click.echo(job)
    click.echo(
        f"{config.study}: Slurm job {job}: {workers} worker(s) queued; logs in {recipe.log_dir}",
        err=True,
    )
