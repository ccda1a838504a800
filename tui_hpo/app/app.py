"""The tui-hpo app: screens, global keys, the command palette and the help screen.

Commands run in thread workers through the same ``Session`` methods (and so the same core
functions) as the CLI; whatever they raise comes back as one notification, never a crash.
Quitting the app, or losing the terminal, leaves every worker running: they live in sessions
of their own and answer to the storage, not to the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Markdown

from tui_hpo.app import forms
from tui_hpo.app.messages import ActionDone
from tui_hpo.app.studies_screen import StudiesScreen
from tui_hpo.app.study_screen import StudyScreen
from tui_hpo.errors import UserError
from tui_hpo.session import NewStudy, Session
from tui_hpo.storage import StorageURL


def _help_text(app: App[Any]) -> str:
    from tui_hpo import filters

    lines = ["# tui-hpo keys", "", "| key | action |", "| --- | --- |"]
    seen = set()
    screens = [app.screen, *reversed(app.screen_stack[:-1])]
    for screen in screens:
        for binding in [*getattr(type(screen), "BINDINGS", []), *app.BINDINGS]:
            if not isinstance(binding, Binding) or binding.key in seen:
                continue
            seen.add(binding.key)
            what = binding.tooltip or binding.description or binding.action
            lines.append(f"| `{app.get_key_display(binding)}` | {what} |")
    lines += ["", "## Filter expressions", "", "```", filters.HELP.strip(), "```"]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 90%; height: 90%; border: round $accent;
                                background: $surface; }
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text)
        yield Footer(compact=True)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class TuiHpoApp(App[None]):
    TITLE = "tui-hpo"
    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Every key, and the filter syntax"),
        Binding("q", "quit", "Quit", tooltip="Quit the app; workers keep running"),
        Binding("ctrl+s", "screenshot", "Screenshot", show=False,
                tooltip="Save an SVG of the screen"),
        Binding("n", "new_study", "New study", show=False),
    ]  # fmt: skip
    CSS = """
    #banner { background: $error; color: $text; height: auto; }
    #title { height: 1; background: $boost; text-style: bold; }
    """

    def __init__(self, target: StorageURL, study: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.start_study = study
        self._session: Session | None = None
        self._session_lock = threading.Lock()

    @property
    def session(self) -> Session:
        """The storage session, opened on first use from a thread worker (opening it is I/O,
        and a storage that is down at start must show a banner, not stop the app)."""
        with self._session_lock:
            if self._session is None:
                self._session = Session(self.target)
            return self._session

    def on_mount(self) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.push_screen(StudiesScreen())
        if self.start_study:
            self.open_study(self.start_study)

    def open_study(self, name: str) -> None:
        self.push_screen(StudyScreen(name))

    # commands -----------------------------------------------------------------------------------

    def run_command(
        self, screen: Screen[Any], label: str, func: Callable[..., str], *args: object
    ) -> None:
        self._run(screen, label, func, args)

    @work(thread=True, group="commands", exit_on_error=False)
    def _run(
        self, screen: Screen[Any], label: str, func: Callable[..., str], args: tuple[object, ...]
    ) -> None:
        try:
            text = func(*args)
        except UserError as exc:
            screen.post_message(ActionDone(False, f"{label}: {exc.message}"))
            return
        except Exception as exc:  # a storage error or a bug: one line, the app stays up
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            screen.post_message(ActionDone(False, f"{label} failed: {first[:200]}"))
            return
        screen.post_message(ActionDone(True, text))

    def report(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error",
                    timeout=6 if message.ok else 10)  # fmt: skip

    def action_new_study(self) -> None:
        def done(form: object) -> None:
            if isinstance(form, NewStudy):
                self.run_command(self.screen, "launch", self._launch, form)

        self.push_screen(forms.NewStudyForm(), done)

    def _launch(self, form: NewStudy) -> str:
        text = self.session.launch(form)
        self.call_from_thread(self.open_study, form.study)
        return text

    def action_help(self) -> None:
        self.push_screen(HelpScreen(_help_text(self)))

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
