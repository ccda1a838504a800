"""The app's view of a study's trials: columnar arrays, read incrementally with SQLAlchemy Core.

Optuna's ``get_all_trials`` builds one FrozenTrial per trial, which takes minutes at 100,000
trials; plain SQL reads the same numbers in a fraction of a second. A ``StudyReader`` reads
every trial once, then on each poll only what can have changed: trials newer than the newest
seen, and the window from the oldest unfinished trial on. A poll that finds nothing new returns
the previous ``TrialFrame`` object itself, so the app can skip all work with an ``is`` check.

Intermediate values (curves) are read only for the trials on show.

The reader checks Optuna's schema version; for a schema it doesn't know it falls back to the
storage API (slow, but right).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from tui_hpo.data.summaries import metric_names
from tui_hpo.storage import attrs

STATE_NAMES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")
STATE_CODE = {name: code for code, name in enumerate(STATE_NAMES)}
UNFINISHED = (STATE_CODE["RUNNING"], STATE_CODE["WAITING"])
ATTR_KEYS = {
    attrs.HOST: "host",
    attrs.GPU: "gpu",
    attrs.SAMPLER: "sampler",
    attrs.TAGS: "tags",
    attrs.WORKER: "worker",
}
CHUNK = 900  # bound parameter lists stay under SQLite's 999-variable limit

_EPOCH = dt.datetime(1970, 1, 1)


def optuna_models() -> Any:
    from optuna.storages._rdb import models

    return models


def _ts(value: dt.datetime | str | None) -> float:
    """Naive UTC datetime (Optuna 5 stores trial times so) to epoch seconds; NaN for none."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return (value.replace(tzinfo=None) - _EPOCH).total_seconds()


@dataclass(frozen=True)
class Categorical:
    """A text column stored as codes into a list of labels (host, GPU, sampler; tags, whose
    labels are each trial's sorted tags joined by commas: a tag holds no comma)."""

    codes: np.ndarray
    labels: tuple[str, ...]

    def __getitem__(self, i: int) -> str:
        code = int(self.codes[i])
        return self.labels[code] if code >= 0 else ""


@dataclass(frozen=True)
class ParamColumn:
    """One param across trials, in Optuna's internal float representation (NaN: not set)."""

    name: str
    distribution: Any
    values: np.ndarray

    def display(self, i: int) -> str:
        raw = self.values[i]
        if math.isnan(raw):
            return ""
        external = self.distribution.to_external_repr(raw)
        if isinstance(external, float):
            return f"{external:.4g}"
        return str(external)


@dataclass(frozen=True)
class TrialFrame:
    """All trials of one study, one array per column, rows in trial number order."""

    study_id: int
    directions: tuple[str, ...]
    trial_id: np.ndarray
    number: np.ndarray
    state: np.ndarray
    values: np.ndarray  # shape (n, n_objectives); NaN where missing
    start: np.ndarray  # epoch seconds, UTC
    complete: np.ndarray
    params: dict[str, ParamColumn]
    host: Categorical
    gpu: Categorical
    sampler: Categorical
    generation: int = 0
    read_at: float = 0.0
    metric_names: tuple[str, ...] = ()
    """The objectives' names (``study.set_metric_names``); empty when the study has none."""
    tags: Categorical | None = None
    """Each trial's tags (``tui_hpo.tags``), as labels like ``bad,keep`` (code -1 or ``""``:
    none). None: a frame made without them (tests), read as no trial having a tag."""
    worker: Categorical | None = None
    """The worker that ran each trial (``tui_hpo.worker``, its number in the study), for the
    timeline's rows; None or ``""``: not known (a plain Optuna run)."""

    def tags_of(self, i: int) -> list[str]:
        """The tags of the trial at row ``i``."""
        return [] if self.tags is None or not self.tags[i] else self.tags[i].split(",")

    def __len__(self) -> int:
        return len(self.number)

    @property
    def n_objectives(self) -> int:
        return len(self.directions)

    def objective_name(self, i: int) -> str:
        """What objective ``i`` is called on screen: its metric name, else ``value`` for a
        single objective and ``v0``, ``v1``, ... for several."""
        if i < len(self.metric_names):
            return self.metric_names[i]
        return "value" if self.n_objectives == 1 else f"v{i}"

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.state, minlength=len(STATE_NAMES))
        return {name: int(found[code]) for code, name in enumerate(STATE_NAMES)}

    def duration(self, now: float) -> np.ndarray:
        """Seconds each trial ran (still running: so far; waiting: NaN)."""
        end = np.where(np.isnan(self.complete), now, self.complete)
        return end - self.start

    def index_of(self, number: int) -> int | None:
        i = int(np.searchsorted(self.number, number))
        return i if i < len(self.number) and self.number[i] == number else None

    def complete_mask(self) -> np.ndarray:
        return self.state == STATE_CODE["COMPLETE"]


class _Columns:
    """The reader's own growing arrays, rows in trial_id order; copied into a frozen
    TrialFrame when something changed. Everything is filled with numpy operations over whole
    result sets: a Python loop per trial is what makes 100,000 trials slow."""

    TEXT = ("host", "gpu", "sampler", "tags", "worker")

    def __init__(self, n_objectives: int) -> None:
        self.n = 0
        self.k = n_objectives
        self.trial_id = np.empty(0, np.int64)
        self.number = np.empty(0, np.int64)
        self.state = np.empty(0, np.int8)
        self.start = np.empty(0)
        self.complete = np.empty(0)
        self.values = np.empty((0, n_objectives))
        self.params: dict[str, np.ndarray] = {}
        self.distributions: dict[str, Any] = {}
        self.text = {name: np.empty(0, np.int32) for name in self.TEXT}
        self.labels: dict[str, list[str]] = {name: [] for name in self.TEXT}
        self._codes: dict[tuple[str, str], tuple[str, int]] = {}  # (key, json) -> (column, code)

    def _grow(self, need: int) -> None:
        cap = len(self.trial_id)
        if need <= cap:
            return
        cap = max(need, cap + cap // 2 + 1024)

        def grown(a: np.ndarray, fill: object) -> np.ndarray:
            out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self.trial_id = grown(self.trial_id, np.iinfo(np.int64).max)
        self.number = grown(self.number, -1)
        self.state = grown(self.state, STATE_CODE["WAITING"])
        self.start = grown(self.start, np.nan)
        self.complete = grown(self.complete, np.nan)
        self.values = grown(self.values, np.nan)
        self.params = {k: grown(v, np.nan) for k, v in self.params.items()}
        self.text = {k: grown(v, -1) for k, v in self.text.items()}

    def rows_of(self, trial_ids: np.ndarray, *, create: bool = False) -> np.ndarray:
        """Row of each trial id (-1 where unknown, unless ``create`` adds it)."""
        ids = self.trial_id[: self.n]
        pos = np.searchsorted(ids, trial_ids)
        inside = pos < self.n
        found = np.zeros(len(trial_ids), dtype=bool)
        found[inside] = ids[pos[inside]] == trial_ids[inside]
        if create and not found.all():
            new = np.unique(trial_ids[~found])
            self._grow(self.n + len(new))
            self.trial_id[self.n : self.n + len(new)] = new
            self.n += len(new)
            if len(new) and self.n > len(new) and new[0] < ids[-1]:
                self._resort()  # an id committed out of order (PostgreSQL sequences)
            return self.rows_of(trial_ids)
        return np.where(found, pos, -1)

    def _resort(self) -> None:
        order = np.argsort(self.trial_id[: self.n], kind="stable")
        for name in ("trial_id", "number", "state", "start", "complete", "values"):
            a = getattr(self, name)
            a[: self.n] = a[: self.n][order]
        for group in (self.params, self.text):
            for a in group.values():
                a[: self.n] = a[: self.n][order]

    def param(self, name: str) -> np.ndarray:
        if name not in self.params:
            self.params[name] = np.full(len(self.trial_id), np.nan)
        return self.params[name]

    def text_code(self, key: str, value_json: str) -> tuple[str, int]:
        found = self._codes.get((key, value_json))
        if found is None:
            column = ATTR_KEYS[key]
            label = attr_text(key, value_json)
            labels = self.labels[column]
            if label not in labels:
                labels.append(label)
            found = self._codes[(key, value_json)] = (column, labels.index(label))
        return found


def _assign(target: np.ndarray, rows: np.ndarray, new: np.ndarray) -> bool:
    """Write ``new`` at ``rows``; whether anything differed (NaN equals NaN)."""
    old = target[rows]
    same = (old == new) | (np.isnan(old) & np.isnan(new))
    target[rows] = new
    return not bool(same.all())


class GroupConcat:
    """``column`` -> one comma-joined string per group, in the dialect's own words."""

    def __init__(self, con: sa.Connection) -> None:
        self.dialect = con.dialect.name
        if self.dialect == "mysql":
            con.exec_driver_sql("SET SESSION group_concat_max_len = 1073741824")

    def __call__(self, column: Any, *, text: bool = False, real: bool = False) -> Any:
        if real and self.dialect == "sqlite":  # its text form of a REAL keeps 15 digits only
            column = sa.func.printf("%!.17g", column)  # '!': up to 26 digits, exact
        expr = sa.type_coerce(column, sa.String) if not text else column
        if self.dialect == "postgresql":
            return sa.func.string_agg(sa.func.coalesce(sa.cast(column, sa.Text), ""), ",")
        if text:
            expr = sa.func.coalesce(sa.cast(column, sa.Text), "")
        if self.dialect == "mysql":
            return sa.func.group_concat(expr)
        return sa.func.group_concat(expr, ",")


def ints_of(text: str) -> np.ndarray:
    return np.array(text.split(","), dtype=np.int64)


def floats_of(text: str) -> np.ndarray:
    return np.array(text.split(","), dtype=np.float64)


def _seconds(values: Sequence[Any]) -> np.ndarray:
    """Datetimes (objects, or SQLite's text) as epoch seconds; NaN for none."""
    stamps = np.array(values, dtype="datetime64[us]")
    return (stamps - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")


class StudyReader:
    """Reads one study's trials for the app, incrementally. Not thread-safe: one poller owns
    it; what it hands out (TrialFrame) is immutable and safe to share."""

    MAX_LISTED = 500
    """Up to this many unfinished trials are read back by id; more, by range."""

    RESCAN = 64
    """Trial ids below the newest seen that are read again on every poll: PostgreSQL can
    commit a lower id after a higher one, and such a trial must not be missed."""

    RESCAN_ATTRS = 1024
    """Likewise for user attr ids, when looking for changed tags (``_read_new_tags``): every
    trial start writes several attrs, so the margin is wider."""

    def __init__(self, engine: sa.Engine, study_id: int, directions: Sequence[str]) -> None:
        self.engine = engine
        self.study_id = study_id
        self.directions = tuple(directions)
        self._cols = _Columns(len(self.directions))
        self._max_trial_id = 0
        self._unfinished = np.empty(0, np.int64)
        self._frame: TrialFrame | None = None
        self._generation = 0
        self._metric_names: tuple[str, ...] = ()
        self._attrs_from: int | None = None
        """User attr ids from which changed tags are looked for (None: not yet read)."""
        self._attrs_newest = 0

    # polling ---------------------------------------------------------------------------------

    def poll(self) -> TrialFrame:
        """The current frame: the same object as last time when nothing changed.

        Each column comes back from the database as one comma-joined string per group
        (``group_concat``/``string_agg``) and is parsed by numpy: at 100,000 trials, building a
        Python row object per trial, param and attr costs more than the query itself.
        """
        m = optuna_models()
        t = m.TrialModel.__table__
        lo = self._max_trial_id + 1 - (self.RESCAN if self._max_trial_id else 0)
        window = t.c.trial_id >= lo
        unfinished = self._unfinished
        if len(unfinished) > self.MAX_LISTED:
            window = t.c.trial_id >= min(lo, int(unfinished.min()))
        elif len(unfinished):  # like Optuna's cache: known unfinished ids, then the new ones
            window = sa.or_(window, t.c.trial_id.in_(unfinished.tolist()))
        with self.engine.connect() as con:
            names = tuple(metric_names(con, self.study_id) or ())
            renamed = names != self._metric_names
            self._metric_names = names
            join = GroupConcat(con)
            attrs_seen, retagged = self._read_new_tags(con)
            row = con.execute(
                sa.select(
                    join(t.c.trial_id),
                    join(t.c.number),
                    join(t.c.state),
                    join(t.c.datetime_start, text=True),
                    join(t.c.datetime_complete, text=True),
                ).where(t.c.study_id == self.study_id, window)
            ).one()
            if not row[0]:
                self._attrs_from = attrs_seen
                if self._frame is None or renamed or retagged:
                    self._frame = self._build()
                return self._frame
            tid = ints_of(row[0])
            order = np.argsort(tid, kind="stable")
            tid = tid[order]
            numbers = ints_of(row[1])[order]
            state = np.fromiter((STATE_CODE[x] for x in row[2].split(",")), np.int8)[order]
            start = _seconds(row[3].split(","))[order]
            end = _seconds(row[4].split(","))[order]
            c = self._cols
            known = c.rows_of(tid)
            new = known < 0
            at = c.rows_of(tid, create=True) if new.any() else known
            moved = bool(new.any())
            moved |= _assign(c.start, at, start) | _assign(c.complete, at, end)
            old_state = c.state[at]
            moved |= bool((old_state != state).any())
            c.state[at] = state
            c.number[at] = numbers
            # details of the trials that are new, changed state, or still running
            touched = new | (old_state != state) | (state == STATE_CODE["RUNNING"])
            dirty = False
            if touched.any():
                dirty = self._read_details(con, join, tid[touched])
        self._max_trial_id = max(self._max_trial_id, int(tid.max()))
        self._unfinished = tid[np.isin(state, UNFINISHED)]
        self._attrs_from = attrs_seen
        if not moved and not dirty and not renamed and not retagged and self._frame is not None:
            return self._frame
        self._frame = self._build()
        return self._frame

    def _read_details(self, con: sa.Connection, join: GroupConcat, changed: np.ndarray) -> bool:
        """Values, params and provenance attrs of the changed trials; whether any differ."""
        m = optuna_models()
        t = m.TrialModel.__table__
        v = m.TrialValueModel.__table__
        p = m.TrialParamModel.__table__
        ua = m.TrialUserAttributeModel.__table__
        c = self._cols
        lo = int(changed.min())

        def scope(query: sa.Select[Any], table: sa.Table) -> sa.Select[Any]:
            query = query.join(t, t.c.trial_id == table.c.trial_id).where(
                t.c.study_id == self.study_id, t.c.trial_id >= lo
            )
            if len(changed) <= self.MAX_LISTED:
                query = query.where(table.c.trial_id.in_(changed.tolist()))
            return query

        dirty = False
        kind = sa.case((v.c.value_type == "INF_POS", 1), (v.c.value_type == "INF_NEG", 2), else_=0)
        for objective, ids, vals, kinds in con.execute(
            scope(
                sa.select(
                    v.c.objective,
                    join(v.c.trial_id),
                    join(sa.func.coalesce(v.c.value, 0.0), real=True),
                    join(kind),
                ),
                v,
            ).group_by(v.c.objective)
        ):
            if objective >= c.k:
                continue
            at = c.rows_of(ints_of(ids))
            value = floats_of(vals)
            code = ints_of(kinds)
            value[code == 1] = np.inf
            value[code == 2] = -np.inf
            ok = at >= 0
            dirty |= _assign(c.values[:, objective], at[ok], value[ok])
        groups = con.execute(
            scope(
                sa.select(p.c.param_name, join(p.c.trial_id), join(p.c.param_value, real=True)), p
            ).group_by(p.c.param_name)
        ).all()
        self._load_distributions(con, [g[0] for g in groups if g[0] not in c.distributions])
        for name, ids, vals in groups:
            at = c.rows_of(ints_of(ids))
            ok = at >= 0
            dirty |= _assign(c.param(name), at[ok], floats_of(vals)[ok])
        for key, value_json, ids in con.execute(
            scope(sa.select(ua.c.key, ua.c.value_json, join(ua.c.trial_id)), ua)
            .where(ua.c.key.in_(ATTR_KEYS))
            .group_by(ua.c.key, ua.c.value_json)
        ):
            column, code = c.text_code(key, value_json)
            at = c.rows_of(ints_of(ids))
            at = at[at >= 0]
            target = c.text[column]
            dirty |= bool((target[at] != code).any())
            target[at] = code
        return dirty

    def _read_new_tags(self, con: sa.Connection) -> tuple[int, bool]:
        """Tags changed since the last poll, on trials already read (finished ones included:
        their details are not read again). ``control.tags`` writes each change as a new row, so
        only user attr rows newer than the last poll's newest (less ``RESCAN_ATTRS``) need
        looking at: a range of the primary key, cheap however many trials there are. Returns
        where the next poll starts and whether any trial's tags changed. The first poll reads
        no tags here: every trial is new then, and its details (tags included) are read."""
        m = optuna_models()
        ua = m.TrialUserAttributeModel.__table__
        newest = int(
            con.execute(sa.select(sa.func.max(ua.c.trial_user_attribute_id))).scalar() or 0
        )
        start = max(0, newest - self.RESCAN_ATTRS)
        went_down, self._attrs_newest = newest < self._attrs_newest, newest
        if self._attrs_from is None:
            return start, False
        if went_down:  # rows at the top were deleted (a study, say): SQLite reuses their ids
            self._attrs_from = 0
        c = self._cols
        dirty = False
        # No join to the study's trials: SQLite's planner then walks every trial of the study
        # (0.3 s a poll at a million trials) instead of the primary key's range; a row of
        # another study's trial is simply not among this frame's rows.
        for trial_id, value_json in con.execute(
            sa.select(ua.c.trial_id, ua.c.value_json).where(
                ua.c.trial_user_attribute_id > self._attrs_from, ua.c.key == attrs.TAGS
            )
        ):
            at = c.rows_of(np.array([trial_id], dtype=np.int64))
            if at[0] < 0:
                continue  # another study's trial, or one not read yet (then its details are)
            _, code = c.text_code(attrs.TAGS, value_json)
            if c.text["tags"][at[0]] != code:
                c.text["tags"][at[0]] = code
                dirty = True
        return start, dirty

    def _load_distributions(self, con: sa.Connection, names: list[str]) -> None:
        if not names:
            return
        from optuna.distributions import json_to_distribution

        m = optuna_models()
        t, p = m.TrialModel.__table__, m.TrialParamModel.__table__
        first = (
            sa.select(sa.func.min(p.c.param_id))
            .join(t, t.c.trial_id == p.c.trial_id)
            .where(t.c.study_id == self.study_id, p.c.param_name.in_(names))
            .group_by(p.c.param_name)
        )
        for name, text in con.execute(
            sa.select(p.c.param_name, p.c.distribution_json).where(p.c.param_id.in_(first))
        ):
            self._cols.distributions[name] = json_to_distribution(text)

    def _build(self) -> TrialFrame:
        import time

        c = self._cols
        n = c.n
        order = np.argsort(c.number[:n], kind="stable")
        self._generation += 1
        return TrialFrame(
            study_id=self.study_id,
            directions=self.directions,
            trial_id=c.trial_id[:n][order],
            number=c.number[:n][order],
            state=c.state[:n][order],
            values=c.values[:n][order],
            start=c.start[:n][order],
            complete=c.complete[:n][order],
            params={
                name: ParamColumn(name, c.distributions[name], c.params[name][:n][order])
                for name in sorted(c.params)
                if name in c.distributions
            },
            host=Categorical(c.text["host"][:n][order], tuple(c.labels["host"])),
            gpu=Categorical(c.text["gpu"][:n][order], tuple(c.labels["gpu"])),
            sampler=Categorical(c.text["sampler"][:n][order], tuple(c.labels["sampler"])),
            tags=Categorical(c.text["tags"][:n][order], tuple(c.labels["tags"])),
            worker=Categorical(c.text["worker"][:n][order], tuple(c.labels["worker"])),
            generation=self._generation,
            read_at=time.time(),
            metric_names=self._metric_names,
        )

    # per-trial reads ------------------------------------------------------------------------

    def curves(self, trial_ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
        """Intermediate values (step, value) of the given trials, for the ones on show: from
        Optuna's table, and for multi-objective trials from tui-hpo's (``tables.curves``)."""
        from tui_hpo.storage import tables

        m = optuna_models()
        iv = m.TrialIntermediateValueModel.__table__
        cv = tables.curves
        out: dict[int, dict[int, float]] = {tid: {} for tid in trial_ids}
        ids = list(trial_ids)
        kind = sa.type_coerce(iv.c.intermediate_value_type, sa.String)
        with self.engine.connect() as con:
            for i in range(0, len(ids), CHUNK):
                part = ids[i : i + CHUNK]
                for trial_id, step, value, value_type in con.execute(
                    sa.select(iv.c.trial_id, iv.c.step, iv.c.intermediate_value, kind).where(
                        iv.c.trial_id.in_(part)
                    )
                ):
                    out[trial_id][step] = _intermediate(value, value_type)
                for trial_id, step, value in con.execute(
                    sa.select(cv.c.trial_id, cv.c.step, cv.c.value).where(cv.c.trial_id.in_(part))
                ):
                    out[trial_id][step] = math.nan if value is None else value
        return {tid: sorted(points.items()) for tid, points in out.items()}

    def detail(self, trial_id: int) -> dict[str, Any]:
        """Every attr of one trial (user attrs and system attrs, decoded) and its note (which
        optuna-dashboard keeps among the study's system attrs, ``control.notes``)."""
        from tui_hpo.control.notes import read_note

        m = optuna_models()
        ua = m.TrialUserAttributeModel.__table__
        sa_ = m.TrialSystemAttributeModel.__table__
        with self.engine.connect() as con:
            user = {
                k: json.loads(v)
                for k, v in con.execute(
                    sa.select(ua.c.key, ua.c.value_json).where(ua.c.trial_id == trial_id)
                )
            }
            system = {
                k: json.loads(v)
                for k, v in con.execute(
                    sa.select(sa_.c.key, sa_.c.value_json).where(sa_.c.trial_id == trial_id)
                )
            }
            note = read_note(con, self.study_id, trial_id).body
        return {"user_attrs": user, "system_attrs": system, "note": note}


def _intermediate(value: float | None, value_type: str) -> float:
    if value_type == "INF_POS":
        return math.inf
    if value_type == "INF_NEG":
        return -math.inf
    return math.nan if value is None else value


def attr_text(key: str, value_json: str) -> str:
    if key == attrs.TAGS:
        from tui_hpo.control.tags import decode

        return ",".join(decode(value_json))
    value = json.loads(value_json)
    if key == attrs.SAMPLER and isinstance(value, dict):
        from tui_hpo.control.specs import Spec

        return Spec(value.get("name", "?"), value.get("kwargs") or {}).label()
    return "" if value is None else str(value)


def schema_supported(engine: sa.Engine) -> bool:
    """Whether the storage's Optuna schema is the one this reader was written against."""
    m = optuna_models()
    vi = m.VersionInfoModel.__table__
    try:
        with engine.connect() as con:
            version = con.execute(sa.select(vi.c.schema_version)).scalar()
    except sa.exc.SQLAlchemyError:
        return False
    return version == m.SCHEMA_VERSION
