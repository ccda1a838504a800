"""``tui-hpo tag``, ``untag`` and ``note`` end to end, and what ``status`` shows of a note.

The round trips run the CLI as a user does (a subprocess) and check the storage with Optuna and
optuna-dashboard themselves; the bad inputs (docs/bad-input.md) run in-process through click's
CliRunner, each one line on stderr, exit 2 and the storage as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note, save_note

from tests.support import Cli, clean_env
from tui_hpo.cli import cli as tui_hpo_command
from tui_hpo.storage import attrs

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

LONG = "".join(f"- point {i}: {'z' * (i % 50)}\n" for i in range(200))
"""Over 2045 characters: optuna-dashboard keeps it in several pieces."""


def make_study(url: str, name: str = "S", n: int = 3) -> None:
    study = optuna.create_study(study_name=name, storage=url)
    for i in range(n):
        study.add_trial(
            create_trial(
                params={"x": float(i)},
                distributions={"x": FloatDistribution(-10, 10)},
                value=float(i),
                state=TrialState.COMPLETE,
            )
        )


def loaded(url: str, name: str = "S") -> optuna.Study:
    """The study as plain Optuna reads it afresh (no cache from an earlier read)."""
    return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url))


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    return optuna.Trial(study, study.trials[number]._trial_id)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_tags_and_notes_round_trip(cli: Cli, storage_url: str, tmp_path: Path) -> None:
    make_study(storage_url)
    at = ("--storage", storage_url)
    assert ok(cli("tag", "S", "1", "keep", "bad", *at)) == (
        "S: trial 1 tagged keep, bad (tags: bad, keep)\n"
    )
    assert (
        ok(cli("tag", "S", "1", "bad", *at)) == "S: trial 1 already tagged bad (tags: bad, keep)\n"
    )
    assert ok(cli("untag", "S", "1", "bad", *at)) == "S: trial 1 untagged bad (tags: keep)\n"
    assert ok(cli("untag", "S", "2", "bad", *at)) == "S: trial 2 has no tag bad (tags: none)\n"
    study = loaded(storage_url)
    assert study.trials[1].user_attrs[attrs.TAGS] == ["keep"]
    assert attrs.TAGS not in study.trials[2].user_attrs

    # notes: the study's with --set, a trial's from a file; optuna-dashboard reads both
    said = ok(cli("note", "S", "--set", "# Baseline run\nlr sweep, no augmentation", *at))
    assert said == "S: study note saved (2 lines, 40 characters)\n"
    (tmp_path / "note.md").write_text(LONG)
    said = ok(cli("note", "S", "1", "--file", str(tmp_path / "note.md"), *at))
    assert (
        said == f"S: note of trial 1 saved ({LONG.count(chr(10))} lines, {len(LONG)} characters)\n"
    )
    study = loaded(storage_url)
    assert get_note(study) == "# Baseline run\nlr sweep, no augmentation"
    assert get_note(trial_of(study, 1)) == LONG

    # and what optuna-dashboard saves, the CLI prints, exactly
    save_note(trial_of(study, 2), "from the dashboard\n")
    assert ok(cli("note", "S", "2", *at)) == "from the dashboard\n"
    assert ok(cli("note", "S", "1", *at)) == LONG
    assert ok(cli("note", "S", *at)) == "# Baseline run\nlr sweep, no augmentation\n"
    save_note(trial_of(study, 1), "shorter")
    assert ok(cli("note", "S", "1", *at)) == "shorter\n"
    empty = cli("note", "S", "0", *at)
    assert ok(empty) == "" and empty.stderr == "S: trial 0 has no note\n"

    # status shows the first line of the study's note
    status = json.loads(ok(cli("status", "--study", "S", "--json", *at)))
    assert status["studies"][0]["note"] == "# Baseline run"
    assert "note S: # Baseline run" in ok(cli("status", *at, env={"COLUMNS": "200"}))
    assert ok(cli("note", "S", "--set", "", *at)) == "S: study note cleared\n"
    assert get_note(loaded(storage_url)) == ""
    assert json.loads(ok(cli("status", "--json", *at)))["studies"][0]["note"] is None


def test_note_from_stdin_and_from_an_editor(cli: Cli, sqlite_url: str) -> None:
    make_study(sqlite_url)
    piped = subprocess.run(
        [sys.executable, "-m", "tui_hpo", "note", "S", "0", "--file", "-", "--storage", sqlite_url],
        input="old words\nsecond line",
        capture_output=True,
        text=True,
        env=clean_env(None),
        timeout=120,
    )
    assert ok(piped) == "S: note of trial 0 saved (2 lines, 21 characters)\n"
    # the editor gets the note and its edit is saved (without the newline editors add)
    edited = cli(
        "note", "S", "0", "--edit", "--storage", sqlite_url, env={"EDITOR": "sed -i s/old/new/"}
    )
    assert ok(edited) == "S: note of trial 0 saved (2 lines, 21 characters)\n"
    assert get_note(trial_of(loaded(sqlite_url), 0)) == "new words\nsecond line"
    # an editor that saves nothing changes nothing
    unchanged = cli("note", "S", "0", "--edit", "--storage", sqlite_url, env={"EDITOR": "true"})
    assert ok(unchanged) == "S: note not changed\n"


# bad input ----------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(tui_hpo_command, list(args), prog_name="tui-hpo")


def one_error(result: Result, needle: str) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tag", "nope", "0", "x"], "no study named 'nope' in this storage (studies: S)"),
        (["untag", "nope", "0", "x"], "no study named 'nope'"),
        (["note", "nope"], "no study named 'nope'"),
        (["note", "nope", "--set", "x"], "no study named 'nope'"),
        (["tag", "S", "99", "x"], "trial 99 does not exist in this study"),
        (["untag", "S", "99", "x"], "trial 99 does not exist in this study"),
        (["note", "S", "99"], "trial 99 does not exist in this study"),
        (["note", "S", "99", "--set", "x"], "trial 99 does not exist in this study"),
        (["tag", "S", "0", ""], "a tag can't be empty"),
        (["tag", "S", "0"], "give at least one tag"),
        (["tag", "S", "0", "two words"], "tag 'two words' has a blank in it: a tag is one word"),
        (["tag", "S", "0", "ok", "a,b"], "tag 'a,b' has a comma in it: a tag is one word"),
        (["untag", "S", "0", "a b"], "has a blank in it"),
        (["note", "S", "--set", "x", "--edit"], "give one of --set, --file and --edit"),
        (["note", "S", "--file", "no-such.md"], "--file no-such.md: No such file or directory"),
    ],
)
def test_bad_input(sqlite_url: str, workdir: Path, args: list[str], needle: str) -> None:
    make_study(sqlite_url)
    one_error(invoke(*args, "--storage", sqlite_url), needle)
    study = loaded(sqlite_url)
    assert all(attrs.TAGS not in t.user_attrs for t in study.trials)  # nothing written
    assert not any(
        k.startswith("dashboard:") for k in study._storage.get_study_system_attrs(study._study_id)
    )
