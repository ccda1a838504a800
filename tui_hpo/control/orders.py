"""What a study is told to do: its trial budget, deadline, seed, sampler and pruner in force.

Everything here travels through the storage, so a worker on any machine that can open it sees
the same orders. Workers read one ``Orders`` snapshot before each trial (one query); front ends
(the CLI now, the app later) write through the functions below.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tui_hpo.control.specs import DEFAULT_PRUNER, DEFAULT_SAMPLER, Spec
from tui_hpo.storage import tables


def db_now(con: sa.Connection) -> dt.datetime:
    """The database's clock, naive: the one clock all machines of a study agree on."""
    return _as_datetime(con.execute(sa.select(sa.func.now(type_=sa.DateTime))).scalar_one())


@dataclass(frozen=True)
class Orders:
    """A snapshot of what the workers of one study must do now."""

    study_id: int
    trial_budget: int | None
    seed: int | None
    deadline: dt.datetime | None
    paused: bool
    stop_requested: bool
    sampler: Spec
    pruner: Spec
    sampler_setting_id: int
    pruner_setting_id: int
    now: dt.datetime
    worker_stop: bool = False
    """This one worker was told to leave (``scale`` shrinking the study's workers)."""

    @property
    def past_deadline(self) -> bool:
        return self.deadline is not None and self.now >= self.deadline

    @property
    def must_leave(self) -> str | None:
        """Why a worker must leave now, if it must."""
        if self.stop_requested:
            return "study told to stop"
        if self.worker_stop:
            return "worker told to stop"
        if self.past_deadline:
            return "study deadline reached"
        return None


def _latest_setting(kind: str, study_id: int) -> sa.ScalarSelect[int]:
    s = tables.settings
    return (
        sa.select(sa.func.max(s.c.setting_id))
        .where(s.c.study_id == study_id, s.c.kind == kind)
        .scalar_subquery()
    )


def read_orders(con: sa.Connection, study_id: int, worker_id: int | None = None) -> Orders:
    """One round trip: the study's row, the sampler and pruner in force, this worker's own
    stop flag and the database clock."""
    st, s, w = tables.studies, tables.settings, tables.workers
    sampler = s.alias("sampler")
    pruner = s.alias("pruner")
    row = con.execute(
        sa.select(
            st.c.trial_budget,
            st.c.seed,
            st.c.deadline,
            st.c.paused,
            st.c.stop_requested,
            sampler.c.setting_id,
            sampler.c.spec_json,
            pruner.c.setting_id,
            pruner.c.spec_json,
            sa.select(w.c.stop_requested)
            .where(w.c.worker_id == (worker_id or 0))
            .scalar_subquery(),
            sa.func.now(type_=sa.DateTime),
        )
        .select_from(st)
        .outerjoin(sampler, sampler.c.setting_id == _latest_setting("sampler", study_id))
        .outerjoin(pruner, pruner.c.setting_id == _latest_setting("pruner", study_id))
        .where(st.c.study_id == study_id)
    ).one_or_none()
    now = db_now(con)
    if row is None:  # a study that plain Optuna made: no orders yet, defaults apply
        return Orders(
            study_id, None, None, None, False, False, DEFAULT_SAMPLER, DEFAULT_PRUNER, 0, 0, now
        )
    return Orders(
        study_id=study_id,
        trial_budget=row[0],
        seed=row[1],
        deadline=row[2],
        paused=bool(row[3]),
        stop_requested=bool(row[4]),
        sampler=Spec.from_json(row[6]) if row[6] else DEFAULT_SAMPLER,
        pruner=Spec.from_json(row[8]) if row[8] else DEFAULT_PRUNER,
        sampler_setting_id=row[5] or 0,
        pruner_setting_id=row[7] or 0,
        now=_as_datetime(row[10]),
        worker_stop=bool(row[9]),
    )


def _as_datetime(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):  # SQLite's CURRENT_TIMESTAMP
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


def count_trials(con: sa.Connection, study_id: int) -> int:
    """Trials that took a slot of the budget: all but those still waiting in the queue."""
    return trial_slots(con, study_id)[0]


def trial_slots(con: sa.Connection, study_id: int) -> tuple[int, int]:
    """(trials that took a slot of the budget, trials waiting in the queue), in one query."""
    t = tables.optuna_trials
    waiting = sa.case((sa.cast(t.c.state, sa.String) == "WAITING", 1), else_=0)
    row = con.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(waiting), 0)).where(
            t.c.study_id == study_id
        )
    ).one()
    return int(row[0]) - int(row[1]), int(row[1])


def prepare_run(
    engine: sa.Engine,
    study_id: int,
    *,
    n_trials: int | None,
    timeout: float | None,
    seed: int | None,
    sampler: Spec | None,
    pruner: Spec | None,
    launch_json: str | None = None,
) -> Orders:
    """Record what a launch asks for, before its workers start.

    ``n_trials`` adds to the study's budget (a second launch of 20 on a study that has run 40
    runs 20 more); None leaves the budget open: workers run until stopped or out of time.
    A sampler or pruner of None keeps the one in force (Optuna's defaults on a new study).
    """
    with engine.begin() as con:
        now = db_now(con)
        row = con.execute(
            sa.select(tables.studies.c.trial_budget).where(tables.studies.c.study_id == study_id)
        ).one_or_none()
        budget = None
        if n_trials is not None:
            counted = count_trials(con, study_id)
            budget = (max(row[0] or 0, counted) if row else counted) + n_trials
        deadline = now + dt.timedelta(seconds=timeout) if timeout else None
        values = {
            "trial_budget": budget,
            "seed": seed,
            "deadline": deadline,
            "stop_requested": False,
            "updated_at": now,
            "launch_json": launch_json,
        }
        if row is None:
            con.execute(tables.studies.insert().values(study_id=study_id, paused=False, **values))
        else:
            con.execute(
                tables.studies.update().where(tables.studies.c.study_id == study_id).values(values)
            )
        current = read_orders(con, study_id)
        for kind, spec, in_force, recorded in (
            ("sampler", sampler, current.sampler, current.sampler_setting_id),
            ("pruner", pruner, current.pruner, current.pruner_setting_id),
        ):
            wanted = spec or in_force
            if not recorded or wanted != in_force:
                _add_setting(con, study_id, kind, wanted)
        return read_orders(con, study_id)


def _add_setting(con: sa.Connection, study_id: int, kind: str, spec: Spec) -> None:
    con.execute(
        tables.settings.insert().values(
            study_id=study_id, kind=kind, spec_json=spec.to_json(), set_by=socket.gethostname()
        )
    )


# commands ------------------------------------------------------------------------------------
# Each is one short transaction, so two controllers at once (a pause from one shell while
# another switches the sampler) each land whole, in some order, and never half.


def study_id_of(engine: sa.Engine, name: str) -> int:
    """The id of the study called ``name``, or one line naming the studies that exist."""
    from tui_hpo.errors import UserError

    st = tables.optuna_studies
    with engine.connect() as con:
        ids = dict(con.execute(sa.select(st.c.study_name, st.c.study_id)).all())
    if name not in ids:
        known = ", ".join(sorted(ids)[:10]) or "none"
        raise UserError(f"no study named {name!r} in this storage (studies: {known})")
    return ids[name]


LAUNCH_TOKEN_ENV = "TUI_HPO_LAUNCH_TOKEN"
"""Set by ``launch`` for the workers it starts early: they wait until that launch is recorded
(``launch_ready``), so they never read an earlier run's spent budget or race to create tables."""


def launch_ready(engine: sa.Engine, name: str, token: str) -> int | None:
    """The study's id once the launch named ``token`` has recorded its orders (workers started
    early by ``launch`` must not read an earlier run's spent budget), else None."""
    st, s = tables.optuna_studies, tables.studies
    try:
        with engine.connect() as con:
            row = con.execute(
                sa.select(st.c.study_id, s.c.launch_json)
                .select_from(st)
                .outerjoin(s, s.c.study_id == st.c.study_id)
                .where(st.c.study_name == name)
            ).first()
    except sa.exc.DBAPIError:  # the launch is still creating the file or the tables
        return None
    if row is not None and row[1] and token in row[1]:
        return int(row[0])
    return None


def launch_recipe(engine: sa.Engine, study_id: int) -> dict[str, Any] | None:
    """How the study's last launch started its workers (``runtime.spawn.WorkerRecipe``, as
    JSON in ``tui_hpo_studies.launch_json``), or None when no launch recorded one."""
    import json

    st = tables.studies
    with engine.connect() as con:
        text = con.execute(sa.select(st.c.launch_json).where(st.c.study_id == study_id)).scalar()
    return json.loads(text) if text else None


def wait_for_launch(engine: sa.Engine, name: str, token: str, timeout: float = 120.0) -> int:
    """``launch_ready``, waited for."""
    import time

    from tui_hpo.errors import UserError

    deadline = time.monotonic() + timeout
    while (study_id := launch_ready(engine, name, token)) is None:
        if time.monotonic() > deadline:
            raise UserError(f"study {name!r} was not made ready by its launch within {timeout:g} s")
        time.sleep(0.1)
    return study_id


def _ensure_row(con: sa.Connection, study_id: int) -> None:
    """Studies written by plain Optuna scripts get their row on the first command."""
    st = tables.studies
    exists = con.execute(sa.select(st.c.study_id).where(st.c.study_id == study_id)).first()
    if exists is None:
        con.execute(st.insert().values(study_id=study_id, paused=False, stop_requested=False))


def _set_flags(engine: sa.Engine, study_id: int, **values: object) -> None:
    st = tables.studies
    with engine.begin() as con:
        _ensure_row(con, study_id)
        con.execute(
            st.update().where(st.c.study_id == study_id).values(updated_at=sa.func.now(), **values)
        )


def set_paused(engine: sa.Engine, study_id: int, paused: bool) -> None:
    """Soft pause: running trials finish, no worker starts another until resumed."""
    _set_flags(engine, study_id, paused=paused)


def request_stop(engine: sa.Engine, study_id: int) -> None:
    """Every worker of the study leaves after its current trial."""
    _set_flags(engine, study_id, stop_requested=True)


def clear_stop(engine: sa.Engine, study_id: int) -> None:
    """Undo ``request_stop``: new workers of the study may take trials again."""
    st = tables.studies
    with engine.begin() as con:
        con.execute(st.update().where(st.c.study_id == study_id).values(stop_requested=False))


def set_setting(engine: sa.Engine, study_id: int, kind: str, spec: Spec) -> None:
    """Put a sampler or pruner in force from every worker's next trial on (kept in history)."""
    with engine.begin() as con:
        _ensure_row(con, study_id)
        _add_setting(con, study_id, kind, spec)


@dataclass(frozen=True)
class SettingChange:
    kind: str
    spec: Spec
    set_at: dt.datetime
    set_by: str | None


def settings_history(con: sa.Connection, study_id: int) -> list[SettingChange]:
    s = tables.settings
    rows = con.execute(
        sa.select(s.c.kind, s.c.spec_json, s.c.set_at, s.c.set_by)
        .where(s.c.study_id == study_id)
        .order_by(s.c.setting_id)
    )
    return [SettingChange(k, Spec.from_json(j), at, by) for k, j, at, by in rows]
