"""Deleting a study: Optuna's rows and tui-hpo's own rows for it, nothing else.

Why not just ``optuna.delete_study``: tui-hpo's tables refer to Optuna's ``study_id`` and
``trial_id`` by value (no foreign keys, docs/storage.md), so Optuna's delete leaves them behind,
and a later study that gets the same id on SQLite (ids are reused there after a delete of the
newest) would inherit another study's budget, pause flag, sampler history and curves. And
Optuna's delete goes through its ORM cascade, which loads every trial and its rows first:
minutes at 100,000 trials.

So, in one transaction: every ``tui_hpo_*`` row of the study (by ``study_id``, and by
``trial_id`` for tables that only know the trial, such as the curves; the trial ids are found
through Optuna's ``trials`` table, so these go first), then Optuna's per-trial rows and the
trials in bulk. Then Optuna's own ``delete_study`` removes the study with its directions and
attrs, with Optuna's code. Should the storage go away between the two, the study is left with
no trials and running the delete again finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tui_hpo.storage import tables

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Deleted:
    """What went: the study's trials, and tui-hpo's rows per table (only tables that had
    some)."""

    trials: int
    tui_rows: dict[str, int] = field(default_factory=dict)


def optuna_models() -> Any:
    from optuna.storages._rdb import models

    return models


def trial_count(engine: sa.Engine, study_id: int) -> int:
    t = tables.optuna_trials
    with engine.connect() as con:
        return int(
            con.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.study_id == study_id)
            ).scalar_one()
        )


def own_tables() -> list[sa.Table]:
    """tui-hpo's tables that hold rows of a study, through ``study_id`` or ``trial_id``: every
    table in ``storage.tables``, so one added later is covered without a change here."""
    return [t for t in tables.metadata.sorted_tables if "study_id" in t.c or "trial_id" in t.c]


def delete_study(storage: optuna.storages.RDBStorage, study_id: int) -> Deleted:
    """Delete the study and every row that belongs to it, tui-hpo's first (see the module's
    docstring for the order and why)."""
    m = optuna_models()
    trials = m.TrialModel.__table__
    ids = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id).scalar_subquery()
    own: dict[str, int] = {}
    with storage.engine.begin() as con:
        for table in own_tables():
            whose = []
            if "study_id" in table.c:
                whose.append(table.c.study_id == study_id)
            if "trial_id" in table.c:
                whose.append(table.c.trial_id.in_(ids))
            gone = con.execute(table.delete().where(sa.or_(*whose))).rowcount
            if gone:
                own[table.name] = gone
        for table in m.BaseModel.metadata.sorted_tables:
            if "trial_id" in table.c and table.name != "trials":
                con.execute(table.delete().where(table.c.trial_id.in_(ids)))
        n = con.execute(trials.delete().where(trials.c.study_id == study_id)).rowcount
    storage.delete_study(study_id)
    return Deleted(trials=n, tui_rows=own)
