"""Bad input: one ``error:`` line on stderr, a non-zero exit, no traceback, storage untouched.

docs/bad-input.md lists each case. Most run in-process through click's CliRunner (fast; every
check happens before a process is started or anything is written); a few run as real
``python -m tui_hpo`` subprocesses, the way a user meets them. ``worker`` cases always run as
subprocesses: that command installs logging handlers and sets ``TUI_HPO_STORAGE`` in its own
process, which must not leak into the test process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tests.support import Cli
from tui_hpo.cli import cli as tui_hpo_command
from tui_hpo.machine import gpus

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)

QUADRATIC = "objectives.synthetic:quadratic"
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"
UNREACHABLE_WITH_PASSWORD = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x"
GRID = '{"search_space": {"mode": ["ok", "raise"]}}'


# helpers --------------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def study_names(url: str) -> list[str]:
    """Names of the studies in the storage; a SQLite file that isn't there has none (and is not
    created by looking)."""
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        return []
    storage = optuna.storages.RDBStorage(url)
    try:
        return sorted(s.study_name for s in storage.get_all_studies())
    finally:
        storage.engine.dispose()


def tui_rows(url: str) -> dict[str, int]:
    """Non-empty tui-hpo tables and their row counts: a bad input must add no row."""
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        return {}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            names = [n for n in sa.inspect(con).get_table_names() if n.startswith("tui_hpo_")]
            counts = {
                n: con.execute(sa.text(f"SELECT count(*) FROM {n}")).scalar_one() for n in names
            }
            return {n: c for n, c in counts.items() if c}
    finally:
        engine.dispose()


def make_study(url: str, name: str, directions: list[str]) -> None:
    storage = optuna.storages.RDBStorage(url)
    try:
        optuna.create_study(study_name=name, storage=storage, directions=directions)
    finally:
        storage.engine.dispose()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(tui_hpo_command, list(args), prog_name="tui-hpo")


def assert_one_error(result: Result, *needles: str, code: int = 2) -> str:
    """CliRunner result: exit ``code``, exactly one stderr line ``error: ...`` holding every
    needle, nothing on stdout, no traceback. Returns the line."""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    return line


def assert_one_error_proc(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The same for a real subprocess."""
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def launch_args(url: str, *extra: str, objective: str = QUADRATIC) -> list[str]:
    return ["launch", objective, "--study", "S", "--storage", url, "--n-trials", "1", *extra]


# storage URLs ---------------------------------------------------------------------------------

BAD_URLS = [
    pytest.param("notaurl", ["malformed storage URL", "notaurl"], id="malformed"),
    pytest.param("sqlite://", ["in-memory SQLite"], id="in-memory-sqlite"),
    pytest.param("sqlite:///:memory:", ["in-memory SQLite"], id="memory-sqlite"),
    pytest.param("foo://x", ["unsupported storage URL", "foo://x"], id="unsupported"),
    pytest.param(UNREACHABLE, ["can't reach storage", "127.0.0.1"], id="unreachable"),
]


@pytest.mark.parametrize(("url", "needles"), BAD_URLS)
def test_status_bad_storage_url(workdir: Path, url: str, needles: list[str]) -> None:
    assert_one_error(invoke("status", "--storage", url), *needles)
    assert_one_error(invoke("status", "--json", "--storage", url), *needles)
    assert list(workdir.iterdir()) == []  # nothing created, not even the default tui-hpo.db


@pytest.mark.parametrize(("url", "needles"), BAD_URLS)
def test_launch_bad_storage_url(workdir: Path, url: str, needles: list[str]) -> None:
    assert_one_error(invoke(*launch_args(url)), *needles)
    assert list(workdir.iterdir()) == []  # no log folder, no default storage


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        pytest.param("notaurl", ["malformed storage URL", "notaurl"], id="malformed"),
        pytest.param("foo://x", ["unsupported storage URL"], id="unsupported"),
        pytest.param(UNREACHABLE, ["can't reach storage"], id="unreachable"),
    ],
)
def test_worker_bad_storage_url(cli: Cli, workdir: Path, url: str, needles: list[str]) -> None:
    proc = cli("worker", QUADRATIC, "--study", "S", "--storage", url, cwd=workdir)
    assert_one_error_proc(proc, *needles)
    assert list(workdir.iterdir()) == []


def test_storage_url_from_environment_is_checked_too(cli: Cli, workdir: Path) -> None:
    proc = cli("status", env={"TUI_HPO_STORAGE": "notaurl"}, cwd=workdir)
    assert_one_error_proc(proc, "malformed storage URL")
    assert list(workdir.iterdir()) == []


def test_password_in_a_malformed_url_is_not_echoed(workdir: Path) -> None:
    for url in ("postgresql+psycopg://me:hunter2@host:notaport/db", UNREACHABLE_WITH_PASSWORD):
        line = assert_one_error(invoke("status", "--storage", url))
        assert "hunter2" not in line
        assert "***" in line


def test_status_on_missing_sqlite_file(cli: Cli, workdir: Path) -> None:
    db = workdir / "nope.db"
    url = f"sqlite:///{db}"
    assert_one_error(invoke("status", "--storage", url), "no storage at", str(db))
    assert_one_error(invoke("status", "--json", "--study", "S", "--storage", url), "no storage")
    proc = cli("status", "--storage", url, cwd=workdir)
    assert_one_error_proc(proc, "does not exist")
    assert not db.exists()
    assert list(workdir.iterdir()) == []


def test_launch_into_missing_folder(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'no' / 'such' / 'folder' / 'x.db'}"
    assert_one_error(invoke(*launch_args(url)), "folder", "does not exist")
    assert list(workdir.iterdir()) == []


def test_sqlite_file_that_is_not_a_database(workdir: Path) -> None:
    junk = workdir / "junk.db"
    junk.write_text("this is not a database\n" * 100)
    before = junk.read_bytes()
    assert_one_error(invoke("status", "--storage", f"sqlite:///{junk}"), "can't open storage")
    assert_one_error(invoke(*launch_args(f"sqlite:///{junk}")), "can't open storage")
    assert junk.read_bytes() == before


# unknown study --------------------------------------------------------------------------------


def test_status_unknown_study(storage_url: str, workdir: Path) -> None:
    make_study(storage_url, "real", ["minimize"])
    before = tui_rows(storage_url)
    line = assert_one_error(
        invoke("status", "--study", "nope", "--storage", storage_url), "no study named 'nope'"
    )
    assert "Traceback" not in line
    assert_one_error(
        invoke("status", "--json", "--study", "nope", "--storage", storage_url), "'nope'"
    )
    assert study_names(storage_url) == ["real"]
    assert tui_rows(storage_url) == before


def test_status_unknown_study_subprocess(cli: Cli, storage_url: str, workdir: Path) -> None:
    make_study(storage_url, "real", ["minimize"])
    proc = cli("status", "--study", "nope", "--storage", storage_url, cwd=workdir)
    assert_one_error_proc(proc, "no study named 'nope'")
    assert study_names(storage_url) == ["real"]


def test_worker_unknown_study(cli: Cli, storage_url: str, workdir: Path) -> None:
    make_study(storage_url, "real", ["minimize"])
    before = tui_rows(storage_url)
    proc = cli("worker", QUADRATIC, "--study", "nope", "--storage", storage_url, cwd=workdir)
    assert_one_error_proc(proc, "no study named 'nope'", "real")
    assert study_names(storage_url) == ["real"]
    assert tui_rows(storage_url) == before  # no worker row was registered


def test_worker_unknown_study_via_environment(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    make_study(sqlite_url, "real", ["minimize"])
    proc = cli("worker", QUADRATIC, "--study", "nope", env={"TUI_HPO_STORAGE": sqlite_url})
    assert_one_error_proc(proc, "no study named 'nope'")
    assert study_names(sqlite_url) == ["real"]


def test_worker_on_missing_sqlite_file_leaves_no_file(cli: Cli, workdir: Path) -> None:
    db = workdir / "typo.db"
    proc = cli("worker", QUADRATIC, "--study", "S", "--storage", f"sqlite:///{db}")
    assert_one_error_proc(proc)
    assert not db.exists()


def test_worker_bad_objective(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    make_study(sqlite_url, "S", ["minimize"])
    proc = cli("worker", "nosuchmod_tuihpo:objective", "--study", "S", "--storage", sqlite_url)
    assert_one_error_proc(proc, "objective module 'nosuchmod_tuihpo' not found")
    assert tui_rows(sqlite_url) == {}


# the objective --------------------------------------------------------------------------------


@pytest.fixture
def objective_files(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Files for objective specs: a good one, a non-callable one, one that fails to import."""
    (workdir / "good.py").write_text("def objective(trial):\n    return 1.0\n")
    (workdir / "notcallable_tuihpo.py").write_text("objective = 3\n")
    (workdir / "broken_tuihpo.py").write_text("raise ValueError('boom at import')\n")
    (workdir / "needsdep_tuihpo.py").write_text("import no_such_dependency_tuihpo\n")
    monkeypatch.syspath_prepend(str(workdir))
    return workdir


def _objective_cases(d: Path) -> list[tuple[str, list[str]]]:
    return [
        ("nosuchmod_tuihpo:objective", ["objective module 'nosuchmod_tuihpo' not found"]),
        ("nosuchpkg_tuihpo.sub:objective", ["not found"]),
        (f"{d / 'missing.py'}:objective", ["missing.py not found"]),
        ("missing.py:objective", ["file missing.py not found"]),
        ("objectives.synthetic:nope", ["objectives.synthetic has no 'nope'"]),
        ("good.py:nope", ["has no 'nope'"]),
        ("notcallable_tuihpo:objective", ["'objective' is a int, not a function"]),
        (f"{d / 'notcallable_tuihpo.py'}:objective", ["is a int, not a function"]),
        ("broken_tuihpo:objective", ["failed to import", "boom at import"]),
        ("needsdep_tuihpo:objective", ["no_such_dependency_tuihpo", "missing"]),
        ("objective", ["expected MODULE:FUNCTION"]),
        ("objectives.synthetic:", ["expected MODULE:FUNCTION"]),
        ("not-a-module:objective", ["is not a module name"]),
    ]


def test_launch_bad_objective(storage_url: str, objective_files: Path) -> None:
    for spec, needles in _objective_cases(objective_files):
        assert_one_error(invoke(*launch_args(storage_url, objective=spec)), *needles)
    assert study_names(storage_url) == []
    assert tui_rows(storage_url) == {}
    path = _sqlite_path(storage_url)
    assert path is None or not path.exists()
    assert not (objective_files / "tui-hpo-logs").exists()


def test_launch_bad_objective_subprocess(cli: Cli, workdir: Path) -> None:
    db = workdir / "x.db"
    (workdir / "notcallable.py").write_text("objective = 3\n")
    for spec, needle in [
        ("nosuchmod_tuihpo:objective", "not found"),
        ("notcallable.py:objective", "not a function"),
        ("objectives.synthetic:nope", "has no 'nope'"),
    ]:
        proc = cli(*launch_args(f"sqlite:///{db}", objective=spec), cwd=workdir)
        assert_one_error_proc(proc, needle)
    assert not db.exists()


# directions -----------------------------------------------------------------------------------


def test_direction_count_disagrees_with_existing_study(storage_url: str, workdir: Path) -> None:
    make_study(storage_url, "MO", ["minimize", "minimize"])
    make_study(storage_url, "SO", ["maximize"])
    before = tui_rows(storage_url)
    for args, needles in [
        (["objectives.synthetic:zdt1", "--study", "MO", "--direction", "minimize"], ["disagree"]),
        ([QUADRATIC, "--study", "MO"], ["minimize", "minimize,minimize"]),
        (["objectives.synthetic:zdt1", "--study", "SO"], ["maximize"]),
        ([QUADRATIC, "--study", "SO", "--direction", "minimize"], ["disagree"]),
    ]:
        result = invoke("launch", *args, "--storage", storage_url, "--n-trials", "1")
        assert_one_error(result, "directions", *needles)
    assert study_names(storage_url) == ["MO", "SO"]
    assert tui_rows(storage_url) == before
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        mo = optuna.load_study(study_name="MO", storage=storage)
        so = optuna.load_study(study_name="SO", storage=storage)
        assert len(mo.directions) == 2 and mo.trials == []
        assert so.direction == optuna.study.StudyDirection.MAXIMIZE and so.trials == []
    finally:
        storage.engine.dispose()


def test_direction_count_disagrees_subprocess(cli: Cli, sqlite_url: str, workdir: Path) -> None:
    make_study(sqlite_url, "MO", ["minimize", "minimize"])
    proc = cli(
        "launch",
        "objectives.synthetic:zdt1",
        "--study",
        "MO",
        "--direction",
        "minimize",
        "--storage",
        sqlite_url,
        "--n-trials",
        "1",
        cwd=workdir,
    )
    assert_one_error_proc(proc, "disagree with the existing study's minimize,minimize")
    assert study_names(sqlite_url) == ["MO"]
    assert not (workdir / "tui-hpo-logs").exists()


def test_direction_flags_disagreeing_with_objective_count(
    cli: Cli, sqlite_url: str, workdir: Path
) -> None:
    proc = cli(
        "launch",
        "objectives.synthetic:zdt1",
        "--study",
        "Z",
        "--direction",
        "minimize",
        "--storage",
        sqlite_url,
        "--n-trials",
        "1",
        "--workers",
        "1",
        "--log-dir",
        str(workdir / "logs"),
        cwd=workdir,
        timeout=60,
    )
    assert_one_error_proc(proc, "direction")
    assert study_names(sqlite_url) == []


# numbers and options --------------------------------------------------------------------------


def _option_cases() -> list[tuple[list[str], list[str]]]:
    return [
        (["--n-trials", "0"], ["--n-trials must be at least 1"]),
        (["--n-trials", "-3"], ["--n-trials must be at least 1"]),
        (["--workers", "0"], ["--workers must be at least 1"]),
        (["--timeout", "0"], ["--timeout"]),
        (["--direction", "up"], ["direction 'up'"]),
        (["--sampler", "bogus"], ["unknown sampler 'bogus'", "tpe"]),
        (["--pruner", "bogus"], ["unknown pruner 'bogus'", "median"]),
        (["--sampler", "tpe", "--sampler-kwargs", "{bad"], ["--sampler-kwargs is not valid JSON"]),
        (["--sampler", "tpe", "--sampler-kwargs", "[1, 2]"], ["must be a JSON object"]),
        (["--sampler", "tpe", "--sampler-kwargs", '{"bogus": 1}'], ["rejects", "'bogus'"]),
        (["--sampler", "tpe", "--sampler-kwargs", '{"n_startup_trials": "x"}'], ["rejects"]),
        (["--sampler-kwargs", '{"seed": 1}'], ["--sampler-kwargs needs --sampler"]),
        (["--pruner", "median", "--pruner-kwargs", "{bad"], ["--pruner-kwargs is not valid"]),
        (["--pruner", "percentile"], ["pruner percentile needs kwargs", "percentile"]),
        (["--pruner-kwargs", "{}"], []),  # an empty JSON object still needs --pruner
        (["--sampler", "grid"], ["sampler grid needs kwargs"]),
        (["--sampler", "grid", "--sampler-kwargs", '{"search_space": {}}'], ["grid"]),
        (["--heartbeat-interval", "0"], ["--heartbeat-interval must be at least 1"]),
        (["--heartbeat-interval", "5", "--grace-period", "2"], ["--grace-period must be"]),
        (["--retry-failed", "-1"], ["--retry-failed"]),
        (["--workers-per-gpu", "0", "--gpus", "0"], []),
    ]


def test_launch_bad_options(
    storage_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "2")
    for extra, needles in _option_cases():
        assert_one_error(invoke(*launch_args(storage_url, *extra)), *needles)
    assert study_names(storage_url) == []
    assert tui_rows(storage_url) == {}
    path = _sqlite_path(storage_url)
    assert path is None or not path.exists()
    assert list(workdir.iterdir()) == []


def test_gpu_index_not_there_without_gpus(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    available = gpus.gpu_count()
    if available > 3:
        pytest.skip(f"this machine has {available} GPUs, so GPU 3 is there")
    url = f"sqlite:///{workdir / 'x.db'}"
    line = assert_one_error(invoke(*launch_args(url, "--gpus", "3")), "GPU 3 is not there")
    if available == 0:
        assert "no GPU" in line
    assert list(workdir.iterdir()) == []


def test_gpu_options_with_two_gpus(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_HPO_GPU_COUNT", "2")
    url = f"sqlite:///{workdir / 'x.db'}"
    for extra, needles in [
        (["--gpus", "3"], ["GPU 3 is not there", "2 GPUs (0-1)"]),
        (["--gpus", "0,0"], ["twice"]),
        (["--gpus", "x"], ["--gpus takes"]),
        (["--gpus", "-1"], ["--gpus takes"]),
        (["--gpus", "0", "--workers", "4", "--workers-per-gpu", "2"], ["4 workers need more"]),
    ]:
        assert_one_error(invoke(*launch_args(url, *extra)), *needles)
    assert list(workdir.iterdir()) == []


def test_gpu_index_not_there_subprocess(cli: Cli, workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'x.db'}"
    proc = cli(*launch_args(url, "--gpus", "3"), env={"TUI_HPO_GPU_COUNT": "1"}, cwd=workdir)
    assert_one_error_proc(proc, "GPU 3 is not there: this machine has 1 GPU (0)")
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        pytest.param(["--n-trials", "0"], "--n-trials must be at least 1", id="n-trials-0"),
        pytest.param(["--sampler", "bogus"], "unknown sampler 'bogus'", id="unknown-sampler"),
        pytest.param(["--sampler", "tpe", "--sampler-kwargs", "{x"], "not valid JSON", id="json"),
        pytest.param(
            ["--sampler", "tpe", "--sampler-kwargs", '{"bogus": 1}'],
            "sampler tpe rejects kwargs",
            id="rejected-kwargs",
        ),
    ],
)
def test_launch_bad_options_subprocess(
    cli: Cli, workdir: Path, extra: list[str], needle: str
) -> None:
    db = workdir / "x.db"
    proc = cli(*launch_args(f"sqlite:///{db}", *extra), cwd=workdir)
    assert_one_error_proc(proc, needle)
    assert list(workdir.iterdir()) == []


def test_bad_input_leaves_existing_study_as_it_was(storage_url: str, workdir: Path) -> None:
    """An existing study keeps its trials, sampler and budget when a later launch is refused."""
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        study = optuna.create_study(study_name="S", storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    finally:
        storage.engine.dispose()
    before = tui_rows(storage_url)
    for extra in (["--n-trials", "0"], ["--sampler", "bogus"], ["--direction", "maximize"]):
        assert_one_error(invoke(*launch_args(storage_url, *extra)))
    assert study_names(storage_url) == ["S"]
    assert tui_rows(storage_url) == before
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        trials = optuna.load_study(study_name="S", storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    finally:
        storage.engine.dispose()
