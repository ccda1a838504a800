"""Curation in the app: the studies screen copies (``C``), deletes (``D``), annotates (``N``) and
compares (``space``, ``v``) studies, and the study view exports what its filter shows (``E``).
Each test checks what really happened in the storage or on disk, read back with Optuna,
optuna-dashboard or the csv module, not only what the app said."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, TextArea

from tests.app.pilot import (
    SMALL,
    T0,
    WIDE,
    NotingApp,
    engine_of,
    form_error,
    open_study,
    plain_study,
    prompt,
    run,
    shown_numbers,
    submit_form,
    text,
    trials_of,
    type_into,
    until,
    until_db,
)
from tui_hpo.app.screens.compare import CompareScreen
from tui_hpo.app.screens.forms import CopyStudyForm, DeleteStudyScreen, PromptScreen
from tui_hpo.app.screens.note import NoteScreen
from tui_hpo.app.screens.studies import MARK, StudiesScreen
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.app.widgets.compare_plot import BestCurvesPlot
from tui_hpo.data import summaries as reads

pytestmark = pytest.mark.e2e

MIXED = [
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.COMPLETE,
    TrialState.FAIL,
    TrialState.COMPLETE,
]


def study_names(url: str) -> set[str]:
    engine = engine_of(url)
    try:
        with engine.connect() as con:
            return set(reads.study_ids(con))
    finally:
        engine.dispose()


def studies_table(app: NotingApp) -> DataTable[Any]:
    return app.screen.query_one("#studies", DataTable)


async def listed(pilot: Pilot[Any], app: NotingApp, names: set[str]) -> DataTable[Any]:
    """Wait for the studies screen to list exactly ``names``."""

    def shown() -> bool:
        if not isinstance(app.screen, StudiesScreen):
            return False
        return set(app.screen.rows) == names and studies_table(app).row_count == len(names)

    await until(pilot, shown, f"the studies {sorted(names)}")
    return studies_table(app)


async def highlight(pilot: Pilot[Any], app: NotingApp, name: str) -> None:
    table = studies_table(app)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()


async def said(pilot: Pilot[Any], app: NotingApp, before: int, what: str) -> tuple[str, str]:
    await until(pilot, lambda: len(app.notes) > before, what)
    return app.notes[before]


# delete --------------------------------------------------------------------------------------


def test_D_deletes_a_study_once_its_name_is_typed_and_escape_keeps_it(sqlite_url: str) -> None:
    plain_study(sqlite_url, "keep")
    plain_study(sqlite_url, "doomed", MIXED)

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await listed(pilot, app, {"keep", "doomed"})
            await highlight(pilot, app, "doomed")

            # escape: nothing deleted
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DeleteStudyScreen), "the modal")
            title = text(app.screen.query_one(".title"))
            assert title == "Delete study 'doomed' and its 5 trial(s) for good?"
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "modal closed")
            assert study_names(sqlite_url) == {"keep", "doomed"}

            # Enter on an empty or wrong name: the modal stays, nothing deleted
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DeleteStudyScreen), "the modal")
            form = app.screen
            await pilot.press("enter")
            await until(pilot, lambda: "type doomed exactly" in form_error(app), "the refusal")
            await type_into(pilot, "doome")
            await pilot.press("enter")
            await until(pilot, lambda: form.checked == form.generation, "the check")
            assert app.screen is form
            assert study_names(sqlite_url) == {"keep", "doomed"}

            # the name typed: deleted for good, the list follows
            before = len(app.notes)
            await pilot.press("d", "enter")
            message, severity = await said(pilot, app, before, "the delete")
            assert severity == "information", message
            assert message.startswith("doomed: deleted, with its 5 trial(s)"), message
            assert study_names(sqlite_url) == {"keep"}
            await listed(pilot, app, {"keep"})
            assert len(trials_of(sqlite_url, "keep")) == 3

            # a study of that name made again is read afresh, not through the old id
            await until_db(pilot, lambda: plain_study(sqlite_url, "doomed") and True, "remade")
            await listed(pilot, app, {"keep", "doomed"})
            await highlight(pilot, app, "doomed")
            await pilot.press("enter")
            await open_study(pilot, app, "doomed", 3)

    run(scenario())


def test_D_refuses_a_study_with_live_workers(sqlite_url: str) -> None:
    """The refusal ``tui-hpo delete-study`` gives (without --force): no modal, nothing deleted.
    The live worker is a row in the registry (as ``tui-hpo worker`` writes it), not a process."""
    from tui_hpo.control import registry

    plain_study(sqlite_url, "busy")
    engine = engine_of(sqlite_url)
    try:
        with engine.connect() as con:
            study_id = reads.study_ids(con)["busy"]
        registry.register(engine, study_id, gpu=None, log_path=None)  # heartbeat: now
    finally:
        engine.dispose()

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await listed(pilot, app, {"busy"})
            await until(pilot, lambda: app.screen.rows["busy"].live_workers == 1, "the worker")
            before = len(app.notes)
            await pilot.press("D")
            message, severity = await said(pilot, app, before, "the refusal")
            assert severity == "error"
            assert "has 1 live worker(s): stop them first" in message, message
            assert isinstance(app.screen, StudiesScreen)
            assert study_names(sqlite_url) == {"busy"}

    run(scenario())


# copy ----------------------------------------------------------------------------------------


def test_C_copies_the_trials_a_filter_matches(sqlite_url: str) -> None:
    source = plain_study(sqlite_url, "src", MIXED)
    wanted = [t for t in source.trials if t.state == TrialState.COMPLETE and t.params["x"] > -7]
    assert [t.number for t in wanted] == [2, 4]

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await listed(pilot, app, {"src"})

            # a filter that can't be read: the form stays open and says why
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, CopyStudyForm), "the copy form")
            form = app.screen
            assert form.query_one("#copy-name", Input).value == "src-copy"
            form.query_one("#copy-filter", Input).focus()
            await pilot.pause()
            await type_into(pilot, "x >")
            await submit_form(pilot, "copy-filter")
            await until(pilot, lambda: form_error(app).startswith("filter:"), "the filter error")
            assert app.screen is form

            # a filter that matches nothing: the verb's refusal, nothing made
            await type_into(pilot, "x > 100")
            before = len(app.notes)
            await submit_form(pilot, "copy-filter")
            message, severity = await said(pilot, app, before, "the refusal")
            assert severity == "error"
            assert "matches none of the 5 trials" in message, message
            assert study_names(sqlite_url) == {"src"}

            # the real copy: exactly the matching trials, renumbered
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, CopyStudyForm), "the copy form")
            app.screen.query_one("#copy-name", Input).value = "src-good"
            app.screen.query_one("#copy-filter", Input).value = "state == COMPLETE and x > -7"
            before = len(app.notes)
            await submit_form(pilot, "copy-filter")
            message, severity = await said(pilot, app, before, "the copy")
            assert severity == "information", message
            assert message.startswith("src: copied 2 of 5 trials to 'src-good'"), message
            await listed(pilot, app, {"src", "src-good"})

        storage = optuna.storages.RDBStorage(sqlite_url)
        copy = optuna.load_study(study_name="src-good", storage=storage).trials
        storage.engine.dispose()
        assert [t.number for t in copy] == [0, 1]
        assert [t.params for t in copy] == [t.params for t in wanted]
        assert [t.value for t in copy] == [t.value for t in wanted]
        assert all(t.state == TrialState.COMPLETE for t in copy)

    run(scenario())


# study note ----------------------------------------------------------------------------------


def test_N_edits_the_study_note_that_optuna_dashboard_reads(sqlite_url: str) -> None:
    plain_study(sqlite_url, "s")
    plain_study(sqlite_url, "other")

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await listed(pilot, app, {"s", "other"})
            await highlight(pilot, app, "s")
            await pilot.press("N")
            await until(
                pilot,
                lambda: isinstance(app.screen, NoteScreen) and app.screen.loaded,
                "the note editor, loaded",
            )
            area = app.screen.query_one(TextArea)
            assert area.text == ""
            assert "Note of study s" in text(app.screen.query_one(".title"))
            await pilot.press(*"baseline", "enter", *"lr sweep")
            before = len(app.notes)
            await pilot.press("ctrl+s")
            assert await said(pilot, app, before, "the save") == (
                "s: study note saved (2 lines, 17 characters)",
                "information",
            )
            assert isinstance(app.screen, StudiesScreen)

        storage = optuna.storages.RDBStorage(sqlite_url)
        try:
            assert get_note(optuna.load_study(study_name="s", storage=storage)) == (
                "baseline\nlr sweep"
            )
            assert get_note(optuna.load_study(study_name="other", storage=storage)) == ""
        finally:
            storage.engine.dispose()

    run(scenario())


# export --------------------------------------------------------------------------------------


def test_E_exports_the_filtered_view(sqlite_url: str, tmp_path: Path) -> None:
    plain_study(sqlite_url, "s", MIXED)
    out = tmp_path / "view.csv"

    async def scenario() -> None:
        app = NotingApp(sqlite_url, "s")
        async with app.run_test(size=WIDE) as pilot:
            await open_study(pilot, app, "s", 5)
            await prompt(pilot, "slash", "state != PRUNED and x < -2")
            await until(pilot, lambda: shown_numbers(app) == [0, 2, 3], "the filtered view")

            # the prompt offers STUDY.csv; a name of another kind is refused, nothing written
            await pilot.press("E")
            await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the prompt")
            assert app.focused is not None and getattr(app.focused, "value", "") == "s.csv"
            await type_into(pilot, str(tmp_path / "view.txt"))
            before = len(app.notes)
            await pilot.press("enter")
            message, severity = await said(pilot, app, before, "the refusal")
            assert severity == "error"
            assert message.startswith("export: can't tell the format of"), message
            assert not (tmp_path / "view.txt").exists()

            before = len(app.notes)
            await prompt(pilot, "E", str(out))
            assert await said(pilot, app, before, "the export") == (
                f"wrote 3 trials to {out}",
                "information",
            )
            shown = sorted(shown_numbers(app))

            before = len(app.notes)
            await prompt(pilot, "E", str(tmp_path / "view.json"))
            assert (await said(pilot, app, before, "the json"))[1] == "information"
            assert isinstance(app.screen, StudyScreen)

            # H hides the failed trial: the file is the view, so it leaves it out too
            await pilot.press("H")
            await until(pilot, lambda: sorted(shown_numbers(app)) == [0, 2], "hidden")
            before = len(app.notes)
            await prompt(pilot, "E", str(tmp_path / "hidden.csv"))
            assert (await said(pilot, app, before, "the hidden export"))[0].startswith(
                "wrote 2 trials"
            )

        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["number"]) for r in rows] == shown == [0, 2, 3]
        assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL"]
        records = json.loads((tmp_path / "view.json").read_text())
        assert [r["number"] for r in records] == shown
        with (tmp_path / "hidden.csv").open(newline="") as f:
            assert [r["state"] for r in csv.DictReader(f)] == ["COMPLETE", "COMPLETE"]

    run(scenario())


# compare -------------------------------------------------------------------------------------


def _timed_study(url: str, name: str, direction: str, values: list[float | None]) -> None:
    """A study of fixed trials: a value is COMPLETE, None is PRUNED."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    for i, value in enumerate(values):
        trial = create_trial(
            state=TrialState.COMPLETE if value is not None else TrialState.PRUNED,
            params={"x": float(i)},
            distributions={"x": FloatDistribution(0, 100)},
            value=value,
        )
        trial.datetime_start = T0
        trial.datetime_complete = T0
        study.add_trial(trial)
    storage.engine.dispose()


def test_space_marks_studies_and_v_compares_them(sqlite_url: str) -> None:
    _timed_study(sqlite_url, "loss", "minimize", [3.0, None, 2.0, 2.5, 1.0])
    _timed_study(sqlite_url, "acc", "maximize", [0.5, 0.7, None, None, 0.6, 0.9])
    _timed_study(sqlite_url, "third", "minimize", [1.0])

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=WIDE) as pilot:
            table = await listed(pilot, app, {"loss", "acc", "third"})

            # fewer than two marked: a notification, no screen
            await highlight(pilot, app, "loss")
            await pilot.press("space")
            assert str(table.get_row("loss")[0]) == f"{MARK}loss"
            before = len(app.notes)
            await pilot.press("v")
            assert (await said(pilot, app, before, "the hint")) == (
                "mark two or more studies with space",
                "warning",
            )

            # space again unmarks; marks survive the list's refreshes
            await highlight(pilot, app, "third")
            await pilot.press("space", "space")
            assert str(table.get_row("third")[0]) == "third"
            await highlight(pilot, app, "acc")
            await pilot.press("space")
            assert app.screen.marked == ["loss", "acc"]
            await pilot.pause(2.5)  # a poll of the list
            assert str(studies_table(app).get_row("acc")[0]) == f"{MARK}acc"

            await pilot.press("v")
            await until(
                pilot,
                lambda: isinstance(app.screen, CompareScreen) and bool(app.screen.frames),
                "the compare screen, loaded",
            )
            counts = app.screen.query_one("#compare-counts", DataTable)
            rows = [[str(c) for c in counts.get_row(k)] for k in ("loss", "acc")]
            #        study   dir    complete pruned fail running waiting best
            assert rows == [
                ["loss", "min", "4", "1", "0", "0", "0", "1 #4"],
                ["acc", "max", "4", "2", "0", "0", "0", "0.9 #5"],
            ]
            plot = str(app.screen.query_one(BestCurvesPlot).render())
            assert "loss ↓" in plot and "acc ↑" in plot
            assert "loss · acc" in text(app.screen.query_one("#compare-title"))

            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "back")

    run(scenario())


def test_help_and_palette_list_the_curation_keys(sqlite_url: str) -> None:
    from textual.command import CommandList, CommandPalette

    from tui_hpo.app.app import HelpScreen

    plain_study(sqlite_url, "s")

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await listed(pilot, app, {"s"})
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
            help_text = app.screen.text  # type: ignore[attr-defined]
            for binding in StudiesScreen.BINDINGS:
                assert f"| `{app.get_key_display(binding)}` |" in help_text, binding  # type: ignore[union-attr]
            assert "Delete the study for good (type its name)" in help_text
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "help closed")

            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
            commands = app.screen.query_one(CommandList)

            def prompts() -> set[str]:
                return {
                    str(commands.get_option_at_index(i).prompt).split("\n")[0]
                    for i in range(commands.option_count)
                }

            wanted = {"Copy (C)", "Delete (D)", "Note (N)", "Mark (space)", "Compare (v)"}
            await until(pilot, lambda: wanted <= prompts(), "the curation actions")
            await pilot.press("escape")

    run(scenario())
