"""CPU, memory and GPU figures of local worker processes, where the machine answers, and the
tail of a local worker's log.

psutil gives CPU and RSS for any process; NVIDIA's management library (nvidia-ml-py) gives GPU
utilisation and the GPU memory each process holds. Either may be missing (no NVIDIA driver here,
a process that just exited): the figure is then None and the app shows a dash.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareRow:
    """CPU/RSS of a local worker process and the figures of its GPU, where they answer."""

    pid: int
    cpu_percent: float | None
    rss_mb: float | None
    gpu_util: float | None
    gpu_mem_mb: float | None


_procs: dict[int, object] = {}
_lock = threading.Lock()
_nvml_ok: bool | None = None


def _nvml() -> object | None:
    """pynvml, initialised once; None when no NVIDIA driver answers."""
    global _nvml_ok
    if _nvml_ok is False:
        return None
    try:
        import pynvml

        if _nvml_ok is None:
            pynvml.nvmlInit()
            _nvml_ok = True
        return pynvml
    except Exception:
        _nvml_ok = False
        return None


def _gpu_by_pid() -> dict[int, tuple[float, float]]:
    """pid -> (utilisation % of its GPU, MiB it holds on that GPU)."""
    nv = _nvml()
    if nv is None:
        return {}
    out: dict[int, tuple[float, float]] = {}
    try:
        for i in range(nv.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
            handle = nv.nvmlDeviceGetHandleByIndex(i)  # type: ignore[attr-defined]
            util = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)  # type: ignore[attr-defined]
            for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):  # type: ignore[attr-defined]
                used = (proc.usedGpuMemory or 0) / 2**20
                out[proc.pid] = (util, used)
    except Exception:
        return out
    return out


def figures(pids: list[int]) -> dict[int, HardwareRow]:
    """Figures for each pid; the first CPU reading of a new process is 0 (psutil needs two
    samples), later ones cover the time since the previous call."""
    import psutil

    gpus = _gpu_by_pid()
    out: dict[int, HardwareRow] = {}
    with _lock:
        for pid in pids:
            proc = _procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # type: ignore[attr-defined]
                    _procs[pid] = proc
                cpu = proc.cpu_percent(None)  # type: ignore[attr-defined]
                rss = proc.memory_info().rss / 2**20  # type: ignore[attr-defined]
            except Exception:
                _procs.pop(pid, None)
                cpu = rss = None
            util, mem = gpus.get(pid, (None, None))
            out[pid] = HardwareRow(pid, cpu, rss, util, mem)
    return out


def log_tail(path: str | None, lines: int = 200) -> list[str]:
    """The last lines of a local worker's log (empty when there is none to read): the last
    64 KiB only, however long the log has grown."""
    import os
    from collections import deque

    if not path or not os.path.isfile(path):
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return list(deque(text.splitlines(), maxlen=lines))
