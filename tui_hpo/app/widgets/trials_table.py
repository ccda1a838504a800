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

from tui_hpo.data.frames import STATE_NAMES, TrialFrame

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


PINNED = ("number", "state")
"""Columns that stay on screen while ``←``/``→`` move through the others."""

HIDDEN_MARK = 5
"""Room for ``◀12`` or ``12▶`` where columns are hidden on that side."""


@dataclass(frozen=True)
class Shown:
    """The columns that fit whole in the table's width, and how many are hidden each side."""

    columns: list[Column]
    left: int
    right: int


def fit_columns(columns: list[Column], width: int, first: int) -> Shown:
    """The pinned columns, then whole columns from the ``first`` scrollable one while they fit;
    room is kept for a count of the hidden ones on each side that has any."""
    pinned = [c for c in columns if c.key in PINNED]
    rest = [c for c in columns if c.key not in PINNED]
    first = max(0, min(first, len(rest) - 1)) if rest else 0

    def take(room: int) -> list[Column]:
        taken: list[Column] = []
        used = sum(c.width + 1 for c in pinned)
        for col in rest[first:]:
            if used + col.width + 1 > room:
                break
            taken.append(col)
            used += col.width + 1
        return taken

    taken = take(width)
    if first or len(taken) < len(rest) - first:
        marks = (HIDDEN_MARK if first else 0) + HIDDEN_MARK
        taken = take(width - marks)
    return Shown([*pinned, *taken], first, len(rest) - first - len(taken))


def columns_for(frame: TrialFrame) -> list[Column]:
    cols = [Column("number", "#", 6), Column("state", "state", 8, right=False)]
    for i, _ in enumerate(frame.directions):
        cols.append(Column(f"value{i}", frame.objective_name(i)[:10], 10))
    for name in frame.params:
        cols.append(Column(f"param:{name}", name[:12], max(10, min(12, len(name)))))
    cols += [
        Column("duration", "time", 7),
        Column("host", "host", 10, right=False),
        Column("gpu", "gpu", 4, right=False),
        Column("sampler", "sampler", 10, right=False),
    ]
    if frame.tags is not None and any(frame.tags.labels):  # only once a trial has a tag
        cols.append(Column("tags", "tags", 12, right=False))
    return cols


def _num(value: float, width: int = 10) -> str:
    """A number in at most ``width`` characters, as precise as fits (never cut mid-number)."""
    if math.isnan(value):
        return ""
    for digits in range(6, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= width:
            return text
    return "#" * width


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
        return _num(float(frame.values[i, int(key[5:])]), column.width)
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
    if key == "tags" and frame.tags is not None:
        return frame.tags[i]
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
    cat = {"host": frame.host, "gpu": frame.gpu, "sampler": frame.sampler, "tags": frame.tags}[key]
    if cat is None:
        return np.full(len(frame), np.nan)
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
        Binding("left,h", "scroll_cols(-1)", "Columns left", show=False),
        Binding("right,l", "scroll_cols(1)", "Columns right", show=False),
    ]

    DEFAULT_CSS = """
    TrialsTable { height: 1fr; }
    """

    @dataclass
    class Selected(Message):
        """The cursor rests on another trial."""

        table: TrialsTable
        index: int | None
        """Row in the frame, or None when the view is empty."""

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
        self.first_column = 0
        """The first of the scrollable columns on screen (``←``/``→`` move it)."""
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
        self.virtual_size = Size(0, len(view) + 1)  # columns scroll by column, not by cell
        self.refresh()
        self._announce()

    @property
    def _width(self) -> int:
        """Cells a line has, the vertical scrollbar's excluded."""
        return self.scrollable_content_region.width

    def shown(self) -> Shown:
        return fit_columns(self.columns, self._width, self.first_column)

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
        width = self._width
        if y == 0:
            return self._header(self.shown()).crop(0, width)
        row = self.scroll_offset.y + y - 1
        if self.frame is None or row >= len(self.view) or row < 0:
            return Strip.blank(width, self.rich_style)
        return self._row(row, self.shown()).crop(0, width)

    def _header(self, shown: Shown) -> Strip:
        style = Style(bold=True, reverse=True)
        mark = Style(bold=True, color="yellow", reverse=True)
        segments = []
        for n, col in enumerate(shown.columns):
            if n == len(PINNED) and shown.left:
                segments.append(Segment(f"◀{shown.left}".ljust(HIDDEN_MARK), mark))
            title = col.title
            if col.key == self.sort_key:
                title += "▼" if self.descending else "▲"
            text = title.rjust(col.width) if col.right else title.ljust(col.width)
            segments.append(Segment(text[: col.width] + " ", style))
        used = sum(s.cell_length for s in segments)
        if shown.right:
            tail = f"{shown.right}▶"
            pad = max(0, self._width - used - len(tail))
            segments += [Segment(" " * pad, style), Segment(tail, mark)]
        else:
            segments.append(Segment(" " * max(0, self._width - used), style))
        return Strip(segments)

    def _row(self, row: int, shown: Shown) -> Strip:
        assert self.frame is not None
        i = int(self.view[row])
        selected = row == self.cursor
        base = Style(reverse=True) if selected and self.has_focus else Style()
        if selected and not self.has_focus:
            base = Style(underline=True)
        if self.highlight is not None and self.highlight(i):
            base += Style(bold=True)
        segments = []
        for n, col in enumerate(shown.columns):
            if n == len(PINNED) and shown.left:
                segments.append(Segment(" " * HIDDEN_MARK, base))
            text = cell_text(self.frame, col, i, self._now)
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            style = base
            if col.key == "state":
                style = STATE_STYLE[text.strip()] + base
            segments.append(Segment(text[: col.width] + " ", style))
        used = sum(s.cell_length for s in segments)
        segments.append(Segment(" " * max(0, self._width - used), base))
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
        # sent by this table whoever called: Textual stops a message at its sender's level,
        # and the pane that shows a new view is this table's parent
        self.post_message(self.Selected(self, self.selected_index()).set_sender(self))

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        self._move_to(len(self.view) - 1 if end else 0)

    def action_scroll_cols(self, delta: int) -> None:
        """Move the scrollable columns by ``delta`` whole columns, no further than needed to
        show the last one."""
        shown = self.shown()
        if delta > 0 and not shown.right:
            return
        self.first_column = max(0, shown.left + delta)
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
