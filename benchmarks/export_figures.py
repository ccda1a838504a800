"""Time ``tui-hpo export`` on a big study (target: 100,000 trials in at most 10 s).

What it measures: ``tui_hpo.data.export.export`` in this process, from an engine on the storage
to the last byte written (to a file in a temporary folder), once per format, best and all of
``--repeat`` runs; each run reads the study anew (a fresh engine, so no pool or cache carries
over). With ``--optuna``, Optuna's ``study.trials_dataframe()`` (which reads every trial through
``get_trials``) and its ``to_csv``, in a child process with a time limit, for comparison; that
needs pandas (a test-only dependency of tui-hpo, never of the export).

Make the study first (``make_big_study.py``, about 15-40 s for 100,000 trials)::

    .venv/bin/python benchmarks/make_big_study.py --storage sqlite:////tmp/big.db --study big \\
        --trials 100000 --params 3 --objectives 2 --max-steps 20 --running 8
    .venv/bin/python benchmarks/export_figures.py --storage sqlite:////tmp/big.db --study big \\
        [--repeat 3] [--optuna] [--optuna-limit-seconds 400]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

TARGET_S = 10.0

OPTUNA_CHILD = """
import sys, time, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
t0 = time.perf_counter()
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
df = study.trials_dataframe()
t1 = time.perf_counter()
df.to_csv(sys.argv[3], index=False)
t2 = time.perf_counter()
print(f"{len(df)} {t1 - t0:.2f} {t2 - t1:.2f}")
"""


def time_export(url: str, study: str, fmt: str, folder: Path) -> tuple[float, int, int]:
    """Seconds for one export, trials written, bytes written."""
    from tui_hpo.data import export, summaries

    out = folder / f"export.{fmt}"
    started = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            study_id = summaries.study_ids(con)[study]
        with open(out, "w", encoding="utf-8", newline="") as handle:
            n = export.export(engine, study_id, handle, fmt=fmt)
    finally:
        engine.dispose()
    return time.perf_counter() - started, n, out.stat().st_size


def time_optuna(url: str, study: str, folder: Path, limit: float) -> str:
    """Optuna's trials_dataframe + to_csv in a child process, or why there is no figure."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", OPTUNA_CHILD, url, study, str(folder / "optuna.csv")],
            capture_output=True,
            text=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        return f"not done after {limit:.0f} s"
    if proc.returncode != 0:
        return "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    n, frame_s, csv_s = proc.stdout.split()
    return f"{int(n):,} trials: trials_dataframe {frame_s} s, to_csv {csv_s} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="big")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--optuna", action="store_true", help="also time trials_dataframe")
    parser.add_argument("--optuna-limit-seconds", type=float, default=400.0)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for fmt in ("csv", "json"):
            runs = [time_export(args.storage, args.study, fmt, folder) for _ in range(args.repeat)]
            times = [r[0] for r in runs]
            n, size = runs[0][1], runs[0][2]
            verdict = "met" if min(times) <= TARGET_S else "not met"
            print(
                f"export {fmt:<4} {n:,} trials, {size / 1e6:.1f} MB: best {min(times):.2f} s "
                f"(runs: {', '.join(f'{t:.2f}' for t in times)}); target <= {TARGET_S:.0f} s: "
                f"{verdict}"
            )
        if args.optuna:
            print(
                "optuna   "
                + time_optuna(args.storage, args.study, folder, args.optuna_limit_seconds)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
