"""Synthetic objectives: fast, deterministic and with known answers.

Tests need objectives whose optimum or Pareto front is known exactly, and demos need trials
that look like training runs (intermediate values, pruning, a visible duration) without a
GPU. ``TUI_HPO_DEMO_SLEEP`` (seconds, read on every call so a running worker can be steered
by its environment) adds simulated training time: per step for stepped objectives, once
otherwise.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import optuna

SLEEP_ENV = "TUI_HPO_DEMO_SLEEP"
"""Environment variable with the simulated training time in seconds."""

QUADRATIC_STEPS = 10
"""Number of intermediate values ``quadratic`` and ``slow`` report."""

SLOW_DEFAULT_SLEEP = 0.5
"""Seconds per step for ``slow`` when ``TUI_HPO_DEMO_SLEEP`` is unset, slow enough to watch."""


def demo_sleep(default: float = 0.0) -> float:
    """Seconds of simulated work, from the environment at call time.

    A bad value raises instead of being ignored, so a typo shows up as failed trials rather
    than as a demo that silently runs at full speed.
    """
    raw = os.environ.get(SLEEP_ENV, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{SLEEP_ENV} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{SLEEP_ENV} must be a finite number >= 0, got {raw!r}")
    return seconds


def report_intermediate(trial: optuna.Trial, value: float, step: int) -> None:
    """Report ``value`` at ``step`` and raise ``TrialPruned`` when the pruner says so.

    Plain Optuna refuses ``Trial.report`` and ``Trial.should_prune`` in multi-objective
    studies. Under tui-hpo's workers both work there (the curve is recorded; ``should_prune``
    answers ``tui-hpo prune-trial``), so they are used whenever the trial accepts them; under
    plain Optuna the value goes straight to the storage (which accepts it) and pruning is
    skipped, as no Optuna pruner supports several objectives.
    """
    steered = getattr(trial, "reports_multi_objective", False)
    if isinstance(trial, optuna.Trial) and len(trial.study.directions) > 1 and not steered:
        # Private id: the public API has no other way to reach this trial's storage row.
        trial.storage.set_trial_intermediate_value(trial._trial_id, step, float(value))
        return
    trial.report(value, step)
    if trial.should_prune():
        raise optuna.TrialPruned()


def _quadratic(trial: optuna.Trial, sleep_per_step: float) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_float("y", -10.0, 10.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    # Minimum 0 at x=2, y=-1, lr=1e-3; the lr term is small so x and y dominate the plots.
    final = (x - 2.0) ** 2 + (y + 1.0) ** 2 + 0.1 * (math.log10(lr) + 3.0) ** 2
    # A loss-like curve: the gap to ``final`` shrinks as 1/(step+1) and is zero at the last
    # step, so the last intermediate value equals the returned one.
    for step in range(QUADRATIC_STEPS):
        if sleep_per_step > 0:
            time.sleep(sleep_per_step)
        gap = 5.0 * (1.0 / (step + 1) - 1.0 / QUADRATIC_STEPS)
        report_intermediate(trial, final + gap, step)
    return final


def quadratic(trial: optuna.Trial) -> float:
    """Single-objective bowl with a known minimum, reporting a training-like curve."""
    return _quadratic(trial, demo_sleep())


quadratic.directions = ["minimize"]


def slow(trial: optuna.Trial) -> float:
    """``quadratic`` slowed to half a second a step by default, for watching trials run."""
    return _quadratic(trial, demo_sleep(SLOW_DEFAULT_SLEEP))


slow.directions = ["minimize"]


ZDT1_N = 5
"""Number of ZDT1 variables (x0..x4)."""


def zdt1_front(f1: float) -> float:
    """The ZDT1 Pareto front, for checking points against it."""
    return 1.0 - math.sqrt(f1)


def zdt1(trial: optuna.Trial) -> tuple[float, float]:
    """Two objectives with a convex front, reached when x1..x4 are all 0."""
    xs = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(ZDT1_N)]
    _sleep_once()
    f1 = xs[0]
    g = 1.0 + 9.0 * sum(xs[1:]) / (ZDT1_N - 1)
    f2 = g * (1.0 - math.sqrt(f1 / g))
    return f1, f2


zdt1.directions = ["minimize", "minimize"]


DTLZ2_M = 3
"""Number of DTLZ2 objectives."""

DTLZ2_K = 5
"""Number of DTLZ2 distance variables; the first ``M - 1`` variables are positional."""


def dtlz2(trial: optuna.Trial) -> tuple[float, float, float]:
    """Three objectives whose front is the unit-sphere octant (distance variables at 0.5)."""
    n = DTLZ2_M - 1 + DTLZ2_K
    xs = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(n)]
    _sleep_once()
    g = sum((x - 0.5) ** 2 for x in xs[DTLZ2_M - 1 :])
    a = xs[0] * math.pi / 2
    b = xs[1] * math.pi / 2
    r = 1.0 + g
    return (
        r * math.cos(a) * math.cos(b),
        r * math.cos(a) * math.sin(b),
        r * math.sin(a),
    )


dtlz2.directions = ["minimize"] * DTLZ2_M


FLAKY_MODES = ("ok", "raise", "nan", "wrong_count")
"""Values of ``flaky``'s ``mode`` parameter, one per way a trial can end."""


def flaky(trial: optuna.Trial) -> float | Sequence[float]:
    """Fails in a chosen way, so failure handling can be tested trial by trial."""
    mode = trial.suggest_categorical("mode", FLAKY_MODES)
    _sleep_once()
    if mode == "raise":
        raise RuntimeError("flaky objective failed on purpose")
    if mode == "nan":
        return float("nan")
    if mode == "wrong_count":
        return (1.0, 2.0)
    return 1.0


flaky.directions = ["minimize"]


def hang(trial: optuna.Trial) -> float:
    """Never returns, standing in for a stuck worker (a deadlock, a hung GPU call)."""
    trial.suggest_float("x", 0.0, 1.0)
    time.sleep(10**6)
    return 0.0


hang.directions = ["minimize"]


def _sleep_once() -> None:
    seconds = demo_sleep()
    if seconds > 0:
        time.sleep(seconds)
