"""SVG snapshots of what a new user sees first: the studies screen of an empty storage (how
to start a study) and the new-study form over it, at 80x24 and 160x48.

Same conventions as ``test_snapshots.py``: a fresh storage in the test's tmp folder under a
relative URL (the screens show it). An empty storage has no clock-dependent text. Update with
``pytest tests/app/test_form_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tests.app.test_snapshots import SIZES, URL, _until
from tui_hpo.app.app import TuiHpoApp
from tui_hpo.app.screens.forms import NewStudyForm
from tui_hpo.app.screens.studies import StudiesScreen
from tui_hpo.storage.urls import parse_url

pytestmark = pytest.mark.e2e


@pytest.fixture
def empty_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    for var in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "0")  # the GPUs check reads no NVML
    return URL


async def _hint_shown(pilot: Pilot[Any]) -> None:
    app = pilot.app

    def shown() -> bool:
        screen = app.screen
        return isinstance(screen, StudiesScreen) and screen.query_one("#empty-hint", Static).display

    await _until(pilot, shown, "the empty storage's hint")


@pytest.mark.parametrize("size", SIZES)
def test_empty_studies_screen(snap_compare: Any, empty_storage: str, size: str) -> None:
    app = TuiHpoApp(parse_url(empty_storage))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_hint_shown)


@pytest.mark.parametrize("size", SIZES)
def test_new_study_form(snap_compare: Any, empty_storage: str, size: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _hint_shown(pilot)
        await pilot.press("n")
        app = pilot.app

        def checked() -> bool:
            form = app.screen
            return (
                isinstance(form, NewStudyForm)
                and form.help_text() != ""
                and form.checked == form.generation > 0
            )

        await _until(pilot, checked, "the form, checked")

    app = TuiHpoApp(parse_url(empty_storage))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
