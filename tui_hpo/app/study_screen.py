"""One study: header, state counts, trials table, Pareto or best-value plot, trial detail with
curves, parameter importance, workers with their GPUs, and the selected worker's log.

Every read runs in a thread worker (``@work(thread=True)``) that posts a snapshot; handlers on
the UI thread only paint. The poll reschedules itself with ``set_timer`` after each answer, so a
slow storage slows the polls instead of piling them up, and a storage that is away shows a
banner while polls keep retrying with backoff.

At 80x24 one pane shows at a time (keys 1-6); from 150x40 four panes share the screen.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Log, Static

from tui_hpo.app import forms
from tui_hpo.app.messages import (
    ActionDone,
    CurvesLoaded,
    DetailLoaded,
    HardwareLoaded,
    ImportanceLoaded,
    SnapshotLoaded,
    StorageDown,
    ViewReady,
)
from tui_hpo.app.plots import CurvesPlot, HistoryPlot, ImportancePlot, ParetoPlot
from tui_hpo.app.trials_table import TrialsTable, ordered
from tui_hpo.session import StudySnapshot, age_text
from tui_hpo.trialdata import STATE_CODE, STATE_NAMES, hypervolume_history

POLL_S = 1.0
SETTLE_S = 0.12
PLOT_EVERY_S = 2.0
MAX_BACKOFF_S = 30.0
WIDE = (150, 40)
PANES = ("trials", "front", "detail", "importance", "workers", "log")
PANE_TITLES = {
    "trials": "1 trials",
    "front": "2 pareto/best",
    "detail": "3 trial",
    "importance": "4 importance",
    "workers": "5 workers",
    "log": "6 log",
}


class StudyScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Studies", tooltip="Back to the list of studies"),
        Binding("1", "pane('trials')", "Trials", show=False),
        Binding("2", "pane('front')", "Pareto/best", show=False),
        Binding("3", "pane('detail')", "Trial", show=False),
        Binding("4", "pane('importance')", "Importance", show=False),
        Binding("5", "pane('workers')", "Workers", show=False),
        Binding("6", "pane('log')", "Log", show=False),
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
        Binding("a", "axes", "Axes", show=False, tooltip="Next pair of objectives to plot"),
        Binding("left_square_bracket", "front_step(-1)", "Prev front", show=False),
        Binding("right_square_bracket", "front_step(1)", "Next front", show=False),
    ]

    DEFAULT_CSS = """
    StudyScreen { layout: vertical; }
    #banner { background: $error; color: $text; height: auto; display: none; }
    #header { height: 2; background: $boost; }
    #counts { height: 1; }
    #tabs { height: 1; color: $text-muted; }
    #panes { height: 1fr; }
    .pane { height: 1fr; width: 1fr; border: round $primary-darken-2; }
    .pane:focus-within { border: round $accent; }
    #detail-text { height: auto; max-height: 12; }
    #wide-left, #wide-right { width: 1fr; }
    """

    def __init__(self, study: str) -> None:
        super().__init__()
        self.study = study
        self.snapshot: StudySnapshot | None = None
        self.active = "trials"
        self.filter_text = ""
        self.axes = (0, 1)
        self.pinned: list[int] = []  # trial ids whose curves are overlaid
        self.selected_worker: int | None = None
        self._importance_n = -1
        self._backoff = POLL_S
        self._view_generation = -1
        self._hv_generation = -1
        self._hv: tuple[np.ndarray, np.ndarray] | None = None
        self._wide = False
        self._settle: Timer | None = None
        self._pending_jump: int | None = None
        self._good_filter = ""
        self._plotted_at = 0.0

    # layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="header")
        yield Static("", id="counts")
        yield Static("", id="tabs")
        with Container(id="panes"):
            with Horizontal(id="wide-row"):
                with Vertical(id="wide-left"):
                    yield Container(TrialsTable(id="trials-table"), id="trials", classes="pane")
                    with Container(id="detail", classes="pane"):
                        yield Static("", id="detail-text")
                        yield CurvesPlot(id="curves")
                with Vertical(id="wide-right"):
                    with Container(id="front", classes="pane"):
                        yield ParetoPlot(id="pareto")
                        yield HistoryPlot(id="history")
                    yield Container(ImportancePlot(id="importance-plot"), id="importance",
                                    classes="pane")  # fmt: skip
                    yield Container(
                        DataTable(id="workers-table", cursor_type="row"), id="workers",
                        classes="pane",
                    )  # fmt: skip
                    yield Container(Log(id="log-view", highlight=False), id="log", classes="pane")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#workers-table", DataTable).add_columns(
            "host", "pid", "gpu", "util", "gpu mem", "cpu", "rss", "state", "trial", "beat"
        )
        for pane, title in PANE_TITLES.items():
            self.query_one(f"#{pane}").border_title = title
        self._layout()
        self.query_one(TrialsTable).focus()
        self.poll()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        width, height = self.app.size
        self._wide = width >= WIDE[0] and height >= WIDE[1]
        left_shown = {"trials", "detail"}
        right_pick = (
            self.active if self.active in ("front", "importance", "workers", "log") else "front"
        )
        for pane in PANES:
            widget = self.query_one(f"#{pane}")
            if self._wide:
                widget.display = (
                    pane in left_shown
                    or pane == right_pick
                    or (pane == "workers" and right_pick in ("front", "importance"))
                )
            else:
                widget.display = pane == self.active
        self.query_one("#wide-left").display = self._wide or self.active in left_shown
        self.query_one("#wide-right").display = self._wide or self.active not in left_shown
        pareto = self.snapshot is not None and len(self.snapshot.directions) > 1
        self.query_one("#pareto").display = pareto
        tabs = "  ".join(
            f"[reverse]{PANE_TITLES[p]}[/]" if p == self.active else PANE_TITLES[p] for p in PANES
        )
        self.query_one("#tabs", Static).update(tabs + "   ? help")

    def action_pane(self, pane: str) -> None:
        self.active = pane
        self._layout()
        focus = {"trials": "#trials-table", "workers": "#workers-table"}.get(pane)
        if focus:
            self.query_one(focus).focus()
        self._paint_plots(force=True)
        if self.snapshot is not None:
            self._maybe_importance(self.snapshot)

    # polling --------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll(self) -> None:
        try:
            snapshot = self.app.session.snapshot(self.study)  # type: ignore[attr-defined]
        except Exception as exc:
            self.post_message(StorageDown(_one_line(exc), self._backoff))
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
        self._paint_header(snap)
        if old is None or old.frame is not snap.frame:
            self.recompute_view()
            self._paint_plots()
            self._maybe_importance(snap)
            self._refresh_selected()
        elif self._selected_running():
            self._refresh_selected()
        self.load_hardware(snap)
        self.set_timer(POLL_S, self.poll)

    # header and counts ---------------------------------------------------------------------

    def _paint_header(self, snap: StudySnapshot) -> None:
        o = snap.orders
        live = [w for w in snap.workers if w.state not in ("exited", "lost")]
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
        line2 = (
            f"workers {len(live)}  elapsed {age_text(snap.elapsed_s)}  "
            f"{snap.trials_per_minute:.1f} trials/min"
            + (f"  budget {o.trial_budget}" if o.trial_budget is not None else "")
        )
        self.query_one("#header", Static).update(f"{line1}\n{line2}")
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
        self.query_one("#counts", Static).update(text)

    # the table: sort and filter off the UI thread ---------------------------------------------

    @work(thread=True, exclusive=True, group="view", exit_on_error=False)
    def recompute_view(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        table = self.query_one(TrialsTable)
        frame = snap.frame
        rows = np.arange(len(frame))
        error = None
        if self.filter_text.strip():
            from tui_hpo import filters

            try:
                rows = np.flatnonzero(filters.parse(self.filter_text).mask(frame))
            except Exception as exc:  # FilterError and anything unexpected: one line
                error = getattr(exc, "message", str(exc))
                self.filter_text = self._good_filter  # keep showing what the last good one did
                rows = table.view if table.frame is frame else np.arange(len(frame))
        else:
            self._good_filter = ""
        if error is None:
            self._good_filter = self.filter_text
        view = ordered(frame, rows, table.sort_key, table.descending)
        self.post_message(ViewReady(frame.generation, view, error))

    def on_view_ready(self, message: ViewReady) -> None:
        if self.snapshot is None:
            return
        if message.error:
            self.notify(message.error, severity="error")
        table = self.query_one(TrialsTable)
        front = self.snapshot.pareto
        table.highlight = (lambda i: bool(front[i])) if front is not None else None
        table.show(self.snapshot.frame, message.view)
        if self._pending_jump is not None:
            number, self._pending_jump = self._pending_jump, None
            if not table.go_to_number(number):
                self.notify(f"no trial {number}", severity="warning")
        shown = len(message.view)
        total = len(self.snapshot.frame)
        title = PANE_TITLES["trials"] + f" ({shown}/{total})" if self.filter_text else ""
        self.query_one("#trials").border_title = title or PANE_TITLES["trials"]
        if self.filter_text:
            self.query_one("#trials").border_subtitle = f"filter: {self.filter_text}"
        else:
            self.query_one("#trials").border_subtitle = ""

    def action_sort(self) -> None:
        table = self.query_one(TrialsTable)
        keys = [c.key for c in table.columns] or ["number"]
        i = keys.index(table.sort_key) if table.sort_key in keys else -1
        table.sort_key = keys[(i + 1) % len(keys)]
        self.recompute_view()

    def action_reverse(self) -> None:
        table = self.query_one(TrialsTable)
        table.descending = not table.descending
        self.recompute_view()

    def action_filter(self) -> None:
        from tui_hpo import filters

        def done(text: object) -> None:
            if text is None:
                return
            known = self.snapshot.frame.params if self.snapshot is not None else None
            try:
                filters.parse(str(text), fields=known)
            except Exception as exc:
                self.notify(getattr(exc, "message", str(exc)), severity="error")
                return
            self.filter_text = str(text)
            self.recompute_view()

        self.app.push_screen(
            forms.PromptScreen("Filter trials", self.filter_text,
                               "lr < 1e-3 and state == COMPLETE",
                               "fields: number state value values[i] duration host gpu sampler "
                               "and params; and/or/not; empty shows all"),
            done,
        )  # fmt: skip

    def action_jump(self) -> None:
        def done(text: object) -> None:
            if not text:
                return
            try:
                number = int(str(text).strip().lstrip("#"))
            except ValueError:
                self.notify(f"not a trial number: {text}", severity="error")
                return
            table = self.query_one(TrialsTable)
            if not table.go_to_number(number):
                if self.filter_text:
                    self.filter_text = ""
                    self._pending_jump = number  # taken once the unfiltered view arrives
                    self.recompute_view()
                else:
                    self.notify(f"no trial {number}", severity="warning")

        self.app.push_screen(forms.PromptScreen("Go to trial", "", "trial number"), done)

    # selection, detail and curves ------------------------------------------------------------

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
        self._paint_plots(force=True)

    def _selected(self) -> int | None:
        return self.query_one(TrialsTable).selected_index()

    def _selected_running(self) -> bool:
        i = self._selected()
        snap = self.snapshot
        return snap is not None and i is not None and snap.frame.state[i] == STATE_CODE["RUNNING"]

    def _refresh_selected(self) -> None:
        snap = self.snapshot
        i = self._selected()
        if snap is None or i is None:
            self.query_one("#detail-text", Static).update("no trial selected")
            return
        f = snap.frame
        trial_id = int(f.trial_id[i])
        ids = [trial_id] + [t for t in self.pinned if t != trial_id]
        numbers = {}
        for tid in ids:
            where = np.flatnonzero(f.trial_id == tid)
            if len(where):
                numbers[tid] = int(f.number[where[0]])
        self.load_detail(snap.study_id, trial_id, ids, numbers)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load_detail(
        self, study_id: int, trial_id: int, ids: list[int], numbers: dict[int, int]
    ) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        try:
            detail = session.detail(study_id, trial_id)
            curves = session.curves(study_id, ids)
        except Exception as exc:
            self.post_message(StorageDown(_one_line(exc), self._backoff))
            return
        self.post_message(DetailLoaded(trial_id, detail))
        self.post_message(CurvesLoaded(curves, numbers))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        snap = self.snapshot
        i = self._selected()
        if snap is None or i is None or int(snap.frame.trial_id[i]) != message.trial_id:
            return
        f = snap.frame
        state = STATE_NAMES[int(f.state[i])]
        values = ", ".join(f"{v:.6g}" for v in f.values[i] if not math.isnan(v)) or "-"
        params = "  ".join(f"{n}={c.display(i)}" for n, c in f.params.items() if c.display(i))
        user = message.detail["user_attrs"]
        system = message.detail["system_attrs"]
        where = f"{user.get('tui_hpo.host', '?')} pid {user.get('tui_hpo.pid', '?')} " \
                f"gpu {user.get('tui_hpo.gpu', '-')}"  # fmt: skip
        lines = [
            f"[b]trial {int(f.number[i])}[/] {state}  values {values}",
            f"params  {params}",
            f"ran on  {where}  sampler {f.sampler[i] or '-'}",
        ]
        reason = user.get("tui_hpo.fail_reason") or system.get("fail_reason")
        if reason:
            lines.append(f"[red]fail reason[/] {reason}")
        others = {k: v for k, v in user.items() if not k.startswith("tui_hpo.")}
        if others:
            lines.append("user attrs  " + json.dumps(others)[:300])
        if self.pinned:
            lines.append(f"comparing {len(self.pinned)} pinned trial(s) (c to pin/unpin)")
        self.query_one("#detail-text", Static).update("\n".join(lines))

    def on_curves_loaded(self, message: CurvesLoaded) -> None:
        labels = {tid: f"#{n}" for tid, n in message.numbers.items()}
        self.query_one("#curves", CurvesPlot).draw(message.curves, labels)

    def action_compare(self) -> None:
        snap = self.snapshot
        i = self._selected()
        if snap is None or i is None:
            return
        trial_id = int(snap.frame.trial_id[i])
        if trial_id in self.pinned:
            self.pinned.remove(trial_id)
            self.notify(f"trial {int(snap.frame.number[i])} unpinned")
        else:
            self.pinned = (self.pinned + [trial_id])[-6:]
            self.notify(f"trial {int(snap.frame.number[i])} pinned for comparison")
        self._refresh_selected()

    # plots -----------------------------------------------------------------------------------

    def _paint_plots(self, force: bool = False) -> None:
        """Redraw the Pareto/best pane when it shows; while trials stream in, at most every
        PLOT_EVERY_S (plotting thousands of points takes the UI thread tens of ms)."""
        snap = self.snapshot
        if snap is None or not self.query_one("#front").display:
            return
        now = time.monotonic()
        if not force and now - self._plotted_at < PLOT_EVERY_S:
            return
        self._plotted_at = now
        frame = snap.frame
        selected = self._selected()
        history = self.query_one("#history", HistoryPlot)
        self.query_one("#pareto").display = len(frame.directions) > 1
        if len(frame.directions) > 1:
            k = len(frame.directions)
            self.axes = (self.axes[0] % k, self.axes[1] % k)
            self.query_one("#pareto", ParetoPlot).draw(frame, snap.pareto, self.axes, selected)
            if self._hv is not None and self._hv_generation == frame.generation:
                history.draw_hypervolume(*self._hv)
            else:
                self.compute_hypervolume(frame)
        else:
            history.draw_best(frame, selected)

    @work(thread=True, exclusive=True, group="hypervolume", exit_on_error=False)
    def compute_hypervolume(self, frame: object) -> None:
        from tui_hpo.trialdata import TrialFrame

        assert isinstance(frame, TrialFrame)
        numbers, volumes = hypervolume_history(frame)
        self.app.call_from_thread(self._hypervolume_ready, frame.generation, numbers, volumes)

    def _hypervolume_ready(self, generation: int, numbers: np.ndarray, volumes: np.ndarray) -> None:
        self._hv_generation = generation
        self._hv = (numbers, volumes)
        self.query_one("#history", HistoryPlot).draw_hypervolume(numbers, volumes)

    def action_axes(self) -> None:
        snap = self.snapshot
        if snap is None or len(snap.directions) < 3:
            return
        k = len(snap.directions)
        pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
        self.axes = (
            pairs[(pairs.index(self.axes) + 1) % len(pairs)] if self.axes in pairs else pairs[0]
        )
        self._paint_plots(force=True)

    def action_front_step(self, step: int) -> None:
        """Move through the Pareto front (sorted on the first plotted objective)."""
        snap = self.snapshot
        if snap is None or snap.pareto is None or not snap.pareto.any():
            return
        frame = snap.frame
        front = np.flatnonzero(snap.pareto)
        front = front[np.argsort(frame.values[front, self.axes[0]])]
        current = self._selected()
        where = np.flatnonzero(front == current)
        pos = (int(where[0]) + step) % len(front) if len(where) else 0
        table = self.query_one(TrialsTable)
        if not table.go_to_number(int(frame.number[front[pos]])):
            self.notify("that trial is hidden by the filter", severity="warning")

    # importance ------------------------------------------------------------------------------

    def _maybe_importance(self, snap: StudySnapshot) -> None:
        """fANOVA takes seconds of CPU on a big study: only while its pane shows, and again
        only when COMPLETE trials have grown by a tenth (or five)."""
        if not self.query_one("#importance").display:
            return
        n = int(snap.frame.complete_mask().sum())
        grew = n >= max(2, int(self._importance_n * 1.1), self._importance_n + 5)
        if self._importance_n < 0 or grew:
            self._importance_n = n
            self.compute_importance(snap)

    @work(thread=True, exclusive=True, group="importance", exit_on_error=False)
    def compute_importance(self, snap: StudySnapshot) -> None:
        from tui_hpo import importance

        n = int(snap.frame.complete_mask().sum())
        self.post_message(ImportanceLoaded(importance.importances(snap.frame), n))

    def on_importance_loaded(self, message: ImportanceLoaded) -> None:
        self.query_one("#importance-plot", ImportancePlot).draw(
            message.importances, message.n_complete
        )

    # workers and log ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def load_hardware(self, snap: StudySnapshot) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        rows = session.hardware(snap.workers)
        log_path = None
        live = [w for w in snap.workers if w.is_local]
        chosen = [w for w in live if w.worker_id == self.selected_worker] or live[-1:]
        if chosen:
            log_path = chosen[0].log_path
        self.post_message(HardwareLoaded(rows, session.log_tail(log_path)))

    def on_hardware_loaded(self, message: HardwareLoaded) -> None:
        snap = self.snapshot
        if snap is None:
            return
        table = self.query_one("#workers-table", DataTable)
        keep = table.cursor_row
        table.clear()
        shown = [w for w in snap.workers if w.state != "exited"] or snap.workers[-8:]
        for w in shown:
            hw = message.rows.get(w.pid)
            table.add_row(
                w.host,
                str(w.pid),
                w.gpu or "-",
                _pct(hw.gpu_util if hw else None),
                _mb(hw.gpu_mem_mb if hw else None),
                _pct(hw.cpu_percent if hw else None),
                _mb(hw.rss_mb if hw else None),
                w.state if w.exit_code is None else f"{w.state} ({w.exit_code})",
                "-" if w.trial_number is None else f"#{w.trial_number}",
                age_text(w.heartbeat_age_s),
                key=str(w.worker_id),
            )
        if shown:
            table.move_cursor(row=min(keep, len(shown) - 1))
        log = self.query_one("#log-view", Log)
        if message.log_lines != getattr(log, "_shown_lines", None):
            log.clear()
            log.write_lines(message.log_lines)
            log._shown_lines = message.log_lines  # type: ignore[attr-defined]

    @on(DataTable.RowHighlighted, "#workers-table")
    def on_worker_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.selected_worker = int(event.row_key.value)

    # commands ---------------------------------------------------------------------------------

    def run_command(self, label: str, func: object, *args: object) -> None:
        self.app.run_command(self, label, func, *args)  # type: ignore[attr-defined]

    def on_action_done(self, message: ActionDone) -> None:
        self.app.report(message)  # type: ignore[attr-defined]
        self.poll()

    def _session(self) -> object:
        return self.app.session  # type: ignore[attr-defined]

    def action_pause(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        s = self._session()
        self.run_command("pause", s.pause, snap.study_id, not snap.orders.paused)  # type: ignore[attr-defined]

    def action_freeze(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        s = self._session()
        self.run_command("freeze", s.freeze, snap.study_id, not snap.frozen)  # type: ignore[attr-defined]

    def _switch(self, kind: str) -> None:
        snap = self.snapshot
        if snap is None:
            return
        current = snap.orders.sampler if kind == "sampler" else snap.orders.pruner

        def done(result: object) -> None:
            if result:
                name, kwargs = result  # type: ignore[misc]
                s = self._session()
                self.run_command(kind, s.set_setting, snap.study_id, kind, name, kwargs)  # type: ignore[attr-defined]

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
            self.notify(f"trial {int(snap.frame.number[i])} is not running ({state})",
                        severity="warning")  # fmt: skip
            return None
        return int(snap.frame.number[i])

    def action_prune_trial(self) -> None:
        number = self._selected_number(need_running=True)
        if number is not None and self.snapshot is not None:
            s = self._session()
            self.run_command("prune", s.prune_trial, self.snapshot.study_id, number)  # type: ignore[attr-defined]

    def action_fail_trial(self) -> None:
        number = self._selected_number(need_running=True)
        if number is None:
            return

        def done(yes: object) -> None:
            if yes:
                s = self._session()
                self.run_command("fail", s.fail_trial, self.study, number)  # type: ignore[attr-defined]

        self.app.push_screen(
            forms.ConfirmScreen(f"Fail trial {number} now? Its worker process is killed."), done
        )

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
                s = self._session()
                self.run_command("enqueue", s.enqueue, self.study, str(text))  # type: ignore[attr-defined]

        self.app.push_screen(forms.EnqueueForm(json.dumps(params)), done)

    def action_scale(self, delta: int) -> None:
        snap = self.snapshot
        if snap is not None:
            s = self._session()
            self.run_command("scale", s.scale, snap.study_id, self.study, delta)  # type: ignore[attr-defined]

    def action_stop_all(self) -> None:
        snap = self.snapshot
        if snap is None:
            return

        def done(yes: object) -> None:
            if yes:
                s = self._session()
                self.run_command("stop", s.stop, snap.study_id)  # type: ignore[attr-defined]

        self.app.push_screen(
            forms.ConfirmScreen(f"Stop every worker of {self.study}? They finish their trial."),
            done,
        )

    def action_back(self) -> None:
        self.app.pop_screen()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}M"


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
