"""Signals to a process and everything it started.

A command trial's program runs in a process group and session of its own (so pruning ends it
and its children with one ``killpg``), which puts it out of reach of a signal to its worker's
group: freezing a worker, or killing it for ``fail-trial`` or ``--trial-timeout``, must walk
the worker's descendants instead.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

STOP_ROUNDS = 5
"""Passes over a tree being stopped: a child may start one more process between the moment
its parent's children are listed and the moment it is stopped itself."""


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first, then theirs), empty when it is gone."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def signal_tree(pid: int, sig: int) -> None:
    """``sig`` to ``pid`` and to everything it started. SIGSTOP goes to the parent first, so it
    can start nothing new while its children are being stopped, and the tree is listed again
    until nothing new shows; SIGCONT to the children first, so none is left stopped behind a
    parent that already runs (and waits on it)."""
    if sig == signal.SIGCONT:
        for target in [*descendants(pid), pid]:
            _send(target, sig)
        return
    _send(pid, sig)
    done: set[int] = set()
    for _ in range(STOP_ROUNDS if sig == signal.SIGSTOP else 1):
        below = [p for p in descendants(pid) if p not in done]
        if not below:
            break
        for target in below:
            _send(target, sig)
        done.update(below)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything it started. The tree is stopped first, so that none of it
    can start another process meanwhile, and listed before ``pid`` dies (its children are then
    re-parented and can't be found through it)."""
    signal_tree(pid, signal.SIGSTOP)
    below = descendants(pid)
    _send(pid, signal.SIGKILL)
    for target in below:
        _send(target, signal.SIGKILL)


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
