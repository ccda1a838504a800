"""The app in a real terminal, from process start: how long until the study view is painted,
then how busy the process stays and how much memory it holds (issue 12's targets: 100,000
trials painted in at most 2 s, 1,000,000 in at most 5 s at RSS at most 1.5 GB, and idle CPU
within 30 s of opening).

``tui-hpo ui --study S`` starts in a tmux session of the given size (a real terminal: the
paint is what tmux's screen shows); the screen is read every 50 ms until the trials table shows
a trial's state, which is the time reported (from the ``tmux new-session`` call, so the
interpreter's start and every import are in it). Then the process's CPU share is sampled every
``--sample`` seconds for ``--watch`` seconds, with its RSS, and the first moment from which it
stays under 10% of a core is reported as "settled".

    .venv/bin/python benchmarks/make_big_study.py --storage sqlite:////tmp/big1m.db \\
        --study big --trials 1000000 --params 3 --objectives 2 --max-steps 20 --running 8
    .venv/bin/python benchmarks/app_start.py --storage sqlite:////tmp/big1m.db --study big
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

import psutil

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
IDLE_SHARE = 0.10


def screen(name: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True, check=False
    ).stdout


def app_process(name: str) -> psutil.Process | None:
    """The ``tui_hpo ui`` process under the tmux pane."""
    out = subprocess.run(
        ["tmux", "list-panes", "-t", name, "-F", "#{pane_pid}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not out:
        return None
    pane = psutil.Process(int(out[0]))
    for proc in [pane, *pane.children(recursive=True)]:
        try:
            if "ui" in proc.cmdline() and any("tui" in w for w in proc.cmdline()):
                return proc
        except psutil.Error:
            continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="big")
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--watch", type=float, default=60.0)
    parser.add_argument("--sample", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    cols, rows = args.size.split("x")
    name = f"appstart{os.getpid()}"
    command = [
        sys.executable,
        "-m",
        "tui_hpo",
        "ui",
        "--storage",
        args.storage,
        "--study",
        args.study,
    ]
    t0 = time.perf_counter()
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            cols,
            "-y",
            rows,
            "TERM=xterm-256color " + shlex.join(command),
        ],
        check=True,
    )
    try:
        painted = None
        while time.perf_counter() - t0 < args.timeout:
            shown = screen(name)
            if any(state in shown for state in STATES):
                painted = time.perf_counter() - t0
                break
            time.sleep(0.05)
        if painted is None:
            print(f"not painted after {args.timeout:.0f} s:\n{screen(name)}")
            return
        proc = app_process(name)
        assert proc is not None, "no tui-hpo ui process under the pane"
        print(f"study view painted {painted:.2f} s after the process started ({args.size})")
        proc.cpu_percent(None)
        settled = None
        peak = 0
        start = time.perf_counter()
        while time.perf_counter() - start < args.watch:
            time.sleep(args.sample)
            share = proc.cpu_percent(None) / 100.0
            rss = proc.memory_info().rss
            peak = max(peak, rss)
            at = time.perf_counter() - t0
            print(f"  {at:6.1f} s  cpu {share:5.0%} of a core  rss {rss / 2**20:7.0f} MB")
            if share < IDLE_SHARE:
                settled = settled if settled is not None else at
            else:
                settled = None
        word = f"{settled:.1f} s after start" if settled is not None else "not within the watch"
        print(f"settled under {IDLE_SHARE:.0%} of a core: {word}; peak RSS {peak / 2**20:.0f} MB")
        last = screen(name).splitlines()
        print("\n".join(last[:6]))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)


if __name__ == "__main__":
    main()
