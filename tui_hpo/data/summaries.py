"""Fast read-only snapshots of studies, straight from Optuna's tables with SQLAlchemy Core.

Optuna's ``get_all_trials`` builds a FrozenTrial per trial (seconds for thousands of trials);
a summary needs a few aggregate queries instead. The tables are Optuna's own (schema version
checked by ``storage.open_storage``), read through Optuna's model definitions so column names
come from one place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.control.notes import study_note_lines
from tui_hpo.control.orders import read_orders
from tui_hpo.control.specs import Spec
from tui_hpo.data.analysis import front_mask

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
ENDED = ("COMPLETE", "PRUNED", "FAIL")


def _tables() -> Any:
    from optuna.storages._rdb import models

    return models


@dataclass(frozen=True)
class StudySummary:
    study_id: int
    name: str
    directions: list[str]
    counts: dict[str, int]
    trial_budget: int | None
    best_trial: int | None = None
    best_values: list[float] | None = None
    pareto_front_size: int | None = None
    last_activity: dt.datetime | None = None
    sampler: Spec | None = None
    pruner: Spec | None = None
    paused: bool = False
    workers: list[registry.WorkerRow] = field(default_factory=list)
    by_sampler: dict[str, dict[str, int]] = field(default_factory=dict)
    metric_names: list[str] | None = None
    """The objectives' names (``study.set_metric_names``), when the study has them."""
    recent_failures: list[tuple[int, str | None]] = field(default_factory=list)
    """(number, fail reason) of the study's last failed trials, newest first."""
    note: str | None = None
    """The first line of the study's note (optuna-dashboard's, ``control.notes``), if any."""

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())

    @property
    def n_ended(self) -> int:
        return sum(self.counts[s] for s in ENDED)

    @property
    def is_multi_objective(self) -> bool:
        return len(self.directions) > 1

    def to_json(self) -> dict[str, Any]:
        """The stable ``status --json`` form (docs/status-json.md); later fields only add."""
        best = None
        if self.best_values is not None:
            best = {"trial": self.best_trial, "values": self.best_values}
            if self.metric_names:
                best["named"] = dict(zip(self.metric_names, self.best_values, strict=False))
        return {
            "name": self.name,
            "study_id": self.study_id,
            "directions": self.directions,
            "metric_names": self.metric_names,
            "n_trials": self.n_trials,
            "budget": self.trial_budget,
            "counts": self.counts,
            "by_sampler": self.by_sampler,
            "best": best,
            "pareto_front_size": self.pareto_front_size,
            "sampler": _spec_json(self.sampler),
            "pruner": _spec_json(self.pruner),
            "paused": self.paused,
            "last_activity": (
                self.last_activity.isoformat(sep=" ", timespec="seconds")
                if self.last_activity
                else None
            ),
            "workers": [w.to_json() for w in self.workers],
            "recent_failures": [
                {"trial": number, "reason": reason} for number, reason in self.recent_failures
            ],
            "note": self.note,
        }


def _spec_json(spec: Spec | None) -> dict[str, Any] | None:
    return None if spec is None else {"name": spec.name, "kwargs": spec.kwargs}


def study_ids(con: sa.Connection) -> dict[str, int]:
    studies = _tables().StudyModel.__table__
    rows = con.execute(
        sa.select(studies.c.study_name, studies.c.study_id).order_by(studies.c.study_id)
    )
    return {name: sid for name, sid in rows}


def state_counts(con: sa.Connection, study_id: int) -> dict[str, int]:
    t = _tables().TrialModel.__table__
    counts = dict.fromkeys(STATES, 0)
    for state, n in con.execute(
        sa.select(t.c.state, sa.func.count()).where(t.c.study_id == study_id).group_by(t.c.state)
    ):
        counts[state.name] = n
    return counts


UNKNOWN_SAMPLER = "(unknown)"


def counts_by_sampler(con: sa.Connection, study_id: int) -> dict[str, dict[str, int]]:
    """Counts per state for each sampler that produced trials (its ``tui_hpo.sampler`` attr),
    so two samplers used in one study can be compared."""
    import json

    from tui_hpo.storage import attrs

    m = _tables()
    t, ua = m.TrialModel.__table__, m.TrialUserAttributeModel.__table__
    rows = con.execute(
        sa.select(ua.c.value_json, t.c.state, sa.func.count())
        .select_from(t)
        .outerjoin(ua, sa.and_(ua.c.trial_id == t.c.trial_id, ua.c.key == attrs.SAMPLER))
        .where(t.c.study_id == study_id)
        .group_by(ua.c.value_json, t.c.state)
    )
    out: dict[str, dict[str, int]] = {}
    for value_json, state, n in rows:
        label = UNKNOWN_SAMPLER
        if value_json:
            d = json.loads(value_json)
            label = Spec(d.get("name", "?"), d.get("kwargs") or {}).label()
        counts = out.setdefault(label, dict.fromkeys(STATES, 0))
        counts[state.name] += n
    return out


def directions(con: sa.Connection, study_id: int) -> list[str]:
    d = _tables().StudyDirectionModel.__table__
    rows = con.execute(
        sa.select(d.c.direction).where(d.c.study_id == study_id).order_by(d.c.objective)
    )
    return [row[0].name.lower() for row in rows]


METRIC_NAMES_KEY = "study:metric_names"
"""Where ``Study.set_metric_names`` keeps the objectives' names (a study system attr)."""


def metric_names(con: sa.Connection, study_id: int) -> list[str] | None:
    """The names of the study's objectives, when it has them (``study.metric_names``)."""
    import json

    a = _tables().StudySystemAttributeModel.__table__
    text = con.execute(
        sa.select(a.c.value_json).where(a.c.study_id == study_id, a.c.key == METRIC_NAMES_KEY)
    ).scalar()
    names = json.loads(text) if text else None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def _complete_values(con: sa.Connection, study_id: int) -> dict[int, dict[int, float]]:
    """Trial number -> objective index -> value, for COMPLETE trials."""
    from optuna.trial import TrialState

    m = _tables()
    t, v = m.TrialModel.__table__, m.TrialValueModel.__table__
    out: dict[int, dict[int, float]] = {}
    rows = con.execute(
        sa.select(t.c.number, v.c.objective, v.c.value, v.c.value_type)
        .join(v, v.c.trial_id == t.c.trial_id)
        .where(t.c.study_id == study_id, t.c.state == TrialState.COMPLETE)
    )
    for number, objective, value, value_type in rows:
        out.setdefault(number, {})[objective] = m.TrialValueModel.stored_repr_to_value(
            value, value_type
        )
    return out


def best(
    con: sa.Connection, study_id: int, dirs: list[str]
) -> tuple[int | None, list[float] | None, int | None]:
    """(best trial, its values, None) for one objective; (None, None, front size) for several."""
    values = _complete_values(con, study_id)
    if not values:
        return None, None, (0 if len(dirs) > 1 else None)
    if len(dirs) == 1:
        sign = -1.0 if dirs[0] == "maximize" else 1.0
        number = min(values, key=lambda n: sign * values[n][0])
        return number, [values[number][0]], None
    numbers = sorted(n for n in values if len(values[n]) == len(dirs))
    table = np.array([[values[n][i] for i in range(len(dirs))] for n in numbers])
    return None, None, int(front_mask(table.reshape(len(numbers), len(dirs)), dirs).sum())


def last_activity(con: sa.Connection, study_id: int) -> dt.datetime | None:
    t = _tables().TrialModel.__table__
    return con.execute(
        sa.select(sa.func.max(sa.func.coalesce(t.c.datetime_complete, t.c.datetime_start))).where(
            t.c.study_id == study_id
        )
    ).scalar_one_or_none()


RECENT_FAILURES = 5


def recent_failures(
    con: sa.Connection, study_id: int, limit: int = RECENT_FAILURES
) -> list[tuple[int, str | None]]:
    """The last ``limit`` failed trials and why each failed (tui-hpo's reason, else Optuna's):
    a program's exit code and the last lines of its stderr, a raised exception, a timeout."""
    import json

    from optuna.trial import TrialState

    from tui_hpo.storage import attrs

    m = _tables()
    t = m.TrialModel.__table__
    ua, sa_ = m.TrialUserAttributeModel.__table__, m.TrialSystemAttributeModel.__table__
    failed = con.execute(
        sa.select(t.c.trial_id, t.c.number)
        .where(t.c.study_id == study_id, t.c.state == TrialState.FAIL)
        .order_by(t.c.number.desc())
        .limit(limit)
    ).all()
    if not failed:
        return []
    ids = [row.trial_id for row in failed]
    reasons: dict[int, str] = {}
    for table, key in ((sa_, attrs.OPTUNA_FAIL_REASON), (ua, attrs.FAIL_REASON)):  # ours wins
        for trial_id, value in con.execute(
            sa.select(table.c.trial_id, table.c.value_json).where(
                table.c.trial_id.in_(ids), table.c.key == key
            )
        ):
            reasons[trial_id] = str(json.loads(value))
    return [(row.number, reasons.get(row.trial_id)) for row in failed]


def summarize(con: sa.Connection, study_id: int, name: str, *, queue: bool = False) -> StudySummary:
    """The study's summary; ``queue`` adds its Slurm tasks that have no worker yet (pending,
    starting), from ``squeue``, for a study that has Slurm jobs."""
    dirs = directions(con, study_id)
    workers = registry.list_workers(con, study_id)
    if queue:
        workers = registry.with_queue(con, study_id, workers)
    best_trial, best_values, front = best(con, study_id, dirs)
    orders = read_orders(con, study_id)
    activity = last_activity(con, study_id)
    if isinstance(activity, str):  # SQLite returns max() of datetimes as text
        activity = dt.datetime.fromisoformat(activity)
    return StudySummary(
        study_id=study_id,
        name=name,
        directions=dirs,
        counts=state_counts(con, study_id),
        trial_budget=orders.trial_budget,
        best_trial=best_trial,
        best_values=best_values,
        pareto_front_size=front,
        last_activity=activity,
        sampler=orders.sampler,
        pruner=orders.pruner,
        paused=orders.paused,
        workers=workers,
        by_sampler=counts_by_sampler(con, study_id),
        metric_names=metric_names(con, study_id),
        recent_failures=recent_failures(con, study_id),
        note=next(iter(study_note_lines(con, study_id)), None),
    )


def summaries(
    con: sa.Connection, only: str | None = None, *, queue: bool = False
) -> list[StudySummary]:
    ids = study_ids(con)
    names = [only] if only is not None else list(ids)
    return [summarize(con, ids[n], n, queue=queue) for n in names if n in ids]
