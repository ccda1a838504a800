"""Which GPUs exist and which one each worker gets.

Each worker process is pinned to one GPU by giving it its own ``CUDA_VISIBLE_DEVICES``, so the
objective code never has to choose a device: inside a worker, ``cuda:0`` is its GPU.

GPU indexes the user types (``--gpus 0,1``) are the ones ``nvidia-smi`` shows, i.e. NVML's,
which follow PCI bus order. CUDA by default numbers devices fastest-first instead, so workers
also get ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (see :func:`worker_env`); on a machine with mixed
cards the two orders differ and a worker would otherwise land on the wrong card.

When tui-hpo itself was started with ``CUDA_VISIBLE_DEVICES`` set (a shared machine, where the
user keeps to their share), that list is the machine as far as tui-hpo is concerned: index ``i``
means its ``i``-th entry, and no worker is handed a GPU outside it.
"""

from __future__ import annotations

import os

from tui_hpo.errors import UserError

COUNT_ENV = "TUI_HPO_GPU_COUNT"
"""Overrides GPU detection: for machines without NVML, and for tests."""

_USAGE = "--gpus takes 'all', 'none' or indexes like 0,1"


def gpu_count() -> int:
    """GPUs visible on this machine: env TUI_HPO_GPU_COUNT if set (an integer: for machines where
    NVML is missing, and for tests); else the entries of an inherited CUDA_VISIBLE_DEVICES; else
    NVML via nvidia-ml-py (any failure -> 0). Never raises: no GPU just means CPU workers.

    A TUI_HPO_GPU_COUNT that is not a non-negative integer is ignored rather than fatal.
    """
    override = os.environ.get(COUNT_ENV, "").strip()
    if override.isascii() and override.isdigit():
        return int(override)
    inherited = _inherited_devices()
    if inherited is not None:
        return len(inherited)
    return _nvml_count()


def _nvml_count() -> int:
    try:
        import pynvml
    except Exception:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _inherited_devices() -> list[str] | None:
    """Entries of our own CUDA_VISIBLE_DEVICES (indexes, UUIDs or MIG ids), None when unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry; "-1" is the idiom for "hide all"
        entries.append(entry)
    return entries


def parse_gpus(text: str | None, available: int) -> list[int]:
    """'--gpus' value -> GPU indexes. None -> all available; 'all' -> list(range(available));
    'none' or '' -> []; '0,1' -> [0, 1] (spaces ok, duplicates an error). Indexes that are not
    there, negatives and non-integers are UserErrors naming the value."""
    if text is None:
        return list(range(available))
    value = text.strip().lower()
    if value == "all":
        return list(range(available))
    if value in ("none", ""):
        return []
    indexes: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            raise UserError(f"{_USAGE}; got {text!r}")
        index = int(part)
        if index in indexes:
            raise UserError(f"--gpus names GPU {index} twice; got {text!r}")
        if index >= available:
            raise UserError(f"GPU {index} is not there: this machine has {_describe(available)}")
        indexes.append(index)
    return indexes


def _describe(available: int) -> str:
    if available <= 0:
        return "no GPU"
    if available == 1:
        return "1 GPU (0)"
    return f"{available} GPUs (0-{available - 1})"


def assign_gpus(workers: int, gpus: list[int], per_gpu: int | None) -> list[int | None]:
    """GPU for each of `workers` workers, round-robin over `gpus` so that the load spreads before
    it stacks; None for each when `gpus` is empty (CPU only). `per_gpu` caps workers per GPU,
    for objectives that need a GPU's memory to themselves."""
    if workers < 1:
        raise UserError("--workers must be at least 1")
    if per_gpu is not None and per_gpu < 1:
        raise UserError(f"--workers-per-gpu must be at least 1, got {per_gpu}")
    if not gpus:
        return [None] * workers
    if per_gpu is not None and workers > len(gpus) * per_gpu:
        plural = "GPU" if len(gpus) == 1 else "GPUs"
        raise UserError(
            f"{workers} workers need more GPU slots than {len(gpus)} {plural} x {per_gpu} per GPU"
            f" = {len(gpus) * per_gpu}: raise --workers-per-gpu or lower --workers"
        )
    return [gpus[i % len(gpus)] for i in range(workers)]


def cuda_visible_devices(gpu: int | None) -> str:
    """Value for a worker's CUDA_VISIBLE_DEVICES: the GPU (translated through an inherited
    CUDA_VISIBLE_DEVICES when there is one), or "" for None: CUDA documents that an empty value
    hides every GPU, which is how a CPU-only worker is kept off the cards."""
    if gpu is None:
        return ""
    inherited = _inherited_devices()
    if inherited is not None and 0 <= gpu < len(inherited):
        return inherited[gpu]
    return str(gpu)


def worker_env(gpu: int | None) -> dict[str, str]:
    """Environment entries that pin a worker to `gpu`: merge into the worker's environment.

    CUDA_DEVICE_ORDER is set only when the index is NVML's own (no inherited
    CUDA_VISIBLE_DEVICES); an inherited list is read in whatever order the user's environment
    already uses, which the worker inherits too.
    """
    env = {"CUDA_VISIBLE_DEVICES": cuda_visible_devices(gpu)}
    if gpu is not None and _inherited_devices() is None:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env
