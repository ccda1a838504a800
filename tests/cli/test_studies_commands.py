"""``tui-hpo copy-study`` and ``tui-hpo delete-study`` end to end: the commands run as real
subprocesses (the ``cli`` fixture), and what they did is read back from the storage: the copy
through ``optuna.load_study``, a deletion as rows gone from Optuna's and every ``tui_hpo_*``
table. Bad input: one ``error:`` line, exit 2, every table's row count as it was.

The copy and the deletion themselves, trial for trial, are in tests/control/test_study_copies.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.control.test_study_copies import assert_same_study, make_source, row_counts
from tests.steering.running import assert_one_line_error
from tests.support import Cli, clean_env
from tui_hpo.control import registry
from tui_hpo.storage.engines import open_storage
from tui_hpo.storage.urls import parse_url

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:Heartbeat of storage")]

optuna.logging.set_verbosity(optuna.logging.WARNING)

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"


@pytest.fixture
def storage(storage_url: str, workdir: Path) -> Iterator[optuna.storages.RDBStorage]:
    """The storage with a study ``src`` of 14 trials (tests/control's ``make_source``)."""
    opened = open_storage(parse_url(storage_url))
    make_source(opened)
    yield opened
    opened.engine.dispose()


def tui_hpo(*args: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    """``tui-hpo ARGS`` with stdin given (``DEVNULL``: no terminal), where ``cli`` would let
    the subprocess inherit the test runner's, which may be a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "tui_hpo", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=stdin,
        timeout=120,
    )


def with_tty(*args: str, answer: str) -> subprocess.CompletedProcess[str]:
    """``tui-hpo ARGS`` with a pseudo-terminal as stdin, typing ``answer`` and Enter."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui_hpo", *args],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        os.write(leader, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def studies(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(url))


# copy-study -----------------------------------------------------------------------------------


def test_copy_study_with_a_filter(
    cli: Cli, storage: optuna.storages.RDBStorage, storage_url: str
) -> None:
    done = cli(
        "copy-study",
        "src",
        "clean",
        "--filter",
        "state == complete or state == waiting",
        "--storage",
        storage_url,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("src: copied 10 of 14 trials to 'clean', renumbered 0-9"), (
        done.stdout
    )
    src = optuna.load_study(study_name="src", storage=storage_url)
    numbers = [t.number for t in src.trials if t.state in (TrialState.COMPLETE, TrialState.WAITING)]
    assert_same_study(src, optuna.load_study(study_name="clean", storage=storage_url), numbers)
    assert studies(storage_url) == ["clean", "src"]


def test_copy_study_to_another_storage(
    cli: Cli, storage: optuna.storages.RDBStorage, storage_url: str, tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    done = cli("copy-study", "src", "src", "--storage", storage_url, "--to-storage", other)
    assert done.returncode == 0, done.stderr
    assert f"copied 14 of 14 trials to 'src' in {other}" in done.stdout
    src = optuna.load_study(study_name="src", storage=storage_url)
    assert_same_study(src, optuna.load_study(study_name="src", storage=other), list(range(14)))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("nope", "dst"), "no study named 'nope' in this storage (studies: src)"),
        (("src", "src"), "a study named 'src' already exists in this storage"),
        (("src", "dst", "--filter", "lr <"), "filter:"),
        (("src", "dst", "--filter", "lrr < 1"), "filter: unknown field 'lrr' at 1"),
        (("src", "dst", "--filter", "x > 5"), "filter 'x > 5' matches none of the 14 trials"),
        (("src", "dst", "--to-storage", "notaurl"), "malformed storage URL 'notaurl'"),
        (("src", "dst", "--to-storage", UNREACHABLE), "can't reach storage"),
        (("src", "dst", "--to-storage", "sqlite:////no/such/dir/x.db"), "folder /no/such/dir"),
    ],
)
def test_copy_study_bad_input(
    cli: Cli,
    storage: optuna.storages.RDBStorage,
    storage_url: str,
    args: tuple[str, ...],
    words: str,
) -> None:
    before = row_counts(storage.engine)
    assert_one_line_error(cli("copy-study", *args, "--storage", storage_url), words)
    assert row_counts(storage.engine) == before


# delete-study ---------------------------------------------------------------------------------


def trial_rows(engine: sa.Engine) -> dict[str, int]:
    """Rows in each table that has trial rows or study rows, Optuna's and tui-hpo's."""
    with engine.connect() as con:
        names = [
            n
            for n in sa.inspect(con).get_table_names()
            if n.startswith(("trial", "study", "tui_hpo_"))
        ]
        return {n: con.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one() for n in names}


def test_delete_study_with_yes_leaves_no_row(
    cli: Cli, storage: optuna.storages.RDBStorage, storage_url: str
) -> None:
    study_id = optuna.load_study(study_name="src", storage=storage_url)._study_id
    worker = registry.register(storage.engine, study_id, gpu=None, log_path=None)
    registry.update(storage.engine, worker, state="exited")
    done = cli("delete-study", "src", "--yes", "--storage", storage_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("src: deleted, with its 14 trial(s)"), done.stdout
    assert studies(storage_url) == []
    left = {n: c for n, c in trial_rows(storage.engine).items() if c}
    assert left == {}


def test_delete_study_without_a_terminal_needs_yes(
    storage: optuna.storages.RDBStorage, storage_url: str
) -> None:
    before = row_counts(storage.engine)
    done = tui_hpo("delete-study", "src", "--storage", storage_url, stdin=subprocess.DEVNULL)
    assert_one_line_error(done, "no terminal to ask in: add --yes")
    assert row_counts(storage.engine) == before


def test_delete_study_asks_in_a_terminal(
    storage: optuna.storages.RDBStorage, storage_url: str
) -> None:
    before = row_counts(storage.engine)
    kept = with_tty("delete-study", "src", "--storage", storage_url, answer="n")
    assert kept.returncode == 1, kept.stderr
    assert "Delete study 'src' and its 14 trial(s) for good? [y/N]" in kept.stdout
    assert "src: not deleted" in kept.stdout
    assert row_counts(storage.engine) == before
    gone = with_tty("delete-study", "src", "--storage", storage_url, answer="y")
    assert gone.returncode == 0, gone.stderr
    assert "src: deleted" in gone.stdout
    assert studies(storage_url) == []


def test_delete_study_refuses_live_workers_unless_forced(
    cli: Cli, storage: optuna.storages.RDBStorage, storage_url: str
) -> None:
    study_id = optuna.load_study(study_name="src", storage=storage_url)._study_id
    worker = registry.register(storage.engine, study_id, gpu="0", log_path=None)
    registry.update(storage.engine, worker, state="running")
    before = row_counts(storage.engine)
    refused = cli("delete-study", "src", "--yes", "--storage", storage_url)
    assert_one_line_error(refused, "has 1 live worker(s)")
    assert "tui-hpo stop src" in refused.stderr and "--force" in refused.stderr
    assert row_counts(storage.engine) == before
    forced = cli("delete-study", "src", "--yes", "--force", "--storage", storage_url)
    assert forced.returncode == 0, forced.stderr
    assert "1 live worker(s) left running" in forced.stdout
    assert studies(storage_url) == []


def test_delete_study_unknown(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    optuna.create_study(study_name="kept", storage=sqlite_url)
    done = cli("delete-study", "nope", "--yes", "--storage", sqlite_url)
    assert_one_line_error(done, "no study named 'nope' in this storage (studies: kept)")
    assert studies(sqlite_url) == ["kept"]
