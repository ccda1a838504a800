"""``tui-hpo export`` end to end, as a user runs it (a real subprocess through ``cli``): the
output against Optuna's ``trials_dataframe()`` on SQLite and PostgreSQL, ``--filter``,
``--output`` and ``--format``, and every bad input as one ``error:`` line (docs/bad-input.md).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.data.test_export import _make, _optuna_part, _pandas_json, _same
from tests.support import Cli, clean_env

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

NAMES = ["err", "acc"]


@pytest.fixture
def study_url(storage_url: str) -> str:
    _make(storage_url, "S", ["minimize", "maximize"], NAMES)
    return storage_url


def _frame(url: str):  # type: ignore[no-untyped-def]
    return optuna.load_study(study_name="S", storage=url).trials_dataframe()


def assert_one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_csv_and_json_match_trials_dataframe(cli: Cli, study_url: str, workdir: Path) -> None:
    df = _frame(study_url)
    proc = cli("export", "S", "--storage", study_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    header = next(csv.reader(io.StringIO(proc.stdout)))
    assert header[: len(df.columns)] == list(df.columns)
    assert header[len(df.columns) :] == ["sampler", "fail_reason"]
    assert _optuna_part(proc.stdout, len(df.columns)) == df.to_csv(index=False)

    before = set(workdir.iterdir())
    out = workdir / "trials.json"  # the format follows the file's name
    proc = cli("export", "S", "--storage", study_url, "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "14 trials of 'S' written to" in proc.stderr
    ours = json.loads(out.read_text())
    theirs = _pandas_json(df)
    assert [r["number"] for r in ours] == [r["number"] for r in theirs]
    for mine, want in zip(ours, theirs, strict=True):
        assert all(_same(mine[k], want[k]) for k in want), (mine, want)
    assert set(workdir.iterdir()) - before == {out}  # no temporary file left


def test_filter_and_format(cli: Cli, study_url: str, workdir: Path) -> None:
    df = _frame(study_url)
    want = df[(df.state == "COMPLETE") & (df.values_err < 1e-2)]
    assert 0 < len(want) < len(df)
    proc = cli(
        "export", "S", "--storage", study_url, "--filter", "state == complete and err < 1e-2"
    )
    assert proc.returncode == 0, proc.stderr
    assert _optuna_part(proc.stdout, len(df.columns)) == want.to_csv(index=False)

    proc = cli("export", "S", "--storage", study_url, "--format", "JSON", "--filter", "number < 3")
    assert proc.returncode == 0, proc.stderr
    assert [r["number"] for r in json.loads(proc.stdout)] == [0, 1, 2]

    out = workdir / "t.json"
    proc = cli("export", "S", "--storage", study_url, "--format", "csv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("number,")  # --format wins over the name


def test_stdout_closed_early_is_no_error(sqlite_url: str, workdir: Path) -> None:
    """``tui-hpo export S | head -c 10``: the reader leaving (more output than a pipe holds
    still to come) is not a crash and prints nothing."""
    study = optuna.create_study(study_name="S", storage=sqlite_url)
    trial = study.ask()
    trial.set_user_attr("blob", "x" * 300_000)
    study.tell(trial, 1.0)
    command = [sys.executable, "-m", "tui_hpo", "export", "S", "--storage", sqlite_url]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(None)
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == b"number,val"
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert err == ""
    assert code == 0


def test_bad_inputs(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    _make(sqlite_url, "S", ["minimize"], None)
    optuna.create_study(study_name="other", storage=sqlite_url)
    url = ("--storage", sqlite_url)
    before = set(workdir.iterdir())
    line = assert_one_error(cli("export", "nope", *url), "no study named 'nope'")
    assert "S, other" in line
    assert_one_error(cli("export", "S", *url, "--format", "xml"), "unknown format 'xml'", "csv")
    assert_one_error(cli("export", "S", *url, "--filter", "lr <"), "filter:", "at 5")
    assert_one_error(cli("export", "S", *url, "--filter", "lrr < 1"), "unknown field 'lrr'")
    assert_one_error(cli("export", "S", *url, "--filter", "value0 < 1 or value1 < 1"), "value1")
    missing = workdir / "no" / "such" / "folder" / "t.csv"
    assert_one_error(cli("export", "S", *url, "-o", str(missing)), "can't write", str(missing))
    assert_one_error(cli("export", "S", *url, "-o", str(workdir)), "can't write", "folder")
    nope = workdir / "nope.db"
    assert_one_error(cli("export", "S", "--storage", f"sqlite:///{nope}"), "no storage at")
    assert not nope.exists()
    assert set(workdir.iterdir()) == before  # nothing written anywhere


def test_a_failed_export_leaves_an_earlier_file_alone(
    cli: Cli, sqlite_url: str, workdir: Path
) -> None:
    _make(sqlite_url, "S", ["minimize"], None)
    out = workdir / "t.csv"
    out.write_text("earlier\n")
    assert_one_error(cli("export", "S", "--storage", sqlite_url, "-o", str(out), "--filter", "x <"))
    assert out.read_text() == "earlier\n"
