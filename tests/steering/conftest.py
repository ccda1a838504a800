"""Fixtures of the steering tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.steering.running import RunningStudy


@pytest.fixture
def study(storage_url: str, workdir: Path) -> Iterator[RunningStudy]:
    s = RunningStudy(storage_url, "S", workdir)
    try:
        yield s
    finally:
        s.cleanup()
