"""Starting worker processes on this machine and looking after them while they run.

Workers are started in sessions of their own (``start_new_session``): a Ctrl-C in the
launcher's terminal, the launcher's exit or a dropped SSH connection doesn't reach them; only an
explicit stop does. The storage URL travels in the environment (``TUI_HPO_STORAGE``), never on
the command line, so ``ps`` doesn't show a password. Each worker writes its own log file.

Everything is checked before the first process starts (``plan``), so a bad input leaves the
storage as it was.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tui_hpo import budget, control, gpus, reads, registry, remote
from tui_hpo.errors import FAILURE, UserError
from tui_hpo.samplers import Spec
from tui_hpo.storage import Heartbeat, StorageURL, open_storage
from tui_hpo.worker_config import LAUNCH_TOKEN_ENV, POLL_INTERVAL_S, WorkerConfig

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
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    log_dir: Path | None = None
    poll_interval: float | None = None
    trial_timeout: float | None = None
    hosts: str | None = None
    ssh_command: str = "ssh"
    remote_command: str = "tui-hpo"


@dataclass(frozen=True)
class Plan:
    """A request with every check done: what will be created and started."""

    request: LaunchRequest
    objective: str
    directions: list[str]
    gpu_per_worker: list[int | None]
    log_dir: Path
    hosts: list[remote.Host] = field(default_factory=list)


def plan(request: LaunchRequest) -> Plan:
    """Check everything that can be checked without writing to the storage (and without
    Optuna's own storage layer, whose start-up would delay the workers)."""
    from tui_hpo import objective as objective_mod
    from tui_hpo.storage import check_reachable

    if request.n_trials is not None and request.n_trials < 1:
        raise UserError("--n-trials must be at least 1")
    hosts = remote.parse_hosts(request.hosts)
    if request.workers < (0 if hosts else 1):
        raise UserError("--workers must be at least 1" if not hosts else "--workers can't be < 0")
    if request.timeout is not None and request.timeout <= 0:
        raise UserError("--timeout must be more than 0 seconds")
    if request.trial_timeout is not None and request.trial_timeout <= 0:
        raise UserError("--trial-timeout must be more than 0 seconds")
    available = gpus.gpu_count()
    chosen = gpus.parse_gpus(request.gpus, available)
    per_worker = (
        gpus.assign_gpus(request.workers, chosen, request.workers_per_gpu)
        if request.workers
        else []
    )
    spec, func = objective_mod.load(request.objective)
    check_reachable(request.storage, must_exist=False)
    dirs = objective_mod.choose_directions(
        request.directions, func, _existing_directions(request.storage, request.study)
    )
    log_dir = (request.log_dir or Path("tui-hpo-logs") / _safe(request.study)).absolute()
    return Plan(request, spec.text, dirs, per_worker, log_dir, hosts)


def _existing_directions(target: StorageURL, study: str) -> list[str] | None:
    """The directions of an existing study of that name, read with plain SQL."""
    import sqlalchemy as sa

    from tui_hpo import tables
    from tui_hpo.storage import open_engine

    if target.is_sqlite and not target.sqlite_path.exists():  # type: ignore[union-attr]
        return None
    st, sd = tables.optuna_studies, tables.optuna_study_directions
    engine = open_engine(target, ensure_tables=False)
    try:
        with engine.connect() as con:
            rows = con.execute(
                sa.select(sd.c.direction)
                .join(st, st.c.study_id == sd.c.study_id)
                .where(st.c.study_name == study)
                .order_by(sd.c.objective)
            ).all()
    except sa.exc.DBAPIError:
        return None  # not an Optuna storage yet: the launch creates its tables
    finally:
        engine.dispose()
    return [str(getattr(d, "name", d)).lower() for (d,) in rows] or None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


@dataclass(frozen=True)
class WorkerRecipe:
    """How a study's workers are started on this machine; kept with the study so that
    ``scale`` starts more of the same."""

    objective: str
    study: str
    storage_url: str
    gpus: list[int]
    workers_per_gpu: int | None
    heartbeat: Heartbeat
    log_dir: Path
    poll_interval: float | None = None
    trial_timeout: float | None = None
    token: str = ""
    """Names this launch: workers started before the study is ready wait for it (below)."""

    def to_json(self) -> str:
        # the URL stays out: it may hold a password, and whoever scales has it already
        return json.dumps(
            {
                "objective": self.objective,
                "gpus": self.gpus,
                "workers_per_gpu": self.workers_per_gpu,
                "heartbeat_interval": self.heartbeat.interval,
                "grace_period": self.heartbeat.grace_period,
                "retry_failed": self.heartbeat.retry_failed,
                "log_dir": str(self.log_dir),
                "trial_timeout": self.trial_timeout,
                "token": self.token,
                "poll_interval": self.poll_interval,
            }
        )

    @classmethod
    def from_json(cls, text: str, study: str, storage_url: str) -> WorkerRecipe:
        d = json.loads(text)
        return cls(
            objective=d["objective"],
            study=study,
            storage_url=storage_url,
            gpus=list(d["gpus"]),
            workers_per_gpu=d["workers_per_gpu"],
            heartbeat=Heartbeat(d["heartbeat_interval"], d["grace_period"], d["retry_failed"]),
            log_dir=Path(d["log_dir"]),
            trial_timeout=d.get("trial_timeout"),
            token=d.get("token", ""),
            poll_interval=d.get("poll_interval"),
        )

    def worker_config(self, log_path: Path) -> WorkerConfig:
        from tui_hpo.storage import parse_url

        return WorkerConfig(
            objective=self.objective,
            study=self.study,
            storage=parse_url(self.storage_url),
            heartbeat=self.heartbeat,
            log_path=str(log_path),
            poll_interval=self.poll_interval or POLL_INTERVAL_S,
            trial_timeout=self.trial_timeout,
        )


class ForkedProcess:
    """A child made with ``os.fork``, with the part of ``Popen``'s interface used here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode


@dataclass
class WorkerProcess:
    """A supervisor process started here and the GPU it was given."""

    gpu: int | None
    log_path: Path
    process: subprocess.Popen[bytes] | ForkedProcess
    handled: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


def spawn_worker(recipe: WorkerRecipe, gpu: int | None) -> WorkerProcess:
    """Start one worker (a supervisor and the process it runs) in a session of its own.

    A single-threaded caller (``launch``, ``scale`` from a shell) forks the supervisor: it
    then costs no Python start-up and no imports, which is most of a short search's start-up
    on a small machine (the supervisor only watches; the trial process it starts is a fresh
    interpreter, so CUDA state and the like never cross the fork). A caller with threads (the
    app) must not fork, and starts ``tui-hpo worker`` instead.
    """
    import threading

    stamp = time.strftime("%Y%m%d-%H%M%S")
    recipe.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = recipe.log_dir / f"worker-gpu{'cpu' if gpu is None else gpu}-{stamp}-{os.getpid()}"
    log_path = _new_file(log_path)
    env = {"TUI_HPO_STORAGE": recipe.storage_url, "PYTHONUNBUFFERED": "1", **gpus.worker_env(gpu)}
    if recipe.token:
        env[LAUNCH_TOKEN_ENV] = recipe.token
    config = recipe.worker_config(log_path)
    if threading.active_count() == 1:
        return WorkerProcess(gpu, log_path, _fork_supervisor(config, env))
    cmd = [sys.executable, "-m", "tui_hpo", "worker", recipe.objective,
           "--study", recipe.study, "--heartbeat-interval", str(recipe.heartbeat.interval),
           "--log-file", str(log_path)]  # fmt: skip
    hb = recipe.heartbeat
    if hb.grace_period is not None:
        cmd += ["--grace-period", str(hb.grace_period)]
    if hb.retry_failed:
        cmd += ["--retry-failed", str(hb.retry_failed)]
    if recipe.poll_interval is not None:
        cmd += ["--poll-interval", str(recipe.poll_interval)]
    if recipe.trial_timeout is not None:
        cmd += ["--trial-timeout", str(recipe.trial_timeout)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **env),
            start_new_session=True,
        )
    return WorkerProcess(gpu, log_path, process)


def _new_file(stem: Path) -> Path:
    """``stem-N.log`` for the first N not taken, created here (a forked supervisor opens its
    log only later, so the name must be taken before the next worker picks one)."""
    n = 0
    while True:
        path = Path(f"{stem}-{n}.log")
        try:
            path.touch(exist_ok=False)
        except FileExistsError:
            n += 1
            continue
        return path


def _fork_supervisor(config: WorkerConfig, env: dict[str, str]) -> ForkedProcess:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else what is buffered here would be written twice
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:  # the child: never return into the launcher's code
        code = _run_forked_supervisor(config, env)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run_forked_supervisor(config: WorkerConfig, env: dict[str, str]) -> int:
    """What ``tui-hpo worker`` does, in a forked copy of this process: its own session (a
    Ctrl-C or a hang-up of the launcher's terminal doesn't reach it), output to its log, and
    a name in ``ps`` that says what it is (instead of the launcher's command line)."""
    import logging

    import setproctitle

    from tui_hpo import supervisor

    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(str(config.log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    os.environ.update(env)
    setproctitle.setproctitle(f"tui-hpo worker {config.objective} --study {config.study}")
    logging.getLogger().handlers.clear()
    try:
        return supervisor.run(config)
    except UserError as exc:
        print("error: " + " ".join(exc.message.splitlines()), file=sys.stderr)
        return exc.exit_code


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
            token=uuid.uuid4().hex,
        )
        if early_start:
            self._start_local()
        try:
            self._make_ready()
        except BaseException:
            self._abandon()  # they wait for this launch, which will never be ready
            raise
        self._remote_since: float | None = None
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
        control.prepare_run(
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
        hb = req.heartbeat
        cmd = [*shlex.split(req.remote_command), "worker", self.plan.objective,
               "--study", req.study, "--heartbeat-interval", str(hb.interval)]  # fmt: skip
        if hb.grace_period is not None:
            cmd += ["--grace-period", str(hb.grace_period)]
        if hb.retry_failed:
            cmd += ["--retry-failed", str(hb.retry_failed)]
        for host in self.plan.hosts:
            out = remote.start(
                host,
                ssh_command=req.ssh_command,
                storage_url=req.storage.url,
                worker_cmd=cmd,
                log_dir=f"tui-hpo-logs/{_safe(req.study)}",
                trial_timeout=req.trial_timeout,
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
        if self._remote_since is None:
            return False
        with self.engine.connect() as con:
            live = [w for w in registry.list_workers(con, self.study_id)
                    if not w.is_local and w.state not in ("exited", "lost")]  # fmt: skip
        if live:
            return True
        return time.monotonic() - self._remote_since < REMOTE_START_S

    # watching ------------------------------------------------------------------------------

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if not w.handled and w.process.poll() is None]

    def check(self) -> None:
        """Deal with supervisors that ended: one that gave up is reported; one that was killed
        has its worker's trial failed now and is started again while the budget lasts."""
        for w in self.workers:
            code = w.process.poll()
            if code is None or w.handled:
                continue
            w.handled = True
            if code == 0:
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

    def _fail_trials_of(self, w: WorkerProcess, reason: str, *, requeue: bool = True) -> int:
        """FAIL the RUNNING trials of the supervisor's workers whose process is gone, instead
        of waiting for the heartbeat grace period."""
        from tui_hpo import trials

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
            failed += trials.fail_running_of_worker(
                self.study, self.engine, row.worker_id, reason, retry=retry
            )
            registry.update(self.engine, row.worker_id, state="exited", trial_number=None,
                            exit_code=w.process.returncode)  # fmt: skip
        return failed

    def _others_running(self) -> bool:
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # a dead one's trial ends meanwhile
        with self.engine.connect() as con:
            return reads.state_counts(con, self.study_id)["RUNNING"] > 0

    def nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking as soon as a local worker ends."""
        deadline = time.monotonic() + seconds
        alive = self.alive()
        while time.monotonic() < deadline:
            if any(w.process.poll() is not None for w in alive):
                return
            time.sleep(0.05)

    def summary(self) -> reads.StudySummary:
        with self.engine.connect() as con:
            return reads.summarize(con, self.study_id, self.plan.request.study)

    # stopping ------------------------------------------------------------------------------

    def stop(self) -> int:
        """Stop every worker now: running trials end FAIL with the reason; returns how many
        trials were still RUNNING afterwards and had to be failed here."""
        for w in self.alive():
            _signal(w.process, signal.SIGTERM)
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

    def exit_code(self) -> int:
        s = self.summary()
        if self.crashed:
            return FAILURE
        if s.trial_budget is not None and s.n_ended < s.trial_budget:
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
