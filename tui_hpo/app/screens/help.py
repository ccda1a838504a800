"""The ``?`` screen: every key of the screen below it and of the app, and the filter language."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown


def help_text(app: App[Any]) -> str:
    from tui_hpo.data import filters

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
