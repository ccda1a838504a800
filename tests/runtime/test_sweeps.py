"""W&B sweep files and ``--command`` flags read into a ``Sweep`` (``runtime.sweeps``): each key,
each distribution and its prior, the macros, and one ``FILE:LINE:`` line per mistake."""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tui_hpo.errors import UserError
from tui_hpo.runtime.sweep_model import DEFAULT_COMMAND, Param, Sweep
from tui_hpo.runtime.sweeps import (
    build_argv,
    dump_sweep,
    load_sweep,
    sweep_from_flags,
    sweep_from_mapping,
)

WANDB_DOCS_EXAMPLE = """\
# sweep.yaml as W&B's documentation writes it
program: train.py
name: docs-sweep
method: bayes
metric:
  name: val_loss
  goal: minimize
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
early_terminate:
  type: hyperband
  min_iter: 3
entity: my-team
project: my-project
"""


def write(folder: Path, text: str, *, name: str = "sweep.yaml") -> Path:
    (folder / "train.py").write_text("print('val_loss: 1')\n")
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def sweep_of(folder: Path, **keys: Any) -> Sweep:
    data: dict[str, Any] = {"command": ["prog"], "method": "random", "metric": {"name": "m"}}
    data.update(keys)
    return sweep_from_mapping(data, cwd=folder)


def param_of(folder: Path, spec: dict[str, Any]) -> Param:
    return sweep_of(folder, parameters={"p": spec}).params["p"]


def holds(distribution: BaseDistribution, value: Any) -> bool:
    return bool(distribution._contains(distribution.to_internal_repr(value)))


def draws(param: Param, n: int = 2000) -> list[Any]:
    assert param.prior is not None
    rng = np.random.RandomState(0)
    return [param.prior(rng) for _ in range(n)]


# a real file ---------------------------------------------------------------------------------


def test_the_wandb_docs_example_reads_key_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, WANDB_DOCS_EXAMPLE)
    sweep = load_sweep(path)
    assert sweep.source == path and sweep.cwd == tmp_path
    assert (sweep.program, sweep.name, sweep.method) == ("train.py", "docs-sweep", "bayes")
    assert sweep.command == DEFAULT_COMMAND
    assert sweep.directions == ["minimize"] and sweep.metric_names == ["val_loss"]
    assert list(sweep.params) == ["learning_rate", "batch_size", "optimizer", "epochs"]
    assert sweep.params["learning_rate"].distribution == FloatDistribution(0.0001, 0.1)
    assert sweep.params["batch_size"].distribution == CategoricalDistribution([16, 32, 64])
    assert sweep.params["optimizer"].distribution == CategoricalDistribution(["adam", "sgd"])
    assert sweep.params["epochs"].distribution == CategoricalDistribution([5])
    assert all(p.prior is None for p in sweep.params.values())
    assert [p.line for p in sweep.params.values()] == [9, 12, 14, 16]
    assert sweep.sampler is not None and (sweep.sampler.name, sweep.sampler.kwargs) == ("tpe", {})
    assert sweep.pruner is not None and sweep.pruner.name == "hyperband"
    assert sweep.pruner.kwargs == {"min_resource": 3, "max_resource": "auto", "reduction_factor": 3}
    assert sweep.run_cap is None and sweep.grid_size is None
    assert (sweep.summary, sweep.keep, sweep.kill_grace, sweep.target) == ("last", (), 10.0, None)
    assert sweep.warnings == (
        f"{path}: ignoring 'entity' (a W&B account setting; tui-hpo keeps everything in its "
        "storage)",
        f"{path}: ignoring 'project' (a W&B project setting; tui-hpo keeps everything in its "
        "storage)",
    )
    assert sweep.raw["entity"] == "my-team" and sweep.raw["parameters"]["epochs"] == {"value": 5}


def test_a_json_sweep_file_reads_too_tabs_and_all(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "program": "train.py",
            "method": "random",
            "metric": {"name": "loss"},
            "parameters": {"lr": {"min": 0.1, "max": 1.0}},
        },
        indent="\t",
    )
    sweep = load_sweep(write(tmp_path, text, name="sweep.json"))
    assert sweep.params["lr"].distribution == FloatDistribution(0.1, 1.0)


# distributions ------------------------------------------------------------------------------

E = math.exp


@pytest.mark.parametrize(
    ("spec", "distribution", "has_prior"),
    [
        ({"value": "x"}, CategoricalDistribution(["x"]), False),
        ({"distribution": "constant", "value": 3}, CategoricalDistribution([3]), False),
        ({"values": [1, "a", None, 2.5]}, CategoricalDistribution([1, "a", None, 2.5]), False),
        (
            {"values": ["a", "b"], "probabilities": [0.2, 0.8]},
            CategoricalDistribution(["a", "b"]),
            True,
        ),
        ({"min": 1, "max": 8}, IntDistribution(1, 8), False),
        ({"min": 0, "max": 1.0}, FloatDistribution(0, 1), False),
        ({"distribution": "int_uniform", "min": -2, "max": 2}, IntDistribution(-2, 2), False),
        ({"distribution": "uniform", "min": 0, "max": 1}, FloatDistribution(0, 1), False),
        (
            {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
            FloatDistribution(0, 1, step=0.25),
            False,
        ),
        # uneven bounds: the multiples of q inside them, and W&B's rounding for random search
        (
            {"distribution": "q_uniform", "min": 0.05, "max": 0.95, "q": 0.1},
            FloatDistribution(0.1, 0.9, step=0.1),
            True,
        ),
        # an integer q gives integers, as W&B does
        (
            {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
            IntDistribution(0, 100, step=10),
            False,
        ),
        (
            {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1},
            FloatDistribution(1e-5, 0.1, log=True),
            False,
        ),
        (
            {"distribution": "log_uniform", "min": -2, "max": 1},
            FloatDistribution(E(-2), E(1), log=True),
            False,
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 1},
            IntDistribution(1, 1000, log=True),
            True,
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 0.01, "max": 1, "q": 0.01},
            FloatDistribution(0.01, 1, log=True),
            True,
        ),
        (
            {"distribution": "q_log_uniform", "min": 0, "max": 3, "q": 1},
            IntDistribution(1, 20, log=True),
            True,
        ),
        (
            {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1},
            FloatDistribution(0.01, 1, log=True),
            True,
        ),
        # W&B: log(1/X) is uniform in [min, max]
        (
            {"distribution": "inv_log_uniform", "min": 0, "max": 2},
            FloatDistribution(E(-2), 1.0, log=True),
            True,
        ),
        ({"distribution": "normal", "mu": 1, "sigma": 2}, FloatDistribution(-9, 11), True),
        ({"mu": 0, "sigma": 1}, FloatDistribution(-5, 5), True),
        (
            {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
            FloatDistribution(-5, 5, step=0.5),
            True,
        ),
        (
            {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
            IntDistribution(-4, 24, step=2),
            True,
        ),
        (
            {"distribution": "log_normal", "mu": 0, "sigma": 1},
            FloatDistribution(E(-5), E(5), log=True),
            True,
        ),
        (
            {"distribution": "q_log_normal", "mu": 2, "sigma": 0.5, "q": 1},
            IntDistribution(1, 90, log=True),
            True,
        ),
        ({"distribution": "beta", "a": 2, "b": 5}, FloatDistribution(0, 1), True),
    ],
)
def test_each_wandb_distribution_maps_to_optuna(
    tmp_path: Path, spec: dict[str, Any], distribution: BaseDistribution, has_prior: bool
) -> None:
    param = param_of(tmp_path, spec)
    assert param.distribution == distribution
    assert (param.prior is not None) is has_prior


ALL_PRIORS = [
    {"values": ["a", "b", "c"], "probabilities": [0.5, 0.25, 0.25]},
    {"distribution": "q_uniform", "min": 0.05, "max": 0.95, "q": 0.1},
    {"distribution": "q_uniform", "min": 1, "max": 99, "q": 5},
    {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 1},
    {"distribution": "q_log_uniform_values", "min": 0.01, "max": 1, "q": 0.01},
    {"distribution": "q_log_uniform", "min": 0, "max": 3},
    {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1},
    {"distribution": "inv_log_uniform", "min": 0, "max": 2},
    {"distribution": "normal", "mu": 1, "sigma": 2},
    {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
    {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
    {"distribution": "log_normal", "mu": 0, "sigma": 1},
    {"distribution": "q_log_normal", "mu": 2, "sigma": 0.5, "q": 1},
    {"distribution": "q_log_normal", "mu": 0, "sigma": 1, "q": 0.1},
    {"distribution": "beta", "a": 2, "b": 5},
    {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25},
]


@pytest.mark.parametrize("spec", ALL_PRIORS, ids=lambda s: s.get("distribution", "probabilities"))
def test_every_prior_draws_inside_its_distribution(tmp_path: Path, spec: dict[str, Any]) -> None:
    param = param_of(tmp_path, spec)
    values = draws(param, 3000)
    assert all(holds(param.distribution, v) for v in values)
    if isinstance(param.distribution, IntDistribution):
        assert all(type(v) is int for v in values)


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (
            {"distribution": "normal", "mu": 3.0, "sigma": 0.5},
            lambda xs: abs(np.mean(xs) - 3.0) < 0.05 and abs(np.std(xs) - 0.5) < 0.05,
        ),
        (
            {"distribution": "log_normal", "mu": 1.0, "sigma": 0.3},
            lambda xs: (
                abs(np.mean(np.log(xs)) - 1.0) < 0.03 and abs(np.std(np.log(xs)) - 0.3) < 0.03
            ),
        ),
        (
            {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
            lambda xs: all(x % 2 == 0 for x in xs) and abs(np.mean(xs) - 10) < 0.4,
        ),
        (
            {"distribution": "q_log_normal", "mu": 2, "sigma": 0.5, "q": 1},
            lambda xs: abs(np.median(xs) - math.exp(2)) < 1.0,
        ),
        (
            {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1.0},
            lambda xs: abs(np.mean(np.log(1 / np.array(xs))) - np.log(10)) < 0.1,
        ),
        (
            {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 1},
            lambda xs: abs(np.median(xs) - math.sqrt(1000)) < 6,
        ),
        (
            {"distribution": "q_uniform", "min": 0.05, "max": 0.95, "q": 0.1},
            lambda xs: set(xs) == {round(0.1 * k, 10) for k in range(1, 10)},
        ),
        (
            {"distribution": "beta", "a": 2, "b": 6},
            lambda xs: abs(np.mean(xs) - 0.25) < 0.02,
        ),
        (
            {"values": ["a", "b"], "probabilities": [0.9, 0.1]},
            lambda xs: 0.87 < xs.count("a") / len(xs) < 0.93,
        ),
    ],
    ids=[
        "normal",
        "log_normal",
        "q_normal",
        "q_log_normal",
        "inv_log",
        "q_log",
        "q_uniform",
        "beta",
        "probabilities",
    ],
)
def test_priors_draw_with_wandbs_shape(tmp_path: Path, spec: dict[str, Any], check: Any) -> None:
    assert check(draws(param_of(tmp_path, spec)))


def test_an_integer_q_gives_integers_and_a_float_q_floats(tmp_path: Path) -> None:
    whole = param_of(tmp_path, {"distribution": "q_log_uniform_values", "min": 16, "max": 256})
    assert isinstance(whole.distribution, FloatDistribution)  # W&B's default q is 1.0
    assert all(float(v).is_integer() and isinstance(v, float) for v in draws(whole, 200))
    ints = param_of(
        tmp_path, {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 1}
    )
    assert all(isinstance(v, int) for v in draws(ints, 200))


def test_nested_parameters_flatten_with_dots(tmp_path: Path) -> None:
    sweep = sweep_of(
        tmp_path,
        parameters={
            "optimizer": {
                "parameters": {
                    "lr": {"min": 0.1, "max": 1.0},
                    "betas": {"parameters": {"b1": {"value": 0.9}}},
                }
            },
            "layers": {"values": [1, 2]},
        },
    )
    assert list(sweep.params) == ["optimizer.lr", "optimizer.betas.b1", "layers"]
    assert sweep.params["optimizer.betas.b1"].distribution == CategoricalDistribution([0.9])


# grid ----------------------------------------------------------------------------------------


def test_a_grid_is_every_value_and_its_size_is_the_budget(tmp_path: Path) -> None:
    sweep = sweep_of(
        tmp_path,
        method="grid",
        parameters={
            "a": {"values": [1, 2, 3]},
            "b": {"distribution": "int_uniform", "min": 0, "max": 3},
            "c": {"value": "x"},
            "d": {"distribution": "q_uniform", "min": 0, "max": 0.5, "q": 0.25},
        },
    )
    assert sweep.grid_size == 3 * 4 * 1 * 3 and sweep.run_cap == 36
    assert sweep.sampler is not None and sweep.sampler.name == "grid"
    assert sweep.sampler.kwargs == {
        "search_space": {"a": [1, 2, 3], "b": [0, 1, 2, 3], "c": ["x"], "d": [0.0, 0.25, 0.5]}
    }


def test_a_grids_run_cap_stays_when_given(tmp_path: Path) -> None:
    sweep = sweep_of(tmp_path, method="grid", run_cap=2, parameters={"a": {"values": [1, 2, 3]}})
    assert (sweep.grid_size, sweep.run_cap) == (3, 2)


def test_a_grid_over_a_wide_int_range_or_a_float_range_is_refused(tmp_path: Path) -> None:
    wide = {"distribution": "int_uniform", "min": 0, "max": 1000}  # 1001 points
    with pytest.raises(UserError, match="method grid needs values: for 'a'"):
        sweep_of(tmp_path, method="grid", parameters={"a": wide})
    with pytest.raises(UserError, match="method grid needs values: for 'a'"):
        sweep_of(tmp_path, method="grid", parameters={"a": {"min": 0.0, "max": 1.0}})
    small = {"distribution": "int_uniform", "min": 1, "max": 1000}  # 1000 points
    assert sweep_of(tmp_path, method="grid", parameters={"a": small}).grid_size == 1000


# methods, samplers, pruners ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "sampler"), [("random", "random"), ("bayes", "tpe")])
def test_methods_become_samplers(tmp_path: Path, method: str, sampler: str) -> None:
    spec = sweep_of(tmp_path, method=method).sampler
    assert spec is not None and (spec.name, spec.kwargs) == (sampler, {})


@pytest.mark.parametrize(
    "value",
    [
        'tpe:{"n_startup_trials": 5}',
        'tpe: {"n_startup_trials": 5}',
        {"name": "tpe", "kwargs": {"n_startup_trials": 5}},
        {"name": "tpe", "kwargs": '{"n_startup_trials": 5}'},
    ],
)
def test_sampler_key_takes_tui_hpos_spec_forms(tmp_path: Path, value: Any) -> None:
    spec = sweep_of(tmp_path, method="random", sampler=value).sampler
    assert spec is not None and (spec.name, spec.kwargs) == ("tpe", {"n_startup_trials": 5})


def test_sampler_and_pruner_keys_beat_method_and_early_terminate(tmp_path: Path) -> None:
    data = {"early_terminate": {"type": "hyperband", "min_iter": 1}, "pruner": "median"}
    sweep = sweep_of(tmp_path, sampler="cmaes", **data)
    assert sweep.sampler is not None and sweep.sampler.name == "cmaes"
    assert sweep.pruner is not None and sweep.pruner.name == "median"
    sweep = sweep_of(tmp_path, method=None, sampler="qmc")  # no method: sampler suffices
    assert sweep.sampler is not None and sweep.sampler.name == "qmc"


@pytest.mark.parametrize(
    ("early", "kwargs"),
    [
        ({"min_iter": 3}, {"min_resource": 3, "max_resource": "auto", "reduction_factor": 3}),
        (
            {"min_iter": 2, "eta": 2},
            {"min_resource": 2, "max_resource": "auto", "reduction_factor": 2},
        ),
        (
            {"min_iter": 1, "max_iter": 27},
            {"min_resource": 1, "max_resource": 27, "reduction_factor": 3},
        ),
        # W&B: bands at max_iter / eta**k for k = 1..s
        ({"max_iter": 27, "s": 2}, {"min_resource": 3, "max_resource": 27, "reduction_factor": 3}),
        (
            {"max_iter": 100, "s": 3, "eta": 2},
            {"min_resource": 12, "max_resource": 100, "reduction_factor": 2},
        ),
        ({"max_iter": 10, "s": 5}, {"min_resource": 1, "max_resource": 10, "reduction_factor": 3}),
    ],
)
def test_hyperband_maps_to_optunas(
    tmp_path: Path, early: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    pruner = sweep_of(tmp_path, early_terminate={"type": "hyperband", **early}).pruner
    assert pruner is not None and (pruner.name, pruner.kwargs) == ("hyperband", kwargs)


def test_no_early_terminate_prunes_nothing_as_in_wandb(tmp_path: Path) -> None:
    assert sweep_of(tmp_path).pruner is None


# metrics and tui-hpo's keys ------------------------------------------------------------------


def test_metric_goal_target_and_summary(tmp_path: Path) -> None:
    sweep = sweep_of(
        tmp_path, metric={"name": "acc", "goal": "maximize", "target": 0.99}, summary="max"
    )
    assert (sweep.directions, sweep.target, sweep.summary) == (["maximize"], 0.99, "max")


def test_several_metrics_and_every_own_key(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    sweep = sweep_from_mapping(
        {
            "command": ["prog", "${args}"],
            "sampler": {"name": "nsga2", "kwargs": {"population_size": 8}},
            "metric": {"name": "acc", "goal": "maximize"},
            "metrics": [{"name": "err"}, {"name": "acc", "goal": "maximize"}],
            "parameters": {"p": {"values": [1]}},
            "workers": 4,
            "gpus": [0, 1],
            "trial_timeout": 600,
            "summary": "min",
            "keep": ["lr_now", "acc"],
            "kill_grace": 0,
            "cwd": str(tmp_path / "runs"),
            "description": "anything",
            "name": "multi",
        },
    )
    assert sweep.metric_names == ["err", "acc"] and sweep.directions == ["minimize", "maximize"]
    assert sweep.sampler is not None and sweep.sampler.name == "nsga2"
    assert (sweep.workers, sweep.gpus, sweep.trial_timeout) == (4, "0,1", 600.0)
    assert (sweep.summary, sweep.keep, sweep.kill_grace) == ("min", ("lr_now",), 0.0)
    assert (sweep.cwd, sweep.name, sweep.warnings) == (tmp_path / "runs", "multi", ())


@pytest.mark.parametrize(("gpus", "text"), [("0,1", "0,1"), ("all", "all"), (2, "2"), ([3], "3")])
def test_gpus_are_kept_as_gpus_text(tmp_path: Path, gpus: Any, text: str) -> None:
    assert sweep_of(tmp_path, gpus=gpus).gpus == text


def test_cwd_is_the_files_folder_its_cwd_key_or_the_argument(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    plain = "method: random\nmetric: {name: m}\ncommand: [prog]\n"
    assert load_sweep(write(tmp_path, plain)).cwd == tmp_path
    keyed = write(tmp_path, plain + "cwd: sub\n")
    assert load_sweep(keyed).cwd == tmp_path / "sub"
    assert load_sweep(keyed, cwd=tmp_path / "other").cwd == tmp_path / "other"


def test_unused_parameters_are_warned_about(tmp_path: Path) -> None:
    sweep = sweep_of(
        tmp_path,
        command=["prog", "--lr={lr}"],
        parameters={"lr": {"values": [1]}, "wd": {"values": [2]}},
    )
    assert len(sweep.warnings) == 1 and "parameter 'wd' is not in the command" in sweep.warnings[0]


def test_wandb_keys_tui_hpo_does_not_use_are_warnings(tmp_path: Path) -> None:
    sweep = sweep_of(
        tmp_path,
        controller={"type": "local"},
        imports=["torch"],
        metric={"name": "m", "impute": "worst"},
        early_terminate={"type": "hyperband", "min_iter": 1, "strict": True},
    )
    assert [w.split("ignoring ")[1].split(" ")[0] for w in sweep.warnings] == [
        "'controller'",
        "'imports'",
        "'impute'",
        "'strict'",
    ]


# mistakes: one line, naming the file and the line ------------------------------------------

HEAD = "program: train.py\nmethod: random\nmetric: {name: m}\n"
PARAM = HEAD + "parameters:\n  lr:\n"  # the parameter's own keys start on line 6

BAD_FILES = [
    (HEAD + "parameters: {lr: {min: 0.1, max: [\n", 5, "YAML syntax error"),
    (
        HEAD + "paramters:\n  lr: {value: 1}\n",
        4,
        "unknown key 'paramters' (did you mean 'parameters'?)",
    ),
    (
        PARAM + "    distribution: log_normalish\n",
        6,
        "unknown distribution 'log_normalish' (did you mean 'log_normal'?)",
    ),
    (PARAM + "    min: 2.0\n    max: 1.0\n", 6, "min (2) must be below max (1)"),
    (PARAM + "    distribution: int_uniform\n    min: 3\n    max: 1\n", 7, "must not be above max"),
    (
        PARAM + "    distribution: uniform\n    min: 0\n    max: 1\n    values: [1, 2]\n",
        9,
        "values: can't go with distribution uniform",
    ),
    (PARAM + "    distribution: uniform\n    max: 1\n", 6, "uniform needs min:"),
    (PARAM + "    distribution: log_uniform_values\n    min: 0\n    max: 1\n", 7, "needs min > 0"),
    (
        PARAM + "    distribution: q_uniform\n    min: 0\n    max: 1\n    q: 0\n",
        9,
        "q must be a number above 0",
    ),
    (
        PARAM + "    distribution: uniform\n    min: 0\n    max: 1\n    q: 0.1\n",
        9,
        "q: doesn't apply to distribution uniform",
    ),
    (PARAM + "    mu: abc\n", 6, "mu must be a number"),
    (PARAM + "    distribution: normal\n    sigma: -1\n", 7, "sigma must be more than 0"),
    (PARAM + "    values: [a, b]\n    probabilities: [0.5, 0.6]\n", 7, "probabilities sum to 1.1"),
    (PARAM + "    values: [a, b]\n    probabilities: [1]\n", 7, "one number per value"),
    (PARAM + "    values: [1, true]\n", 6, "values repeat True (1 and True)"),
    (PARAM + "    values: [[1, 2]]\n", 6, "values must be numbers, text"),
    (PARAM + "    valeus: [1]\n", 6, "unknown key 'valeus' (did you mean 'values'?)"),
    (PARAM + "    parameters: {a: {value: 1}}\n    value: 3\n", 7, "takes no 'value'"),
    (
        HEAD + "command: [python, '${program}', '--x=${args}']\n",
        4,
        "${args} must be a word of its own",
    ),
    (HEAD + "command: [python, '${prog}']\n", 4, "unknown macro ${prog}"),
    (HEAD + "command:\n  - python\n  - ${args_json_file}\n", 6, "use ${args_json}"),
    (
        "method: random\nmetric: {name: m}\ncommand:\n  - python\n  - ${program}\n",
        5,
        "command uses ${program} but no program:",
    ),
    (
        HEAD + "command: [python, train.py, '--lr={lrate}']\nparameters:\n  lr_rate: {value: 1}\n",
        4,
        "{lrate} is not a parameter (did you mean 'lr_rate'?)",
    ),
    ("program: trian.py\nmethod: random\nmetric: {name: m}\n", 1, "program 'trian.py' not found"),
    (
        HEAD.replace(
            "metric: {name: m}\n", "metrics:\n  - {name: loss}\n  - {name: loss, goal: maximize}\n"
        ),
        5,
        "metric 'loss' is named twice with different goals (minimize and maximize)",
    ),
    (
        HEAD.replace("metric: {name: m}\n", "metric: {name: acc}\nmetrics: [loss, err]\n"),
        3,
        "metric 'acc' is not among metrics (loss, err)",
    ),
    (
        HEAD.replace("metric: {name: m}\n", "metric:\n  name: m\n  goal: up\n"),
        5,
        "goal must be minimize or maximize",
    ),
    (
        HEAD.replace("metric: {name: m}\n", "metric: {name: m, targte: 1}\n"),
        3,
        "unknown metric key 'targte' (did you mean 'target'?)",
    ),
    ("program: train.py\nmethod: random\n", 1, "no metric"),
    ("program: train.py\nmetric: {name: m}\n", 1, "no method"),
    (
        HEAD.replace("random", "bayesian"),
        2,
        "method must be grid, random or bayes, got 'bayesian' (did you mean 'bayes'?)",
    ),
    (HEAD.replace("random", "[random]"), 2, "method must be grid, random or bayes"),
    (
        HEAD.replace("random", "grid")
        + "parameters:\n  a: {values: [1]}\n  b:\n    min: 0.0\n    max: 1.0\n",
        6,
        "method grid needs values: for 'b'",
    ),
    (
        HEAD.replace("random", "grid")
        + "parameters:\n  o:\n    parameters:\n      lr: {min: 0.0, max: 1.0}\n",
        7,
        "method grid needs values: for 'o.lr'",
    ),
    (
        HEAD + "early_terminate:\n  type: envelope\n",
        5,
        "early_terminate: only type: hyperband is supported",
    ),
    (
        HEAD + "early_terminate:\n  type: hyperband\n  eta: 1.5\n  min_iter: 1\n",
        6,
        "eta must be a whole number of at least 2",
    ),
    (
        HEAD + "early_terminate:\n  type: hyperband\n  max_iter: 10\n",
        4,
        "hyperband needs min_iter, or max_iter and s",
    ),
    (HEAD + "early_terminate:\n  type: hyperband\n  min_itr: 3\n", 6, "(did you mean 'min_iter'?)"),
    (
        HEAD + "early_terminate:\n  type: hyperband\n  max_iter: 2\n  s: 1\n",
        7,
        "hyperband has no band",
    ),
    (
        HEAD + "early_terminate:\n  type: hyperband\n  min_iter: 9\n  max_iter: 3\n",
        6,
        "min_iter (9) must not be above max_iter (3)",
    ),
    (HEAD + "sampler: tpee\n", 4, "unknown sampler 'tpee'"),
    (HEAD + "sampler: 'tpe:{\"n_startup\": 1}'\n", 4, "unexpected key 'n_startup'"),
    (HEAD + "sampler: 'tpe:{oops'\n", 4, "is not valid JSON"),
    (
        HEAD + "pruner: {name: median, kwargs: {n_warmup_steps: x}}\n",
        4,
        "n_warmup_steps must be an integer",
    ),
    (HEAD + "workers: 0\n", 4, "workers must be a whole number of at least 1"),
    (HEAD + "run_cap: ten\n", 4, "run_cap must be a whole number"),
    (HEAD + "trial_timeout: 0\n", 4, "trial_timeout must be seconds > 0"),
    (HEAD + "kill_grace: -1\n", 4, "kill_grace must be seconds >= 0"),
    (HEAD + "gpus: [zero]\n", 4, "gpus must be GPU indexes"),
    (HEAD + "summary: mean\n", 4, "summary must be last, min or max"),
    (HEAD + "keep: [1]\n", 4, "keep must be a list of metric names"),
    (HEAD + "cwd: nowhere\n", 4, "nowhere not found (where trials would run)"),
    (HEAD + "command: 'python \"unclosed'\n", 4, "No closing quotation"),
    (HEAD + "program: other.py\n", 4, "'program' is given twice (also on line 1)"),
    (
        HEAD + "parameters:\n  lr: {value: 1}\n  lr: {value: 2}\n",
        6,
        "'lr' is given twice (also on line 5)",
    ),
    (HEAD + "parameters:\n  'bad name': {value: 1}\n", 5, "parameter name 'bad name'"),
    ("- program: train.py\n", 1, "a sweep file is a mapping"),
    ("# only a comment\n", 1, "the file is empty"),
]


@pytest.mark.parametrize(("text", "line", "needle"), BAD_FILES, ids=[b[2][:40] for b in BAD_FILES])
def test_each_mistake_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, line: int, needle: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_sweep(path)
    message = caught.value.message
    assert message.startswith(f"{path}:{line}: "), message
    assert needle in message, message
    assert "\n" not in message


def test_an_unreadable_sweep_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="can't read sweep file"):
        load_sweep(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not a text file"):
        load_sweep(tmp_path / "binary.yaml")


def test_a_merge_key_overriding_a_value_is_not_a_duplicate(tmp_path: Path) -> None:
    text = HEAD + "parameters:\n  a: &base {min: 1, max: 4}\n  b:\n    <<: *base\n    max: 8\n"
    sweep = load_sweep(write(tmp_path, text))
    assert sweep.params["b"].distribution == IntDistribution(1, 8)


# the command ---------------------------------------------------------------------------------


def command_sweep(tmp_path: Path, command: list[str]) -> Sweep:
    (tmp_path / "train.py").write_text("")
    return sweep_of(
        tmp_path,
        program="train.py",
        command=command,
        parameters={
            "lr": {"values": [0.001]},
            "fast": {"values": [True, False]},
            "opt.name": {"value": "adam"},
        },
    )


VALUES = {"fast": True, "lr": 1e-05, "opt.name": "adam"}  # not in file order on purpose


@pytest.mark.parametrize(
    ("macro", "words"),
    [
        ("${args}", ["--lr=1e-05", "--fast=True", "--opt.name=adam"]),
        ("${args_no_hyphens}", ["lr=1e-05", "fast=True", "opt.name=adam"]),
        ("${args_no_boolean_flags}", ["--lr=1e-05", "--fast", "--opt.name=adam"]),
        ("${args_json}", [json.dumps({"lr": 1e-05, "fast": True, "opt.name": "adam"})]),
        (
            "--config=${args_json}",
            ["--config=" + json.dumps({"lr": 1e-05, "fast": True, "opt.name": "adam"})],
        ),
        ("${interpreter}", ["/opt/py"]),
        ("${program}", ["train.py"]),
        ("--lr={lr}", ["--lr=1e-05"]),
        ("{opt.name}-{fast}", ["adam-True"]),
        ('{"json": {"kept": 1}}', ['{"json": {"kept": 1}}']),
    ],
)
def test_build_argv_fills_each_macro(tmp_path: Path, macro: str, words: list[str]) -> None:
    argv, env = build_argv(command_sweep(tmp_path, ["run", macro]), VALUES, interpreter="/opt/py")
    assert argv == ["run", *words]
    assert env == {}


def test_env_is_wandbs_usr_bin_env_or_nothing(tmp_path: Path) -> None:
    argv, _ = build_argv(command_sweep(tmp_path, ["${env}", "run"]), VALUES)
    assert argv == (["/usr/bin/env", "run"] if os.path.exists("/usr/bin/env") else ["run"])


def test_false_is_left_out_by_args_no_boolean_flags(tmp_path: Path) -> None:
    sweep = command_sweep(tmp_path, ["${args_no_boolean_flags}"])
    argv, _ = build_argv(sweep, {**VALUES, "fast": False})
    assert argv == ["--lr=1e-05", "--opt.name=adam"]


def test_the_default_command_runs_the_program_with_the_interpreter(tmp_path: Path) -> None:
    sweep = command_sweep(tmp_path, list(DEFAULT_COMMAND))
    argv, _ = build_argv(sweep, VALUES, interpreter="/opt/py")
    assert argv[-5:] == ["/opt/py", "train.py", "--lr=1e-05", "--fast=True", "--opt.name=adam"]


def test_a_value_that_looks_like_a_placeholder_is_not_filled_again(tmp_path: Path) -> None:
    sweep = command_sweep(tmp_path, ["--opt={opt.name}", "{lr}"])
    argv, _ = build_argv(sweep, {**VALUES, "opt.name": "{lr}"})
    assert argv == ["--opt={lr}", "1e-05"]


@pytest.mark.parametrize("value", [0.1, 1e-05, 1 / 3, 2.5e300])
def test_floats_read_back_exactly(tmp_path: Path, value: float) -> None:
    (argv, _) = build_argv(command_sweep(tmp_path, ["{lr}"]), {**VALUES, "lr": value})
    assert float(argv[0]) == value


# the short form --------------------------------------------------------------------------


def test_flags_become_a_wandb_mapping(tmp_path: Path) -> None:
    mapping = sweep_from_flags(
        "python train.py --lr {lr} --layers {layers} --act={act}",
        [
            "lr=log_uniform_values:1e-5:1e-1",
            "layers=int_uniform:1:8",
            "act=values:relu,tanh",
            "seed=value:3",
            "noise=q_normal:0:1:0.5",
        ],
        ["val_loss"],
        cwd=tmp_path,
    )
    assert mapping == {
        "command": ["python", "train.py", "--lr", "{lr}", "--layers", "{layers}", "--act={act}"],
        "method": "bayes",
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1},
            "layers": {"distribution": "int_uniform", "min": 1, "max": 8},
            "act": {"values": ["relu", "tanh"]},
            "seed": {"value": 3},
            "noise": {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
        },
        "metric": {"name": "val_loss", "goal": "minimize"},
        "cwd": str(tmp_path),
    }


def test_flags_round_trip_through_a_dumped_file(tmp_path: Path) -> None:
    mapping = sweep_from_flags(
        "python train.py --lr {lr} --act {act} --on {on}",
        ["lr=log_uniform_values:1e-5:1e-1", "act=values:relu,yes,1.5,null", "on=values:true,false"],
        ["val_loss:minimize", "acc:maximize"],
        cwd=tmp_path,
        summary="min",
    )
    direct = sweep_from_mapping(mapping)
    path = tmp_path / "logs" / "sweep.yaml"
    path.parent.mkdir()
    dump_sweep(mapping, path)
    loaded = load_sweep(path)
    assert loaded.raw == mapping
    for sweep in (direct, loaded):
        assert sweep.command == (
            "python",
            "train.py",
            "--lr",
            "{lr}",
            "--act",
            "{act}",
            "--on",
            "{on}",
        )
        assert sweep.params["lr"].distribution == FloatDistribution(1e-5, 0.1, log=True)
        assert sweep.params["act"].distribution == CategoricalDistribution(
            ["relu", "yes", 1.5, None]
        )
        assert sweep.params["on"].distribution == CategoricalDistribution([True, False])
        assert sweep.directions == ["minimize", "maximize"]
        assert (sweep.cwd, sweep.summary, sweep.sampler) == (tmp_path, "min", direct.sampler)
    argv, _ = build_argv(loaded, {"lr": 0.01, "act": "relu", "on": True})
    assert argv == ["python", "train.py", "--lr", "0.01", "--act", "relu", "--on", "True"]


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        (
            "lr=log_uniform:1e-5",
            "--param 'lr=log_uniform:1e-5': expected NAME=DISTRIBUTION:ARG:ARG",
        ),
        ("lr", "--param 'lr': expected NAME=DISTRIBUTION"),
        ("lr=uniform:0:1:2", "--param 'lr=uniform:0:1:2': expected"),
        (
            "lr=log_normalish:0:1",
            "--param 'lr=log_normalish:0:1': unknown distribution 'log_normalish' "
            "(did you mean 'log_normal'?)",
        ),
        (
            "lr=uniform:1:0",
            "--param 'lr=uniform:1:0': parameter 'lr': min (1) must be below max (0)",
        ),
        ("lr=uniform:a:1", "--param 'lr=uniform:a:1': min 'a' is not a number"),
        (
            "lr=log_uniform_values:0:1",
            "--param 'lr=log_uniform_values:0:1': parameter 'lr': log_uniform_values needs min > 0",
        ),
        ("lr=values:", "--param 'lr=values:': expected"),
    ],
)
def test_a_bad_param_flag_names_itself(tmp_path: Path, param: str, needle: str) -> None:
    with pytest.raises(UserError) as caught:
        sweep_from_flags("run {lr}", [param], ["m"], cwd=tmp_path)
    assert caught.value.message.startswith(needle), caught.value.message


@pytest.mark.parametrize(
    ("params", "metrics", "needle"),
    [
        (["lr=value:1", "lr=value:2"], ["m"], "--param 'lr=value:2': 'lr' is given twice"),
        (
            ["lr=value:1"],
            ["m:upward"],
            "--metric 'm:upward': expected NAME or NAME:minimize|maximize",
        ),
        (["lr=value:1"], ["m", "m:maximize"], "--metric 'm:maximize': metric 'm' is named twice"),
    ],
)
def test_bad_flags_name_the_flag(
    tmp_path: Path, params: list[str], metrics: list[str], needle: str
) -> None:
    with pytest.raises(UserError) as caught:
        sweep_from_flags("run {lr}", params, metrics, cwd=tmp_path)
    assert caught.value.message.startswith(needle), caught.value.message


def test_a_command_placeholder_without_its_param_names_the_command(tmp_path: Path) -> None:
    mapping = sweep_from_flags("run {lr} {wd}", ["lr=value:1"], ["m"], cwd=tmp_path)
    with pytest.raises(UserError) as caught:
        sweep_from_mapping(mapping)
    assert caught.value.message.startswith("--command: {wd} is not a parameter")
