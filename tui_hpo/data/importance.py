"""Parameter importance with Optuna's default evaluator, from a TrialFrame.

Optuna's ``get_param_importances`` wants a Study; an in-memory one is filled with the newest
COMPLETE trials of the frame (at most ``MAX_TRIALS``, since fANOVA's cost grows with them and
the newest trials say most about the region the sampler is in now). The app calls this from a
thread and only when the number of COMPLETE trials has grown.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from tui_hpo.data.frames import TrialFrame

MAX_TRIALS = 1000


def importances(frame: TrialFrame, objective: int = 0) -> dict[str, float]:
    """Param name -> importance (summing to 1) for one objective; {} when it can't be told."""
    import optuna
    from optuna.trial import TrialState, create_trial

    done = np.flatnonzero(frame.complete_mask() & ~np.isnan(frame.values[:, objective]))
    done = done[-MAX_TRIALS:]
    if len(done) < 2 or not frame.params:
        return {}
    study = optuna.create_study(direction=frame.directions[objective])
    batch = []
    for i in done:
        params, dists = {}, {}
        for name, column in frame.params.items():
            raw = column.values[i]
            if math.isnan(raw):
                continue
            params[name] = column.distribution.to_external_repr(raw)
            dists[name] = column.distribution
        if not params:
            continue
        batch.append(
            create_trial(
                state=TrialState.COMPLETE,
                value=float(frame.values[i, objective]),
                params=params,
                distributions=dists,
            )
        )
    if len(batch) < 2:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.add_trials(batch)
        try:
            return dict(optuna.importance.get_param_importances(study))
        except (ValueError, RuntimeError):
            return {}
