"""The first screen: every study in the storage, refreshed every few seconds.

On a storage with no study yet the table alone is an empty grid that says nothing; a short
text says how to start one (the form, a shell command, the demo) until a poll finds one.
"""

from __future__ import annotations

import datetime as dt
import time

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui_hpo.app.context import tui_app
from tui_hpo.app.format import age_text
from tui_hpo.app.messages import ActionDone, StorageDown, StudiesLoaded
from tui_hpo.data.session import Session, StudyRow
from tui_hpo.errors import one_line
from tui_hpo.storage.urls import resolve_url

POLL_S = 2.0


def empty_hint(url: str, masked: str) -> str:
    """How to start a study, for a storage that has none. The shell commands name the app's
    storage unless it is the one a bare ``tui-hpo launch`` here would use anyway."""
    lines = [
        "[b]No study in this storage yet.[/b] Start one:",
        "",
        "  [b]n[/b]  here: a form (objective, sampler, pruner, trials, workers)",
        "",
        "  or from a shell, in the folder of your script:",
        "    tui-hpo launch train.py:objective --n-trials 100 --workers 2",
        "    tui-hpo launch --sweep sweep.yaml   [dim](a W&B sweep file)[/dim]",
    ]
    if url != resolve_url(None):
        lines.append(f"    [dim]with[/dim] --storage {escape(masked)} [dim](this one)[/dim]")
    lines += [
        "",
        "  or try the demo, in a checkout of tui-hpo:",
        "    make demo   [dim](digits with torch, 2 workers)[/dim]",
        "",
        "[dim]A study shows up here as soon as it exists.[/dim]",
    ]
    return "\n".join(lines)


def best_cell(row: StudyRow) -> str:
    s = row.summary
    if s.is_multi_objective:
        return f"front {s.pareto_front_size or 0}"
    if s.best_values is None:
        return "-"
    return f"{s.best_values[0]:.5g} #{s.best_trial}"


class StudiesScreen(Screen[None]):
    DEFAULT_CSS = """
    StudiesScreen #empty-hint { padding: 1 2; height: auto; }
    """
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Open the highlighted study", priority=True),
        Binding("n", "new_study", "New study", tooltip="Create a study and launch its workers"),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="title")
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty-hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(
            "study",
            "directions",
            "trials",
            "complete",
            "pruned",
            "fail",
            "running",
            "best",
            "workers",
            "last activity",
        )
        target = tui_app(self).target
        self.query_one("#title", Static).update(f"tui-hpo · {target.masked}")
        self.query_one("#empty-hint", Static).update(empty_hint(target.url, target.masked))
        self.query_one("#empty-hint").display = False  # until a poll says there is no study
        self.query_one("#banner").display = False
        table.focus()
        self.poll()

    def poll(self) -> None:
        self.load_studies(tui_app(self).session)

    @work(thread=True, exclusive=True, group="studies", exit_on_error=False)
    def load_studies(self, session: Session) -> None:
        try:
            rows = session.studies()
        except Exception as exc:  # storage away: say so, keep trying
            self.post_message(StorageDown(one_line(exc, limit=200), POLL_S))
            return
        self.post_message(StudiesLoaded(rows))

    def on_storage_down(self, message: StorageDown) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(f"storage unreachable: {message.error} · retrying")
        banner.display = True
        self.set_timer(message.retry_in, self.poll)

    def on_studies_loaded(self, message: StudiesLoaded) -> None:
        self.query_one("#banner").display = False
        self.query_one("#empty-hint").display = not message.rows
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        now = time.time()
        for row in message.rows:
            s = row.summary
            budget = f"/{s.trial_budget}" if s.trial_budget is not None else ""
            last = "-"
            if s.last_activity is not None:
                ts = s.last_activity.replace(tzinfo=dt.timezone.utc).timestamp()
                last = age_text(max(0.0, now - ts)) + " ago"
            table.add_row(
                s.name,
                ",".join(d[:3] for d in s.directions),
                f"{s.n_ended}{budget}",
                str(s.counts["COMPLETE"]),
                str(s.counts["PRUNED"]),
                str(s.counts["FAIL"]),
                str(s.counts["RUNNING"]),
                best_cell(row),
                f"{row.live_workers}" + (" paused" if s.paused else ""),
                last,
                key=s.name,
            )
        if message.rows:
            table.move_cursor(row=min(keep, len(message.rows) - 1))
        self.set_timer(POLL_S, self.poll)

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        name = self._current()
        if name is None:
            self.notify("no study yet: press n to start one", severity="warning")
            return
        tui_app(self).open_study(name)

    def action_refresh(self) -> None:
        self.poll()

    def action_new_study(self) -> None:
        tui_app(self).action_new_study()

    def on_action_done(self, message: ActionDone) -> None:
        tui_app(self).report(message)
        self.poll()
