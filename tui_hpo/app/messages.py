"""Messages the app's thread workers post; each carries an immutable snapshot or result.

A thread worker takes its inputs as arguments, does its I/O or computation, and posts one of
these to the widget that started it; only the handler, on the UI thread, paints. Polls can
pile up faster than the UI paints them, so the frequent ones say ``can_replace``: Textual keeps
only the newest one waiting in the queue (toolong's trick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.message import Message

from tui_hpo.data.plot_data import Choice, Figure
from tui_hpo.data.session import StudyRow, StudySnapshot
from tui_hpo.machine.figures import HardwareRow


class _Replaceable(Message):
    """Kept only as the newest of its kind in a queue. Results go to the widget whose worker
    made them (``bubble=False``); ``StorageDown`` bubbles, so a pane's failed read shows in
    its screen's banner."""

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


@dataclass
class StudiesLoaded(_Replaceable, bubble=False):
    rows: list[StudyRow]


@dataclass
class SnapshotLoaded(_Replaceable, bubble=False):
    snapshot: StudySnapshot


@dataclass
class ViewReady(_Replaceable, bubble=False):
    """Row order for the trials table after sort and filter, for one frame generation; the
    filter that made it (``error`` when the filter text could not be used)."""

    generation: int
    view: np.ndarray
    filter_text: str
    error: str | None = None


@dataclass
class CurvesLoaded(_Replaceable, bubble=False):
    curves: dict[int, list[tuple[int, float]]]
    numbers: dict[int, int]
    """trial id -> trial number, for labels"""


@dataclass
class DetailLoaded(_Replaceable, bubble=False):
    trial_id: int
    detail: dict[str, Any]


@dataclass
class ImportanceLoaded(_Replaceable, bubble=False):
    importances: dict[str, float]
    n_complete: int


@dataclass
class HypervolumeLoaded(_Replaceable, bubble=False):
    generation: int
    numbers: np.ndarray
    volumes: np.ndarray


@dataclass
class HardwareLoaded(_Replaceable, bubble=False):
    rows: dict[int, HardwareRow]


@dataclass
class LogLoaded(_Replaceable, bubble=False):
    path: str | None
    lines: list[str]


@dataclass
class StorageDown(_Replaceable):
    """A read failed: the storage is away (or refused us); retried after ``retry_in``."""

    error: str
    retry_in: float


@dataclass
class ActionDone(Message):
    """A command finished: ``ok`` with what happened, or the one-line reason it failed."""

    ok: bool
    text: str
    opens: str | None = None
    """A study to open now (one the app just launched)."""


@dataclass
class FigureReady(_Replaceable, bubble=False):
    """A figure for frame ``generation`` and the choice that made it (``error``: why none)."""

    generation: int
    choice: Choice
    figure: Figure | None
    error: str | None = None
