"""A password given with ``--storage`` leaves the command line of every long-running command
at once: ``launch`` (watching its search), ``ui`` (in a real terminal) and a hand-started
``worker`` each replace their own process title with the masked URL, so ``ps`` and
``/proc/PID/cmdline`` never show it while they run."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import Background, clean_env, kill_worker, run_cli, system_tool, wait_for

pytestmark = pytest.mark.e2e

SECRET = "Zq9-t1tle-Pw"


@pytest.fixture
def secret_url(postgres_url: str) -> str:
    return postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _pids_running(words: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if words in _cmdline(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_launch_ui_and_worker_mask_their_command_line(secret_url: str, tmp_path: Path) -> None:
    masked = secret_url.replace(SECRET, "***")
    env = clean_env({"TUI_HPO_DEMO_SLEEP": "0.5", "TUI_HPO_GPU_COUNT": "0"})
    launch = Background(
        [
            "launch",
            "objectives.synthetic:slow",
            "--study",
            "t",
            "--storage",
            secret_url,
            "--n-trials",
            "6",
            "--workers",
            "1",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env=env,
        cwd=tmp_path,
        name="launch",
    )
    worker = tmux = None
    try:
        launch.wait_started()
        worker = Background(
            ["worker", "objectives.synthetic:slow", "--study", "t", "--storage", secret_url],
            env=env,
            cwd=tmp_path,
            name="worker",
        )
        script = tmp_path / "ui.sh"
        script.write_text(
            f"exec {shlex.quote(sys.executable)} -m tui_hpo ui --storage "
            f"{shlex.quote(secret_url)} --study t\n"
        )
        tmux = f"titles{launch.pid}"
        subprocess.run(
            [
                system_tool("tmux"),
                "new-session",
                "-d",
                "-s",
                tmux,
                "-x",
                "120",
                "-y",
                "40",
                f"TERM=xterm-256color sh {script}",
            ],
            check=True,
            env=env,
            cwd=tmp_path,
        )

        def three_masked() -> list[int]:
            pids = [
                *_pids_running(f"launch objectives.synthetic:slow --study t --storage {masked}")
            ]
            pids += _pids_running(f"worker objectives.synthetic:slow --study t --storage {masked}")
            pids += _pids_running(f"ui --storage {masked}")
            return pids if len(pids) == 3 else []

        pids = wait_for(three_masked, 60, "launch, worker and ui to mask their titles")
        time.sleep(1.0)  # and they stay masked while they work
        for pid in (launch.pid, worker.pid, *pids):
            assert SECRET not in _cmdline(pid)
        assert not _pids_running(SECRET)
    finally:
        if tmux:
            subprocess.run([system_tool("tmux"), "kill-session", "-t", tmux], check=False)
        run_cli("stop", "t", "--storage", secret_url)
        for bg in (worker, launch):
            if bg is not None:
                kill_worker(bg.pid)
                bg.process.wait(timeout=30)
