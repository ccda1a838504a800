"""The example objectives keep their contract: directions, known fronts, curves, failures.

The rest of the project (tests, demos, docs) relies on these objectives behaving exactly as
described, so they are run here through real in-memory Optuna studies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import optuna
import pytest

from objectives import synthetic
from objectives.synthetic import dtlz2, flaky, hang, quadratic, slow, zdt1, zdt1_front

optuna.logging.set_verbosity(optuna.logging.WARNING)

Objective = Callable[[optuna.Trial], object]


@pytest.fixture(autouse=True)
def _no_demo_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell may have the demo sleep set; tests must not inherit it.
    monkeypatch.delenv(synthetic.SLEEP_ENV, raising=False)


def _study(f: Objective, **kwargs: object) -> optuna.Study:
    return optuna.create_study(
        directions=f.directions, sampler=optuna.samplers.RandomSampler(seed=0), **kwargs
    )


@pytest.mark.parametrize(
    ("f", "n_values"),
    [(quadratic, 1), (slow, 1), (zdt1, 2), (dtlz2, 3), (flaky, 1), (hang, 1)],
)
def test_directions_declared(f: Objective, n_values: int) -> None:
    assert f.directions == ["minimize"] * n_values


def test_quadratic_completes_with_a_decreasing_curve() -> None:
    study = _study(quadratic)
    study.optimize(quadratic, n_trials=5)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert sorted(t.intermediate_values) == list(range(synthetic.QUADRATIC_STEPS))
        curve = [t.intermediate_values[s] for s in range(synthetic.QUADRATIC_STEPS)]
        assert all(a > b for a, b in zip(curve, curve[1:], strict=False))
        assert curve[-1] == pytest.approx(t.value)
    assert study.trials[0].distributions["lr"].log


def test_quadratic_minimum() -> None:
    assert quadratic(optuna.trial.FixedTrial({"x": 2.0, "y": -1.0, "lr": 1e-3})) == 0.0
    assert quadratic(optuna.trial.FixedTrial({"x": 3.0, "y": -1.0, "lr": 1e-3})) == 1.0


def test_quadratic_pruned_at_first_step() -> None:
    study = _study(quadratic, pruner=optuna.pruners.ThresholdPruner(upper=-1e9))
    study.optimize(quadratic, n_trials=2)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert list(t.intermediate_values) == [0]


def test_quadratic_sleeps_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(synthetic.SLEEP_ENV, "0.01")
    start = time.monotonic()
    quadratic(optuna.trial.FixedTrial({"x": 0.0, "y": 0.0, "lr": 1e-3}))
    assert time.monotonic() - start >= 0.1


def test_slow_defaults_to_half_a_second_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(synthetic.time, "sleep", slept.append)
    slow(optuna.trial.FixedTrial({"x": 0.0, "y": 0.0, "lr": 1e-3}))
    assert slept == [synthetic.SLOW_DEFAULT_SLEEP] * synthetic.QUADRATIC_STEPS

    slept.clear()
    monkeypatch.setenv(synthetic.SLEEP_ENV, "0.02")
    slow(optuna.trial.FixedTrial({"x": 0.0, "y": 0.0, "lr": 1e-3}))
    assert slept == [0.02] * synthetic.QUADRATIC_STEPS


def test_bad_sleep_value_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(synthetic.SLEEP_ENV, "fast")
    with pytest.raises(ValueError, match=synthetic.SLEEP_ENV):
        zdt1(optuna.trial.FixedTrial({f"x{i}": 0.5 for i in range(5)}))


def test_zdt1_on_or_above_front() -> None:
    study = _study(zdt1)
    study.optimize(zdt1, n_trials=30)
    for t in study.trials:
        f1, f2 = t.values
        assert 0.0 <= f1 <= 1.0
        assert f2 >= zdt1_front(f1) - 1e-12


@pytest.mark.parametrize("x0", [0.0, 0.04, 0.25, 0.5, 1.0])
def test_zdt1_exactly_on_front(x0: float) -> None:
    study = _study(zdt1)
    study.enqueue_trial({"x0": x0, "x1": 0.0, "x2": 0.0, "x3": 0.0, "x4": 0.0})
    study.optimize(zdt1, n_trials=1)
    f1, f2 = study.trials[0].values
    assert f1 == x0
    assert f2 == pytest.approx(zdt1_front(f1), abs=1e-12)


def test_dtlz2_front_is_unit_sphere() -> None:
    study = _study(dtlz2)
    for x0, x1 in [(0.0, 0.0), (0.3, 0.7), (1.0, 0.5), (0.5, 1.0)]:
        study.enqueue_trial({"x0": x0, "x1": x1} | {f"x{i}": 0.5 for i in range(2, 7)})
    study.optimize(dtlz2, n_trials=4 + 10)
    front, rest = study.trials[:4], study.trials[4:]
    for t in front:
        assert len(t.values) == 3
        assert sum(v * v for v in t.values) == pytest.approx(1.0)
    for t in rest:
        assert sum(v * v for v in t.values) >= 1.0 - 1e-12


def test_flaky_modes_through_fixed_trial() -> None:
    assert flaky(optuna.trial.FixedTrial({"mode": "ok"})) == 1.0
    with pytest.raises(RuntimeError, match="failed on purpose"):
        flaky(optuna.trial.FixedTrial({"mode": "raise"}))
    assert math.isnan(flaky(optuna.trial.FixedTrial({"mode": "nan"})))
    assert flaky(optuna.trial.FixedTrial({"mode": "wrong_count"})) == (1.0, 2.0)


def test_flaky_modes_in_a_study() -> None:
    study = _study(flaky)
    for mode in synthetic.FLAKY_MODES:
        study.enqueue_trial({"mode": mode})
    study.optimize(flaky, n_trials=len(synthetic.FLAKY_MODES), catch=(RuntimeError,))
    states = {t.params["mode"]: t.state for t in study.trials}
    state = optuna.trial.TrialState
    assert states == {
        "ok": state.COMPLETE,
        "raise": state.FAIL,
        "nan": state.FAIL,
        "wrong_count": state.FAIL,
    }


def test_hang_suggests_then_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        raise KeyboardInterrupt  # stands in for the worker being killed

    monkeypatch.setattr(synthetic.time, "sleep", fake_sleep)
    trial = optuna.trial.FixedTrial({"x": 0.5})
    with pytest.raises(KeyboardInterrupt):
        hang(trial)
    assert trial.params == {"x": 0.5}
    assert slept and slept[0] >= 3600


def test_digits_one_trial_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import torch

    from objectives import digits

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    try:
        study = _study(digits.objective)
        start = time.monotonic()
        study.optimize(digits.objective, n_trials=1)
        elapsed = time.monotonic() - start
    finally:
        torch.set_num_threads(threads)

    assert digits.objective.directions == ["minimize", "minimize"]
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert elapsed < 20
    val_error, n_params = t.values
    assert 0.0 <= val_error <= 1.0
    assert n_params > 0 and n_params == int(n_params)
    assert t.user_attrs[digits.DEVICE_ATTR] == "cpu"
    assert sorted(t.intermediate_values) == list(range(digits.EPOCHS))
    assert t.intermediate_values[digits.EPOCHS - 1] == pytest.approx(val_error)
    assert all(0.0 <= v <= 1.0 for v in t.intermediate_values.values())
