"""What a sweep is, once read: the shape that ``runtime.sweeps`` (reading W&B sweep files and
``--command`` flags) produces and ``runtime.commands`` (running one trial of a program) uses.

Kept apart from both so that neither depends on the other's insides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    from optuna.distributions import BaseDistribution

    from tui_hpo.control.specs import Spec

Goal = Literal["minimize", "maximize"]
Summary = Literal["last", "min", "max"]

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
"""W&B's default ``command``."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter, by its (dotted, for nested ``parameters``) name."""

    name: str
    distribution: BaseDistribution
    """What Optuna sees and stores in ``trial.params``: the value the program is given."""
    prior: Callable[[np.random.RandomState], Any] | None = None
    """W&B's own draw, for a distribution Optuna's can't express (``normal``, ``probabilities``,
    ...): random search draws with it (inside ``distribution``'s bounds), so that values come
    as W&B would draw them; model-based samplers search ``distribution`` itself."""
    line: int | None = None
    """Where it is in the file, for error messages."""


@dataclass(frozen=True)
class Metric:
    name: str
    goal: Goal = "minimize"


@dataclass(frozen=True)
class Sweep:
    """A sweep with every check done."""

    source: Path | None
    """The file it was read from (None: made from ``--command`` flags)."""
    command: tuple[str, ...]
    """Tokens, with W&B's macros (``${args}`` ...) and tui-hpo's ``{param}`` placeholders."""
    cwd: Path
    """Where each trial runs: the sweep file's folder, or ``--cwd``."""
    params: dict[str, Param]
    metrics: tuple[Metric, ...]
    """The objective(s): one, or several for a multi-objective study."""
    program: str | None = None
    keep: tuple[str, ...] = ()
    """Other metrics the file names: kept as user attrs (their last value)."""
    summary: Summary = "last"
    """Which report of the objective metric becomes the trial's value."""
    target: float | None = None
    """``metric.target``: the search stops once a trial's value reaches it."""
    name: str | None = None
    """The default study name."""
    method: str | None = None
    sampler: Spec | None = None
    pruner: Spec | None = None
    run_cap: int | None = None
    """The trial budget the file asks for (a grid's size when ``method: grid`` and no cap)."""
    grid_size: int | None = None
    workers: int | None = None
    gpus: str | None = None
    trial_timeout: float | None = None
    kill_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a trial is pruned or ended."""
    warnings: tuple[str, ...] = ()
    """One line each, for keys read but not used (``entity``, ``project``)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The file's mapping as read (what ``--command`` flags become, to hand to workers)."""

    @property
    def directions(self) -> list[str]:
        return [m.goal for m in self.metrics]

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]
