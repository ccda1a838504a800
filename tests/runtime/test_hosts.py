"""Workers on another machine through OpenSSH, for real: the test starts its own sshd on a
loopback port with a throwaway key; PostgreSQL is the storage (as across machines).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.support import Cli, kill_worker, system_tool

pytestmark = pytest.mark.e2e

SECRET = "Hosts-s3cret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Path]:
    """An sshd on 127.0.0.1:PORT that lets this user in with a throwaway key; yields the path
    of an ssh config file naming it ``hpo-remote``."""
    sshd_bin = system_tool("sshd")
    if not os.path.exists(sshd_bin) or not shutil.which("ssh"):
        pytest.fail("OpenSSH server and client are needed (.ci/run installs openssh-server)")
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        "StrictModes no\n"
    )
    (d / "ssh_config").write_text(
        f"Host hpo-remote\n  HostName 127.0.0.1\n  Port {port}\n"
        f"  User {os.environ.get('USER') or 'root'}\n"
        f"  IdentityFile {d / 'user_key'}\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    server = subprocess.Popen(
        [sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w")
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ssh", "-F", str(d / "ssh_config"), "hpo-remote", "true"], capture_output=True
            )
            if probe.returncode == 0:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"sshd did not let us in: {(d / 'sshd.log').read_text()[-500:]}")
        yield d / "ssh_config"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_launch_on_hosts_through_ssh(
    cli: Cli, sshd: Path, postgres_url: str, tmp_path: Path
) -> None:
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    env = {"TUI_HPO_STORAGE": url, "TUI_HPO_DEMO_SLEEP": "0.3"}
    study = "remote"
    remote_cmd = f"{sys.executable} -m tui_hpo"
    launch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui_hpo",
            "launch",
            "objectives.synthetic:slow",
            "--study",
            study,
            "--n-trials",
            "16",
            "--workers",
            "1",
            "--hosts",
            "hpo-remote:2",
            "--ssh-command",
            f"ssh -F {sshd}",
            "--remote-command",
            remote_cmd,
            "--log-dir",
            str(tmp_path / "logs"),
            "--poll-interval",
            "0.2",
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the remote workers show up in `workers`, and their argv holds no URL or password
        deadline = time.monotonic() + 90
        remote: list[dict] = []
        while time.monotonic() < deadline and len(remote) < 2:
            out = cli("workers", study, "--json", env=env)
            if out.returncode == 0:
                ws = json.loads(out.stdout)["workers"]
                remote = [
                    w
                    for w in ws
                    if w["supervisor_pid"]
                    and "--log-file" in _cmdline(w["supervisor_pid"])
                    and "tui-hpo-logs" in _cmdline(w["supervisor_pid"])
                ]
            time.sleep(0.5)
        if len(remote) < 2:
            launch.kill()
            _, err = launch.communicate(timeout=30)
            pytest.fail(f"the two workers started through ssh never showed up: {err[-1500:]}")
        for w in remote:
            assert w["host"] == socket.gethostname()
            for pid in (w["pid"], w["supervisor_pid"]):
                assert SECRET not in _cmdline(pid) and "postgresql" not in _cmdline(pid)
        # steering reaches them through the storage
        assert cli("pause", study, env=env).returncode == 0
        deadline = time.monotonic() + 30  # running trials (3 s) finish first
        states: dict[int, str] = {}
        while time.monotonic() < deadline:
            states = {
                w["worker_id"]: w["state"]
                for w in json.loads(cli("workers", study, "--json", env=env).stdout)["workers"]
            }
            if all(states[w["worker_id"]] == "paused" for w in remote):
                break
            time.sleep(0.5)
        assert all(states[w["worker_id"]] == "paused" for w in remote), states
        assert cli("resume", study, env=env).returncode == 0
        stdout, stderr = launch.communicate(timeout=240)
    finally:
        if launch.poll() is None:
            launch.kill()
        cli("stop", study, env=env)
        out = cli("workers", study, "--json", "--all", env=env)
        if out.returncode == 0:
            for w in json.loads(out.stdout)["workers"]:
                kill_worker(w["pid"])
                kill_worker(w.get("supervisor_pid"))
    assert launch.returncode == 0, stderr[-2000:]
    assert "hpo-remote: 2 worker(s) started" in stderr
    assert SECRET not in stdout + stderr
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    assert len(trials) == 16 and all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs["tui_hpo.pid"] for t in trials}) >= 3  # local and remote workers


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
