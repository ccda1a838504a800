"""Helpers the tests share: running the CLI as a user does, waiting for conditions, reading
what the storage and the process table say, and cleaning up worker processes.

Tests get the CLI through the ``cli`` fixture (tests/conftest.py), which is ``run_cli``;
helpers that run commands on a test's behalf call ``run_cli`` themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

PG_SERVER = os.environ.get("TUI_HPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
"""The test PostgreSQL server (``make test`` brings one up on 127.0.0.1:5432)."""

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
"""What the ``cli`` fixture is: ``run_cli``."""


def admin_dsn() -> str:
    """libpq's form of the test server's URL, on its ``postgres`` database."""
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


STORAGE_VARS = ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "TUI_HPO_DEMO_SLEEP")
"""What a command run by a test must not inherit from the shell that runs the tests."""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the storage variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in STORAGE_VARS}
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``tui-hpo ARGS`` as a real subprocess, the way a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tui_hpo", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
    )


def wait_for(what: Callable[[], T], timeout: float, message: str, every: float = 0.2) -> T:
    """``what()`` once it is truthy; an AssertionError naming ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(every)


def alive(pid: int | None) -> bool:
    """A process that still exists and is not a zombie."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def system_tool(name: str) -> str:
    """A system program by name, found on PATH or in the sbin folders a plain user's PATH
    leaves out (runuser, sshd); the name itself when it is nowhere."""
    extra = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra) or name


def kill_worker(pid: int | None) -> None:
    """SIGKILL a tui-hpo worker's process group, only if ``pid`` is still a tui-hpo process:
    a pid from an exited worker's row may belong to anything by now (a PostgreSQL backend,
    whose group is the whole server)."""
    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    # " -m tui_hpo ", the tui-hpo script or a process that names itself "tui-hpo ..." (a
    # forked supervisor, a command that masked its URL), and never a PostgreSQL backend,
    # whose command line names the test database and leads its own group
    if cmdline.startswith("postgres") or not (
        " -m tui_hpo " in f" {cmdline} "
        or "bin/tui-hpo " in f"{cmdline} "
        or cmdline.startswith("tui-hpo ")
    ):
        return
    try:
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def load_trials(url: str, study: str) -> list[Any]:
    """Every trial of the study, by number, read with Optuna itself."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        return sorted(trials, key=lambda t: t.number)
    finally:
        storage.engine.dispose()


def worker_rows(url: str) -> list[dict[str, Any]]:
    """tui-hpo's worker registry, read with plain SQL."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            rows = con.execute(sa.text("SELECT * FROM tui_hpo_workers ORDER BY worker_id"))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


class Background:
    """A ``tui-hpo`` command started with Popen, its stdout and stderr going to files."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.out = cwd / f"{name}.stdout"
        self.err = cwd / f"{name}.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tui_hpo", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_started(self, timeout: float = 60) -> None:
        """Until a launch says its workers are started (the study exists by then)."""

        def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"launch exited early:\n{self.stderr()}")
            return "worker(s)" in self.stderr()

        wait_for(started, timeout, "the launch to start its workers")

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)
