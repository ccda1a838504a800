"""Notes on a study or a trial, kept exactly where and how optuna-dashboard keeps them.

optuna-dashboard (``optuna_dashboard/_note.py``, ``save_note``/``get_note``) stores a note as
study *system* attrs, so that a trial's note can still change after the trial finished (Optuna
refuses attrs on a finished trial, but never on a study):

- ``dashboard:note_ver`` (study) or ``dashboard:{trial_id}:note_ver`` (trial): a version, an
  int that goes up by one with each save (the dashboard's editor refuses a save whose version
  is not the stored one plus one, so two editors don't overwrite each other unseen);
- ``dashboard:note_str:{i}`` or ``dashboard:{trial_id}:note_str:{i}``: the body cut into
  pieces of ``CHUNK`` (2045) characters, ``i`` from 0; a save that needs fewer pieces than
  before sets the pieces left over to ``""``, which the reader joins in as nothing.

A trial's note is keyed by its ``trial_id``, not its number. We write the same keys with the
same values (JSON, as Optuna's storage writes any attr), so a note saved here shows in the
dashboard and one saved there shows here. We write straight into Optuna's table, in one
transaction per save (savers take turns), so no reader ever sees half of an edit (the
dashboard writes each key in a transaction of its own).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

CHUNK = 2045
"""Characters per piece: optuna-dashboard's ``SYSTEM_ATTR_MAX_LENGTH``."""


def version_key(trial_id: int | None) -> str:
    """The key of the note's version (``note_ver_key`` in optuna-dashboard)."""
    return "dashboard:note_ver" if trial_id is None else f"dashboard:{trial_id}:note_ver"


def piece_prefix(trial_id: int | None) -> str:
    """What the keys of the note's pieces start with (``note_str_key_prefix``)."""
    return "dashboard:note_str:" if trial_id is None else f"dashboard:{trial_id}:note_str:"


@dataclass(frozen=True)
class Note:
    """A note as stored: its text and its version (0: never saved)."""

    body: str
    version: int

    def first_lines(self, n: int = 1, width: int = 200) -> list[str]:
        """The first ``n`` non-blank lines, each cut to ``width`` characters: what a status
        line or the trial pane shows of a note that may run to pages."""
        lines = [line.strip() for line in self.body.splitlines() if line.strip()]
        return [line if len(line) <= width else line[: width - 1] + "…" for line in lines[:n]]


def split(body: str, trial_id: int | None) -> dict[str, str]:
    """The pieces of ``body`` by key, as optuna-dashboard's ``split_body`` cuts them."""
    prefix = piece_prefix(trial_id)
    return {
        f"{prefix}{i}": body[i * CHUNK : (i + 1) * CHUNK]
        for i in range(math.ceil(len(body) / CHUNK))
    }


def _table() -> sa.Table:
    from optuna.storages._rdb import models

    return models.StudySystemAttributeModel.__table__


def _keys_of(table: sa.Table, trial_id: int | None) -> Any:
    """The condition for the rows of one note (its version and its pieces). ``autoescape``:
    ``_`` in ``note_str`` would be a LIKE wildcard."""
    return sa.or_(
        table.c.key == version_key(trial_id),
        table.c.key.startswith(piece_prefix(trial_id), autoescape=True),
    )


def _from_rows(rows: dict[str, str], trial_id: int | None) -> Note:
    """A note from its rows (key -> value_json), read as ``get_note_from_system_attrs`` reads
    it: no version key, no note; else the pieces 0, 1, ... joined. A gap in the pieces (which
    the dashboard never leaves) reads as an empty piece here instead of failing."""
    ver = rows.get(version_key(trial_id))
    if ver is None:
        return Note("", 0)
    prefix = piece_prefix(trial_id)
    pieces = [k for k in rows if k.startswith(prefix)]
    body = "".join(str(json.loads(rows.get(f"{prefix}{i}", '""'))) for i in range(len(pieces)))
    return Note(body, int(json.loads(ver)))


def read_note(con: sa.Connection, study_id: int, trial_id: int | None = None) -> Note:
    """The note of the study (``trial_id`` None) or of one of its trials."""
    table = _table()
    rows = dict(
        con.execute(
            sa.select(table.c.key, table.c.value_json).where(
                table.c.study_id == study_id, _keys_of(table, trial_id)
            )
        ).all()
    )
    return _from_rows(rows, trial_id)


class StaleNote(Exception):
    """The note's version is not the one its editor read: someone saved it meanwhile."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"note version {found}, expected {expected}")
        self.expected = expected
        self.found = found


def write_note(
    engine: sa.Engine,
    study_id: int,
    trial_id: int | None,
    body: str,
    expected_version: int | None = None,
) -> Note:
    """Save ``body`` as the note of the study (``trial_id`` None) or of one of its trials, as
    optuna-dashboard's ``save_note`` does: the version goes up by one, the pieces are written,
    pieces left over from a longer note become ``""``. An empty body clears the note (as the
    dashboard's editor does). Returns the note as saved.

    ``expected_version``: the version the text was read at; any other stored version raises
    ``StaleNote`` and writes nothing. Savers at once take turns (``study_transaction``), so
    each save is one version, the first ones included."""
    from tui_hpo.storage.locks import study_transaction

    table = _table()
    pieces = split(body, trial_id)
    prefix = piece_prefix(trial_id)
    with study_transaction(engine, study_id) as con:
        rows = dict(
            con.execute(
                sa.select(table.c.key, table.c.value_json).where(
                    table.c.study_id == study_id, _keys_of(table, trial_id)
                )
            ).all()
        )
        stored = _from_rows(rows, trial_id).version
        if expected_version is not None and stored != expected_version:
            raise StaleNote(expected_version, stored)
        version = stored + 1
        wanted = {version_key(trial_id): json.dumps(version)}
        wanted.update({key: json.dumps(text) for key, text in pieces.items()})
        for key in rows:
            if key.startswith(prefix) and key not in pieces:
                wanted[key] = json.dumps("")
        for key, value in wanted.items():
            if key not in rows:
                con.execute(table.insert().values(study_id=study_id, key=key, value_json=value))
            elif rows[key] != value:
                con.execute(
                    table.update()
                    .where(table.c.study_id == study_id, table.c.key == key)
                    .values(value_json=value)
                )
    return Note(body, version)


def study_note_lines(con: sa.Connection, study_id: int, n: int = 1) -> list[str]:
    """The first ``n`` lines of the study's note (none: ``[]``), for ``status``."""
    return read_note(con, study_id).first_lines(n)
