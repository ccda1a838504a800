"""Optuna's tables in a new PostgreSQL database: created on one connection, exactly as Optuna
would create them (``engines._create_optuna_schema``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import psycopg
import pytest
import sqlalchemy as sa

from tests.support import PG_SERVER, admin_dsn
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.pool import LeanPool
from tui_hpo.storage.urls import parse_url


@pytest.fixture
def plain_optuna_url() -> Iterator[str]:
    """A second new database, whose tables plain Optuna creates: what ours must equal."""
    name = f"tui_hpo_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def optuna_schema(url: str) -> dict[str, Any]:
    """Optuna's part of a database: columns, indexes, constraints and the version rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    ours = "tui_hpo%"
    try:
        with engine.connect() as con:
            return {
                "columns": con.execute(
                    sa.text(
                        "SELECT table_name, column_name, data_type, is_nullable, column_default"
                        " FROM information_schema.columns WHERE table_schema = 'public'"
                        " AND table_name NOT LIKE :ours ORDER BY 1, 2"
                    ),
                    {"ours": ours},
                ).all(),
                "indexes": con.execute(
                    sa.text(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                        " AND tablename NOT LIKE :ours ORDER BY 1"
                    ),
                    {"ours": ours},
                ).all(),
                "constraints": con.execute(
                    sa.text(
                        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                        " WHERE connamespace = 'public'::regnamespace"
                        " AND conrelid::regclass::text NOT LIKE :ours ORDER BY 1"
                    ),
                    {"ours": ours},
                ).all(),
                "alembic": con.execute(sa.text("SELECT version_num FROM alembic_version")).all(),
                "version_info": con.execute(sa.text("SELECT * FROM version_info")).all(),
            }
    finally:
        engine.dispose()


def test_a_new_database_gets_optunas_tables_without_a_second_connection(
    postgres_url: str, plain_optuna_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested: list[str] = []
    do_get = LeanPool._do_get

    def watching(self: LeanPool) -> Any:
        if self._holder == threading.get_ident():
            nested.append("a transaction asked for a second connection")
        return do_get(self)

    monkeypatch.setattr(LeanPool, "_do_get", watching)
    storage = open_storage(parse_url(postgres_url))
    storage.engine.dispose()
    assert nested == []  # Optuna's own first open nests once (its _init_alembic)

    optuna.storages.RDBStorage(plain_optuna_url).engine.dispose()
    assert optuna_schema(postgres_url) == optuna_schema(plain_optuna_url)
    assert len(optuna_schema(postgres_url)["alembic"]) == 1

    # a second open leaves it as it is, and plain Optuna uses it without complaint
    open_storage(parse_url(postgres_url)).engine.dispose()
    assert optuna_schema(postgres_url) == optuna_schema(plain_optuna_url)
    study = optuna.create_study(study_name="plain", storage=postgres_url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="plain", storage=postgres_url).trials) == 2
