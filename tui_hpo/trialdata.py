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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from tui_hpo import attrs

STATE_NAMES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")
STATE_CODE = {name: code for code, name in enumerate(STATE_NAMES)}
UNFINISHED = (STATE_CODE["RUNNING"], STATE_CODE["WAITING"])
ATTR_KEYS = {attrs.HOST: "host", attrs.GPU: "gpu", attrs.SAMPLER: "sampler"}
CHUNK = 900  # bound parameter lists stay under SQLite's 999-variable limit

_EPOCH = dt.datetime(1970, 1, 1)


def _models() -> Any:
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
    """A text column stored as codes into a list of labels (host, GPU, sampler)."""

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

    def __len__(self) -> int:
        return len(self.number)

    @property
    def n_objectives(self) -> int:
        return len(self.directions)

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


@dataclass
class _Rows:
    """The reader's own growing copy, turned into a frozen TrialFrame on change."""

    index: dict[int, int] = field(default_factory=dict)  # trial_id -> row
    trial_id: list[int] = field(default_factory=list)
    number: list[int] = field(default_factory=list)
    state: list[int] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    complete: list[float] = field(default_factory=list)
    values: dict[int, dict[int, float]] = field(default_factory=dict)  # row -> obj -> value
    params: dict[str, dict[int, float]] = field(default_factory=dict)  # name -> row -> value
    distributions: dict[str, Any] = field(default_factory=dict)
    text: dict[str, dict[int, str]] = field(
        default_factory=lambda: {"host": {}, "gpu": {}, "sampler": {}}
    )

    def row_for(self, trial_id: int) -> int:
        row = self.index.get(trial_id)
        if row is None:
            row = len(self.trial_id)
            self.index[trial_id] = row
            self.trial_id.append(trial_id)
            self.number.append(0)
            self.state.append(STATE_CODE["WAITING"])
            self.start.append(math.nan)
            self.complete.append(math.nan)
        return row


class StudyReader:
    """Reads one study's trials for the app, incrementally. Not thread-safe: one poller owns
    it; what it hands out (TrialFrame) is immutable and safe to share."""

    def __init__(self, engine: sa.Engine, study_id: int, directions: Sequence[str]) -> None:
        self.engine = engine
        self.study_id = study_id
        self.directions = tuple(directions)
        self._rows = _Rows()
        self._max_trial_id = 0
        self._min_unfinished: int | None = None
        self._frame: TrialFrame | None = None
        self._generation = 0
        self._known: dict[int, tuple[int, float, float]] = {}  # trial_id -> (state, start, end)

    # polling ---------------------------------------------------------------------------------

    def poll(self) -> TrialFrame:
        """The current frame: the same object as last time when nothing changed."""
        m = _models()
        t = m.TrialModel.__table__
        lo = self._min_unfinished if self._min_unfinished is not None else self._max_trial_id + 1
        lo = min(lo, self._max_trial_id + 1)
        with self.engine.connect() as con:
            rows = con.execute(
                sa.select(
                    t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete
                ).where(t.c.study_id == self.study_id, t.c.trial_id >= lo)
            ).all()
            changed: list[int] = []
            moved = False  # a new trial, or one whose state or times changed
            for trial_id, number, state, start, complete in rows:
                key = (STATE_CODE[state.name], _ts(start), _ts(complete))
                if self._known.get(trial_id) != key:
                    moved = True
                if self._known.get(trial_id) != key or key[0] == STATE_CODE["RUNNING"]:
                    changed.append(trial_id)
                    self._known[trial_id] = key
                    row = self._rows.row_for(trial_id)
                    self._rows.number[row] = number
                    self._rows.state[row], self._rows.start[row], self._rows.complete[row] = key
            if not changed and self._frame is not None:
                return self._frame
            dirty = self._read_details(con, changed, lo)
        if rows:
            self._max_trial_id = max(self._max_trial_id, max(r[0] for r in rows))
        unfinished = [r[0] for r in rows if STATE_CODE[r[2].name] in UNFINISHED]
        self._min_unfinished = min(unfinished) if unfinished else None
        if not dirty and not moved and self._frame is not None:
            return self._frame
        self._frame = self._build()
        return self._frame

    def _read_details(self, con: sa.Connection, changed: list[int], lo: int) -> bool:
        """Values, params and provenance attrs of the changed trials; whether any differ."""
        if not changed:
            return False
        m = _models()
        t = m.TrialModel.__table__
        v = m.TrialValueModel.__table__
        p = m.TrialParamModel.__table__
        ua = m.TrialUserAttributeModel.__table__
        wanted = set(changed)
        in_window = t.c.study_id == self.study_id
        bulk = len(changed) > CHUNK
        dirty = False

        def scoped(query: sa.Select[Any], table: sa.Table) -> Iterable[Any]:
            if bulk:  # first read or a big jump: one range scan beats many IN lists
                q = query.join(t, t.c.trial_id == table.c.trial_id).where(
                    in_window, t.c.trial_id >= lo
                )
                return (r for r in con.execute(q) if r[0] in wanted)
            out: list[Any] = []
            for i in range(0, len(changed), CHUNK):
                part = changed[i : i + CHUNK]
                out.extend(con.execute(query.where(table.c.trial_id.in_(part))))
            return out

        for trial_id, objective, value, value_type in scoped(
            sa.select(v.c.trial_id, v.c.objective, v.c.value, v.c.value_type), v
        ):
            row = self._rows.index[trial_id]
            got = m.TrialValueModel.stored_repr_to_value(value, value_type)
            slot = self._rows.values.setdefault(row, {})
            if slot.get(objective) != got:
                slot[objective] = got
                dirty = True
        for trial_id, name, value, dist_json in scoped(
            sa.select(p.c.trial_id, p.c.param_name, p.c.param_value, p.c.distribution_json), p
        ):
            row = self._rows.index[trial_id]
            column = self._rows.params.setdefault(name, {})
            if column.get(row) != value:
                column[row] = value
                dirty = True
            if name not in self._rows.distributions:
                from optuna.distributions import json_to_distribution

                self._rows.distributions[name] = json_to_distribution(dist_json)
        for trial_id, key, value_json in scoped(
            sa.select(ua.c.trial_id, ua.c.key, ua.c.value_json).where(ua.c.key.in_(ATTR_KEYS)),
            ua,
        ):
            row = self._rows.index[trial_id]
            text = _attr_text(key, value_json)
            column_t = self._rows.text[ATTR_KEYS[key]]
            if column_t.get(row) != text:
                column_t[row] = text
                dirty = True
        return dirty

    def _build(self) -> TrialFrame:
        import time

        r = self._rows
        n = len(r.trial_id)
        order = np.argsort(np.asarray(r.number, dtype=np.int64), kind="stable")
        k = len(self.directions)
        values = np.full((n, k), np.nan)
        for row, objs in r.values.items():
            for obj, value in objs.items():
                if obj < k:
                    values[row, obj] = value
        params = {}
        for name in sorted(r.params):
            column = np.full(n, np.nan)
            for row, value in r.params[name].items():
                column[row] = value
            params[name] = ParamColumn(name, r.distributions[name], column[order])
        self._generation += 1
        return TrialFrame(
            study_id=self.study_id,
            directions=self.directions,
            trial_id=np.asarray(r.trial_id, dtype=np.int64)[order],
            number=np.asarray(r.number, dtype=np.int64)[order],
            state=np.asarray(r.state, dtype=np.int8)[order],
            values=values[order],
            start=np.asarray(r.start, dtype=np.float64)[order],
            complete=np.asarray(r.complete, dtype=np.float64)[order],
            params=params,
            host=_categorical(r.text["host"], n, order),
            gpu=_categorical(r.text["gpu"], n, order),
            sampler=_categorical(r.text["sampler"], n, order),
            generation=self._generation,
            read_at=time.time(),
        )

    # per-trial reads ------------------------------------------------------------------------

    def curves(self, trial_ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
        """Intermediate values (step, value) of the given trials, for the ones on show."""
        m = _models()
        iv = m.TrialIntermediateValueModel.__table__
        out: dict[int, list[tuple[int, float]]] = {tid: [] for tid in trial_ids}
        ids = list(trial_ids)
        with self.engine.connect() as con:
            for i in range(0, len(ids), CHUNK):
                rows = con.execute(
                    sa.select(
                        iv.c.trial_id,
                        iv.c.step,
                        iv.c.intermediate_value,
                        iv.c.intermediate_value_type,
                    )  # fmt: skip
                    .where(iv.c.trial_id.in_(ids[i : i + CHUNK]))
                    .order_by(iv.c.trial_id, iv.c.step)
                )
                for trial_id, step, value, value_type in rows:
                    out[trial_id].append(
                        (
                            step,
                            m.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                                value, value_type
                            ),
                        )  # fmt: skip
                    )
        return out

    def detail(self, trial_id: int) -> dict[str, Any]:
        """Every attr of one trial: user attrs and system attrs, decoded."""
        m = _models()
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
        return {"user_attrs": user, "system_attrs": system}


def _attr_text(key: str, value_json: str) -> str:
    value = json.loads(value_json)
    if key == attrs.SAMPLER and isinstance(value, dict):
        from tui_hpo.samplers import Spec

        return Spec(value.get("name", "?"), value.get("kwargs") or {}).label()
    return "" if value is None else str(value)


def _categorical(found: dict[int, str], n: int, order: np.ndarray) -> Categorical:
    labels = sorted(set(found.values()))
    code_of = {label: i for i, label in enumerate(labels)}
    codes = np.full(n, -1, dtype=np.int32)
    for row, text in found.items():
        codes[row] = code_of[text]
    return Categorical(codes[order], tuple(labels))


def schema_supported(engine: sa.Engine) -> bool:
    """Whether the storage's Optuna schema is the one this reader was written against."""
    m = _models()
    vi = m.VersionInfoModel.__table__
    try:
        with engine.connect() as con:
            version = con.execute(sa.select(vi.c.schema_version)).scalar()
    except sa.exc.SQLAlchemyError:
        return False
    return version == m.SCHEMA_VERSION


# analysis ------------------------------------------------------------------------------------


def pareto_mask(frame: TrialFrame) -> np.ndarray:
    """COMPLETE trials on the Pareto front (Optuna's own non-domination test)."""
    from optuna.study._multi_objective import _is_pareto_front

    mask = np.zeros(len(frame), dtype=bool)
    done = frame.complete_mask() & ~np.isnan(frame.values).any(axis=1)
    if not done.any():
        return mask
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in frame.directions])
    loss = frame.values[done] * signs
    mask[np.flatnonzero(done)] = _is_pareto_front(loss, assume_unique_lexsorted=False)
    return mask


def best_history(frame: TrialFrame) -> tuple[np.ndarray, np.ndarray]:
    """(trial numbers, best value so far) over COMPLETE trials, single objective."""
    done = frame.complete_mask() & ~np.isnan(frame.values[:, 0])
    numbers = frame.number[done]
    values = frame.values[done, 0]
    if frame.directions[0] == "maximize":
        return numbers, np.maximum.accumulate(values) if len(values) else values
    return numbers, np.minimum.accumulate(values) if len(values) else values


def hypervolume_history(frame: TrialFrame, points: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(trial numbers, hypervolume of the front so far) at up to ``points`` checkpoints.

    The reference point is the worst value seen per objective plus 10% of the range, fixed over
    the history so the curve can only rise.
    """
    from optuna._hypervolume import compute_hypervolume
    from optuna.study._multi_objective import _is_pareto_front

    done = frame.complete_mask() & ~np.isnan(frame.values).any(axis=1)
    if done.sum() < 1:
        return np.array([]), np.array([])
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in frame.directions])
    loss = frame.values[done] * signs
    numbers = frame.number[done]
    finite = np.isfinite(loss).all(axis=1)
    loss, numbers = loss[finite], numbers[finite]
    if len(loss) == 0:
        return np.array([]), np.array([])
    span = loss.max(axis=0) - loss.min(axis=0)
    ref = loss.max(axis=0) + 0.1 * np.where(span > 0, span, 1.0)
    cuts = np.unique(np.linspace(1, len(loss), min(points, len(loss))).astype(int))
    xs, ys = [], []
    front = np.empty((0, loss.shape[1]))
    prev = 0
    for cut in cuts:
        candidates = np.vstack([front, loss[prev:cut]])
        front = candidates[_is_pareto_front(candidates, assume_unique_lexsorted=False)]
        prev = cut
        xs.append(numbers[cut - 1])
        ys.append(compute_hypervolume(front, ref, assume_pareto=True))
    return np.asarray(xs), np.asarray(ys)
