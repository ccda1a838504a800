"""Random search as W&B draws it.

For a parameter whose W&B distribution Optuna can't express (``normal``, ``probabilities``,
the rounding ``q_`` kinds, ...), the value comes from the sweep's own prior
(``Param.prior``); every other parameter is Optuna's ``RandomSampler`` as it is. Only random
search can do this: a model-based sampler (TPE, GP, ...) proposes values from its own model of
the bounded space, and docs/sweeps.md says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    import numpy as np
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

Prior = Callable[["np.random.RandomState"], Any]


class PriorRandomSampler(optuna.samplers.RandomSampler):
    """``RandomSampler`` that draws the named parameters with W&B's priors.

    The priors draw from the sampler's own ``RandomState``, so a seed makes the whole search
    repeatable and ``reseed_rng`` (Optuna calls it for each worker process) reaches them too.
    """

    def __init__(self, priors: Mapping[str, Prior], seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._priors = dict(priors)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """The external value (what ``trial.suggest_*`` returns), as Optuna 5 expects.

        A prior's draw that the distribution asked for doesn't hold (the program's parameter
        changed under a running study, say) is not forced on Optuna: the plain random draw
        is used instead.
        """
        prior = self._priors.get(param_name)
        if prior is not None:
            value = prior(self._rng.rng)
            if _holds(param_distribution, value):
                return value
        return super().sample_independent(study, trial, param_name, param_distribution)


def _holds(distribution: BaseDistribution, value: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (TypeError, ValueError):
        return False
