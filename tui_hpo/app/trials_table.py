"""The trials table on Textual's Line API: only the rows on screen are ever rendered.

Textual's DataTable builds every row up front (seconds at 100,000 trials); here a row is text
made from the frame's arrays when its line is painted. The row order (``view``, indexes into
the frame) comes from a thread worker that sorts and filters; this widget only paints it and
moves a cursor, keeping the cursor on the same trial when the order changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui_hpo.trialdata import STATE_NAMES, TrialFrame

STATE_STYLE = {
    "COMPLETE": Style(color="green"),
    "PRUNED": Style(color="yellow"),
    "FAIL": Style(color="red", bold=True),
    "RUNNING": Style(color="cyan"),
    "WAITING": Style(dim=True),
}


@dataclass(frozen=True)
class Column:
    key: str  # sort key: "number", "state", "value0", "param:lr", "duration", "host", ...
    title: str
    width: int
    right: bool = True


def columns_for(frame: TrialFrame) -> list[Column]:
    cols = [Column("number", "#", 6), Column("state", "state", 8, right=False)]
    for i, _ in enumerate(frame.directions):
        cols.append(Column(f"value{i}", "value" if frame.n_objectives == 1 else f"v{i}", 10))
    for name in frame.params:
        cols.append(Column(f"param:{name}", name[:12], max(10, min(12, len(name)))))
    cols += [
        Column("duration", "time", 7),
        Column("host", "host", 10, right=False),
        Column("gpu", "gpu", 4, right=False),
        Column("sampler", "sampler", 10, right=False),
    ]
    return cols


def _num(value: float) -> str:
    if math.isnan(value):
        return ""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.6g}"
    return f"{value:.3e}"


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return ""
    if seconds < 100:
        return f"{seconds:.1f}s"
    if seconds < 6000:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def cell_text(frame: TrialFrame, column: Column, i: int, now: float) -> str:
    key = column.key
    if key == "number":
        return str(int(frame.number[i]))
    if key == "state":
        return STATE_NAMES[int(frame.state[i])]
    if key.startswith("value"):
        return _num(float(frame.values[i, int(key[5:])]))
    if key.startswith("param:"):
        return frame.params[key[6:]].display(i)
    if key == "duration":
        return _duration(_dur_one(frame, i, now))
    if key == "host":
        return frame.host[i]
    if key == "gpu":
        return frame.gpu[i]
    if key == "sampler":
        return frame.sampler[i]
    return ""


def _dur_one(frame: TrialFrame, i: int, now: float) -> float:
    end = frame.complete[i]
    return float((now if math.isnan(end) else end) - frame.start[i])


def sort_keys(frame: TrialFrame, key: str, now: float) -> np.ndarray:
    """An array to argsort by for column ``key`` (missing values sort last)."""
    if key == "number":
        return frame.number.astype(np.float64)
    if key == "state":
        return frame.state.astype(np.float64)
    if key.startswith("value"):
        return frame.values[:, int(key[5:])]
    if key.startswith("param:"):
        return frame.params[key[6:]].values
    if key == "duration":
        return frame.duration(now)
    cat = {"host": frame.host, "gpu": frame.gpu, "sampler": frame.sampler}[key]
    return np.where(cat.codes >= 0, cat.codes, np.nan).astype(np.float64)


def ordered(frame: TrialFrame, rows: np.ndarray, key: str, descending: bool) -> np.ndarray:
    values = sort_keys(frame, key, time.time())[rows]
    missing = np.isnan(values)
    order = np.argsort(np.where(missing, np.inf, -values if descending else values), kind="stable")
    return rows[order]


class TrialsTable(ScrollView, can_focus=True):
    """Trials of a frame in the order of ``view``; Enter/cursor selects a trial."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("left,h", "scroll_cols(-8)", "Left", show=False),
        Binding("right,l", "scroll_cols(8)", "Right", show=False),
    ]

    DEFAULT_CSS = """
    TrialsTable { height: 1fr; }
    """

    class Selected(Message):
        """The cursor rests on another trial."""

        def __init__(self, table: TrialsTable, index: int | None) -> None:
            super().__init__()
            self.table = table
            self.index = index  # row in the frame, or None when the view is empty

        @property
        def control(self) -> TrialsTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.frame: TrialFrame | None = None
        self.view: np.ndarray = np.empty(0, dtype=np.int64)
        self.columns: list[Column] = []
        self.cursor = 0
        self.sort_key = "number"
        self.descending = False
        self.highlight: Callable[[int], bool] | None = None
        self._now = time.time()

    # data -------------------------------------------------------------------------------------

    def show(self, frame: TrialFrame, view: np.ndarray) -> None:
        """Paint a new frame/order, keeping the cursor on the trial it was on."""
        keep = self.selected_number()
        self.frame = frame
        self.view = view
        self.columns = columns_for(frame)
        self._now = time.time()
        if keep is not None:
            i = frame.index_of(keep)
            if i is not None:
                where = np.flatnonzero(view == i)
                if len(where):
                    self.cursor = int(where[0])
        self.cursor = max(0, min(self.cursor, len(view) - 1))
        width = sum(c.width + 1 for c in self.columns)
        self.virtual_size = Size(width, len(view) + 1)
        self.refresh()
        self._announce()

    def selected_index(self) -> int | None:
        if self.frame is None or len(self.view) == 0:
            return None
        return int(self.view[self.cursor])

    def selected_number(self) -> int | None:
        i = self.selected_index()
        return None if i is None or self.frame is None else int(self.frame.number[i])

    def go_to_number(self, number: int) -> bool:
        if self.frame is None:
            return False
        i = self.frame.index_of(number)
        if i is None:
            return False
        where = np.flatnonzero(self.view == i)
        if not len(where):
            return False
        self._move_to(int(where[0]))
        return True

    # painting ---------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            return self._header().crop(scroll_x, scroll_x + width)
        row = scroll_y + y - 1
        if self.frame is None or row >= len(self.view) or row < 0:
            return Strip.blank(width, self.rich_style)
        return self._row(row).crop(scroll_x, scroll_x + width)

    def _header(self) -> Strip:
        style = Style(bold=True, reverse=True)
        segments = []
        for col in self.columns:
            title = col.title
            if col.key == self.sort_key:
                title += "▼" if self.descending else "▲"
            text = title.rjust(col.width) if col.right else title.ljust(col.width)
            segments.append(Segment(text[: col.width] + " ", style))
        total = sum(c.width + 1 for c in self.columns)
        pad = max(0, self.size.width + self.scroll_offset.x - total)
        segments.append(Segment(" " * pad, style))
        return Strip(segments)

    def _row(self, row: int) -> Strip:
        assert self.frame is not None
        i = int(self.view[row])
        selected = row == self.cursor
        base = Style(reverse=True) if selected and self.has_focus else Style()
        if selected and not self.has_focus:
            base = Style(underline=True)
        if self.highlight is not None and self.highlight(i):
            base += Style(bold=True)
        segments = []
        for col in self.columns:
            text = cell_text(self.frame, col, i, self._now)
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            style = base
            if col.key == "state":
                style = STATE_STYLE[text.strip()] + base
            segments.append(Segment(text[: col.width] + " ", style))
        total = sum(c.width + 1 for c in self.columns)
        pad = max(0, self.size.width + self.scroll_offset.x - total)
        segments.append(Segment(" " * pad, base))
        return Strip(segments)

    # moving -------------------------------------------------------------------------------------

    def _move_to(self, row: int) -> None:
        if len(self.view) == 0:
            return
        row = max(0, min(row, len(self.view) - 1))
        old = self.cursor
        self.cursor = row
        visible = self.size.height - 1
        top = self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        self.refresh_line(old - self.scroll_offset.y + 1)
        self.refresh()
        if old != row:
            self._announce()

    def _announce(self) -> None:
        self.post_message(self.Selected(self, self.selected_index()))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        self._move_to(len(self.view) - 1 if end else 0)

    def action_scroll_cols(self, delta: int) -> None:
        self.scroll_to(x=max(0, self.scroll_offset.x + delta), animate=False)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
