"""The tui-hpo app: screens, global keys, the command palette and the help screen.

Every steering key runs its verb from ``tui_hpo.steering`` in a thread worker, the same function
the CLI's command runs, and shows the ``Outcome``'s message; whatever it raises comes back as
one notification, never a crash. Quitting the app, or losing the terminal, leaves every worker
running: they live in sessions of their own and answer to the storage, not to the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui_hpo import steering
from tui_hpo.app.messages import ActionDone
from tui_hpo.app.screens import forms
from tui_hpo.app.screens.help import HelpScreen, help_text
from tui_hpo.app.screens.studies import StudiesScreen
from tui_hpo.app.screens.study import StudyScreen
from tui_hpo.data.session import Session
from tui_hpo.errors import UserError, one_line
from tui_hpo.storage.urls import StorageURL

__all__ = ["HelpScreen", "TuiHpoApp", "run"]


class TuiHpoApp(App[None]):
    TITLE = "tui-hpo"
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Every key, and the filter syntax"),
        Binding("q", "quit", "Quit", tooltip="Quit the app; workers keep running"),
        Binding(
            "ctrl+s", "screenshot", "Screenshot", show=False, tooltip="Save an SVG of the screen"
        ),
        Binding("n", "new_study", "New study", show=False),
    ]
    CSS = """
    #banner { background: $error; color: $text; height: auto; }
    #title { height: 1; background: $boost; text-style: bold; }
    """

    def __init__(self, target: StorageURL, study: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.start_study = study
        self.session = Session(target)
        """Opened by the first read, in a thread worker: no I/O here."""

    def on_mount(self) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.push_screen(StudiesScreen())
        if self.start_study:
            self.open_study(self.start_study)

    def open_study(self, name: str) -> None:
        self.push_screen(StudyScreen(name))

    # steering -----------------------------------------------------------------------------------

    def steer(
        self,
        screen: Screen[Any],
        study: str,
        verb: Callable[..., steering.Outcome],
        *args: object,
        **kwargs: object,
    ) -> None:
        """Run a steering verb on ``study`` in a thread; its outcome comes back to ``screen``
        as ``ActionDone``."""
        self._steer(screen, self.session, study, verb, args, kwargs)

    @work(thread=True, group="commands", exit_on_error=False)
    def _steer(
        self,
        screen: Screen[Any],
        session: Session,
        study: str,
        verb: Callable[..., steering.Outcome],
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> None:
        label = verb.__name__.replace("_", "-")
        try:
            steered = steering.Steered(
                session.target, study, storage=session.storage, study_id=session.study_id(study)
            )
            outcome = verb(steered, *args, **kwargs)
        except UserError as exc:
            screen.post_message(ActionDone(False, f"{label}: {exc.message}"))
            return
        except Exception as exc:  # a storage error or a bug: one line, the app stays up
            screen.post_message(ActionDone(False, f"{label} failed: {one_line(exc, limit=200)}"))
            return
        screen.post_message(ActionDone(True, outcome.message))

    def report(self, message: ActionDone) -> None:
        """Show what a command did (the screen that asked calls this), and open the study it
        launched."""
        self.notify(
            message.text,
            severity="information" if message.ok else "error",
            timeout=6 if message.ok else 10,
        )
        if message.opens:
            self.open_study(message.opens)

    # a new study --------------------------------------------------------------------------------

    def action_new_study(self) -> None:
        def done(form: object) -> None:
            if isinstance(form, steering.NewStudy):
                self._launch(self.screen, self.target, form)

        self.push_screen(forms.NewStudyForm(), done)

    @work(thread=True, group="commands", exit_on_error=False)
    def _launch(self, screen: Screen[Any], target: StorageURL, form: steering.NewStudy) -> None:
        try:
            outcome = steering.launch(target, form)
        except UserError as exc:
            screen.post_message(ActionDone(False, f"launch: {exc.message}"))
            return
        screen.post_message(ActionDone(True, outcome.message, opens=form.study))

    # help and palette ---------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_text(self)))

    def action_screenshot(self) -> None:
        path = self.save_screenshot()
        self.notify(f"saved {path}")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every key of the current screen in the command palette too."""
        yield from super().get_system_commands(screen)
        for binding in [*getattr(type(screen), "BINDINGS", []), *self.BINDINGS]:
            if not isinstance(binding, Binding):
                continue
            title = f"{binding.description or binding.action} ({self.get_key_display(binding)})"
            action = binding.action
            target = screen if hasattr(screen, f"action_{action.split('(')[0]}") else self
            yield SystemCommand(
                title,
                binding.tooltip or title,
                lambda a=action, t=target: self.call_later(t.run_action, a),
            )


def run(target: StorageURL, study: str | None = None) -> None:
    TuiHpoApp(target, study).run()
