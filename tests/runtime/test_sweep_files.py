"""Reading W&B sweep files (``runtime.sweeps``): what each key becomes, W&B's priors, the
macros, and the ``--command`` short form."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tui_hpo.errors import UserError
from tui_hpo.runtime.sweep_sampler import PriorRandomSampler
from tui_hpo.runtime.sweeps import build_argv, load_sweep, sweep_from_flags, sweep_from_mapping

WANDB_EXAMPLE = """\
# W&B's documentation example, as people write it
program: train.py
name: my-sweep
method: bayes
metric:
  goal: minimize
  name: val_loss
  target: 0.05
parameters:
  learning_rate:
    min: 0.0001
    max: 0.1
  batch_size:
    values: [16, 32, 64]
  optimizer:
    values: ["adam", "sgd"]
  epochs:
    value: 5
  layers:
    min: 1
    max: 4
early_terminate:
  type: hyperband
  min_iter: 3
run_cap: 30
entity: my-team
project: my-project
"""


def sweep_file(tmp_path: Path, text: str, program: str | None = "train.py") -> Path:
    if program:
        (tmp_path / program).write_text("print('val_loss: 1')\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_wandb_example_maps_key_by_key(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file(tmp_path, WANDB_EXAMPLE))
    assert sweep.name == "my-sweep" and sweep.program == "train.py"
    assert sweep.cwd == tmp_path
    assert sweep.command == ("${env}", "${interpreter}", "${program}", "${args}")
    assert [(m.name, m.goal) for m in sweep.metrics] == [("val_loss", "minimize")]
    assert sweep.target == 0.05
    assert sweep.params["learning_rate"].distribution == FloatDistribution(0.0001, 0.1)
    assert sweep.params["layers"].distribution == IntDistribution(1, 4)  # ints: int_uniform
    assert sweep.params["batch_size"].distribution == CategoricalDistribution([16, 32, 64])
    assert sweep.params["epochs"].distribution == CategoricalDistribution([5])
    assert sweep.sampler is not None and sweep.sampler.name == "tpe"
    assert sweep.pruner is not None and sweep.pruner.name == "hyperband"
    assert sweep.pruner.kwargs == {"min_resource": 3, "max_resource": "auto", "reduction_factor": 3}
    assert sweep.run_cap == 30
    assert len(sweep.warnings) == 2 and "ignoring 'entity'" in sweep.warnings[0]


@pytest.mark.parametrize(
    ("spec", "distribution"),
    [
        ({"distribution": "int_uniform", "min": 1, "max": 8}, IntDistribution(1, 8)),
        ({"distribution": "uniform", "min": 0, "max": 1}, FloatDistribution(0, 1)),
        (
            {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            FloatDistribution(1e-5, 1e-1, log=True),
        ),
        (
            {"distribution": "log_uniform", "min": -2, "max": 0},
            FloatDistribution(math.exp(-2), 1.0, log=True),
        ),
        (
            {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
            FloatDistribution(0, 1, step=0.25),
        ),
        ({"distribution": "constant", "value": "x"}, CategoricalDistribution(["x"])),
        ({"values": [1, "a", None, True]}, CategoricalDistribution([1, "a", None, True])),
    ],
)
def test_native_distributions(
    tmp_path: Path, spec: dict[str, object], distribution: object
) -> None:
    sweep = sweep_from_mapping(
        {"command": ["x"], "method": "random", "metric": {"name": "m"}, "parameters": {"p": spec}},
        cwd=tmp_path,
    )
    assert sweep.params["p"].distribution == distribution
    assert sweep.params["p"].prior is None


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (
            {"distribution": "normal", "mu": 3.0, "sigma": 0.5},
            lambda xs: abs(np.mean(xs) - 3.0) < 0.05 and abs(np.std(xs) - 0.5) < 0.05,
        ),
        (
            {"distribution": "log_normal", "mu": 0.0, "sigma": 0.3},
            lambda xs: abs(np.mean(np.log(xs))) < 0.03 and min(xs) > 0,
        ),
        (
            {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
            lambda xs: all(x % 2 == 0 for x in xs) and abs(np.mean(xs) - 10) < 0.4,
        ),
        (
            {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1.0},
            lambda xs: abs(np.mean(np.log(1 / np.array(xs))) - np.log(10)) < 0.1,
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 1},
            lambda xs: all(float(x).is_integer() for x in xs) and np.median(xs) < 100,
        ),
        (
            {"values": ["a", "b"], "probabilities": [0.9, 0.1]},
            lambda xs: 0.85 < xs.count("a") / len(xs) < 0.95,
        ),
    ],
)
def test_wandb_priors_draw_as_wandb_does_within_optunas_bounds(
    tmp_path: Path, spec: dict[str, object], check: object
) -> None:
    sweep = sweep_from_mapping(
        {"command": ["x"], "method": "random", "metric": {"name": "m"}, "parameters": {"p": spec}},
        cwd=tmp_path,
    )
    param = sweep.params["p"]
    assert param.prior is not None
    rng = np.random.RandomState(0)
    draws = [param.prior(rng) for _ in range(4000)]
    assert all(param.distribution._contains(param.distribution.to_internal_repr(x)) for x in draws)
    assert check(draws)  # type: ignore[operator]


def test_random_search_uses_the_priors_and_tpe_the_bounds(tmp_path: Path) -> None:
    sweep = sweep_from_mapping(
        {
            "command": ["x"],
            "method": "random",
            "metric": {"name": "m"},
            "parameters": {"p": {"distribution": "normal", "mu": 0, "sigma": 1}},
        },
        cwd=tmp_path,
    )
    priors = {"p": sweep.params["p"].prior}
    study = optuna.create_study(sampler=PriorRandomSampler(priors, seed=1))  # type: ignore[arg-type]
    study.optimize(lambda t: t.suggest_float("p", -5, 5), n_trials=400)
    values = np.array([t.params["p"] for t in study.trials])
    assert abs(values.std() - 1.0) < 0.15  # uniform over ±5 would give 2.9


def test_nested_parameters_flatten_with_dots(tmp_path: Path) -> None:
    sweep = sweep_from_mapping(
        {
            "command": ["x"],
            "method": "random",
            "metric": {"name": "m"},
            "parameters": {
                "optimizer": {"parameters": {"lr": {"values": [0.1]}, "beta": {"value": 0.9}}}
            },
        },
        cwd=tmp_path,
    )
    assert list(sweep.params) == ["optimizer.lr", "optimizer.beta"]


def test_a_grid_sweep_budgets_its_size(tmp_path: Path) -> None:
    sweep = sweep_from_mapping(
        {
            "command": ["x"],
            "method": "grid",
            "metric": {"name": "m"},
            "parameters": {
                "a": {"values": [1, 2, 3]},
                "b": {"distribution": "int_uniform", "min": 0, "max": 1},
                "c": {"value": "x"},
            },
        },
        cwd=tmp_path,
    )
    assert sweep.grid_size == 6 and sweep.run_cap == 6
    assert sweep.sampler is not None
    assert sweep.sampler.kwargs == {"search_space": {"a": [1, 2, 3], "b": [0, 1], "c": ["x"]}}


def test_several_metrics_and_own_keys(tmp_path: Path) -> None:
    sweep = sweep_from_mapping(
        {
            "command": ["x"],
            "sampler": {"name": "nsga2", "kwargs": {"population_size": 8}},
            "metrics": [{"name": "err", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}],
            "parameters": {"p": {"values": [1]}},
            "workers": 4,
            "gpus": [0, 1],
            "trial_timeout": 600,
            "summary": "min",
            "keep": ["lr_now"],
            "kill_grace": 3,
        },
        cwd=tmp_path,
    )
    assert sweep.directions == ["minimize", "maximize"]
    assert sweep.sampler is not None and sweep.sampler.name == "nsga2"
    assert (sweep.workers, sweep.gpus, sweep.trial_timeout) == (4, "0,1", 600.0)
    assert (sweep.summary, sweep.keep, sweep.kill_grace) == ("min", ("lr_now",), 3.0)


def test_macros_fill_as_wandb_does(tmp_path: Path) -> None:
    sweep = sweep_from_mapping(
        {
            "program": "train.py",
            "command": [
                "${env}",
                "${interpreter}",
                "${program}",
                "${args}",
                "${args_no_hyphens}",
                "${args_no_boolean_flags}",
                "--cfg=${args_json}",
                "--lr-again={lr}",
            ],
            "method": "random",
            "metric": {"name": "m"},
            "parameters": {"lr": {"values": [0.001]}, "fast": {"values": [True, False]}},
        },
        cwd=tmp_path if (tmp_path / "train.py").write_text("") is not None else tmp_path,
    )
    argv, _ = build_argv(sweep, {"lr": 0.001, "fast": False}, interpreter="/py")
    assert argv == [
        "/usr/bin/env",
        "/py",
        "train.py",
        "--lr=0.001",
        "--fast=False",
        "lr=0.001",
        "fast=False",
        "--lr=0.001",
        "--cfg=" + json.dumps({"lr": 0.001, "fast": False}),
        "--lr-again=0.001",
    ]
    argv, _ = build_argv(sweep, {"lr": 0.001, "fast": True}, interpreter=sys.executable)
    assert "--fast" in argv and "--fast=True" in argv


def test_the_short_form_is_a_sweep_mapping(tmp_path: Path) -> None:
    mapping = sweep_from_flags(
        "python train.py --lr {lr} --layers {layers} --act {act}",
        ["lr=log_uniform_values:1e-5:1e-1", "layers=int_uniform:1:8", "act=values:relu,tanh"],
        ["val_loss:minimize", "acc:maximize"],
        cwd=tmp_path,
    )
    sweep = sweep_from_mapping(mapping, cwd=tmp_path)
    assert sweep.params["lr"].distribution == FloatDistribution(1e-5, 1e-1, log=True)
    assert sweep.params["layers"].distribution == IntDistribution(1, 8)
    assert sweep.params["act"].distribution == CategoricalDistribution(["relu", "tanh"])
    assert sweep.directions == ["minimize", "maximize"]
    argv, _ = build_argv(sweep, {"lr": 0.01, "layers": 3, "act": "relu"})
    assert argv == ["python", "train.py", "--lr", "0.01", "--layers", "3", "--act", "relu"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "program: train.py\nmethod: random\nmetric: {name: m}\nparamters: {}\n",
            "sweep.yaml:4: unknown key 'paramters' (did you mean 'parameters'?)",
        ),
        ("program: train.py\nmethod: bayesian\nmetric: {name: m}\n", "sweep.yaml:2: method"),
        ("program: train.py\nmethod: random\nparameters: {a: {values: [1]}}\n", "no metric"),
        (
            "program: train.py\nmethod: grid\nmetric: {name: m}\n"
            "parameters:\n  a:\n    distribution: uniform\n    min: 0\n    max: 1\n",
            "sweep.yaml:5: method grid needs values",
        ),
        (
            "program: train.py\nmethod: random\nmetric: {name: m}\n"
            "parameters:\n  a:\n    values: [1, 2]\n    probabilities: [0.5, 0.6]\n",
            "sweep.yaml:7:",
        ),
        (
            "program: train.py\nmethod: random\nmetric: {name: m}\n"
            "early_terminate: {type: envelope}\n",
            "sweep.yaml:4: early_terminate: only type: hyperband",
        ),
        (
            "program: train.py\nmethod: random\nmetric: {name: m}\n"
            "parameters:\n  a:\n    distribution: log_uniform_values\n    min: 0\n    max: 1\n",
            "needs min > 0",
        ),
    ],
)
def test_mistakes_name_the_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(UserError) as caught:
        load_sweep(sweep_file(tmp_path, text))
    assert needle in caught.value.message
    assert caught.value.message.startswith(str(tmp_path / "sweep.yaml"))
    assert "\n" not in caught.value.message
