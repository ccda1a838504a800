from __future__ import annotations

import pytest

from tui_hpo.errors import UserError
from tui_hpo.machine import gpus
from tui_hpo.machine.gpus import (
    assign_gpus,
    cuda_visible_devices,
    gpu_count,
    parse_gpus,
    worker_env,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUI_HPO_GPU_COUNT", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _message(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# gpu_count


@pytest.mark.parametrize("value, expected", [("0", 0), ("1", 1), ("8", 8), (" 2 ", 2)])
def test_gpu_count_honours_env(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", value)
    assert gpu_count() == expected


def test_gpu_count_without_gpu_is_zero() -> None:
    # No GPU and no NVML driver on the test machine: detection must answer 0, not raise.
    assert gpu_count() == 0


def test_gpu_count_nvml_failure_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    def broken() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", broken)
    assert gpu_count() == 0


def test_gpu_count_uses_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    calls: list[str] = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: calls.append("init"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 4)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    assert gpu_count() == 4
    assert calls == ["init", "shutdown"]


@pytest.mark.parametrize("value", ["two", "-1", "1.5", ""])
def test_gpu_count_ignores_bad_override(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", value)
    assert gpu_count() == 0


@pytest.mark.parametrize(
    "inherited, expected", [("2,3", 2), ("5", 1), ("", 0), ("-1", 0), ("1,-1,2", 1), ("GPU-a", 1)]
)
def test_gpu_count_honours_inherited_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, inherited: str, expected: int
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", inherited)
    assert gpu_count() == expected


def test_gpu_count_override_beats_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "4")
    assert gpu_count() == 4


# parse_gpus


@pytest.mark.parametrize(
    "text, available, expected",
    [
        (None, 2, [0, 1]),
        (None, 0, []),
        ("all", 3, [0, 1, 2]),
        ("ALL", 1, [0]),
        ("all", 0, []),
        ("none", 4, []),
        ("None", 4, []),
        ("", 4, []),
        ("  ", 4, []),
        ("0", 1, [0]),
        ("0,1", 2, [0, 1]),
        (" 1 , 0 ", 2, [1, 0]),
        ("3,1", 4, [3, 1]),
    ],
)
def test_parse_gpus(text: str | None, available: int, expected: list[int]) -> None:
    assert parse_gpus(text, available) == expected


@pytest.mark.parametrize("text", ["x", "0,x", "-1", "1.5", "0,,1", "0,", "1-2", "²"])
def test_parse_gpus_not_an_index(text: str) -> None:
    with pytest.raises(UserError) as excinfo:
        parse_gpus(text, 4)
    assert _message(excinfo) == f"--gpus takes 'all', 'none' or indexes like 0,1; got {text!r}"


def test_parse_gpus_duplicate() -> None:
    with pytest.raises(UserError) as excinfo:
        parse_gpus("0,1,0", 2)
    assert "GPU 0 twice" in _message(excinfo)


@pytest.mark.parametrize(
    "text, available, message",
    [
        ("3", 2, "GPU 3 is not there: this machine has 2 GPUs (0-1)"),
        ("0,2", 2, "GPU 2 is not there: this machine has 2 GPUs (0-1)"),
        ("1", 1, "GPU 1 is not there: this machine has 1 GPU (0)"),
        ("0", 0, "GPU 0 is not there: this machine has no GPU"),
    ],
)
def test_parse_gpus_out_of_range(text: str, available: int, message: str) -> None:
    with pytest.raises(UserError) as excinfo:
        parse_gpus(text, available)
    assert _message(excinfo) == message
    assert excinfo.value.exit_code == 2


# assign_gpus


def test_assign_round_robin() -> None:
    assert assign_gpus(5, [0, 1], None) == [0, 1, 0, 1, 0]
    assert assign_gpus(2, [3, 1, 2], None) == [3, 1]
    assert assign_gpus(4, [2], None) == [2, 2, 2, 2]


def test_assign_within_cap() -> None:
    assert assign_gpus(4, [0, 1], 2) == [0, 1, 0, 1]
    assert assign_gpus(1, [0], 1) == [0]


def test_assign_cpu_only() -> None:
    assert assign_gpus(3, [], None) == [None, None, None]
    assert assign_gpus(3, [], 1) == [None, None, None]


@pytest.mark.parametrize(
    "workers, gpus_, per_gpu, message",
    [
        (
            4,
            [0],
            2,
            "4 workers need more GPU slots than 1 GPU x 2 per GPU = 2: "
            "raise --workers-per-gpu or lower --workers",
        ),
        (
            5,
            [0, 1],
            2,
            "5 workers need more GPU slots than 2 GPUs x 2 per GPU = 4: "
            "raise --workers-per-gpu or lower --workers",
        ),
        (2, [0], 0, "--workers-per-gpu must be at least 1, got 0"),
        (2, [], -1, "--workers-per-gpu must be at least 1, got -1"),
        (0, [0], None, "--workers must be at least 1"),
        (-3, [], None, "--workers must be at least 1"),
    ],
)
def test_assign_errors(workers: int, gpus_: list[int], per_gpu: int | None, message: str) -> None:
    with pytest.raises(UserError) as excinfo:
        assign_gpus(workers, gpus_, per_gpu)
    assert _message(excinfo) == message


# cuda_visible_devices / worker_env


def test_cuda_visible_devices() -> None:
    assert cuda_visible_devices(0) == "0"
    assert cuda_visible_devices(3) == "3"
    assert cuda_visible_devices(None) == ""


def test_cuda_visible_devices_translates_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert cuda_visible_devices(0) == "2"
    assert cuda_visible_devices(1) == "3"
    assert cuda_visible_devices(None) == ""


def test_worker_env_pins_pci_order_for_nvml_indexes() -> None:
    assert worker_env(1) == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert worker_env(None) == {"CUDA_VISIBLE_DEVICES": ""}


def test_worker_env_with_inherited_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaa,GPU-bbb")
    assert worker_env(1) == {"CUDA_VISIBLE_DEVICES": "GPU-bbb"}


def test_module_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tui_hpo.machine.gpus, tui_hpo.control.specs; "
        "heavy = [m for m in ('torch', 'textual', 'optuna', 'pynvml') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert gpus.COUNT_ENV == "TUI_HPO_GPU_COUNT"
