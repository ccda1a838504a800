"""Workers on other hosts (``runtime.remote``), without a second machine: the host list, the
script the host runs, and what ``start`` does with what ssh says. A stand-in for ssh runs the
script here, as sshd would there (tests/runtime/test_hosts.py goes through a real sshd)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tui_hpo.errors import UserError
from tui_hpo.runtime import remote


def test_hosts_parse() -> None:
    assert remote.parse_hosts(None) == []
    assert remote.parse_hosts("gpu1:4, gpu2,user@gpu3:2") == [
        remote.Host("gpu1", 4),
        remote.Host("gpu2", 1),
        remote.Host("user@gpu3", 2),
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gpu1:x", "'x' is not a number of workers"),
        ("gpu1:0", "workers must be at least 1"),
        ("-oProxyCommand=evil", "is not HOST or HOST:WORKERS"),
        ("gpu 1", "is not HOST or HOST:WORKERS"),
        (":3", "is not HOST or HOST:WORKERS"),
    ],
)
def test_bad_hosts_are_one_line(text: str, says: str) -> None:
    with pytest.raises(UserError, match=says):
        remote.parse_hosts(text)


def test_the_script_reads_the_url_from_stdin_and_keeps_it_out_of_argv() -> None:
    cmd = ["/opt/venv/bin/tui-hpo", "worker", "train.py:objective", "--study", "my study"]
    script = remote.remote_script(cmd, 3, "tui-hpo-logs/my study")
    assert script.startswith("set -e; IFS= read -r TUI_HPO_STORAGE; export TUI_HPO_STORAGE")
    assert "$(seq 0 2)" in script
    assert "'my study'" in script  # quoted for the remote shell
    assert "setsid nohup" in script  # detached: outlives the ssh session


@pytest.fixture
def fake_ssh(tmp_path: Path) -> Path:
    """An 'ssh' that runs the remote command here, in a folder of its own, and records its
    own argv: what `ssh HOST sh -c SCRIPT` would run there."""
    home = tmp_path / "host"
    home.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tui-hpo").write_text('#!/bin/sh\necho "$@" > "$PWD/args.$$"\nsleep 0.2\n')
    ssh = tmp_path / "ssh"
    ssh.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/ssh-argv\ncd {home}\nshift\nexec sh -c "$*"\n'
    )
    for f in (ssh, bindir / "tui-hpo"):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return ssh


def test_start_passes_the_url_on_stdin(fake_ssh: Path, tmp_path: Path) -> None:
    url = "postgresql+psycopg://me:S3CRET@db/hpo"
    said = remote.start(
        remote.Host("gpu1", 2),
        ssh_command=str(fake_ssh),
        storage_url=url,
        worker_cmd=[str(tmp_path / "bin" / "tui-hpo"), "worker", "o:f", "--study", "s"],
        log_dir="logs",
    )
    assert said.count("started pid") == 2
    assert "S3CRET" not in (tmp_path / "ssh-argv").read_text()
    logs = sorted((tmp_path / "host" / "logs").iterdir())
    assert len(logs) == 2


def test_a_failing_host_is_one_line(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    ssh.write_text(
        "#!/bin/sh\necho 'ssh: connect to host gpu9 port 22: No route to host' >&2\nexit 255\n"
    )
    ssh.chmod(0o755)
    with pytest.raises(UserError, match="starting workers on gpu9 failed: ssh: connect to host"):
        remote.start(
            remote.Host("gpu9", 1),
            ssh_command=str(ssh),
            storage_url="sqlite:///x.db",
            worker_cmd=["tui-hpo", "worker"],
            log_dir="logs",
        )


def test_a_missing_ssh_client_is_one_line() -> None:
    with pytest.raises(UserError, match="--hosts needs an ssh client"):
        remote.start(
            remote.Host("gpu1", 1),
            ssh_command="/nonexistent/ssh",
            storage_url="sqlite:///x.db",
            worker_cmd=["tui-hpo", "worker"],
            log_dir="logs",
        )
