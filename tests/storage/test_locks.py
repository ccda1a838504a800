"""The study lock (``storage.locks``): it excludes other processes, and taking it never drops
the locks SQLite itself holds in this process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from tui_hpo.storage.locks import sqlite_lock_path, study_lock


def _engine(db: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{db}", poolclass=sa.pool.NullPool)


def _try_write(db: Path) -> str:
    """What another process gets when it asks SQLite for the write lock."""
    code = textwrap.dedent(
        f"""
        import sqlite3
        con = sqlite3.connect({str(db)!r}, timeout=0.2, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            print("got the write lock")
        except sqlite3.OperationalError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def test_taking_the_lock_keeps_sqlites_own_locks(tmp_path: Path) -> None:
    """POSIX drops every lock a process holds on a file when it closes any descriptor of that
    file: a study lock that opened and closed the database file itself would release the
    write lock this process's SQLite connection holds, and another writer would get in."""
    db = tmp_path / "tui-hpo.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    assert _try_write(db) == "database is locked"
    for _ in range(3):
        with study_lock(_engine(db), 1):
            pass
    assert _try_write(db) == "database is locked"  # still ours
    writer.execute("COMMIT")
    assert _try_write(db) == "got the write lock"
    assert Path(sqlite_lock_path(str(db))).exists()


HOLDER = """
import sys, time
import sqlalchemy as sa
from tui_hpo.storage.locks import study_lock
engine = sa.create_engine(f"sqlite:///{sys.argv[1]}")
with study_lock(engine, 1):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_another_process_waits_for_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "tui-hpo.db"
    sqlite3.connect(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with study_lock(_engine(db), 1):
            waited = time.monotonic() - started
        assert waited > 0.5, f"took the lock after {waited:.2f}s while another process held it"
    finally:
        holder.wait(timeout=30)


def test_a_forked_child_does_not_share_its_parents_lock(tmp_path: Path) -> None:
    """flock belongs to the open file, which a fork shares: a child that used its parent's
    descriptor would get the lock the parent holds. It opens its own instead."""
    db = tmp_path / "tui-hpo.db"
    sqlite3.connect(db).close()
    engine = _engine(db)
    with study_lock(engine, 1):  # the parent opens its descriptor...
        pass
    read, write = os.pipe()
    with study_lock(engine, 1):  # ...and holds the lock while the child tries
        pid = os.fork()
        if pid == 0:  # the child: may it take the lock within 0.5 s?
            os.close(read)
            import fcntl

            from tui_hpo.storage import locks

            fd = locks._side_file(sqlite_lock_path(str(db)))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(write, b"took it")
            except BlockingIOError:
                os.write(write, b"blocked")
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        answer = os.read(read, 100)
        os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"blocked"
