"""Riding out a storage that stops answering (``storage.retry``): which errors are worth
another try, and the backoff around them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from tui_hpo.storage import retry


def _db_error(cls: type[sa.exc.DBAPIError], *, invalidated: bool = False) -> sa.exc.DBAPIError:
    return cls("SELECT 1", {}, Exception("boom"), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_db_error(sa.exc.OperationalError), True),  # server gone, database locked
        (_db_error(sa.exc.InterfaceError), True),
        (sa.exc.PendingRollbackError("rolled back mid-way"), True),
        (_db_error(sa.exc.DBAPIError, invalidated=True), True),
        (_db_error(sa.exc.DBAPIError), False),
        (_db_error(sa.exc.IntegrityError), False),  # a rejected row: the same call fails again
        (_db_error(sa.exc.DataError), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_errors_are_transient(error: BaseException, transient: bool) -> None:
    assert retry.transient(error) is transient


def test_optuna_wrapped_errors_are_judged_by_their_cause() -> None:
    def wrapped(cause: BaseException) -> optuna.exceptions.StorageInternalError:
        try:
            raise cause
        except BaseException as exc:
            try:
                raise optuna.exceptions.StorageInternalError("wrapped") from exc
            except optuna.exceptions.StorageInternalError as outer:
                return outer

    assert retry.transient(wrapped(_db_error(sa.exc.OperationalError)))
    assert not retry.transient(wrapped(_db_error(sa.exc.IntegrityError)))


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", waits.append)
    return waits


def test_a_transient_error_is_retried_with_growing_waits(no_sleep: list[float]) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 6:
            raise _db_error(sa.exc.OperationalError)
        return "answer"

    assert retry.retrying(flaky, "a test call") == "answer"
    assert len(calls) == 6
    assert no_sleep == [0.5, 1.0, 2.0, 4.0, 8.0]  # doubling from FIRST_WAIT_S
    assert max(no_sleep) <= retry.MAX_WAIT_S


def test_waits_stop_growing_at_the_cap(no_sleep: list[float]) -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 10:
            raise _db_error(sa.exc.OperationalError)
        return 1

    retry.retrying(flaky, "a test call")
    assert no_sleep[-3:] == [retry.MAX_WAIT_S] * 3


def test_other_errors_pass_through_at_once(no_sleep: list[float]) -> None:
    def broken() -> None:
        raise _db_error(sa.exc.IntegrityError)

    with pytest.raises(sa.exc.IntegrityError):
        retry.retrying(broken, "a test call")
    assert no_sleep == []


def test_it_gives_up_after_the_deadline(no_sleep: list[float]) -> None:
    def down() -> None:
        raise _db_error(sa.exc.OperationalError)

    with pytest.raises(sa.exc.OperationalError):
        retry.retrying(down, "a test call", give_up_after=0.0)


def test_make_resilient_wraps_optuna_storage_calls(
    tmp_path: object, no_sleep: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = optuna.storages.InMemoryStorage()
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    failures = [_db_error(sa.exc.OperationalError)] * 2
    real = storage.create_new_trial

    def create_new_trial(*args: object, **kwargs: object) -> int:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "create_new_trial", create_new_trial)
    retry.make_resilient(storage)
    assert storage.create_new_trial(study_id) == 0
    assert len(no_sleep) == 2


def test_a_suggest_rides_out_an_outage_through_optunas_cache_layer(
    tmp_path: Path, no_sleep: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Study puts ``_CachedStorage`` in front of an RDBStorage, which calls the backend's
    private ``_set_trial_param``: a suggest during a PostgreSQL restart failed the trial with
    StorageInternalError until that name was wrapped too."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    study = optuna.create_study(storage=storage, study_name="s")
    failures = [_db_error(sa.exc.OperationalError)] * 2
    real = storage._set_trial_param

    def set_trial_param(*args: object, **kwargs: object) -> bool:
        if failures:
            try:
                raise failures.pop()
            except sa.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("commit failed") from exc
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "_set_trial_param", set_trial_param)
    retry.make_resilient(storage)
    trial = study.ask()
    assert trial.suggest_float("x", 0.0, 1.0) == storage.get_trial(trial._trial_id).params["x"]
    assert len(no_sleep) == 2


def test_every_backend_call_of_optunas_cache_layer_is_wrapped(tmp_path: Path) -> None:
    """What ``_CachedStorage`` asks of the RDBStorage, read from Optuna's own source, so an
    Optuna upgrade that routes a call through a new name fails here rather than in a search."""
    import inspect
    import re

    from optuna.storages import _cached_storage

    called = set(re.findall(r"_backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    study_level = {
        "create_new_study",
        "delete_study",
        "set_study_user_attr",
        "set_study_system_attr",
        "get_study_user_attrs",
        "get_all_studies",
        "get_heartbeat_interval",
        "get_heartbeat_stale_trial_callback",
    }  # made by the launch, not by workers in a trial, or no storage round trip
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    retry.make_resilient(storage)
    unwrapped = sorted(
        name for name in called - study_level if not hasattr(getattr(storage, name), "__wrapped__")
    )
    assert not unwrapped
