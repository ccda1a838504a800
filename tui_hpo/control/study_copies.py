"""Copying a study, all of it or only some of its trials, by bulk inserts into Optuna's tables.

Why: Optuna can't delete a trial, so the way to drop bad trials (a bug in the objective, a
broken GPU, a sampler run that went wrong) is a copy of the study without them.
``optuna.copy_study`` goes through the storage API, one FrozenTrial and a dozen statements per
trial: many minutes at 100,000 trials. Here the rows are read with SQLAlchemy Core a few
thousand trials at a time and written with ``executemany`` (``COPY`` through psycopg on
PostgreSQL), all in one transaction on the destination: the copy is there whole or not at all,
so a failure halfway (the name taken meanwhile, the storage gone) leaves nothing behind.

The copy is a plain Optuna study (``optuna.load_study`` reads it; the ``optuna`` CLI and
optuna-dashboard show it):

- the study: its directions, user attrs and system attrs (metric names among them);
- every copied trial with its state, datetimes, values, params with their distributions,
  intermediate values, user attrs and system attrs, and tui-hpo's learning curves of
  multi-objective trials (``tui_hpo_curves``) under the new trial ids;
- optuna-dashboard's trial notes (study system attrs keyed by trial id) under the new ids;
- trial numbers renumbered from 0 in the source's order, since Optuna numbers a study's trials
  0..n-1 and a gap would confuse it. Attrs that hold a trial number (``tui_hpo.retry_of``,
  ``tui_hpo.target_reached``) keep the source's number: they are the user's data, and
  rewriting them would be a guess when the trial they name was left out.

Not copied: trial heartbeats (nothing runs the copy's trials; a RUNNING trial is copied as
RUNNING, a snapshot), and tui-hpo's orders, settings, workers, Slurm jobs and trial requests
(they belong to the runs of the source, not to its results).

The columns of each table come from Optuna's own models (``optuna.storages._rdb.models``), and
the trial-level tables are every table there with a ``trial_id`` (but heartbeats), so a table
a later Optuna adds is copied too.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tui_hpo.errors import UserError
from tui_hpo.storage import tables

CHUNK = 2000
"""Source trials read and written per round: bounds memory (about 30 rows a trial) while
keeping the statements few."""

IN_LIST = 500
"""Up to this many selected trials of a round are read by id (``IN``); more, by id range."""

MAX_NAME = 512
"""Longest study name Optuna's schema takes (``MAX_INDEXED_STRING_LENGTH``)."""

SKIPPED_TRIAL_TABLES = ("trials", "trial_heartbeats")
"""Trial-level tables not copied row by row: ``trials`` itself (renumbered), heartbeats (a
copy has no worker beating for its trials)."""


@dataclass(frozen=True)
class Copied:
    """What ``copy_study`` wrote: the new study's id, how many trials out of how many, and the
    rows written to each table (for ``details`` and the timing note in the docs)."""

    study_id: int
    trials: int
    source_trials: int
    rows: dict[str, int] = field(default_factory=dict)


def optuna_models() -> Any:
    from optuna.storages._rdb import models

    return models


def check_name(name: str) -> None:
    """A name Optuna's schema can take, checked before any storage is opened."""
    if not name.strip():
        raise UserError("give the copy a name (DST is empty)")
    if len(name) > MAX_NAME:
        raise UserError(f"study names are at most {MAX_NAME} characters (DST has {len(name)})")


def check_absent(engine: sa.Engine, name: str, where: str) -> None:
    """One line when a study called ``name`` already exists: a copy never writes into one."""
    st = tables.optuna_studies
    with engine.connect() as con:
        found = con.execute(sa.select(st.c.study_id).where(st.c.study_name == name)).first()
    if found is not None:
        raise UserError(
            f"a study named {name!r} already exists in {where}: pick another name "
            "(or delete it first with tui-hpo delete-study)"
        )


def trial_tables() -> list[sa.Table]:
    """Optuna's per-trial tables to copy (``trial_id`` rows but ``SKIPPED_TRIAL_TABLES``),
    then tui-hpo's learning curves."""
    metadata = optuna_models().BaseModel.metadata
    found = [
        t
        for t in metadata.sorted_tables
        if "trial_id" in t.c and t.name not in SKIPPED_TRIAL_TABLES
    ]
    return [*found, tables.curves]


def copy_study(
    source: sa.Engine,
    study_id: int,
    target: sa.Engine,
    name: str,
    trial_ids: Collection[int] | None = None,
    *,
    chunk: int = CHUNK,
) -> Copied:
    """Copy study ``study_id`` of ``source`` as a new study ``name`` in ``target`` (the same
    engine, or another storage's with Optuna's and tui-hpo's tables made): every trial, or only
    those whose ``trial_id`` is in ``trial_ids``. One transaction on ``target``; a study called
    ``name`` that exists by then is one line (``UserError``) and nothing is written.

    With one engine for both, reads and writes share one connection (a server connection per
    process, as everywhere in tui-hpo)."""
    check_name(name)
    chosen = None if trial_ids is None else {int(t) for t in trial_ids}
    try:
        with target.begin() as out:
            if source is target:
                return _copy_here(out, study_id, name, chosen)
            with source.connect() as src:
                return _copy(src, study_id, out, name, chosen, chunk)
    except sa.exc.IntegrityError as exc:  # the name taken since check_absent
        if "study_name" in str(exc):  # not any unique key: another one is a bug to show
            raise UserError(
                f"a study named {name!r} already exists: pick another name (nothing copied)"
            ) from None
        raise


def _copy_here(con: sa.Connection, study_id: int, name: str, chosen: set[int] | None) -> Copied:
    """A copy in the same database: the rows never leave it. Only the trials' ids go through
    Python (to renumber them and learn their new ids); everything else is one
    ``INSERT ... SELECT`` per table, joined with a temporary table of old and new trial ids.
    At 100,000 trials that is several times faster than reading the rows out and writing
    them back (``_copy``, for a copy into another storage)."""
    m = optuna_models()
    studies = m.StudyModel.__table__
    trials = m.TrialModel.__table__
    rows: dict[str, int] = {}
    new_id = int(con.execute(studies.insert().values(study_name=name)).inserted_primary_key[0])
    for model in (m.StudyDirectionModel, m.StudyUserAttributeModel, m.StudySystemAttributeModel):
        table = model.__table__
        rows[table.name] = _insert_select(
            con, table, {"study_id": sa.literal(new_id)}, [table.c.study_id == study_id]
        )

    source_ids = [
        int(t)
        for t in con.execute(
            sa.select(trials.c.trial_id)
            .where(trials.c.study_id == study_id)
            .order_by(trials.c.number, trials.c.trial_id)
        ).scalars()
    ]
    kept = [t for t in source_ids if chosen is None or t in chosen]
    # the source's trial id of each new number, then the new trial id of each source one
    # (dropped here on success; after a failure the rollback takes them, and a DROP on an
    # aborted PostgreSQL transaction would hide the error that aborted it)
    numbers = _scratch(con, "number", "old_id")
    ids = _scratch(con, "old_id", "new_id")
    _write(con, numbers, ["number", "old_id"], list(enumerate(kept)))
    _analyze(con, numbers)
    rows["trials"] = _insert_select(
        con,
        trials,
        {"number": numbers.c.number, "study_id": sa.literal(new_id)},
        [],
        join=(numbers, numbers.c.old_id == trials.c.trial_id),
        order_by=numbers.c.number,  # new ids in number order, the order Optuna reads them
    )
    made = dict(
        con.execute(
            sa.select(trials.c.number, trials.c.trial_id).where(trials.c.study_id == new_id)
        ).all()
    )
    id_map = {t: made[n] for n, t in enumerate(kept)}
    _write(con, ids, ["old_id", "new_id"], list(id_map.items()))
    _move_trial_notes(con, new_id, id_map)
    _analyze(con, ids)
    for table in trial_tables():
        rows[table.name] = _insert_select(
            con,
            table,
            {"trial_id": ids.c.new_id},
            [],
            join=(ids, ids.c.old_id == table.c.trial_id),
        )
    numbers.drop(con)
    ids.drop(con)
    return Copied(new_id, len(kept), len(source_ids), rows)


TRIAL_NOTE = re.compile(r"dashboard:(\d+):(note_ver|note_str:\d+)")
"""optuna-dashboard's note of a trial: study system attrs keyed by the trial's id
(``control.notes``)."""


def _move_trial_notes(con: sa.Connection, study_id: int, id_map: dict[int, int]) -> None:
    """Trial notes are keyed by trial id, so the copied study attrs name the source's trials:
    give a kept trial's note its new id, and drop the notes of trials left out.

    Two passes, through a key no note has: renaming in place could give trial 5's note the
    key ``dashboard:7:...`` while trial 7's is still there (one key per study is unique)."""
    a = optuna_models().StudySystemAttributeModel.__table__
    found = con.execute(
        sa.select(a.c.study_system_attribute_id, a.c.key).where(
            a.c.study_id == study_id, a.c.key.like("dashboard:%:note%")
        )
    ).all()
    moved: list[tuple[int, str]] = []
    for row_id, key in found:
        match = TRIAL_NOTE.fullmatch(key)
        if match is None:
            continue
        new = id_map.get(int(match[1]))
        where = a.c.study_system_attribute_id == row_id
        if new is None:
            con.execute(a.delete().where(where))
        else:
            con.execute(a.update().where(where).values(key=f"tui_hpo.moving:{row_id}"))
            moved.append((row_id, f"dashboard:{new}:{match[2]}"))
    for row_id, key in moved:
        con.execute(a.update().where(a.c.study_system_attribute_id == row_id).values(key=key))


def _scratch(con: sa.Connection, key: str, value: str) -> sa.Table:
    """A temporary table of two integer columns, made on ``con`` (gone when it is dropped, or
    with a rollback). Named afresh each time: a pooled SQLite connection keeps its temporary
    tables, so a fixed name could meet one an earlier copy left there."""
    table = sa.Table(
        f"tui_hpo_copy_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column(key, sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(value, sa.Integer, nullable=False),
        prefixes=["TEMPORARY"],
    )
    table.create(con)
    return table


def _analyze(con: sa.Connection, table: sa.Table) -> None:
    """Row counts for PostgreSQL's planner, which never analyzes a temporary table by itself:
    without them it takes 100,000 rows for a few and joins them one index probe at a time."""
    if con.dialect.name == "postgresql":
        con.exec_driver_sql(f"ANALYZE {table.name}")


def _insert_select(
    con: sa.Connection,
    table: sa.Table,
    replaced: dict[str, Any],
    where: list[Any],
    join: tuple[sa.Table, Any] | None = None,
    order_by: Any = None,
) -> int:
    """``INSERT INTO table (cols) SELECT ... FROM table [JOIN ...] WHERE ...``, with the
    columns in ``replaced`` taken from the given expressions: the rows stay in the database."""
    cols = _data_columns(table)
    picked = [replaced[c] if c in replaced else table.c[c] for c in cols]
    query = sa.select(*picked).select_from(table)
    if join is not None:
        query = query.join(*join)
    if where:
        query = query.where(*where)
    if order_by is not None:
        query = query.order_by(order_by)
    done = con.execute(table.insert().from_select(cols, query))
    return max(done.rowcount, 0)


def _copy(
    src: sa.Connection,
    study_id: int,
    out: sa.Connection,
    name: str,
    chosen: set[int] | None,
    chunk: int,
) -> Copied:
    m = optuna_models()
    studies = m.StudyModel.__table__
    trials = m.TrialModel.__table__
    rows: dict[str, int] = {}
    new_id = int(out.execute(studies.insert().values(study_name=name)).inserted_primary_key[0])

    for model in (m.StudyDirectionModel, m.StudyUserAttributeModel, m.StudySystemAttributeModel):
        table = model.__table__
        cols = _data_columns(table)
        found = src.execute(
            sa.select(*[table.c[c] for c in cols]).where(table.c.study_id == study_id)
        ).all()
        at = cols.index("study_id")
        rows[table.name] = _write(out, table, cols, [_with(r, at, new_id) for r in found])

    # trials, in the source's number order, renumbered 0..n-1
    cols = _data_columns(trials)
    source_rows = src.execute(
        sa.select(trials.c.trial_id, *[trials.c[c] for c in cols])
        .where(trials.c.study_id == study_id)
        .order_by(trials.c.number, trials.c.trial_id)
    ).all()
    kept = [r for r in source_rows if chosen is None or r[0] in chosen]
    at_study, at_number = cols.index("study_id"), cols.index("number")
    new_trials = []
    for number, r in enumerate(kept):
        values = list(r[1:])
        values[at_study], values[at_number] = new_id, number
        new_trials.append(tuple(values))
    rows["trials"] = _write(out, trials, cols, new_trials)
    made = dict(
        out.execute(
            sa.select(trials.c.number, trials.c.trial_id).where(trials.c.study_id == new_id)
        ).all()
    )
    id_map = {int(r[0]): int(made[number]) for number, r in enumerate(kept)}
    _move_trial_notes(out, new_id, id_map)

    # everything hanging off the trials, a round of source trials at a time
    all_ids = sorted(int(r[0]) for r in source_rows)
    children = trial_tables()
    for table in children:
        rows.setdefault(table.name, 0)
    for part in _rounds(all_ids, chunk):
        wanted = [t for t in part if t in id_map]
        if not wanted:
            continue
        for table in children:
            cols = _data_columns(table)
            at = cols.index("trial_id")
            query = sa.select(*[table.c[c] for c in cols])
            if len(wanted) <= IN_LIST:
                query = query.where(table.c.trial_id.in_(wanted))
            else:
                query = query.where(table.c.trial_id.between(wanted[0], wanted[-1]))
            found = [_with(r, at, id_map[r[at]]) for r in src.execute(query) if r[at] in id_map]
            rows[table.name] += _write(out, table, cols, found)
    return Copied(new_id, len(kept), len(source_rows), rows)


def _rounds(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _data_columns(table: sa.Table) -> list[str]:
    """Every column but the surrogate key the database gives (the copy gets new ones); a key
    that is also data (tui-hpo's curves: trial_id and step) is kept."""
    keys = list(table.primary_key.columns)
    generated = keys[0].name if len(keys) == 1 and keys[0].autoincrement is not False else None
    return [c.name for c in table.c if c.name != generated]


def _with(row: Sequence[Any], at: int, value: Any) -> tuple[Any, ...]:
    values = list(row)
    values[at] = value
    return tuple(values)


def _write(
    con: sa.Connection, table: sa.Table, cols: list[str], rows: list[tuple[Any, ...]]
) -> int:
    """Insert ``rows`` (tuples in ``cols`` order): ``COPY`` on PostgreSQL through psycopg,
    several times faster there than ``executemany``; ``executemany`` elsewhere."""
    if not rows:
        return 0
    if con.dialect.name == "postgresql" and con.dialect.driver == "psycopg":
        from psycopg import sql

        cursor = con.connection.driver_connection.cursor()  # type: ignore[union-attr]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, cols))
        )
        enums = [i for i, c in enumerate(cols) if isinstance(table.c[c].type, sa.Enum)]
        with cursor.copy(statement) as copy:
            for row in rows:
                if enums:
                    row = tuple(  # noqa: PLW2901 - the row as COPY takes it
                        v.name if i in enums and isinstance(v, enum.Enum) else v
                        for i, v in enumerate(row)
                    )
                copy.write_row(row)
        return len(rows)
    con.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in rows])
    return len(rows)
