"""Names of the trial attributes tui-hpo writes, in one place (docs/storage.md lists them).

User attrs, so the ``optuna`` CLI and optuna-dashboard show them beside the user's own:

- ``tui_hpo.host``, ``tui_hpo.pid``: the machine and process that ran the trial;
- ``tui_hpo.worker``: the worker's row id in ``tui_hpo_workers``;
- ``tui_hpo.gpu``: the ``CUDA_VISIBLE_DEVICES`` the worker got (``none`` when GPUs were hidden);
- ``tui_hpo.sampler``, ``tui_hpo.pruner``: ``{"name": ..., "kwargs": {...}}`` in force when the
  trial was asked for;
- ``tui_hpo.fail_reason``: why a failed trial failed (also in Optuna's ``fail_reason`` system
  attr);
- ``tui_hpo.retry_of``: on a trial queued again after SIGTERM cut its first run short
  (preemption, ``scancel``), the number of that run;
- ``tui_hpo.output``, ``tui_hpo.exit_code``: a command trial's output file (stdout and stderr,
  on the machine in ``tui_hpo.host``) and its program's exit code;
- ``tui_hpo.tags``: the trial's tags, a sorted list of strings (``tui-hpo tag``, ``t`` in the
  app); written on finished trials too (``control.tags``).

A study user attr:

- ``tui_hpo.target_reached``: the number of the trial that reached the sweep's
  ``metric.target``, which stopped the search (W&B's behaviour).
"""

from __future__ import annotations

PREFIX = "tui_hpo."
HOST = PREFIX + "host"
PID = PREFIX + "pid"
WORKER = PREFIX + "worker"
GPU = PREFIX + "gpu"
SAMPLER = PREFIX + "sampler"
PRUNER = PREFIX + "pruner"
FAIL_REASON = PREFIX + "fail_reason"
RETRY_OF = PREFIX + "retry_of"
"""On a trial queued again because its first run was cut short (SIGTERM: preempted or
cancelled): the number of that run, which ended FAIL."""

OPTUNA_FAIL_REASON = "fail_reason"
"""Optuna's own system attr for the same thing."""
OUTPUT = PREFIX + "output"
"""A command trial's output file (stdout and stderr), on the machine that ran it."""
EXIT_CODE = PREFIX + "exit_code"
TAGS = PREFIX + "tags"
"""The trial's tags: a sorted list of distinct one-word strings (``control.tags``)."""
TARGET_REACHED = PREFIX + "target_reached"
"""On the study: the trial whose value reached the sweep's ``metric.target`` (the search stopped
there, so a budget left unspent is no failure)."""
