"""Studies side by side: each one's trials per state, and their best-so-far curves in one plot.

Opened from the studies screen with the studies marked there (``space``, then ``v``). Each
study is read once, whole, by a ``StudyReader`` of its own in a thread worker (the session's
readers belong to the study views' polls), and the frames come back in one ``CompareLoaded``;
``r`` reads them again. The curves use each study's first objective and each study's own
direction (a minimized loss falls, a maximized accuracy rises), so studies of different
directions share the plot as they are; the legend and the table's colours say which is which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui_hpo.app.context import tui_app
from tui_hpo.app.widgets.compare_plot import BestCurvesPlot, row_color
from tui_hpo.data.analysis import best_history
from tui_hpo.data.frames import StudyReader, TrialFrame
from tui_hpo.data.session import Session
from tui_hpo.errors import UserError, one_line

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
"""The table's count columns, in the order a finished search reads best."""


@dataclass
class CompareLoaded(Message, bubble=False):
    """The studies read, in the order asked (name, frame), and one line per study that could
    not be read (deleted since it was marked, the storage away)."""

    frames: tuple[tuple[str, TrialFrame], ...]
    errors: tuple[str, ...]


def best_cell(frame: TrialFrame) -> str:
    """The best value of the first objective so far and its trial, or ``-`` before any."""
    numbers, best = best_history(frame)
    if not len(best):
        return "-"
    last = float(best[-1])
    at = int(numbers[(best == last).argmax()])  # the first trial that reached it
    return f"{last:.5g} #{at}"


class CompareScreen(Screen[None]):
    """The marked studies' counts per state and best-so-far curves; escape goes back."""

    BINDINGS = [
        Binding("escape", "back", "Studies", tooltip="Back to the list of studies"),
        Binding("r", "refresh", "Refresh", tooltip="Read the compared studies again"),
    ]
    DEFAULT_CSS = """
    CompareScreen { layout: vertical; }
    CompareScreen #compare-title { height: 1; background: $boost; text-style: bold; }
    CompareScreen #compare-counts { height: auto; max-height: 9; }
    CompareScreen #compare-plot { height: 1fr; min-height: 8; }
    """

    def __init__(self, studies: Sequence[tuple[str, Sequence[str]]]) -> None:
        super().__init__()
        self.studies = tuple((name, tuple(directions)) for name, directions in studies)
        """(name, directions) of each study compared, in the order they were marked."""
        self.frames: tuple[tuple[str, TrialFrame], ...] = ()
        """What the last read found; empty until it is in."""

    def compose(self) -> ComposeResult:
        names = " · ".join(name for name, _ in self.studies)
        yield Static(f"compare · {names}", id="compare-title", markup=False)
        yield DataTable(id="compare-counts", cursor_type="none", zebra_stripes=True)
        yield BestCurvesPlot(id="compare-plot")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(BestCurvesPlot).loading = True
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load(tui_app(self).session, self.studies)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def load(self, session: Session, studies: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        frames: list[tuple[str, TrialFrame]] = []
        errors: list[str] = []
        for name, directions in studies:
            try:
                reader = StudyReader(session.engine, session.study_id(name), directions)
                frames.append((name, reader.poll()))
            except UserError as exc:
                errors.append(f"{name}: {exc.message}")
            except Exception as exc:  # the storage away, say: one line, the screen stays
                errors.append(f"{name}: {one_line(exc, limit=200)}")
        self.post_message(CompareLoaded(tuple(frames), tuple(errors)))

    def on_compare_loaded(self, message: CompareLoaded) -> None:
        for error in message.errors:
            self.notify(f"compare: {error}", severity="error", timeout=10)
        self.frames = message.frames
        rows = []
        for i, (name, frame) in enumerate(message.frames):
            counts = frame.counts()
            rows.append(
                (
                    Text(name, style=f"bold {row_color(i)}"),
                    ",".join(d[:3] for d in frame.directions),
                    *(str(counts[s]) for s in STATES),
                    best_cell(frame),
                )
            )
        # widths fitted here, not by the DataTable when idle: until it paints again after that
        # its header line keeps the header-wide widths, out of line with the rows
        labels = ["study", "dir", *(s.lower() for s in STATES), "best"]
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for at, label in enumerate(labels):
            width = max([len(label), *(len(str(row[at])) for row in rows)])
            table.add_column(label, width=width, key=label)
        for (name, _frame), row in zip(message.frames, rows, strict=True):
            table.add_row(*row, key=name)
        plot = self.query_one(BestCurvesPlot)
        plot.loading = False
        plot.draw(message.frames)

    def action_back(self) -> None:
        self.app.pop_screen()
