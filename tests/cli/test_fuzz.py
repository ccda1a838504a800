"""What users type, fuzzed: objective specs, storage URLs, sampler and pruner kwargs, enqueue
params (the filter language has its own fuzz in test_filters.py).

Every input either works or raises UserError with a one-line message; none raises anything
else, and a rejected command leaves the storage as it was. Bounded (max_examples, no
deadline) so CI stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tui_hpo.cli import cli
from tui_hpo.control.specs import (
    PRUNER_NAMES,
    SAMPLER_NAMES,
    parse_kwargs,
    pruner_spec,
    sampler_spec,
)
from tui_hpo.errors import UserError
from tui_hpo.runtime.objectives import parse_spec
from tui_hpo.storage.urls import parse_url

pytestmark = pytest.mark.e2e

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_CLI = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example opens a storage
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
kwargs_text = st.one_of(
    st.text(max_size=60),
    st.dictionaries(st.text(max_size=24), json_values, max_size=4).map(json.dumps),
    st.sampled_from(['{"n_startup_trials": -1}', '{"seed": 1e99}', "{}", "[]", "null", "{"]),
)


def one_line(exc: UserError) -> None:
    assert exc.message and "\n" not in exc.message
    assert "Traceback" not in exc.message


@FUZZ
@given(st.text(max_size=80))
def test_objective_specs(text: str) -> None:
    try:
        spec = parse_spec(text)
    except UserError as exc:
        one_line(exc)
        return
    try:
        spec.load()
    except UserError as exc:
        one_line(exc)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda scheme, rest: f"{scheme}://{rest}",
            st.sampled_from(["sqlite", "postgresql+psycopg", "mysql", "foo", "", "sqlite:"]),
            st.text(max_size=40),
        ),
    )
)
def test_storage_urls(text: str) -> None:
    try:
        parse_url(text)
    except UserError as exc:
        one_line(exc)


@FUZZ
@given(st.sampled_from(SAMPLER_NAMES + ("nope", "TPE", "")), kwargs_text)
def test_sampler_kwargs(name: str, text: str) -> None:
    try:
        sampler_spec(name, parse_kwargs(text, "--sampler-kwargs"))
    except UserError as exc:
        one_line(exc)


@FUZZ
@given(st.sampled_from(PRUNER_NAMES + ("nope", "Median")), kwargs_text)
def test_pruner_kwargs(name: str, text: str) -> None:
    try:
        pruner_spec(name, parse_kwargs(text, "--pruner-kwargs"))
    except UserError as exc:
        one_line(exc)


@pytest.fixture(scope="module")
def study_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="f", storage=url)
    study.optimize(
        lambda t: (
            t.suggest_float("x", -1, 1)
            + t.suggest_int("n", 1, 5)
            + (t.suggest_categorical("act", ["relu", "tanh"]) == "relu")
        ),
        n_trials=3,
    )
    return url


def _waiting(url: str) -> int:
    study = optuna.load_study(study_name="f", storage=url)
    return len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))


@FUZZ_CLI
@given(
    st.one_of(
        kwargs_text,
        st.fixed_dictionaries(
            {}, optional={"x": json_values, "n": json_values, "act": json_values}
        ).map(json.dumps),
    )
)
def test_enqueue_params(study_storage: str, text: str) -> None:
    before = _waiting(study_storage)
    result = CliRunner().invoke(cli, ["enqueue", "f", "--params", text, "--storage", study_storage])
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert _waiting(study_storage) == before + 1
        return
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert _waiting(study_storage) == before  # nothing queued


@FUZZ_CLI
@given(kwargs_text)
def test_set_sampler_kwargs_cli(study_storage: str, text: str) -> None:
    result = CliRunner().invoke(
        cli, ["set-sampler", "f", "random", "--kwargs", text, "--storage", study_storage]
    )
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_fuzz_leaves_no_file_behind(tmp_path: Path) -> None:
    """A rejected URL for a read-only command creates no SQLite file."""
    target = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["status", "--storage", f"sqlite:///{target}"])
    assert result.exit_code == 2
    assert not target.exists()
