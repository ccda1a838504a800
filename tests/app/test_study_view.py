"""What the study view shows beyond the keys: the objectives by name, a search that is over,
and a trials table that shows whole columns only (Textual's pilot, plain-Optuna studies)."""

from __future__ import annotations

import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tests.app.pilot import (
    SMALL,
    WIDE,
    NotingApp,
    header,
    open_study,
    plain_study,
    prompt,
    run,
    shown_numbers,
    table_of,
    text,
    until,
)
from tui_hpo.app.widgets.trials_table import HIDDEN_MARK, PINNED

pytestmark = pytest.mark.e2e


def _named(url: str) -> None:
    """Two objectives with names, as ``launch --metric-names error,n_params`` records."""
    study = plain_study(url, "named", directions=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["error", "n_params"])


def test_metric_names_head_the_table_label_the_plot_and_filter(sqlite_url: str) -> None:
    _named(sqlite_url)

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "named")
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "named", 8)
            titles = [c.title for c in table_of(app).columns]
            assert titles[2:4] == ["error", "n_params"]
            pareto = app.screen.query_one("#pareto")
            title = "Pareto front: error and n_params"
            await until(pilot, lambda: title in text(pareto), "the plot title")
            detail = app.screen.query_one("#detail-text")
            await until(pilot, lambda: "values error=0" in text(detail), "named values")
            await prompt(pilot, "slash", "error < 0.3")
            await until(pilot, lambda: shown_numbers(app) == [0, 1, 2], "the filtered rows")
            await prompt(pilot, "slash", "n_params > 100")  # no trial has that many
            await until(pilot, lambda: shown_numbers(app) == [], "no row")

    run(scenario())


def test_a_search_that_is_over_stops_its_clock(sqlite_url: str) -> None:
    plain_study(sqlite_url, "done", [TrialState.COMPLETE] * 3)  # 20 s each, 30 s apart

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "done")
        async with app.run_test(size=SMALL) as pilot:
            await open_study(pilot, app, "done", 3)
            await until(pilot, lambda: "finished" in header(app), "finished")
            line = header(app).splitlines()[1]
            assert "elapsed" not in line
            # first start 12:00:00, last end 12:01:20: 80 s, 3 trials, 2.25 a minute
            assert "finished 2025-01-01 12:01 UTC after 80s" in line
            assert "2.2 trials/min overall" in line

    run(scenario())


def test_a_search_stopped_short_of_its_budget_says_so(sqlite_url: str) -> None:
    from tui_hpo.control import orders
    from tui_hpo.storage.engines import open_storage
    from tui_hpo.storage.urls import parse_url

    study = plain_study(sqlite_url, "short", [TrialState.COMPLETE] * 3)
    storage = open_storage(parse_url(sqlite_url))
    orders.prepare_run(
        storage.engine,
        study._study_id,
        n_trials=10,
        timeout=None,
        seed=None,
        sampler=None,
        pruner=None,
    )
    storage.engine.dispose()

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "short")
        async with app.run_test(size=SMALL) as pilot:
            await open_study(pilot, app, "short", 3)
            await until(pilot, lambda: "stopped 2025-01-01 12:01" in header(app), "stopped")

    run(scenario())


def _wide(url: str, n_params: int = 12) -> None:
    study = optuna.create_study(study_name="wide", storage=url)
    dists = {f"param_{i}": FloatDistribution(1e-5, 1e3, log=True) for i in range(n_params)}
    for t in range(5):
        params = {name: 10 ** (-4.321 + 0.5 * ((t + i) % 14)) for i, name in enumerate(dists)}
        study.add_trial(create_trial(params=params, distributions=dists, value=1.0 / (t + 1)))


def _lines(app: NotingApp) -> list[str]:
    table = table_of(app)
    return [str(table.render_line(y).text) for y in range(3)]


def test_the_table_shows_whole_columns_and_counts_the_hidden(sqlite_url: str) -> None:
    _wide(sqlite_url)

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "wide")
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "wide", 5)
            table = table_of(app)
            shown = table.shown()
            assert shown.left == 0 and shown.right > 0
            head, first_row, _ = _lines(app)
            assert head.rstrip().endswith(f"{shown.right}▶")
            used = sum(c.width + 1 for c in shown.columns)
            assert used + HIDDEN_MARK <= table.scrollable_content_region.width
            # every value on screen is whole: the cell holds the number as written
            frame = table.frame
            assert frame is not None
            for col in shown.columns[len(PINNED) :]:
                if col.key.startswith("param:"):
                    assert frame.params[col.key[6:]].display(0) in first_row

            before = [c.key for c in shown.columns]
            await pilot.press("right")
            await until(pilot, lambda: table.shown().left == 1, "one column to the left hidden")
            after = [c.key for c in table.shown().columns]
            assert after[: len(PINNED)] == before[: len(PINNED)]  # # and state stay
            assert after[len(PINNED)] == before[len(PINNED) + 1]
            assert _lines(app)[0].split()[2] == "◀1"
            for _ in range(40):
                await pilot.press("right")
            assert table.shown().right == 0  # no further than the last column
            assert table.shown().columns[-1].key == "sampler"
            for _ in range(40):
                await pilot.press("left")
            assert table.shown().left == 0

    run(scenario())


def test_a_narrow_study_needs_no_marks(sqlite_url: str) -> None:
    _wide(sqlite_url, n_params=1)

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "wide")
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "wide", 5)
            shown = table_of(app).shown()
            assert (shown.left, shown.right) == (0, 0)
            assert "▶" not in _lines(app)[0] and "◀" not in _lines(app)[0]

    run(scenario())
