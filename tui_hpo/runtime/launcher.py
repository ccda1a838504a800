"""A launch: check everything, create the study, start its workers here and on other hosts
(or submit them to Slurm as one job array), and look after them while they run (``spawn``
starts each one here, ``runtime.slurm`` submits the array).

Everything is checked before the first process starts (``plan``), so a bad input leaves the
storage as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tui_hpo.control import budget, ending, failure_streak, registry
from tui_hpo.control.orders import prepare_run, request_stop
from tui_hpo.control.specs import Spec
from tui_hpo.data import summaries
from tui_hpo.errors import FAILURE, UserError
from tui_hpo.machine import gpus
from tui_hpo.runtime import remote
from tui_hpo.runtime import slurm as slurm_workers
from tui_hpo.runtime.spawn import WorkerProcess, WorkerRecipe, spawn_worker
from tui_hpo.runtime.worker_config import (
    POLL_INTERVAL_S,
    WorkerConfig,
    default_log_dir,
    safe_name,
)
from tui_hpo.storage import attrs
from tui_hpo.storage.engines import Heartbeat, open_storage
from tui_hpo.storage.urls import StorageURL

REMOTE_START_S = 30.0
"""How long remote workers get to show up in the storage before the launcher stops waiting."""

STOP_WAIT_S = 15.0
"""How long stopped workers get to tell their trial's outcome before SIGKILL."""


@dataclass(frozen=True)
class LaunchRequest:
    objective: str
    study: str
    storage: StorageURL
    n_trials: int | None
    workers: int
    gpus: str | None = None
    workers_per_gpu: int | None = None
    sampler: Spec | None = None
    pruner: Spec | None = None
    timeout: float | None = None
    seed: int | None = None
    directions: list[str] | None = None
    metric_names: list[str] | None = None
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    log_dir: Path | None = None
    poll_interval: float | None = None
    trial_timeout: float | None = None
    max_consecutive_failures: int = failure_streak.DEFAULT_LIMIT
    hosts: str | None = None
    ssh_command: str = "ssh"
    remote_command: str = "tui-hpo"
    slurm: bool = False
    """Submit the workers to Slurm as one job array of ``workers`` tasks instead."""
    slurm_args: str | None = None
    slurm_command: str | None = None
    """How a Slurm node runs tui-hpo (default: this Python, ``-m tui_hpo``)."""


@dataclass(frozen=True)
class Plan:
    """A request with every check done: what will be created and started."""

    request: LaunchRequest
    objective: str
    directions: list[str]
    gpu_per_worker: list[int | None]
    log_dir: Path
    hosts: list[remote.Host] = field(default_factory=list)
    metric_names: list[str] | None = None
    slurm: slurm_workers.SlurmRecipe | None = None
    """The array to submit (``--slurm``), its arguments checked by slurmctld already."""


def plan(request: LaunchRequest) -> Plan:
    """Check everything that can be checked without writing to the storage (and without
    Optuna's own storage layer, whose start-up would delay the workers)."""
    from tui_hpo.runtime import objectives
    from tui_hpo.storage.engines import check_reachable

    if request.n_trials is not None and request.n_trials < 1:
        raise UserError("--n-trials must be at least 1")
    hosts = remote.parse_hosts(request.hosts)
    if request.slurm:
        _check_slurm_request(request, hosts)
    elif request.slurm_args is not None:
        raise UserError("--slurm-args needs --slurm")
    if request.workers < (0 if hosts else 1):
        raise UserError("--workers must be at least 1" if not hosts else "--workers can't be < 0")
    if request.timeout is not None and request.timeout <= 0:
        raise UserError("--timeout must be more than 0 seconds")
    if request.max_consecutive_failures < 0:
        raise UserError("--max-consecutive-failures must be 0 (never stop) or more")
    if request.trial_timeout is not None and request.trial_timeout <= 0:
        raise UserError("--trial-timeout must be more than 0 seconds")
    per_worker: list[int | None] = []
    if request.workers and not request.slurm:
        chosen = gpus.parse_gpus(request.gpus, gpus.gpu_count())
        per_worker = gpus.assign_gpus(request.workers, chosen, request.workers_per_gpu)
    spec, func = objectives.load(request.objective)
    check_reachable(request.storage, must_exist=False)
    existing = _existing(request.storage, request.study)
    dirs = objectives.choose_directions(request.directions, func, existing.directions)
    names = objectives.choose_metric_names(request.metric_names, func, existing.metric_names, dirs)
    log_dir = (request.log_dir or default_log_dir(request.study)).absolute()
    recipe = None
    if request.slurm:  # last: every other mistake is said without asking slurmctld
        recipe, _ = slurm_workers.make_recipe(
            objective=spec.text,
            study=request.study,
            worker_args=worker_config(request, spec.text).worker_args()[3:],
            slurm_args=request.slurm_args,
            log_dir=log_dir,
            command=request.slurm_command,
        )
        slurm_workers.check(recipe, request.workers)
    return Plan(request, spec.text, dirs, per_worker, log_dir, hosts, names, recipe)


def _check_slurm_request(request: LaunchRequest, hosts: list[remote.Host]) -> None:
    """What ``--slurm`` can't be combined with: Slurm places the workers and gives them GPUs."""
    if hosts:
        raise UserError("--slurm and --hosts can't be used together: Slurm places the workers")
    for flag, value in (("--gpus", request.gpus), ("--workers-per-gpu", request.workers_per_gpu)):
        if value is not None:
            raise UserError(
                f"{flag} doesn't apply with --slurm: Slurm gives each task its GPUs "
                "(--slurm-args '--gres=gpu:2', say)"
            )
    if request.workers < 1:
        raise UserError("--workers must be at least 1 (array tasks to submit)")


def worker_config(request: LaunchRequest, objective: str) -> WorkerConfig:
    """What each worker started elsewhere (another host, a Slurm task) is asked to do."""
    return WorkerConfig(
        objective=objective,
        study=request.study,
        storage=request.storage,
        heartbeat=request.heartbeat,
        poll_interval=request.poll_interval or POLL_INTERVAL_S,
        trial_timeout=request.trial_timeout,
        max_consecutive_failures=request.max_consecutive_failures,
    )


@dataclass(frozen=True)
class _Existing:
    directions: list[str] | None = None
    metric_names: list[str] | None = None


def _existing(target: StorageURL, study: str) -> _Existing:
    """The directions and metric names of an existing study of that name, read with plain
    SQL (Optuna's storage layer would cost the workers started early their head start)."""
    import sqlalchemy as sa

    from tui_hpo.data.summaries import metric_names
    from tui_hpo.storage import tables
    from tui_hpo.storage.engines import open_engine

    if target.is_sqlite and not target.sqlite_path.exists():  # type: ignore[union-attr]
        return _Existing()
    st, sd = tables.optuna_studies, tables.optuna_study_directions
    engine = open_engine(target, ensure_tables=False)
    try:
        with engine.connect() as con:
            rows = con.execute(
                sa.select(sd.c.direction, st.c.study_id)
                .join(st, st.c.study_id == sd.c.study_id)
                .where(st.c.study_name == study)
                .order_by(sd.c.objective)
            ).all()
            if not rows:
                return _Existing()
            names = metric_names(con, rows[0][1])
    except sa.exc.DBAPIError:
        return _Existing()  # not an Optuna storage yet: the launch creates its tables
    finally:
        engine.dispose()
    return _Existing([str(getattr(d, "name", d)).lower() for d, _ in rows], names)


class Launcher:
    """Creates (or loads) the study, starts the workers, restarts a supervisor that dies."""

    def __init__(self, plan: Plan, *, early_start: bool = False) -> None:
        """``early_start`` starts the local workers before the study is created: they spend
        their first second or two importing Python, Optuna and the objective anyway, and wait
        for this launch's token in the storage before they take a trial."""
        import uuid

        self.plan = plan
        req = plan.request
        self.workers: list[WorkerProcess] = []
        self.started = dt.datetime.now()
        """Trials started since count toward the failure streak (Optuna's clock: local, naive)."""
        self.recipe = WorkerRecipe(
            objective=plan.objective,
            study=req.study,
            storage_url=req.storage.url,
            gpus=sorted({g for g in plan.gpu_per_worker if g is not None}),
            workers_per_gpu=req.workers_per_gpu,
            heartbeat=req.heartbeat,
            log_dir=plan.log_dir,
            poll_interval=req.poll_interval,
            trial_timeout=req.trial_timeout,
            max_consecutive_failures=req.max_consecutive_failures,
            token=uuid.uuid4().hex,
            started_at=self.started.isoformat(),
        )
        self.gave_up: str | None = None
        """Why the search was stopped for failing trials (``failure_streak``), if it was."""
        self._fails_seen = 0
        if early_start:
            self._start_local()
        try:
            self._make_ready()
        except BaseException:
            self._abandon()  # they wait for this launch, which will never be ready
            raise
        self._remote_since: float | None = None
        self.slurm_jobs: list[str] = []
        """The Slurm arrays this launch submitted."""
        self.restarts = 0
        self.max_restarts = 3 * req.workers
        self.crashed: list[str] = []

    def _make_ready(self) -> None:
        """Create or load the study and record this launch's orders, which its waiting
        workers take as the signal to start."""
        import optuna  # after the fork: the workers are on their way meanwhile

        req, plan = self.plan.request, self.plan
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # it would scribble over progress
        self.storage = open_storage(req.storage, heartbeat=req.heartbeat)
        self.engine = self.storage.engine
        self.study = optuna.create_study(
            study_name=req.study,
            storage=self.storage,
            directions=plan.directions,
            load_if_exists=True,
        )
        self.study_id = self.study._study_id
        if plan.metric_names and self.study.metric_names != plan.metric_names:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names(plan.metric_names)
        prepare_run(
            self.engine,
            self.study_id,
            n_trials=req.n_trials,
            timeout=req.timeout,
            seed=req.seed,
            sampler=req.sampler,
            pruner=req.pruner,
            launch_json=self.recipe.to_json(),
        )

    def _abandon(self) -> None:
        """Kill the workers started early and remove their logs: they have written nothing to
        the storage, and the error that got us here is what the user needs to read."""
        for w in self.workers:
            _signal(w.process, signal.SIGKILL)
            w.process.wait()
            w.log_path.unlink(missing_ok=True)
        self.workers.clear()

    def _start_local(self) -> None:
        for gpu in self.plan.gpu_per_worker:
            self.workers.append(spawn_worker(self.recipe, gpu))

    def start(self) -> list[str]:
        """Start the local workers (unless started early), then the remote ones; what each
        host said."""
        if not self.workers:
            self._start_local()
        said = []
        req = self.plan.request
        if self.plan.slurm is not None:
            job = slurm_workers.submit(
                self.engine, self.study_id, req.storage, self.plan.slurm, req.workers
            )
            self.slurm_jobs.append(job)
            said.append(f"Slurm job {job}: {req.workers} array task(s) queued")
        config = worker_config(req, self.plan.objective)
        cmd = [*shlex.split(req.remote_command), "worker", *config.worker_args()]
        for host in self.plan.hosts:
            out = remote.start(
                host,
                ssh_command=req.ssh_command,
                storage_url=req.storage.url,
                worker_cmd=cmd,
                log_dir=f"tui-hpo-logs/{safe_name(req.study)}",
            )
            said.append(f"{host.name}: {out.count('started')} worker(s) started")
        self._remote_since = time.monotonic() if self.plan.hosts else None
        return said

    def busy(self) -> bool:
        """Local workers alive, remote ones working (or still starting up), or trials still
        running elsewhere (a worker that joined from another shell or machine): the launch is
        done when its budget's trials have ended, not when its own processes have."""
        if self.alive():
            return True
        if self._others_running():
            return True
        if self.slurm_jobs:
            return self._slurm_busy()
        if self._remote_since is None:
            return False
        with self.engine.connect() as con:
            live = [
                w
                for w in registry.list_workers(con, self.study_id)
                if not w.is_local and w.state not in ("exited", "lost")
            ]
        if live:
            return True
        return time.monotonic() - self._remote_since < REMOTE_START_S

    def _slurm_busy(self) -> bool:
        """Tasks of the array still in Slurm's queue, unless the search is over: with the
        budget spent and nothing running or queued for a rerun, tasks still pending would only
        start to leave, so they are cancelled and the launch ends."""
        from tui_hpo.machine import slurm

        try:
            queue = slurm.queue(self.slurm_jobs)
        except UserError:
            return True  # slurmctld briefly away: ask again on the next round
        if not queue:
            return False
        if budget.budget_left(self.engine, self.study_id) == 0:
            with self.engine.connect() as con:
                counts = summaries.state_counts(con, self.study_id)
            if not counts["RUNNING"] and not counts["WAITING"]:
                pending = [t.name for t in queue if t.pending]
                if pending:
                    slurm.cancel(self.slurm_jobs, pending_only=True)
                return False
        return True

    def stop_slurm(self) -> list[str]:
        """A Ctrl-C of a Slurm launch: the array's pending tasks are cancelled and its running
        workers (every worker of the study) leave after their current trial; returns the
        tasks cancelled."""
        request_stop(self.engine, self.study_id)
        return slurm_workers.cancel_pending(self.engine, self.study_id)

    # watching ------------------------------------------------------------------------------

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if not w.handled and w.process.poll() is None]

    def check(self) -> None:
        """Deal with supervisors that ended: one that gave up is reported; one that was killed
        has its worker's trial failed now and is started again while the budget lasts."""
        self._check_failures()
        for w in self.workers:
            code = w.process.poll()
            if code is None or w.handled:
                continue
            w.handled = True
            if code in (0, failure_streak.EXIT_CODE):
                continue
            if code == 128 + signal.SIGTERM:
                # terminated from outside (a scheduler, a person): not a crash, and its cut
                # trial is queued again for the others; nothing replaces a worker sent away
                continue
            if code > 0:
                self.crashed.append(f"worker exited with {_describe(code)}: see {w.log_path}")
                continue
            self._fail_trials_of(w, f"worker supervisor pid {w.pid} died ({_describe(code)})")
            if budget.budget_left(self.engine, self.study_id) == 0:
                continue
            if self.restarts >= self.max_restarts:
                self.crashed.append(f"worker died with {_describe(code)}: see {w.log_path}")
                continue
            self.restarts += 1
            self.workers.append(spawn_worker(self.recipe, w.gpu))

    def _check_failures(self) -> None:
        """Stop the study once its last trials all failed: the workers here would stop by
        themselves, but workers elsewhere might not fail (or not yet), and the launch must
        say why it ends."""
        limit = self.plan.request.max_consecutive_failures
        if self.gave_up is not None or not limit:
            return
        with self.engine.connect() as con:
            fails = summaries.state_counts(con, self.study_id)["FAIL"]
        if fails == self._fails_seen:
            return
        self._fails_seen = fails
        streak = failure_streak.failure_streak(
            self.engine, self.study_id, limit, since=self.started
        )
        if streak is not None:
            self.gave_up = streak.message()
            request_stop(self.engine, self.study_id)

    def _fail_trials_of(self, w: WorkerProcess, reason: str, *, requeue: bool = True) -> int:
        """FAIL the RUNNING trials of the supervisor's workers whose process is gone, instead
        of waiting for the heartbeat grace period."""

        retry = self.plan.request.heartbeat.retry_failed if requeue else None
        failed = 0
        with self.engine.connect() as con:
            rows = [
                r
                for r in registry.list_workers(con, self.study_id)
                if r.supervisor_pid == w.pid and r.is_local and r.state != "exited"
            ]
        for row in rows:
            if _pid_alive(row.pid):
                continue  # the supervisor died but its worker runs on; it ends on its own
            failed += ending.fail_running_of_worker(
                self.study, self.engine, row.worker_id, reason, retry=retry
            )
            registry.update(
                self.engine,
                row.worker_id,
                state="exited",
                trial_number=None,
                exit_code=w.process.returncode,
            )
        return failed

    def _others_running(self) -> bool:
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # a dead one's trial ends meanwhile
        with self.engine.connect() as con:
            return summaries.state_counts(con, self.study_id)["RUNNING"] > 0

    def nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking as soon as a local worker ends."""
        deadline = time.monotonic() + seconds
        alive = self.alive()
        while time.monotonic() < deadline:
            if any(w.process.poll() is not None for w in alive):
                return
            time.sleep(0.05)

    def summary(self) -> summaries.StudySummary:
        with self.engine.connect() as con:
            return summaries.summarize(con, self.study_id, self.plan.request.study)

    # stopping ------------------------------------------------------------------------------

    def stop(self) -> int:
        """Stop every worker now: running trials end FAIL with the reason; returns how many
        trials were still RUNNING afterwards and had to be failed here. SIGINT, not SIGTERM:
        a person ended this search, so the cut trials are not queued again."""
        for w in self.alive():
            _signal(w.process, signal.SIGINT)
        deadline = time.monotonic() + STOP_WAIT_S
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        for w in self.alive():
            _signal(w.process, signal.SIGKILL)
            w.process.wait()
        return sum(
            self._fail_trials_of(w, "worker stopped: launch interrupted", requeue=False)
            for w in self.workers
        )

    def target_reached(self) -> int | None:
        """The trial that reached the sweep's metric target and so ended the search, if any."""
        found = self.storage.get_study_user_attrs(self.study_id).get(attrs.TARGET_REACHED)
        return found if isinstance(found, int) else None

    def exit_code(self) -> int:
        s = self.summary()
        if self.crashed or self.gave_up:
            return FAILURE
        budget_left = s.trial_budget is not None and s.n_ended < s.trial_budget
        if budget_left and self.target_reached() is None:
            return FAILURE
        if s.n_ended and not (s.counts["COMPLETE"] or s.counts["PRUNED"]):
            return FAILURE  # every trial failed: the objective is broken, not the search
        return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
