"""Exactly N trials across all workers (``control.budget``): taking trials under the study's
lock, on both storages, in process (the end-to-end counts are in tests/runtime)."""

from __future__ import annotations

import threading

import optuna
import pytest
import sqlalchemy as sa

from tui_hpo.control import budget, orders
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _engine(study: optuna.Study) -> sa.Engine:
    """The engine under Optuna's cache layer."""
    return study._storage._backend.engine


@pytest.fixture
def study(storage_url: str) -> optuna.Study:
    storage = open_storage(parse_url(storage_url))
    made = optuna.create_study(study_name="s", storage=storage)
    yield made
    storage.engine.dispose()


def _prepare(study: optuna.Study, n: int | None) -> None:
    orders.prepare_run(
        _engine(study),
        study._study_id,
        n_trials=n,
        timeout=None,
        seed=None,
        sampler=None,
        pruner=None,
    )


def _take(study: optuna.Study) -> tuple[int | None, orders.Orders]:
    return budget.take_trial(study, _engine(study))


def test_the_budget_is_met_exactly(study: optuna.Study) -> None:
    _prepare(study, 3)
    taken = [_take(study)[0] for _ in range(5)]
    assert taken[:3] == sorted(taken[:3]) and None not in taken[:3]
    assert taken[3:] == [None, None]
    assert budget.budget_left(_engine(study), study._study_id) == 0


def test_threads_racing_for_trials_overshoot_nothing(study: optuna.Study) -> None:
    _prepare(study, 20)
    got: list[int | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            trial_id, _ = _take(study)
            with lock:
                got.append(trial_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([g for g in got if g is not None]) == 20
    assert len(study.trials) == 20


def test_pause_and_stop_take_no_trial(study: optuna.Study) -> None:
    engine = _engine(study)
    _prepare(study, 10)
    orders.set_paused(engine, study._study_id, True)
    trial_id, seen = _take(study)
    assert trial_id is None and seen.paused
    orders.set_paused(engine, study._study_id, False)
    orders.request_stop(engine, study._study_id)
    trial_id, seen = _take(study)
    assert trial_id is None and seen.must_leave == "study told to stop"
    assert len(study.trials) == 0


def test_an_open_budget_never_runs_out(study: optuna.Study) -> None:
    _prepare(study, None)
    assert all(_take(study)[0] is not None for _ in range(5))
    assert budget.budget_left(_engine(study), study._study_id) is None


def test_queued_trials_come_first_and_widening_the_budget_adds_one(study: optuna.Study) -> None:
    _prepare(study, 1)
    study.enqueue_trial({"x": 1.0})
    budget.add_to_budget(_engine(study), study._study_id, 1)
    first, _ = _take(study)
    assert study._storage.get_trial(first).system_attrs.get("fixed_params") == {"x": 1.0}
    assert _take(study)[0] is not None
    assert _take(study)[0] is None


def test_a_second_launch_adds_to_the_budget(study: optuna.Study) -> None:
    _prepare(study, 2)
    for _ in range(2):
        _take(study)
    _prepare(study, 3)  # what `launch -n 3` on a study that ran 2 records
    assert budget.budget_left(_engine(study), study._study_id) == 3
