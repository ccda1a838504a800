"""Notes and tags in the app: ``t`` tags the selected trial, ``N`` edits its note; the trial pane
shows both, the filter finds tags, and the storage holds what optuna-dashboard reads."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna_dashboard import get_note, save_note
from textual.pilot import Pilot
from textual.widgets import Footer, Static, TextArea

from tests.app.pilot import (
    WIDE,
    NotingApp,
    open_study,
    plain_study,
    prompt,
    run,
    selected_settles,
    shown_numbers,
    table_of,
    text,
    trials_of,
    until,
    until_db,
)
from tui_hpo.app.screens.note import NoteScreen
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.storage import attrs

pytestmark = pytest.mark.e2e


def detail(app: NotingApp) -> str:
    return text(app.screen.query_one("#detail-text", Static))


def trial(url: str, number: int) -> optuna.Trial:
    study = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))
    return optuna.Trial(study, study.trials[number]._trial_id)


async def said(pilot: Pilot[Any], app: NotingApp, before: int, what: str) -> tuple[str, str]:
    await until(pilot, lambda: len(app.notes) > before, what)
    return app.notes[before]


async def open_note(pilot: Pilot[Any], app: NotingApp) -> TextArea:
    await pilot.press("N")
    await until(
        pilot,
        lambda: isinstance(app.screen, NoteScreen) and app.screen.loaded,
        "the note editor, loaded",
    )
    return app.screen.query_one(TextArea)


def test_tags_and_notes_from_the_keyboard(sqlite_url: str) -> None:
    plain_study(sqlite_url, "s")

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "s")
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "s", 3)
            assert app.screen.query_one(Footer).display
            shown = {a.binding.key for a in app.screen.active_bindings.values() if a.binding.show}
            assert {"t", "N"} <= shown  # in the footer (help and palette: tests/app/test_keys)
            assert table_of(app).go_to_number(1)
            await selected_settles(pilot, app, 1)

            # a tag: the notification, the storage, the pane, the table's filter
            before = len(app.notes)
            await prompt(pilot, "t", "bad")
            assert await said(pilot, app, before, "the tag") == (
                "s: trial 1 tagged bad (tags: bad)",
                "information",
            )
            assert trials_of(sqlite_url, "s")[1].user_attrs[attrs.TAGS] == ["bad"]
            await until(pilot, lambda: "tags    bad" in detail(app), "the tag in the pane")
            columns = table_of(app).columns
            assert [c.key for c in columns][-1:] == ["tags"]  # a column once a trial has a tag
            await prompt(pilot, "slash", "tag = bad")
            await until(pilot, lambda: shown_numbers(app) == [1], "the tagged trial alone")
            await prompt(pilot, "slash", "")
            await until(pilot, lambda: len(shown_numbers(app)) == 3, "every trial again")
            await selected_settles(pilot, app, 1)

            # bad tags: a notification each, nothing written
            for typed, words in [
                ("two words", "tag: tag 'two words' has a blank in it: a tag is one word"),
                ("a,b", "tag: tag 'a,b' has a comma in it: a tag is one word"),
                ("", "tag: a tag can't be empty"),
                ("-", "untag: a tag can't be empty"),
            ]:
                before = len(app.notes)
                await prompt(pilot, "t", typed)
                assert await said(pilot, app, before, f"the error for {typed!r}") == (
                    words,
                    "error",
                )
            assert trials_of(sqlite_url, "s")[1].user_attrs[attrs.TAGS] == ["bad"]

            # a note, typed into the editor and saved with ctrl+s
            area = await open_note(pilot, app)
            assert area.text == ""
            await pilot.press(*"first line", "enter", *"second")
            before = len(app.notes)
            await pilot.press("ctrl+s")
            assert await said(pilot, app, before, "the save") == (
                "s: note of trial 1 saved (2 lines, 17 characters)",
                "information",
            )
            assert isinstance(app.screen, StudyScreen)
            assert get_note(trial(sqlite_url, 1)) == "first line\nsecond"
            await until(pilot, lambda: "note    first line" in detail(app), "the note in the pane")

            # optuna-dashboard's edit shows when the editor opens again; escape keeps it
            await until_db(
                pilot, lambda: save_note(trial(sqlite_url, 1), "from the dashboard") or True, "save"
            )
            area = await open_note(pilot, app)
            assert area.text == "from the dashboard"
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, StudyScreen), "the editor closed")
            assert get_note(trial(sqlite_url, 1)) == "from the dashboard"

            # untag with -name
            before = len(app.notes)
            await prompt(pilot, "t", "-bad")
            assert await said(pilot, app, before, "the untag") == (
                "s: trial 1 untagged bad (tags: none)",
                "information",
            )
            assert trials_of(sqlite_url, "s")[1].user_attrs[attrs.TAGS] == []
            await until(pilot, lambda: "tags " not in detail(app), "no tags in the pane")

    run(scenario())
