"""One study: header and counts, then seven panes (trials, Pareto or best value, the selected
trial, importance, workers, log, plots), each a widget that owns the thread workers loading what it
shows (``app/widgets``).

This screen polls the study's snapshot (a thread worker posts it; the handler hands it to the
panes), reschedules the poll with ``set_timer`` after each answer so a slow storage slows the
polls instead of piling them up, shows a banner while the storage is away, and turns keys into
steering verbs (``tui_hpo.steering``, the same functions as the CLI's commands).

At 80x24 one pane shows at a time (keys 1-7); from 150x40 four panes share the screen, or the
trials and the trial beside the plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from tui_hpo import steering
from tui_hpo.app.context import tui_app
from tui_hpo.app.messages import ActionDone, SnapshotLoaded, StorageDown
from tui_hpo.app.screens import forms
from tui_hpo.app.screens.note import NoteEdit, NoteScreen, note_loader
from tui_hpo.app.widgets.detail_pane import DetailPane
from tui_hpo.app.widgets.front_pane import FrontPane
from tui_hpo.app.widgets.header import StudyHeader
from tui_hpo.app.widgets.importance_pane import ImportancePane
from tui_hpo.app.widgets.log_pane import LogPane
from tui_hpo.app.widgets.plots_pane import PlotsPane
from tui_hpo.app.widgets.trials_pane import TrialsPane
from tui_hpo.app.widgets.trials_table import TrialsTable
from tui_hpo.app.widgets.workers_pane import WorkersPane
from tui_hpo.data.frames import STATE_CODE, STATE_NAMES
from tui_hpo.data.session import Session, StudySnapshot
from tui_hpo.errors import one_line

POLL_S = 1.0
SETTLE_S = 0.12
MAX_BACKOFF_S = 30.0
WIDE = (150, 40)
PANES = ("trials", "front", "detail", "importance", "workers", "log", "plots")
PANE_TITLES = {
    "trials": "1 trials",
    "front": "2 pareto/best",
    "detail": "3 trial",
    "importance": "4 importance",
    "workers": "5 workers",
    "log": "6 log",
    "plots": "7 plots",
}
RIGHT = ("front", "importance", "workers", "log", "plots")
FILTER_HINT = (
    "fields: number state value values[i] duration host gpu sampler tag and params; and/or/not; "
    "empty shows all"
)


class StudyScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Studies", tooltip="Back to the list of studies"),
        Binding("1", "pane('trials')", "Trials", show=False),
        Binding("2", "pane('front')", "Pareto/best", show=False),
        Binding("3", "pane('detail')", "Trial", show=False),
        Binding("4", "pane('importance')", "Importance", show=False),
        Binding("5", "pane('workers')", "Workers", show=False),
        Binding("6", "pane('log')", "Log", show=False),
        Binding("7", "pane('plots')", "Plots", show=False),
        Binding("p", "pause", "Pause/resume", tooltip="Soft pause: running trials finish"),
        Binding("z", "freeze", "Freeze/thaw", tooltip="SIGSTOP/SIGCONT this machine's workers"),
        Binding("m", "sampler", "Sampler", tooltip="Switch the sampler"),
        Binding("u", "pruner", "Pruner", tooltip="Switch the pruner"),
        Binding("x", "prune_trial", "Prune trial", tooltip="Prune the selected running trial"),
        Binding("X", "fail_trial", "Fail trial", tooltip="Fail the selected trial now"),
        Binding("e", "enqueue", "Enqueue", tooltip="Queue a trial, prefilled from the selected"),
        Binding("plus", "scale(1)", "+worker", tooltip="Start one more local worker"),
        Binding("minus", "scale(-1)", "-worker", tooltip="Stop one local worker"),
        Binding("K", "stop_all", "Stop all", tooltip="Every worker leaves after its trial"),
        Binding("slash", "filter", "Filter", tooltip="Filter trials, e.g. lr < 1e-3"),
        Binding("s", "sort", "Sort", tooltip="Sort by the next column"),
        Binding("r", "reverse", "Reverse", show=False, tooltip="Reverse the sort order"),
        Binding("g", "jump", "Go to #", tooltip="Jump to a trial number"),
        Binding("c", "compare", "Compare", tooltip="Pin the selected trial's curve"),
        Binding("t", "tag", "Tag", tooltip="Tag the selected trial (-name removes a tag)"),
        Binding("N", "note", "Note", tooltip="Edit the selected trial's note (optuna-dashboard's)"),
        Binding("E", "export", "Export", tooltip="Write the filtered trials to CSV or JSON"),
        Binding("v", "plot_kind(1)", "Plots", tooltip="Show the plots; again: the next plot"),
        Binding("V", "plot_kind(-1)", "Prev plot", show=False, tooltip="The previous plot"),
        Binding("o", "plot_param('x')", "Plot x", show=False, tooltip="Next param on the x axis"),
        Binding("y", "plot_param('y')", "Plot y", show=False, tooltip="Next param on the y axis"),
        Binding("O", "plot_objective", "Objective", show=False, tooltip="Next objective to plot"),
        Binding(
            "H",
            "hide_ended",
            "Hide pruned",
            tooltip="Hide pruned and failed trials from the table and plots (counts stay)",
        ),
        Binding("a", "axes", "Axes", show=False, tooltip="Next pair of objectives to plot"),
        Binding("left_square_bracket", "front_step(-1)", "Prev front", show=False),
        Binding("right_square_bracket", "front_step(1)", "Next front", show=False),
    ]

    DEFAULT_CSS = """
    StudyScreen { layout: vertical; }
    #banner { background: $error; color: $text; height: auto; display: none; }
    #tabs { height: 1; color: $text-muted; }
    #panes { height: 1fr; }
    .pane { height: 1fr; width: 1fr; border: round $primary-darken-2; }
    .pane:focus-within { border: round $accent; }
    #wide-left, #wide-right { width: 1fr; }
    """

    def __init__(self, study: str) -> None:
        super().__init__()
        self.study = study
        self.snapshot: StudySnapshot | None = None
        self.active = "trials"
        self._backoff = POLL_S
        self._settle: Timer | None = None
        self.hide_ended = False
        """``H``: pruned and failed trials left out of the table and the plots."""

    # layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield StudyHeader(id="study-header")
        yield Static("", id="tabs")
        with Container(id="panes"), Horizontal(id="wide-row"):
            with Vertical(id="wide-left"):
                yield TrialsPane()
                yield DetailPane()
            with Vertical(id="wide-right"):
                yield FrontPane()
                yield ImportancePane()
                yield WorkersPane()
                yield LogPane()
                yield PlotsPane()
        yield Footer(compact=True)

    @property
    def session(self) -> Session:
        return tui_app(self).session

    @property
    def trials(self) -> TrialsPane:
        return self.query_one(TrialsPane)

    def on_mount(self) -> None:
        self._layout()
        self.query_one(TrialsTable).focus()
        self.poll()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        width, height = self.app.size
        wide = width >= WIDE[0] and height >= WIDE[1]
        left_shown = {"trials", "detail"}
        right_pick = self.active if self.active in RIGHT else "front"
        for pane in PANES:
            widget = self.query_one(f"#{pane}")
            if wide:
                widget.display = (
                    pane in left_shown
                    or pane == right_pick
                    or (pane == "workers" and right_pick in ("front", "importance"))
                )
            else:
                widget.display = pane == self.active
        self.query_one("#wide-left").display = wide or self.active in left_shown
        self.query_one("#wide-right").display = wide or self.active not in left_shown
        tabs = "  ".join(
            f"[reverse]{PANE_TITLES[p]}[/]" if p == self.active else PANE_TITLES[p] for p in PANES
        )
        self.query_one("#tabs", Static).update(tabs + "   ? help")
        plots = self.query_one(PlotsPane)
        if plots.display:
            plots.shown()

    def action_pane(self, pane: str) -> None:
        self.active = pane
        self._layout()
        focus = {"trials": "#trials-table", "workers": "#workers-table"}.get(pane)
        if focus:
            self.query_one(focus).focus()
        if self.snapshot is not None:
            self.query_one(FrontPane).paint(self.snapshot, self._selected(), force=True)
            self.query_one(ImportancePane).update(self.snapshot.frame)

    # polling --------------------------------------------------------------------------------

    def poll(self) -> None:
        self.load_snapshot(self.session, self.study, self._backoff)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def load_snapshot(self, session: Session, study: str, backoff: float) -> None:
        try:
            snapshot = session.snapshot(study)
        except Exception as exc:
            self.post_message(StorageDown(one_line(exc, limit=200), backoff))
            return
        self.post_message(SnapshotLoaded(snapshot))

    def on_storage_down(self, message: StorageDown) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(f"storage unreachable: {message.error} · retrying in {message.retry_in:.0f}s")
        banner.display = True
        self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)
        self.set_timer(message.retry_in, self.poll)

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        self.query_one("#banner").display = False
        self._backoff = POLL_S
        old = self.snapshot
        snap = self.snapshot = message.snapshot
        self.query_one(StudyHeader).show(snap)
        if old is None or old.frame is not snap.frame:
            self.trials.show(snap.frame, snap.pareto)
            self.query_one(FrontPane).paint(snap, self._selected())
            self.query_one(ImportancePane).update(snap.frame)
            self.query_one(PlotsPane).show(snap.frame, self.session)
            self._refresh_selected()
        elif self._selected_running():
            self._refresh_selected()
        self.query_one(WorkersPane).update(snap.workers)
        self.set_timer(POLL_S, self.poll)

    @on(WorkersPane.Chosen)
    def _follow_log(self, message: WorkersPane.Chosen) -> None:
        self.query_one(LogPane).follow(message.log_path)

    @on(DetailPane.TrialOutputChosen)
    def _follow_trial_output(self, message: DetailPane.TrialOutputChosen) -> None:
        self.query_one(LogPane).follow_trial(message.path, message.number)

    # the table --------------------------------------------------------------------------------

    def action_sort(self) -> None:
        self.trials.sort_next()

    def action_reverse(self) -> None:
        self.trials.reverse()

    def action_filter(self) -> None:
        from tui_hpo.data import filters

        def done(text: object) -> None:
            if text is None:
                return
            frame = self.snapshot.frame if self.snapshot is not None else None
            known = filters.study_fields(frame.params, frame.metric_names) if frame else None
            try:
                filters.parse(str(text), fields=known)
            except Exception as exc:
                self.notify(getattr(exc, "message", str(exc)), severity="error")
                return
            self.trials.set_filter(str(text))
            self.query_one(PlotsPane).set_view(str(text), self.hide_ended)

        prompt = forms.PromptScreen(
            "Filter trials", self.trials.filter_text, "lr < 1e-3 and state == COMPLETE", FILTER_HINT
        )
        self.app.push_screen(prompt, done)

    def action_jump(self) -> None:
        def done(text: object) -> None:
            if not text:
                return
            try:
                number = int(str(text).strip().lstrip("#"))
            except ValueError:
                self.notify(f"not a trial number: {text}", severity="error")
                return
            self.trials.jump(number)

        self.app.push_screen(forms.PromptScreen("Go to trial", "", "trial number"), done)

    # selection ---------------------------------------------------------------------------------

    @on(TrialsTable.Selected)
    def on_trial_selected(self, _message: TrialsTable.Selected) -> None:
        """Detail, curves and plot markers follow the cursor once it rests: holding a key
        down through 100,000 rows must not queue a read and a plot per row."""
        if self._settle is not None:
            self._settle.stop()
        self._settle = self.set_timer(SETTLE_S, self._selection_settled)

    def _selection_settled(self) -> None:
        self._settle = None
        self._refresh_selected()
        if self.snapshot is not None:
            self.query_one(FrontPane).paint(self.snapshot, self._selected(), force=True)

    def _selected(self) -> int | None:
        return self.query_one(TrialsTable).selected_index()

    def _selected_running(self) -> bool:
        i = self._selected()
        snap = self.snapshot
        return snap is not None and i is not None and snap.frame.state[i] == STATE_CODE["RUNNING"]

    def _refresh_selected(self) -> None:
        if self.snapshot is not None:
            self.query_one(DetailPane).show_trial(
                self.session, self.snapshot.frame, self._selected()
            )

    def action_compare(self) -> None:
        snap = self.snapshot
        i = self._selected()
        if snap is None or i is None:
            return
        number = int(snap.frame.number[i])
        pinned = self.query_one(DetailPane).toggle_pin(int(snap.frame.trial_id[i]))
        self.notify(
            f"trial {number} pinned for comparison" if pinned else f"trial {number} unpinned"
        )
        self._refresh_selected()

    # plots -------------------------------------------------------------------------------------

    def action_axes(self) -> None:
        snap = self.snapshot
        if snap is None or len(snap.directions) < 3:
            return
        front = self.query_one(FrontPane)
        front.next_axes(len(snap.directions))
        front.paint(snap, self._selected(), force=True)

    def action_front_step(self, step: int) -> None:
        """Move through the Pareto front (sorted on the first plotted objective)."""
        snap = self.snapshot
        if snap is None:
            return
        number = self.query_one(FrontPane).front_neighbour(snap, self._selected(), step)
        if number is not None and not self.query_one(TrialsTable).go_to_number(number):
            self.notify("that trial is hidden by the filter", severity="warning")

    # steering ---------------------------------------------------------------------------------

    def steer(self, verb: Callable[..., steering.Outcome], *args: object, **kw: object) -> None:
        tui_app(self).steer(self, self.study, verb, *args, **kw)

    def on_action_done(self, message: ActionDone) -> None:
        tui_app(self).report(message)
        self.poll()
        self._refresh_selected()  # a note is no part of the frame: read the pane's trial again

    def action_pause(self) -> None:
        if self.snapshot is not None:
            self.steer(steering.resume if self.snapshot.orders.paused else steering.pause)

    def action_freeze(self) -> None:
        if self.snapshot is not None:
            self.steer(steering.thaw if self.snapshot.frozen else steering.freeze)

    def _switch(self, kind: str) -> None:
        snap = self.snapshot
        if snap is None:
            return
        current = snap.orders.sampler if kind == "sampler" else snap.orders.pruner
        verb = steering.set_sampler if kind == "sampler" else steering.set_pruner

        def done(result: Any) -> None:
            if result:
                name, kwargs = result
                self.steer(verb, name, kwargs)

        self.app.push_screen(forms.SettingForm(kind, current), done)

    def action_sampler(self) -> None:
        self._switch("sampler")

    def action_pruner(self) -> None:
        self._switch("pruner")

    def _selected_number(self, need_running: bool) -> int | None:
        snap = self.snapshot
        i = self._selected()
        if snap is None or i is None:
            self.notify("select a trial first", severity="warning")
            return None
        if need_running and snap.frame.state[i] != STATE_CODE["RUNNING"]:
            state = STATE_NAMES[int(snap.frame.state[i])]
            self.notify(steering.not_running(int(snap.frame.number[i]), state), severity="warning")
            return None
        return int(snap.frame.number[i])

    def action_prune_trial(self) -> None:
        number = self._selected_number(need_running=True)
        if number is not None:
            self.steer(steering.prune_trial, number)

    def action_fail_trial(self) -> None:
        number = self._selected_number(need_running=True)
        if number is None:
            return

        def done(yes: object) -> None:
            if yes:
                self.steer(steering.fail_trial, number)

        question = f"Fail trial {number} now? Its worker process is killed."
        self.app.push_screen(forms.ConfirmScreen(question), done)

    def action_enqueue(self) -> None:
        snap = self.snapshot
        params = {}
        i = self._selected()
        if snap is not None and i is not None:
            for name, column in snap.frame.params.items():
                raw = column.values[i]
                if not math.isnan(raw):
                    params[name] = column.distribution.to_external_repr(raw)

        def done(text: object) -> None:
            if text:
                self.steer(steering.enqueue, str(text))

        self.app.push_screen(forms.EnqueueForm(json.dumps(params)), done)

    def action_scale(self, delta: int) -> None:
        if self.snapshot is not None:
            self.steer(steering.scale, delta, relative=True)

    def action_stop_all(self) -> None:
        if self.snapshot is None:
            return

        def done(yes: object) -> None:
            if yes:
                self.steer(steering.stop)

        question = f"Stop every worker of {self.study}? They finish their trial."
        self.app.push_screen(forms.ConfirmScreen(question), done)

    def action_tag(self) -> None:
        """Prompt for one tag: ``name`` adds it, ``-name`` removes it; the verb checks it
        (an empty tag, a blank or a comma in it: a notification)."""
        number = self._selected_number(need_running=False)
        snap = self.snapshot
        i = self._selected()
        if number is None or snap is None or i is None:
            return
        now = ", ".join(snap.frame.tags_of(i)) or "none"

        def done(text: object) -> None:
            if text is None:
                return
            word = str(text).strip()
            if word.startswith("-"):
                self.steer(steering.untag, number, [word[1:]])
            else:
                self.steer(steering.tag, number, [word])

        prompt = forms.PromptScreen(
            f"Tag trial {number}",
            "",
            "bad",
            f"tags now: {now} · a word adds that tag, -word removes it; filter: tag = word",
        )
        self.app.push_screen(prompt, done)

    def action_note(self) -> None:
        """Edit the selected trial's note. The editor reads it afresh (it may have changed in
        optuna-dashboard) and saving goes through ``steering.note`` in a thread worker."""
        number = self._selected_number(need_running=False)
        if number is None:
            return
        study = self.study
        load = note_loader(self.session, study, number)

        def done(edit: NoteEdit | None) -> None:
            if edit is not None:
                self.steer(steering.note, number, edit.text, expected_version=edit.version)

        self.app.push_screen(NoteScreen(f"Note of trial {number} ({study})", load), done)

    def action_export(self) -> None:
        """Write the trials the filter shows to a file, CSV or JSON by its name, with the
        columns of ``tui-hpo export``; the verb checks the name and writes in a thread.
        Pruned and failed trials hidden with ``H`` stay out of the file too: it is the view."""
        filter_text = self.trials.filter_text
        if self.hide_ended:
            hidden = "not state in (pruned, fail)"
            filter_text = f"({filter_text}) and {hidden}" if filter_text.strip() else hidden

        def done(text: object) -> None:
            if text:
                self.steer(steering.export, str(text), filter_text=filter_text)

        shown = f"the trials matching {filter_text}" if filter_text.strip() else "every trial"
        prompt = forms.PromptScreen(
            f"Export {shown} to",
            f"{self.study}.csv",
            "study.csv",
            "a file named *.csv or *.json (relative: to the folder the app started in)",
            label="file",
        )
        self.app.push_screen(prompt, done)

    # the plots ------------------------------------------------------------------------------

    def action_plot_kind(self, step: int) -> None:
        """The first press shows the plots pane; the next ones go through the plots."""
        if self.active != "plots":
            self.action_pane("plots")
            return
        self.query_one(PlotsPane).step_kind(step)

    def action_plot_param(self, axis: str) -> None:
        if self.active != "plots":
            self.action_pane("plots")
        self.query_one(PlotsPane).step_param(axis)

    def action_plot_objective(self) -> None:
        if self.active != "plots":
            self.action_pane("plots")
        self.query_one(PlotsPane).step_objective()

    def action_hide_ended(self) -> None:
        """Pruned and failed trials out of the table and the plots, or back; the header's
        counts keep them, since how many were pruned is the point of watching."""
        self.hide_ended = not self.hide_ended
        self.trials.set_hide(self.hide_ended)
        self.query_one(PlotsPane).set_view(self.trials.filter_text, self.hide_ended)
        said = "hidden (the counts keep them)" if self.hide_ended else "shown again"
        self.notify(f"pruned and failed trials {said}")

    def action_back(self) -> None:
        self.app.pop_screen()
