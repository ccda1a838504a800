"""The parts of the Slurm path that need no cluster: ``--slurm-args`` checked, the export list
and the job script free of the storage URL, the storage file's modes, queued tasks shown as
worker rows, and the ``slurm_job`` column added to a storage made before it existed."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.errors import UserError
from tui_hpo.machine import slurm
from tui_hpo.runtime import slurm as slurm_workers
from tui_hpo.storage import tables
from tui_hpo.storage.urls import read_storage_file, write_storage_file

SECRET = "Parts-s3cret"


def test_one_gpu_per_task_unless_the_args_ask_for_gpus() -> None:
    assert slurm.parse_args(None).args == ("--gres=gpu:1",)
    assert slurm.parse_args("-p gpu --time=04:00:00").args == (
        "-p",
        "gpu",
        "--time=04:00:00",
        "--gres=gpu:1",
    )
    for text in ("--gres=gpu:a100:2", "--gpus=2", "--gpus-per-task 1", "-G 1", "--gres gpu:2"):
        assert "--gres=gpu:1" not in slurm.parse_args(text).args, text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("--array=0-3", "sets --array itself"),
        ("-a 0-3", "sets --array itself"),
        ("-o out.log", "sets --output itself"),
        ("--wrap 'echo hi'", "sets --wrap itself"),
        ("--export=ALL", "give variable names only"),
        ("--export TUI_HPO_STORAGE", "never exported"),
        ("--export=PGPASSWORD,FOO", "never exported"),
        ("-p 'gpu", "No closing quotation"),
    ],
)
def test_bad_slurm_args_are_one_line(text: str, words: str) -> None:
    with pytest.raises(UserError) as caught:
        slurm.parse_args(text)
    assert words in caught.value.message
    assert "\n" not in caught.value.message


def test_the_export_list_names_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUI_HPO_STORAGE", f"postgresql://u:{SECRET}@h/db")
    monkeypatch.setenv("OPTUNA_STORAGE", "x")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("TUI_HPO_STORAGE_FILE", "/x")
    monkeypatch.setenv("TUI_HPO_DEMO_SLEEP", "0.1")
    monkeypatch.setenv("MY_SETTING", "1")
    monkeypatch.delenv("LANGUAGE", raising=False)
    names = slurm_workers.export_list(["MY_SETTING", "NOT_SET_HERE"]).split(",")
    assert {"PATH", "TUI_HPO_DEMO_SLEEP", "MY_SETTING"} <= set(names)
    assert not {"TUI_HPO_STORAGE", "OPTUNA_STORAGE", "PGPASSWORD", "TUI_HPO_STORAGE_FILE"} & set(
        names
    )
    assert "LANGUAGE" not in names and "NOT_SET_HERE" not in names
    assert SECRET not in ",".join(names)


def test_the_job_script_names_the_file_not_the_url(tmp_path: Path) -> None:
    recipe, _ = slurm_workers.make_recipe(
        objective="objectives.synthetic:quadratic",
        study="it's a study",
        worker_args=["--heartbeat-interval", "2"],
        slurm_args="-p gpu",
        log_dir=tmp_path / "logs",
    )
    url = f"postgresql+psycopg://me:{SECRET}@db/hpo"
    path = write_storage_file(url, home=tmp_path)
    script = slurm_workers.job_script(recipe, path)
    argv = slurm_workers.sbatch_argv(recipe, 6)
    assert SECRET not in script + " ".join(argv)
    assert f"--storage-file {path}" in script and script.count("exec ") == 1
    assert "'it'\"'\"'s a study'" in script  # quoted for the shell
    assert '${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log"' in script
    assert "--array=0-5" in argv and f"--output={tmp_path / 'logs'}/worker-%A_%a.log" in argv
    assert argv[-2:] == ["gpu", "--gres=gpu:1"]
    assert read_storage_file(path) == url


def test_the_storage_file_is_the_users_alone(tmp_path: Path) -> None:
    (tmp_path / ".tui-hpo").mkdir(mode=0o755)
    path = write_storage_file("sqlite:////x.db", home=tmp_path)
    again = write_storage_file("sqlite:////x.db", home=tmp_path)
    assert path == again and path.parent == tmp_path / ".tui-hpo" / "storage"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".tui-hpo").stat().st_mode) == 0o700
    assert write_storage_file("sqlite:////y.db", home=tmp_path) != path
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_a_missing_or_empty_storage_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="No such file"):
        read_storage_file(tmp_path / "nope.url")
    (tmp_path / "empty.url").write_text("\n")
    with pytest.raises(UserError, match="empty"):
        read_storage_file(tmp_path / "empty.url")


def _row(worker_id: int, job: str | None, state: str = "running") -> registry.WorkerRow:
    return registry.WorkerRow(
        worker_id=worker_id,
        study_id=1,
        host="node1",
        pid=100 + worker_id,
        gpu="0",
        log_path=None,
        supervisor_pid=None,
        sampler=None,
        stop_requested=False,
        state=state,
        trial_number=None,
        trials_done=0,
        exit_code=None,
        started_at=dt.datetime(2026, 1, 1),
        heartbeat_age_s=1.0,
        slurm_job=job,
    )


def test_queued_tasks_show_as_pending_and_starting_rows() -> None:
    queue = [
        slurm.QueuedTask("7", "0", "RUNNING", "node1", ""),
        slurm.QueuedTask("7", "1", "RUNNING", "node2", ""),
        slurm.QueuedTask("7", "2", "PENDING", "", "Resources"),
        slurm.QueuedTask("7", "3", "COMPLETING", "node3", ""),
    ]
    rows = registry.with_slurm_queue(
        [_row(1, "7_0"), _row(2, None), _row(3, "7_3", "exited")], queue, 1
    )
    by_job = {r.slurm_job: r for r in rows}
    assert by_job["7_0"].slurm_state == "RUNNING" and by_job["7_0"].worker_id == 1
    assert by_job["7_1"].state == "starting" and by_job["7_1"].host == "node2"
    assert by_job["7_2"].state == "pending" and by_job["7_2"].slurm_reason == "Resources"
    assert by_job["7_3"].state == "exited"  # a worker that left, its task still ending
    queued = [r for r in rows if r.is_queued]
    assert len(queued) == 2 and len({r.worker_id for r in rows}) == len(rows)
    assert queued[0].to_json()["worker_id"] is None and queued[0].to_json()["pid"] is None
    assert by_job["7_2"].where == "7_2" and by_job["7_0"].where == "node1 7_0"


def test_slurm_task_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    assert registry.slurm_task() is None
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    assert registry.slurm_task() == "41"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert registry.slurm_task() == "40_1"


def test_slurm_commands_missing_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="Slurm's sbatch is not on PATH"):
        slurm.check(2, slurm.parse_args(None))
    with pytest.raises(UserError, match="Slurm's squeue is not on PATH"):
        slurm.queue(["1"])
    assert slurm.queue([]) == []  # a study without Slurm jobs never asks


def test_ensure_adds_the_slurm_column_to_an_older_storage(storage_url: str) -> None:
    """A storage made before ``slurm_job`` existed gets the column, keeps its rows, and takes
    registrations again; ensuring twice changes nothing."""
    engine = sa.create_engine(storage_url, poolclass=sa.pool.NullPool)
    try:
        tables.metadata.create_all(engine, tables=[tables.workers])
        with engine.begin() as con:  # the table as the first release made it
            con.execute(sa.text("ALTER TABLE tui_hpo_workers DROP COLUMN slurm_job"))
            con.execute(
                sa.text(
                    "INSERT INTO tui_hpo_workers (study_id, host, pid, state, trials_done, "
                    "stop_requested) VALUES (1, 'old', 1, 'exited', 3, false)"
                )
            )
        tables.ensure(engine)
        tables.ensure(engine)
        names = {c["name"] for c in sa.inspect(engine).get_columns("tui_hpo_workers")}
        assert "slurm_job" in names
        assert sa.inspect(engine).has_table("tui_hpo_slurm_jobs")
        os.environ["SLURM_JOB_ID"] = "99"
        try:
            registry.register(engine, 1, gpu=None, log_path=None)
        finally:
            del os.environ["SLURM_JOB_ID"]
        with engine.connect() as con:
            rows = registry.list_workers(con, 1)
        assert [(r.host, r.slurm_job) for r in rows][0] == ("old", None)
        assert rows[1].slurm_job == "99"
    finally:
        engine.dispose()


def test_the_workers_pane_shows_queued_tasks() -> None:
    """Pane 5 lists a pending task (no pid, no heartbeat) and a running Slurm worker with its
    task beside the node, without tripping over the queued rows' negative ids."""
    import asyncio

    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from tui_hpo.app.widgets.workers_pane import WorkersPane

    rows = registry.with_slurm_queue(
        [_row(1, "7_0")],
        [
            slurm.QueuedTask("7", "0", "RUNNING", "node1", ""),
            slurm.QueuedTask("7", "1", "PENDING", "", "Resources"),
            slurm.QueuedTask("7", "2", "PENDING", "", "Resources"),
        ],
        1,
    )

    class Shown(App[None]):
        def compose(self) -> ComposeResult:
            yield WorkersPane()

    async def look() -> list[list[str]]:
        app = Shown()
        async with app.run_test(size=(120, 20)) as pilot:
            app.query_one(WorkersPane).update(rows)
            table = app.query_one(DataTable)
            for _ in range(50):
                await pilot.pause(0.05)
                if table.row_count == 3:
                    break
            return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

    shown = asyncio.run(look())
    assert shown[0][0] == "node1 7_0" and shown[0][7] == "running"
    assert shown[1][:3] == ["7_1", "-", "-"] and shown[1][7] == "pending (Resources)"
    assert shown[2][9] == "-"
