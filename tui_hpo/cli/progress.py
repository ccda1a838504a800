"""What ``launch`` shows while its search runs: a progress bar on a terminal, a line every few
seconds in a log; and what happens on Ctrl-C (the workers stop; under Slurm, the pending tasks
are cancelled and the running workers leave after their trial) or a hang-up (they don't)."""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tui_hpo.cli.status_tables import best_text, counts_text

if TYPE_CHECKING:
    from tui_hpo.runtime.launcher import Launcher

POLL_S = 0.5
PLAIN_EVERY_S = 5.0
"""Without a terminal (a CI log, nohup) a progress line every few seconds instead of a bar."""


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def run_launch(launcher: Launcher, *, detach: bool = False) -> int:
    """Start the remote workers (the local ones are started already), show progress until
    they are done; Ctrl-C stops them.

    ``detach`` returns once the workers are started (the app launches studies this way)."""
    from tui_hpo.runtime import startup

    startup.done()
    try:
        return _run_launch(launcher, detach=detach)
    finally:
        launcher.engine.dispose()  # the process may leave without tearing down (cli.main)


def _run_launch(launcher: Launcher, *, detach: bool) -> int:
    console = _stderr()
    plan = launcher.plan
    said = launcher.start()
    req = plan.request
    gpus = sorted({"cpu" if g is None else str(g) for g in plan.gpu_per_worker})
    remote_n = sum(h.workers for h in plan.hosts)
    where = (
        "under Slurm"
        if plan.slurm is not None
        else (f"+ {remote_n} on {len(plan.hosts)} host(s) " if remote_n else "")
        + f"(GPU {','.join(gpus)})"
    )
    console.print(
        f"study [bold]{req.study}[/] on {req.storage.masked}: {req.workers} worker(s) "
        f"{where}, {req.n_trials or 'open'} trial(s); logs in {plan.log_dir}"
    )
    for line in said:
        console.print(line)
    if detach and launcher.slurm_jobs:
        print(" ".join(launcher.slurm_jobs), flush=True)  # for scripts: JOB=$(tui-hpo ...)
        console.print("detached: the tasks run under Slurm; watch with tui-hpo workers")
        return 0
    if detach:
        pids = ", ".join(str(w.pid) for w in launcher.workers)
        console.print(f"detached: workers run on (pid {pids}); watch with tui-hpo status")
        return 0
    # SIGHUP (SSH dropped): leave quietly; the workers run on in their own sessions.
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        if console.is_terminal:
            _watch_bar(launcher, console)
        else:
            _watch_plain(launcher, console)
    except KeyboardInterrupt:
        if launcher.slurm_jobs:
            cancelled = launcher.stop_slurm()
            console.print(
                f"interrupted: {len(cancelled)} pending Slurm task(s) cancelled; running "
                f"workers leave after their current trial (scancel {' '.join(launcher.slurm_jobs)}"
                " ends them now)"
            )
            return 130
        if plan.hosts:
            from tui_hpo.control.orders import request_stop

            request_stop(launcher.engine, launcher.study_id)
            console.print("remote workers were told to stop after their current trial")
        failed = launcher.stop()
        s = launcher.summary()
        console.print(
            f"interrupted: stopped {len(launcher.workers)} worker(s); {failed} running "
            f"trial(s) marked FAIL; {s.n_ended} trial(s) ended, none left running"
        )
        return 130
    s = launcher.summary()
    console.print(f"done: {s.n_ended} trial(s) ended: {counts_text(s)}  {best_text(s)}")
    reached = launcher.target_reached()
    if reached is not None:
        console.print(f"trial {reached} reached the metric target: the search stopped there")
    for line in launcher.crashed:
        console.print(f"[red]{escape(line)}[/]")
    if launcher.gave_up:
        console.print(f"[red]{escape(launcher.gave_up)}[/]")
    elif s.n_ended and not (s.counts["COMPLETE"] or s.counts["PRUNED"]):
        console.print(f"[red]every trial failed: see the reasons in the logs ({plan.log_dir})[/]")
    elif launcher.slurm_jobs and s.trial_budget is not None and s.n_ended < s.trial_budget:
        console.print(
            f"[red]the Slurm tasks ended before the budget was spent: see their logs "
            f"({plan.log_dir})[/]"
        )
    return launcher.exit_code()


def _watch_bar(launcher: Launcher, console: Console) -> None:
    total = launcher.plan.request.n_trials
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(launcher.plan.request.study, total=total, counts="", best="")
        while True:
            launcher.check()
            s = launcher.summary()
            base = (s.trial_budget - total) if (s.trial_budget and total) else 0
            bar.update(
                task, completed=max(0, s.n_ended - base), counts=counts_text(s), best=best_text(s)
            )
            if not launcher.busy():
                launcher.check()
                if not launcher.busy():
                    break
            launcher.nap(POLL_S)


def _watch_plain(launcher: Launcher, console: Console) -> None:
    last = 0.0
    while True:
        launcher.check()
        if not launcher.busy():
            launcher.check()
            if not launcher.busy():
                break
        if time.monotonic() - last >= PLAIN_EVERY_S:
            last = time.monotonic()
            s = launcher.summary()
            console.print(f"{s.name}: {counts_text(s, markup=False)}  {best_text(s)}")
        launcher.nap(POLL_S)
