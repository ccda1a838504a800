"""``tui-hpo launch`` and ``tui-hpo worker`` with real worker processes.

Each launch here is ``python -m tui_hpo launch ...`` as a subprocess, exactly as a user types
it; outcomes are read back from the storage with Optuna itself (and once with the ``optuna``
CLI), from the worker logs and from the process table. Trials are made fast with the synthetic
objectives; where a trial must be caught RUNNING, ``objectives.synthetic:slow`` with
``TUI_HPO_DEMO_SLEEP`` makes it last a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import psutil
import pytest
from optuna.trial import FrozenTrial

from tests.support import Background, Cli, alive, load_trials, run_cli, wait_for, worker_rows

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = pytest.mark.e2e

QUADRATIC = "objectives.synthetic:quadratic"
SLOW = "objectives.synthetic:slow"
ENDED = ("COMPLETE", "PRUNED", "FAIL")
OPTUNA_CLI = str(Path(sys.executable).parent / "optuna")
HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "2"]
NO_GPU = {"TUI_HPO_GPU_COUNT": "0"}
"""Launches here are CPU-only unless a test says otherwise, even on a machine with GPUs."""


# helpers --------------------------------------------------------------------------------------


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment run_cli gives a command, for commands started in the background."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TUI_HPO_STORAGE", "OPTUNA_STORAGE", "TUI_HPO_DEMO_SLEEP")
    }
    env.update(NO_GPU)
    env.update(extra or {})
    return env


def launch(
    url: str,
    study: str,
    objective: str,
    *extra: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "launch",
        objective,
        "--study",
        study,
        "--storage",
        url,
        "--log-dir",
        str(log_dir),
        *extra,
        env={**NO_GPU, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def assert_clean_exit(proc: subprocess.CompletedProcess[str], code: int = 0) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr


def load_study_directions(url: str, study: str) -> list[str]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return [d.name for d in optuna.load_study(study_name=study, storage=storage).directions]
    finally:
        storage.engine.dispose()


def states(trials: list[FrozenTrial]) -> Counter[str]:
    return Counter(t.state.name for t in trials)


def n_ended(trials: list[FrozenTrial]) -> int:
    return sum(1 for t in trials if t.state.name in ENDED)


def assert_all_ended(trials: list[FrozenTrial], n: int) -> None:
    c = states(trials)
    assert len(trials) == n, c
    assert c["COMPLETE"] + c["PRUNED"] + c["FAIL"] == n, c
    assert c["RUNNING"] == 0 and c["WAITING"] == 0, c


def pids_of(trials: list[FrozenTrial]) -> set[int]:
    return {t.user_attrs["tui_hpo.pid"] for t in trials}


def log_text(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Callable[..., Background]]:
    """Starts commands in the background; at the end stops what is left of them and of the
    worker processes they started (found by the storage URL in their environment)."""
    started: list[Background] = []
    urls: set[str] = set()

    def start(*args: str, url: str, env: dict[str, str] | None = None) -> Background:
        urls.add(url)
        bg = Background(list(args), cli_env(env), tmp_path, f"bg{len(started)}")
        started.append(bg)
        return bg

    yield start
    for bg in started:
        if bg.process.poll() is None:
            bg.process.send_signal(signal.SIGINT)
            try:
                bg.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                bg.process.kill()
                bg.process.wait()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "tui_hpo" in " ".join(proc.info["cmdline"] or []) and (
                proc.environ().get("TUI_HPO_STORAGE") in urls
            ):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def running_trial_with_pid(
    url: str, study: str, *, with_params: bool = False
) -> tuple[int, int] | None:
    """(number, worker pid) of a RUNNING trial whose provenance is written, if any."""
    for t in load_trials(url, study):
        if with_params and not t.params:
            continue
        if t.state.name == "RUNNING" and "tui_hpo.pid" in t.user_attrs:
            return t.number, t.user_attrs["tui_hpo.pid"]
    return None


# exactly N trials, provenance -----------------------------------------------------------------


def test_exact_budget_provenance_and_second_launch(storage_url: str, workdir: Path) -> None:
    logs = workdir / "logs"
    proc = launch(
        storage_url,
        "S",
        QUADRATIC,
        "--n-trials",
        "40",
        "--workers",
        "4",
        log_dir=logs,
        env={"TUI_HPO_DEMO_SLEEP": "0.04"},
    )
    assert_clean_exit(proc)
    assert "done: 40 trial(s) ended" in " ".join(proc.stderr.split())
    trials = load_trials(storage_url, "S")
    assert_all_ended(trials, 40)
    assert [t.number for t in trials] == list(range(40))
    assert states(trials)["FAIL"] == 0  # quadratic never fails

    # the optuna CLI reads the same trials
    out = subprocess.run(
        [OPTUNA_CLI, "trials", "--study-name", "S", "--storage", storage_url, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["number"]: r["state"] for r in rows} == {t.number: t.state.name for t in trials}
    assert all(r["user_attrs"]["tui_hpo.gpu"] == "none" for r in rows)

    # provenance on every trial
    host = socket.gethostname()
    for t in trials:
        ua = t.user_attrs
        assert ua["tui_hpo.host"] == host
        assert isinstance(ua["tui_hpo.pid"], int)
        assert isinstance(ua["tui_hpo.worker"], int)
        assert ua["tui_hpo.gpu"] == "none"
        assert ua["tui_hpo.sampler"] == {"name": "tpe", "kwargs": {}}
        assert ua["tui_hpo.pruner"] == {"name": "median", "kwargs": {}}
        assert "tui_hpo.fail_reason" not in ua
    pids = pids_of(trials)
    assert len(pids) == 4
    assert len({t.user_attrs["tui_hpo.worker"] for t in trials}) == 4
    assert not any(alive(pid) for pid in pids)
    assert len(list(logs.glob("*.log"))) == 4

    # a second launch adds exactly its own --n-trials, with the sampler and pruner it names
    proc = launch(
        storage_url,
        "S",
        QUADRATIC,
        "--n-trials",
        "10",
        "--workers",
        "1",
        "--sampler",
        "random",
        "--pruner",
        "none",
        log_dir=logs,
    )
    assert_clean_exit(proc)
    trials = load_trials(storage_url, "S")
    assert_all_ended(trials, 50)
    old, new = trials[:40], trials[40:]
    assert all(t.user_attrs["tui_hpo.sampler"]["name"] == "tpe" for t in old)
    for t in new:
        assert t.user_attrs["tui_hpo.sampler"] == {"name": "random", "kwargs": {}}
        assert t.user_attrs["tui_hpo.pruner"] == {"name": "none", "kwargs": {}}
        assert t.state.name == "COMPLETE"  # nothing prunes under pruner none
    assert pids_of(new).isdisjoint(pids_of(old))


def test_multi_objective(cli: Cli, storage_url: str, workdir: Path) -> None:
    proc = launch(
        storage_url,
        "MO",
        "objectives.synthetic:zdt1",
        "--n-trials",
        "10",
        "--workers",
        "2",
        log_dir=workdir / "logs",
    )
    assert_clean_exit(proc)
    assert load_study_directions(storage_url, "MO") == ["MINIMIZE", "MINIMIZE"]
    trials = load_trials(storage_url, "MO")
    assert_all_ended(trials, 10)
    assert states(trials)["COMPLETE"] == 10
    assert all(len(t.values) == 2 for t in trials)

    status = cli("status", "--json", "--study", "MO", "--storage", storage_url)
    assert status.returncode == 0, status.stderr
    (study,) = json.loads(status.stdout)["studies"]
    assert study["directions"] == ["minimize", "minimize"]
    assert study["best"] is None
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        front = optuna.load_study(study_name="MO", storage=storage).best_trials
    finally:
        storage.engine.dispose()
    assert study["pareto_front_size"] == len(front) > 0


def test_seed_makes_runs_repeatable(workdir: Path) -> None:
    """Same --seed (one worker, so one sampler seed), same params; a random sampler and no
    pruner recorded as asked."""
    args = ["--n-trials", "4", "--workers", "1", "--sampler", "random", "--pruner", "none"]
    procs = {}
    for name, seed in (("a", "7"), ("b", "7")):
        url = f"sqlite:///{workdir / (name + '.db')}"
        procs[name] = (
            url,
            Background(
                [
                    "launch",
                    QUADRATIC,
                    "--study",
                    "S",
                    "--storage",
                    url,
                    "--seed",
                    seed,
                    *args,
                    "--log-dir",
                    str(workdir / f"logs-{name}"),
                ],
                cli_env(),
                workdir,
                name,
            ),
        )
    params = {}
    for name, (url, bg) in procs.items():
        assert bg.wait(120) == 0, bg.stderr()
        trials = load_trials(url, "S")
        assert_all_ended(trials, 4)
        for t in trials:
            assert t.user_attrs["tui_hpo.sampler"] == {"name": "random", "kwargs": {}}
            assert t.user_attrs["tui_hpo.pruner"] == {"name": "none", "kwargs": {}}
        params[name] = [t.params for t in trials]
    assert params["a"] == params["b"]
    assert len({p["x"] for p in params["a"]}) == 4


# failures -------------------------------------------------------------------------------------

FLAKY_GRID = '{"search_space": {"mode": ["ok", "raise", "nan", "wrong_count"]}}'


def test_failing_trials_fail_alone(storage_url: str, workdir: Path) -> None:
    logs = workdir / "logs"
    proc = launch(
        storage_url,
        "F",
        "objectives.synthetic:flaky",
        "--n-trials",
        "4",
        "--workers",
        "1",
        "--sampler",
        "grid",
        "--sampler-kwargs",
        FLAKY_GRID,
        log_dir=logs,
    )
    assert proc.returncode == 0, proc.stderr
    trials = load_trials(storage_url, "F")
    assert_all_ended(trials, 4)  # the worker went on after each failure
    assert states(trials) == Counter({"COMPLETE": 1, "FAIL": 3})
    assert sorted(t.params["mode"] for t in trials) == ["nan", "ok", "raise", "wrong_count"]
    assert len(pids_of(trials)) == 1
    expected = {
        "raise": "RuntimeError: flaky objective failed on purpose",
        "nan": "NaN",
        "wrong_count": "returned 2 value(s) for a study with 1 objective(s)",
    }
    text = log_text(logs)
    for t in trials:
        mode = t.params["mode"]
        if mode == "ok":
            assert t.state.name == "COMPLETE" and t.value == 1.0
            assert "tui_hpo.fail_reason" not in t.user_attrs
            continue
        assert t.state.name == "FAIL"
        reason = t.user_attrs["tui_hpo.fail_reason"]
        assert expected[mode] in reason
        assert t.system_attrs["fail_reason"] == reason
        assert reason in text


def test_grid_sampler_exhausted_grid_does_not_crash_the_worker(
    sqlite_url: str, workdir: Path
) -> None:
    logs = workdir / "logs"
    proc = launch(
        sqlite_url,
        "G",
        "objectives.synthetic:flaky",
        "--n-trials",
        "1",
        "--workers",
        "1",
        "--sampler",
        "grid",
        "--sampler-kwargs",
        '{"search_space": {"mode": ["ok"]}}',
        log_dir=logs,
    )
    assert_clean_exit(proc)
    assert_all_ended(load_trials(sqlite_url, "G"), 1)
    text = log_text(logs)
    assert "Traceback" not in text
    assert [r["exit_code"] for r in worker_rows(sqlite_url)] == [0]


def test_optuna_example_script_as_it_is(sqlite_url: str, workdir: Path) -> None:
    script = workdir / "example.py"
    script.write_text(
        "import os\n"
        "import optuna\n\n\n"
        "def objective(trial):\n"
        '    x = trial.suggest_float("x", -10, 10)\n'
        "    return (x - 2) ** 2\n\n\n"
        'if __name__ == "__main__":\n'
        '    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "MAIN_RAN"), "w")\n'
        "    study = optuna.create_study()\n"
        "    study.optimize(objective, n_trials=100)\n"
    )
    proc = launch(
        sqlite_url,
        "E",
        "example.py:objective",
        "--n-trials",
        "10",
        "--workers",
        "2",
        log_dir=workdir / "logs",
        cwd=workdir,
    )
    assert_clean_exit(proc)
    trials = load_trials(sqlite_url, "E")
    assert_all_ended(trials, 10)
    assert states(trials)["COMPLETE"] == 10
    assert all(t.value == pytest.approx((t.params["x"] - 2) ** 2) for t in trials)
    assert not (workdir / "MAIN_RAN").exists()


# GPUs -----------------------------------------------------------------------------------------


def test_gpu_assignment(sqlite_url: str, workdir: Path) -> None:
    two = {"TUI_HPO_GPU_COUNT": "2", "TUI_HPO_DEMO_SLEEP": "0.08"}
    proc = launch(
        sqlite_url,
        "all",
        QUADRATIC,
        "--gpus",
        "all",
        "--workers",
        "4",
        "--n-trials",
        "12",
        "--pruner",
        "none",
        log_dir=workdir / "logs-all",
        env=two,
    )
    assert_clean_exit(proc)
    trials = load_trials(sqlite_url, "all")
    assert_all_ended(trials, 12)
    assert {t.user_attrs["tui_hpo.gpu"] for t in trials} == {"0", "1"}
    assert sorted(r["gpu"] for r in worker_rows(sqlite_url)) == ["0", "0", "1", "1"]

    bgs = {
        gpu: Background(
            [
                "launch",
                QUADRATIC,
                "--study",
                f"gpu-{gpu}",
                "--storage",
                sqlite_url,
                "--gpus",
                gpu,
                "--workers",
                workers,
                "--n-trials",
                "4",
                "--log-dir",
                str(workdir / f"logs-{gpu}"),
            ],
            cli_env(two),
            workdir,
            f"gpu-{gpu}",
        )
        for gpu, workers in (("1", "2"), ("none", "1"))
    }
    for gpu, bg in bgs.items():
        assert bg.wait(120) == 0, bg.stderr()
        trials = load_trials(sqlite_url, f"gpu-{gpu}")
        assert_all_ended(trials, 4)
        assert {t.user_attrs["tui_hpo.gpu"] for t in trials} == {gpu}


# a worker killed mid-trial --------------------------------------------------------------------


def _kill_running_worker(url: str, study: str) -> tuple[int, int]:
    """Kill the worker of a RUNNING trial once that trial has its params, so a retry can
    be checked to run with the same ones (a trial killed before it suggests has none)."""
    number, pid = wait_for(
        lambda: running_trial_with_pid(url, study, with_params=True),
        60,
        "a RUNNING trial with params",
        every=0.1,
    )
    os.kill(pid, signal.SIGKILL)
    return number, pid


def _trial(url: str, study: str, number: int) -> FrozenTrial:
    return next(t for t in load_trials(url, study) if t.number == number)


def test_worker_killed_mid_trial(storage_url: str, workdir: Path, background: Any) -> None:
    bg = background(
        "launch",
        SLOW,
        "--study",
        "K",
        "--storage",
        storage_url,
        "--n-trials",
        "2",
        "--workers",
        "1",
        *HEARTBEAT,
        "--log-dir",
        str(workdir / "logs"),
        url=storage_url,
        env={"TUI_HPO_DEMO_SLEEP": "0.3"},
    )
    bg.wait_started()
    number, pid = _kill_running_worker(storage_url, "K")
    # FAIL within the grace period and a few seconds, not RUNNING forever
    killed = wait_for(
        lambda: (t := _trial(storage_url, "K", number)).state.name != "RUNNING" and t,
        2 + 5,
        "the killed trial to end",
    )
    assert killed.state.name == "FAIL"
    assert "SIGKILL" in killed.user_attrs["tui_hpo.fail_reason"]
    assert not alive(pid)

    assert bg.wait(120) == 0, bg.stderr()
    assert "Traceback" not in bg.stderr()
    trials = load_trials(storage_url, "K")
    assert_all_ended(trials, 2)
    assert states(trials)["FAIL"] == 1
    (other,) = [t for t in trials if t.number != number]
    assert other.state.name == "COMPLETE"
    assert other.user_attrs["tui_hpo.pid"] != pid  # a replacement worker ran it


def test_worker_killed_mid_trial_retried(sqlite_url: str, workdir: Path, background: Any) -> None:
    bg = background(
        "launch",
        SLOW,
        "--study",
        "R",
        "--storage",
        sqlite_url,
        "--n-trials",
        "2",
        "--workers",
        "1",
        *HEARTBEAT,
        "--retry-failed",
        "1",
        "--log-dir",
        str(workdir / "logs"),
        url=sqlite_url,
        env={"TUI_HPO_DEMO_SLEEP": "0.2"},
    )
    bg.wait_started()
    number, pid = _kill_running_worker(sqlite_url, "R")
    try:
        code = bg.wait(25)  # about 6 s of work
    except subprocess.TimeoutExpired:
        raise AssertionError(f"launch did not end:\n{log_text(workdir / 'logs')}") from None
    assert code == 0, bg.stderr()
    trials = load_trials(sqlite_url, "R")
    assert_all_ended(trials, 3)  # the retry comes on top of --n-trials
    killed = _trial(sqlite_url, "R", number)
    assert killed.state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1
    (retry,) = retries
    assert retry.state.name == "COMPLETE"
    assert retry.params == killed.params
    assert retry.user_attrs["tui_hpo.pid"] != pid
    assert states(trials) == Counter({"COMPLETE": 2, "FAIL": 1})


# Ctrl-C ---------------------------------------------------------------------------------------


def test_ctrl_c_stops_everything(sqlite_url: str, workdir: Path, background: Any) -> None:
    bg = background(
        "launch",
        SLOW,
        "--study",
        "C",
        "--storage",
        sqlite_url,
        "--n-trials",
        "10",
        "--workers",
        "2",
        *HEARTBEAT,
        "--log-dir",
        str(workdir / "logs"),
        url=sqlite_url,
        env={"TUI_HPO_DEMO_SLEEP": "0.3"},
    )
    bg.wait_started()
    wait_for(lambda: running_trial_with_pid(sqlite_url, "C"), 60, "a RUNNING trial", every=0.1)
    rows = worker_rows(sqlite_url)
    pids = {r["pid"] for r in rows} | {r["supervisor_pid"] for r in rows if r["supervisor_pid"]}
    running = [t.number for t in load_trials(sqlite_url, "C") if t.state.name == "RUNNING"]
    assert pids and running

    os.kill(bg.pid, signal.SIGINT)
    assert bg.wait(60) == 130
    err = bg.stderr()
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("interrupted:")]) == 1
    wait_for(lambda: not any(alive(p) for p in pids), 10, "the worker processes to be gone")
    trials = load_trials(sqlite_url, "C")
    assert states(trials)["RUNNING"] == 0
    for number in running:
        t = _trial(sqlite_url, "C", number)
        assert t.state.name == "FAIL"
        assert "stop" in t.user_attrs["tui_hpo.fail_reason"]
    assert all(r["state"] == "exited" for r in worker_rows(sqlite_url))


# more workers ---------------------------------------------------------------------------------


def test_plain_worker_joins(cli: Cli, storage_url: str, workdir: Path, background: Any) -> None:
    sleep = {"TUI_HPO_DEMO_SLEEP": "0.05"}  # 0.5 s a trial: the joining worker gets its share
    bg = background(
        "launch",
        QUADRATIC,
        "--study",
        "J",
        "--storage",
        storage_url,
        "--n-trials",
        "20",
        "--workers",
        "1",
        "--pruner",
        "none",
        "--log-dir",
        str(workdir / "logs"),
        url=storage_url,
        env=sleep,
    )
    bg.wait_started()
    joined = cli(
        "worker",
        QUADRATIC,
        "--study",
        "J",
        env={"TUI_HPO_STORAGE": storage_url, **sleep, **NO_GPU},
        timeout=120,
    )
    assert_clean_exit(joined)
    assert bg.wait(120) == 0, bg.stderr()
    trials = load_trials(storage_url, "J")
    assert_all_ended(trials, 20)
    by_pid = Counter(t.user_attrs["tui_hpo.pid"] for t in trials)
    assert len(by_pid) == 2, by_pid
    assert all(r["state"] == "exited" and r["exit_code"] == 0 for r in worker_rows(storage_url))


# which storage --------------------------------------------------------------------------------


def test_storage_resolution(cli: Cli, workdir: Path) -> None:
    dirs = {name: workdir / name for name in ("tui", "optuna", "default")}
    for d in dirs.values():
        d.mkdir()
    tui_url = f"sqlite:///{dirs['tui'] / 'from-tui-env.db'}"
    optuna_url = f"sqlite:///{dirs['optuna'] / 'from-optuna-env.db'}"
    envs = {
        "tui": {"TUI_HPO_STORAGE": tui_url},
        "optuna": {"OPTUNA_STORAGE": optuna_url},
        "default": {},
    }
    bgs = {
        name: Background(
            ["launch", QUADRATIC, "--study", "S", "--n-trials", "2"],
            cli_env(envs[name]),
            dirs[name],
            "launch",
        )
        for name in dirs
    }
    for bg in bgs.values():
        assert bg.wait(120) == 0, bg.stderr()
    for name, url in (
        ("tui", tui_url),
        ("optuna", optuna_url),
        ("default", f"sqlite:///{dirs['default'] / 'tui-hpo.db'}"),
    ):
        assert_all_ended(load_trials(url, "S"), 2)
        assert (dirs[name] / "tui-hpo.db").exists() == (name == "default")
        assert list((dirs[name] / "tui-hpo-logs" / "S").glob("*.log"))  # the default log dir

    # TUI_HPO_STORAGE beats OPTUNA_STORAGE, and --storage beats both
    both = {"TUI_HPO_STORAGE": tui_url, "OPTUNA_STORAGE": optuna_url}
    status = cli("status", "--json", env=both, cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["storage"] == tui_url
    status = cli("status", "--json", "--storage", optuna_url, env=both, cwd=workdir)
    assert json.loads(status.stdout)["storage"] == optuna_url


# preemption -----------------------------------------------------------------------------------


def test_sigterm_to_a_worker_queues_its_trial_again(
    storage_url: str, workdir: Path, background: Any
) -> None:
    """What Slurm does on preemption or scancel, done by hand to a local worker: SIGTERM to
    its process group. The cut trial ends FAIL with the reason, the same params run again
    under another trial linked by ``tui_hpo.retry_of``, and the budget of 4 is still met."""
    bg = background(
        "launch",
        SLOW,
        "--study",
        "P",
        "--storage",
        storage_url,
        "--n-trials",
        "4",
        "--workers",
        "2",
        *HEARTBEAT,
        "--log-dir",
        str(workdir / "logs"),
        url=storage_url,
        env={"TUI_HPO_DEMO_SLEEP": "0.6"},
    )
    bg.wait_started()
    number, pid = wait_for(
        lambda: running_trial_with_pid(storage_url, "P", with_params=True),
        60,
        "a RUNNING trial with params",
        every=0.05,
    )
    (row,) = [r for r in worker_rows(storage_url) if r["pid"] == pid]
    os.killpg(os.getpgid(row["supervisor_pid"]), signal.SIGTERM)

    assert bg.wait(120) == 0, bg.stderr() + log_text(workdir / "logs")
    assert "Traceback" not in log_text(workdir / "logs")
    trials = load_trials(storage_url, "P")
    assert states(trials) == Counter({"COMPLETE": 4, "FAIL": 1})
    cut = _trial(storage_url, "P", number)
    assert cut.state.name == "FAIL"
    assert cut.user_attrs["tui_hpo.fail_reason"] == "terminated by SIGTERM (preempted or cancelled)"
    (again,) = [t for t in trials if t.user_attrs.get("tui_hpo.retry_of") == number]
    assert again.state.name == "COMPLETE"
    assert again.params == cut.params
    assert again.user_attrs["tui_hpo.pid"] != pid
    assert not alive(pid)
