"""Which trials of a study a filter picks, outside the app: for ``copy-study --filter``.

The same filter language and the same columnar frame as the app's trials pane
(``data.filters`` over ``data.frames``), so a filter typed at ``/`` in the app picks exactly
the trials a copy with that filter keeps: check it on screen, then copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from tui_hpo.data import filters
from tui_hpo.data.frames import StudyReader
from tui_hpo.data.summaries import directions


@dataclass(frozen=True)
class Selection:
    """The matching trials' ids (in trial number order) out of ``total`` trials."""

    trial_ids: tuple[int, ...]
    total: int


def check(text: str) -> filters.Filter:
    """The parsed filter, or its one-line mistake, before any storage is read (param names
    are checked against the study in ``select``)."""
    return filters.parse(text)


def select(engine: sa.Engine, study_id: int, text: str) -> Selection:
    """The trials of the study that ``text`` matches; FilterError for a filter that doesn't
    fit the study (a param it doesn't have, a choice that isn't there)."""
    check(text)
    with engine.connect() as con:
        dirs = directions(con, study_id)
    frame = StudyReader(engine, study_id, dirs).poll()
    parsed = filters.parse(text, fields=filters.study_fields(frame.params, frame.metric_names))
    mask = parsed.mask(frame)
    return Selection(tuple(int(t) for t in np.asarray(frame.trial_id)[mask]), len(frame))
