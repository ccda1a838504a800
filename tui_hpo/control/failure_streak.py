"""Stopping a search whose every trial fails: N failed trials in a row end it.

A broken objective (a typo, a missing file, a GPU that isn't there) fails every trial in a few
milliseconds; with no trial budget such a launch would spin forever, and with one it would burn
the whole budget on the same error. After ``--max-consecutive-failures`` trials of the study in
a row have ended FAIL, counting only trials started since the caller (a worker, a launch)
started, the workers leave and the launch exits non-zero, naming the last fail reason.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import sqlalchemy as sa

from tui_hpo.storage import attrs

DEFAULT_LIMIT = 10
"""``--max-consecutive-failures`` unless told otherwise; 0 turns the rule off."""

EXIT_CODE = 3
"""How a worker that stopped for this rule exits: its supervisor does not replace it."""


@dataclass(frozen=True)
class Streak:
    count: int
    last_reason: str | None

    def message(self) -> str:
        reason = self.last_reason or "no reason recorded"
        return (
            f"stopped after {self.count} failed trials in a row (--max-consecutive-failures); "
            f"the last: {reason}"
        )


def failure_streak(
    engine: sa.Engine, study_id: int, limit: int, since: dt.datetime | None = None
) -> Streak | None:
    """The streak when the last ``limit`` trials of the study to end (started at or after
    ``since``) all ended FAIL; None otherwise, or when ``limit`` is 0."""
    from optuna.storages._rdb import models

    if limit <= 0:
        return None
    t = models.TrialModel.__table__
    query = (
        sa.select(t.c.trial_id, sa.cast(t.c.state, sa.String))
        .where(t.c.study_id == study_id, t.c.datetime_complete.is_not(None))
        .order_by(t.c.datetime_complete.desc(), t.c.trial_id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(t.c.datetime_start >= since)
    with engine.connect() as con:
        rows = con.execute(query).all()
        if len(rows) < limit or any(state != "FAIL" for _, state in rows):
            return None
        return Streak(limit, _fail_reason(con, rows[0][0]))


def _fail_reason(con: sa.Connection, trial_id: int) -> str | None:
    from optuna.storages._rdb import models

    ua = models.TrialUserAttributeModel.__table__
    sys_attrs = models.TrialSystemAttributeModel.__table__
    for table, key in ((ua, attrs.FAIL_REASON), (sys_attrs, attrs.OPTUNA_FAIL_REASON)):
        found = con.execute(
            sa.select(table.c.value_json).where(table.c.trial_id == trial_id, table.c.key == key)
        ).scalar()
        if found:
            return str(json.loads(found))
    return None
