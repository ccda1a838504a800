"""The failed-trials-in-a-row rule (``control.failure_streak``), on trials written straight
into a storage."""

from __future__ import annotations

import datetime as dt

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tui_hpo.control.failure_streak import failure_streak
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def _engine(study: optuna.Study) -> sa.Engine:
    """The engine under Optuna's cache layer."""
    return study._storage._backend.engine


@pytest.fixture
def study(storage_url: str) -> optuna.Study:
    storage = open_storage(parse_url(storage_url))
    yield optuna.create_study(study_name="s", storage=storage)
    storage.engine.dispose()


def _add(study: optuna.Study, states: str, start: int = 0) -> None:
    """One trial per letter (C complete, F fail, P pruned), ending one second apart."""
    for i, letter in enumerate(states):
        state = {"C": TrialState.COMPLETE, "F": TrialState.FAIL, "P": TrialState.PRUNED}[letter]
        trial = optuna.trial.create_trial(
            state=state,
            value=1.0 if state == TrialState.COMPLETE else None,
            user_attrs={"tui_hpo.fail_reason": f"ValueError: bad {start + i}"}
            if state == TrialState.FAIL
            else {},
        )
        trial.datetime_start = T0 + dt.timedelta(seconds=start + i)
        trial.datetime_complete = T0 + dt.timedelta(seconds=start + i, milliseconds=500)
        study.add_trial(trial)


def test_n_failures_in_a_row_end_it_and_name_the_last_reason(study: optuna.Study) -> None:
    engine = _engine(study)
    _add(study, "CFFF")
    assert failure_streak(engine, study._study_id, 4) is None  # a COMPLETE in the last 4
    streak = failure_streak(engine, study._study_id, 3)
    assert streak is not None and streak.count == 3
    assert streak.last_reason == "ValueError: bad 3"
    assert "3 failed trials in a row" in streak.message()
    assert "ValueError: bad 3" in streak.message()


def test_a_pruned_trial_breaks_the_streak(study: optuna.Study) -> None:
    _add(study, "FFPFF")
    assert failure_streak(_engine(study), study._study_id, 3) is None


def test_only_trials_started_since_count(study: optuna.Study) -> None:
    """A new launch on a study whose earlier run failed starts with a clean slate."""
    _add(study, "FFFFF")
    _add(study, "FF", start=100)
    since = T0 + dt.timedelta(seconds=100)
    assert failure_streak(_engine(study), study._study_id, 3, since=since) is None
    assert failure_streak(_engine(study), study._study_id, 2, since=since) is not None


def test_zero_turns_it_off(study: optuna.Study) -> None:
    _add(study, "FFFF")
    assert failure_streak(_engine(study), study._study_id, 0) is None
