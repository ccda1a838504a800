"""Queueing trials with given params (enqueue), checked against what the study has seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tui_hpo.control import budget
from tui_hpo.errors import UserError

if TYPE_CHECKING:
    import optuna


def known_distributions(engine: sa.Engine, study_id: int) -> dict[str, Any]:
    """The distribution of each param the study has seen (the latest one wins)."""
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    p = models.TrialParamModel.__table__
    latest = (
        sa.select(p.c.param_name, sa.func.max(p.c.param_id).label("pid"))
        .join(t, t.c.trial_id == p.c.trial_id)
        .where(t.c.study_id == study_id)
        .group_by(p.c.param_name)
        .subquery()
    )
    with engine.connect() as con:
        rows = con.execute(
            sa.select(p.c.param_name, p.c.distribution_json).join(
                latest, latest.c.pid == p.c.param_id
            )
        ).all()
    return {name: json_to_distribution(text) for name, text in rows}


def check_params(params: dict[str, Any], distributions: dict[str, Any]) -> None:
    """Each param must be one the study knows, with a value its distribution holds."""
    if not distributions:
        return  # nothing known yet: the objective's suggest calls will judge them
    unknown = sorted(set(params) - set(distributions))
    if unknown:
        raise UserError(
            f"unknown param(s) {', '.join(map(repr, unknown))}: the study knows "
            f"{', '.join(sorted(distributions))}"
        )
    for name, value in params.items():
        dist = distributions[name]
        try:
            ok = dist._contains(dist.to_internal_repr(value))
        except (TypeError, ValueError, KeyError):
            ok = False
        if not ok:
            raise UserError(f"param {name!r}={value!r} is outside its distribution {dist}")


def enqueue(study: optuna.Study, engine: sa.Engine, params: dict[str, Any]) -> None:
    """Queue a trial with these params; it runs next, on top of the trial budget."""

    check_params(params, known_distributions(engine, study._study_id))
    study.enqueue_trial(params, skip_if_exists=False)
    budget.add_to_budget(engine, study._study_id, 1)
