"""Starting workers on other machines through the system's OpenSSH client.

``launch --hosts gpu1:4,gpu2`` runs, on each host, ``tui-hpo worker`` as many times as asked,
detached there (``setsid nohup``): the workers outlive the ssh session and the launcher, and are
steered through the storage like local ones (pause, stop, scale there, prune-trial, fail-trial
through their supervisors). The storage URL goes to the remote shell on ssh's standard input and
into the workers' environment, never onto a command line that ``ps`` would show on either side.
Each remote worker gets a GPU round-robin over the GPUs ``nvidia-smi -L`` lists there.

The objective spec must name the same thing on every host: a module importable there, or a file
at the same path.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from tui_hpo.errors import FAILURE, UserError

SSH_TIMEOUT_S = 60


@dataclass(frozen=True)
class Host:
    name: str
    workers: int


def parse_hosts(text: str | None) -> list[Host]:
    """``HOST[:WORKERS],...`` -> hosts (1 worker when WORKERS is left out)."""
    if not text:
        return []
    hosts = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.rpartition(":")
        if not sep:
            name, count = part, "1"
        if not name or any(c.isspace() for c in name) or name.startswith("-"):
            raise UserError(f"--hosts: {part!r} is not HOST or HOST:WORKERS")
        try:
            workers = int(count)
        except ValueError:
            raise UserError(f"--hosts: {part!r}: {count!r} is not a number of workers") from None
        if workers < 1:
            raise UserError(f"--hosts: {part!r}: workers must be at least 1")
        hosts.append(Host(name, workers))
    return hosts


def remote_script(worker_cmd: list[str], count: int, log_dir: str) -> str:
    """The shell script the remote host runs: read the URL from stdin, start the workers."""
    base = " ".join(shlex.quote(a) for a in worker_cmd)
    logs = shlex.quote(log_dir)
    return (
        "set -e; IFS= read -r TUI_HPO_STORAGE; export TUI_HPO_STORAGE; "
        f"mkdir -p {logs}; n=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0); "
        f"for i in $(seq 0 {count - 1}); do "
        'if [ "$n" -gt 0 ]; then export CUDA_VISIBLE_DEVICES=$((i % n)); '
        'else export CUDA_VISIBLE_DEVICES=""; fi; '
        f"log={logs}/worker-$(hostname)-$$-$i.log; "
        f'setsid nohup {base} --log-file "$log" >"$log" 2>&1 </dev/null & '
        'echo "started pid $!"; done'
    )


def start(
    host: Host,
    *,
    ssh_command: str,
    storage_url: str,
    worker_cmd: list[str],
    log_dir: str,
) -> str:
    """Start the host's workers; returns what the host said. One line and exit 1 on failure."""
    script = remote_script(worker_cmd, host.workers, log_dir)
    argv = [*shlex.split(ssh_command), host.name, "sh", "-c", shlex.quote(script)]
    try:
        done = subprocess.run(
            argv, input=storage_url + "\n", capture_output=True, text=True, timeout=SSH_TIMEOUT_S
        )
    except FileNotFoundError:
        raise UserError(f"--hosts needs an ssh client: {argv[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise UserError(
            f"ssh to {host.name} did not answer in {SSH_TIMEOUT_S} s", FAILURE
        ) from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise UserError(f"starting workers on {host.name} failed: {why}", FAILURE)
    return done.stdout.strip()
