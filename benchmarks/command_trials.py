"""What a command trial costs beyond the program's own run (issue 11's goal: at most 50 ms a
trial over launching the program by hand).

Three measurements of the same small program (a Python script that prints five epochs of
``epoch N val_loss: X``):

- by hand: ``subprocess.run`` of it, N times, output captured; the baseline;
- in process: ``CommandObjective`` on an in-memory Optuna study (ask, run, tell): what the
  runner itself adds (argv, pipes, metric parsing, reports, the output file);
- end to end: ``tui-hpo launch --command ... --workers 1`` on a SQLite file; per trial, the
  trial's own span in the storage (start to complete) and the wall time between the first
  trial's start and the last one's end, divided by N: what a worker adds, storage included.

    .venv/bin/python benchmarks/command_trials.py [--trials 40]

Prints the figures and each overhead against the 50 ms goal (exits 1 when one misses it), and
how many output lines a second the metric reader gets through.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 50.0

PROGRAM = """\
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
args = p.parse_args()
for epoch in range(1, 6):
    print(f"epoch {epoch} val_loss: {args.lr / epoch:.6f}", flush=True)
"""


def by_hand(program: Path, trials: int) -> list[float]:
    spans = []
    for i in range(trials):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(program), f"--lr={0.01 + i * 1e-4}"],
            capture_output=True,
            check=True,
            cwd=program.parent,
        )
        spans.append(time.perf_counter() - start)
    return spans


def in_process(program: Path, trials: int, out: Path) -> list[float]:
    import optuna

    from tui_hpo.runtime import sweeps
    from tui_hpo.runtime.commands import CommandObjective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mapping = sweeps.sweep_from_flags(
        f"{sys.executable} {program.name} --lr={{lr}}",
        ["lr=uniform:0.01:0.1"],
        ["val_loss:minimize"],
        cwd=program.parent,
    )
    objective = CommandObjective(sweeps.sweep_from_mapping(mapping))
    objective.bind(output_dir=out, study="bench")
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner()
    )
    spans = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        study.tell(trial, objective(trial))
        spans.append(time.perf_counter() - start)
    return spans


def end_to_end(program: Path, trials: int, folder: Path) -> tuple[list[float], float]:
    import optuna

    url = f"sqlite:///{folder / 'bench.db'}"
    env = dict(os.environ, TUI_HPO_STORAGE=url)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tui_hpo",
            "launch",
            "--command",
            f"{sys.executable} {program.name} --lr={{lr}}",
            "--param",
            "lr=uniform:0.01:0.1",
            "--metric",
            "val_loss:minimize",
            "--cwd",
            str(program.parent),
            "--study",
            "bench",
            "--n-trials",
            str(trials),
            "--workers",
            "1",
            "--sampler",
            "random",
            "--log-dir",
            str(folder / "logs"),
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=folder,
    )
    done = optuna.load_study(study_name="bench", storage=url).trials
    assert len(done) == trials and all(t.state.name == "COMPLETE" for t in done), done[:3]
    spans = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    return spans, (last - first).total_seconds() / trials


def parse_rates(lines: int = 200_000) -> tuple[float, float]:
    """Lines a second that ``MetricReader`` gets through: a progress-bar line that names no
    metric (what a chatty program prints most), and a line with two metrics and a step."""
    from tui_hpo.runtime.metric_lines import MetricReader

    reader = MetricReader(["val_loss", "loss", "acc"])
    rates = []
    for line in (
        "Epoch 1/10: 100%|##########| 938/938 [00:12<00:00, 77.41it/s] lr=0.001",
        "Epoch 3/10 - loss: 0.2113 - acc: 0.9342 - val_loss: 0.3120",
    ):
        start = time.perf_counter()
        for _ in range(lines):
            reader.parse(line)
        rates.append(lines / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tui-hpo-bench-") as tmp:
        folder = Path(tmp)
        program = folder / "train.py"
        program.write_text(PROGRAM)
        by_hand(program, 3)  # warm the page cache and the interpreter's files
        hand = statistics.median(by_hand(program, args.trials))
        inproc = statistics.median(in_process(program, args.trials, folder / "out"))
        spans, per_trial_wall = end_to_end(program, args.trials, folder)
        e2e = statistics.median(spans)
    rows = [
        ("by hand (subprocess.run)", hand, None),
        ("CommandObjective, in process", inproc, inproc - hand),
        ("launch --command: trial span in the storage", e2e, e2e - hand),
        (
            "launch --command: wall per trial, first start to last end",
            per_trial_wall,
            per_trial_wall - hand,
        ),
    ]
    print(f"{args.trials} trials of a 5-epoch Python program (medians, ms)")
    print(f"{'':60} {'per trial':>10} {'over hand':>10} {'goal':>6}")
    missed = False
    for name, value, over in rows:
        verdict = ""
        if over is not None:
            ok = over * 1e3 <= GOAL_MS
            missed |= not ok
            verdict = f"{'ok' if ok else 'MISS':>6}"
        over_text = f"{over * 1e3:10.1f}" if over is not None else f"{'':>10}"
        print(f"{name:60} {value * 1e3:10.1f} {over_text} {verdict}")
    print(f"goal: at most {GOAL_MS:.0f} ms a trial over launching the program by hand")
    quiet, metric = parse_rates()
    print(
        f"metric lines read: {quiet / 1e6:.2f} M lines/s without a metric name, "
        f"{metric / 1e6:.2f} M lines/s with two metrics and a step"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
