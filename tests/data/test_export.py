"""``tui_hpo.data.export`` against what it copies: ``study.trials_dataframe()``'s ``to_csv`` and
``to_json``, on small studies that hold every kind of cell (COMPLETE, PRUNED, FAIL, RUNNING and
WAITING trials; float, log, stepped, int and categorical params, some missing; user attrs of
every JSON type, tui-hpo's own, Optuna's fail_reason; one and several objectives, with and
without metric names, infinite values). pandas is only here, never in the export itself.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tui_hpo.data import export
from tui_hpo.data.filters import FilterError
from tui_hpo.storage import attrs

optuna.logging.set_verbosity(optuna.logging.WARNING)

FAIL_TEXT = "ValueError: loss is NaN"
MIXED = [None, 1, 2.5, "x", True]


def _fill(study: optuna.Study, n: int = 12) -> None:
    """Trials of every state with params and attrs that exercise pandas' column rules."""
    k = len(study.directions)
    for i in range(n):
        if i % 2:  # a fixed choice, so the column holds None, ints, floats, text and bools
            study.enqueue_trial({"mixed": MIXED[i // 2 % len(MIXED)]})
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-6, 1e-1, log=True)
        trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
        if i % 3:  # missing from some trials: an int column with gaps is written 3.0
            trial.suggest_int("layers", 1, 8)
        trial.suggest_int("units", 16, 256, log=True)
        trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
        if i % 2:
            trial.suggest_categorical("mixed", MIXED)
        trial.suggest_categorical("flag", [True, False])
        trial.set_user_attr(attrs.HOST, f"gpu-box-{i % 2}")
        trial.set_user_attr(attrs.GPU, str(i % 4))
        trial.set_user_attr(attrs.WORKER, i % 3 + 1)
        trial.set_user_attr(
            attrs.SAMPLER,
            {"name": "random", "kwargs": {"seed": 0}} if i < 4 else {"name": "tpe", "kwargs": {}},
        )
        trial.set_user_attr("note", [1, "two", {"three": 3.0}] if i == 1 else f"run {i}")
        if i % 5 == 0:  # as control.tags writes them: a sorted list
            trial.set_user_attr(attrs.TAGS, ["bad", "keep"] if i == 5 else ["keep"])
        if i % 4 == 0:
            trial.set_user_attr("score", i * 0.5)
        if i == 5:
            trial.set_user_attr("empty", None)
        state_of = i % 6
        if state_of == 2:
            trial.set_user_attr(attrs.FAIL_REASON, FAIL_TEXT)
            study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", FAIL_TEXT)
            study.tell(trial, state=TrialState.FAIL)
        elif state_of == 3:
            study.tell(trial, state=TrialState.PRUNED)
        elif state_of == 5 and i > 6:
            pass  # left RUNNING
        else:
            values = [lr * (j + 1) for j in range(k)]
            if i == 4:
                values[-1] = math.inf
            study.tell(trial, values if k > 1 else values[0])
    # a trial from a plain Optuna run that failed: only Optuna's system attr
    trial = study.ask()
    trial.suggest_float("lr", 1e-6, 1e-1, log=True)
    study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", "plain optuna")
    study.tell(trial, state=TrialState.FAIL)
    study.enqueue_trial({"lr": 2e-3})  # WAITING: no start, no params yet


def _make(url: str, name: str, directions: list[str], names: list[str] | None) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=len(directions))
    study = optuna.create_study(
        study_name=name, storage=url, directions=directions, sampler=sampler
    )
    if names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    _fill(study)
    return study


STUDIES = {
    "single": (["minimize"], None),
    "single-named": (["minimize"], ["loss"]),
    "multi": (["minimize", "maximize"], None),
    "multi-named": (["minimize", "maximize", "minimize"], ["err", "acc", "n_params"]),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'studies.db'}"
    for name, (directions, names) in STUDIES.items():
        _make(url, name, directions, names)
    optuna.create_study(study_name="empty", storage=url)
    yield url


def _table(url: str, name: str) -> export.TrialTable:
    engine = sa.create_engine(url)
    try:
        study_id = optuna.load_study(study_name=name, storage=url)._study_id
        return export.read_table(engine, study_id)
    finally:
        engine.dispose()


def _csv(table: export.TrialTable) -> str:
    out = io.StringIO()
    table.write_csv(out)
    return out.getvalue()


def _json(table: export.TrialTable) -> list[dict[str, Any]]:
    out = io.StringIO()
    table.write_json(out)
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def _frame(url: str, name: str) -> pd.DataFrame:
    return optuna.load_study(study_name=name, storage=url).trials_dataframe()


def _pandas_json(df: pd.DataFrame) -> list[dict[str, Any]]:
    text = df.to_json(orient="records", date_format="iso", date_unit="us", double_precision=15)
    return json.loads(text)  # type: ignore[no-any-return]


def _same(ours: Any, theirs: Any) -> bool:
    """Equal, numbers to pandas' 15 decimals (its to_json rounds; ours keeps every digit)."""
    if isinstance(ours, float) or isinstance(theirs, float):
        if ours is None or theirs is None:
            return ours is theirs
        return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-14)
    return bool(ours == theirs)


def _optuna_part(text: str, n: int) -> str:
    """The CSV with only its first ``n`` columns (the ones trials_dataframe has)."""
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(row[:n] for row in rows)
    return out.getvalue()


@pytest.mark.parametrize("name", list(STUDIES))
def test_csv_is_trials_dataframe_to_csv(db: str, name: str) -> None:
    df = _frame(db, name)
    table = _table(db, name)
    n = len(df.columns)
    assert list(table.names[:n]) == list(df.columns)
    assert list(table.names[n:]) == ["sampler", "fail_reason"]
    assert _optuna_part(_csv(table), n) == df.to_csv(index=False)


@pytest.mark.parametrize("name", list(STUDIES))
def test_json_is_trials_dataframe_to_json(db: str, name: str) -> None:
    df = _frame(db, name)
    ours = _json(_table(db, name))
    theirs = _pandas_json(df)
    assert len(ours) == len(theirs)
    for mine, want in zip(ours, theirs, strict=True):
        assert list(mine)[: len(want)] == list(want)
        bad = {k: (mine[k], want[k]) for k in want if not _same(mine[k], want[k])}
        assert not bad, (mine["number"], bad)


def test_column_names_and_tui_hpo_columns(db: str) -> None:
    table = _table(db, "multi-named")
    names = table.names
    assert names[:4] == ("number", "values_err", "values_acc", "values_n_params")
    assert "params_layers" in names and "user_attrs_tui_hpo.host" in names
    assert "system_attrs_fail_reason" in names
    assert names[-3:] == ("state", "sampler", "fail_reason")
    assert _table(db, "single").names[1] == "value"
    assert _table(db, "single-named").names[1] == "value_loss"
    assert _table(db, "multi").names[1:3] == ("values_0", "values_1")
    rows = _json(table)
    assert [r["sampler"] for r in rows[:5]] == ["random(seed=0)"] * 4 + ["tpe"]
    by_number = {r["number"]: r for r in rows}
    assert by_number[2]["fail_reason"] == FAIL_TEXT  # tui-hpo's attr
    assert by_number[12]["fail_reason"] == "plain optuna"  # Optuna's system attr alone
    assert by_number[0]["fail_reason"] is None
    assert by_number[4]["values_n_params"] is None  # inf: null, as pandas writes it
    assert by_number[13]["datetime_start"] is None and by_number[13]["state"] == "WAITING"


def test_empty_study(db: str) -> None:
    table = _table(db, "empty")
    assert len(table) == 0
    assert _csv(table) == pd.DataFrame().to_csv(index=False)
    assert _json(table) == []


FILTERS = [
    ("state == complete", lambda df: df.state == "COMPLETE"),
    (
        "state in (fail, pruned) or number >= 10",
        lambda df: df.state.isin(["FAIL", "PRUNED"]) | (df.number >= 10),
    ),
    ("err < 1e-3 and act != relu", lambda df: (df.values_err < 1e-3) & (df.params_act != "relu")),
    ("layers > 4", lambda df: df.params_layers > 4),
    (
        "host == gpu-box-1 and sampler == tpe",
        lambda df: (
            (df["user_attrs_tui_hpo.host"] == "gpu-box-1") & (df.number >= 4) & (df.number < 12)
        ),
    ),
    ("number > 1000", lambda df: df.number > 1000),
    ("tag == keep", lambda df: df.number.isin([0, 5, 10])),
    ("tag != bad and state == complete", lambda df: (df.number != 5) & (df.state == "COMPLETE")),
]


@pytest.mark.parametrize(("text", "pick"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_is_df_mask(db: str, text: str, pick: Any) -> None:
    df = _frame(db, "multi-named")
    want = df[pick(df).fillna(False).astype(bool)]
    table = _table(db, "multi-named").filtered(text)
    assert len(table) == len(want)
    n = len(df.columns)
    assert _optuna_part(_csv(table), n) == want.to_csv(index=False)


def test_filter_mistakes_are_filter_errors(db: str) -> None:
    table = _table(db, "multi-named")
    with pytest.raises(FilterError, match="unknown field 'lrr'"):
        table.filtered("lrr < 1")
    with pytest.raises(FilterError, match="has no choice"):
        table.filtered("act == sigmoid")
    with pytest.raises(FilterError):
        table.filtered("state ==")


def test_blank_filter_keeps_every_trial(db: str) -> None:
    table = _table(db, "multi")
    assert table.filtered("  ") is table


def test_datetimes_and_durations_as_pandas_writes_them(tmp_path: Path) -> None:
    """Whole seconds, milliseconds, whole days, negative durations: pandas picks one format
    per column from the values written; so does the export."""
    url = f"sqlite:///{tmp_path / 'times.db'}"
    study = optuna.create_study(study_name="t", storage=url)
    for _ in range(4):
        study.tell(study.ask(), 1.0)
    engine = sa.create_engine(url)
    t = optuna.storages._rdb.models.TrialModel.__table__
    base = dt.datetime(2026, 3, 1)
    cases = {
        "seconds": [(base, base + dt.timedelta(seconds=5))] * 4,
        "millis": [(base, base + dt.timedelta(milliseconds=1500))] * 4,
        "days": [(base, base + dt.timedelta(days=2))] * 4,
        "negative": [(base, base - dt.timedelta(seconds=1.25)), (base, base)] * 2,
        "micros": [(base + dt.timedelta(microseconds=7), base + dt.timedelta(hours=30))] * 4,
    }
    for case, times in cases.items():
        with engine.begin() as con:
            ids = [r[0] for r in con.execute(sa.select(t.c.trial_id).order_by(t.c.trial_id))]
            for tid, (start, end) in zip(ids, times, strict=True):
                con.execute(
                    t.update()
                    .where(t.c.trial_id == tid)
                    .values(datetime_start=start, datetime_complete=end)
                )
        df = _frame(url, "t")
        table = export.read_table(engine, study._study_id)
        assert _optuna_part(_csv(table), len(df.columns)) == df.to_csv(index=False), case
        ours, theirs = _json(table), _pandas_json(df)
        assert [(r["datetime_start"], r["duration"]) for r in ours] == [
            (r["datetime_start"], r["duration"]) for r in theirs
        ], case
    engine.dispose()


def test_export_needs_no_pandas(db: str, tmp_path: Path) -> None:
    """The export in a fresh interpreter where pandas can't be imported."""
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import io, sqlalchemy as sa\n"
        "from tui_hpo.data import export, summaries\n"
        f"engine = sa.create_engine({db!r})\n"
        "with engine.connect() as con: sid = summaries.study_ids(con)['multi']\n"
        "out = io.StringIO(); n = export.export(engine, sid, out, fmt='csv')\n"
        "print(n, 'pandas' in sys.modules and sys.modules['pandas'] is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["14", "False"]
