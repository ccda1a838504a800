"""One worker process: takes trials of one study until the budget is spent or it is told to stop.

The loop is Optuna's ``study.optimize`` taken apart so that tui-hpo can step in between trials:
read the study's orders (stop, deadline, sampler and pruner in force), take the next trial under
the budget lock, record where it ran, run the objective with a heartbeat, and tell the outcome.
An objective that raises, returns NaN or the wrong number of values fails only its own trial,
with the reason on the trial (``fail_reason``) and in this worker's log.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.study._tell import _tell_with_warning

from tui_hpo.control import budget, ending, failure_streak, provenance, registry, trial_orders
from tui_hpo.control.orders import (
    LAUNCH_TOKEN_ENV,
    Orders,
    launch_recipe,
    request_stop,
    wait_for_launch,
)
from tui_hpo.control.registry import SUPERVISOR_ENV
from tui_hpo.control.specs import DEFAULT_PRUNER, DEFAULT_SAMPLER, make_pruner, make_sampler
from tui_hpo.runtime import startup
from tui_hpo.runtime.worker_config import WorkerConfig, setup_logging, trial_output_dir
from tui_hpo.storage import attrs, tables
from tui_hpo.storage.engines import act_as, load_study, open_engine, open_storage
from tui_hpo.storage.pool import set_keep
from tui_hpo.storage.retry import make_resilient, retrying

log = logging.getLogger(__name__)

KEEP_CONNECTION_BELOW_S = 2.0
"""A worker keeps its one storage connection between trials shorter than this (their storage
calls follow each other closely); through a longer trial (a GPU training run) it reconnects for
each report and heartbeat instead, and holds no connection while the objective computes."""


TERMINATED = "terminated by SIGTERM (preempted or cancelled)"


class StopWorker(BaseException):
    """Raised inside the objective when the worker is told to stop at once (SIGTERM, Ctrl-C).

    A BaseException so that an objective's ``except Exception`` does not swallow it.
    """


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        from tui_hpo.runtime import objectives

        self.config = config
        _, self.func = objectives.load(config.objective)
        bind = getattr(self.func, "bind", None)
        if bind is not None:  # a program (a sweep file): where its trials' output goes
            bind(output_dir=trial_output_dir(config), study=config.study)
        self._started = dt.datetime.now()
        """Optuna stamps trials with this machine's naive local time; so is this."""
        token = os.environ.get(LAUNCH_TOKEN_ENV)
        if token:  # started early by a launch: it creates the tables and the study, not us
            light = open_engine(config.storage, ensure_tables=False)
            # polling holds no slot: on a crowded server the launch needs one to get ready
            set_keep(light, False)
            recipe = launch_recipe(light, wait_for_launch(light, config.study, token)) or {}
            light.dispose()
            if recipe.get("started_at"):  # the launch's workers count failures from its start
                self._started = dt.datetime.fromisoformat(recipe["started_at"])
        self.storage = open_storage(
            config.storage,
            heartbeat=config.heartbeat,
            stale_callback=self._on_stale_trial,
            must_exist=True,
        )
        self.engine = self.storage.engine
        make_resilient(self.storage)
        self.study = load_study(self.storage, config.study)
        self.study_id = self.study._study_id
        # Optuna's own loop sets this; GridSampler (and objectives) call study.stop() under it
        self.study._thread_local.in_optimize_loop = True
        self.n_objectives = len(self.study.directions)
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.gpu = "none" if gpu == "" else gpu
        supervisor = os.environ.get(SUPERVISOR_ENV)
        self.worker_id = registry.register(
            self.engine,
            self.study_id,
            gpu=self.gpu,
            log_path=config.log_path,
            supervisor_pid=int(supervisor) if supervisor else None,
        )
        self.beater = registry.Beater(self.engine, self.worker_id)
        self.heartbeat = _TrialHeartbeat(self.study._storage, config.heartbeat.interval)
        self._sampler_id = -1
        self._pruner_id = -1
        self._sampler = DEFAULT_SAMPLER
        self._pruner = DEFAULT_PRUNER
        self._in_objective = False
        self._stop_signal: int | None = None
        self._last_stale_check = 0.0
        self.trials_done = 0
        self._state = "starting"
        self._keep_connection = True

    # signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum
        if self._in_objective:
            raise StopWorker(signal.Signals(signum).name)

    def _on_stale_trial(self, study: Any, trial: Any) -> None:
        retry = self.config.heartbeat.retry_failed
        if retry and ending.requeue(study, self.engine, trial, retry):
            log.info("trial %d lost its worker; queued again", trial.number)

    # the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        startup.done()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.beater.start()
        self.heartbeat.start()
        log.info(
            "worker %d on %s pid %d gpu %s joined study %r",
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self.gpu,
            self.config.study,
        )
        code = 0
        try:
            code = self._loop()
        except StopWorker:
            code = 128 + (self._stop_signal or signal.SIGTERM)
        except BaseException:
            code = 1
            log.exception("worker %d crashed", self.worker_id)
            raise
        finally:
            self.beater.stop()
            self.heartbeat.stop()
            retrying(
                lambda: registry.update(
                    self.engine,
                    self.worker_id,
                    state="exited",
                    exit_code=code,
                    trial_number=None,
                    trials_done=self.trials_done,
                ),
                "recording the exit",
                give_up_after=30,
            )
            log.info(
                "worker %d exits with %d after %d trials", self.worker_id, code, self.trials_done
            )
            self.engine.dispose()  # the process may leave without tearing down (cli.main)
        return code

    def _loop(self) -> int:
        while True:
            if self._stop_signal is not None:
                return 128 + self._stop_signal
            retrying(self._fail_stale_trials, "the stale-trial sweep")
            trial_id, orders = retrying(
                lambda: budget.take_trial(self.study, self.engine, self.worker_id),
                "taking a trial",
            )
            reason = orders.must_leave
            if reason:
                log.info("%s; leaving", reason)
                return 0
            if orders.paused:
                self._set_state("paused", trial_number=None, trials_done=self.trials_done)
                set_keep(self.engine, False)  # waiting costs the server nothing
                time.sleep(self.config.poll_interval)
                continue
            if trial_id is None:
                # with --retry-failed a lost trial may come back: wait while others run
                retry = self.config.heartbeat.retry_failed
                if retry and retrying(self._others_running, "checking running trials"):
                    self._set_state("idle", trial_number=None, trials_done=self.trials_done)
                    set_keep(self.engine, False)
                    time.sleep(self.config.poll_interval)
                    continue
                log.info("trial budget spent")
                return 0
            set_keep(self.engine, self._keep_connection)
            self._apply(orders)
            if not self._run_trial(trial_id) and self._failed_too_often():
                return failure_streak.EXIT_CODE
            if self.study._stop_flag:  # study.stop(): the grid is used up, or the objective said so
                log.info("study.stop() was called; leaving")
                return 0

    def _apply(self, orders: Orders) -> None:
        """Rebuild the sampler or pruner when a newer one is in force than the one in hand."""
        if orders.sampler_setting_id != self._sampler_id:
            seed = orders.seed
            if seed is not None and orders.sampler.name != "qmc":
                seed += self.worker_id  # else every worker would draw the same points
            sampler = make_sampler(orders.sampler, seed=seed)
            wrap = getattr(self.func, "wrap_sampler", None)
            if wrap is not None:  # a sweep's random search draws with W&B's distributions
                sampler = wrap(sampler, seed)
            self.study.sampler = sampler
            self._sampler, self._sampler_id = orders.sampler, orders.sampler_setting_id
            log.info("sampler %s", orders.sampler.label())
            registry.update(self.engine, self.worker_id, sampler=orders.sampler.label())
        if orders.pruner_setting_id != self._pruner_id:
            self.study.pruner = make_pruner(orders.pruner)
            self._pruner, self._pruner_id = orders.pruner, orders.pruner_setting_id
            log.info("pruner %s", orders.pruner.label())

    def _fail_stale_trials(self) -> None:
        """Optuna's stale-trial sweep, at most once per heartbeat interval (it reads every
        running trial, which costs more than a fast trial itself)."""
        import optuna

        now = time.monotonic()
        if now - self._last_stale_check < self.config.heartbeat.interval:
            return
        self._last_stale_check = now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def _others_running(self) -> bool:
        from optuna.storages._rdb import models
        from optuna.trial import TrialState

        t = models.TrialModel.__table__
        with self.engine.connect() as con:
            running = con.execute(
                sa.select(sa.func.count())
                .select_from(t)
                .where(t.c.study_id == self.study_id, t.c.state == TrialState.RUNNING)
            ).scalar_one()
        if running:
            self._last_stale_check = 0.0  # sweep on every idle round
        return running > 0

    def _set_state(self, state: str, **values: object) -> None:
        if state == self._state:
            return
        self._state = state
        retrying(
            lambda: registry.update(self.engine, self.worker_id, state=state, **values),
            "updating the worker row",
        )

    def _failed_too_often(self) -> bool:
        """After a failed trial: whether the study's last trials all failed (the rule of
        ``failure_streak``), counting those started since this worker started."""
        streak = retrying(
            lambda: failure_streak.failure_streak(
                self.engine,
                self.study_id,
                self.config.max_consecutive_failures,
                since=self._started,
            ),
            "counting failed trials",
        )
        if streak is None:
            return False
        log.error("%s", streak.message())
        return True

    def _run_trial(self, trial_id: int) -> bool:
        """Run one trial; whether it ended well (COMPLETE or PRUNED)."""
        from optuna.trial import TrialState

        try:
            self._record_start(trial_id)
        except Exception as exc:
            reason = f"could not start: {type(exc).__name__}: {exc}"
            retrying(
                lambda: ending.fail_trial(self.engine, trial_id, reason),
                "failing a trial that could not start",
            )
            raise
        trial = SteeredTrial(self.study, trial_id, self.engine)
        self.heartbeat.running = trial_id
        state, values, reason = TrialState.COMPLETE, None, None
        started = time.monotonic()
        try:
            self._in_objective = True
            try:
                result = self.func(trial)
            finally:
                self._in_objective = False
            values, reason = _check_values(result, self.n_objectives)
            if reason:
                state = TrialState.FAIL
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except StopWorker as exc:
            self.heartbeat.running = None
            self._cut_short(trial, str(exc), started)
            raise
        except Exception as exc:
            if getattr(exc, "plain_reason", False):  # a program's exit: its own words
                state, reason = TrialState.FAIL, str(exc)
                log.error("trial %d failed: %s", trial.number, reason)
            else:
                state, reason = TrialState.FAIL, f"{type(exc).__name__}: {exc}"
                log.error("trial %d raised:\n%s", trial.number, traceback.format_exc().rstrip())
        finally:
            self.heartbeat.running = None
        self._finish(trial, state, values, reason, started)
        return state != TrialState.FAIL

    def _finish(
        self,
        trial: Any,
        state: Any,
        values: list[float] | None,
        reason: str | None,
        started: float,
    ) -> None:
        from optuna.trial import TrialState

        try:
            if reason:
                self.study._storage.set_trial_system_attr(
                    trial._trial_id, attrs.OPTUNA_FAIL_REASON, reason
                )
                trial.set_user_attr(attrs.FAIL_REASON, reason)
            # what Study.optimize calls: Study.tell would read the trial back, 7 round trips
            _tell_with_warning(
                study=self.study,
                trial=trial,
                value_or_values=values if state == TrialState.COMPLETE else None,
                state=state,
                suppress_warning=True,
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            # ended from outside meanwhile (fail-trial, the stale sweep): that outcome stands
            log.warning("trial %d was ended from outside before it could be told", trial.number)
        self.trials_done += 1
        took = time.monotonic() - started
        self._keep_connection = took < KEEP_CONNECTION_BELOW_S
        if state == TrialState.COMPLETE:
            log.info("trial %d complete in %.2fs: %s %s", trial.number, took, values, trial.params)
            if values and _reached_target(self.func, values):
                log.info(
                    "trial %d reached the sweep's metric target; stopping the search", trial.number
                )
                retrying(
                    lambda: self.study.set_user_attr(attrs.TARGET_REACHED, trial.number),
                    "recording the target reached",
                )
                retrying(lambda: request_stop(self.engine, self.study_id), "stopping the search")
        elif state == TrialState.PRUNED:
            log.info("trial %d pruned in %.2fs: %s", trial.number, took, trial.params)
        else:
            log.warning("trial %d failed in %.2fs: %s", trial.number, took, reason)
        # the worker row says "running" until the next trial starts or the loop waits: one write
        # fewer per trial, and the row catches up within a trial

    def _cut_short(self, trial: Any, signal_name: str, started: float) -> None:
        """A trial that a signal ended: SIGTERM is what Slurm (preemption, ``scancel``, the time
        limit) and other schedulers send before SIGKILL, so the run ends FAIL and its params are
        queued again for another worker, keeping the budget whole. SIGINT is a person stopping
        the search (a launch's Ctrl-C): that run ends FAIL and nothing is queued."""
        from optuna.trial import TrialState

        if signal_name != "SIGTERM":
            self._finish(trial, TrialState.FAIL, None, f"worker stopped by {signal_name}", started)
            return
        self._finish(trial, TrialState.FAIL, None, TERMINATED, started)
        frozen = retrying(lambda: self.study._storage.get_trial(trial._trial_id), "reading a trial")
        if frozen.state != TrialState.FAIL:
            return  # it had ended another way just before (fail-trial, its own end): stands
        retrying(
            lambda: ending.run_again(self.study, self.engine, frozen), "queueing a trial again"
        )
        log.info("trial %d queued again for another worker", trial.number)

    def _record_start(self, trial_id: int) -> None:
        values = provenance.attrs_for(self.worker_id, self.gpu, self._sampler, self._pruner)
        retrying(
            lambda: provenance.record_start(
                self.engine,
                trial_id,
                values,
                heartbeat=True,
                worker=(self.worker_id, self.trials_done),
            ),
            "recording the trial's start",
        )
        self._state = "running"


class SteeredTrial(optuna.Trial):
    """A trial that also obeys ``prune-trial`` from any machine.

    ``should_prune`` first looks for a prune order for this trial (one indexed read), then asks
    the pruner in force. For several objectives Optuna's ``report``/``should_prune`` raise;
    here ``report`` records the curve in tui-hpo's ``tui_hpo_curves`` (Optuna's TPE fails on a
    pruned multi-objective trial with intermediate values in Optuna's table) and
    ``should_prune`` answers only prune orders, since no Optuna pruner handles several
    objectives.
    """

    reports_multi_objective = True
    """Tells objectives that ``report``/``should_prune`` work here with several objectives."""

    def __init__(self, study: optuna.Study, trial_id: int, engine: sa.Engine) -> None:
        super().__init__(study, trial_id)
        self._engine = engine
        self._steps: set[int] = set()

    def report(self, value: float, step: int) -> None:
        if len(self.study.directions) == 1:
            super().report(value, step)
            return
        step = int(step)
        if step < 0 or step in self._steps:
            return
        self._steps.add(step)
        number = float(value)
        row = {
            "trial_id": self._trial_id,
            "step": step,
            "value": None if math.isnan(number) else number,
        }

        def write() -> None:
            with self._engine.begin() as con:
                con.execute(tables.curves.insert().values(**row))

        retrying(write, "reporting an intermediate value")

    def prune_ordered(self) -> bool:
        """Whether a prune order came for this trial, without asking the pruner: a program run
        as the objective checks this while it reports nothing new."""
        ordered = retrying(
            lambda: trial_orders.take_prune_order(self._engine, self._trial_id),
            "reading prune orders",
        )
        if ordered:
            log.info("trial %d pruned on request", self.number)
        return ordered

    def should_prune(self) -> bool:
        if self.prune_ordered():
            return True
        if len(self.study.directions) > 1:
            return False
        return super().should_prune()


def _reached_target(func: Any, values: list[float]) -> bool:
    """Whether a sweep's ``metric.target`` is reached (W&B stops the sweep there)."""
    sweep = getattr(func, "sweep", None)
    target = getattr(sweep, "target", None)
    if sweep is None or target is None:
        return False
    first = sweep.metrics[0]
    return values[0] <= target if first.goal == "minimize" else values[0] >= target


def _check_values(result: Any, n_objectives: int) -> tuple[list[float] | None, str | None]:
    """The objective's return as floats, or why it can't be a result."""
    items: Sequence[Any] = result if isinstance(result, (list, tuple)) else [result]
    if len(items) != n_objectives:
        return None, (
            f"objective returned {len(items)} value(s) for a study with {n_objectives} "
            f"objective(s): {result!r}"
        )
    values = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            return None, f"objective returned {item!r}, which is not a number"
        if math.isnan(value):
            return None, f"objective returned NaN: {result!r}"
        values.append(value)
    return values, None


class _TrialHeartbeat:
    """Beats for the running trial so Optuna's stale sweep spares it while this process lives.

    One thread for the worker's life; ``running`` says which trial to beat for (None between
    trials). The trial's first beat is written with its provenance when it starts."""

    def __init__(self, storage: Any, interval: int) -> None:
        self._storage = storage
        self._interval = interval
        self.running: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tui-hpo-trial-beat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            trial_id = self.running
            if trial_id is None:
                continue
            try:
                self._storage.record_heartbeat(trial_id)
            except Exception:
                continue  # the storage is away; the next beat tries again


def run(config: WorkerConfig) -> int:
    setup_logging(config.log_path)
    act_as("worker")
    return Worker(config).run()
