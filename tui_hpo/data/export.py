"""A study's trials as CSV or JSON, with the columns of Optuna's ``study.trials_dataframe()``.

Why not call ``trials_dataframe``: it needs pandas, and it reads every trial through
``get_trials``, one FrozenTrial per trial (about two minutes at 100,000 trials). This module
reads the same rows with SQLAlchemy Core, one comma-joined string per column group like
``frames.StudyReader`` (a second or two at 100,000 trials), and writes them with the ``csv``
and ``json`` modules. pandas is needed only by the tests that check the output against it.

What comes out, so that a script written for Optuna's CSV reads ours:

- the columns of ``trials_dataframe()`` with its default ``attrs``, in its order and with its
  names: ``number``, ``value`` (``value_<name>`` when the study has a metric name; several
  objectives: ``values_<name>`` in the names' order, else ``values_0``, ``values_1``, ...),
  ``datetime_start``, ``datetime_complete``, ``duration``, ``params_<name>``,
  ``user_attrs_<key>``, ``system_attrs_<key>`` (each group sorted by name; only names some
  trial has), ``state``; rows in trial order;
- CSV cells as ``trials_dataframe().to_csv(index=False)`` writes them: pandas' own rules,
  copied here, decide how a column looks (an int param that some trial lacks is a float column,
  so ``3.0``; datetimes carry as many fraction digits as the column needs; durations read
  ``0 days 00:01:02.500000``; a dict attr is its Python repr);
- JSON: one object per trial, in a list, the same keys and values as pandas'
  ``to_json(orient="records", date_format="iso", date_unit="us")`` except that numbers keep
  all their digits (pandas rounds to 10); NaN and infinities are ``null``, as there;
- then two columns of tui-hpo's own, where some trial has them: ``sampler``, the sampler in
  force as the app and the filter name it (``tpe``, ``random(seed=0)``; the
  ``user_attrs_tui_hpo.sampler`` column holds the whole dict), and ``fail_reason``, tui-hpo's
  attr or else Optuna's ``fail_reason`` system attr, so a failed trial has one reason column
  whoever ran it. Host, GPU, worker and pid are not repeated: ``user_attrs_tui_hpo.host``,
  ``..._gpu``, ``..._worker`` and ``..._pid`` already hold them as plain values.

A filter (``tui_hpo.data.filters``, the app's table filter language) picks rows; the columns
stay those of the whole study, as ``df[mask]`` keeps them, and datetimes and durations are
formatted from the rows written, as pandas does when it writes ``df[mask]``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np
import sqlalchemy as sa

from tui_hpo.data.filters import Filter, parse, study_fields
from tui_hpo.data.frames import (
    STATE_CODE,
    Categorical,
    GroupConcat,
    ParamColumn,
    TrialFrame,
    attr_text,
    floats_of,
    ints_of,
    optuna_models,
)
from tui_hpo.data.summaries import directions as study_directions
from tui_hpo.data.summaries import metric_names as study_metric_names
from tui_hpo.errors import UserError
from tui_hpo.storage import attrs

FORMATS = ("csv", "json")
"""What ``write`` can write."""

SAMPLER_COLUMN = "sampler"
FAIL_REASON_COLUMN = "fail_reason"

_DAY_US = 86_400_000_000
_NAT = np.iinfo(np.int64).min  # numpy's NaT as int64


# columns -------------------------------------------------------------------------------------


class _Column(Protocol):
    """One output column: its cells as CSV text and as JSON text, for the given rows."""

    def csv(self, rows: np.ndarray) -> Sequence[str]: ...

    def json(self, rows: np.ndarray) -> Sequence[str]: ...


@dataclass(frozen=True)
class _Numbers:
    """Floats (NaN: missing) or, with ``integer``, whole numbers. pandas makes a column of ints
    with a gap a float column, so such a column is written ``3.0`` in CSV; the choice is made
    on the whole study, as pandas makes it before any row is filtered out."""

    values: np.ndarray
    integer: bool = False

    def csv(self, rows: np.ndarray) -> Sequence[str]:
        values = self.values[rows]
        if self.integer and not np.isnan(self.values).any():
            return values.astype(np.int64).astype(str).tolist()  # type: ignore[no-any-return]
        text = values.astype(np.float64).astype(str)  # what pandas' to_csv does for floats
        text[np.isnan(values)] = ""
        return text.tolist()  # type: ignore[no-any-return]

    def json(self, rows: np.ndarray) -> Sequence[str]:
        values = self.values[rows].astype(np.float64)
        bad = ~np.isfinite(values)
        # an int column with a gap anywhere is float64 in pandas, so 3.0 (as in ``csv``)
        if self.integer and not np.isnan(self.values).any():
            text = np.where(bad, 0, values).astype(np.int64).astype(str).astype(object)
        else:
            text = values.astype(str).astype(object)
        text[bad] = "null"
        return text.tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Coded:
    """A column of few distinct cells (a categorical param, an attr, the state): a code per
    row into texts made once per distinct value (-1: missing)."""

    codes: np.ndarray
    csv_texts: tuple[str, ...]
    json_texts: tuple[str, ...]

    def csv(self, rows: np.ndarray) -> Sequence[str]:
        table = np.array([*self.csv_texts, ""], dtype=object)
        return table[self.codes[rows]].tolist()  # type: ignore[no-any-return]

    def json(self, rows: np.ndarray) -> Sequence[str]:
        table = np.array([*self.json_texts, "null"], dtype=object)
        return table[self.codes[rows]].tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Times:
    """Naive datetimes as microseconds since the epoch (``_NAT``: none)."""

    us: np.ndarray

    def csv(self, rows: np.ndarray) -> Sequence[str]:
        """pandas' rule: dates only when every time is midnight, else as many fraction digits
        (none, 3 or 6) as the column's values need."""
        us = self.us[rows]
        ok = us != _NAT
        have = us[ok]
        if not len(have):
            return [""] * len(us)
        if not (have % _DAY_US).any():
            unit = "D"
        elif (have % 1000).any():
            unit = "us"
        elif (have % 1_000_000).any():
            unit = "ms"
        else:
            unit = "s"
        text = np.char.replace(
            np.datetime_as_string(us.view("datetime64[us]"), unit=unit), "T", " "
        )
        out = text.astype(object)
        out[~ok] = ""
        return out.tolist()  # type: ignore[no-any-return]

    def json(self, rows: np.ndarray) -> Sequence[str]:
        us = self.us[rows]
        text = np.datetime_as_string(us.view("datetime64[us]"), unit="us").astype(object)
        out = '"' + text + '"'
        out[us == _NAT] = "null"
        return out.tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Durations:
    """Microseconds (``_NAT``: none), written as pandas writes a timedelta column."""

    us: np.ndarray

    def csv(self, rows: np.ndarray) -> Sequence[str]:
        us = self.us[rows]
        have = us[us != _NAT]
        if not (have % _DAY_US).any():
            fmt: Callable[[int], str] = _days_only
        elif not (have % 1_000_000).any():
            fmt = _long
        else:
            fmt = _long_us
        return [("" if x == _NAT else fmt(x)) for x in us.tolist()]

    def json(self, rows: np.ndarray) -> Sequence[str]:
        return [("null" if x == _NAT else _iso_duration(x)) for x in self.us[rows].tolist()]


def _split(us: int) -> tuple[int, int, int, int, int]:
    """Days (floored, may be negative) and the non-negative rest, as pandas shows them."""
    days, rest = divmod(us, _DAY_US)
    seconds, micro = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return days, hours, minutes, seconds, micro


def _days_only(us: int) -> str:
    return f"{us // _DAY_US} days"


def _long(us: int) -> str:
    d, h, m, s, _ = _split(us)
    return f"{d} days{' +' if us < 0 else ' '}{h:02d}:{m:02d}:{s:02d}"


def _long_us(us: int) -> str:
    d, h, m, s, micro = _split(us)
    return f"{d} days{' +' if us < 0 else ' '}{h:02d}:{m:02d}:{s:02d}.{micro:06d}"


def _iso_duration(us: int) -> str:
    """pandas' ISO 8601 duration: ``P0DT0H1M2.500S`` (fraction digits: 0, 3 or 6)."""
    d, h, m, s, micro = _split(us)
    if not micro:
        frac = ""
    elif micro % 1000:
        frac = f".{micro:06d}"
    else:
        frac = f".{micro // 1000:03d}"
    return f'"P{d}DT{h}H{m}M{s}{frac}S"'


def _is_na(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    """Non-finite floats inside lists and dicts as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _json_text(value: Any) -> str:
    if _is_na(value):
        return "null"
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_json_safe(value), separators=(",", ":"))


def _texts(distinct: Sequence[Any], gaps: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CSV and JSON texts of a column's distinct values, by pandas' inference over them:
    ints alone make an int column (a float one when some row has none: ``3.0``), ints and
    floats a float column, anything else an object column written with ``str`` (a dict as its
    Python repr, as pandas writes it). ``gaps``: some row has no value."""
    present = [v for v in distinct if not _is_na(v)]
    gaps = gaps or len(present) < len(distinct)
    numeric = bool(present) and all(
        _is_number(v) and (not isinstance(v, int) or -(2**63) <= v < 2**63) for v in present
    )
    if numeric and (gaps or any(isinstance(v, float) for v in present)):
        floats = np.array([float(v) if _is_number(v) else np.nan for v in distinct])
        text = floats.astype(str)
        csv_texts = tuple("" if _is_na(v) else t for v, t in zip(distinct, text, strict=True))
    else:
        csv_texts = tuple("" if _is_na(v) else str(v) for v in distinct)
    return csv_texts, tuple(_json_text(v) for v in distinct)


def _coded(n: int, groups: Sequence[tuple[np.ndarray, Any]]) -> _Coded:
    """A column from (rows, value) groups, one per distinct value."""
    codes = np.full(n, -1, dtype=np.int64)
    for code, (rows, _) in enumerate(groups):
        codes[rows] = code
    gaps = bool((codes < 0).any())
    csv_texts, json_texts = _texts([value for _, value in groups], gaps)
    return _Coded(codes, csv_texts, json_texts)


def _flatten(group: str, name: str | int) -> str:
    """Optuna's column name: the parts joined by ``_``, empty parts left out."""
    return "_".join(part for part in (group, str(name)) if part)


# the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialTable:
    """A study's trials as output columns, and the same trials as a ``TrialFrame`` for the
    filter language. ``rows`` are the ones written (all, until ``filtered``)."""

    names: tuple[str, ...]
    columns: tuple[_Column, ...]
    frame: TrialFrame
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def filtered(self, text: str, now: float | None = None) -> TrialTable:
        """Only the rows the filter matches (FilterError, a UserError, for a bad one)."""
        flt: Filter = parse(text, study_fields(self.frame.params, self.frame.metric_names))
        if flt.matches_all:
            return self
        mask = flt.mask(self.frame, now)
        return replace(self, rows=self.rows[mask[self.rows]])

    def write_csv(self, out: TextIO) -> None:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.names)
        writer.writerows(zip(*(c.csv(self.rows) for c in self.columns), strict=True))

    def write_json(self, out: TextIO) -> None:
        if not self.names or not len(self.rows):
            out.write("[]\n")
            return
        keys = [json.dumps(name) + ":" for name in self.names]
        cells = [
            [key + text for text in c.json(self.rows)]
            for key, c in zip(keys, self.columns, strict=True)
        ]
        out.write("[\n")
        out.write(",\n".join("{" + ",".join(row) + "}" for row in zip(*cells, strict=True)))
        out.write("\n]\n")

    def write(self, out: TextIO, fmt: str) -> None:
        if fmt == "json":
            self.write_json(out)
        else:
            self.write_csv(out)


def read_table(engine: sa.Engine, study_id: int) -> TrialTable:
    """Every trial of the study, read with a few grouped queries (never ``get_trials``)."""
    m = optuna_models()
    t = m.TrialModel.__table__
    v = m.TrialValueModel.__table__
    p = m.TrialParamModel.__table__
    ua = m.TrialUserAttributeModel.__table__
    sy = m.TrialSystemAttributeModel.__table__
    with engine.connect() as con:
        directions = tuple(study_directions(con, study_id))
        metric_names = tuple(study_metric_names(con, study_id) or ())
        join = GroupConcat(con)
        row = con.execute(
            sa.select(
                join(t.c.trial_id),
                join(t.c.number),
                join(t.c.state),
                join(t.c.datetime_start, text=True),
                join(t.c.datetime_complete, text=True),
            ).where(t.c.study_id == study_id)
        ).one()
        if not row[0]:
            return _empty(study_id, directions, metric_names)

        def scoped(query: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
            return query.join(t, t.c.trial_id == table.c.trial_id).where(t.c.study_id == study_id)

        kind = sa.case((v.c.value_type == "INF_POS", 1), (v.c.value_type == "INF_NEG", 2), else_=0)
        value_groups = con.execute(
            scoped(
                sa.select(
                    v.c.objective,
                    join(v.c.trial_id),
                    join(sa.func.coalesce(v.c.value, 0.0), real=True),
                    join(kind),
                ),
                v,
            ).group_by(v.c.objective)
        ).all()
        param_groups = con.execute(
            scoped(
                sa.select(p.c.param_name, join(p.c.trial_id), join(p.c.param_value, real=True)), p
            ).group_by(p.c.param_name)
        ).all()
        distributions = _distributions(con, study_id, [g[0] for g in param_groups])
        user_groups = con.execute(
            scoped(sa.select(ua.c.key, ua.c.value_json, join(ua.c.trial_id)), ua).group_by(
                ua.c.key, ua.c.value_json
            )
        ).all()
        system_groups = con.execute(
            scoped(sa.select(sy.c.key, sy.c.value_json, join(sy.c.trial_id)), sy).group_by(
                sy.c.key, sy.c.value_json
            )
        ).all()

    tid = ints_of(row[0])
    order = np.argsort(tid, kind="stable")
    tid = tid[order]
    n = len(tid)

    def locate(ids_text: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of comma-joined trial ids, and which were found (all, unless a trial was
        added between the queries)."""
        ids = ints_of(ids_text)
        at = np.minimum(np.searchsorted(tid, ids), n - 1)
        return at, tid[at] == ids

    def rows_of(ids_text: str) -> np.ndarray:
        at, ok = locate(ids_text)
        return at[ok]

    number = ints_of(row[1])[order]
    state_names = np.array(row[2].split(","), dtype=object)[order]
    start = _microseconds(row[3])[order]
    complete = _microseconds(row[4])[order]

    k = len(directions)
    values = np.full((n, k), np.nan)
    for objective, ids, vals, kinds in value_groups:
        if objective >= k:
            continue
        got = floats_of(vals)
        code = ints_of(kinds)
        got[code == 1] = np.inf
        got[code == 2] = -np.inf
        at, ok = locate(ids)
        values[at[ok], objective] = got[ok]

    params: dict[str, ParamColumn] = {}
    for name, ids, vals in sorted(param_groups, key=lambda g: g[0]):
        if name not in distributions:
            continue
        column = np.full(n, np.nan)
        at, ok = locate(ids)
        column[at[ok]] = floats_of(vals)[ok]
        params[name] = ParamColumn(name, distributions[name], column)

    user = _attr_groups(user_groups, rows_of)
    system = _attr_groups(system_groups, rows_of)

    names: list[str] = ["number"]
    columns: list[_Column] = [_Numbers(number, integer=True)]
    if k == 1:
        names.append(_flatten("value", metric_names[0] if metric_names else ""))
        columns.append(_Numbers(values[:, 0]))
    else:
        labels: Sequence[str | int] = metric_names if metric_names else range(k)
        for i, label in enumerate(labels):
            names.append(_flatten("values", label))
            columns.append(_Numbers(values[:, i]))
    duration = np.where((start == _NAT) | (complete == _NAT), _NAT, complete - start)
    names += ["datetime_start", "datetime_complete", "duration"]
    columns += [_Times(start), _Times(complete), _Durations(duration)]
    for name, param in params.items():
        names.append(_flatten("params", name))
        columns.append(_param_column(param, n))
    for group, found in (("user_attrs", user), ("system_attrs", system)):
        for key in sorted(found):
            names.append(_flatten(group, key))
            columns.append(_coded(n, [(rows, json.loads(text)) for text, rows in found[key]]))
    state_labels = sorted(set(state_names.tolist()))
    names.append("state")
    columns.append(_coded(n, [(np.flatnonzero(state_names == s), s) for s in state_labels]))

    sampler = _label_column(user.get(attrs.SAMPLER, []), attrs.SAMPLER, n)
    if user.get(attrs.SAMPLER):
        names.append(SAMPLER_COLUMN)
        columns.append(_labelled(sampler))
    reasons = [*system.get(attrs.OPTUNA_FAIL_REASON, []), *user.get(attrs.FAIL_REASON, [])]
    if reasons:  # tui-hpo's own reason last, so it wins where both are there
        names.append(FAIL_REASON_COLUMN)
        columns.append(_labelled(_label_column(reasons, attrs.FAIL_REASON, n)))

    frame = TrialFrame(
        study_id=study_id,
        directions=directions,
        trial_id=tid,
        number=number,
        state=np.array([STATE_CODE[s] for s in state_names.tolist()], dtype=np.int8),
        values=values,
        start=_seconds(start),
        complete=_seconds(complete),
        params=params,
        host=_label_column(user.get(attrs.HOST, []), attrs.HOST, n),
        gpu=_label_column(user.get(attrs.GPU, []), attrs.GPU, n),
        sampler=sampler,
        tags=_label_column(user.get(attrs.TAGS, []), attrs.TAGS, n),
        metric_names=metric_names,
    )
    return TrialTable(tuple(names), tuple(columns), frame, np.arange(n))


def _empty(study_id: int, directions: tuple[str, ...], metric_names: tuple[str, ...]) -> TrialTable:
    """No trials: no columns at all, as ``trials_dataframe`` gives an empty DataFrame."""
    none = Categorical(np.empty(0, np.int32), ())
    frame = TrialFrame(
        study_id=study_id,
        directions=directions,
        trial_id=np.empty(0, np.int64),
        number=np.empty(0, np.int64),
        state=np.empty(0, np.int8),
        values=np.empty((0, len(directions))),
        start=np.empty(0),
        complete=np.empty(0),
        params={},
        host=none,
        gpu=none,
        sampler=none,
        metric_names=metric_names,
    )
    return TrialTable((), (), frame, np.empty(0, np.int64))


def _microseconds(text: str) -> np.ndarray:
    """Comma-joined datetimes (SQLite's text, PostgreSQL's cast; '' for none) as int64
    microseconds since the epoch, ``_NAT`` for none."""
    stamps = np.array(text.split(","), dtype="datetime64[us]")
    return stamps.view(np.int64)


def _seconds(us: np.ndarray) -> np.ndarray:
    return np.where(us == _NAT, np.nan, us / 1e6)


def _attr_groups(
    groups: Sequence[Any], rows_of: Callable[[str], np.ndarray]
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """key -> [(value_json, rows)] from rows grouped by (key, value_json)."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for key, value_json, ids in groups:
        out.setdefault(key, []).append((value_json, rows_of(ids)))
    return out


def _label_column(found: list[tuple[str, np.ndarray]], key: str, n: int) -> Categorical:
    """An attr as the app shows it (the sampler's label), for the filter's text fields."""
    codes = np.full(n, -1, dtype=np.int32)
    labels: list[str] = []
    for text, rows in found:
        label = attr_text(key, text)
        if label not in labels:
            labels.append(label)
        codes[rows] = labels.index(label)
    return Categorical(codes, tuple(labels))


def _labelled(column: Categorical) -> _Coded:
    """A label column (the sampler, the fail reason) as output text."""
    codes = np.asarray(column.codes, dtype=np.int64)
    return _Coded(codes, column.labels, tuple(json.dumps(label) for label in column.labels))


def _param_column(param: ParamColumn, n: int) -> _Column:
    """Float and int params as numbers; a categorical one by its choices' types."""
    choices = getattr(param.distribution, "choices", None)
    if choices is None:
        is_int = type(param.distribution).__name__ == "IntDistribution"
        values = np.floor(param.values) if is_int else param.values
        return _Numbers(values, integer=is_int)
    index = np.nan_to_num(param.values, nan=-1.0).astype(np.int64)
    used = np.unique(index[(index >= 0) & (index < len(choices))])
    return _coded(n, [(index == i, choices[i]) for i in used.tolist()])


def _distributions(con: sa.Connection, study_id: int, names: list[str]) -> dict[str, Any]:
    """Each param's distribution, from its first row (Optuna keeps one kind per name)."""
    if not names:
        return {}
    from optuna.distributions import json_to_distribution

    m = optuna_models()
    t, p = m.TrialModel.__table__, m.TrialParamModel.__table__
    first = (
        sa.select(sa.func.min(p.c.param_id))
        .join(t, t.c.trial_id == p.c.trial_id)
        .where(t.c.study_id == study_id)
        .group_by(p.c.param_name)
    )
    return {
        name: json_to_distribution(text)
        for name, text in con.execute(
            sa.select(p.c.param_name, p.c.distribution_json).where(p.c.param_id.in_(first))
        )
    }


def format_of(path: str) -> str:
    """The format a file name asks for: ``json`` for ``*.json``, ``csv`` for ``*.csv``; any
    other name is one line, so that a typo in a prompt never writes CSV under a wrong name."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UserError(f"can't tell the format of {path!r}: name the file *.csv or *.json")
    return suffix


def write_file(path: str, write: Callable[[TextIO], None]) -> None:
    """Write to ``path`` through a temporary file beside it, renamed at the end, so a failed
    export never leaves half a file (or truncates an earlier one)."""
    import tempfile

    where = Path(path)
    if where.is_dir():
        raise UserError(f"can't write {path}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{where.name}.", suffix=".part", dir=where.parent)
    except OSError as exc:
        raise UserError(f"can't write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            write(out)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, where)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"can't write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export(
    engine: sa.Engine, study_id: int, out: TextIO, *, fmt: str = "csv", filter_text: str = ""
) -> int:
    """Write the study's trials (those ``filter_text`` matches) to ``out``; how many."""
    table = read_table(engine, study_id).filtered(filter_text)
    table.write(out, fmt)
    return len(table)


__all__ = [
    "FAIL_REASON_COLUMN",
    "FORMATS",
    "SAMPLER_COLUMN",
    "TrialTable",
    "export",
    "format_of",
    "read_table",
    "write_file",
]
