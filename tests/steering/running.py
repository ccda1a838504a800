"""A study with real worker processes, steered from the CLI the way a user steers it: the
helper of the steering tests (and of tests/runtime/test_attach.py), with its cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TypeVar

import optuna
import psutil
import sqlalchemy as sa
from optuna.trial import FrozenTrial

from tests.support import alive, clean_env, run_cli

optuna.logging.set_verbosity(optuna.logging.WARNING)


SLOW = "objectives.synthetic:slow"
QUADRATIC = "objectives.synthetic:quadratic"
HANG = "objectives.synthetic:hang"
FAST_STEERING = ["--heartbeat-interval", "1", "--grace-period", "2", "--poll-interval", "0.2"]
NO_GPU = {"TUI_HPO_GPU_COUNT": "0"}
WORKER_FIELDS = ("host", "pid", "gpu", "state", "trial", "sampler", "heartbeat_age_s")

T = TypeVar("T")


# helpers --------------------------------------------------------------------------------------


def proc_state(pid: int) -> str:
    """The one-letter state in /proc/PID/stat (R, S, T, Z, ...)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def started_at(t: FrozenTrial) -> float:
    assert t.datetime_start is not None
    return t.datetime_start.timestamp()  # naive local time -> epoch seconds


def completed_at(t: FrozenTrial) -> float:
    assert t.datetime_complete is not None
    return t.datetime_complete.timestamp()


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], contains: str | None = None, code: int = 2
) -> str:
    """Exit ``code``, no traceback, exactly one ``error:`` line on stderr."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    if contains is not None:
        assert contains in lines[0], lines[0]
    return lines[0]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command started with Popen: run_cli's, with no GPU."""
    return clean_env({**NO_GPU, **(extra or {})})


def _url_token(url: str) -> str:
    """A piece of the URL unique to this test's storage (the SQLite path, the database name)."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return url.rsplit("/", 1)[1]


class RunningStudy:
    """One study on one storage, its workers, and the commands that steer it."""

    def __init__(self, url: str, name: str, tmp_path: Path) -> None:
        self.url = url
        self.name = name
        self.tmp_path = tmp_path
        self.log_dir = tmp_path / "logs"
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._storage: optuna.storages.RDBStorage | None = None
        self.popens: list[subprocess.Popen[Any]] = []

    # commands ---------------------------------------------------------------------------------

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``tui-hpo ARGS --storage URL`` (ARGS name the study where the command takes one)."""
        return run_cli(*args, "--storage", self.url, env={**NO_GPU, **(env or {})}, timeout=timeout)

    def steer(self, command: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli(command, self.name, *args, **kw)

    def ok(self, command: str, *args: str, **kw: Any) -> float:
        """Run a steering command that must succeed; returns the time it returned."""
        proc = self.steer(command, *args, **kw)
        done = time.time()
        assert_ok(proc)
        return done

    def launch(
        self,
        objective: str,
        *extra: str,
        workers: int = 1,
        n_trials: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        args = [
            "launch",
            objective,
            "--study",
            self.name,
            "--log-dir",
            str(self.log_dir),
            "--workers",
            str(workers),
            *FAST_STEERING,
            "--detach",
            *extra,
        ]
        if n_trials is not None:
            args += ["--n-trials", str(n_trials)]
        assert_ok(self.cli(*args, env=env, timeout=180))

    def workers_json(self, *, all_: bool = False) -> list[dict[str, Any]]:
        proc = self.cli("workers", self.name, "--json", *(["--all"] if all_ else []))
        assert_ok(proc)
        data = json.loads(proc.stdout)
        assert data["version"] == 1
        return data["workers"]

    def status_json(self) -> dict[str, Any]:
        proc = self.cli("status", "--study", self.name, "--json")
        assert_ok(proc)
        (study,) = json.loads(proc.stdout)["studies"]
        return study

    # reads ------------------------------------------------------------------------------------

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        if self._storage is None:
            self._storage = optuna.storages.RDBStorage(self.url)
        return self._storage

    def trials(self) -> list[FrozenTrial]:
        study = optuna.load_study(study_name=self.name, storage=self.storage)
        return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)

    def trial(self, number: int) -> FrozenTrial:
        (t,) = [t for t in self.trials() if t.number == number]
        return t

    def sql(self, text: str, **params: Any) -> list[Any]:
        with self.engine.connect() as con:
            return list(con.execute(sa.text(text), params))

    def trial_state(self, number: int) -> str:
        (row,) = self.sql(
            "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = :name AND t.number = :n",
            name=self.name,
            n=number,
        )
        return str(row[0])

    def worker_rows(self) -> list[dict[str, Any]]:
        try:
            rows = self.sql("SELECT * FROM tui_hpo_workers ORDER BY worker_id")
        except sa.exc.DBAPIError:
            return []
        return [dict(r._mapping) for r in rows]

    def live_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.worker_rows() if r["state"] != "exited"]

    def running_with_pid(self, max_steps: int | None = None) -> list[FrozenTrial]:
        """RUNNING trials whose provenance is written (at most ``max_steps`` reports so far)."""
        return [
            t
            for t in self.trials()
            if t.state.name == "RUNNING"
            and "tui_hpo.pid" in t.user_attrs
            and (max_steps is None or len(t.intermediate_values) <= max_steps)
        ]

    def count_ended(self) -> int:
        return sum(1 for t in self.trials() if t.state.is_finished())

    # cleanup ----------------------------------------------------------------------------------

    def _our_processes(self) -> set[int]:
        """Worker and supervisor pids of this study: from its rows and, for any process not
        (yet) registered, from the storage URL in its environment."""
        pids = set()
        for row in self.worker_rows():
            pids.update(p for p in (row["pid"], row["supervisor_pid"]) if p)
        token = _url_token(self.url)
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if token in (proc.environ().get("TUI_HPO_STORAGE") or ""):
                    pids.add(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return {p for p in pids if p != os.getpid() and _is_ours(p)}

    def cleanup(self) -> None:
        """``stop``, a moment for the workers to leave, then SIGKILL to whatever is left."""
        pids = self._our_processes() | {p.pid for p in self.popens if p.poll() is None}
        if any(_stopped(p) for p in pids):
            # a test failed while workers were frozen: a stopped process may hold the SQLite
            # write lock, on which `stop` would wait
            for pid in pids:
                kill_group(pid)
        if any(alive(p) for p in pids):
            try:
                self.steer("stop", timeout=60)
            except Exception:  # the kill below runs anyway
                pass
            deadline = time.monotonic() + 1
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.1)
        pids |= self._our_processes()
        for pid in pids:
            if alive(pid):
                kill_group(pid)
        for p in self.popens:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._storage is not None:
            self._storage.engine.dispose()
        self.engine.dispose()


def _stopped(pid: int) -> bool:
    try:
        return alive(pid) and proc_state(pid) == "T"
    except OSError:
        return False


def _is_ours(pid: int) -> bool:
    """A tui-hpo process or the plain script of test_plain_optuna, never anything else (a
    PostgreSQL backend's title holds the database name, "tui_hpo_test_...")."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return " -m tui_hpo " in f" {' '.join(cmdline)} " or any(
        arg.endswith("plain_script.py") for arg in cmdline
    )


def kill_group(pid: int) -> None:
    """SIGKILL the process group of ``pid`` (its worker's supervisor and trial process); just
    the process when it shares the test's own group."""
    try:
        group = os.getpgid(pid)
        if group != os.getpgrp() and group > 1:
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
