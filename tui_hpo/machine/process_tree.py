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


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first, then theirs), empty when it is gone."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def signal_tree(pid: int, sig: int) -> None:
    """``sig`` to ``pid`` and to everything it started. SIGSTOP goes to the parent first, so it
    can start nothing new while its children are being stopped; SIGCONT to the children first,
    so none is left stopped behind a parent that already runs (and waits on it)."""
    if sig == signal.SIGCONT:
        for target in [*descendants(pid), pid]:
            _send(target, sig)
        return
    _send(pid, sig)
    for target in descendants(pid):
        _send(target, sig)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything it started (collected first: once ``pid`` is dead its
    children are re-parented and can't be found through it)."""
    below = descendants(pid)
    _send(pid, signal.SIGKILL)
    for target in below:
        _send(target, signal.SIGKILL)


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
