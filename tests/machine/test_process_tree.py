"""Signals to a process and what it started (``machine.process_tree``): a command trial's
program lives in a process group of its own, out of reach of a signal to its worker's group."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

from tests.support import wait_for
from tui_hpo.machine.process_tree import descendants, kill_tree, signal_tree

PARENT = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def start_parent() -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    return parent, child


def status(pid: int) -> str:
    return psutil.Process(pid).status()


def test_stop_and_continue_reach_a_child_in_its_own_session() -> None:
    parent, child = start_parent()
    try:
        assert descendants(parent.pid) == [child]
        signal_tree(parent.pid, signal.SIGSTOP)
        wait_for(lambda: status(child) == psutil.STATUS_STOPPED, 5, "the child stopped")
        assert status(parent.pid) == psutil.STATUS_STOPPED
        signal_tree(parent.pid, signal.SIGCONT)
        wait_for(lambda: status(child) == psutil.STATUS_SLEEPING, 5, "the child running")
        assert status(parent.pid) == psutil.STATUS_SLEEPING
    finally:
        kill_tree(parent.pid)
        parent.wait()


def test_kill_tree_leaves_nothing_behind() -> None:
    parent, child = start_parent()
    kill_tree(parent.pid)
    parent.wait()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and status(child) != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child outlived kill_tree"
        time.sleep(0.05)
