"""Workers as a Slurm job array: one ``tui-hpo worker`` per task, one GPU each.

``launch --slurm`` and ``worker --slurm`` submit an array of N tasks through the system's
``sbatch``; each task ``exec``s ``tui-hpo worker OBJECTIVE --study S --storage-file PATH`` and
uses the GPUs Slurm gave it (``CUDA_VISIBLE_DEVICES``, which the worker records on each trial).

The storage password never enters Slurm. slurmctld keeps every job's script and environment
in its state files and shows them to ``scontrol``, so:

- the URL goes to a file only the user can read (``~/.tui-hpo/storage/<hash>.url``, 0600 in a
  0700 folder, under the home folder a cluster shares with its nodes); the job script names
  the file, never the URL;
- ``sbatch`` gets an explicit ``--export`` list of variable names (``EXPORTED``, the
  ``TUI_HPO_*`` ones that hold no secret, and names the user adds), never the whole
  environment, and runs with the storage variables taken out of its own;
- nothing else of the URL goes into the job's name, comment or arguments.

Each array submitted is kept with the study (``tui_hpo_slurm_jobs``) with how it was made, so
``workers``/``status`` find its queued tasks from any machine, and ``scale``/``stop`` submit
more or cancel the pending ones.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tui_hpo.control import registry
from tui_hpo.errors import UserError
from tui_hpo.machine import slurm
from tui_hpo.storage.urls import STORAGE_FILE_ENV, StorageURL, write_storage_file

EXPORTED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "LD_LIBRARY_PATH",
    "PGPASSFILE",
    "PGSERVICEFILE",
)
"""What a task gets from the submitting shell's environment (when set there): where the
Python and the libraries are, the locale; and ``PGPASSFILE`` (a path), never ``PGPASSWORD``."""

NOT_EXPORTED = slurm.SECRET_VARIABLES | {
    STORAGE_FILE_ENV,  # the job script names the file itself
    "TUI_HPO_LAUNCH_TOKEN",
    "TUI_HPO_SUPERVISOR_PID",
}
"""``TUI_HPO_*`` variables that stay behind: the URL itself, and a launch's own bookkeeping."""


@dataclass(frozen=True)
class SlurmRecipe:
    """How a study's array tasks are made, kept with each job (without the storage URL) so
    that ``scale`` submits more of the same from any machine."""

    objective: str
    study: str
    worker_args: list[str]
    """``tui-hpo worker`` options after the objective and study (heartbeat, retries, ...)."""
    sbatch_args: list[str]
    export: list[str] = field(default_factory=list)
    """Variable names the user added to the export list."""
    command: list[str] = field(default_factory=list)
    """How a node runs tui-hpo: this Python by default (a cluster shares its file system)."""
    log_dir: str = ""
    chdir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SlurmRecipe:
        return cls(
            objective=d["objective"],
            study=d["study"],
            worker_args=list(d["worker_args"]),
            sbatch_args=list(d["sbatch_args"]),
            export=list(d.get("export") or []),
            command=list(d.get("command") or []),
            log_dir=d.get("log_dir") or "",
            chdir=d.get("chdir") or "",
        )


def default_command() -> list[str]:
    """This very Python, which has tui-hpo: a cluster's nodes see the same files."""
    return [sys.executable, "-m", "tui_hpo"]


def make_recipe(
    *,
    objective: str,
    study: str,
    worker_args: list[str],
    slurm_args: str | None,
    log_dir: Path,
    command: str | None = None,
) -> tuple[SlurmRecipe, slurm.SbatchArgs]:
    """The recipe for a study's tasks, its ``--slurm-args`` checked (one line if not)."""
    parsed = slurm.parse_args(slurm_args)
    recipe = SlurmRecipe(
        objective=objective,
        study=study,
        worker_args=list(worker_args),
        sbatch_args=list(parsed.args),
        export=list(parsed.export),
        command=shlex.split(command) if command else default_command(),
        log_dir=str(log_dir.absolute()),
        chdir=os.getcwd(),
    )
    return recipe, parsed


def check(recipe: SlurmRecipe, tasks: int) -> str:
    """Whether slurmctld would take an array of ``tasks`` of this recipe (``sbatch
    --test-only``): one line when not. Run before anything is created or written."""
    if tasks < 1:
        raise UserError("--workers must be at least 1")
    return slurm.check(tasks, slurm.SbatchArgs(tuple(recipe.sbatch_args), tuple(recipe.export)))


def export_list(extra: list[str] | tuple[str, ...] = ()) -> str:
    """``--export``'s value: the names (never values) of the variables a task gets, of those
    set here; ``NONE`` when there are none."""
    names = [n for n in EXPORTED if n in os.environ]
    names += sorted(n for n in os.environ if n.startswith("TUI_HPO_") and n not in NOT_EXPORTED)
    names += [n for n in extra if n in os.environ and n not in NOT_EXPORTED]
    unique = list(dict.fromkeys(n for n in names if n.isidentifier()))
    return ",".join(unique) or "NONE"


def storage_url_for_nodes(target: StorageURL) -> str:
    """The URL as a task must read it: a SQLite path made absolute (a task starts in the
    submit folder too, but a relative path in a file read from elsewhere would mislead)."""
    if target.is_sqlite and target.sqlite_path is not None:
        return f"sqlite:///{target.sqlite_path}"
    return target.url


def job_script(recipe: SlurmRecipe, storage_file: Path) -> str:
    """The batch script: the worker replaces the shell (``exec``), so Slurm's SIGTERM on
    preemption or ``scancel`` reaches the worker's supervisor directly."""
    log = Path(recipe.log_dir) / "worker-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.log"
    words = [
        *recipe.command,
        "worker",
        recipe.objective,
        "--study",
        recipe.study,
        "--storage-file",
        str(storage_file),
    ]
    line = " ".join(shlex.quote(w) for w in words)
    return (
        "#!/bin/bash\n"
        f"# tui-hpo worker of study {shlex.quote(recipe.study)}, one per array task\n"
        f'exec {line} --log-file "{_dq(str(log))}" '
        + " ".join(shlex.quote(w) for w in recipe.worker_args)
        + "\n"
    )


def _dq(text: str) -> str:
    """``text`` inside double quotes with the ``${SLURM_...}`` in it left to the shell."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")


def sbatch_argv(recipe: SlurmRecipe, tasks: int) -> list[str]:
    return [
        f"--array=0-{tasks - 1}",
        f"--job-name={slurm.job_name(recipe.study)}",
        f"--output={Path(recipe.log_dir) / 'worker-%A_%a.log'}",
        f"--chdir={recipe.chdir or os.getcwd()}",
        f"--export={export_list(recipe.export)}",
        *recipe.sbatch_args,
    ]


def submit(
    engine: sa.Engine, study_id: int, target: StorageURL, recipe: SlurmRecipe, tasks: int
) -> str:
    """Submit an array of ``tasks`` workers and keep it with the study; the job id. The URL
    goes to this user's storage file, the job script names only the file."""
    path = write_storage_file(storage_url_for_nodes(target))
    try:
        Path(recipe.log_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"can't make the log folder {recipe.log_dir}: {exc.strerror}") from None
    job = slurm.submit(job_script(recipe, path), sbatch_argv(recipe, tasks))
    registry.record_slurm_job(engine, study_id, job, tasks, recipe.to_dict())
    return job


# the study's Slurm workers ------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmWorkers:
    """A study's workers under Slurm now: tasks waiting in the queue, tasks started whose
    worker has not registered yet, and registered workers that are not leaving."""

    pending: list[slurm.QueuedTask]
    starting: list[slurm.QueuedTask]
    running: list[registry.WorkerRow]

    @property
    def count(self) -> int:
        return len(self.pending) + len(self.starting) + len(self.running)


def has_slurm_jobs(engine: sa.Engine, study_id: int) -> bool:
    with engine.connect() as con:
        return bool(registry.slurm_jobs(con, study_id))


def slurm_workers(engine: sa.Engine, study_id: int) -> SlurmWorkers:
    """The study's Slurm workers, from its worker rows and ``squeue`` (one line if Slurm
    can't be asked)."""
    with engine.connect() as con:
        jobs = registry.slurm_jobs(con, study_id)
        rows = registry.list_workers(con, study_id)
    queue = slurm.queue(jobs)
    named = {r.slurm_job for r in rows if r.slurm_job}
    return SlurmWorkers(
        pending=[t for t in queue if t.pending],
        starting=[
            t for t in queue if t.state in ("CONFIGURING", "RUNNING") and t.name not in named
        ],
        running=[
            r
            for r in rows
            if r.slurm_job and r.state not in ("exited", "lost") and not r.stop_requested
        ],
    )


def cancel_pending(engine: sa.Engine, study_id: int) -> list[str]:
    """Cancel every task of the study's arrays that still waits in the queue (those running
    are left to finish their trial); the tasks cancelled."""
    with engine.connect() as con:
        jobs = registry.slurm_jobs(con, study_id)
    pending = [t.name for t in slurm.queue(jobs) if t.pending]
    if pending:
        slurm.cancel(jobs, pending_only=True)
    return pending


@dataclass(frozen=True)
class Shrunk:
    """What ``shrink`` did, newest first in each list."""

    cancelled_pending: list[str]
    cancelled_starting: list[str]
    asked_to_leave: list[registry.WorkerRow]


def shrink(engine: sa.Engine, now: SlurmWorkers, by: int) -> Shrunk:
    """``by`` fewer Slurm workers: cancel the newest pending tasks first, then tasks whose
    worker is still starting, then ask the newest running workers to leave after their
    trial."""
    pending = sorted(now.pending, key=_newest_first)[:by]
    by -= len(pending)
    starting = sorted(now.starting, key=_newest_first)[:by]
    by -= len(starting)
    leaving = sorted(now.running, key=lambda w: -w.worker_id)[: max(0, by)]
    # by name, without --state=PENDING: scancel would take that to mean every pending task of
    # the array; one that started meanwhile ends as a preempted one does (its trial runs again)
    if pending or starting:
        slurm.cancel([t.name for t in pending + starting])
    if leaving:
        registry.request_worker_stop(engine, [w.worker_id for w in leaving])
    return Shrunk([t.name for t in pending], [t.name for t in starting], leaving)


def _newest_first(task: slurm.QueuedTask) -> tuple[int, int]:
    return (-int(task.job_id), -(int(task.task) if task.task.isdigit() else 0))


def grow(engine: sa.Engine, study_id: int, target: StorageURL, by: int) -> str:
    """``by`` more workers: a new array made like the study's newest one; its job id. Checked
    with ``sbatch --test-only`` first."""
    with engine.connect() as con:
        recorded = registry.slurm_recipe(con, study_id)
    if recorded is None:
        raise UserError("the study has no Slurm job to submit more of")
    recipe = SlurmRecipe.from_dict(recorded)
    check(recipe, by)
    return submit(engine, study_id, target, recipe, by)
