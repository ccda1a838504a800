"""A connection pool of one, for a database server that many tui-hpo processes share.

SQLAlchemy's default pool lets each thread of a process open its own connection and keeps up to
five: a worker (trial loop, trial heartbeat, worker-row beat) held three, and 40 workers ran a
PostgreSQL with the default ``max_connections=100`` out of slots. Here a process opens at most
one connection, which its threads take in turn (each storage call is one short transaction), and
keeps it between uses only while ``keep`` is set: a worker clears it while it is paused or idle,
so a waiting worker holds nothing, and a supervisor, which only polls, never keeps one.

A thread that already holds the connection and asks for another (a transaction opened inside
another) gets a second one rather than waiting for itself forever.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import ConnectionPoolEntry, Pool

WAIT_S = 600.0
"""How long a thread waits for the connection another thread of this process is using: far
beyond any storage call, so reaching it means a call that never returns."""


class LeanPool(Pool):
    def __init__(self, creator: Any, *, keep: bool = True, timeout: float = WAIT_S, **kw: Any):
        super().__init__(creator, **kw)
        self.keep = keep
        self._timeout = timeout
        self._cond = threading.Condition()
        self._idle: ConnectionPoolEntry | None = None
        self._holder: int | None = None
        self._extra: set[int] = set()
        """Records handed out beyond the one (nested transactions), closed when returned."""

    def _do_get(self) -> ConnectionPoolEntry:
        me = threading.get_ident()
        with self._cond:
            nested = self._holder == me
        if nested:
            record = self._create_connection()
            self._extra.add(id(record))
            return record
        with self._cond:
            deadline = time.monotonic() + self._timeout
            while self._holder is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise sa.exc.TimeoutError(
                        f"no storage connection free after {self._timeout:.0f}s"
                    )
                self._cond.wait(left)
            self._holder = me
            record, self._idle = self._idle, None
        if record is not None:
            return record
        try:
            return self._create_connection()
        except BaseException:
            self._hand_on()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if id(record) in self._extra:
            self._extra.discard(id(record))
            record.close()
            return
        with self._cond:
            if self.keep and self._idle is None:
                self._idle, record = record, None  # type: ignore[assignment]
            self._holder = None
            self._cond.notify()
        if record is not None:
            record.close()

    def _hand_on(self) -> None:
        with self._cond:
            self._holder = None
            self._cond.notify()

    def release(self) -> None:
        """Close the kept connection, if no thread is using it."""
        with self._cond:
            record, self._idle = self._idle, None
        if record is not None:
            record.close()

    def dispose(self) -> None:
        self.release()

    def recreate(self) -> LeanPool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            keep=self.keep,
            timeout=self._timeout,
            recycle=self._recycle,
            echo=self.echo,
            pre_ping=self._pre_ping,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def status(self) -> str:
        return f"LeanPool keep={self.keep} in_use={self._holder is not None}"


@contextlib.contextmanager
def held(engine: sa.Engine) -> Iterator[None]:
    """One connection for a burst of short calls (a supervisor's poll), closed after it when
    the engine keeps none between uses."""
    pool = engine.pool
    if not isinstance(pool, LeanPool) or pool.keep:
        yield
        return
    pool.keep = True
    try:
        yield
    finally:
        pool.keep = False
        pool.release()


def set_keep(engine: sa.Engine, keep: bool) -> None:
    """Whether ``engine`` keeps its connection between uses (a no-op on other pools): off while
    a worker waits, so that waiting costs the server nothing."""
    pool = engine.pool
    if isinstance(pool, LeanPool):
        pool.keep = keep
        if not keep:
            pool.release()
