"""The top of the study view: the study, its sampler and pruner in force, PAUSED / FROZEN /
STOPPING, workers, time and pace, and the counts per state with the pruned share."""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui_hpo.app.format import age_text
from tui_hpo.data.frames import STATE_CODE
from tui_hpo.data.session import StudySnapshot


class StudyHeader(Vertical):
    DEFAULT_CSS = """
    StudyHeader { height: auto; }
    StudyHeader #header { height: 2; background: $boost; }
    StudyHeader #counts { height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        yield Static("", id="counts")

    def show(self, snap: StudySnapshot) -> None:
        self.query_one("#header", Static).update(header_text(snap))
        self.query_one("#counts", Static).update(counts_text(snap))


def header_text(snap: StudySnapshot) -> str:
    o = snap.orders
    live = [w for w in snap.workers if w.state not in ("exited", "lost", "pending")]
    flags = []
    if o.paused:
        flags.append("[black on yellow] PAUSED [/]")
    if snap.frozen:
        flags.append("[black on cyan] FROZEN [/]")
    if o.stop_requested:
        flags.append("[black on red] STOPPING [/]")
    line1 = (
        f"[b]{snap.name}[/]  {','.join(snap.directions)}  sampler [b]{o.sampler.label()}[/]"
        f"  pruner [b]{o.pruner.label()}[/]  {' '.join(flags)}"
    )
    ended_at = snap.ended_at
    if ended_at is None:
        budget = f"  budget {o.trial_budget}" if o.trial_budget is not None else ""
        line2 = (
            f"workers {len(live)}  elapsed {age_text(snap.elapsed_s)}  "
            f"{snap.trials_per_minute:.1f} trials/min{budget}"
        )
    else:  # over: the clock stops, the pace is the whole run's
        word = "[green]finished[/]" if snap.finished else "[yellow]stopped[/]"
        when = dt.datetime.fromtimestamp(ended_at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        line2 = (
            f"workers {len(live)}  {word} {when} UTC after {age_text(snap.elapsed_s)}  "
            f"{snap.trials_per_minute:.1f} trials/min overall"
        )
    return f"{line1}\n{line2}"


def counts_text(snap: StudySnapshot) -> str:
    c = snap.counts
    ended = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
    share = f" ({100 * c['PRUNED'] / ended:.0f}%)" if ended else ""
    text = (
        f"[green]complete {c['COMPLETE']}[/]  [yellow]pruned {c['PRUNED']}{share}[/]  "
        f"[red]fail {c['FAIL']}[/]  [cyan]running {c['RUNNING']}[/]  waiting {c['WAITING']}"
    )
    samplers = snap.frame.sampler.labels
    if len(samplers) > 1:
        parts = []
        for code, label in enumerate(samplers):
            mask = snap.frame.sampler.codes == code
            done = int((mask & (snap.frame.state == STATE_CODE["COMPLETE"])).sum())
            parts.append(f"{label}: {int(mask.sum())}/{done}✓")
        text += "   by sampler " + "  ".join(parts)
    return text
