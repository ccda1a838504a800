"""Fixtures every layer's tests share: one storage fixture runs a test on SQLite and on
PostgreSQL alike, a clean working folder, and ``cli`` to run ``tui-hpo`` as a user does.

PostgreSQL: a server on 127.0.0.1:5432 with trust auth for user ``postgres`` (``make test``
brings one up; override with TUI_HPO_TEST_PG=postgresql+psycopg://user@host:port). Each test
gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PG_SERVER, Cli, OwnPostgres, PgBouncer, admin_dsn, run_cli, system_tool


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import psycopg

    name = f"tui_hpo_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_SERVER} is needed for this test: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as admin:
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


@pytest.fixture
def cli() -> Cli:
    """``cli(*args, env=..., cwd=..., timeout=...)``: ``tui-hpo ARGS`` as a real subprocess,
    the way a user runs it, without the storage variables of the shell that runs the tests."""
    return run_cli


OWN_MAX_CONNECTIONS = 13
"""``own_postgres``'s slots: 3 reserved for the superuser (the test's own queries), so tui-hpo
gets 10, fewer than a crowded test's workers. A test marked
``@pytest.mark.parametrize("own_postgres", [N], indirect=True)`` gets N instead."""


@pytest.fixture
def own_postgres(request: pytest.FixtureRequest) -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the test's own with few connection slots (``OwnPostgres``),
    stopped and deleted afterwards: crowding it disturbs no other test."""
    max_connections = getattr(request, "param", OWN_MAX_CONNECTIONS)
    try:
        server = OwnPostgres(max_connections=max_connections, reserved=3)
    except RuntimeError as exc:  # the server binaries are part of the test set-up
        pytest.fail(f"a PostgreSQL server of the test's own is needed: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def pgbouncer(own_postgres: OwnPostgres) -> Iterator[PgBouncer]:
    """Debian's pgbouncer in transaction-pooling mode (4 server connections) in front of
    ``own_postgres``; skipped only where the pgbouncer binary is not installed
    (``tests/setup-machine.sh`` installs it)."""
    if not Path(system_tool("pgbouncer")).is_absolute():
        pytest.skip("pgbouncer is not installed (tests/setup-machine.sh installs it)")
    bouncer = PgBouncer(own_postgres, pool_size=4)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.remove()
