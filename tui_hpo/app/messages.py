"""Messages the app's thread workers post; each carries an immutable snapshot.

Polls can pile up faster than the UI paints them, so the frequent ones say ``can_replace``:
Textual keeps only the newest one waiting in the queue (toolong's trick).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.message import Message

from tui_hpo.session import HardwareRow, StudyRow, StudySnapshot


class _Replaceable(Message, bubble=False):
    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


class StudiesLoaded(_Replaceable):
    def __init__(self, rows: list[StudyRow]) -> None:
        super().__init__()
        self.rows = rows


class SnapshotLoaded(_Replaceable):
    def __init__(self, snapshot: StudySnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ViewReady(_Replaceable):
    """Row order for the trials table after sort and filter, for one frame generation."""

    def __init__(self, generation: int, view: np.ndarray, error: str | None = None) -> None:
        super().__init__()
        self.generation = generation
        self.view = view
        self.error = error


class CurvesLoaded(_Replaceable):
    def __init__(self, curves: dict[int, list[tuple[int, float]]], numbers: dict[int, int]):
        super().__init__()
        self.curves = curves
        self.numbers = numbers  # trial id -> trial number, for labels


class DetailLoaded(_Replaceable):
    def __init__(self, trial_id: int, detail: dict[str, Any]) -> None:
        super().__init__()
        self.trial_id = trial_id
        self.detail = detail


class ImportanceLoaded(_Replaceable):
    def __init__(self, importances: dict[str, float], n_complete: int) -> None:
        super().__init__()
        self.importances = importances
        self.n_complete = n_complete


class HardwareLoaded(_Replaceable):
    def __init__(self, rows: dict[int, HardwareRow], log_lines: list[str]) -> None:
        super().__init__()
        self.rows = rows
        self.log_lines = log_lines


class StorageDown(_Replaceable):
    def __init__(self, error: str, retry_in: float) -> None:
        super().__init__()
        self.error = error
        self.retry_in = retry_in


@dataclass
class ActionDone(Message):
    """A command finished: ``ok`` with what happened, or the one-line reason it failed."""

    ok: bool
    text: str
