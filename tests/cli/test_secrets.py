"""A storage URL's password never shows: not in any command's output, a worker's log, an error
message, the app's screen, nor any process's command line.

PostgreSQL here trusts local connections, so a URL with a password connects all the same; the
password is a marker to search for everywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.support import PG_SERVER, Cli, kill_worker, run_cli

pytestmark = pytest.mark.e2e

SECRET = "Zq9-s3cret-Pw"


@pytest.fixture
def secret_url(postgres_url: str) -> str:
    return postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)


def _all_cmdlines() -> str:
    text = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return "\n".join(text)


def _kill_workers(url: str, study: str) -> None:
    out = run_cli("workers", study, "--json", "--all", env={"TUI_HPO_STORAGE": url})
    if out.returncode != 0:
        return
    for w in json.loads(out.stdout)["workers"]:
        for pid in (w["pid"], w.get("supervisor_pid")):
            kill_worker(pid)


def test_password_shows_nowhere(cli: Cli, secret_url: str, tmp_path: Path) -> None:
    env = {"TUI_HPO_STORAGE": secret_url, "TUI_HPO_DEMO_SLEEP": "0.2"}
    logs = tmp_path / "logs"
    seen: list[str] = []
    study = "secret-study"

    def say(*args: str, with_flag: bool = False) -> None:
        full = [*args, "--storage", secret_url] if with_flag else list(args)
        done = cli(*full, env=env, cwd=tmp_path)
        seen.append(done.stdout + done.stderr)

    try:
        say(
            "launch",
            "objectives.synthetic:slow",
            "--study",
            study,
            "--n-trials",
            "40",
            "--workers",
            "2",
            "--log-dir",
            str(logs),
            "--detach",
            "--heartbeat-interval",
            "1",
        )
        deadline = time.monotonic() + 60
        running = ""
        while time.monotonic() < deadline:
            out = cli("status", "--study", study, "--json", env=env)
            if out.returncode == 0 and json.loads(out.stdout)["studies"][0]["counts"]["RUNNING"]:
                running = out.stdout
                break
            time.sleep(0.5)
        assert running, "no trial started"
        seen.append(_all_cmdlines())  # workers and supervisors are alive now
        say("status")
        say("status", "--study", study, "--json")
        say("workers", study)
        say("workers", study, "--json", "--all")
        say("pause", study, with_flag=True)
        say("resume", study)
        say("set-sampler", study, "random")
        say("set-pruner", study, "none")
        say("enqueue", study, "--params", '{"x": 1.0, "y": 2.0, "lr": 0.01}')
        say("prune-trial", study, "99999")  # an error that names the storage
        say("fail-trial", study, "99999")
        say("pause", "no-such-study", with_flag=True)
        say("status", "--study", "no-such-study")
        say("launch", "objectives.synthetic:nope", "--study", "x", with_flag=True)
        say("create", "objectives.synthetic:quadratic", "--study", "created")
        say("scale", study, "3")
        seen.append(_all_cmdlines())
        # unreachable and malformed URLs with passwords
        port_down = PG_SERVER.replace("postgres@", f"postgres:{SECRET}@").rsplit(":", 1)[0]
        seen.append(cli("status", "--storage", f"{port_down}:1/x").stderr)
        seen.append(cli("status", "--storage", f"po stgres://u:{SECRET}@h/db").stderr)
        seen.append(cli("status", "--storage", f"mysql+nodriver://u:{SECRET}@h/db").stderr)

        # the app, on the same storage
        from tui_hpo.app.app import TuiHpoApp
        from tui_hpo.storage.urls import parse_url

        async def look() -> str:
            app = TuiHpoApp(parse_url(secret_url), study)
            screens = []
            async with app.run_test(size=(160, 48)) as pilot:
                for key in ("", "5", "6", "2", "escape"):
                    if key:
                        await pilot.press(key)
                    await pilot.pause(1.5)
                    screens.append(app.export_screenshot())
            return "\n".join(screens)

        app_text = asyncio.run(look())
        assert study in app_text
        seen.append(app_text)
        say("stop", study)
    finally:
        _kill_workers(secret_url, study)
    for log in logs.glob("*.log"):
        seen.append(log.read_text(errors="replace"))
    assert len(list(logs.glob("*.log"))) >= 2
    everything = "\n".join(seen)
    assert "***" in everything  # masked URLs were shown
    assert SECRET not in everything
