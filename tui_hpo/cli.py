"""The ``tui-hpo`` command: one click group, a subcommand per job.

Heavy imports (optuna, torch, textual) happen inside the subcommands, so ``tui-hpo --help``
stays fast. Anything the user got wrong surfaces as ``UserError``: one line on stderr and a
non-zero exit (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from tui_hpo import startup
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
            # one line, whatever the user typed into a name (a newline in a JSON key, say)
            click.echo("error: " + " ".join(exc.message.splitlines()), err=True)
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
        "--trial-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="A trial running longer is failed and its worker process replaced.",
    )(func)
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


def _target(url: str | None, *, quiet_optuna: bool = True) -> Any:
    """The checked storage URL; also quiets Optuna's INFO logging, which would scribble over
    the progress bar and the status table (not for the supervisor, which never loads Optuna
    unless it must)."""
    from tui_hpo.storage import parse_url, resolve_url

    if quiet_optuna:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return parse_url(resolve_url(url))


def _heartbeat(interval: int, grace: int | None, retry: int | None) -> Any:
    from tui_hpo.storage import Heartbeat

    return Heartbeat(interval=interval, grace_period=grace, retry_failed=retry)


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
    from tui_hpo.app.app import run

    target = _target(storage)
    from tui_hpo.storage import check_reachable

    check_reachable(target, must_exist=False)
    run(target, study)


@cli.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study name (created if missing).")
@storage_option
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run (all workers).")
@click.option(
    "--workers",
    "-w",
    type=int,
    default=None,
    help="Local worker processes (default 1, or 0 with --hosts).",
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
    default="tui-hpo",
    show_default=True,
    help="How to run tui-hpo on the hosts (e.g. /opt/venv/bin/tui-hpo).",
)
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
@click.option(
    "--poll-interval",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How often a paused or idle worker checks its orders (default 0.5).",
)
@click.option("--detach", is_flag=True, help="Return once the workers are started.")
@heartbeat_options
def launch(
    objective: str,
    study: str,
    storage: str | None,
    n_trials: int | None,
    workers: int | None,
    hosts: str | None,
    ssh_command: str,
    remote_command: str,
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
    poll_interval: float | None,
    detach: bool,
    trial_timeout: float | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
) -> None:
    """Start WORKERS worker processes on OBJECTIVE (module:function or file.py:function)."""
    _quick_start_and_exit()
    from tui_hpo import launcher
    from tui_hpo.objective import parse_directions
    from tui_hpo.samplers import parse_kwargs, pruner_spec, sampler_spec

    if sampler_kwargs and not sampler:
        raise UserError("--sampler-kwargs needs --sampler")
    if pruner_kwargs and not pruner:
        raise UserError("--pruner-kwargs needs --pruner")
    request = launcher.LaunchRequest(
        objective=objective,
        study=study,
        storage=_target(storage, quiet_optuna=False),  # quieted after the fork
        n_trials=n_trials,
        workers=workers if workers is not None else (0 if hosts else 1),
        hosts=hosts,
        ssh_command=ssh_command,
        remote_command=remote_command,
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
        poll_interval=poll_interval,
        trial_timeout=trial_timeout,
    )
    started = launcher.Launcher(launcher.plan(request), early_start=True)
    from tui_hpo import progress  # rich: after the workers are on their way

    sys.exit(progress.run_launch(started, detach=detach))


@cli.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study name (created if missing).")
@storage_option
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run (all workers).")
@click.option("--sampler", default=None)
@click.option("--sampler-kwargs", default=None, metavar="JSON")
@click.option("--pruner", default=None)
@click.option("--pruner-kwargs", default=None, metavar="JSON")
@click.option("--seed", type=int, default=None)
@click.option("--direction", "--directions", "directions", multiple=True)
def create(
    objective: str,
    study: str,
    storage: str | None,
    n_trials: int | None,
    sampler: str | None,
    sampler_kwargs: str | None,
    pruner: str | None,
    pruner_kwargs: str | None,
    seed: int | None,
    directions: tuple[str, ...],
) -> None:
    """Create STUDY with its budget, sampler and pruner, and start no worker.

    For workers started elsewhere: `tui-hpo worker` under Slurm, say (docs/slurm.md).
    """
    from tui_hpo import launcher
    from tui_hpo.objective import parse_directions
    from tui_hpo.samplers import parse_kwargs, pruner_spec, sampler_spec

    request = launcher.LaunchRequest(
        objective=objective,
        study=study,
        storage=_target(storage),
        n_trials=n_trials,
        workers=1,
        gpus="none",
        sampler=(
            sampler_spec(sampler, parse_kwargs(sampler_kwargs, "--sampler-kwargs"))
            if sampler
            else None
        ),
        pruner=(
            pruner_spec(pruner, parse_kwargs(pruner_kwargs, "--pruner-kwargs")) if pruner else None
        ),
        seed=seed,
        directions=parse_directions(directions),
    )
    run = launcher.Launcher(launcher.plan(request))
    budget = f"budget {n_trials}" if n_trials else "no budget"
    click.echo(f"{study}: ready ({','.join(run.plan.directions)}, {budget}); no worker started")


@cli.command()
@click.argument("objective")
@click.option("--study", "-s", required=True, help="Study to join (must exist).")
@storage_option
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
    log_file: str | None,
    poll_interval: float | None,
    no_supervisor: bool,
    trial_timeout: float | None,
    heartbeat_interval: int,
    grace_period: int | None,
    retry_failed: int | None,
) -> None:
    """Run trials of STUDY until its budget is spent or it is stopped.

    Start it on any machine that can reach the storage to add that machine to the search. It
    runs as two processes: a small supervisor that obeys fail-trial (kills and replaces the
    trial process) and the process that runs trials.
    """
    _quick_start_and_exit()

    from tui_hpo import worker_config

    target = _target(storage, quiet_optuna=no_supervisor)
    if poll_interval is not None and poll_interval <= 0:
        raise UserError("--poll-interval must be more than 0 seconds")
    if trial_timeout is not None and trial_timeout <= 0:
        raise UserError("--trial-timeout must be more than 0 seconds")
    config = worker_config.WorkerConfig(
        objective=objective,
        study=study,
        storage=target,
        heartbeat=_heartbeat(heartbeat_interval, grace_period, retry_failed),
        log_path=log_file,
        poll_interval=poll_interval or worker_config.POLL_INTERVAL_S,
        trial_timeout=trial_timeout,
    )
    if no_supervisor:
        from tui_hpo import worker as worker_mod

        sys.exit(worker_mod.run(config))
    from tui_hpo import supervisor
    from tui_hpo.objective import parse_spec

    parse_spec(objective)  # its form; the trial process loads it (exit 2: no restart loop)
    os.environ["TUI_HPO_STORAGE"] = target.url  # the trial process gets it, not its argv
    sys.exit(supervisor.run(config))


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


# steering --------------------------------------------------------------------------------------


class Steer:
    """A storage and one study in it, opened for a steering command."""

    def __init__(self, storage: str | None, study: str) -> None:
        from tui_hpo.control import study_id_of
        from tui_hpo.storage import open_storage

        self.target = _target(storage)
        self.storage = open_storage(self.target, must_exist=True)
        self.engine = self.storage.engine
        self.name = study
        self.study_id = study_id_of(self.engine, study)

    def optuna_study(self) -> Any:
        import optuna

        return optuna.load_study(study_name=self.name, storage=self.storage)


def _say(text: str) -> None:
    click.echo(text)


def steering(func: Any) -> Any:
    """The STUDY argument and --storage option every steering command takes."""
    func = storage_option(func)
    return click.argument("study")(func)


@cli.command()
@steering
def pause(study: str, storage: str | None) -> None:
    """Let running trials finish; start no new trial until resume."""
    from tui_hpo import control

    s = Steer(storage, study)
    control.set_paused(s.engine, s.study_id, True)
    _say(f"{study}: paused (running trials finish; no new trial starts until resume)")


@cli.command()
@steering
def resume(study: str, storage: str | None) -> None:
    """Undo pause: workers take new trials again."""
    from tui_hpo import control

    s = Steer(storage, study)
    control.set_paused(s.engine, s.study_id, False)
    _say(f"{study}: resumed")


def _freeze_report(study: str, verb: str, outcome: Any) -> None:
    pids = ", ".join(str(w.pid) for w in outcome.done) or "none"
    _say(f"{study}: {verb} {len(outcome.done)} local worker(s) (pid {pids})")
    if outcome.elsewhere:
        hosts = ", ".join(sorted({w.host for w in outcome.elsewhere}))
        _say(f"{len(outcome.elsewhere)} worker(s) on other hosts ({hosts}) left as they are: "
             "run this command there")  # fmt: skip


@cli.command()
@steering
def freeze(study: str, storage: str | None) -> None:
    """Stop this machine's workers at once (SIGSTOP); they keep their GPU memory."""
    from tui_hpo import processes

    s = Steer(storage, study)
    _freeze_report(study, "froze", processes.freeze(s.engine, s.study_id))


@cli.command()
@steering
def thaw(study: str, storage: str | None) -> None:
    """Continue frozen workers (SIGCONT) exactly where they were."""
    from tui_hpo import processes

    s = Steer(storage, study)
    _freeze_report(study, "thawed", processes.thaw(s.engine, s.study_id))


def _switch(kind: str, study: str, storage: str | None, name: str, kwargs: str | None) -> None:
    from tui_hpo import control
    from tui_hpo.samplers import parse_kwargs, pruner_spec, sampler_spec

    make = sampler_spec if kind == "sampler" else pruner_spec
    spec = make(name, parse_kwargs(kwargs, "--kwargs"))  # validated before anything is stored
    s = Steer(storage, study)
    control.set_setting(s.engine, s.study_id, kind, spec)
    _say(f"{study}: {kind} {spec.label()} from every worker's next trial")


@cli.command("set-sampler")
@steering
@click.argument("name")
@click.option("--kwargs", default=None, metavar="JSON", help="Sampler arguments.")
def set_sampler(study: str, storage: str | None, name: str, kwargs: str | None) -> None:
    """Switch the sampler of a running study (tpe, gp, cmaes, nsga2, nsga3, qmc, random, grid)."""
    _switch("sampler", study, storage, name, kwargs)


@cli.command("set-pruner")
@steering
@click.argument("name")
@click.option("--kwargs", default=None, metavar="JSON", help="Pruner arguments.")
def set_pruner(study: str, storage: str | None, name: str, kwargs: str | None) -> None:
    """Switch the pruner of a running study (median, percentile, hyperband, ..., none)."""
    _switch("pruner", study, storage, name, kwargs)


@cli.command("prune-trial")
@steering
@click.argument("number", type=int)
def prune_trial(study: str, storage: str | None, number: int) -> None:
    """Running trial NUMBER ends PRUNED at its next report."""
    from tui_hpo import trials

    s = Steer(storage, study)
    trials.order_prune(s.engine, s.study_id, number)
    _say(f"{study}: trial {number} ends PRUNED at its next report")


@cli.command("fail-trial")
@steering
@click.argument("number", type=int)
def fail_trial(study: str, storage: str | None, number: int) -> None:
    """Running trial NUMBER ends FAIL now; its worker process is killed and replaced."""
    from tui_hpo import trials

    s = Steer(storage, study)
    _say(f"{study}: " + trials.order_fail(s.optuna_study(), s.engine, number))


@cli.command()
@steering
@click.option("--params", required=True, metavar="JSON", help='e.g. {"lr": 0.001, "depth": 4}')
def enqueue(study: str, storage: str | None, params: str) -> None:
    """Queue a trial with these params; it runs next (on top of the trial budget)."""
    from tui_hpo import trials
    from tui_hpo.samplers import parse_kwargs

    values = parse_kwargs(params, "--params")
    if not values:
        raise UserError("--params needs at least one param")
    s = Steer(storage, study)
    trials.enqueue(s.optuna_study(), s.engine, values)
    _say(f"{study}: queued {json.dumps(values)}")


@cli.command()
@steering
def stop(study: str, storage: str | None) -> None:
    """Every worker of STUDY, on every machine, leaves after its current trial."""
    from tui_hpo import control

    s = Steer(storage, study)
    control.request_stop(s.engine, s.study_id)
    _say(f"{study}: workers leave after their current trial")


@cli.command()
@steering
@click.argument("workers", type=int)
def scale(study: str, storage: str | None, workers: int) -> None:
    """Grow or shrink this machine's workers of STUDY to WORKERS."""
    from tui_hpo import processes

    s = Steer(storage, study)
    result = processes.scale(s.engine, s.study_id, study, s.target.url, workers)
    if result.started:
        where = ", ".join("cpu" if g is None else f"GPU {g}" for g in result.started)
        _say(f"{study}: {result.before} -> {workers} local workers (started on {where})")
    elif result.stopping:
        pids = ", ".join(str(w.pid) for w in result.stopping)
        _say(f"{study}: {result.before} -> {workers} local workers "
             f"(pid {pids} leave after their current trial)")  # fmt: skip
    else:
        _say(f"{study}: already {workers} local workers")


@cli.command()
@click.argument("study", required=False)
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
@click.option("--all", "show_all", is_flag=True, help="Include workers that have exited.")
def workers(study: str | None, storage: str | None, as_json: bool, show_all: bool) -> None:
    """Every worker of STUDY (or of every study), on this machine and others."""
    from tui_hpo import progress, reads

    s_target = _target(storage)
    from tui_hpo.storage import open_storage

    engine = open_storage(s_target, must_exist=True).engine
    with engine.connect() as con:
        if study is not None and study not in reads.study_ids(con):
            raise UserError(f"no study named {study!r} in {s_target.masked}")
        summaries = reads.summaries(con, study)
    if not show_all:
        for summary in summaries:
            summary.workers[:] = [w for w in summary.workers if w.state != "exited"]
    if as_json:
        click.echo(json.dumps({
            "version": 1,
            "storage": s_target.masked,
            "workers": [dict(w.to_json(), study=x.name) for x in summaries for w in x.workers],
        }, indent=2))  # fmt: skip
        return
    console = progress.stdout_console()
    for summary in summaries:
        progress.print_workers(console, summary)


_as_script = False
"""Run as the ``tui-hpo`` script (``main``), not called in-process (click's test runner)."""

_exit_fast = False
"""Set by the commands whose start and end others wait for (``launch``, ``worker``)."""


def _quick_start_and_exit() -> None:
    """Start without the garbage collector (``startup``) and leave without interpreter
    teardown (``main``): only as the script, never inside a caller's process."""
    global _exit_fast
    if _as_script:
        _exit_fast = True
        startup.begin()


def main() -> None:
    """The ``tui-hpo`` script. A worker or a launch that is done leaves without tearing down
    its interpreter: that teardown (a tenth of a second or more with Optuna loaded) would sit
    between the last trial and the end of the search once per process layer (trial process,
    supervisor, launcher). What must happen at exit happens first: engines are disposed where
    they are used, logs and output flushed here."""
    global _as_script
    _as_script = True
    try:
        cli(prog_name="tui-hpo")
    except SystemExit as exc:
        if not _exit_fast:
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
