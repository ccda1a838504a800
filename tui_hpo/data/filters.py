"""The trials table's filter language: a few comparisons joined by and / or / not.

The app lets the user type a filter such as ``lr < 1e-3 and state == complete``; this module
turns that text into a ``Filter`` whose ``mask(frame)`` says which rows of a ``TrialFrame``
match. The text is read by a tokenizer and a recursive-descent parser of our own, never by
``eval`` or ``ast``: it is user input, and the grammar is small enough that a parser of our own
can give a one-line message with a column for every mistake. Masks are computed with whole-
column numpy operations (a few milliseconds at 100,000 trials), so the table can refilter on
every poll.

Language
--------

A filter is comparisons combined with ``and`` (``&&``), ``or`` (``||``), ``not`` (``!``) and
parentheses; ``not`` binds tighter than ``and``, which binds tighter than ``or``. Keywords
(``and or not in true false``) and the built-in field names are case-insensitive. Blank text
matches every trial.

Comparisons::

    FIELD OP VALUE        lr < 1e-3         state == complete     host != gpu-box-2
    VALUE OP FIELD        1e-3 > lr         COMPLETE == state
    FIELD in (V, ...)     state in (pruned, fail)      act in ("relu", 'tanh')
    FIELD not in (V, ...) gpu not in (0, 1)

``OP`` is one of ``< <= > >= == !=``; ``=`` is the same as ``==``. When both sides are bare
words (``relu == act``), the field is the side that names one.

Fields:

- ``number`` (also ``trial`` and ``#``): the trial number;
- ``state``: RUNNING, COMPLETE, PRUNED, FAIL or WAITING, compared by name
  (case-insensitive) with ``==``, ``!=``, ``in`` and ``not in`` only;
- ``value``: the first objective; ``value0``, ``value1``, ... or ``values[0]``, ``values[1]``,
  ... for each objective of a multi-objective study; and each objective by its metric name
  when the study has them (``study.set_metric_names``, ``--metric-names``): ``error < 0.05``;
- ``duration``: seconds the trial ran (a running one: so far); a value may carry a unit:
  ``90``, ``90s``, ``5m`` (or ``5min``), ``2h``, ``1d``;
- ``host``, ``gpu``, ``sampler``: text, compared with ``==``, ``!=``, ``in`` and ``not in``
  only, exactly (case matters; ``gpu == 0`` compares with the text ``0``);
- ``tag`` (also ``tags``): the trial's tags (``tui-hpo tag``), with ``==``, ``!=``, ``in`` and
  ``not in`` only, exactly: ``tag = bad`` matches trials that have the tag ``bad`` (among
  others), ``tag in (bad, odd)`` those with either, ``tag != bad`` and ``tag not in (...)``
  those with none of them, untagged trials included (a trial with no tag has an empty set of
  tags, not a missing field);
- any param by name. Names are letters, digits, ``_``, ``.`` and ``-`` (not first); put any
  other name in backticks, as in `lr/decay` < 0.1. A backticked name means the param of that
  name first, so a param called state is reached as `state`. Float and int params compare as
  numbers (their value as suggested, log scale or not). Categorical params compare by choice:
  ``act == relu`` matches the choice whose text is ``relu``; a number matches numeric choices
  by value, and ``< <= > >=`` work when every choice is a number; a value that is none of the
  choices is an error that lists them.

Values: numbers (``3``, ``-2``, ``.5``, ``1e-3``, ``inf``, ``-inf``); text in single or double
quotes, where a backslash before the quote or another backslash stands for that character
(``'it\\'s'``); bare words (``complete``, ``relu``, ``gpu-box-2``), which are text; ``true`` and
``false`` (for boolean choices).

``==`` and ``!=`` on real numbers allow a relative difference of 1e-9, so a value that went
through float arithmetic (``0.1 * 3``) still equals what was typed (``0.3``).

Missing values: a trial without the field (no value yet, a param it did not suggest, no host
recorded) matches no comparison, ``!=`` and ``not in`` included, so ``value < 1`` and
``value != 1`` both leave out trials without a value. ``not`` inverts the whole mask, so
``not value < 1`` does include them.

Errors are ``FilterError`` (a ``UserError``) with one line that says what is wrong and at which
1-based column, e.g. ``filter: unknown field 'lrr' at 1 (fields: number, state, ...)``. Names
of params can only be checked against a study: ``parse(text, fields)`` checks them when given
the names; otherwise ``Filter.mask`` does, raising the same error. Text longer than
``MAX_LENGTH`` characters or nested deeper than ``MAX_DEPTH`` levels is refused, so that no
input, however odd, raises anything but ``FilterError``.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tui_hpo.data.frames import STATE_CODE, STATE_NAMES, Categorical, TrialFrame
from tui_hpo.errors import UserError

HELP = """\
Filter: comparisons joined by and (&&), or (||), not (!) and ( ); blank shows all trials.
  FIELD OP VALUE   OP: < <= > >= == != (= is ==)   also VALUE OP FIELD
  FIELD in (V, V, ...)   FIELD not in (V, ...)
Fields: number (#, trial), state, value (value0, value1, values[1]) or the objective's
  metric name (error), duration, host, gpu, sampler, tag, any param by name (`odd/name`).
Values: 3  -2  .5  1e-3  inf   'text' "text" or bare words   true false
  durations: 90  90s  5m  2h  1d
State names: running complete pruned fail waiting (any case).
A trial missing the field never matches (not even !=); not (...) inverts that.
tag = bad: trials tagged bad; tag != bad: the others, untagged ones included.
Examples:
  lr < 1e-3 and state == complete
  state in (pruned, fail) or duration > 10m
  value1 >= 0.9 && !(host == gpu-box-2)"""
"""The syntax in brief, for the app's help screen."""

MAX_LENGTH = 2000
"""Longest filter text accepted, in characters."""

MAX_DEPTH = 50
"""Deepest nesting of parentheses and ``not`` accepted; it bounds the parser's recursion."""

REL_TOLERANCE = 1e-9
"""Relative difference under which ``==`` counts two real numbers as equal."""

_BUILTIN_FIELDS = ("number", "state", "value", "duration", "host", "gpu", "sampler", "tag")
_ALIASES = {name: name for name in _BUILTIN_FIELDS} | {
    "trial": "number",
    "#": "number",
    "tags": "tag",
}
_TEXT_FIELDS = ("host", "gpu", "sampler")
_ORDER_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CMP_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "=": "==", "!=": "!="}
_OPS_HELP = "< <= > >= == != in"
_KEYWORDS = {"and": "and", "or": "or", "not": "not", "in": "in", "true": "bool", "false": "bool"}
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?)", re.IGNORECASE
)
_WORD = re.compile(r"[\w.][\w.\-]*")
_WORD_CHAR = re.compile(r"[\w.\-]")
_VALUE_N = re.compile(r"values?([0-9]{1,6})", re.IGNORECASE)
_INDEX = re.compile(r"[0-9]{1,6}")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(s|sec|m|min|h|d)", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class FilterError(UserError):
    """A filter the user typed is not valid; the message is one line and names the column."""

    def __init__(self, message: str) -> None:
        super().__init__(f"filter: {message}")


def _show(text: str, limit: int = 40) -> str:
    """User text made safe for a one-line message: no control or line-breaking characters."""
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in text[:limit]
    )
    return shown + "..." if len(text) > limit else shown


def _list(names: Iterable[str], limit: int = 30) -> str:
    names = list(names)
    shown = ", ".join(_show(name, 30) for name in names[:limit])
    return shown + (", ..." if len(names) > limit else "")


# tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One token. ``kind`` is the punctuation itself, a keyword, or one of op, num, str,
    name (a backticked field), word, bool, eof; ``text`` is the decoded content, ``raw`` the
    source as typed (for messages), ``pos`` its 1-based column."""

    kind: str
    text: str
    raw: str
    pos: int
    num: float | None = None

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else f"'{_show(self.raw)}'"


def _tokenize(text: str) -> list[_Token]:
    """Text to tokens, ending with an eof token. Total: any string gives tokens or a
    FilterError."""
    tokens: list[_Token] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c in "()[],#":
            tokens.append(_Token(c, c, c, col))
            i += 1
        elif c in "<>=" or text.startswith("!=", i):
            j = i
            while j < n and text[j] in "<>=!":
                j += 1
            run = text[i:j]
            if run not in _CMP_OPS:
                raise FilterError(f"unknown operator '{run}' at {col} (operators: {_OPS_HELP})")
            tokens.append(_Token("op", _CMP_OPS[run], run, col))
            i = j
        elif c == "!":
            tokens.append(_Token("not", "not", c, col))
            i += 1
        elif c in "&|":
            if not text.startswith(c * 2, i):
                word = "and" if c == "&" else "or"
                raise FilterError(f"unknown operator '{c}' at {col} (use {c * 2} or {word})")
            tokens.append(_Token("and" if c == "&" else "or", c * 2, c * 2, col))
            i += 2
        elif c in "'\"`":
            content, j = _quoted(text, i)
            kind = "name" if c == "`" else "str"
            if kind == "name" and not content:
                raise FilterError(f"empty field name `` at {col}")
            tokens.append(_Token(kind, content, text[i:j], col))
            i = j
        else:
            number = _NUMBER.match(text, i)
            if number and not _WORD_CHAR.match(text, number.end()):
                raw = number.group()
                tokens.append(_Token("num", raw, raw, col, float(raw)))
                i = number.end()
                continue
            word = _WORD.match(text, i)
            if word:
                raw = word.group()
                kind = _KEYWORDS.get(raw.lower(), "word")
                tokens.append(_Token(kind, raw, raw, col))
                i = word.end()
            elif c in "+-":
                j = i + 1
                while j < n and _WORD_CHAR.match(text, j):
                    j += 1
                if j == i + 1:
                    raise FilterError(f"unexpected '{c}' at {col}")
                raise FilterError(f"bad number '{_show(text[i:j])}' at {col}")
            else:
                raise FilterError(f"unexpected character '{_show(c)}' at {col}")
    tokens.append(_Token("eof", "", "", n + 1))
    return tokens


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The content of the quoted text opening at ``start`` and the index after its closing
    quote. A backslash escapes the quote character or a backslash; any other backslash is
    kept, so Windows paths and the like need no doubling."""
    quote = text[start]
    out: list[str] = []
    j = start + 1
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == "\\" and j + 1 < n and text[j + 1] in (quote, "\\"):
            out.append(text[j + 1])
            j += 2
        elif ch == quote:
            return "".join(out), j + 1
        else:
            out.append(ch)
            j += 1
    what = "field name" if quote == "`" else "string"
    raise FilterError(f"unterminated {what} at {start + 1} (no closing {quote})")


# syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """A field as written: a name (``quoted`` when in backticks), or an objective index."""

    name: str
    pos: int
    quoted: bool = False
    index: int | None = None  # values[i]

    def describe(self) -> str:
        if self.index is not None:
            return f"values[{self.index}]"
        return f"`{_show(self.name)}`" if self.quoted else f"'{_show(self.name)}'"


@dataclass(frozen=True)
class _Lit:
    """A value as written: ``kind`` is num, str, word or bool; ``text`` the content."""

    kind: str
    text: str
    raw: str
    pos: int
    num: float | None = None

    def describe(self) -> str:
        return f"'{_show(self.raw)}'"


@dataclass(frozen=True)
class _Cmp:
    field: _Field
    op: str  # < <= > >= == != in, not in
    lits: tuple[_Lit, ...]
    op_pos: int
    swappable: bool = False  # ``a == b``, two bare words: which is the field is settled late

    def swapped(self) -> _Cmp:
        """``b == a`` for a swappable ``a == b``."""
        lit = self.lits[0]
        return _Cmp(
            _Field(lit.text, lit.pos),
            _FLIP[self.op],
            (_Lit("word", self.field.name, self.field.name, self.field.pos),),
            self.op_pos,
        )


@dataclass(frozen=True)
class _Not:
    child: _Node


@dataclass(frozen=True)
class _And:
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Or:
    children: tuple[_Node, ...]


_Node = _Cmp | _Not | _And | _Or


def _builtin(f: _Field) -> tuple[str, int] | None:
    """The built-in field a name means, as (key, objective index), or None."""
    if f.index is not None:
        return ("value", f.index)
    low = f.name.lower()
    if low in _ALIASES:
        return (_ALIASES[low], 0)
    m = _VALUE_N.fullmatch(f.name)
    return ("value", int(m.group(1))) if m else None


def _resolve(f: _Field, params: Mapping[str, Any] | None) -> tuple[str, int] | str | None:
    """What a field refers to: a built-in (key, index), a param name (str), or None when it
    can't be known yet (``params`` None: the study's names aren't known). ``params`` maps the
    study's names to None (a param) or an objective's index (a metric name). A bare name
    means a built-in first; a backticked one a param first. Unknown: FilterError."""
    builtin = _builtin(f)
    if not f.quoted and builtin is not None:
        return builtin
    if params is None:
        return None if builtin is not None else f.name
    if f.name in params:
        index = params[f.name]
        return ("value", index) if isinstance(index, int) else f.name
    if builtin is not None:
        return builtin
    raise FilterError(
        f"unknown field {f.describe()} at {f.pos} (fields: {_list(_field_names(params))})"
    )


def study_fields(params: Iterable[str], metric_names: Sequence[str] = ()) -> dict[str, Any]:
    """The names a study adds to the language: its params (None) and the names of its
    objectives (``study.set_metric_names``; their index), which win over a param of the
    same name."""
    names: dict[str, Any] = dict.fromkeys(params)
    names.update({name: i for i, name in enumerate(metric_names)})
    return names


def _field_names(params: Collection[str]) -> list[str]:
    """The fields a message lists: the built-ins, then the study's own names."""
    return list(_BUILTIN_FIELDS) + [p for p in params if p not in _BUILTIN_FIELDS]


# parser --------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the grammar::

        filter     := [or_expr] EOF
        or_expr    := and_expr (("or" | "||") and_expr)*
        and_expr   := unary (("and" | "&&") unary)*
        unary      := ("not" | "!") unary | "(" or_expr ")" | comparison
        comparison := field OP value | value OP field
                    | field ["not"] "in" "(" value ("," value)* [","] ")"
        field      := WORD | `NAME` | "#" | ("value" | "values") "[" INT "]"
        value      := NUMBER | STRING | WORD | "true" | "false"

    A bare word can be a field or a value; in ``a == b`` the left one is the field unless only
    the right one is a known field name (``complete == state``).
    """

    def __init__(self, tokens: list[_Token], params: Mapping[str, Any] | None) -> None:
        self.tokens = tokens
        self.i = 0
        self.params = params

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def parse(self) -> _Node | None:
        if self.tok.kind == "eof":
            return None
        node = self.or_expr(0)
        tok = self.tok
        if tok.kind == ")":
            raise FilterError(f"unbalanced ')' at {tok.pos}")
        if tok.kind != "eof":
            raise FilterError(
                f"unexpected {tok.describe()} at {tok.pos} (expected and, or, or the end)"
            )
        return node

    def or_expr(self, depth: int) -> _Node:
        items = [self.and_expr(depth)]
        while self.tok.kind == "or":
            self.take()
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else _Or(tuple(items))

    def and_expr(self, depth: int) -> _Node:
        items = [self.unary(depth)]
        while self.tok.kind == "and":
            self.take()
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else _And(tuple(items))

    def unary(self, depth: int) -> _Node:
        tok = self.tok
        if depth > MAX_DEPTH:
            raise FilterError(f"nested too deeply at {tok.pos} (at most {MAX_DEPTH} levels)")
        if tok.kind == "not":
            self.take()
            return _Not(self.unary(depth + 1))
        if tok.kind == "(":
            self.take()
            inner = self.or_expr(depth + 1)
            close = self.tok
            if close.kind == "eof":
                raise FilterError(f"unbalanced '(' at {tok.pos}: no ')' closes it")
            if close.kind != ")":
                raise FilterError(
                    f"expected and, or or ')' at {close.pos}, got {close.describe()}"
                    f" (to close '(' at {tok.pos})"
                )
            self.take()
            return inner
        return self.comparison()

    # comparisons

    def comparison(self) -> _Node:
        tok = self.tok
        if tok.kind in ("num", "str", "bool"):
            lit = self.value()
            op = self.operator(lit.describe())
            if not self.field_ahead():
                raise FilterError(
                    f"expected a field after {op.describe()} at {self.tok.pos}, got "
                    f"{self.tok.describe()} (a comparison needs a field on one side)"
                )
            return _Cmp(self.field(), _FLIP[op.text], (lit,), op.pos)
        if not self.field_ahead():
            raise FilterError(f"expected a field or '(' at {tok.pos}, got {tok.describe()}")
        left_bare = tok.kind == "word" and not self.index_ahead()
        left = self.field()
        if self.tok.kind == "in" or (self.tok.kind == "not" and self.peek().kind == "in"):
            op_tok = self.tok
            op = "not in" if self.take().kind == "not" else "in"
            if op == "not in":
                self.take()
            return _Cmp(left, op, self.value_list(), op_tok.pos)
        op_tok = self.operator(left.describe())
        right = self.tok
        if right.kind in ("num", "str", "bool"):
            return _Cmp(left, op_tok.text, (self.value(),), op_tok.pos)
        if right.kind in ("word", "name", "#"):
            right_is_field = right.kind != "word" or self.index_ahead()
            reverse = (
                left_bare
                and not self.known(left.name)
                and (right_is_field or self.known(right.text))
            )
            if right_is_field and not reverse:
                raise FilterError(
                    f"both sides of {op_tok.describe()} at {op_tok.pos} are fields"
                    " (compare a field with a value)"
                )
            if reverse:
                lit = _Lit("word", left.name, left.name, left.pos)
                return _Cmp(self.field(), _FLIP[op_tok.text], (lit,), op_tok.pos)
            swappable = left_bare and right.kind == "word" and self.params is None
            return _Cmp(left, op_tok.text, (self.value(),), op_tok.pos, swappable)
        raise FilterError(
            f"expected a value after {op_tok.describe()} at {right.pos}, got {right.describe()}"
        )

    def operator(self, after: str) -> _Token:
        tok = self.tok
        if tok.kind == "op":
            return self.take()
        if tok.kind == "in":
            raise FilterError(f"'in' at {tok.pos} needs a field on its left, not {after}")
        raise FilterError(
            f"expected an operator after {after} at {tok.pos}, got {tok.describe()}"
            f" (operators: {_OPS_HELP})"
        )

    def field_ahead(self) -> bool:
        return self.tok.kind in ("word", "name", "#")

    def index_ahead(self) -> bool:
        """Whether ``values[`` starts here."""
        tok = self.tok
        return (
            tok.kind == "word"
            and tok.text.lower() in ("value", "values")
            and self.peek().kind == "["
        )

    def known(self, name: str) -> bool:
        f = _Field(name, 0)
        return _builtin(f) is not None or (self.params is not None and name in self.params)

    def field(self) -> _Field:
        tok = self.take()
        if tok.kind == "#":
            return _Field("#", tok.pos)
        if tok.kind == "name":
            return _Field(tok.text, tok.pos, quoted=True)
        if tok.text.lower() in ("value", "values") and self.tok.kind == "[":
            self.take()
            index = self.tok
            if index.kind != "num" or not _INDEX.fullmatch(index.raw):
                raise FilterError(
                    f"expected an objective index (0, 1, ...) at {index.pos},"
                    f" got {index.describe()}"
                )
            self.take()
            if self.tok.kind != "]":
                raise FilterError(f"expected ']' at {self.tok.pos}, got {self.tok.describe()}")
            self.take()
            return _Field(tok.text, tok.pos, index=int(index.raw))
        return _Field(tok.text, tok.pos)

    def value(self) -> _Lit:
        tok = self.tok
        if tok.kind in ("num", "str", "word", "bool"):
            self.take()
            return _Lit(tok.kind, tok.text, tok.raw, tok.pos, tok.num)
        if tok.kind in ("name", "#"):
            raise FilterError(f"expected a value at {tok.pos}, got the field {tok.describe()}")
        raise FilterError(f"expected a value at {tok.pos}, got {tok.describe()}")

    def value_list(self) -> tuple[_Lit, ...]:
        open_ = self.tok
        if open_.kind != "(":
            raise FilterError(
                f"expected '(' after in at {open_.pos}, got {open_.describe()}"
                " (write: FIELD in (A, B))"
            )
        self.take()
        lits: list[_Lit] = []
        while True:
            if self.tok.kind == "eof":
                raise FilterError(f"unbalanced '(' at {open_.pos}: no ')' closes it")
            if self.tok.kind == ")" and lits:
                self.take()
                return tuple(lits)
            lits.append(self.value())
            sep = self.tok
            if sep.kind == ",":
                self.take()
            elif sep.kind != ")":
                if sep.kind == "eof":
                    raise FilterError(f"unbalanced '(' at {open_.pos}: no ')' closes it")
                raise FilterError(f"expected ',' or ')' at {sep.pos}, got {sep.describe()}")


# evaluation ----------------------------------------------------------------------------------


class _Ctx:
    """One evaluation: the frame, the time durations are measured to, and columns computed
    once for all comparisons that use them."""

    def __init__(self, frame: TrialFrame, now: float) -> None:
        self.frame = frame
        self.now = now
        self._duration: np.ndarray | None = None
        self._fields: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The frame's params and metric names, as ``parse`` takes them."""
        if self._fields is None:
            self._fields = study_fields(self.frame.params, self.frame.metric_names)
        return self._fields

    def duration(self) -> np.ndarray:
        if self._duration is None:
            self._duration = self.frame.duration(self.now)
        return self._duration


_Matcher = Callable[[_Ctx], np.ndarray]


def _numbers(cmp: _Cmp, label: str, durations: bool = False) -> np.ndarray:
    """The comparison's values as sorted floats; FilterError for any that is not a number."""
    out: list[float] = []
    for lit in cmp.lits:
        if lit.num is not None:
            out.append(lit.num)
            continue
        m = _DURATION.fullmatch(lit.text) if durations and lit.kind == "word" else None
        if m is None:
            hint = " (or a duration like 90s, 5m, 2h)" if durations else ""
            raise FilterError(
                f"{label} compares with numbers{hint}, not {lit.describe()} at {lit.pos}"
            )
        out.append(float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    return np.unique(np.asarray(out, dtype=np.float64))


def _near(a: Any, b: Any) -> Any:
    """a == b allowing REL_TOLERANCE of b (exact for b = 0 or infinite; False for NaN)."""
    return (a == b) | (np.isfinite(b) & (np.abs(a - b) <= REL_TOLERANCE * np.abs(b)))


def _near_one(col: np.ndarray, x: float) -> np.ndarray:
    """``_near(col, x)`` for one number, in three passes over the column."""
    if not math.isfinite(x):
        return col == x
    diff = col - x
    np.abs(diff, out=diff)
    return diff <= REL_TOLERANCE * abs(x)


def _near_any(col: np.ndarray, nums: np.ndarray) -> np.ndarray:
    """``_near`` against any of many sorted numbers at O(n log k): each number stands for
    the interval [lo, hi] it equals; both ends rise with the number, so the first interval
    whose hi is at or above a cell is the only one that can hold it."""
    slack = np.where(np.isfinite(nums), REL_TOLERANCE * np.abs(nums), 0.0)
    lo, hi = nums - slack, nums + slack
    at = np.searchsorted(hi, col)  # NaN sorts last: no interval
    inside = at < len(nums)
    np.minimum(at, len(nums) - 1, out=at)
    inside &= col >= lo[at]
    return inside


def _number_mask(column: np.ndarray, op: str, nums: np.ndarray) -> np.ndarray:
    """Comparison of a numeric column; NaN (missing) matches nothing, != included."""
    with np.errstate(invalid="ignore", over="ignore"):
        if op in _ORDER_OPS:
            return np.asarray(_ORDER_OPS[op](column, nums[0]), dtype=bool)
        col = np.asarray(column, dtype=np.float64)
        if len(nums) <= 4:
            hit = _near_one(col, float(nums[0]))
            for x in nums[1:]:
                hit |= _near_one(col, float(x))
        else:
            hit = _near_any(col, nums)
        if op in ("==", "in"):
            return hit
        hit |= np.isnan(col)
        return ~hit


def _lookup(codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[codes]`` for integer codes, where -1 (missing) or any code outside the table
    maps to False. (np.take with mode="clip" on a table padded with False at both ends: one
    pass, where np.clip would take several.)"""
    padded = np.concatenate(([False], table, [False]))
    shifted = np.add(codes, 1, dtype=np.intp)
    return np.take(padded, shifted, mode="clip")


def _equality_only(cmp: _Cmp, label: str, kind: str) -> None:
    if cmp.op in _ORDER_OPS:
        raise FilterError(
            f"'{cmp.op}' at {cmp.op_pos} does not apply to {label} ({kind}): use ==, != or in"
        )


def _state_matcher(cmp: _Cmp) -> _Matcher:
    _equality_only(cmp, "state", "a state name")
    states = ", ".join(STATE_NAMES)
    codes = []
    for lit in cmp.lits:
        if lit.kind in ("num", "bool"):
            raise FilterError(
                f"state compares with a state name, not {lit.describe()} at {lit.pos}"
                f" (states: {states})"
            )
        code = STATE_CODE.get(lit.text.upper())
        if code is None:
            raise FilterError(f"unknown state {lit.describe()} at {lit.pos} (states: {states})")
        codes.append(code)
    table = np.zeros(len(STATE_NAMES), dtype=bool)
    table[codes] = True
    if cmp.op in ("!=", "not in"):
        table = ~table
    if cmp.op == "==":  # the common case, in one pass
        code = codes[0]
        return lambda ctx: np.asarray(ctx.frame.state == code, dtype=bool)
    return lambda ctx: _lookup(ctx.frame.state, table)


def _text_matcher(cmp: _Cmp, key: str) -> _Matcher:
    _equality_only(cmp, key, "text")
    texts = {lit.text for lit in cmp.lits}
    positive = cmp.op in ("==", "in")

    def run(ctx: _Ctx) -> np.ndarray:
        column: Categorical = getattr(ctx.frame, key)
        # a blank label shows as blank, like a missing one: it never matches either
        table = np.array(
            [bool(label) and (label in texts) == positive for label in column.labels], dtype=bool
        )
        return _lookup(np.asarray(column.codes), table)

    return run


def _tag_matcher(cmp: _Cmp) -> _Matcher:
    """Whether a trial's tags hold any of the values (``==``, ``in``), or none of them
    (``!=``, ``not in``: untagged trials too). Each label of the tags column is one trial's
    sorted tags joined by commas, so the test runs once per distinct set of tags."""
    _equality_only(cmp, "tag", "a tag")
    wanted = {lit.raw if lit.kind == "num" else lit.text for lit in cmp.lits}
    positive = cmp.op in ("==", "in")

    def run(ctx: _Ctx) -> np.ndarray:
        column = ctx.frame.tags
        if column is None:
            return np.full(len(ctx.frame), not positive, dtype=bool)
        has = np.array(
            [bool(label) and not wanted.isdisjoint(label.split(",")) for label in column.labels],
            dtype=bool,
        )
        hit = _lookup(np.asarray(column.codes), has)  # code -1 (no tags): no hit
        return hit if positive else ~hit

    return run


def _is_number(choice: object) -> bool:
    return isinstance(choice, (int, float, np.integer, np.floating)) and not isinstance(
        choice, (bool, np.bool_)
    )


def _choice_matches(choice: object, lit: _Lit) -> bool:
    if lit.kind == "bool":
        if isinstance(choice, (bool, np.bool_)):
            return bool(choice) == (lit.text.lower() == "true")
        return isinstance(choice, str) and choice.lower() == lit.text.lower()
    if lit.num is not None and _is_number(choice):
        return bool(_near(float(lit.num), float(choice)))  # type: ignore[arg-type]
    return str(choice) == lit.text


def _choice_table(cmp: _Cmp, name: str, choices: tuple[Any, ...]) -> np.ndarray:
    """Whether each choice of a categorical param matches; rows map to it by index."""
    shown = f"'{_show(name)}'"
    if cmp.op in _ORDER_OPS:
        if not all(_is_number(c) for c in choices):
            raise FilterError(
                f"'{cmp.op}' at {cmp.op_pos} needs numbers, and the choices of {shown} are not"
                f" all numbers (choices: {_list(map(str, choices))})"
            )
        limit = _numbers(cmp, shown)[0]
        return np.asarray(
            _ORDER_OPS[cmp.op](np.asarray(choices, dtype=np.float64), limit), dtype=bool
        )
    table = np.zeros(len(choices), dtype=bool)
    for lit in cmp.lits:
        found = [i for i, c in enumerate(choices) if _choice_matches(c, lit)]
        if not found:
            raise FilterError(
                f"{shown} has no choice {lit.describe()} at {lit.pos}"
                f" (choices: {_list(map(str, choices))})"
            )
        table[found] = True
    return table if cmp.op in ("==", "in") else ~table


def _table_mask(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rows of a categorical param (choice index as float, NaN missing) looked up in
    ``table``; missing or out-of-range indices match nothing."""
    with np.errstate(invalid="ignore", over="ignore"):
        index = np.nan_to_num(values, nan=-1.0, posinf=-1.0, neginf=-1.0).astype(np.intp)
    return _lookup(index, table)


def _matcher(cmp: _Cmp, target: tuple[str, int] | str, frame: TrialFrame | None) -> _Matcher:
    """Check the comparison against its field's type and return what computes its mask.
    ``frame`` is needed only for params (their distribution); built-ins are checked at parse
    time with none."""
    if isinstance(target, str):
        assert frame is not None
        column = frame.params[target]
        choices = getattr(column.distribution, "choices", None)
        if choices is None:
            nums = _numbers(cmp, f"'{_show(target)}'")
            return lambda ctx: _number_mask(column.values, cmp.op, nums)
        table = _choice_table(cmp, target, tuple(choices))
        return lambda ctx: _table_mask(column.values, table)
    key, index = target
    if key == "state":
        return _state_matcher(cmp)
    if key in _TEXT_FIELDS:
        return _text_matcher(cmp, key)
    if key == "tag":
        return _tag_matcher(cmp)
    if key == "number":
        nums = _numbers(cmp, "number")
        return lambda ctx: _number_mask(ctx.frame.number, cmp.op, nums)
    if key == "duration":
        nums = _numbers(cmp, "duration", durations=True)
        return lambda ctx: _number_mask(ctx.duration(), cmp.op, nums)
    label = "value" if index == 0 and cmp.field.index is None else f"value{index}"
    if not cmp.field.quoted and cmp.field.index is None and _builtin(cmp.field) is None:
        label = f"'{_show(cmp.field.name)}'"  # a metric name
    nums = _numbers(cmp, label)

    def run(ctx: _Ctx) -> np.ndarray:
        have = ctx.frame.values.shape[1] if ctx.frame.values.ndim == 2 else 0
        if index >= have:
            names = ", ".join(f"value{i}" for i in range(min(have, 5)))
            raise FilterError(
                f"{cmp.field.describe()} at {cmp.field.pos}: the study has"
                f" {have} objective{'' if have == 1 else 's'} ({names or 'none'})"
            )
        return _number_mask(ctx.frame.values[:, index], cmp.op, nums)

    return run


def _oriented(cmp: _Cmp, params: Mapping[str, Any]) -> tuple[_Cmp, tuple[str, int] | str]:
    """The comparison and its field, turned round when it was parsed without the study's
    param names as ``value == field`` (``relu == act``)."""
    try:
        target = _resolve(cmp.field, params)
    except FilterError:
        if not cmp.swappable:
            raise
        other = cmp.swapped()
        try:
            target = _resolve(other.field, params)
        except FilterError:
            raise FilterError(
                f"unknown field {cmp.field.describe()} at {cmp.field.pos}"
                f" (fields: {_list(_field_names(params))})"
            ) from None
        cmp = other
    assert target is not None
    return cmp, target


def _evaluate(node: _Node, ctx: _Ctx) -> np.ndarray:
    """The node's mask. Every branch is evaluated (no short cut), so whether a filter raises
    does not depend on the data."""
    if isinstance(node, _Cmp):
        cmp, target = _oriented(node, ctx.fields())
        return _matcher(cmp, target, ctx.frame)(ctx)
    if isinstance(node, _Not):
        return ~_evaluate(node.child, ctx)
    masks = [_evaluate(child, ctx) for child in node.children]
    combine = np.logical_and if isinstance(node, _And) else np.logical_or
    out = masks[0].copy()
    for m in masks[1:]:
        combine(out, m, out=out)
    return out


def _check(node: _Node, params: Mapping[str, Any] | None) -> None:
    """What can be checked without a study: field names (when ``params`` is given) and
    comparisons on built-in fields."""
    if isinstance(node, _Cmp):
        target = _resolve(node.field, params)
        if isinstance(target, tuple):
            _matcher(node, target, None)
    elif isinstance(node, _Not):
        _check(node.child, params)
    else:
        for child in node.children:
            _check(child, params)


# API -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """A parsed filter. Build it with ``parse``; ``Filter(text)`` parses too (without param
    names to check). Immutable and hashable, so the app can keep it across polls."""

    text: str
    tree: _Node | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.tree is None and (not isinstance(self.text, str) or self.text.strip()):
            object.__setattr__(self, "tree", parse(self.text).tree)

    @property
    def matches_all(self) -> bool:
        """Blank: every trial matches (the app can skip masking)."""
        return self.tree is None

    def mask(self, frame: TrialFrame, now: float | None = None) -> np.ndarray:
        """Which rows of ``frame`` match, as a bool array of ``len(frame)``. ``now`` is the
        time durations of running trials are measured to (default: the current time).
        FilterError when a field is not in this study, or a value does not fit its param."""
        n = len(frame)
        if self.tree is None:
            return np.ones(n, dtype=bool)
        ctx = _Ctx(frame, time.time() if now is None else float(now))
        out = _evaluate(self.tree, ctx)
        return np.asarray(out, dtype=bool).reshape(n)


def parse(text: str, fields: Iterable[str] | None = None) -> Filter:
    """Parse filter text. ``fields``: the study's param names, to report an unknown field now
    rather than at ``mask`` time; None leaves that to ``mask``. FilterError on any mistake."""
    if not isinstance(text, str):
        raise FilterError(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FilterError(f"too long at {MAX_LENGTH + 1} (at most {MAX_LENGTH} characters)")
    params: Mapping[str, Any] | None = None
    if fields is not None:
        params = fields if isinstance(fields, Mapping) else dict.fromkeys(fields)
    tree = _Parser(_tokenize(text), params).parse()
    if tree is not None:
        _check(tree, params)
    return Filter(text, tree)


__all__ = ["HELP", "MAX_DEPTH", "MAX_LENGTH", "Filter", "FilterError", "parse", "study_fields"]


HIDDEN_STATES = ("PRUNED", "FAIL")
"""What the app's ``H`` hides from the table and the plots (the counts keep them)."""


def rows_shown(frame: TrialFrame, text: str, hide_ended: bool = False) -> np.ndarray:
    """The rows the app shows: those the filter ``text`` keeps, less the pruned and failed
    trials when ``hide_ended``. One place for the table and the plots, so they agree."""
    keep = parse(text).mask(frame) if text.strip() else np.ones(len(frame), dtype=bool)
    if hide_ended:
        keep &= ~np.isin(frame.state, [STATE_CODE[s] for s in HIDDEN_STATES])
    return np.flatnonzero(keep)
