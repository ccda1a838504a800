"""Pane 3: the selected trial (state, values, params, where it ran, why it failed, its user
attrs) and its learning curve, with pinned trials' curves overlaid to compare. A command
trial's output file is announced (``TrialOutputChosen``), so that the log pane follows it."""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass

import numpy as np
from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Container
from textual.message import Message
from textual.widgets import Static

from tui_hpo.app.messages import CurvesLoaded, DetailLoaded, StorageDown
from tui_hpo.app.widgets.plots import CurvesPlot
from tui_hpo.data.frames import STATE_NAMES, TrialFrame
from tui_hpo.data.session import Session
from tui_hpo.errors import one_line
from tui_hpo.storage import attrs

MAX_PINNED = 6


NOTE_LINES = 3
"""Lines of a trial's note shown in the pane; ``N`` opens the whole note."""


def note_lines(note: str, width: int = 200) -> list[str]:
    """The first non-blank lines of a trial's note, as pane lines (markup escaped), and how
    many more there are: a note may run to pages, the pane has a dozen lines."""
    shown = [line.rstrip() for line in note.splitlines() if line.strip()]
    if not shown:
        return []
    out = [
        ("[b]note[/]    " if k == 0 else "        ") + escape(line[:width])
        for k, line in enumerate(shown[:NOTE_LINES])
    ]
    if len(shown) > NOTE_LINES:
        out.append(f"        [dim]... {len(shown) - NOTE_LINES} more line(s) (N opens it)[/]")
    return out


class DetailPane(Container):
    @dataclass
    class TrialOutputChosen(Message):
        """The selected trial's output file, when it ran a program on this machine (None:
        it ran a function, or elsewhere): the log pane follows it instead of a worker's log."""

        path: str | None
        number: int | None

    DEFAULT_CSS = """
    DetailPane #detail-text { height: auto; max-height: 12; }
    """

    def __init__(self, *, id: str = "detail") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "3 trial"
        self.pinned: list[int] = []
        """Trial ids whose curves are overlaid."""
        self._frame: TrialFrame | None = None
        self._index: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-text")
        yield CurvesPlot(id="curves")

    def show_trial(self, session: Session, frame: TrialFrame, index: int | None) -> None:
        """Load and show the trial at row ``index`` of the frame (None: no trial)."""
        self._frame, self._index = frame, index
        if index is None:
            self.query_one("#detail-text", Static).update("no trial selected")
            return
        trial_id = int(frame.trial_id[index])
        ids = [trial_id] + [t for t in self.pinned if t != trial_id]
        numbers = {}
        for tid in ids:
            where = np.flatnonzero(frame.trial_id == tid)
            if len(where):
                numbers[tid] = int(frame.number[where[0]])
        self.load(session, frame.study_id, trial_id, ids, numbers)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load(
        self,
        session: Session,
        study_id: int,
        trial_id: int,
        ids: list[int],
        numbers: dict[int, int],
    ) -> None:
        try:
            detail = session.detail(study_id, trial_id)
            curves = session.curves(study_id, ids)
        except Exception as exc:
            self.post_message(StorageDown(one_line(exc, limit=200), 1.0))
            return
        self.post_message(DetailLoaded(trial_id, detail))
        self.post_message(CurvesLoaded(curves, numbers))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        f, i = self._frame, self._index
        if f is None or i is None or int(f.trial_id[i]) != message.trial_id:
            return  # the cursor moved on meanwhile
        state = STATE_NAMES[int(f.state[i])]
        values = ", ".join(
            f"{f.objective_name(k)}={v:.6g}" if f.metric_names else f"{v:.6g}"
            for k, v in enumerate(f.values[i])
            if not math.isnan(v)
        )
        params = "  ".join(f"{n}={c.display(i)}" for n, c in f.params.items() if c.display(i))
        user = message.detail["user_attrs"]
        system = message.detail["system_attrs"]
        where = (
            f"{user.get('tui_hpo.host', '?')} pid {user.get('tui_hpo.pid', '?')} "
            f"gpu {user.get('tui_hpo.gpu', '-')}"
        )
        lines = [
            f"[b]trial {int(f.number[i])}[/] {state}  values {values or '-'}",
            f"params  {params}",
            f"ran on  {where}  sampler {f.sampler[i] or '-'}",
        ]
        tags = user.get(attrs.TAGS)
        if isinstance(tags, list) and tags:
            lines.append(f"tags    {escape(', '.join(str(t) for t in tags))}")
        lines += note_lines(str(message.detail.get("note") or ""))
        reason = user.get("tui_hpo.fail_reason") or system.get("fail_reason")
        if reason:
            lines.append(f"[red]fail reason[/] {escape(str(reason))}")
        output = user.get(attrs.OUTPUT)
        if output:
            code = user.get(attrs.EXIT_CODE)
            exit_text = f"  exit code {code}" if code is not None else ""
            lines.append(f"output  {escape(str(output))}{exit_text}")
        local = output and user.get(attrs.HOST, socket.gethostname()) == socket.gethostname()
        self.post_message(self.TrialOutputChosen(output if local else None, int(f.number[i])))
        others = {k: v for k, v in user.items() if not k.startswith("tui_hpo.")}
        if others:
            lines.append("user attrs  " + json.dumps(others)[:300])
        if self.pinned:
            lines.append(f"comparing {len(self.pinned)} pinned trial(s) (c to pin/unpin)")
        self.query_one("#detail-text", Static).update("\n".join(lines))

    def on_curves_loaded(self, message: CurvesLoaded) -> None:
        labels = {tid: f"#{n}" for tid, n in message.numbers.items()}
        self.query_one(CurvesPlot).draw(message.curves, labels)

    def toggle_pin(self, trial_id: int) -> bool:
        """Pin or unpin a trial's curve; whether it is pinned now."""
        if trial_id in self.pinned:
            self.pinned.remove(trial_id)
            return False
        self.pinned = (self.pinned + [trial_id])[-MAX_PINNED:]
        return True
