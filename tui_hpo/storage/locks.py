"""The study's lock on SQLite, which every process of the study on this machine honours.

The trial budget (``control.budget``) counts trials and creates the next one under it. On a
database server that lock is the study's row, locked inside the one transaction that takes the
trial (no session-level advisory lock: it would need a connection of its own for the whole
block, and pgbouncer's transaction pooling breaks it). SQLite, one machine by nature, takes
``flock`` on a side file beside the database (``tui-hpo.db.tui-hpo-lock``), opened once per
process and kept open.

Why a side file, and why kept open: SQLite's own locks are POSIX byte-range locks, and POSIX
drops every such lock a process holds on a file as soon as the process closes *any* descriptor
of that file. Opening and closing the database file itself around each lock would silently
release the locks this process's SQLite connections hold (the pitfall that once broke a WAL
header read here). The side file is never opened by SQLite, and keeping its descriptor for the
life of the process saves an open and a close per trial.

A process that dies while holding the lock releases it with its descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

import sqlalchemy as sa

SQLITE_LOCK_SUFFIX = ".tui-hpo-lock"

_side_files: dict[str, int] = {}
"""Side-file path -> descriptor, opened once per process (see the module's docstring)."""

_guard = threading.Lock()
"""flock excludes processes, not threads sharing one descriptor: threads queue here first."""


def _forget_inherited() -> None:
    """A forked child opens its own: flock belongs to the open file, which a fork shares, so a
    child using its parent's descriptor would get the lock while the parent holds it."""
    for fd in _side_files.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _side_files.clear()


os.register_at_fork(after_in_child=_forget_inherited)


def sqlite_lock_path(database: str) -> str:
    return database + SQLITE_LOCK_SUFFIX


def _side_file(path: str) -> int:
    fd = _side_files.get(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        _side_files[path] = fd
    return fd


@contextlib.contextmanager
def study_lock(engine: sa.Engine, study_id: int) -> Iterator[None]:
    """Hold the study's lock for the duration of the block."""
    if engine.dialect.name != "sqlite":
        raise ValueError("study_lock is for SQLite; a server locks the study's row instead")
    database = engine.url.database
    assert database
    with _guard:
        fd = _side_file(sqlite_lock_path(os.path.abspath(database)))
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def study_transaction(engine: sa.Engine, study_id: int) -> Iterator[sa.Connection]:
    """One transaction that no other writer of the study's shared rows (notes, tags) runs
    beside: on a server the study's row is locked first (the lock Optuna's own
    ``create_new_trial`` takes), on SQLite the side file is, since SQLite reads outside any
    transaction until the first write and so can't make a read-then-write atomic by itself.
    Two savers that both find no row yet to lock wait for each other here, instead of one
    failing on the other's unique key."""
    if engine.dialect.name == "sqlite":
        with study_lock(engine, study_id), engine.begin() as con:
            yield con
        return
    from optuna.storages._rdb import models

    studies = models.StudyModel.__table__
    with engine.begin() as con:
        con.execute(
            sa.select(studies.c.study_id).where(studies.c.study_id == study_id).with_for_update()
        )
        yield con
