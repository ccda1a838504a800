"""Finding the user's objective function from a spec like ``pkg.mod:fn`` or ``path/file.py:fn``.

A file is loaded under a module name of its own, never ``__main__``, so an Optuna example
script's ``if __name__ == "__main__":`` block (which usually starts its own study) does not run.

An objective may declare its directions with a function attribute, the one way tui-hpo reads
them from the objective itself::

    def objective(trial):
        ...
    objective.directions = ["minimize", "maximize"]

A single string (``objective.directions = "maximize"``) means one objective.

A program is an objective too: ``sweep:PATH`` (or a path ending in ``.yaml``/``.yml``) names a
W&B sweep file (``runtime.sweeps``), and each trial runs its command (``runtime.commands``),
whose metrics give the directions and names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_hpo.errors import UserError, one_line

DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class ObjectiveSpec:
    """A resolved spec: what workers on this machine are handed (absolute file paths)."""

    text: str
    module: str | None
    path: Path | None
    function: str
    is_sweep: bool = False

    def load(self) -> Callable[..., Any]:
        if self.is_sweep:
            assert self.path is not None
            from tui_hpo.runtime.commands import CommandObjective
            from tui_hpo.runtime.sweeps import load_sweep

            return CommandObjective(load_sweep(self.path))
        module = _import_file(self.path) if self.path else _import_module(self.module or "")
        try:
            func = getattr(module, self.function)
        except AttributeError:
            where = self.path or self.module
            raise UserError(f"objective {self.text!r}: {where} has no {self.function!r}") from None
        if not callable(func):
            raise UserError(
                f"objective {self.text!r}: {self.function!r} is a {type(func).__name__}, "
                "not a function"
            )
        return func


SWEEP_PREFIX = "sweep:"
SWEEP_SUFFIXES = (".yaml", ".yml")


def parse_spec(text: str, *, cwd: Path | None = None) -> ObjectiveSpec:
    """Check the form of a spec; file paths are made absolute so other processes find them."""
    if text.startswith(SWEEP_PREFIX) or text.lower().endswith(SWEEP_SUFFIXES):
        return sweep_spec(Path(text.removeprefix(SWEEP_PREFIX)), cwd=cwd)
    target, sep, function = text.rpartition(":")
    if not sep or not target or not function or not function.isidentifier():
        raise UserError(
            f"objective {text!r}: expected MODULE:FUNCTION (objectives.synthetic:quadratic) "
            "or FILE.py:FUNCTION (train.py:objective)"
        )
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        if not path.is_file():
            raise UserError(f"objective {text!r}: file {target} not found")
        return ObjectiveSpec(text=f"{path}:{function}", module=None, path=path, function=function)
    if not all(part.isidentifier() for part in target.split(".")):
        raise UserError(f"objective {text!r}: {target!r} is not a module name")
    return ObjectiveSpec(text=text, module=target, path=None, function=function)


def sweep_spec(path: Path, *, cwd: Path | None = None) -> ObjectiveSpec:
    """A sweep file as an objective: ``sweep:/absolute/path`` for every worker."""
    path = path.expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    if not path.is_file():
        raise UserError(f"sweep file {path} not found")
    return ObjectiveSpec(
        text=f"{SWEEP_PREFIX}{path}", module=None, path=path, function="", is_sweep=True
    )


def load(text: str) -> tuple[ObjectiveSpec, Callable[..., Any]]:
    spec = parse_spec(text)
    return spec, spec.load()


def _import_module(name: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules beside the user
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise UserError(f"objective module {name!r} not found") from None
        raise UserError(
            f"objective module {name!r} imports {exc.name!r}, which is missing"
        ) from None
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"objective module {name!r} failed to import: {one_line(exc, typed=True)}"
        ) from None


def _import_file(path: Path) -> Any:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"_tui_hpo_objective_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"objective file {path} can't be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the script's own sibling imports keep working
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        del sys.modules[name]
        raise UserError(f"objective file {path} imports {exc.name!r}, which is missing") from None
    except Exception as exc:
        del sys.modules[name]
        raise UserError(
            f"objective file {path} failed to load: {one_line(exc, typed=True)}"
        ) from None
    return module


def parse_directions(values: Sequence[str]) -> list[str] | None:
    """``--direction`` values (repeatable, each may be a comma list) -> directions, or None."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            word = part.strip().lower()
            if not word:
                continue
            if word in ("min", "max"):
                word += "imize"
            if word not in DIRECTIONS:
                raise UserError(f"direction {part.strip()!r}: use minimize or maximize")
            out.append(word)
    return out or None


def declared_directions(func: Callable[..., Any]) -> list[str] | None:
    """Directions the objective declares through its ``directions`` attribute, if any."""
    declared = getattr(func, "directions", None)
    if declared is None:
        return None
    if isinstance(declared, str):
        declared = [declared]
    try:
        return parse_directions([str(d) for d in declared])
    except (TypeError, UserError):
        raise UserError(
            f"objective {getattr(func, '__name__', func)!r} declares directions {declared!r}: "
            "expected a list of 'minimize'/'maximize'"
        ) from None


def choose_directions(
    flags: list[str] | None, func: Callable[..., Any], existing: list[str] | None
) -> list[str]:
    """Flags, else the objective's own, else the existing study's, else minimize.

    Whatever is chosen must agree with an existing study: Optuna can't change a study's
    directions, and running against the wrong ones would silently invert the search.
    """
    declared = declared_directions(func)
    chosen = flags or declared or existing or ["minimize"]
    if existing is not None and chosen != existing:
        raise UserError(
            f"directions {','.join(chosen)} disagree with the existing study's {','.join(existing)}"
        )
    if flags and declared and len(flags) != len(declared):
        raise UserError(
            f"directions {','.join(flags)} (from --direction) disagree with the "
            f"{len(declared)} the objective declares ({','.join(declared)})"
        )
    return chosen


RESERVED_NAMES = (
    "number",
    "trial",
    "state",
    "value",
    "values",
    "duration",
    "host",
    "gpu",
    "sampler",
    "tag",
    "tags",
)
"""Words the filter language already means something by: no objective may be called so."""


def parse_metric_names(values: Sequence[str]) -> list[str] | None:
    """``--metric-names`` values (repeatable, each may be a comma list) -> names, or None."""
    out = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return check_metric_names(out, "--metric-names") if out else None


def check_metric_names(names: list[str], where: str) -> list[str]:
    """Names must be told apart, and from the filter language's own words."""
    for name in names:
        if name.lower() in RESERVED_NAMES or re.fullmatch(r"values?[0-9]+", name, re.IGNORECASE):
            raise UserError(
                f"{where}: {name!r} is a word the filter language uses; pick another name"
            )
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise UserError(f"{where}: {sorted(seen)[0]!r} names two objectives")
    return names


def declared_metric_names(func: Callable[..., Any]) -> list[str] | None:
    """Names the objective gives its values through its ``metric_names`` attribute, if any."""
    declared = getattr(func, "metric_names", None)
    if declared is None:
        return None
    if isinstance(declared, str):
        declared = [declared]
    where = f"objective {getattr(func, '__name__', func)!r} metric_names"
    if not all(isinstance(n, str) and n.strip() for n in declared):
        raise UserError(f"{where}: expected a list of names, got {declared!r}")
    return check_metric_names([n.strip() for n in declared], where)


def choose_metric_names(
    flags: list[str] | None,
    func: Callable[..., Any],
    existing: list[str] | None,
    directions: list[str],
) -> list[str] | None:
    """Flags, else the objective's own, else the existing study's; one name per objective."""
    chosen = flags or declared_metric_names(func) or existing
    if chosen is not None and len(chosen) != len(directions):
        raise UserError(
            f"{len(chosen)} metric name(s) ({','.join(chosen)}) for a study with "
            f"{len(directions)} objective(s)"
        )
    return chosen
