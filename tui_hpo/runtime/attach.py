"""The one line that puts a plain ``study.optimize`` script under tui-hpo's control.

    study.optimize(objective, n_trials=100, callbacks=[tui_hpo.attach(study)])

After it, the script's loop obeys ``pause``/``resume`` (it waits between trials), ``stop`` (it
leaves after the current trial), ``set-sampler``/``set-pruner`` (from its next trial) and
``prune-trial``; it shows up in ``tui-hpo workers`` and its trials carry the same provenance
attrs as a tui-hpo worker's. Three parts do it: a sampler that wraps the script's own (to mark
each trial as it starts and to be swapped when the sampler is switched), a pruner that wraps the
script's own (to honour prune orders), and the returned callback, which runs between trials.

Limits, since the script stays in charge of its loop: ``fail-trial`` from another machine can't
reach it (there is no supervisor to kill it); on its own machine the caller kills it. ``freeze``
works as for any local worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from tui_hpo.control import provenance, registry
from tui_hpo.control.orders import read_orders
from tui_hpo.control.specs import Spec, make_pruner, make_sampler
from tui_hpo.control.trial_orders import take_prune_order
from tui_hpo.storage import tables

log = logging.getLogger(__name__)


def _spec_of(obj: object) -> Spec:
    """A spec naming a sampler or pruner the script built itself (its class, no kwargs)."""
    return Spec(type(obj).__name__, {})


class SteeredSampler(BaseSampler):
    """Passes every hook to the sampler in force; marks each trial as it starts."""

    def __init__(self, inner: BaseSampler, on_trial_start: Callable[[FrozenTrial], None]):
        self.inner = inner
        self._on_trial_start = on_trial_start

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._on_trial_start(trial)
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)


class SteeredPruner(optuna.pruners.BasePruner):
    """Prunes a trial someone asked to prune, else asks the pruner in force.

    Optuna's TPE looks for a HyperbandPruner by type to split its history by bracket; behind
    this wrapper it doesn't find one, so TPE with Hyperband under ``attach`` samples as with any
    other pruner.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, engine: Any) -> None:
        self.inner = inner
        self._engine = engine

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if take_prune_order(self._engine, trial._trial_id):
            return True
        return self.inner.prune(study, trial)


class Attachment:
    """The state behind ``attach``: this process's worker row and what is in force."""

    def __init__(self, study: optuna.Study, poll_interval: float) -> None:
        backend = getattr(study._storage, "_backend", study._storage)
        if not isinstance(backend, optuna.storages.RDBStorage):
            raise TypeError("tui_hpo.attach needs a study on an RDB storage (SQLite, PostgreSQL)")
        self.study = study
        self.engine = backend.engine
        self.poll_interval = poll_interval
        tables.ensure(self.engine)
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.gpu = "none" if gpu == "" else gpu
        self.worker_id = registry.register(
            self.engine, study._study_id, gpu=self.gpu, log_path=None
        )
        self.beater = registry.Beater(self.engine, self.worker_id)
        self.beater.start()
        self.sampler = SteeredSampler(study.sampler, self._on_trial_start)
        self.pruner = SteeredPruner(study.pruner, self.engine)
        self.sampler_spec, self.pruner_spec = _spec_of(study.sampler), _spec_of(study.pruner)
        self._sampler_id = self._pruner_id = 0
        study.sampler, study.pruner = self.sampler, self.pruner
        self.trials_done = 0
        atexit.register(self.close)
        self._wait_and_apply()

    def _on_trial_start(self, trial: FrozenTrial) -> None:
        values = provenance.attrs_for(self.worker_id, self.gpu, self.sampler_spec, self.pruner_spec)
        provenance.record_start(self.engine, trial._trial_id, values, heartbeat=False)
        registry.update(self.engine, self.worker_id, state="running", trial_number=trial.number)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.trials_done += 1
        registry.update(
            self.engine,
            self.worker_id,
            state="idle",
            trial_number=None,
            trials_done=self.trials_done,
        )
        self._wait_and_apply()

    def _wait_and_apply(self) -> None:
        """Between trials: wait out a pause, leave on stop, take a switched sampler/pruner."""
        paused = False
        while True:
            with self.engine.connect() as con:
                orders = read_orders(con, self.study._study_id, self.worker_id)
            if orders.must_leave:
                log.info("tui-hpo: %s; leaving after this trial", orders.must_leave)
                self.study.stop()
                return
            if not orders.paused:
                break
            if not paused:
                registry.update(self.engine, self.worker_id, state="paused")
                paused = True
            time.sleep(self.poll_interval)
        if orders.sampler_setting_id and orders.sampler_setting_id != self._sampler_id:
            self.sampler.inner = make_sampler(orders.sampler, seed=orders.seed)
            self.sampler_spec, self._sampler_id = orders.sampler, orders.sampler_setting_id
            registry.update(self.engine, self.worker_id, sampler=orders.sampler.label())
        if orders.pruner_setting_id and orders.pruner_setting_id != self._pruner_id:
            self.pruner.inner = make_pruner(orders.pruner)
            self.pruner_spec, self._pruner_id = orders.pruner, orders.pruner_setting_id
        if paused:
            registry.update(self.engine, self.worker_id, state="idle")

    def close(self) -> None:
        self.beater.stop()
        registry.update(self.engine, self.worker_id, state="exited", exit_code=0)
        atexit.unregister(self.close)


def attach(
    study: optuna.Study, *, poll_interval: float = 0.5
) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Put ``study``'s optimize loop under tui-hpo's control; pass the result as a callback.

    Example:
        study = optuna.load_study(study_name="s", storage="sqlite:///tui-hpo.db")
        study.optimize(objective, n_trials=100, callbacks=[tui_hpo.attach(study)])

    Waits here first while the study is paused.
    """
    return Attachment(study, poll_interval)
