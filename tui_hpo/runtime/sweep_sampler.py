"""Random search as W&B draws it: for a parameter whose W&B distribution Optuna can't express
(``normal``, ``inv_log_uniform_values``, ``probabilities``, ...), the value comes from the
sweep's own prior; every other parameter is Optuna's ``RandomSampler`` as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial


class PriorRandomSampler(optuna.samplers.RandomSampler):
    def __init__(self, priors: dict[str, Callable[[Any], Any]], seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._priors = priors

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        prior = self._priors.get(param_name)
        if prior is None:
            return super().sample_independent(study, trial, param_name, param_distribution)
        return prior(self._rng.rng)
