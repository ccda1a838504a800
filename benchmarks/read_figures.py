"""How fast the app reads a big study: tui-hpo's ``StudyReader`` against Optuna's own API.

The app redraws from a study's trials every second or so, so reading them must stay cheap at
100,000 trials. On one storage and study (make one with ``benchmarks/make_big_study.py``) this
measures:

(a) Optuna: ``optuna.load_study(...).get_trials(deepcopy=False)``, the first call (every trial
    becomes a FrozenTrial, with its params, values, attrs and intermediate values) and the
    median of a few repeats (Optuna's ``_CachedStorage`` then re-reads only unfinished and new
    trials, but still sorts and lists them all). It runs in a child process, so it can be cut
    off at ``--optuna-limit-seconds`` and its memory is its own; its peak RSS is reported too.
    If it is cut off and ``--optuna-fallback-study`` names a smaller study in the same storage,
    Optuna is timed there instead and its first read scaled linearly to this study's size
    (marked "scaled": a rough estimate; use a fallback of 20,000 trials or more so fixed costs
    don't dominate). Its refresh time and RSS are shown as measured on the smaller study.
(b) ``tui_hpo.data.frames.StudyReader.poll()``, cold: the first poll of a new reader in this
    process (every trial's state, times, values, params and provenance attrs; no curves); then
    the best of ``--cold-repeat`` such polls by fresh readers, which a busy machine spoils less.
(c) ``poll()`` again with nothing new: the median of ``--repeat`` polls (the app's steady state;
    it should hand back the same frame object).
(d) ``reader.curves(ids)`` for 20 trials spread over the study (what a curves panel shows):
    the first call and the median of repeats.
(e) ``pareto_mask(frame)`` and ``hypervolume_history(frame)`` on the polled frame (medians).
(f) Peak RSS of this process before and after the cold poll (``ru_maxrss``).
(g) Only with ``--end-trials N``, which WRITES to the storage: N times, one COMPLETE trial is
    added (Optuna's storage API) and the next poll timed: the steady cost while a study runs,
    since any change makes the reader build a new frame.

Everything runs one after another (this is meant for small machines), on whatever the file or
server cache holds: a study just written by make_big_study is in the OS page cache, as a study
that workers are writing would be. Timings are wall-clock ``perf_counter`` seconds; the cold
reads also give CPU seconds of the reading process, which a busy shared machine inflates less
(for SQLite the database work is in-process, so CPU time covers it; for PostgreSQL the server's
share is not in it).

``--profile`` also runs one cold poll of a fresh reader under cProfile and prints where it
spends its time.

Usage::

    python benchmarks/read_figures.py --storage sqlite:////tmp/big.db --study big \\
        [--repeat 50] [--skip-optuna] [--optuna-limit-seconds 300] \\
        [--optuna-fallback-study big20k] [--end-trials 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import TrialState

OPTUNA_CHILD = "--optuna-child"


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one call (CPU: this process only, so a busy machine shows)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


# (a) Optuna, in a child process ------------------------------------------------------------


def optuna_child(url: str, study_name: str, repeat: int) -> int:
    """Time Optuna's reads and print them as one JSON line (runs in the child process)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_s, study = timed(lambda: optuna.load_study(study_name=study_name, storage=url))
    first_s, first_cpu_s, trials = timed_cpu(lambda: study.get_trials(deepcopy=False))
    again = [timed(lambda: study.get_trials(deepcopy=False))[0] for _ in range(repeat)]
    print(
        json.dumps(
            {
                "n": len(trials),
                "load_s": load_s,
                "first_s": first_s,
                "first_cpu_s": first_cpu_s,
                "again_s": statistics.median(again),
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )
    return 0


@dataclass
class OptunaFigures:
    study: str
    n: int
    load_s: float
    first_s: float
    first_cpu_s: float
    again_s: float
    peak_rss_mib: float
    scale: float = 1.0  # > 1 when measured on a smaller study and scaled to this one

    @property
    def scaled_first_s(self) -> float:
        return self.first_s * self.scale


def run_optuna(url: str, study: str, limit_s: float, repeat: int) -> OptunaFigures | None:
    """Optuna's figures from a child process, or None when it ran past ``limit_s``."""
    cmd = [sys.executable, os.path.abspath(__file__), OPTUNA_CHILD, url, study, str(repeat)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"the Optuna child failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return OptunaFigures(study=study, **got)


# (b)-(f) tui-hpo ---------------------------------------------------------------------------


@dataclass
class TuiFigures:
    n: int
    counts: dict[str, int]
    rss_before_mib: float
    cold_s: float
    cold_cpu_s: float
    best_cold_s: float
    best_cold_cpu_s: float
    cold_repeat: int
    rss_after_mib: float
    again_s: float
    again_max_s: float
    same_frame: bool
    curves_first_s: float
    curves_s: float
    curve_points: int
    pareto_s: float
    front: int
    hypervolume_s: float
    ended_s: float | None = None
    ended_n: int = 0


def measure_tui(
    url: str,
    study: str,
    *,
    repeat: int,
    cold_repeat: int,
    end_trials: int,
    say: Callable[[str], None],
) -> TuiFigures:
    from tui_hpo.data import analysis, frames, summaries
    from tui_hpo.storage.engines import open_storage
    from tui_hpo.storage.urls import parse_url

    storage = open_storage(parse_url(url), must_exist=True)
    engine = storage.engine
    with engine.connect() as con:
        study_id = summaries.study_ids(con).get(study)
        if study_id is None:
            raise SystemExit(f"no study {study!r} in {url}")
        directions = summaries.directions(con, study_id)
    gc.collect()
    rss_before = peak_rss_mib()
    reader = frames.StudyReader(engine, study_id, directions)
    cold_s, cold_cpu_s, frame = timed_cpu(reader.poll)
    rss_after = peak_rss_mib()
    say(f"  cold poll: {cold_s:.3f} s ({cold_cpu_s:.3f} s CPU), {len(frame):,} trials")
    best_cold_s, best_cold_cpu_s = cold_s, cold_cpu_s
    for _ in range(cold_repeat - 1):  # fresh readers: the best of a few, on a busy machine
        t, c, _ = timed_cpu(frames.StudyReader(engine, study_id, directions).poll)
        best_cold_s, best_cold_cpu_s = min(best_cold_s, t), min(best_cold_cpu_s, c)
    if cold_repeat > 1:
        say(
            f"  cold poll, best of {cold_repeat}: {best_cold_s:.3f} s ({best_cold_cpu_s:.3f} s CPU)"
        )

    polls = []
    same = True
    for _ in range(repeat):
        t, again = timed(reader.poll)
        polls.append(t)
        same = same and again is frame
    say(f"  no-change poll: median {statistics.median(polls) * 1e3:.2f} ms")

    picks = np.linspace(0, len(frame) - 1, num=min(20, len(frame))).astype(int)
    ids = [int(frame.trial_id[i]) for i in picks]
    curves_first_s, got = timed(lambda: reader.curves(ids))
    curves_s = median_time(lambda: reader.curves(ids), max(5, repeat // 5))

    pareto_s = median_time(lambda: analysis.pareto_mask(frame), 5)
    front = int(analysis.pareto_mask(frame).sum()) if frame.n_objectives > 1 else 0
    hv_s = median_time(lambda: analysis.hypervolume_history(frame), 5)
    if frame.n_objectives == 1:  # pareto/hypervolume are for several objectives
        say("  single objective: pareto/hypervolume timed anyway, on one objective")

    ended: list[float] = []
    for i in range(end_trials):  # (g), opt-in: it writes to the storage
        trial_id = storage.create_new_trial(study_id)
        storage.set_trial_state_values(
            trial_id, TrialState.COMPLETE, [0.5 + 0.01 * i] * frame.n_objectives
        )
        t, newer = timed(reader.poll)
        if newer is frame or len(newer) != len(frame) + i + 1:
            raise SystemExit("the poll after a new trial did not show it")
        ended.append(t)
    if ended:
        say(f"  poll after one trial ended: median {statistics.median(ended) * 1e3:.1f} ms")
    engine.dispose()
    return TuiFigures(
        n=len(frame),
        counts=frame.counts(),
        rss_before_mib=rss_before,
        cold_s=cold_s,
        cold_cpu_s=cold_cpu_s,
        best_cold_s=best_cold_s,
        best_cold_cpu_s=best_cold_cpu_s,
        cold_repeat=cold_repeat,
        rss_after_mib=rss_after,
        again_s=statistics.median(polls),
        again_max_s=max(polls),
        same_frame=same,
        curves_first_s=curves_first_s,
        curves_s=curves_s,
        curve_points=sum(len(c) for c in got.values()),
        pareto_s=pareto_s,
        front=front,
        hypervolume_s=hv_s,
        ended_s=statistics.median(ended) if ended else None,
        ended_n=len(ended),
    )


def profile_cold_poll(url: str, study: str, top: int) -> str:
    """cProfile of one cold poll by a fresh reader: the top functions by own and total time."""
    from tui_hpo.data import frames, summaries
    from tui_hpo.storage.engines import open_storage
    from tui_hpo.storage.urls import parse_url

    engine = open_storage(parse_url(url), must_exist=True).engine
    with engine.connect() as con:
        study_id = summaries.study_ids(con)[study]
        directions = summaries.directions(con, study_id)
    reader = frames.StudyReader(engine, study_id, directions)
    prof = cProfile.Profile()
    prof.enable()
    reader.poll()
    prof.disable()
    engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# report ------------------------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def ratio(optuna_s: float | None, tui_s: float) -> str:
    if optuna_s is None or tui_s <= 0:
        return "-"
    return f"{optuna_s / tui_s:,.0f}x"


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def report(
    tui: TuiFigures, opt: OptunaFigures | None, optuna_note: str, say: Callable[[str], None]
) -> None:
    first = opt.scaled_first_s if opt else None
    again = opt.again_s if opt else None
    mark = " (scaled)" if opt and opt.scale != 1.0 else ""
    at = f" (at {opt.n:,})" if opt and opt.scale != 1.0 else ""
    rows = [
        ("read every trial, cold", ms(first) + mark, ms(tui.cold_s), ratio(first, tui.cold_s)),
        (
            "  the same, CPU time",
            ms(opt.first_cpu_s * opt.scale) + mark if opt else "-",
            ms(tui.cold_cpu_s),
            ratio(opt.first_cpu_s * opt.scale if opt else None, tui.cold_cpu_s),
        ),
        (f"  best of {tui.cold_repeat} fresh readers", "", ms(tui.best_cold_s), ""),
        (f"  best of {tui.cold_repeat}, CPU time", "", ms(tui.best_cold_cpu_s), ""),
        (
            "refresh, nothing new",
            ms(again) + at,
            ms(tui.again_s),
            "" if at else ratio(again, tui.again_s),
        ),
        (
            f"poll after a trial ended (x{tui.ended_n})",
            "-",
            ms(tui.ended_s) if tui.ended_s is not None else "not run",
            "",
        ),
        ("curves of 20 trials, first", "-", ms(tui.curves_first_s), ""),
        ("curves of 20 trials, median", "-", ms(tui.curves_s), ""),
        ("pareto_mask", "-", ms(tui.pareto_s), ""),
        ("hypervolume_history", "-", ms(tui.hypervolume_s), ""),
        (
            "peak RSS after first read",
            f"{opt.peak_rss_mib:,.0f} MiB{at}" if opt else "-",
            f"{tui.rss_after_mib:,.0f} MiB",
            "" if at or not opt else f"{opt.peak_rss_mib / tui.rss_after_mib:,.0f}x",
        ),
    ]
    for line in table([("", "Optuna", "tui-hpo", "Optuna/tui"), *rows]):
        say(line)
    say("")
    say(
        f"trials: {tui.n:,} {tui.counts}; pareto front {tui.front}; curve points {tui.curve_points}"
    )
    say(
        f"tui-hpo: RSS peak {tui.rss_before_mib:,.0f} MiB before the cold poll, "
        f"{tui.rss_after_mib:,.0f} MiB after; no-change poll max {ms(tui.again_max_s)}, "
        f"same frame object every time: {tui.same_frame}"
    )
    if opt:
        say(
            f"Optuna ({opt.study!r}, {opt.n:,} trials): load_study {ms(opt.load_s)}, "
            f"first get_trials {ms(opt.first_s)}, again {ms(opt.again_s)}, "
            f"peak RSS {opt.peak_rss_mib:,.0f} MiB"
        )
    if optuna_note:
        say(optuna_note)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="big")
    parser.add_argument("--repeat", type=int, default=50, help="no-change polls (median)")
    parser.add_argument(
        "--cold-repeat", type=int, default=3, help="cold polls by fresh readers (best shown too)"
    )
    parser.add_argument("--skip-optuna", action="store_true")
    parser.add_argument("--optuna-limit-seconds", type=float, default=300.0)
    parser.add_argument("--optuna-repeat", type=int, default=3, help="repeat get_trials calls")
    parser.add_argument(
        "--optuna-fallback-study",
        help="a smaller study in the same storage to time Optuna on if the limit is hit",
    )
    parser.add_argument(
        "--end-trials",
        type=int,
        default=0,
        metavar="N",
        help="WRITES to the storage: add N COMPLETE trials one by one, timing the poll after each",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one cold poll")
    parser.add_argument("--profile-top", type=int, default=25)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [OPTUNA_CHILD]:
        return optuna_child(argv[1], argv[2], int(argv[3]))
    args = parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"tui-hpo StudyReader on {args.study!r}:")
    tui = measure_tui(
        args.storage,
        args.study,
        repeat=args.repeat,
        cold_repeat=max(1, args.cold_repeat),
        end_trials=args.end_trials,
        say=say,
    )

    opt: OptunaFigures | None = None
    note = ""
    if args.skip_optuna:
        note = "Optuna skipped (--skip-optuna)."
    else:
        say(f"Optuna get_trials on {args.study!r} (limit {args.optuna_limit_seconds:.0f} s)...")
        opt = run_optuna(args.storage, args.study, args.optuna_limit_seconds, args.optuna_repeat)
        if opt is None:
            note = f"Optuna on {args.study!r} ran past {args.optuna_limit_seconds:.0f} s: cut off."
            if args.optuna_fallback_study:
                say(f"... cut off; timing Optuna on {args.optuna_fallback_study!r} instead")
                opt = run_optuna(
                    args.storage,
                    args.optuna_fallback_study,
                    args.optuna_limit_seconds,
                    args.optuna_repeat,
                )
                if opt is not None:
                    opt.scale = tui.n / max(opt.n, 1)
                    note += (
                        f" Its first read is from {opt.study!r} ({opt.n:,} trials) scaled "
                        f"x{opt.scale:.1f} to {tui.n:,} trials, a rough estimate; its refresh "
                        "and RSS are as measured there, not scaled."
                    )
        elif opt.n != tui.n + tui.ended_n:
            note = f"Optuna saw {opt.n:,} trials, tui-hpo {tui.n + tui.ended_n:,}."
    say("")
    report(tui, opt, note, say)
    if args.profile:
        say("")
        say("cProfile of one cold poll (fresh reader):")
        say(profile_cold_poll(args.storage, args.study, args.profile_top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
