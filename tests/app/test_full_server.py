"""The app on a PostgreSQL server with no free connection slot: it says so in the banner it
shows for an unreachable storage, keeps answering keys, and recovers by itself once a slot is
free. (Workers and commands wait for a slot instead: tests/storage/test_crowded_server.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import psycopg
import pytest
from textual.widgets import DataTable, Static

from tests.app.pilot import SMALL, NotingApp, run, text, until
from tests.support import OwnPostgres
from tui_hpo.storage import engines

pytestmark = pytest.mark.e2e


@pytest.fixture
def as_the_app() -> Iterator[None]:
    """What ``tui-hpo ui`` sets for its process: connections named and handled as the app's."""
    engines.act_as("app")
    try:
        yield
    finally:
        engines.act_as("command")


def test_a_full_server_shows_in_the_banner_until_a_slot_frees(
    own_postgres: OwnPostgres, as_the_app: None
) -> None:
    storage = optuna.storages.RDBStorage(own_postgres.url)
    optuna.create_study(study_name="s", storage=storage)
    storage.engine.dispose()
    dsn = own_postgres.url.replace("postgresql+psycopg://", "postgresql://")
    crowd = [psycopg.connect(dsn) for _ in range(own_postgres.slots)]

    async def scenario() -> None:
        app = NotingApp(own_postgres.url)
        async with app.run_test(size=SMALL) as pilot:
            banner = app.screen.query_one("#banner", Static)
            await until(pilot, lambda: banner.display, "the banner", 30)
            shown = text(banner)
            assert "storage unreachable" in shown
            assert "too many clients" in shown or "slots are reserved" in shown, shown
            for con in crowd:
                con.close()
            table = app.screen.query_one("#studies", DataTable)
            await until(pilot, lambda: not banner.display, "the banner to go", 30)
            await until(pilot, lambda: table.row_count == 1, "the study listed", 30)

    try:
        run(scenario())
    finally:
        for con in crowd:
            con.close()
