"""What the study view computes from trial values: the Pareto front, the best value so far and
the hypervolume of the front so far.

One non-domination test serves ``status`` (a summary's front size) and the app (the front on
the Pareto plot and in the table): Optuna's own, on values turned into losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tui_hpo.data.frames import TrialFrame


def front_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows of ``values`` (n trials x k objectives) are on the Pareto front; a row with a
    missing value (NaN) never is."""
    from optuna.study._multi_objective import _is_pareto_front

    mask = np.zeros(len(values), dtype=bool)
    whole = ~np.isnan(values).any(axis=1) if len(values) else mask
    if not whole.any():
        return mask
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    mask[np.flatnonzero(whole)] = _is_pareto_front(
        values[whole] * signs, assume_unique_lexsorted=False
    )
    return mask


def pareto_mask(frame: TrialFrame) -> np.ndarray:
    """COMPLETE trials of the frame on the Pareto front."""
    mask = np.zeros(len(frame), dtype=bool)
    done = np.flatnonzero(frame.complete_mask())
    mask[done] = front_mask(frame.values[done], frame.directions)
    return mask


def best_history(frame: TrialFrame) -> tuple[np.ndarray, np.ndarray]:
    """(trial numbers, best value so far) over COMPLETE trials, single objective."""
    done = frame.complete_mask() & ~np.isnan(frame.values[:, 0])
    numbers = frame.number[done]
    values = frame.values[done, 0]
    if frame.directions[0] == "maximize":
        return numbers, np.maximum.accumulate(values) if len(values) else values
    return numbers, np.minimum.accumulate(values) if len(values) else values


def hypervolume_history(frame: TrialFrame, points: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(trial numbers, hypervolume of the front so far) at up to ``points`` checkpoints.

    The reference point is the worst value seen per objective plus 10% of the range, fixed over
    the history so the curve can only rise.
    """
    from optuna._hypervolume import compute_hypervolume
    from optuna.study._multi_objective import _is_pareto_front

    done = frame.complete_mask() & ~np.isnan(frame.values).any(axis=1)
    if done.sum() < 1:
        return np.array([]), np.array([])
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in frame.directions])
    loss = frame.values[done] * signs
    numbers = frame.number[done]
    finite = np.isfinite(loss).all(axis=1)
    loss, numbers = loss[finite], numbers[finite]
    if len(loss) == 0:
        return np.array([]), np.array([])
    span = loss.max(axis=0) - loss.min(axis=0)
    ref = loss.max(axis=0) + 0.1 * np.where(span > 0, span, 1.0)
    cuts = np.unique(np.linspace(1, len(loss), min(points, len(loss))).astype(int))
    xs, ys = [], []
    front = np.empty((0, loss.shape[1]))
    prev = 0
    for cut in cuts:
        candidates = np.vstack([front, loss[prev:cut]])
        front = candidates[_is_pareto_front(candidates, assume_unique_lexsorted=False)]
        prev = cut
        xs.append(numbers[cut - 1])
        ys.append(compute_hypervolume(front, ref, assume_pareto=True))
    return np.asarray(xs), np.asarray(ys)
