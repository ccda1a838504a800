"""What ``status`` and ``workers`` print, and the counts and best-value words the launch
progress bar shares with them (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tui_hpo.data.summaries import StudySummary

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
    name = f"{s.metric_names[0]} " if s.metric_names else ""
    return f"best {name}{s.best_values[0]:.6g} (#{s.best_trial})"


def stdout_console() -> Console:
    """Full width on a terminal; wide enough for every column in a pipe or a CI log."""
    import sys

    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


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
        live = [w for w in s.workers if w.state not in ("exited", "lost", "pending")]
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
    for s in summaries:  # the first line of each study's note (optuna-dashboard's)
        if s.note:
            console.print(f"note {escape(s.name)}: {escape(s.note)}", soft_wrap=True)
    if with_workers:
        for s in summaries:
            print_workers(console, s)


STATUS_COLUMNS = (
    "study",
    "dir",
    "trials",
    "done",
    "pruned",
    "fail",
    "run",
    "wait",
    "best",
    "workers",
    "last (UTC)",
)


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
        if w.slurm_reason:
            state += f" ({w.slurm_reason})"
        table.add_row(
            "-" if w.is_queued else str(w.worker_id),
            w.where or "-",
            str(w.pid) if w.pid else "-",
            w.gpu or "-",
            state,
            "-" if w.trial_number is None else f"#{w.trial_number}",
            str(w.trials_done),
            w.sampler or "-",
            "-" if w.is_queued else f"{w.heartbeat_age_s:.0f}s ago",
        )
    console.print(table)
