"""The supervisor: what ``tui-hpo worker`` runs, wrapped around the process that runs trials.

A trial can hang where no signal handler runs (a C call, a deadlocked data loader), so the
process that runs trials can't be trusted to end one on request. The supervisor is a small
second process on the same machine that never runs user code. It:

- starts the trial-running process (``tui-hpo worker --no-supervisor``), which registers its
  worker row with this process's pid, so the supervisor knows which fail orders are meant for
  it;
- polls the storage for fail orders on that worker's trials (``fail-trial`` from any machine),
  kills the process, marks the trial FAIL with the reason and starts a replacement;
- replaces the process when it dies (SIGKILL, OOM killer), failing what it left RUNNING at once
  instead of after the heartbeat grace period;
- passes SIGTERM/SIGINT on, so stopping the supervisor stops the worker cleanly (SIGTERM:
  the cut trial is queued again; SIGINT: it is not).

Both processes share one process group, so ``freeze`` (SIGSTOP to the group) stops both.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import sqlalchemy as sa

from tui_hpo.control import budget, ending, failure_streak, registry, trial_orders
from tui_hpo.control.orders import LAUNCH_TOKEN_ENV, launch_ready, study_id_of
from tui_hpo.control.provenance import running_trials_of_worker
from tui_hpo.machine.process_tree import kill_tree
from tui_hpo.runtime import startup
from tui_hpo.runtime.worker_config import WorkerConfig, setup_logging, worker_environ
from tui_hpo.storage import tables
from tui_hpo.storage.engines import act_as, open_engine, open_storage
from tui_hpo.storage.pool import held
from tui_hpo.storage.retry import transient

log = logging.getLogger(__name__)

POLL_S = 0.25
"""Fail orders are picked up within this; the contract is a FAIL within 2 s."""
SERVER_POLL_S = 1.0
"""The same on a database server, where each poll opens a connection (a supervisor keeps none
between polls: ``storage.pool``), so that hundreds of supervisors stay cheap for the server."""

MAX_CRASHES = 3
"""Consecutive crashes (non-zero exits not caused by a signal) before giving up: an objective
that can't import or a full disk would otherwise restart forever."""

USAGE_EXIT = 2


class Supervisor:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.token = os.environ.get(LAUNCH_TOKEN_ENV)
        self.engine = open_engine(
            config.storage, must_exist=not self.token, ensure_tables=not self.token
        )
        # A launch's workers start before its study is ready (they spend that time importing);
        # a worker that joins from a shell needs the study to be there already.
        self.study_id: int | None = None if self.token else study_id_of(self.engine, config.study)
        self.child: subprocess.Popen[bytes] | None = None
        self.worker_id: int | None = None
        self.stopping: int | None = None
        self._study = None
        self._running: tuple[int | None, float] = (None, 0.0)
        self._last_beat = 0.0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = signum
        if self.child is not None and self.child.poll() is None:
            # SIGINT stays SIGINT (a person stopping the search); anything else is a scheduler
            # or a lost terminal ending the job: SIGTERM, whose trial is queued again
            self.child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        crashes = 0
        while True:
            code = self._run_child()
            if code in (0, USAGE_EXIT, failure_streak.EXIT_CODE) or self.stopping is not None:
                return code if self.stopping is None else 128 + self.stopping
            if code > 0:
                crashes += 1
                if crashes >= MAX_CRASHES:
                    log.error("worker crashed %d times in a row; giving up", crashes)
                    return code
            else:
                crashes = 0
            if (
                self.study_id is not None
                and budget.budget_left(self.engine, self.study_id) == 0
                and not self._others_running()
            ):
                return 0
            log.info("starting a replacement worker")

    def _run_child(self) -> int:
        """Start the trial process at once (its imports take the longest) and find the row it
        registers under this process's pid while it runs."""
        self.child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tui_hpo",
                "worker",
                *self.config.worker_args(trial_process=True),
            ],
            env=worker_environ(self.config.storage.url, supervisor_pid=os.getpid()),
            stdin=subprocess.DEVNULL,
        )
        log.debug("supervisor pid %d started trial process pid %d", os.getpid(), self.child.pid)
        self.worker_id = None
        self._running = (None, 0.0)
        poll_s = POLL_S if self.config.storage.is_sqlite else SERVER_POLL_S
        while True:
            try:
                code = self.child.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                with held(self.engine):
                    if self._find_row():
                        self._take_fail_orders()
                        self._enforce_trial_timeout()
                        self._beat_while_frozen()
            except Exception as exc:
                if not transient(exc):
                    raise
                # the storage is away; the worker rides it out, and so does this loop
        self._find_row()
        if self.worker_id is None:
            return code  # it ended before it joined: no row, no trial of its own
        if code == USAGE_EXIT:  # the child said why (bad input): no trial ran, leave no trace
            registry.delete(self.engine, self.worker_id)
        elif code not in (0, failure_streak.EXIT_CODE):  # that one left cleanly, and said why
            self._after_death(code)
        return code

    def _find_row(self) -> bool:
        """Whether the trial process has joined: its worker row, once the study is ready."""
        if self.worker_id is not None:
            return True
        assert self.child is not None
        if self.study_id is None:
            assert self.token is not None
            self.study_id = launch_ready(self.engine, self.config.study, self.token)
            if self.study_id is None:
                return False
        w = tables.workers
        with self.engine.connect() as con:
            self.worker_id = con.execute(
                sa.select(w.c.worker_id).where(
                    w.c.study_id == self.study_id,
                    w.c.supervisor_pid == os.getpid(),
                    w.c.pid == self.child.pid,
                    w.c.host == socket.gethostname(),
                )
            ).scalar()
        return self.worker_id is not None

    def _take_fail_orders(self) -> None:
        assert self.child is not None and self.worker_id is not None
        orders = trial_orders.pending_fail_orders(self.engine, self.worker_id)
        if not orders:
            return
        kill_tree(self.child.pid)  # and a command trial's program, in its own group
        self.child.wait()
        for request_id, trial_id, number in orders:
            reason = "failed on request (fail-trial): worker process killed by its supervisor"
            done = ending.fail_trial(self.engine, trial_id, reason)
            outcome = f"worker pid {self.child.pid} killed, replacement started"
            trial_orders.mark_order_done(
                self.engine, request_id, outcome if done else "already ended"
            )
            log.warning("trial %d failed on request; worker pid %d killed", number, self.child.pid)

    def _beat_while_frozen(self) -> None:
        """A frozen (SIGSTOPped) trial process can't beat for its trial; this process can, so
        the trial isn't swept as stale while frozen, and is once nobody beats any more."""
        assert self.worker_id is not None
        now = time.monotonic()
        if now - self._last_beat < self.config.heartbeat.interval:
            return
        w = tables.workers
        with self.engine.connect() as con:
            state = con.execute(
                sa.select(w.c.state).where(w.c.worker_id == self.worker_id)
            ).scalar()
        if state != "frozen":
            return
        self._last_beat = now
        running = running_trials_of_worker(self.engine, self.study_id, self.worker_id)
        if running:
            hb = tables.optuna_trial_heartbeats
            with self.engine.begin() as con:
                con.execute(
                    hb.update().where(hb.c.trial_id.in_(running)).values(heartbeat=sa.func.now())
                )

    def _enforce_trial_timeout(self) -> None:
        """End a trial that has run longer than ``--trial-timeout``: kill, FAIL, replace."""
        limit = self.config.trial_timeout
        if not limit:
            return
        assert self.child is not None and self.worker_id is not None
        w = tables.workers
        with self.engine.connect() as con:
            number = con.execute(
                sa.select(w.c.trial_number).where(w.c.worker_id == self.worker_id)
            ).scalar()
        now = time.monotonic()
        if number != self._running[0]:
            self._running = (number, now)
            return
        if number is None or now - self._running[1] < limit:
            return
        kill_tree(self.child.pid)  # and a command trial's program, in its own group
        self.child.wait()
        reason = f"trial timed out after {limit:g} s (--trial-timeout): worker process killed"
        for trial_id in running_trials_of_worker(self.engine, self.study_id, self.worker_id):
            ending.fail_trial(self.engine, trial_id, reason)
        log.warning("trial %d ran past %g s; worker pid %d killed", number, limit, self.child.pid)

    def _after_death(self, code: int) -> None:
        assert self.child is not None and self.worker_id is not None
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        failed = ending.fail_running_of_worker(
            self.study(),
            self.engine,
            self.worker_id,
            f"worker pid {self.child.pid} died ({how})",
            retry=self.config.heartbeat.retry_failed,
        )
        registry.update(
            self.engine, self.worker_id, state="exited", exit_code=code, trial_number=None
        )
        log.warning("worker pid %d died (%s); %d trial(s) failed", self.child.pid, how, failed)

    def study(self):  # type: ignore[no-untyped-def]
        """The Optuna study, loaded only once something has to be failed."""
        if self._study is None:
            import optuna

            storage = open_storage(self.config.storage, heartbeat=self.config.heartbeat)
            self._study = optuna.load_study(study_name=self.config.study, storage=storage)
        return self._study

    def _others_running(self) -> bool:
        t = tables.optuna_trials
        with self.engine.connect() as con:
            running = con.execute(
                sa.select(sa.func.count()).where(
                    t.c.study_id == self.study_id, sa.cast(t.c.state, sa.String) == "RUNNING"
                )
            ).scalar_one()
        return running > 0


def run(config: WorkerConfig) -> int:
    setup_logging(config.log_path, quiet_optuna=False)
    act_as("supervisor")
    supervisor = Supervisor(config)
    startup.done()
    try:
        return supervisor.run()
    finally:
        supervisor.engine.dispose()  # the process may leave without tearing down (cli.main)
