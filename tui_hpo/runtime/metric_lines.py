"""Metrics in a program's output, read the way Guild AI's output scalars and W&B users print
them: ``val_loss: 0.31``, ``val_loss=0.31``, the name anywhere on the line
(``epoch 3 val_loss: 0.31``, ``Epoch 3/10 - loss: 0.2 - val_loss=0.31``), or a JSON object
(``{"epoch": 3, "val_loss": 0.31}``). The step is an ``epoch`` or ``step`` on the same line.

A program may print thousands of lines a second; a line that holds none of the names asked for
costs one substring test per name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection

STEP_NAMES = ("step", "epoch")
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|inf|Inf|-inf)"


class MetricReader:
    """Parses lines for a fixed set of metric names."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = tuple(dict.fromkeys(names))
        words = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w./-])({words})\s*(?::|=)\s*({_NUMBER})(?![\w.])")
        self._step = re.compile(r"(?i)(?<![\w./-])(step|epoch)\b\s*[:=]?\s*(\d+)(?:\s*/\s*\d+)?")

    def parse(self, line: str) -> tuple[dict[str, float], int | None]:
        """The metrics asked for on this line, and its step (None when it names none)."""
        if not any(name in line for name in self.names):
            return {}, None
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            found = self._from_json(stripped)
            if found is not None:
                return found
        values: dict[str, float] = {}
        for name, number in self._pattern.findall(line):
            values[name] = float(number)
        if not values:
            return {}, None
        step = None
        match = self._step.search(line)
        if match is not None:
            step = int(match.group(2))
        return values, step

    def _from_json(self, text: str) -> tuple[dict[str, float], int | None] | None:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        values = {}
        for name in self.names:
            value = data.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[name] = float(value)
        step = None
        for key in STEP_NAMES:
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                step = value
                break
            if isinstance(value, float) and math.isfinite(value) and value == int(value):
                step = int(value)
                break
        return values, step
