"""Short words for figures on screen: ages, percentages, megabytes."""

from __future__ import annotations


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}M"
