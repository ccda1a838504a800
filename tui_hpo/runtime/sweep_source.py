"""Where a sweep came from, so that its errors and warnings can say so.

Every mistake in a sweep names the file and the line of the key at fault (``FILE:LINE:``), or
the flag it is in: a worker that meets a bad file minutes later, on another machine, is much
harder to debug than a launch that refuses it. ``runtime.sweeps`` (the file's keys) and
``runtime.sweep_params`` (its parameters) both word their errors through this one class.
"""

from __future__ import annotations

from typing import Any

from tui_hpo.errors import UserError


class SweepSource:
    """Says where a sweep came from, to word its errors and warnings: ``FILE:LINE:`` (the line
    of the key at fault, or of the nearest key above it) for a file, the flag for flags."""

    def __init__(self, label: str, lines: dict[tuple[str, ...], int] | None = None) -> None:
        self.label = label
        self.lines = lines or {}
        self.warnings: list[str] = []

    def line(self, path: tuple[Any, ...]) -> int | None:
        key = tuple(str(p) for p in path)
        for n in range(len(key), -1, -1):
            if key[:n] in self.lines:
                return self.lines[key[:n]]
        return None

    def error(self, path: tuple[Any, ...], message: str) -> UserError:
        return self.at(self.line(path), message)

    def at(self, line: int | None, message: str) -> UserError:
        where = f"{self.label}:{line}" if line is not None else self.label
        return UserError(f"{where}: {message}")

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.label}: {message}")
