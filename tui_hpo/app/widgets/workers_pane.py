"""Pane 5: the study's workers, with the CPU, memory and GPU figures of those on this machine.

The figures (psutil, NVML) are read by a thread worker that takes the worker rows of the latest
snapshot and posts what it found. The highlighted worker is the one whose log pane 6 follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable

from tui_hpo.app.format import age_text, mb, pct
from tui_hpo.app.messages import HardwareLoaded
from tui_hpo.control.registry import WorkerRow


class WorkersPane(Container):
    @dataclass
    class Chosen(Message):
        """The worker whose log (when local) is the one to follow, after each refresh."""

        log_path: str | None

    def __init__(self, *, id: str = "workers") -> None:
        super().__init__(id=id, classes="pane")
        self.border_title = "5 workers"
        self.rows: list[WorkerRow] = []
        self.selected: int | None = None
        """The highlighted worker's id."""

    def compose(self) -> ComposeResult:
        yield DataTable(id="workers-table", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "host", "pid", "gpu", "util", "gpu mem", "cpu", "rss", "state", "trial", "beat"
        )

    def update(self, workers: list[WorkerRow]) -> None:
        self.rows = workers
        pids = [w.pid for w in workers if w.is_local and w.pid and w.state != "exited"]
        self.load_figures(pids)

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def load_figures(self, pids: list[int]) -> None:
        from tui_hpo.machine.figures import figures

        self.post_message(HardwareLoaded(figures(pids)))

    def on_hardware_loaded(self, message: HardwareLoaded) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        shown = [w for w in self.rows if w.state != "exited"] or self.rows[-8:]
        for w in shown:
            hw = message.rows.get(w.pid)
            state = w.state if w.exit_code is None else f"{w.state} ({w.exit_code})"
            table.add_row(
                w.where or "-",
                str(w.pid) if w.pid else "-",
                w.gpu or "-",
                pct(hw.gpu_util if hw else None),
                mb(hw.gpu_mem_mb if hw else None),
                pct(hw.cpu_percent if hw else None),
                mb(hw.rss_mb if hw else None),
                state if w.slurm_reason is None else f"{state} ({w.slurm_reason})",
                "-" if w.trial_number is None else f"#{w.trial_number}",
                "-" if w.is_queued else age_text(w.heartbeat_age_s),
                key=str(w.worker_id),
            )
        if shown:
            table.move_cursor(row=min(keep, len(shown) - 1))
        self.post_message(self.Chosen(self.log_path()))

    def log_path(self) -> str | None:
        """The log of the highlighted local worker, else of the newest local one."""
        local = [w for w in self.rows if w.is_local and not w.is_queued]
        chosen = [w for w in local if w.worker_id == self.selected] or local[-1:]
        return chosen[0].log_path if chosen else None

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.selected = int(event.row_key.value)
