"""Riding out a storage that stops answering for a while (a PostgreSQL restart, a locked SQLite).

Searches run for hours; a database restart must not fail the trials that happen to touch it.
Every storage call a worker makes retries transient errors with backoff: Optuna's own calls
(create a trial, set a param, report, tell, heartbeat) through ``make_resilient``, tui-hpo's own
through ``retrying``. Errors that are not about reaching the database (a finished trial, a
constraint) pass through at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from tui_hpo.errors import one_line

log = logging.getLogger(__name__)

T = TypeVar("T")

GIVE_UP_AFTER_S = 3600.0
"""A storage away for an hour is not a restart; the worker stops waiting and fails."""

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 10.0


def transient(exc: BaseException) -> bool:
    """Whether the error says the database could not be reached or was busy, so trying the
    same call again later can succeed."""
    import optuna

    if isinstance(exc, optuna.exceptions.StorageInternalError):
        # Optuna wraps whatever broke its session; only a rejected row is not worth a retry
        cause = exc.__cause__ or exc.__context__
        return not isinstance(cause, (sa.exc.IntegrityError, sa.exc.DataError))
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    if isinstance(exc, sa.exc.PendingRollbackError):  # a connection the outage broke mid-way
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        return bool(exc.connection_invalidated)
    return False


def retrying(func: Callable[[], T], what: str, *, give_up_after: float = GIVE_UP_AFTER_S) -> T:
    """``func()``, called again with backoff while it fails for a transient reason."""
    wait = FIRST_WAIT_S
    deadline = time.monotonic() + give_up_after
    warned = False
    while True:
        try:
            result = func()
        except Exception as exc:
            if not transient(exc) or time.monotonic() > deadline:
                raise
            if not warned:
                log.warning(
                    "storage unreachable during %s (%s); retrying", what, one_line(exc, limit=200)
                )
                warned = True
            time.sleep(wait)
            wait = min(MAX_WAIT_S, wait * 2)
            continue
        if warned:
            log.info("storage answers again; %s done", what)
        return result


# Optuna's storage calls a worker makes; each is one transaction, so calling it again after a
# failure that rolled it back is safe. Optuna's cache layer (``_CachedStorage``, which every
# Study puts in front of an RDBStorage) calls some of them by their private names: a suggest
# goes through ``_set_trial_param``, so those are wrapped too.
_METHODS = (
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_n_trials",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "get_best_trial",
    "_get_best_trial_id",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def make_resilient(storage: Any) -> None:
    """Wrap the RDB storage's calls in ``retrying`` (instance attributes: Optuna's cache layer
    calls them through the instance, so every path gets the retry)."""
    for name in _METHODS:
        method = getattr(storage, name, None)
        if method is None:
            continue
        setattr(storage, name, _wrap(method, name))


def _wrap(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        return retrying(lambda: method(*args, **kwargs), name)

    return call
