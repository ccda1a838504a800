"""The note editor: a trial's (or a study's) note in a text area, saved with ``ctrl+s``.

The note is read when the editor opens, not taken from what the trial pane last showed: it may
have been edited in optuna-dashboard since. Reading it is I/O, so a thread worker runs the
caller's ``load`` (a steering read) and posts ``NoteLoaded``; until then the text area is
read-only. Saving only hands the text back (``dismiss``): the caller saves it through the
steering verb in a thread worker, whose outcome comes back as a notification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea

from tui_hpo import steering
from tui_hpo.data.session import Session
from tui_hpo.errors import UserError, one_line


@dataclass
class NoteLoaded(Message, bubble=False):
    """The note as stored (``text``, at ``version``), or the one line saying why it could not
    be read."""

    text: str | None
    version: int = 0
    error: str | None = None


@dataclass(frozen=True)
class NoteEdit:
    """What the editor hands back: the text to save, and the version it was read at, so that
    a save over someone else's newer one is refused (as optuna-dashboard's editor does)."""

    text: str
    version: int


class NoteScreen(ModalScreen[NoteEdit | None]):
    """A multi-line editor of one note; dismisses with the edit to save, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]
    DEFAULT_CSS = """
    NoteScreen { align: center middle; }
    NoteScreen > Vertical {
        width: 90; max-width: 100%; height: 22; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    NoteScreen Label.title { text-style: bold; width: 100%; }
    NoteScreen TextArea { height: 1fr; }
    NoteScreen .help { color: $text-muted; height: auto; }
    NoteScreen .buttons { height: 1; align-horizontal: right; }
    NoteScreen Button { min-width: 10; margin-left: 1; }
    """

    def __init__(self, title: str, load: Callable[[], tuple[str, int]]) -> None:
        super().__init__()
        self.title_text = title
        self.load = load
        """Reads the note and its version; runs in a thread worker."""
        self.loaded = False
        self.version = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield TextArea("", read_only=True, id="note-text", soft_wrap=True)
            yield Static(
                "Markdown, shared with optuna-dashboard · ctrl+s saves · escape cancels · "
                "empty clears the note",
                classes="help",
            )
            yield Horizontal(
                Button("Save", variant="primary", compact=True, id="save"),
                Button("Cancel", compact=True, id="cancel"),
                classes="buttons",
            )

    def on_mount(self) -> None:
        self.query_one(TextArea).loading = True
        self._read(self.load)

    @work(thread=True, exclusive=True, group="note", exit_on_error=False)
    def _read(self, load: Callable[[], tuple[str, int]]) -> None:
        try:
            text, version = load()
        except UserError as exc:
            self.post_message(NoteLoaded(None, error=exc.message))
            return
        except Exception as exc:  # a storage error: one line, the app stays up
            self.post_message(NoteLoaded(None, error=one_line(exc, limit=200)))
            return
        self.post_message(NoteLoaded(text, version))

    def on_note_loaded(self, message: NoteLoaded) -> None:
        area = self.query_one(TextArea)
        area.loading = False
        if message.text is None:
            self.app.notify(f"note: {message.error}", severity="error", timeout=10)
            self.dismiss(None)
            return
        area.load_text(message.text)
        area.read_only = False
        self.loaded = True
        self.version = message.version
        area.focus()

    def action_save(self) -> None:
        if self.loaded:  # never save over a note not read yet
            self.dismiss(NoteEdit(self.query_one(TextArea).text, self.version))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


def note_loader(session: Session, study: str, number: int | None) -> Callable[[], tuple[str, int]]:
    """What the editor runs in its thread worker to read the note of ``study`` (``number``
    None) or of its trial ``number``: the text and the version it is saved against."""

    def load() -> tuple[str, int]:
        steered = steering.Steered(
            session.target, study, storage=session.storage, study_id=session.study_id(study)
        )
        found = steering.read_note(steered, number)
        return found.message, int(found.details["version"])

    return load
