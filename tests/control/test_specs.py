from __future__ import annotations

import json
import warnings
from typing import Any

import optuna
import pytest

from tui_hpo.control.specs import (
    PRUNER_NAMES,
    SAMPLER_NAMES,
    Spec,
    make_pruner,
    make_sampler,
    parse_kwargs,
    pruner_spec,
    sampler_spec,
)
from tui_hpo.errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS: dict[str, tuple[dict[str, Any], type]] = {
    "tpe": ({"n_startup_trials": 5}, optuna.samplers.TPESampler),
    "gp": ({}, optuna.samplers.GPSampler),
    "cmaes": ({"popsize": 8}, optuna.samplers.CmaEsSampler),
    "nsga2": ({"population_size": 10}, optuna.samplers.NSGAIISampler),
    "nsga3": ({}, optuna.samplers.NSGAIIISampler),
    "qmc": ({"qmc_type": "halton"}, optuna.samplers.QMCSampler),
    "random": ({}, optuna.samplers.RandomSampler),
    "grid": ({"search_space": {"x": [1, 2, 3]}}, optuna.samplers.GridSampler),
}
PRUNERS: dict[str, tuple[dict[str, Any], type]] = {
    "median": ({"n_warmup_steps": 2}, optuna.pruners.MedianPruner),
    "percentile": ({"percentile": 25.0}, optuna.pruners.PercentilePruner),
    "hyperband": ({"max_resource": 10}, optuna.pruners.HyperbandPruner),
    "successive-halving": ({}, optuna.pruners.SuccessiveHalvingPruner),
    "threshold": ({"upper": 1.0}, optuna.pruners.ThresholdPruner),
    "wilcoxon": ({"p_threshold": 0.05}, optuna.pruners.WilcoxonPruner),
    "patient": ({"patience": 3}, optuna.pruners.PatientPruner),
    "none": ({}, optuna.pruners.NopPruner),
}


def _user_error(call: Any, *args: Any) -> str:
    with pytest.raises(UserError) as excinfo:
        call(*args)
    message = str(excinfo.value)
    assert message and "\n" not in message
    assert "Traceback" not in message
    return message


def test_name_lists_are_covered() -> None:
    assert set(SAMPLERS) == set(SAMPLER_NAMES)
    assert set(PRUNERS) == set(PRUNER_NAMES)


# building


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_builds(name: str) -> None:
    kwargs, cls = SAMPLERS[name]
    spec = sampler_spec(name, kwargs)
    assert spec == Spec(name, kwargs)
    assert type(make_sampler(spec)) is cls
    assert type(make_sampler(spec, seed=7)) is cls


@pytest.mark.parametrize("name", [n for n in SAMPLER_NAMES if n != "grid"])
def test_every_sampler_builds_without_kwargs(name: str) -> None:
    assert type(make_sampler(sampler_spec(name))) is SAMPLERS[name][1]


@pytest.mark.parametrize("name", PRUNER_NAMES)
def test_every_pruner_builds(name: str) -> None:
    kwargs, cls = PRUNERS[name]
    spec = pruner_spec(name, kwargs)
    assert spec == Spec(name, kwargs)
    assert type(make_pruner(spec)) is cls


def test_names_are_case_insensitive() -> None:
    assert sampler_spec(" TPE ").name == "tpe"
    assert pruner_spec("Successive-Halving").name == "successive-halving"
    assert pruner_spec("successive_halving").name == "successive-halving"


def test_spec_kwargs_are_a_private_copy() -> None:
    kwargs: dict[str, Any] = {"search_space": {"x": [1, 2]}}
    spec = sampler_spec("grid", kwargs)
    kwargs["search_space"]["x"].append(3)
    assert spec.kwargs == {"search_space": {"x": [1, 2]}}


def test_kwargs_reach_the_constructor() -> None:
    sampler = make_sampler(sampler_spec("tpe", {"n_startup_trials": 5}))
    assert sampler._n_startup_trials == 5
    pruner = make_pruner(pruner_spec("median", {"n_startup_trials": 0}))
    assert pruner._n_startup_trials == 0


def test_patient_wraps_named_pruner() -> None:
    pruner = make_pruner(
        pruner_spec(
            "patient",
            {
                "patience": 2,
                "min_delta": 0.1,
                "wrapped": "Percentile",
                "wrapped_kwargs": {"percentile": 10},
            },
        )
    )
    assert isinstance(pruner, optuna.pruners.PatientPruner)
    assert isinstance(pruner._wrapped_pruner, optuna.pruners.PercentilePruner)
    assert pruner._patience == 2
    assert pruner._min_delta == 0.1


def test_patient_without_wrapped_wraps_nothing() -> None:
    pruner = make_pruner(pruner_spec("patient", {"patience": 1}))
    assert pruner._wrapped_pruner is None


def test_patient_normalises_wrapped_name() -> None:
    spec = pruner_spec("patient", {"patience": 1, "wrapped": "MEDIAN"})
    assert spec.kwargs["wrapped"] == "median"


def test_no_experimental_warning_escapes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_sampler(sampler_spec("qmc"), seed=1)
        make_sampler(sampler_spec("tpe", {"multivariate": True, "group": True}), seed=1)


# seeds


def _first_value(sampler: optuna.samplers.BaseSampler) -> float:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    return study.trials[0].params["x"]


def test_seed_is_passed() -> None:
    spec = sampler_spec("random")
    assert _first_value(make_sampler(spec, seed=3)) == _first_value(make_sampler(spec, seed=3))
    assert _first_value(make_sampler(spec, seed=3)) != _first_value(make_sampler(spec, seed=4))


def test_kwargs_seed_wins() -> None:
    pinned = sampler_spec("random", {"seed": 11})
    expected = _first_value(make_sampler(sampler_spec("random"), seed=11))
    assert _first_value(make_sampler(pinned, seed=99)) == expected
    assert _first_value(make_sampler(pinned)) == expected


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_accepts_seed(name: str) -> None:
    kwargs, cls = SAMPLERS[name]
    assert type(make_sampler(sampler_spec(name, kwargs), seed=123)) is cls


def test_grid_sampler_runs_its_grid() -> None:
    spec = sampler_spec("grid", {"search_space": {"x": [1, 2, 3], "kind": ["a", "b"]}})
    spec = Spec.from_json(spec.to_json())
    study = optuna.create_study(sampler=make_sampler(spec, seed=0))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 1, 3)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return x + (0.5 if kind == "b" else 0.0)

    study.optimize(objective, n_trials=20)  # stops itself once the grid is done
    seen = {(t.params["x"], t.params["kind"]) for t in study.trials}
    assert len(study.trials) == 6
    assert seen == {(x, k) for x in (1, 2, 3) for k in ("a", "b")}


# Spec


def test_spec_json_round_trip() -> None:
    spec = Spec("tpe", {"n_startup_trials": 5, "multivariate": True})
    text = spec.to_json()
    assert text == '{"kwargs":{"multivariate":true,"n_startup_trials":5},"name":"tpe"}'
    assert Spec.from_json(text) == spec
    nested = Spec("grid", {"search_space": {"b": [1.5, None], "a": ["x"]}})
    assert Spec.from_json(nested.to_json()) == nested
    assert json.loads(Spec("none", {}).to_json()) == {"name": "none", "kwargs": {}}


@pytest.mark.parametrize(
    "text", ["not json", "[1]", '{"kwargs": {}}', '{"name": "tpe", "kwargs": 1}']
)
def test_spec_from_bad_json(text: str) -> None:
    assert "spec" in _user_error(Spec.from_json, text)


def test_label() -> None:
    assert Spec("tpe", {}).label() == "tpe"
    assert Spec("tpe", {"n_startup_trials": 5}).label() == "tpe(n_startup_trials=5)"
    assert (
        Spec("patient", {"wrapped": "median", "patience": 3}).label()
        == 'patient(patience=3, wrapped="median")'
    )
    assert Spec("grid", {"search_space": {"x": [1, 2]}}).label() == 'grid(search_space={"x":[1,2]})'


# parse_kwargs


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, {}),
        ("", {}),
        ("  ", {}),
        ("{}", {}),
        ('{"n_startup_trials": 5}', {"n_startup_trials": 5}),
        ('{"search_space": {"x": [1, 2]}}', {"search_space": {"x": [1, 2]}}),
    ],
)
def test_parse_kwargs(text: str | None, expected: dict[str, Any]) -> None:
    assert parse_kwargs(text, "--sampler-kwargs") == expected


def test_parse_kwargs_not_json() -> None:
    message = _user_error(parse_kwargs, '{"a": 1 "b": 2}', "--sampler-kwargs")
    assert message == "--sampler-kwargs is not valid JSON: Expecting ',' delimiter at char 8"


@pytest.mark.parametrize(
    "text, kind",
    [("[1, 2]", "a list"), ('"tpe"', "a string"), ("5", "a number"), ("null", "null")],
)
def test_parse_kwargs_not_an_object(text: str, kind: str) -> None:
    message = _user_error(parse_kwargs, text, "--pruner-kwargs")
    assert message.startswith(f"--pruner-kwargs must be a JSON object, got {kind}")


# bad input


def test_unknown_sampler() -> None:
    message = _user_error(sampler_spec, "foo")
    assert message == (
        "unknown sampler 'foo': choose one of tpe, gp, cmaes, nsga2, nsga3, qmc, random, grid"
    )
    assert _user_error(make_sampler, Spec("foo", {})) == message


def test_unknown_pruner() -> None:
    message = _user_error(pruner_spec, "bar")
    assert message == (
        "unknown pruner 'bar': choose one of median, percentile, hyperband, "
        "successive-halving, threshold, wilcoxon, patient, none"
    )
    assert _user_error(make_pruner, Spec("bar", {})) == message


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("tpe", {"bogus": 1}, ["sampler tpe rejects kwargs", "bogus", "n_startup_trials"]),
        ("tpe", {"n_startup_trial": 1}, ["did you mean 'n_startup_trials'"]),
        ("tpe", {"n_startup_trials": "x"}, ["n_startup_trials must be an integer", '"x"']),
        ("tpe", {"n_startup_trials": True}, ["n_startup_trials must be an integer"]),
        ("tpe", {"gamma": 0.1}, ["gamma", "Python object"]),
        ("tpe", {"seed": -1}, ["sampler tpe rejects kwargs", "Seed must be between"]),
        ("random", {"seed": "x"}, ["seed must be an integer"]),
        ("gp", {"independent_sampler": "random"}, ["independent_sampler", "Python object"]),
        ("cmaes", {"x0": [0.5]}, ["x0 must be an object"]),
        ("nsga2", {"population_size": 1}, ["sampler nsga2", "population_size"]),
        ("nsga2", {"crossover_prob": 2}, ["crossover_prob"]),
        ("qmc", {"qmc_type": "latin"}, ["sampler qmc", "latin"]),
        ("grid", {"search_space": {"x": [1]}, "bogus": 1}, ["sampler grid", "bogus"]),
    ],
)
def test_bad_sampler_kwargs(name: str, kwargs: dict[str, Any], expected: list[str]) -> None:
    message = _user_error(sampler_spec, name, kwargs)
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"seed": 1}, {"search_space": [1, 2]}, {"search_space": {}}, {"search_space": {"x": []}}],
)
def test_grid_without_search_space(kwargs: dict[str, Any]) -> None:
    message = _user_error(sampler_spec, "grid", kwargs)
    assert message.startswith(
        'sampler grid needs kwargs {"search_space": {"param": [values, ...]}}'
    )


def test_grid_values_must_be_scalars() -> None:
    message = _user_error(sampler_spec, "grid", {"search_space": {"x": [[1, 2]]}})
    assert "sampler grid values" in message and "'x'" in message


@pytest.mark.parametrize(
    "name, kwargs, expected",
    [
        ("percentile", {}, ['pruner percentile needs kwargs {"percentile": ...}']),
        ("percentile", {"percentile": 200}, ["pruner percentile rejects kwargs", "200"]),
        ("threshold", {}, ["pruner threshold", "lower or upper"]),
        ("threshold", {"lower": 2, "upper": 1}, ["pruner threshold", "lower"]),
        ("threshold", {"lower": "x"}, ["lower must be a number"]),
        ("median", {"n_startup_trials": -1}, ["pruner median", "n_startup_trials"]),
        ("median", {"n_startup_trials": "x"}, ["n_startup_trials must be an integer"]),
        ("hyperband", {"max_resource": "lots"}, ["pruner hyperband", "max_resource"]),
        ("successive-halving", {"reduction_factor": 1}, ["successive-halving", "reduction"]),
        ("wilcoxon", {"p_threshold": 2}, ["pruner wilcoxon", "p_threshold"]),
        ("none", {"x": 1}, ["pruner none takes no kwargs"]),
        ("patient", {}, ['pruner patient needs kwargs {"patience": ...}']),
        ("patient", {"patience": -1}, ["pruner patient", "patience"]),
        ("patient", {"patience": 1.5}, ["patience must be an integer"]),
        ("patient", {"patience": 1, "min_delta": -1}, ["min_delta"]),
        ("patient", {"patience": 1, "bogus": 1}, ["unexpected key 'bogus'"]),
        ("patient", {"patience": 1, "wrapped": "nope"}, ["unknown pruner 'nope'"]),
        ("patient", {"patience": 1, "wrapped": 3}, ["wrapped must be a pruner name"]),
        (
            "patient",
            {"patience": 1, "wrapped": "percentile"},
            ["pruner patient, wrapped: pruner percentile needs"],
        ),
        ("patient", {"patience": 1, "wrapped_kwargs": {"x": 1}}, ["pruner none takes no kwargs"]),
    ],
)
def test_bad_pruner_kwargs(name: str, kwargs: dict[str, Any], expected: list[str]) -> None:
    message = _user_error(pruner_spec, name, kwargs)
    for part in expected:
        assert part in message


def test_kwargs_must_be_json_values() -> None:
    assert "JSON" in _user_error(sampler_spec, "tpe", {"gamma": lambda n: n})


def test_long_kwargs_are_clipped_in_messages() -> None:
    space = {f"p{i}": list(range(50)) for i in range(20)}
    message = _user_error(sampler_spec, "grid", {"search_space": space, "bogus": 1})
    assert len(message) < 600


def test_keyboard_interrupt_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Any, *args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(optuna.samplers.RandomSampler, "__init__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_sampler(Spec("random", {}))


def test_unexpected_constructor_failure_becomes_user_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("line one\nline two")

    monkeypatch.setattr(optuna.samplers.QMCSampler, "__init__", broken)
    message = _user_error(make_sampler, Spec("qmc", {}))
    assert message == "sampler qmc rejects kwargs {}: line one line two"
