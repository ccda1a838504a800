"""Tags on trials: short words (``bad``, ``keep``, ``baseline``) to mark trials and filter them
(``tag = bad`` in the app's filter language).

A trial's tags are its user attr ``tui_hpo.tags`` (``attrs.TAGS``): a sorted list of distinct
strings, so the ``optuna`` CLI, optuna-dashboard and ``trial.user_attrs`` show them too. Once a
trial has had tags, removing the last one leaves ``[]``.

Optuna refuses attrs on a finished trial, and most trials are tagged after they finished, so
the attr is written straight into Optuna's table. Each change deletes the row and inserts a
new one instead of updating it in place: the row's id then grows with every change, and the
app's reader (``data.frames``) finds changed tags by reading only rows newer than the last
it saw, instead of every trial's tags on every poll.

A tag is one word: no blank, no comma (``status``, the filter language and the table show tag
lists joined by commas), no control character, not starting with ``-`` (the app's prompt and
the CLI read ``-name`` as a removal or an option), at most ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlalchemy as sa

from tui_hpo.errors import UserError
from tui_hpo.storage import attrs

MAX_LENGTH = 64
"""Longest tag, in characters."""


def check_tag(tag: str) -> str:
    """The tag as given, or one line saying why it can't be one."""
    if not tag:
        raise UserError("a tag can't be empty")
    shown = tag if len(tag) <= 40 else tag[:40] + "..."
    shown = shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown
    if any(ch.isspace() for ch in tag):
        raise UserError(f"tag {shown!r} has a blank in it: a tag is one word")
    if "," in tag:
        raise UserError(f"tag {shown!r} has a comma in it: a tag is one word")
    if not tag.isprintable():
        raise UserError(f"tag {shown!r} has a control character in it")
    if tag.startswith("-"):
        raise UserError(f"tag {shown!r} starts with '-': a tag starts with a letter or digit")
    if len(tag) > MAX_LENGTH:
        raise UserError(f"tag {shown!r} is longer than {MAX_LENGTH} characters")
    return tag


def check_tags(tags: Iterable[str]) -> list[str]:
    """Each tag checked, duplicates dropped, in their order; at least one."""
    checked = list(dict.fromkeys(check_tag(t) for t in tags))
    if not checked:
        raise UserError("give at least one tag")
    return checked


def trial_id_of(engine: sa.Engine, study_id: int, number: int) -> int:
    """The id of trial ``number`` of the study, or the one line every front end shows."""
    from optuna.storages._rdb import models

    t = models.TrialModel.__table__
    with engine.connect() as con:
        found = con.execute(
            sa.select(t.c.trial_id).where(t.c.study_id == study_id, t.c.number == number)
        ).scalar()
    if found is None:
        raise UserError(f"trial {number} does not exist in this study")
    return int(found)


def decode(value_json: str | None) -> list[str]:
    """A stored ``tui_hpo.tags`` value as a sorted list of strings; anything else that someone
    stored under that key (a string, a number) is read as well as it can be."""
    if value_json is None:
        return []
    value = json.loads(value_json)
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        value = [value]
    return sorted({str(v).strip() for v in value if str(v).strip()})


def read_tags(con: sa.Connection, trial_id: int) -> list[str]:
    from optuna.storages._rdb import models

    ua = models.TrialUserAttributeModel.__table__
    value = con.execute(
        sa.select(ua.c.value_json).where(ua.c.trial_id == trial_id, ua.c.key == attrs.TAGS)
    ).scalar()
    return decode(value)


def change_tags(
    engine: sa.Engine, trial_id: int, *, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Add and remove tags of one trial, in one transaction; returns (tags before, after).
    The row is written again (a new id, see above) only when the tags changed. Taggers of one
    study take turns (``study_transaction``): two first taggings at once, which both find no
    row to lock, add up instead of one failing on the other's unique (trial, key)."""
    from optuna.storages._rdb import models

    from tui_hpo.storage.locks import study_transaction

    ua = models.TrialUserAttributeModel.__table__
    trials = models.TrialModel.__table__
    with engine.connect() as con:
        study_id = con.execute(
            sa.select(trials.c.study_id).where(trials.c.trial_id == trial_id)
        ).scalar_one()
    with study_transaction(engine, study_id) as con:
        old_json = con.execute(
            sa.select(ua.c.value_json).where(ua.c.trial_id == trial_id, ua.c.key == attrs.TAGS)
        ).scalar()
        before = decode(old_json)
        after = sorted((set(before) | set(add)) - set(remove))
        if after != before or (old_json is not None and json.loads(old_json) != before):
            con.execute(ua.delete().where(ua.c.trial_id == trial_id, ua.c.key == attrs.TAGS))
            con.execute(
                ua.insert().values(trial_id=trial_id, key=attrs.TAGS, value_json=json.dumps(after))
            )
    return before, after
