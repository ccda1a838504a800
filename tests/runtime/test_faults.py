"""Faults, with real processes: each test asserts the final trial counts and states in the
storage. docs/faults.md maps each fault to its test here.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.support import Cli, kill_worker, run_cli, system_tool

pytestmark = pytest.mark.e2e

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _counts(url: str, study: str) -> dict[str, int]:
    out = run_cli("status", "--study", study, "--json", env={"TUI_HPO_STORAGE": url})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["studies"][0]["counts"]


def _workers(url: str, study: str) -> list[dict]:
    out = run_cli("workers", study, "--json", "--all", env={"TUI_HPO_STORAGE": url})
    return json.loads(out.stdout)["workers"] if out.returncode == 0 else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


def _wait(cond, timeout: float, what: str, every: float = 0.5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def cleanup(url: str, study: str) -> Iterator[None]:
    try:
        yield
    finally:
        run_cli("stop", study, env={"TUI_HPO_STORAGE": url})
        for w in _workers(url, study):
            for pid in (w["pid"], w.get("supervisor_pid")):
                kill_worker(pid)


def _launch(url: str, study: str, tmp: Path, *args: str, sleep: str = "0.1") -> None:
    out = run_cli(
        "launch",
        *args,
        "--study",
        study,
        "--log-dir",
        str(tmp / "logs"),
        "--detach",
        env={"TUI_HPO_STORAGE": url, "TUI_HPO_DEMO_SLEEP": sleep},
    )
    assert out.returncode == 0, out.stderr


def _ended(counts: dict[str, int]) -> int:
    return counts["COMPLETE"] + counts["PRUNED"] + counts["FAIL"]


# SIGKILL of a worker ------------------------------------------------------------------------


def test_sigkilled_worker_fails_its_trial_and_is_replaced(storage_url: str, tmp_path: Path):
    study = "kill9"
    with cleanup(storage_url, study):
        _launch(
            storage_url,
            study,
            tmp_path,
            "objectives.synthetic:slow",
            "--n-trials",
            "8",
            "--workers",
            "2",
            "--heartbeat-interval",
            "1",
            "--grace-period",
            "3",
            "--retry-failed",
            "1",
            sleep="0.3",
        )
        running: list[dict] = []
        _wait(
            lambda: bool(
                running.extend(w for w in _workers(storage_url, study) if w["state"] == "running")
                or running
            ),
            90,
            "a running trial",
        )
        victim = running[0]
        os.kill(victim["pid"], signal.SIGKILL)
        killed = victim["trial"]
        s = optuna.load_study(study_name=study, storage=storage_url)
        _wait(
            lambda: s.trials[killed].state == optuna.trial.TrialState.FAIL,
            10,
            "the killed trial to be FAIL",
        )
        assert "died" in s.trials[killed].user_attrs.get("tui_hpo.fail_reason", "")
        _wait(lambda: _ended(_counts(storage_url, study)) >= 9, 180, "the budget to be spent")
        _wait(lambda: _counts(storage_url, study)["RUNNING"] == 0, 60, "no RUNNING trial")
        trials = optuna.load_study(study_name=study, storage=storage_url).trials
        retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
        assert len(retried) == 1 and retried[0].state.is_finished()
        counts = _counts(storage_url, study)
        assert _ended(counts) == 9  # 8 + the re-run of the killed one
        assert counts["FAIL"] == 1
        pids = {w["pid"] for w in _workers(storage_url, study)}
        assert len(pids) >= 3  # a replacement started


# a hanging objective ------------------------------------------------------------------------


def test_trial_timeout_fails_a_hanging_trial(sqlite_url: str, tmp_path: Path) -> None:
    study = "hang"
    with cleanup(sqlite_url, study):
        _launch(
            sqlite_url,
            study,
            tmp_path,
            "objectives.synthetic:hang",
            "--n-trials",
            "2",
            "--workers",
            "1",
            "--trial-timeout",
            "3",
        )
        _wait(lambda: _ended(_counts(sqlite_url, study)) == 2, 120, "both trials to end")
    trials = optuna.load_study(study_name=study, storage=sqlite_url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    for t in trials:
        assert "timed out after 3 s" in t.user_attrs["tui_hpo.fail_reason"]
    assert len({w["pid"] for w in _workers(sqlite_url, study)}) == 2  # replaced once


# PostgreSQL down for 10 s ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """A throwaway PostgreSQL server (initdb in a temporary folder, its own port, run as the
    postgres user), so the test can stop it without touching the shared one."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins or not Path(system_tool("runuser")).is_absolute():
            pytest.fail("PostgreSQL server binaries are needed (Debian's postgresql package)")
        self.bin = bins[-1]
        self.root = Path(tempfile.mkdtemp(prefix="tui-hpo-pg-", dir="/tmp"))
        os.chmod(self.root, 0o777)
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres(
            f"{self.bin}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *cmd: str) -> None:
        subprocess.run(
            [system_tool("runuser"), "-u", "postgres", "--", *cmd],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            f"{self.bin}/pg_ctl",
            "-D",
            str(self.data),
            "-o",
            opts,
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def test_postgres_down_for_ten_seconds(own_postgres: OwnPostgres, tmp_path: Path) -> None:
    url, study = own_postgres.url, "outage"
    n = 30
    with cleanup(url, study):
        _launch(
            url,
            study,
            tmp_path,
            "objectives.synthetic:slow",
            "--n-trials",
            str(n),
            "--workers",
            "2",
            "--heartbeat-interval",
            "2",
            "--grace-period",
            "60",
            "--pruner",
            "none",
            sleep="0.1",
        )
        _wait(lambda: _ended(_counts(url, study)) >= 4, 120, "some trials to end")

        from tui_hpo.app.app import TuiHpoApp
        from tui_hpo.storage.urls import parse_url

        async def outage() -> tuple[bool, bool]:
            app = TuiHpoApp(parse_url(url), study)
            async with app.run_test(size=(80, 24)) as pilot:
                for _ in range(100):
                    await pilot.pause(0.1)
                    if app.screen.query("#header") and "outage" in str(
                        app.screen.query_one("#header").render()
                    ):
                        break
                own_postgres.stop()
                down_at = time.monotonic()
                shown = False
                while time.monotonic() - down_at < 10:
                    await pilot.pause(0.25)
                    banner = app.screen.query_one("#banner")
                    shown = shown or (banner.display and "unreachable" in str(banner.render()))
                own_postgres.start()
                gone = False
                for _ in range(200):
                    await pilot.pause(0.25)
                    if not app.screen.query_one("#banner").display:
                        gone = True
                        break
                return shown, gone

        shown, gone = asyncio.run(outage())
        assert shown, "the app showed no banner while PostgreSQL was down"
        assert gone, "the banner stayed after PostgreSQL came back"
        _wait(lambda: _ended(_counts(url, study)) >= n, 240, "the budget to be spent")
        _wait(lambda: _counts(url, study)["RUNNING"] == 0, 60, "no RUNNING trial")
    trials = optuna.load_study(study_name=study, storage=url).trials
    assert len(trials) == n  # none lost, none run twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [
        (t.number, t.state, t.user_attrs.get("tui_hpo.fail_reason"))
        for t in trials
        if t.state != optuna.trial.TrialState.COMPLETE
    ]  # --pruner none: every trial that survived the outage completes
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "storage unreachable" in logs  # the workers noticed, waited, carried on


# SQLite, 16 workers ---------------------------------------------------------------------------


def test_sqlite_sixteen_workers_two_thousand_trials(
    cli: Cli, sqlite_url: str, tmp_path: Path
) -> None:
    study = "many"
    out = cli(
        "launch",
        "objectives.synthetic:quadratic",
        "--study",
        study,
        "--n-trials",
        "2000",
        "--workers",
        "16",
        "--sampler",
        "random",
        "--log-dir",
        str(tmp_path / "logs"),
        env={"TUI_HPO_STORAGE": sqlite_url},
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    counts = _counts(sqlite_url, study)
    assert _ended(counts) == 2000 and counts["RUNNING"] == counts["WAITING"] == 0
    logs = list((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 16
    assert not any("database is locked" in p.read_text() for p in logs)
    assert counts["FAIL"] == 0


# the app killed, and its terminal hung up --------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_workers_outlive_the_app(how: str, sqlite_url: str, tmp_path: Path) -> None:
    if not Path(system_tool("tmux")).is_absolute():
        pytest.fail("tmux is needed (apt-get install tmux)")
    study = f"outlive-{how.lower()}"
    with cleanup(sqlite_url, study):
        _launch(
            sqlite_url,
            study,
            tmp_path,
            "objectives.synthetic:slow",
            "--n-trials",
            "200",
            "--workers",
            "2",
            sleep="0.2",
        )
        _wait(
            lambda: sum(w["state"] == "running" for w in _workers(sqlite_url, study)) == 2,
            90,
            "two running workers",
        )
        before = {w["pid"] for w in _workers(sqlite_url, study) if w["state"] != "exited"}
        session = f"tuihpo-{os.getpid()}-{how}"
        cmd = f"{sys.executable} -m tui_hpo ui --storage {sqlite_url} --study {study}"
        subprocess.run(
            [
                system_tool("tmux"),
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                "80",
                "-y",
                "24",
                f"TERM=xterm-256color {cmd}",
            ],
            check=True,
        )
        try:

            def app_pid() -> int | None:
                out = subprocess.run(
                    ["pgrep", "-f", f"tui_hpo ui --storage {sqlite_url}"],
                    capture_output=True,
                    text=True,
                )
                pids = [int(p) for p in out.stdout.split()]
                return pids[0] if pids else None

            _wait(lambda: app_pid() is not None, 30, "the app to start")
            screen = ""

            def shows_study() -> bool:
                nonlocal screen
                screen = subprocess.run(
                    ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
                ).stdout
                return "running" in screen and study in screen

            _wait(shows_study, 60, "the app to show the study")
            pid = app_pid()
            assert pid is not None
            if how == "SIGKILL":
                os.kill(pid, signal.SIGKILL)
            else:
                subprocess.run(["tmux", "kill-session", "-t", session], check=True)  # SIGHUP
            _wait(lambda: not _alive(pid), 30, "the app to be gone")
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        time.sleep(2)
        assert all(_alive(p) for p in before), "a worker died with the app"
        done_before = _ended(_counts(sqlite_url, study))
        _wait(lambda: _ended(_counts(sqlite_url, study)) > done_before, 60, "trials to go on")

        # a new app re-attaches: it lists the same workers
        from tui_hpo.app.app import TuiHpoApp
        from tui_hpo.storage.urls import parse_url

        async def reattach() -> set[int]:
            app = TuiHpoApp(parse_url(sqlite_url), study)
            async with app.run_test(size=(160, 48)) as pilot:
                for _ in range(120):
                    await pilot.pause(0.25)
                    table = app.screen.query("#workers-table")
                    if table and table.first().row_count >= 2:
                        rows = table.first()
                        return {int(rows.get_row_at(i)[1]) for i in range(rows.row_count)}
            return set()

        assert before <= asyncio.run(reattach())


# two controllers at once -----------------------------------------------------------------------


def test_app_and_cli_steering_at_once(cli: Cli, storage_url: str, tmp_path: Path) -> None:
    study = "two-controllers"
    with cleanup(storage_url, study):
        _launch(
            storage_url,
            study,
            tmp_path,
            "objectives.synthetic:slow",
            "--n-trials",
            "200",
            "--workers",
            "1",
            sleep="0.1",
        )
        _wait(lambda: _counts(storage_url, study)["RUNNING"] >= 1, 90, "a running trial")

        from tui_hpo.app.app import TuiHpoApp
        from tui_hpo.storage.urls import parse_url

        async def both() -> None:
            app = TuiHpoApp(parse_url(storage_url), study)
            async with app.run_test(size=(80, 24)) as pilot:
                for _ in range(100):
                    await pilot.pause(0.1)
                    if getattr(app.screen, "snapshot", None) is not None:
                        break
                cli = subprocess.Popen(
                    [sys.executable, "-m", "tui_hpo", "set-sampler", study, "random"],
                    env={**os.environ, "TUI_HPO_STORAGE": storage_url},
                )
                await pilot.press("p")  # the app pauses while the CLI switches the sampler
                assert await asyncio.to_thread(cli.wait, 60) == 0
                for _ in range(100):
                    await pilot.pause(0.1)
                    snap = app.screen.snapshot  # type: ignore[attr-defined]
                    if snap.orders.paused and snap.orders.sampler.name == "random":
                        break

        asyncio.run(both())
        out = json.loads(
            cli("status", "--study", study, "--json", env={"TUI_HPO_STORAGE": storage_url}).stdout
        )
        s = out["studies"][0]
        assert s["paused"] is True and s["sampler"]["name"] == "random"
