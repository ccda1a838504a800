"""The forms and the first screen as a new user meets them, at 80x24.

Every form fits the smallest terminal the app supports with its buttons on screen and a label
beside each field; the field in focus has a line of help; a bad value gets the very words the
CLI prints for it and the form refuses to submit. The studies screen of an empty storage says
how to start a study, and stops saying it once one exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widgets import Button, Input, Label, Select, Static

from tests.app.pilot import SMALL, NotingApp, engine_of, plain_study, run, text, until
from tui_hpo.app.screens import forms
from tui_hpo.app.screens.studies import StudiesScreen
from tui_hpo.control.specs import Spec
from tui_hpo.data import summaries as reads
from tui_hpo.errors import UserError
from tui_hpo.machine.gpus import parse_gpus
from tui_hpo.machine.slurm import parse_args as parse_slurm_args
from tui_hpo.runtime.objectives import parse_directions, parse_spec
from tui_hpo.runtime.remote import parse_hosts
from tui_hpo.steering import check_setting

pytestmark = pytest.mark.e2e


def said(call: Callable[[], object]) -> str:
    """The message of the UserError ``call`` raises: what the CLI prints after ``error:``."""
    with pytest.raises(UserError) as caught:
        call()
    return caught.value.message


async def settled(pilot: Pilot[Any]) -> None:
    """Wait until the form's latest check has come back from its thread."""
    form = pilot.app.screen
    assert isinstance(form, forms._Form)
    await pilot.pause()
    await until(pilot, lambda: form.help_text() != "", "the help line")
    await until(pilot, lambda: form.checked == form.generation, "the form's checks")


def assert_fits(app: NotingApp) -> None:
    """Buttons and every shown field's label inside the screen and not covered; each field
    on one row."""
    form = app.screen
    assert isinstance(form, forms._Form)
    screen = Region(0, 0, *SMALL)
    buttons = list(form.query(Button))
    assert {b.id for b in buttons} == {"ok", "cancel"}
    for button in buttons:
        region = button.region
        assert region.area > 0 and screen.contains_region(region), (button.id, region)
        widget, _ = form.get_widget_at(region.x + 1, region.y)
        assert widget is button, (button.id, widget)
    for field in form.fields():
        row = form.query_one(f"#row-{field.key}")
        if not form.shown(field.key):
            assert not row.display
            continue
        label = row.query_one(Label)
        assert str(label.render()).strip() == field.label
        assert screen.contains_region(label.region) and label.region.area > 0, field.key
        assert row.region.height == 1, (field.key, row.region)
        widget = form.query_one(f"#{field.key}")
        assert widget.region.y == label.region.y, field.key  # beside it, on the same row
        assert widget.region.x > label.region.x, field.key


FORMS: dict[str, Callable[[], forms._Form]] = {
    "new study": forms.NewStudyForm,
    "sampler": lambda: forms.SettingForm("sampler", Spec("tpe", {"n_startup_trials": 5})),
    "pruner": lambda: forms.SettingForm("pruner", Spec("median")),
    "enqueue": lambda: forms.EnqueueForm('{"x": 1.5, "lr": 0.001}'),
    "confirm": lambda: forms.ConfirmScreen("Fail trial 3 of s? Its process is killed."),
    "filter prompt": lambda: forms.PromptScreen(
        "Filter trials", "", "lr < 1e-3", "fields: number state value ..."
    ),
    "jump prompt": lambda: forms.PromptScreen("Go to trial", "", "trial number"),
    "copy study": lambda: forms.CopyStudyForm("a-study-with-a-rather-long-name-for-80-columns"),
    "delete study": lambda: forms.DeleteStudyScreen("a-study-with-a-long-name-for-80x24", 12345),
    "export prompt": lambda: forms.PromptScreen(
        "Export the trials matching state == COMPLETE to",
        "s.csv",
        "study.csv",
        "a file named *.csv or *.json (relative: to the folder the app started in)",
        label="file",
    ),
}


@pytest.mark.parametrize("name", FORMS)
def test_every_form_fits_80x24_with_labels_help_and_buttons(
    sqlite_url: str, no_gpu: Path, name: str
) -> None:
    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "the studies")
            app.push_screen(FORMS[name]())
            await until(pilot, lambda: isinstance(app.screen, forms._Form), "the form")
            await settled(pilot)
            assert_fits(app)
            form = app.screen
            assert isinstance(form, forms._Form)
            # the help line follows the focus, field by field
            for field in form.fields():
                if form.shown(field.key):
                    form.query_one(f"#{field.key}").focus()
                    await pilot.pause()
                    assert form.help_text() == field.help, field.key
            if isinstance(form, forms.NewStudyForm):  # every place the workers may run
                for where in ("hosts", "slurm", "local"):
                    form.query_one("#where", Select).value = where
                    await settled(pilot)
                    assert_fits(app)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "form closed")

    run(scenario())


def test_new_study_form_labels_its_prefilled_fields(sqlite_url: str, no_gpu: Path) -> None:
    """The prefilled values (objective, sampler, pruner, trials, workers) sit beside a label
    that says what they are, on the screen a user sees."""

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "the studies")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, forms.NewStudyForm), "the form")
            await settled(pilot)
            lines = app.export_screenshot()  # an SVG; the rows' text is in it
            for label, value in (
                ("objective", "objectives.digits:objective"),
                ("sampler", "tpe"),
                ("pruner", "median"),
                ("trials", "100"),
                ("workers", "2"),
            ):
                row = app.screen.query_one(f"#row-{_key(label)}")
                assert str(row.query_one(Label).render()) == label
                widget = row.children[1]
                shown = widget.value if isinstance(widget, Input) else str(widget.value)
                assert shown == value
            assert "Launch" in lines and "Cancel" in lines

    run(scenario())


def _key(label: str) -> str:
    return {"trials": "n_trials"}.get(label, label)


def test_empty_storage_says_how_to_start_until_a_study_exists(sqlite_url: str) -> None:
    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            hint = app.screen.query_one("#empty-hint", Static)
            await until(pilot, lambda: hint.display, "the hint on an empty storage")
            shown = text(hint)
            for part in (
                "No study in this storage yet",
                "n  here",
                "tui-hpo launch train.py:objective --n-trials 100 --workers 2",
                "tui-hpo launch --sweep sweep.yaml",
                f"--storage {sqlite_url}",  # not the default storage: the commands need it
                "make demo",
            ):
                assert part in shown, part
            region = hint.region
            assert region.area > 0 and Region(0, 0, *SMALL).contains_region(region)

            await asyncio.to_thread(plain_study, sqlite_url, "arrived")
            table = app.screen.query_one("#studies")
            await until(pilot, lambda: not hint.display, "the hint gone once a study exists")
            assert table.row_count == 1  # type: ignore[attr-defined]

    run(scenario())


def test_no_storage_flag_in_the_hint_for_the_default_storage(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_hpo.app.screens.studies import empty_hint

    default = "sqlite:///tui-hpo.db"
    assert "--storage" not in empty_hint(default, default)
    assert "--storage sqlite:///other.db" in empty_hint("sqlite:///other.db", "sqlite:///other.db")


# the CLI's words, refused ---------------------------------------------------------------------


def cli_messages(cwd: Path) -> list[tuple[dict[str, str], str]]:
    """(field values, the CLI's message for them), each message got from the function the CLI
    itself calls."""
    return [
        ({"objective": "nosuch.py:objective"}, said(lambda: parse_spec("nosuch.py:objective"))),
        ({"objective": "pkg.mod:1fn"}, said(lambda: parse_spec("pkg.mod:1fn"))),
        ({"objective": "gone.yaml"}, said(lambda: parse_spec("gone.yaml", cwd=cwd))),
        ({"directions": "minimize,sideways"}, said(lambda: parse_directions(["min,sideways"]))),
        ({"gpus": "3"}, said(lambda: parse_gpus("3", 0))),
        ({"gpus": "0,x"}, said(lambda: parse_gpus("0,x", 0))),
        (
            {"sampler_kwargs": '{"n_startup_trials": "x"}'},
            said(lambda: check_setting("sampler", "tpe", '{"n_startup_trials": "x"}')),
        ),
        (
            {"where": "hosts", "hosts": "gpu1:x"},
            said(lambda: parse_hosts("gpu1:x")),
        ),
        (
            {"where": "slurm", "slurm_args": "--array=0-3"},
            said(lambda: parse_slurm_args("--array=0-3")),
        ),
    ]


def test_a_bad_value_shows_the_clis_message_and_the_form_does_not_submit(
    sqlite_url: str, no_gpu: Path
) -> None:
    cases = cli_messages(no_gpu)

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "the studies")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, forms.NewStudyForm), "the form")
            form = app.screen
            assert isinstance(form, forms.NewStudyForm)
            form.query_one("#study", Input).value = "s"
            for change, message in cases:
                form.query_one("#where", Select).value = change.get("where", "local")
                await settled(pilot)
                key, value = [(k, v) for k, v in change.items() if k != "where"][0]
                field = form.query_one(f"#{key}", Input)
                field.focus()
                field.value = ""
                await pilot.press(*value)  # typed: checked as it changes, before any submit
                await settled(pilot)
                assert text(form.query_one(".error")) == message, change
                assert form.query_one(f"#row-{key}").has_class("-bad")
                await pilot.press("enter")
                await settled(pilot)
                await pilot.pause(0.2)
                assert app.screen is form, change  # refused
                assert text(form.query_one(".error")) == message
                field.value = ""
                await settled(pilot)
            await pilot.press("escape")

        engine = engine_of(sqlite_url)
        with engine.connect() as con:
            assert reads.study_ids(con) == {}
        engine.dispose()

    run(scenario())


def test_setting_and_enqueue_forms_refuse_with_the_commands_words(sqlite_url: str) -> None:
    bad_kwargs = '{"n_startup_trials": "x"}'
    expected_setting = said(lambda: check_setting("sampler", "tpe", bad_kwargs))

    async def scenario() -> None:
        app = NotingApp(sqlite_url)
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: isinstance(app.screen, StudiesScreen), "the studies")
            closed: list[object] = []
            app.push_screen(forms.SettingForm("sampler", Spec("tpe")), closed.append)
            await until(pilot, lambda: isinstance(app.screen, forms.SettingForm), "the form")
            await settled(pilot)
            app.screen.query_one("#kwargs", Input).focus()
            await pilot.press(*bad_kwargs)
            await settled(pilot)
            assert text(app.screen.query_one(".error")) == expected_setting
            await pilot.press("enter")
            await settled(pilot)
            assert isinstance(app.screen, forms.SettingForm) and not closed
            await pilot.press("escape")
            await until(pilot, lambda: closed == [None], "the form closed, nothing sent")

            app.push_screen(forms.EnqueueForm('{"x": 1}'), closed.append)
            await until(pilot, lambda: isinstance(app.screen, forms.EnqueueForm), "the form")
            await settled(pilot)
            await pilot.press("end", "backspace")  # '{"x": 1' is not JSON
            await settled(pilot)
            assert "params is not valid JSON" in text(app.screen.query_one(".error"))
            await pilot.press("enter")
            await settled(pilot)
            assert isinstance(app.screen, forms.EnqueueForm)
            await pilot.press("}", "enter")
            await until(pilot, lambda: closed[-1] == '{"x": 1}', "the form submits once valid")

    run(scenario())
