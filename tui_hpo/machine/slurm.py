"""The system's Slurm commands (``sbatch``, ``squeue``, ``scancel``), each run with a timeout
and its failure said in one line.

Nothing here knows about studies or storages: ``runtime.slurm`` builds the job script and
decides what to submit or cancel, ``control.registry`` puts the queue beside the worker rows.
The user's ``--slurm-args`` are checked here, and ``check`` asks slurmctld itself
(``sbatch --test-only``) whether the job would be accepted, so a bad partition, time limit or
GRES is one line before anything is created.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass

from tui_hpo.errors import FAILURE, UserError

TIMEOUT_S = 30.0
"""How long a Slurm command may take: slurmctld answers in milliseconds, or is in trouble."""

QUEUE_TIMEOUT_S = 10.0
"""``squeue`` runs while a screen waits for it: a shorter limit."""

DEFAULT_GPUS = "--gres=gpu:1"
"""Each task's GPU unless the user's arguments ask for GPUs some other way."""

_GPU_OPTIONS = ("--gres", "--gpus", "--gpus-per-task", "--gpus-per-node", "--gpus-per-socket")
_SET_BY_US = {
    "-a": "--array",
    "--array": "--array",
    "--wrap": "--wrap",
    "-o": "--output",
    "--output": "--output",
    "-e": "--error",
    "--error": "--error",
    "--test-only": "--test-only",
    "--parsable": "--parsable",
    "-D": "--chdir",
    "--chdir": "--chdir",
}
"""Options tui-hpo sets itself: the array from ``--workers``, the logs under ``--log-dir``."""

SECRET_VARIABLES = frozenset({"TUI_HPO_STORAGE", "OPTUNA_STORAGE", "PGPASSWORD"})
"""Never exported into a job: slurmctld keeps a job's environment in its state files."""


@dataclass(frozen=True)
class SbatchArgs:
    """The user's ``--slurm-args``, checked: what goes on the ``sbatch`` line, and the names of
    the extra variables they asked to export (``--export=A,B``)."""

    args: tuple[str, ...]
    export: tuple[str, ...] = ()


def parse_args(text: str | None) -> SbatchArgs:
    """``--slurm-args`` (one shell-quoted string) as sbatch arguments, with one GPU per task
    (``--gres=gpu:1``) unless they ask for GPUs themselves. An ``--export`` of theirs adds
    variable names to tui-hpo's list; ALL, NONE and the storage variables are refused, as is
    any option tui-hpo sets itself."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise UserError(f"--slurm-args: {exc} in {text!r}") from None
    args: list[str] = []
    export: list[str] = []
    gpus = False
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if not word.startswith("-"):  # the value of the option before it (-p gpu)
            args.append(word)
            i += 1
            continue
        short = name[:2] if not name.startswith("--") else name
        if short in _SET_BY_US or name in _SET_BY_US:
            said = _SET_BY_US.get(name) or _SET_BY_US[short]
            raise UserError(
                f"--slurm-args: tui-hpo sets {said} itself (--workers makes the array, each "
                "task's log goes under --log-dir)"
            )
        if name == "--export":
            if not eq:
                if i + 1 >= len(words):
                    raise UserError("--slurm-args: --export needs variable names")
                i += 1
                value = words[i]
            export += _export_names(value)
            i += 1
            continue
        if name in _GPU_OPTIONS or short == "-G":
            gpus = True
        args.append(word)
        i += 1
    if not gpus:
        args.append(DEFAULT_GPUS)
    return SbatchArgs(tuple(args), tuple(export))


def _export_names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name.upper() in ("ALL", "NONE") or "=" in name:
            raise UserError(
                f"--slurm-args: --export={value} would put values into Slurm's records: "
                "give variable names only (tui-hpo exports a short list of its own)"
            )
        if name in SECRET_VARIABLES:
            raise UserError(
                f"--slurm-args: {name} is never exported (the storage URL reaches the workers "
                "through a file only you can read)"
            )
    return names


def _run(argv: list[str], *, stdin: str | None = None, timeout: float = TIMEOUT_S) -> str:
    """Run a Slurm command; its standard output, or one line saying why it failed."""
    tool = argv[0]
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=_quiet_env()
        )
    except FileNotFoundError:
        raise UserError(f"Slurm's {tool} is not on PATH", FAILURE) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"Slurm's {tool} did not answer in {timeout:g} s", FAILURE) from None
    if done.returncode != 0:
        raise UserError(f"{tool}: {_why(done.stderr + done.stdout, done.returncode)}", FAILURE)
    return done.stdout


def _quiet_env() -> dict[str, str]:
    """This process's environment without the storage URL: sbatch copies what it is given to
    slurmctld only through ``--export``, but a Slurm command has no use for the URL either."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}


def _why(text: str, code: int) -> str:
    """The line of a Slurm command's output that says what went wrong: the one with
    ``error:`` in it, else the first that is not advice."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for line in lines:
        if "error:" in line:
            return line.split("error:", 1)[1].strip()
    for line in lines:
        if not line.startswith("Try "):
            return line.removeprefix("sbatch: ")
    return f"exit code {code}"


def check(tasks: int, args: SbatchArgs) -> str:
    """Ask slurmctld whether an array of ``tasks`` with these arguments would be accepted,
    without submitting it (``sbatch --test-only``): one line when not. Returns what it said
    (when and where the first task would start)."""
    argv = ["sbatch", "--test-only", f"--array=0-{tasks - 1}", *args.args, "--wrap", "true"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=_quiet_env()
        )
    except FileNotFoundError:
        raise UserError("Slurm's sbatch is not on PATH", FAILURE) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"Slurm's sbatch did not answer in {TIMEOUT_S:g} s", FAILURE) from None
    said = (done.stderr + done.stdout).strip()
    if done.returncode != 0:
        raise UserError(f"--slurm-args rejected by Slurm: {_why(said, done.returncode)}")
    return said.splitlines()[0].removeprefix("sbatch: ") if said else "accepted"


def submit(script: str, argv: list[str]) -> str:
    """Submit ``script`` (on standard input: no file of ours to leave behind) with these
    ``sbatch`` arguments; the job id."""
    out = _run(["sbatch", "--parsable", *argv], stdin=script)
    job = out.strip().split(";")[0]
    if not job.isdigit():
        raise UserError(f"sbatch said {out.strip()!r}, not a job id", FAILURE)
    return job


@dataclass(frozen=True)
class QueuedTask:
    """One task of an array as ``squeue`` shows it."""

    job_id: str
    """The array's job id (``%A``)."""
    task: str
    """The task's index in the array (``%a``)."""
    state: str
    """PENDING, RUNNING, COMPLETING, ... (``%T``)."""
    node: str
    """Where it runs (empty while pending)."""
    reason: str
    """Why it waits (``Resources``, ``Priority``, ...); ``None`` when it runs."""

    @property
    def name(self) -> str:
        """``JOB_TASK``: how Slurm names the task, and how worker rows record it."""
        return f"{self.job_id}_{self.task}"

    @property
    def pending(self) -> bool:
        return self.state == "PENDING"


_FORMAT = "%F|%K|%T|%N|%r"


def queue(job_ids: list[str]) -> list[QueuedTask]:
    """The tasks of these jobs still in Slurm's queue, one line per task (pending ones too);
    none for jobs that have ended and left it."""
    if not job_ids:
        return []
    argv = ["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", _FORMAT]
    try:
        out = _run(argv, timeout=QUEUE_TIMEOUT_S)
    except UserError as exc:
        if "Invalid job id" in exc.message:  # every one of them has left the queue
            return []
        raise
    tasks = []
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        job, task, state, node, reason = parts
        if task in ("", "N/A"):  # a plain job, not an array task
            task = "0"
        tasks.append(QueuedTask(job, task, state, node, "" if reason == "None" else reason))
    return sorted(tasks, key=lambda t: (int(t.job_id), _index(t.task)))


def _index(task: str) -> int:
    return int(task) if task.isdigit() else -1


def cancel(names: list[str], *, pending_only: bool = False) -> None:
    """``scancel`` jobs or tasks (``1234`` or ``1234_5``); ``pending_only`` leaves those that
    run alone, for whole jobs only (with a task named, scancel takes it to mean every pending
    task of its array). Tasks that have ended meanwhile are no error."""
    if not names:
        return
    argv = ["scancel", *(["--state=PENDING"] if pending_only else []), *names]
    try:
        _run(argv)
    except UserError as exc:
        if "Invalid job id" in exc.message or "already completing" in exc.message:
            return
        raise


def job_name(study: str) -> str:
    """The job's name: the study's, in characters any shell and ``squeue`` show as they are."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
    return f"tui-hpo-{safe}"[:100]
