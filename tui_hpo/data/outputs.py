"""Where a command trial's output is: the file its worker wrote (``tui_hpo.output``) on the
machine that ran it (``tui_hpo.host``). ``tui-hpo logs`` and the app's log pane read it."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

import sqlalchemy as sa

from tui_hpo.storage import attrs


@dataclass(frozen=True)
class TrialOutput:
    number: int
    state: str
    path: str | None
    """None: the trial ran a Python function (its output is in its worker's log)."""
    host: str | None

    @property
    def ended(self) -> bool:
        return self.state not in ("RUNNING", "WAITING")

    @property
    def is_local(self) -> bool:
        return self.host in (None, socket.gethostname())


def trial_output(con: sa.Connection, study_id: int, number: int) -> TrialOutput | None:
    """The trial numbered ``number`` and where its output is; None when there is no such
    trial."""
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    ua = models.TrialUserAttributeModel.__table__
    row = con.execute(
        sa.select(t.c.trial_id, t.c.state).where(t.c.study_id == study_id, t.c.number == number)
    ).first()
    if row is None:
        return None
    found = dict(
        con.execute(
            sa.select(ua.c.key, ua.c.value_json).where(
                ua.c.trial_id == row.trial_id, ua.c.key.in_((attrs.OUTPUT, attrs.HOST))
            )
        ).all()
    )
    path, host = (json.loads(found[k]) if k in found else None for k in (attrs.OUTPUT, attrs.HOST))
    state = getattr(row.state, "name", str(row.state))
    return TrialOutput(number, state, path, host)
