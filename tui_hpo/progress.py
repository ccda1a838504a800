"""What the headless commands print: the launch progress bar and the ``status`` table (rich)."""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tui_hpo.reads import StudySummary

if TYPE_CHECKING:
    from tui_hpo.launcher import Launcher

POLL_S = 0.5
PLAIN_EVERY_S = 5.0
"""Without a terminal (a CI log, nohup) a progress line every few seconds instead of a bar."""

_STATE_STYLE = {
    "COMPLETE": "green",
    "PRUNED": "yellow",
    "FAIL": "red",
    "RUNNING": "cyan",
    "WAITING": "dim",
}


def counts_text(s: StudySummary, markup: bool = True) -> str:
    parts = []
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"):
        n = s.counts.get(state, 0)
        if n or state in ("COMPLETE", "PRUNED", "FAIL"):
            word = f"{state.lower()} {n}"
            parts.append(f"[{_STATE_STYLE[state]}]{word}[/]" if markup else word)
    return "  ".join(parts)


def best_text(s: StudySummary) -> str:
    if s.is_multi_objective:
        return f"Pareto front {s.pareto_front_size or 0}"
    if s.best_values is None:
        return "best -"
    return f"best {s.best_values[0]:.6g} (#{s.best_trial})"


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    """Full width on a terminal; wide enough for every column in a pipe or a CI log."""
    import sys

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def run_launch(launcher: Launcher, *, detach: bool = False) -> int:
    """Start the remote workers (the local ones are started already), show progress until
    they are done; Ctrl-C stops them.

    ``detach`` returns once the workers are started (the app launches studies this way)."""
    from tui_hpo import startup

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
    console.print(
        f"study [bold]{req.study}[/] on {req.storage.masked}: {req.workers} worker(s) "
        + (f"+ {remote_n} on {len(plan.hosts)} host(s) " if remote_n else "")
        + f"(GPU {','.join(gpus)}), {req.n_trials or 'open'} trial(s); "
        f"logs in {plan.log_dir}"
    )
    for line in said:
        console.print(line)
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
        if plan.hosts:
            from tui_hpo import control

            control.request_stop(launcher.engine, launcher.study_id)
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
    for line in launcher.crashed:
        console.print(f"[red]{line}[/]")
    if s.n_ended and not (s.counts["COMPLETE"] or s.counts["PRUNED"]):
        console.print(f"[red]every trial failed: see the reasons in the logs ({plan.log_dir})[/]")
    return launcher.exit_code()


def _watch_bar(launcher: object, console: Console) -> None:
    from tui_hpo.launcher import Launcher

    assert isinstance(launcher, Launcher)
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


def _watch_plain(launcher: object, console: Console) -> None:
    from tui_hpo.launcher import Launcher

    assert isinstance(launcher, Launcher)
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


def print_status(storage: str, summaries: list[StudySummary], *, with_workers: bool) -> None:
    console = stdout_console()
    console.print(f"storage {storage}")
    if not summaries:
        console.print("no studies")
        return
    table = Table(box=None, pad_edge=False)
    longest = min(24, max(5, *(len(s.name) for s in summaries)))
    for column in STATUS_COLUMNS:
        table.add_column(
            column,
            justify="right" if column in _NUMERIC else "left",
            no_wrap=column != "study",
            min_width=longest if column == "study" else None,
        )
    for s in summaries:
        live = [w for w in s.workers if w.state not in ("exited", "lost")]
        budget = f"/{s.trial_budget}" if s.trial_budget is not None else ""
        table.add_row(
            s.name,
            ",".join(d[:3] for d in s.directions),
            f"{s.n_ended}{budget}",
            str(s.counts["COMPLETE"]),
            str(s.counts["PRUNED"]),
            str(s.counts["FAIL"]),
            str(s.counts["RUNNING"]),
            str(s.counts["WAITING"]),
            best_text(s)
            .removeprefix("best ")
            .replace("Pareto front", "front")
            .replace("(", "")
            .replace(")", ""),
            f"{len(live)}" + (" paused" if s.paused else ""),
            s.last_activity.strftime("%H:%M:%S") if s.last_activity else "-",
        )
    console.print(table)
    if with_workers:
        for s in summaries:
            print_workers(console, s)


STATUS_COLUMNS = ("study", "dir", "trials", "done", "pruned", "fail", "run", "wait", "best",
                  "workers", "last (UTC)")  # fmt: skip
_NUMERIC = {"trials", "done", "pruned", "fail", "run", "wait", "best", "workers"}


def print_workers(console: Console, s: StudySummary) -> None:
    if not s.workers:
        console.print(f"{s.name}: no workers have joined")
        return
    table = Table(box=None, pad_edge=False, title=f"workers of {s.name}", title_justify="left")
    for column in ("id", "host", "pid", "gpu", "state", "trial", "done", "sampler", "heartbeat"):
        table.add_column(column, justify="right" if column in ("id", "pid", "done") else "left")
    for w in s.workers:
        state = w.state if w.exit_code is None else f"{w.state} ({w.exit_code})"
        table.add_row(
            str(w.worker_id), w.host, str(w.pid), w.gpu or "-", state,
            "-" if w.trial_number is None else f"#{w.trial_number}",
            str(w.trials_done), w.sampler or "-", f"{w.heartbeat_age_s:.0f}s ago",
        )  # fmt: skip
    console.print(table)
