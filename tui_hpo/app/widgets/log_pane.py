"""Pane 6: the output of the selected trial when it ran a program on this machine, else the log
of the worker highlighted in pane 5; followed (its last lines, re-read by a thread worker on
every poll)."""

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
        self._worker_log: str | None = None
        self._trial_output: tuple[str, int] | None = None

    def compose(self) -> ComposeResult:
        yield Log(id="log-view", highlight=False)

    def follow(self, path: str | None) -> None:
        """The highlighted worker's log, read again on every poll (its workers pane refresh),
        shown unless the selected trial's own output is."""
        self._worker_log = path
        self._reload()

    def follow_trial(self, path: str | None, number: int | None) -> None:
        """The selected trial's output (None: back to the worker's log)."""
        self._trial_output = (path, number) if path is not None and number is not None else None
        self._reload()

    def _reload(self) -> None:
        if self._trial_output is not None:
            path, number = self._trial_output
            self.border_title = f"6 output of trial {number}"
        else:
            path = self._worker_log
            self.border_title = "6 log"
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
