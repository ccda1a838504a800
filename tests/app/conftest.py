"""Fixtures of the app's tests: the workers a test starts, and a machine with no GPU."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.app.pilot import Workers


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[str], Workers]]:
    """``workers(url)``: a Workers for that storage, cleaned up however the test ends."""
    made: list[Workers] = []

    def make(url: str) -> Workers:
        w = Workers(url, tmp_path)
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:
            w.cleanup()


@pytest.fixture
def no_gpu(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Workers the app itself starts (new-study form, +) see no GPU and log under tmp."""
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "0")
    return workdir
