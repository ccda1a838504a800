"""The app's figures on a big study, beside Optuna's own ``get_all_trials`` on the same storage.

Targets (issue: the full-screen app, at 100,000 trials with 3 params, 2 objectives and up to 20
intermediate values each, on SQLite):

- the study view paints in at most 2 s (from opening it to the trials table showing every row);
- a poll that finds nothing new costs at most 20 ms (``Session.snapshot`` on an idle study: the
  incremental trial read plus orders, workers and settings);
- a key press (scroll, sort, filter, select) answers in at most 100 ms (from the key to the
  table showing the new order/selection);
- the app's RSS stays under 500 MB.

The app runs headless (``App.run_test``) in this process, so its RSS is this process's RSS.
``get_all_trials`` runs in a subprocess with a time limit, since at 100,000 trials it takes
minutes. Make a study first with ``benchmarks/make_big_study.py``.

Usage:
    python benchmarks/app_figures.py --storage sqlite:///big.db --study big [--optuna-limit 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import psutil

TARGETS = {"paint_s": 2.0, "idle_poll_ms": 20.0, "key_ms": 100.0, "rss_mb": 500.0}


def optuna_get_all_trials(url: str, study: str, limit: float) -> float | None:
    """Seconds Optuna's get_all_trials takes on the study, or None past ``limit``."""
    code = (
        "import time, optuna\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        f"s = optuna.load_study(study_name={study!r}, storage={url!r})\n"
        "t = time.perf_counter(); n = len(s.get_trials(deepcopy=False))\n"
        "print(time.perf_counter() - t, n)\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        return None
    return float(out.stdout.split()[0])


async def measure_app(url: str, study: str) -> dict[str, float]:
    import numpy as np

    from tui_hpo.app.app import TuiHpoApp
    from tui_hpo.app.screens.study import StudyScreen
    from tui_hpo.app.widgets.trials_table import TrialsTable
    from tui_hpo.storage.urls import parse_url

    figures: dict[str, float] = {}
    app = TuiHpoApp(parse_url(url))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        n = len(app.session.snapshot(study).frame)  # warm the import of numpy/optuna models
        app.session._studies.clear()  # but read the trials cold, as a fresh app does
        start = time.perf_counter()
        app.open_study(study)
        screen: StudyScreen | None = None
        while time.perf_counter() - start < 120:
            await pilot.pause(0.01)
            if isinstance(app.screen, StudyScreen):
                screen = app.screen
                table = screen.query_one(TrialsTable)
                if table.frame is not None and len(table.view) == n:
                    break
        figures["paint_s"] = time.perf_counter() - start
        assert screen is not None
        table = screen.query_one(TrialsTable)

        polls = []
        for _ in range(30):
            t = time.perf_counter()
            app.session.snapshot(study)
            polls.append((time.perf_counter() - t) * 1000)
        figures["idle_poll_ms"] = statistics.median(polls)

        async def timed(keys: list[str], done: object) -> float:
            t = time.perf_counter()
            await pilot.press(*keys)
            while not done() and time.perf_counter() - t < 10:  # type: ignore[operator]
                await pilot.pause(0.001)
            return (time.perf_counter() - t) * 1000

        table.focus()
        await pilot.pause(0.2)
        scroll = []
        for _ in range(10):
            before = table.cursor
            scroll.append(await timed(["down"], lambda b=before: table.cursor != b))
        figures["key_scroll_ms"] = statistics.median(scroll)
        pages = []
        for _ in range(5):
            before = table.cursor
            pages.append(await timed(["pagedown"], lambda b=before: table.cursor != b))
        figures["key_page_ms"] = statistics.median(pages)
        sorts = []
        for _ in range(4):
            view = table.view
            sorts.append(await timed(["s"], lambda v=view: table.view is not v))
        figures["key_sort_ms"] = statistics.median(sorts)
        view = table.view
        t = time.perf_counter()
        screen.filter_text = "value0 < 0.5 and state == COMPLETE"
        screen.recompute_view()
        while table.view is view and time.perf_counter() - t < 10:
            await pilot.pause(0.001)
        figures["filter_ms"] = (time.perf_counter() - t) * 1000
        figures["filtered_rows"] = float(len(table.view))
        await pilot.press("home")
        selects = []
        for _ in range(5):
            before = table.cursor
            selects.append(await timed(["down"], lambda b=before: table.cursor != b))
        figures["key_select_ms"] = statistics.median(selects)
        figures["trials"] = float(n)
        figures["rss_mb"] = psutil.Process().memory_info().rss / 2**20
        _ = np
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument(
        "--optuna-limit",
        type=float,
        default=300.0,
        help="seconds to let get_all_trials run (0 skips it)",
    )
    args = parser.parse_args()
    figures = asyncio.run(measure_app(args.storage, args.study))
    print(f"study {args.study}: {figures['trials']:.0f} trials")
    rows = [
        (
            "study view paints",
            f"{figures['paint_s']:.2f} s",
            TARGETS["paint_s"],
            figures["paint_s"],
        ),
        (
            "idle poll",
            f"{figures['idle_poll_ms']:.1f} ms",
            TARGETS["idle_poll_ms"],
            figures["idle_poll_ms"],
        ),
        (
            "key: scroll (down)",
            f"{figures['key_scroll_ms']:.1f} ms",
            TARGETS["key_ms"],
            figures["key_scroll_ms"],
        ),
        (
            "key: page down",
            f"{figures['key_page_ms']:.1f} ms",
            TARGETS["key_ms"],
            figures["key_page_ms"],
        ),
        (
            "key: sort (s)",
            f"{figures['key_sort_ms']:.1f} ms",
            TARGETS["key_ms"],
            figures["key_sort_ms"],
        ),
        (
            "filter (value0 < 0.5 and state == COMPLETE)",
            f"{figures['filter_ms']:.1f} ms",
            TARGETS["key_ms"],
            figures["filter_ms"],
        ),
        (
            "key: select (down, filtered)",
            f"{figures['key_select_ms']:.1f} ms",
            TARGETS["key_ms"],
            figures["key_select_ms"],
        ),
        ("app RSS", f"{figures['rss_mb']:.0f} MB", TARGETS["rss_mb"], figures["rss_mb"]),
    ]
    print(f"{'figure':46} {'measured':>12} {'target':>10}  met")
    for name, shown, target, value in rows:
        print(f"{name:46} {shown:>12} {target:>10g}  {'yes' if value <= target else 'NO'}")
    if args.optuna_limit > 0:
        took = optuna_get_all_trials(args.storage, args.study, args.optuna_limit)
        if took is None:
            ratio = args.optuna_limit / figures["paint_s"]
            print(
                f"optuna get_all_trials: > {args.optuna_limit:.0f} s (stopped); "
                f"ratio to the app's paint > {ratio:.0f}x"
            )
        else:
            print(
                f"optuna get_all_trials: {took:.2f} s; ratio to the app's paint "
                f"{took / figures['paint_s']:.1f}x; to an idle poll "
                f"{took * 1000 / figures['idle_poll_ms']:.0f}x"
            )


if __name__ == "__main__":
    main()
