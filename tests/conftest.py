"""Shared fixtures: one storage fixture runs a test on SQLite and on PostgreSQL alike.

PostgreSQL: a server on 127.0.0.1:5432 with trust auth for user ``postgres`` (the development
and CI machines have one; override with TUI_HPO_TEST_PG=postgresql+psycopg://user@host:port).
Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("TUI_HPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
ROOT = Path(__file__).resolve().parent.parent


def _admin_dsn() -> str:
    return PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import psycopg

    name = f"tui_hpo_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_admin_dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_SERVER} is needed for this test: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tui-hpo.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest) -> str:
    """The same test on both storages the project supports."""
    return request.getfixturevalue(
        {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean current folder with no storage variables leaking in from the shell."""
    monkeypatch.chdir(tmp_path)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "TUI_HPO_DEMO_SLEEP", "TUI_HPO_GPU_COUNT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``tui-hpo ARGS`` as a real subprocess, the way a user runs it."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "TUI_HPO_DEMO_SLEEP")
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tui_hpo", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def kill_worker(pid: int | None) -> None:
    """SIGKILL a tui-hpo worker's process group, only if ``pid`` is still a tui-hpo process:
    a pid from an exited worker's row may belong to anything by now (a PostgreSQL backend,
    whose group is the whole server)."""
    import signal

    if not pid:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    # " -m tui_hpo ", the tui-hpo script or a supervisor forked by launch (which names itself
    # "tui-hpo worker ..."), and never a PostgreSQL backend, whose command line names the test
    # database ("postgres: postgres tui_hpo_test_...") and leads its own group
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
