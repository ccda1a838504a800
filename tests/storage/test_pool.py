"""The pool of one (``storage.pool``): how many connections a process opens and keeps."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from tui_hpo.storage.pool import LeanPool, held, set_keep


class Counting:
    """A DBAPI connection factory that counts what is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = 0
        self.open_now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self) -> sqlite3.Connection:
        counter = self

        class Connection(sqlite3.Connection):
            def close(self) -> None:
                with counter._lock:
                    counter.open_now -= 1
                super().close()

        with self._lock:
            self.opened += 1
            self.open_now += 1
            self.peak = max(self.peak, self.open_now)
        return sqlite3.connect(
            str(self.path), factory=Connection, check_same_thread=False, timeout=30
        )


def engine_on(tmp_path: Path) -> tuple[sa.Engine, Counting]:
    counting = Counting(tmp_path / "db.sqlite")
    engine = sa.create_engine("sqlite://", creator=counting, poolclass=LeanPool)
    return engine, counting


def test_threads_share_one_connection_in_turn(tmp_path: Path) -> None:
    engine, counting = engine_on(tmp_path)

    def work() -> None:
        for _ in range(20):
            with engine.connect() as con:
                con.exec_driver_sql("SELECT 1")
                time.sleep(0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counting.peak == 1
    assert counting.opened == 1  # kept between uses
    assert counting.open_now == 1
    engine.dispose()
    assert counting.open_now == 0


def test_a_transaction_inside_another_gets_a_second_connection(tmp_path: Path) -> None:
    engine, counting = engine_on(tmp_path)
    with engine.connect() as outer:
        outer.exec_driver_sql("SELECT 1")
        with engine.connect() as inner:  # would wait for itself forever in a plain pool of 1
            inner.exec_driver_sql("SELECT 1")
            assert counting.open_now == 2
        assert counting.open_now == 1
    assert counting.open_now == 1  # the extra one is closed, the one is kept


def test_without_keep_nothing_is_held_between_uses(tmp_path: Path) -> None:
    engine, counting = engine_on(tmp_path)
    with engine.connect() as con:
        con.exec_driver_sql("SELECT 1")
    assert counting.open_now == 1
    set_keep(engine, False)  # a worker that pauses
    assert counting.open_now == 0
    for _ in range(3):
        with engine.connect() as con:
            con.exec_driver_sql("SELECT 1")
        assert counting.open_now == 0
    with held(engine):  # a supervisor's poll: one connection for the burst
        for _ in range(3):
            with engine.connect() as con:
                con.exec_driver_sql("SELECT 1")
            assert counting.open_now == 1
    assert counting.open_now == 0
    assert counting.opened == 5


def test_waiting_threads_wake_when_the_connection_is_closed_on_return(tmp_path: Path) -> None:
    engine, counting = engine_on(tmp_path)
    set_keep(engine, False)
    done: list[float] = []

    def work() -> None:
        with engine.connect() as con:
            con.exec_driver_sql("SELECT 1")
            time.sleep(0.05)
        done.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(done) == 5
    assert max(done) - started < 5
    assert counting.peak == 1
    assert counting.open_now == 0
