"""Workers as Slurm job arrays, for real: arrays submitted to the single-node cluster that
``make test`` brings up (tests/setup-machine.sh: this machine, 4 fake GPUs as GRES, so at most
4 one-GPU tasks run at once and the others wait PENDING), cancelled, scaled and stopped, with
the trial states checked in the storage.

Every command runs with HOME in the test's folder, so the storage file a submission writes
(``~/.tui-hpo/storage``) lands there; the tasks get the same HOME through ``--export``. Each
test cancels the jobs it submitted (those the storage recorded) and waits until they left the
queue, so the next test finds the fake GPUs free.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import Cli, clean_env, load_trials, wait_for, worker_rows
from tui_hpo.machine import slurm

pytestmark = pytest.mark.e2e

OBJECTIVE = "objectives.synthetic:quadratic"
TERMINATED = "terminated by SIGTERM (preempted or cancelled)"
SECRET = "Slurm-s3cret-Pw"


def _sinfo_answers() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster() -> None:
    if not _sinfo_answers():
        pytest.skip("Slurm does not answer (sinfo): make machine starts a one-node cluster")


def _jobs_in(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as con:
            rows = con.execute(sa.text("SELECT job_id FROM tui_hpo_slurm_jobs"))
            return sorted((r[0] for r in rows), key=int)  # oldest first
    except sa.exc.DBAPIError:
        return []
    finally:
        engine.dispose()


@pytest.fixture
def submitted(cluster: None) -> Iterator[Callable[[str], None]]:
    """``submitted(url)``: cancel the Slurm jobs recorded in that storage after the test, and
    wait until they have left the queue."""
    urls: list[str] = []
    yield urls.append
    jobs = [j for url in urls for j in _jobs_in(url)]
    if jobs:
        slurm.cancel(jobs)
        wait_for(lambda: not slurm.queue(jobs), 60, f"jobs {jobs} to leave the queue", every=0.5)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "TUI_HPO_DEMO_SLEEP": "0.05"}


def _workers(cli: Cli, study: str, env: dict[str, str]) -> list[dict[str, Any]]:
    """``workers STUDY --json``; none while the study is not there yet (a launch that is still
    starting on a busy machine)."""
    out = cli("workers", study, "--json", env=env)
    if out.returncode != 0:
        assert "no storage at" in out.stderr or "no study named" in out.stderr, out.stderr
        return []
    return json.loads(out.stdout)["workers"]


def _states(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in rows:
        counts[w["state"]] = counts.get(w["state"], 0) + 1
    return counts


def _launch(cli: Cli, study: str, url: str, env: dict[str, str], *args: str) -> Any:
    return cli(
        "launch",
        OBJECTIVE,
        "--study",
        study,
        "--storage",
        url,
        "--slurm",
        "--heartbeat-interval",
        "1",
        *args,
        env=env,
        timeout=240,
    )


def test_an_array_spends_the_budget_exactly(
    cli: Cli, sqlite_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    """6 tasks on 4 GPUs: the first 4 start at once, each on its own GPU as Slurm set it; the
    launch shows progress until exactly the budget has ended; each task has its log."""
    submitted(sqlite_url)
    logs = tmp_path / "logs"
    t0 = time.monotonic()
    done = _launch(
        cli, "array", sqlite_url, env, "--n-trials", "16", "--workers", "6", "--log-dir", str(logs)
    )
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    job = _jobs_in(sqlite_url)[0]
    assert f"Slurm job {job}: 6 array task(s) queued" in done.stderr
    assert "done: 16 trial(s) ended" in done.stderr, done.stderr
    trials = load_trials(sqlite_url, "array")
    assert len(trials) == 16
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    rows = worker_rows(sqlite_url)
    first = {
        r["slurm_job"]: r["gpu"] for r in rows if r["slurm_job"] in {f"{job}_{i}" for i in range(4)}
    }
    assert sorted(first.values()) == ["0", "1", "2", "3"], rows  # CUDA_VISIBLE_DEVICES by Slurm
    assert {t.user_attrs["tui_hpo.gpu"] for t in trials} <= {"0", "1", "2", "3"}
    for name in first:
        log = logs / f"worker-{name}.log"
        assert log.exists() and "joined study 'array'" in log.read_text()
        assert any(r["log_path"] == str(log) for r in rows)
    assert took < 120


def test_detach_pending_rows_scale_and_stop(
    cli: Cli, sqlite_url: str, env: dict[str, str], submitted: Any
) -> None:
    """A detached launch prints its job id; tasks waiting for a GPU show as pending workers;
    scale submits a new array or cancels (pending first, then asks running workers to
    leave); stop cancels what waits and lets running trials finish."""
    submitted(sqlite_url)
    env = {**env, "TUI_HPO_DEMO_SLEEP": "0.3"}  # 3 s trials
    study = "steered"
    done = _launch(cli, study, sqlite_url, env, "--n-trials", "200", "--workers", "6", "--detach")
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    assert job.isdigit() and f"Slurm job {job}" in done.stderr
    env = {**env, "TUI_HPO_STORAGE": sqlite_url}

    def four_run_two_wait() -> list[dict[str, Any]] | None:
        rows = [w for w in _workers(cli, study, env) if w["state"] != "exited"]
        counts = _states(rows)
        ok = counts.get("pending") == 2 and counts.get("running") == 4
        return rows if ok else None

    rows = wait_for(four_run_two_wait, 90, "4 running workers and 2 pending tasks", every=0.5)
    pending = sorted(w["slurm_job"] for w in rows if w["state"] == "pending")
    assert pending == [f"{job}_4", f"{job}_5"]
    assert all(w["worker_id"] is None and w["slurm_state"] == "PENDING" for w in rows[-2:])
    running = [w for w in rows if w["state"] == "running"]
    assert {w["slurm_job"] for w in running} == {f"{job}_{i}" for i in range(4)}
    assert all(w["slurm_state"] == "RUNNING" and w["host"] for w in running)
    status = json.loads(cli("status", "--study", study, "--json", env=env).stdout)
    assert _states(status["studies"][0]["workers"]).get("pending") == 2
    table = cli("workers", study, env=env).stdout
    assert f"{job}_4" in table and "pending (Resources)" in table

    up = cli("scale", study, "8", env=env)
    assert up.returncode == 0, up.stderr
    second = _jobs_in(sqlite_url)[-1]
    assert up.stdout.strip() == f"{study}: 6 -> 8 Slurm workers (job {second}: 2 task(s) queued)"
    assert sorted(t.name for t in slurm.queue([second])) == [f"{second}_0", f"{second}_1"]

    down = cli("scale", study, "5", env=env)
    assert down.returncode == 0, down.stderr
    assert f"cancelled pending {second}_1, {second}_0, {job}_5" in down.stdout
    waiting = [t.name for t in slurm.queue([job, second]) if t.pending]
    assert waiting == [f"{job}_4"]

    down = cli("scale", study, "3", env=env)
    assert f"cancelled pending {job}_4" in down.stdout, down.stdout
    assert "leave after their current trial" in down.stdout
    rows = worker_rows(sqlite_url)
    leaving = [r for r in rows if r["stop_requested"]]
    newest = max((r for r in rows if r["state"] != "exited"), key=lambda r: r["worker_id"])
    assert [r["worker_id"] for r in leaving] == [newest["worker_id"]]  # the last to register

    up = cli("scale", study, "6", env=env)  # the leaving one still holds its GPU a while
    assert "3 -> 6 Slurm workers" in up.stdout, up.stdout + up.stderr
    third = _jobs_in(sqlite_url)[-1]
    stop = cli("stop", study, env=env)
    assert stop.returncode == 0, stop.stderr
    assert "pending Slurm task(s) cancelled" in stop.stdout
    assert int(stop.stdout.split("; ")[1].split()[0]) >= 2, stop.stdout
    wait_for(lambda: not slurm.queue([job, second, third]), 60, "every task to leave", every=0.5)
    trials = load_trials(sqlite_url, study)
    assert trials and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)  # none cut


def test_ctrl_c_cancels_pending_tasks_and_lets_trials_finish(
    cli: Cli, sqlite_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    """Ctrl-C in a Slurm launch: the array's pending tasks are cancelled at once, the running
    workers finish their trial and leave; no trial is cut."""
    submitted(sqlite_url)
    env = {**clean_env(env), "TUI_HPO_DEMO_SLEEP": "0.3", "TUI_HPO_STORAGE": sqlite_url}
    with open(tmp_path / "launch.err", "w") as err:
        launch = subprocess.Popen(
            [sys.executable, "-m", "tui_hpo", "launch", OBJECTIVE, "--study", "interrupted",
             "--n-trials", "100", "--workers", "6", "--slurm", "--heartbeat-interval", "1"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    try:
        wait_for(
            lambda: _states(_workers(cli, "interrupted", env)).get("running") == 4,
            90,
            "4 running workers",
            every=0.5,
        )
        launch.send_signal(signal.SIGINT)
        assert launch.wait(timeout=60) == 130
    finally:
        if launch.poll() is None:
            launch.kill()
    said = (tmp_path / "launch.err").read_text()
    assert "interrupted: 2 pending Slurm task(s) cancelled" in said, said
    job = _jobs_in(sqlite_url)[0]
    assert not [t for t in slurm.queue([job]) if t.pending]
    wait_for(lambda: not slurm.queue([job]), 60, "the running tasks to leave", every=0.5)
    trials = load_trials(sqlite_url, "interrupted")
    assert trials and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def test_worker_slurm_joins_an_existing_study(
    cli: Cli, sqlite_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    submitted(sqlite_url)
    env = {**env, "TUI_HPO_STORAGE": sqlite_url}
    made = cli("create", OBJECTIVE, "--study", "joined", "--n-trials", "6", env=env)
    assert made.returncode == 0, made.stderr
    logs = tmp_path / "joined-logs"
    out = cli(
        "worker", OBJECTIVE, "--study", "joined", "--slurm", "--workers", "2",
        "--log-dir", str(logs), "--heartbeat-interval", "1", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = out.stdout.strip()
    assert job.isdigit() and "2 worker(s) queued" in out.stderr
    wait_for(lambda: not slurm.queue([job]), 90, "the array to end", every=0.5)
    trials = load_trials(sqlite_url, "joined")
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert {r["slurm_job"] for r in worker_rows(sqlite_url)} == {f"{job}_0", f"{job}_1"}
    assert sorted(p.name for p in logs.iterdir()) == [f"worker-{job}_0.log", f"worker-{job}_1.log"]


def test_bad_slurm_args_leave_no_study(
    cli: Cli, sqlite_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    """Checked by slurmctld (sbatch --test-only) before the study is created: one line, a
    non-zero exit, and nothing in the storage."""
    for args, words in (
        (("--slurm-args", "-p nosuchpartition"), "invalid partition specified: nosuchpartition"),
        (("--slurm-args", "--time=soon"), "Invalid --time specification"),
        (("--slurm-args", "--gres=gpu:9"), "rejected by Slurm"),
        (("--slurm-args", "--array=0-3"), "tui-hpo sets --array itself"),
        (("--hosts", "a:2"), "--slurm and --hosts can't be used together"),
        (("--gpus", "0"), "--gpus doesn't apply with --slurm"),
    ):
        out = _launch(cli, "never", sqlite_url, env, "--workers", "2", *args)
        assert out.returncode != 0, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    assert not (tmp_path / "home" / ".tui-hpo").exists()

    made = cli("create", OBJECTIVE, "--study", "there", "--storage", sqlite_url, env=env)
    assert made.returncode == 0, made.stderr
    for args, words in (
        (("--slurm", "--workers", "2", "--slurm-args", "-p nosuch"), "invalid partition"),
        (("--slurm",), "--slurm needs --workers N"),
        (("--workers", "2"), "--workers needs --slurm"),
        (("--slurm", "--workers", "1", "--study", "nope"), "no study named 'nope'"),
    ):
        out = cli("worker", OBJECTIVE, "--study", "there", "--storage", sqlite_url, *args, env=env)
        lines = out.stderr.strip().splitlines()
        assert out.returncode != 0 and len(lines) == 1 and words in lines[0], (args, out.stderr)
    assert _jobs_in(sqlite_url) == []


def _spool_dirs() -> list[Path]:
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
    ).stdout
    found = []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("StateSaveLocation", "SlurmdSpoolDir"):
            found.append(Path(value.strip()))
    assert len(found) == 2, config
    return found


def _files_text(folders: list[Path]) -> bytes:
    chunks = []
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                try:
                    chunks.append((Path(root) / name).read_bytes())
                except OSError:
                    continue
    return b"\n".join(chunks)


def _cmdlines() -> str:
    text = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return "\n".join(text)


def _slurm_says(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout + done.stderr


def test_the_password_never_enters_slurm(
    cli: Cli, postgres_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    """With the URL (password and all) in TUI_HPO_STORAGE and the password in PGPASSWORD too,
    nothing Slurm keeps or shows holds it: the job as scontrol shows it, its batch script, the
    queue, slurmctld's and slurmd's spool; nor any process's command line. The URL reaches
    the workers through a file only the user can read."""
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    submitted(postgres_url)
    env = {**env, "TUI_HPO_STORAGE": url, "PGPASSWORD": SECRET, "TUI_HPO_DEMO_SLEEP": "0.3"}
    done = cli(
        "launch", OBJECTIVE, "--study", "secret", "--n-trials", "100", "--workers", "2",
        "--slurm", "--detach", "--slurm-args", "-t 10",
        env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    wait_for(
        lambda: sum(w["state"] == "running" for w in _workers(cli, "secret", env)) == 2,
        90,
        "both workers to run trials",
        every=0.5,
    )
    said = [
        done.stdout + done.stderr,
        _slurm_says("scontrol", "show", "job", "-d", job),
        _slurm_says("scontrol", "write", "batch_script", f"{job}_0", "-"),
        _slurm_says("squeue", "-o", "%all"),
        _cmdlines(),
        cli("workers", "secret", "--json", env=env).stdout,
    ]
    script = said[2]
    assert "--storage-file" in script and "exec " in script  # it is the batch script
    spool = _files_text(_spool_dirs())
    # the spool holds the job's script and its environment: searched in the right place
    assert b"--storage-file" in spool and b"TUI_HPO_DEMO_SLEEP=0.3" in spool
    assert SECRET.encode() not in spool
    for text in said:
        assert SECRET not in text
    shown = said[1]
    assert "TUI_HPO_STORAGE" not in shown and "PGPASSWORD" not in shown
    stored = list((tmp_path / "home" / ".tui-hpo" / "storage").iterdir())
    assert len(stored) == 1 and stored[0].read_text().strip() == url
    assert stat.S_IMODE(stored[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(stored[0].parent.stat().st_mode) == 0o700
    stop = cli("stop", "secret", env=env)
    assert stop.returncode == 0 and SECRET not in stop.stdout + stop.stderr


def test_a_cancelled_task_leaves_its_trial_to_run_again(
    cli: Cli, sqlite_url: str, env: dict[str, str], submitted: Any
) -> None:
    """scancel mid-trial (as preemption does): the trial ends FAIL with the reason, its params
    are queued again linked to it, and the budget of finished trials is still met exactly by
    a worker that scale submits."""
    submitted(sqlite_url)
    env = {**env, "TUI_HPO_STORAGE": sqlite_url, "TUI_HPO_DEMO_SLEEP": "0.4"}
    done = _launch(cli, "cut", sqlite_url, env, "--n-trials", "3", "--workers", "1", "--detach")
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()

    def running_with_params() -> Any:
        live = [t for t in load_trials(sqlite_url, "cut") if t.state.name == "RUNNING"]
        return live[0] if live and live[0].params else None

    cut = wait_for(running_with_params, 90, "a running trial with params", every=0.3)
    subprocess.run(["scancel", f"{job}_0"], check=True, timeout=30)
    wait_for(lambda: not slurm.queue([job]), 30, "the task to end", every=0.3)
    again = cli("scale", "cut", "1", env=env)
    assert "0 -> 1 Slurm workers" in again.stdout, again.stdout + again.stderr
    second = _jobs_in(sqlite_url)[-1]
    wait_for(lambda: not slurm.queue([second]), 120, "the new task to end", every=0.5)
    trials = load_trials(sqlite_url, "cut")
    first = next(t for t in trials if t.number == cut.number)
    assert first.state.name == "FAIL"
    assert first.user_attrs["tui_hpo.fail_reason"] == TERMINATED
    rerun = [t for t in trials if t.user_attrs.get("tui_hpo.retry_of") == cut.number]
    assert len(rerun) == 1 and rerun[0].params == cut.params
    assert rerun[0].state.name in ("COMPLETE", "PRUNED")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3
    assert len(trials) == 4


GPU_PRINTER = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
a = p.parse_args()
print(f"gpu {os.environ.get('CUDA_VISIBLE_DEVICES')} loss: {a.x}", flush=True)
"""


def test_a_sweep_file_runs_under_slurm(
    cli: Cli, sqlite_url: str, env: dict[str, str], tmp_path: Path, submitted: Any
) -> None:
    """Command trials as Slurm array tasks: the program runs on the node with the GPU Slurm
    gave its task, and the budget is met exactly."""
    submitted(sqlite_url)
    (tmp_path / "printer.py").write_text(GPU_PRINTER)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: slurm-sweep\nprogram: printer.py\nmethod: random\n"
        "metric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {distribution: uniform, min: 0, max: 1}\nrun_cap: 6\n"
    )
    done = cli(
        "launch",
        "--sweep",
        str(sweep),
        "--storage",
        sqlite_url,
        "--slurm",
        "--workers",
        "2",
        "--log-dir",
        str(tmp_path / "logs"),
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    trials = load_trials(sqlite_url, "slurm-sweep")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    for t in trials:
        assert t.value == t.params["x"]
        text = Path(t.user_attrs["tui_hpo.output"]).read_text()
        assert f"gpu {t.user_attrs['tui_hpo.gpu']} loss:" in text
    assert {t.user_attrs["tui_hpo.gpu"] for t in trials} <= {"0", "1", "2", "3"}
