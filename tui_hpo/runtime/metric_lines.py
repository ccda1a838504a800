"""Metrics in a program's output, read the way Guild AI's output scalars and W&B users print
them: ``val_loss: 0.31``, ``val_loss=0.31``, the name anywhere on the line
(``epoch 3 val_loss: 0.31``, ``Epoch 3/10 - loss: 0.2 - val_loss=0.31``), a printed Python
dict (``{'val_loss': 0.31}``) or a JSON object (``{"epoch": 3, "val_loss": 0.31}``). The step
is an ``epoch`` or ``step`` on the same line.

A name counts only as a whole word: ``loss`` is not read out of ``val_loss: 0.3``, nor out of
``--loss=0.3`` (an argument echoed back). A nested JSON object (``{"val": {"loss": 1}}``) is
not flattened: print the name the sweep asks for.

A program may print thousands of lines a second; a line that holds none of the names asked for
costs one substring test per name, and one regex per name set is compiled once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection

STEP_NAMES = ("step", "epoch")
_NUMBER = (
    r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
    r"|(?i:nan|inf(?:inity)?))"
)
_NOT_WORD_BEFORE = r"(?<![\w./-])"
"""A name starts a word: not the tail of ``train_val_loss``, ``a.loss`` or ``--loss``."""
_NUMBER_ENDS = r"(?!\w|\.\w)"
"""A number ends where the word does: not ``1.2`` out of ``1.2.3`` or ``3`` out of ``3rd``;
a sentence's full stop (``val_loss: 0.31.``) and a percent sign may follow it."""
_STEP = re.compile(
    rf"(?i){_NOT_WORD_BEFORE}(step|epoch)\b['\"]?\s*[:=]?\s*(\d+)(?:\s*/\s*\d+)?(?!\w|\.\d)"
)


class MetricReader:
    """Parses lines for one fixed set of metric names (one compiled pattern for the set)."""

    def __init__(self, names: Collection[str]) -> None:
        self.names = tuple(dict.fromkeys(names))
        # longest first: ``val_loss_ema`` wins over ``val_loss`` where both are asked for
        words = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        self._pattern = re.compile(
            rf"{_NOT_WORD_BEFORE}({words})['\"]?\s*[:=]\s*({_NUMBER}){_NUMBER_ENDS}"
        )

    def parse(self, line: str) -> tuple[dict[str, float], int | None]:
        """The metrics asked for on this line, and its step (None when it names none, and
        always None when no metric was found)."""
        if not any(name in line for name in self.names):
            return {}, None
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            found = self._from_json(stripped)
            if found is not None:
                return found
        values = {name: float(number) for name, number in self._pattern.findall(line)}
        if not values:
            return {}, None
        match = _STEP.search(line)
        return values, int(match.group(2)) if match is not None else None

    def _from_json(self, text: str) -> tuple[dict[str, float], int | None] | None:
        """A JSON object's metrics; None when the line is not JSON (a Python dict's repr, which
        the text pattern reads)."""
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
        if not values:
            return {}, None
        return values, _json_step(data)


def _json_step(data: dict[str, object]) -> int | None:
    for key in STEP_NAMES:
        value = data.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
    return None
