"""The first screen: every study in the storage, refreshed every few seconds.

On a storage with no study yet the table alone is an empty grid that says nothing; a short
text says how to start one (the form, a shell command, the demo) until a poll finds one.

Curation starts here too, on the highlighted study: ``C`` copies it (only the trials a filter
matches), ``D`` deletes it once its name is typed, ``N`` edits its note; ``space`` marks
studies and ``v`` compares the marked ones (``compare.py``). Each goes through the steering verb
of the same CLI command, in a thread worker, and says what it did in a notification.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import ColumnKey

from tui_hpo import steering
from tui_hpo.app.context import tui_app
from tui_hpo.app.format import age_text
from tui_hpo.app.messages import ActionDone, StorageDown, StudiesLoaded
from tui_hpo.app.screens import forms
from tui_hpo.app.screens.compare import CompareScreen
from tui_hpo.app.screens.note import NoteEdit, NoteScreen, note_loader
from tui_hpo.data.session import Session, StudyRow
from tui_hpo.errors import one_line
from tui_hpo.storage.urls import resolve_url

POLL_S = 2.0
MARK = "● "
"""Put before the name of a study marked for comparison (``space``)."""


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
        Binding(
            "space",
            "mark",
            "Mark",
            show=False,
            tooltip="Mark or unmark the study for comparison (v)",
        ),
        Binding("v", "compare", "Compare", tooltip="Compare the marked studies side by side"),
        Binding("C", "copy", "Copy", tooltip="Copy the study, only the trials a filter matches"),
        Binding("D", "delete", "Delete", tooltip="Delete the study for good (type its name)"),
        Binding("N", "note", "Note", tooltip="Edit the study's note (optuna-dashboard's)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, StudyRow] = {}
        """The studies as last listed, by name: what the curation keys act on."""
        self.marked: list[str] = []
        """Studies marked for comparison, in the order they were marked."""
        self._name_column: ColumnKey | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="title")
        yield DataTable(id="studies", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty-hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._name_column, *_ = table.add_columns(
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
        if bool(self.rows) != bool(message.rows):
            self.refresh_bindings()  # the curation keys come and go with the studies
        self.rows = {row.summary.name: row for row in message.rows}
        self.marked = [name for name in self.marked if name in self.rows]  # gone: unmarked
        for row in message.rows:
            s = row.summary
            budget = f"/{s.trial_budget}" if s.trial_budget is not None else ""
            last = "-"
            if s.last_activity is not None:
                ts = s.last_activity.replace(tzinfo=dt.timezone.utc).timestamp()
                last = age_text(max(0.0, now - ts)) + " ago"
            table.add_row(
                self._name_cell(s.name),
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

    # curation -----------------------------------------------------------------------------------

    CURATION = frozenset({"mark", "compare", "copy", "delete", "note"})
    """Actions on the listed studies: hidden from the footer while there is none."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.rows) or action not in self.CURATION

    def _name_cell(self, name: str) -> str:
        return f"{MARK}{name}" if name in self.marked else name

    def _highlighted(self) -> StudyRow | None:
        """The highlighted study as last listed, or a notification that there is none."""
        name = self._current()
        row = self.rows.get(name) if name is not None else None
        if row is None:
            self.notify("no study yet: press n to start one", severity="warning")
        return row

    def steer(
        self, study: str, verb: Callable[..., steering.Outcome], *args: object, **kw: object
    ) -> None:
        tui_app(self).steer(self, study, verb, *args, **kw)

    def action_mark(self) -> None:
        row = self._highlighted()
        if row is None:
            return
        name = row.summary.name
        if name in self.marked:
            self.marked.remove(name)
        else:
            self.marked.append(name)
        if self._name_column is not None:
            self.query_one(DataTable).update_cell(name, self._name_column, self._name_cell(name))

    def action_compare(self) -> None:
        chosen = [self.rows[name] for name in self.marked if name in self.rows]
        if len(chosen) < 2:
            self.notify("mark two or more studies with space", severity="warning")
            return
        self.app.push_screen(
            CompareScreen([(r.summary.name, tuple(r.summary.directions)) for r in chosen])
        )

    def action_copy(self) -> None:
        row = self._highlighted()
        if row is None:
            return
        name = row.summary.name

        def done(request: object) -> None:
            if isinstance(request, forms.CopyRequest):
                self.steer(name, steering.copy_study, request.name, filter_text=request.filter_text)

        self.app.push_screen(forms.CopyStudyForm(name), done)

    def action_delete(self) -> None:
        """Ask for the study's name, then delete it. A study with live workers is refused
        here as ``tui-hpo delete-study`` refuses it (the verb checks again: the list may be
        seconds old); forcing it is left to the CLI's ``--force``."""
        row = self._highlighted()
        if row is None:
            return
        name = row.summary.name
        if row.live_workers:
            self.notify(
                f"study {name!r} has {row.live_workers} live worker(s): stop them first "
                f"(K in its view, or tui-hpo stop {name}), or use tui-hpo delete-study --force",
                severity="error",
            )
            return
        session = tui_app(self).session

        def done(yes: object) -> None:
            if yes is True:
                self.steer(name, delete_study, session)

        self.app.push_screen(forms.DeleteStudyScreen(name, row.summary.n_trials), done)

    def action_note(self) -> None:
        """Edit the study's note; read afresh by the editor and saved at the version it read,
        as the study view's trial notes are."""
        row = self._highlighted()
        if row is None:
            return
        name = row.summary.name
        load = note_loader(tui_app(self).session, name, None)

        def done(edit: NoteEdit | None) -> None:
            if edit is not None:
                self.steer(name, steering.note, None, edit.text, expected_version=edit.version)

        self.app.push_screen(NoteScreen(f"Note of study {name}", load), done)


def delete_study(s: steering.Steered, session: Session) -> steering.Outcome:
    """``steering.delete_study`` (refused while workers are live), then the session forgets
    the study's id, so a study made later under that name is not read through the old one."""
    try:
        return steering.delete_study(s)
    finally:
        session.forget(s.name)
