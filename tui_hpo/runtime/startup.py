"""Starting a worker or a launch without the cyclic garbage collector.

Importing Optuna, SQLAlchemy and an objective creates hundreds of thousands of objects and no
garbage, and the collector's passes over them cost about 5% of a process's start-up. Every
worker of every launch pays that start-up before its first trial, on a machine busy starting
the others (``benchmarks/launch_overhead.py``). So ``launch`` and ``worker`` switch the
collector off first, and each process turns it back on once it is ready to work, after moving
what exists by then out of its reach: all of it lives as long as the process, and a forked
supervisor then leaves the pages it shares with the launcher alone.
"""

from __future__ import annotations

import gc


def begin() -> None:
    gc.disable()


def done() -> None:
    """Turn the collector back on, if ``begin`` turned it off (not in a caller's process)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
