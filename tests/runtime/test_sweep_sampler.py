"""``PriorRandomSampler``: random search that draws with W&B's priors where a sweep has them,
and is Optuna's ``RandomSampler`` everywhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tui_hpo.runtime.sweep_sampler import PriorRandomSampler
from tui_hpo.runtime.sweeps import sweep_from_mapping

optuna.logging.set_verbosity(optuna.logging.WARNING)


def priors_of(tmp_path: Path, parameters: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    sweep = sweep_from_mapping(
        {
            "command": ["prog", "${args}"],
            "method": "random",
            "metric": {"name": "m"},
            "parameters": parameters,
        },
        cwd=tmp_path,
    )
    priors = {n: p.prior for n, p in sweep.params.items() if p.prior is not None}
    return priors, sweep


def search(sampler: optuna.samplers.BaseSampler, sweep: Any, n_trials: int) -> optuna.Study:
    """What a command trial does: suggest each parameter with its stored distribution."""
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        for name, param in sweep.params.items():
            trial._suggest(name, param.distribution)
        return 0.0

    study.optimize(objective, n_trials=n_trials)
    return study


def test_a_normal_prior_is_drawn_not_the_uniform_bounds(tmp_path: Path) -> None:
    priors, sweep = priors_of(tmp_path, {"x": {"distribution": "normal", "mu": 2, "sigma": 1}})
    study = search(PriorRandomSampler(priors, seed=1), sweep, 600)
    values = np.array([t.params["x"] for t in study.trials])
    assert abs(values.mean() - 2) < 0.15 and abs(values.std() - 1) < 0.1  # uniform: std 2.9
    plain = search(optuna.samplers.RandomSampler(seed=1), sweep, 600)
    assert np.array([t.params["x"] for t in plain.trials]).std() > 2.5


def test_probabilities_weigh_the_choices(tmp_path: Path) -> None:
    priors, sweep = priors_of(tmp_path, {"c": {"values": ["a", "b"], "probabilities": [0.8, 0.2]}})
    study = search(PriorRandomSampler(priors, seed=2), sweep, 1000)
    share = sum(t.params["c"] == "a" for t in study.trials) / 1000
    assert 0.75 < share < 0.85


def test_stored_values_are_what_the_prior_drew(tmp_path: Path) -> None:
    """Returned in external form: Optuna stores it as is, the program gets the same value."""
    priors, sweep = priors_of(
        tmp_path,
        {
            "n": {"distribution": "q_log_uniform_values", "min": 1, "max": 512, "q": 1},
            "f": {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.25},
        },
    )
    study = search(PriorRandomSampler(priors, seed=3), sweep, 100)
    for trial in study.trials:
        assert type(trial.params["n"]) is int and 1 <= trial.params["n"] <= 512
        assert (trial.params["f"] / 0.25).is_integer()
        for name, param in sweep.params.items():
            assert trial.distributions[name] == param.distribution


def test_a_seed_repeats_the_search_and_another_seed_does_not(tmp_path: Path) -> None:
    priors, sweep = priors_of(
        tmp_path, {"x": {"distribution": "log_normal"}, "y": {"min": 0.0, "max": 1.0}}
    )

    def params(seed: int) -> list[dict[str, Any]]:
        return [t.params for t in search(PriorRandomSampler(priors, seed=seed), sweep, 20).trials]

    assert params(7) == params(7)
    assert params(7) != params(8)


def test_without_priors_it_is_optunas_random_sampler(tmp_path: Path) -> None:
    priors, sweep = priors_of(
        tmp_path,
        {"a": {"min": 0.0, "max": 1.0}, "b": {"min": 1, "max": 9}, "c": {"values": [1, 2]}},
    )
    assert priors == {}
    ours = search(PriorRandomSampler(priors, seed=5), sweep, 30)
    plain = search(optuna.samplers.RandomSampler(seed=5), sweep, 30)
    assert [t.params for t in ours.trials] == [t.params for t in plain.trials]


@pytest.mark.parametrize(
    "distribution",
    [FloatDistribution(10, 20), IntDistribution(0, 3), CategoricalDistribution(["x", "y"])],
)
def test_a_draw_outside_the_asked_distribution_falls_back_to_random(distribution: Any) -> None:
    """A prior made for other bounds (the parameter changed under a running study) is not
    forced on Optuna."""
    sampler = PriorRandomSampler({"p": lambda rng: -1.5}, seed=0)
    study = optuna.create_study(sampler=sampler)
    trial = study.ask()
    value = trial._suggest("p", distribution)
    assert distribution._contains(distribution.to_internal_repr(value))


def test_priors_use_the_samplers_own_random_state() -> None:
    seen: list[Any] = []

    def prior(rng: np.random.RandomState) -> float:
        seen.append(rng)
        return 0.5

    sampler = PriorRandomSampler({"p": prior}, seed=0)
    study = optuna.create_study(sampler=sampler)
    assert study.ask().suggest_float("p", 0, 1) == 0.5
    assert seen == [sampler._rng.rng]
