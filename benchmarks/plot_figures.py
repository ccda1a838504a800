"""How long each plot of the app's plots pane takes to redraw on a big study (target: at most
100 ms per plot on 100,000 trials, at 80x24 and at 160x48).

What it measures, per plot and terminal size, on the frame the app polls (``StudyReader``):
(a) the rows the filter keeps (``filters.rows_shown``) and ``plot_data.figure``, the figure
    bounded by the plot's size;
(b) plotext: the figure handed to plotext and the plot built into text (``plt.build()``), which
    is what textual-plotext does for each paint;
and their sum, the median of ``--repeat`` runs, with the worst run beside it. The learning-curves
plot reads its curves from the storage first (that read is timed apart: it runs in the same
thread worker but is I/O, and the app does it only when that plot is on show). With
``--filter`` the same runs with the filter applied (``state == complete and number > N/2``).

Make the study first::

    .venv/bin/python benchmarks/make_big_study.py --storage sqlite:////tmp/big1.db --study big \\
        --trials 100000 --params 4 --objectives 1 --max-steps 20 --running 8
    .venv/bin/python benchmarks/plot_figures.py --storage sqlite:////tmp/big1.db --study big
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna
import plotext

from tui_hpo.app.widgets.plots_pane import paint
from tui_hpo.data import plot_data
from tui_hpo.data.filters import rows_shown
from tui_hpo.data.frames import StudyReader
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

TARGET_MS = 100.0
SIZES = ((80, 24), (160, 48))


def plot_size(terminal: tuple[int, int]) -> tuple[int, int]:
    """The plot's own cells at that terminal size: the pane less the header, tabs, footer and
    its border (what the app gives ``plot_data.figure``)."""
    return terminal[0] - 2, terminal[1] - 8


def draw(figure: plot_data.Figure, size: tuple[int, int]) -> str:
    """What ``FigurePlot.draw`` and textual-plotext's render do, on plotext's own figure."""
    plotext.clear_data()
    plotext.clear_figure()
    paint(plotext, figure)
    plotext.plotsize(*size)
    return str(plotext.build())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="big")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--filter", action="store_true", help="also with a filter applied")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(parse_url(args.storage))  # as the app opens it: our tables made
    engine = storage.engine
    study = optuna.load_study(study_name=args.study, storage=storage)
    directions = tuple(d.name.lower() for d in study.directions)
    reader = StudyReader(engine, study._study_id, directions)
    t0 = time.perf_counter()
    frame = reader.poll()
    took = time.perf_counter() - t0
    print(f"{len(frame):,} trials, {len(frame.params)} params, read in {took:.2f} s")
    filters = [""] + ([f"state == complete and number > {len(frame) // 2}"] if args.filter else [])
    worst = 0.0
    print(
        f"{'plot':<10} {'size':>7} {'filter':>6} {'figure ms':>10} {'plotext ms':>11} "
        f"{'total ms':>9} {'worst ms':>9}  note"
    )
    for text in filters:
        rows = rows_shown(frame, text)
        for kind in plot_data.KINDS:
            choice = plot_data.Choice(kind=kind)
            curves = None
            if kind == "curves":
                wanted = plot_data.curve_trials(frame, rows, choice)
                t0 = time.perf_counter()
                curves = reader.curves(frame.trial_id[wanted].tolist())
                read_ms = (time.perf_counter() - t0) * 1000
            for terminal in SIZES:
                size = plot_size(terminal)
                figure_ms, plot_ms, totals = [], [], []
                figure = None
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    rows = rows_shown(frame, text)  # the filter is applied on each redraw too
                    figure = plot_data.figure(frame, rows, choice, size, time.time(), curves)
                    t1 = time.perf_counter()
                    draw(figure, size)
                    t2 = time.perf_counter()
                    figure_ms.append((t1 - t0) * 1000)
                    plot_ms.append((t2 - t1) * 1000)
                    totals.append((t2 - t0) * 1000)
                assert figure is not None
                worst = max(worst, statistics.median(totals))
                note = figure.empty or figure.note
                if kind == "curves":
                    note += f" (curves read apart: {read_ms:.0f} ms)"
                print(
                    f"{kind:<10} {terminal[0]:>3}x{terminal[1]:<3} {'yes' if text else 'no':>6} "
                    f"{statistics.median(figure_ms):>10.1f} {statistics.median(plot_ms):>11.1f} "
                    f"{statistics.median(totals):>9.1f} {max(totals):>9.1f}  {note}"
                )
    verdict = "ok" if worst <= TARGET_MS else "OVER"
    print(
        f"slowest plot (median): {worst:.1f} ms, target {TARGET_MS:.0f} ms: {verdict} "
        f"({worst / TARGET_MS:.2f} of the target)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
