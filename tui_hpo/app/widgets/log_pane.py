"""Pane 6: the log of the worker highlighted in pane 5, followed (its last lines, re-read by a
thread worker on every poll)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Log

from tui_hpo.app.messages import LogLoaded


class LogPane(Container):
    def __init__(self, *, id: str = "log") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "6 log"
        self._shown: tuple[str | None, list[str]] | None = None

    def compose(self) -> ComposeResult:
        yield Log(id="log-view", highlight=False)

    def follow(self, path: str | None) -> None:
        self.load(path)

    @work(thread=True, exclusive=True, group="log", exit_on_error=False)
    def load(self, path: str | None) -> None:
        from tui_hpo.machine.figures import log_tail

        self.post_message(LogLoaded(path, log_tail(path)))

    def on_log_loaded(self, message: LogLoaded) -> None:
        shown = (message.path, message.lines)
        if shown == self._shown:
            return
        self._shown = shown
        log = self.query_one(Log)
        log.clear()
        log.write_lines(message.lines)
