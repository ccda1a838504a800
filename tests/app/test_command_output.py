"""A command trial's output, live in the app: selecting a running trial of a program makes the
log pane follow that trial's own output file as the program prints."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Log

from tests.app.pilot import WIDE, NotingApp, Workers, open_study, run, until
from tui_hpo.app.widgets.log_pane import LogPane

pytestmark = pytest.mark.e2e

PRINTER = """\
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
for epoch in range(1, 400):
    print(f"epoch {epoch} loss: {a.x / epoch:.5f}", flush=True)
    time.sleep(0.25)
"""


def test_the_log_pane_follows_a_running_command_trials_output(
    sqlite_url: str, tmp_path: Path, workers: Callable[[str], Workers]
) -> None:
    (tmp_path / "printer.py").write_text(PRINTER)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        textwrap.dedent(
            """\
            program: printer.py
            method: random
            metric: {name: loss, goal: minimize}
            parameters:
              x: {distribution: uniform, min: 1, max: 2}
            """
        )
    )
    workers(sqlite_url).launch(str(sweep), "live", "--pruner", "none", n_trials=1)
    app = NotingApp(sqlite_url, "live")

    def log_text() -> str:
        return "\n".join(str(line) for line in app.screen.query_one("#log-view", Log).lines)

    def epochs_shown() -> int:
        return sum(1 for line in log_text().splitlines() if line.startswith("epoch "))

    async def scenario() -> None:
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "live")
            pane = app.screen.query_one(LogPane)
            await until(
                pilot, lambda: pane.border_title == "6 output of trial 0", "the trial's output"
            )
            await until(pilot, lambda: epochs_shown() >= 2, "the program's first lines")
            first = epochs_shown()
            await until(pilot, lambda: epochs_shown() >= first + 3, "lines printed since")
            assert "loss:" in log_text()
            detail = str(app.screen.query_one("#detail-text").render())
            assert "output" in detail and "trial-0" in detail

    run(scenario())


KEEPER = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
for epoch in range(1, 4):
    print(f"epoch {epoch} loss: {a.x / epoch:.5f} acc: {0.25 * epoch:.2f}", flush=True)
"""


def test_the_trial_pane_shows_a_finished_trials_kept_metrics_and_exit_code(
    sqlite_url: str, tmp_path: Path, workers: Callable[[str], Workers]
) -> None:
    """A sweep's ``keep`` metrics end up as user attrs, which the trial pane shows beside the
    program's exit code and output file."""
    (tmp_path / "keeper.py").write_text(KEEPER)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        textwrap.dedent(
            """\
            program: keeper.py
            method: random
            metric: {name: loss, goal: minimize}
            keep: [acc]
            parameters:
              x: {distribution: uniform, min: 1, max: 2}
            """
        )
    )
    workers(sqlite_url).launch(str(sweep), "kept", "--pruner", "none", n_trials=1)
    app = NotingApp(sqlite_url, "kept")

    def detail() -> str:
        return str(app.screen.query_one("#detail-text").render())

    async def scenario() -> None:
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "kept")
            await until(pilot, lambda: '"acc": 0.75' in detail(), "the kept metric")
            text = detail()
            assert "exit code 0" in text and "trial-0.log" in text, text

    run(scenario())
