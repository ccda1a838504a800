"""The CLI and the app say the same thing for the same verb: each front end only shows the
``Outcome`` (or the one-line error) of the one function in ``tui_hpo.steering``.

Each case runs the command as a user types it (``tui-hpo VERB ...``) and the key in the app
(Textual's pilot, on the same storage), and compares what each showed, word for word.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial
from textual.pilot import Pilot
from textual.widgets import Select

from tests.app.pilot import NotingApp, fill, open_study, prompt, run, submit_form, until
from tui_hpo.app.screens.forms import ConfirmScreen, SettingForm
from tui_hpo.app.screens.study import StudyScreen

pytestmark = pytest.mark.e2e

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def study(sqlite_url: str) -> str:
    """A study plain Optuna wrote: three COMPLETE trials, no worker."""
    made = optuna.create_study(study_name="s", storage=sqlite_url)
    dists = {"x": FloatDistribution(-10, 10), "y": FloatDistribution(-10, 10)}
    for i in range(3):
        made.add_trial(
            create_trial(params={"x": float(i), "y": 1.0}, distributions=dists, value=float(i))
        )
    return sqlite_url


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command showed: its output, or its error line without ``error: ``."""
    text = (done.stdout or done.stderr).strip()
    return text.removeprefix("error: ")


def noted(app: NotingApp, since: int) -> str:
    """The notification the app showed since the ``since``-th, without a verb's ``NAME: ``
    prefix that an error carries in the app (the CLI's carries ``error: ``)."""
    message = app.notes[since][0]
    head, _, rest = message.partition(": ")
    verbs = ("prune-trial", "fail-trial", "scale", "enqueue", "tag", "untag", "note")
    return rest if head in verbs else message


async def press(pilot: Pilot[Any], app: NotingApp, *keys: str) -> str:
    before = len(app.notes)
    await pilot.press(*keys)
    await until(pilot, lambda: len(app.notes) > before, f"a notification after {keys}")
    return noted(app, before)


async def form(pilot: Pilot[Any], app: NotingApp, key: str, fill_in: Callable[[], None]) -> str:
    before = len(app.notes)
    await pilot.press(key)
    await until(pilot, lambda: not isinstance(app.screen, StudyScreen), "the form")
    fill_in()
    await submit_form(pilot, "kwargs" if isinstance(app.screen, SettingForm) else "params")
    await until(pilot, lambda: len(app.notes) > before, f"a notification after {key}")
    return noted(app, before)


async def typed(pilot: Pilot[Any], app: NotingApp, key: str, value: str) -> str:
    """What the app said after a one-line prompt opened by ``key`` got ``value``."""
    before = len(app.notes)
    await prompt(pilot, key, value)
    await until(pilot, lambda: len(app.notes) > before, f"a notification after {key}")
    return noted(app, before)


async def noted_note(pilot: Pilot[Any], app: NotingApp, value: str) -> str:
    """What the app said after ``N``, typing ``value`` into the editor and ``ctrl+s``."""
    before = len(app.notes)
    await pilot.press("N")
    await until(pilot, lambda: getattr(app.screen, "loaded", False), "the note editor")
    await pilot.press(*value, "ctrl+s")
    await until(pilot, lambda: len(app.notes) > before, "a notification after the note")
    return noted(app, before)


def test_every_verb_says_the_same_in_the_cli_and_the_app(cli: Cli, study: str) -> None:
    def cmd(*args: str) -> str:
        return said(cli(*args, "--storage", study))

    async def scenario() -> None:
        app = NotingApp(study, "s")
        async with app.run_test(size=(120, 40)) as pilot:
            await open_study(pilot, app, "s", 3)
            pairs: list[tuple[str, str]] = []

            paused_in_app = await press(pilot, app, "p")
            await until(pilot, lambda: app.screen.snapshot.orders.paused, "the pause")
            resumed_in_cli = cmd("resume", "s")
            await until(pilot, lambda: not app.screen.snapshot.orders.paused, "the resume")
            paused_in_cli = cmd("pause", "s")
            await until(pilot, lambda: app.screen.snapshot.orders.paused, "the pause")
            resumed_in_app = await press(pilot, app, "p")
            pairs += [(paused_in_cli, paused_in_app), (resumed_in_cli, resumed_in_app)]

            pairs.append((cmd("freeze", "s"), await press(pilot, app, "z")))

            def pick(name: str) -> Callable[[], None]:
                return lambda: setattr(app.screen.query_one("#name", Select), "value", name)

            in_app = await form(pilot, app, "m", pick("random"))
            pairs.append((cmd("set-sampler", "s", "random"), in_app))
            in_app = await form(pilot, app, "u", pick("none"))
            pairs.append((cmd("set-pruner", "s", "none"), in_app))

            params = '{"x": 1.5, "y": -2.0}'
            in_app = await form(pilot, app, "e", lambda: fill(app, params=params))
            pairs.append((cmd("enqueue", "s", "--params", params), in_app))
            bad = '{"x": 99.0, "y": 0.0}'  # outside x's distribution
            in_app = await form(pilot, app, "e", lambda: fill(app, params=bad))
            pairs.append((cmd("enqueue", "s", "--params", bad), in_app))

            await pilot.press("home")  # trial 0, COMPLETE: nothing to prune or fail
            tagged_in_app = await typed(pilot, app, "t", "good")
            untagged_in_cli = cmd("untag", "s", "0", "good")
            tagged_in_cli = cmd("tag", "s", "0", "good")
            untagged_in_app = await typed(pilot, app, "t", "-good")
            pairs += [(tagged_in_cli, tagged_in_app), (untagged_in_cli, untagged_in_app)]
            pairs.append((cmd("tag", "s", "0", "a,b"), await typed(pilot, app, "t", "a,b")))
            in_app = await noted_note(pilot, app, "hi")  # first: the editor opens on no note
            pairs.append((cmd("note", "s", "0", "--set", "hi"), in_app))
            pairs.append((cmd("prune-trial", "s", "0"), await press(pilot, app, "x")))
            pairs.append((cmd("fail-trial", "s", "0"), await press(pilot, app, "X")))
            pairs.append((cmd("scale", "s", "2"), await press(pilot, app, "plus")))

            before = len(app.notes)
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
            await until(pilot, lambda: len(app.notes) > before, "the stop notice")
            pairs.append((cmd("stop", "s"), noted(app, before)))

            for in_cli, in_app in pairs:
                assert in_cli == in_app
                starts = ("s: ", "trial 0 ", "param 'x'", "study 's'", "tag ")
                assert in_cli.startswith(starts), in_cli

    run(scenario())
