"""Reading a W&B sweep configuration file (and ``--command`` flags) into a ``Sweep``.

The file is read as W&B reads it: ``program``, ``command`` and its macros, ``method``,
``metric``, ``parameters`` (every W&B distribution), ``early_terminate`` (hyperband),
``run_cap`` and ``name``, so that a file written for ``wandb sweep`` runs here unchanged.
tui-hpo's own keys say what W&B can't: several ``metrics``, ``sampler``/``pruner`` in tui-hpo's
spec form, ``workers``, ``gpus``, ``trial_timeout``, ``summary``, ``keep``, ``kill_grace`` and
``cwd``. docs/sweeps.md has the whole format.

Every mistake is one line naming the file and the line of the key at fault, found before
anything is written anywhere: a worker that meets a bad file minutes later, on another machine,
is much harder to debug than a launch that refuses it. Flags are turned into the same mapping
a file holds and go through the same checks, so the two can't drift apart. Each ``parameters``
entry becomes a ``Param`` in ``runtime.sweep_params``; ``runtime.sweep_source`` words the errors.

Optuna and PyYAML are imported inside the functions: ``tui-hpo --help`` must not pay for them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui_hpo.errors import UserError, one_line
from tui_hpo.runtime.sweep_model import DEFAULT_COMMAND, Metric, Param, Sweep
from tui_hpo.runtime.sweep_params import (
    BETAS,
    DISTRIBUTIONS,
    NAME,
    NORMALS,
    PARAM_KEYS,
    did_you_mean,
    is_int,
    is_number,
    param,
    parameters,
)
from tui_hpo.runtime.sweep_source import SweepSource

W_AND_B_KEYS = (
    "program",
    "command",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
)
_STORAGE = "tui-hpo keeps everything in its storage"
IGNORED_KEYS = {
    "entity": f"a W&B account setting; {_STORAGE}",
    "project": f"a W&B project setting; {_STORAGE}",
    "controller": "W&B's sweep controller; tui-hpo's workers share the study's storage",
    "imports": "W&B's package list; install what the program needs yourself",
    "job": "a W&B launch job; tui-hpo runs program/command",
    "image_uri": "a W&B launch image; tui-hpo runs program/command",
    "scheduler": "W&B's custom scheduler; tui-hpo's sampler: key chooses the search",
    "apiVersion": "a W&B format field",
    "kind": "a W&B format field",
}
OWN_KEYS = (
    "metrics",
    "sampler",
    "pruner",
    "workers",
    "gpus",
    "trial_timeout",
    "summary",
    "keep",
    "kill_grace",
    "cwd",
)
METHODS = {"grid": "grid", "random": "random", "bayes": "tpe"}

MAX_GRID_POINTS = 1000
"""An ``int_uniform`` (or an even ``q_uniform``) up to this many points joins a grid as is."""
MACROS = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
)
_LIST_MACROS = frozenset({"args", "args_no_hyphens", "args_no_boolean_flags"})
_MACRO = re.compile(r"\$\{([^}]*)\}")
_PLACEHOLDER = re.compile(r"(?<!\$)\{(" + NAME + r")\}")
"""Only name-shaped braces are placeholders, so a JSON word (``{"a": 1}``) passes as it is."""
_FILL = re.compile(r"\$\{([^}]*)\}|(?<!\$)\{(" + NAME + r")\}")
_GPUS = re.compile(r"\s*(all|none|\d+(\s*,\s*\d+)*)\s*\Z", re.IGNORECASE)
_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")


# reading the file --------------------------------------------------------------------------


def load_sweep(path: Path, *, cwd: Path | None = None) -> Sweep:
    """The sweep file at ``path`` (YAML, or JSON), checked; ``cwd`` overrides where its trials
    run."""
    data, lines = _read(path)
    return sweep_from_mapping(data, source=path, lines=lines, cwd=cwd)


def _read(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"can't read sweep file {path}: {exc.strerror or one_line(exc)}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (a sweep file is YAML or JSON)") from None
    if path.suffix.lower() == ".json":
        # JSON may indent with tabs, YAML may not; a raw tab can't be inside a JSON string.
        text = text.replace("\t", " ")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple[str, ...], int] = {}
        twice: list[tuple[str, int, int]] = []
        if node is not None:
            # Before constructing: that merges ``<<`` keys into the nodes, in place.
            _record_lines(node, (), lines, twice, set())
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or one_line(exc)).split())
        raise UserError(f"{at}: YAML syntax error: {problem}") from None
    finally:
        loader.dispose()
    if node is None:
        raise UserError(f"{path}:1: the file is empty; a sweep file is a mapping (program:, ...)")
    if not isinstance(data, dict):
        raise UserError(
            f"{path}:{node.start_mark.line + 1}: a sweep file is a mapping "
            f"(program:, method:, metric:, parameters:, ...), not {_kind(data)}"
        )
    if twice:
        key, line, first = twice[0]
        raise UserError(f"{path}:{line}: {key!r} is given twice (also on line {first})")
    return data, lines


def _record_lines(
    node: Any,
    path: tuple[str, ...],
    lines: dict[tuple[str, ...], int],
    twice: list[tuple[str, int, int]],
    seen: set[int],
) -> None:
    """Each key's line, by its path of (string) keys and indexes. A node shared through an
    alias is walked once: a chain of aliases can't make this exponential."""
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in first:
                # YAML keeps the last silently: two parameters: blocks would lose the first.
                twice.append((name, line, first[name]))
            first.setdefault(name, line)
            lines[(*path, name)] = line
            _record_lines(value, (*path, name), lines, twice, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, str(i)), lines, twice, seen)


def dump_sweep(mapping: dict[str, Any], path: Path) -> None:
    """Write a sweep (one made from flags) as a file that workers load, wherever they run."""
    import yaml

    text = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True)
    path.write_text(f"# A sweep file (W&B's format, docs/sweeps.md), written by tui-hpo\n{text}")


# the mapping ---------------------------------------------------------------------------------


def sweep_from_mapping(
    data: dict[str, Any],
    *,
    source: Path | None = None,
    lines: dict[tuple[str, ...], int] | None = None,
    cwd: Path | None = None,
) -> Sweep:
    """Check a sweep's mapping (a file's, or what :func:`sweep_from_flags` makes) and build the
    ``Sweep``. ``lines`` maps key paths (``("parameters", "lr", "min")``) to their lines, for
    errors; without a ``source`` errors are worded for the ``--command`` flags."""
    reader = SweepSource(str(source) if source is not None else "--command", lines)
    if not isinstance(data, dict):
        raise reader.error((), f"a sweep is a mapping (program:, method:, ...), not {_kind(data)}")
    _check_keys(data, reader)
    where = _cwd(data, source, cwd, reader)
    params = parameters(data.get("parameters"), reader)
    metrics, target = _metrics(data, reader)
    program = _program(data, reader)
    command = _command(data.get("command"), reader)
    _check_command(command, program, params, where, reader)
    summary = data.get("summary", "last")
    if summary not in ("last", "min", "max"):
        raise reader.error(("summary",), f"summary must be last, min or max, got {summary!r}")
    sampler, grid_size = _sampler(data, params, reader)
    pruner = _pruner(data, reader)
    run_cap = _whole(data, "run_cap", reader)
    kill_grace = data.get("kill_grace", 10.0)
    if not is_number(kill_grace) or kill_grace < 0:
        raise reader.error(("kill_grace",), f"kill_grace must be seconds >= 0, got {kill_grace!r}")
    objectives = {m.name for m in metrics}
    return Sweep(
        source=source,
        command=command,
        cwd=where,
        params=params,
        metrics=metrics,
        program=program,
        keep=tuple(k for k in _keep(data, reader) if k not in objectives),
        summary=summary,
        target=target,
        name=_optional_text(data, "name", reader),
        method=data.get("method"),
        sampler=sampler,
        pruner=pruner,
        run_cap=run_cap if run_cap is not None else grid_size,
        grid_size=grid_size,
        workers=_whole(data, "workers", reader),
        gpus=_gpus(data, reader),
        trial_timeout=_seconds(data, "trial_timeout", reader),
        kill_grace=float(kill_grace),
        warnings=tuple(reader.warnings),
        raw=dict(data),
    )


def _check_keys(data: dict[Any, Any], reader: SweepSource) -> None:
    known = (*W_AND_B_KEYS, *OWN_KEYS, *IGNORED_KEYS)
    for key in data:
        if key in W_AND_B_KEYS or key in OWN_KEYS:
            continue
        if key in IGNORED_KEYS:
            reader.warn(f"ignoring {key!r} ({IGNORED_KEYS[key]})")
            continue
        raise reader.error((key,), f"unknown key {key!r}{did_you_mean(key, known)}")


def _cwd(data: dict[str, Any], source: Path | None, cwd: Path | None, reader: SweepSource) -> Path:
    """``--cwd``, else the file's ``cwd:`` (relative to the file), else the file's folder: a
    sweep file travels with its program, wherever the user launches from."""
    folder = source.parent if source is not None else Path.cwd()
    path: tuple[str, ...] = ()
    if cwd is None and data.get("cwd") is not None:
        path = ("cwd",)
        cwd = Path(_text(data, "cwd", reader)).expanduser()
        if not cwd.is_absolute():
            cwd = folder / cwd
    where = (cwd if cwd is not None else folder).absolute()
    if not where.is_dir():
        raise reader.error(path, f"folder {where} not found (where trials would run)")
    return where


def _program(data: dict[str, Any], reader: SweepSource) -> str | None:
    if data.get("program") is None:
        return None
    return _text(data, "program", reader)


def _text(data: dict[str, Any], key: str, reader: SweepSource) -> str:
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise reader.error((key,), f"{key} must be text, got {value!r}")
    return value


def _optional_text(data: dict[str, Any], key: str, reader: SweepSource) -> str | None:
    return None if data.get(key) is None else _text(data, key, reader)


def _whole(data: dict[str, Any], key: str, reader: SweepSource) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise reader.error((key,), f"{key} must be a whole number of at least 1, got {value!r}")
    return value


def _seconds(data: dict[str, Any], key: str, reader: SweepSource) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not is_number(value) or value <= 0:
        raise reader.error((key,), f"{key} must be seconds > 0, got {value!r}")
    return float(value)


def _keep(data: dict[str, Any], reader: SweepSource) -> list[str]:
    keep = data.get("keep", [])
    if isinstance(keep, str):
        keep = [keep]
    if not isinstance(keep, list) or not all(isinstance(k, str) and k.strip() for k in keep):
        raise reader.error(("keep",), f"keep must be a list of metric names, got {keep!r}")
    return [k.strip() for k in keep]


def _gpus(data: dict[str, Any], reader: SweepSource) -> str | None:
    """As ``--gpus`` takes it (``0,1``, ``all``, ``none``); whether they exist is the launch's
    to check, on the machine that runs the workers."""
    gpus = data.get("gpus")
    if gpus is None:
        return None
    if isinstance(gpus, list) and gpus and all(is_int(g) and g >= 0 for g in gpus):
        return ",".join(str(g) for g in gpus)
    if is_int(gpus) and gpus >= 0:
        return str(gpus)
    if isinstance(gpus, str) and _GPUS.match(gpus):
        return gpus.strip()
    raise reader.error(
        ("gpus",), f"gpus must be GPU indexes (0,1 or a list), all or none, got {gpus!r}"
    )


# metrics -----------------------------------------------------------------------------------


def _metrics(data: dict[str, Any], reader: SweepSource) -> tuple[tuple[Metric, ...], float | None]:
    """W&B's ``metric`` and tui-hpo's ``metrics`` (several objectives); ``metric`` beside
    ``metrics`` must be one of them, with the same goal, so the two can't disagree."""
    single, target = None, None
    if data.get("metric") is not None:
        item = data["metric"]
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise reader.error(("metric",), "metric must be a mapping with name: and goal:")
        single = _metric(item, ("metric",), reader, single=True)
        if item.get("target") is not None:
            target = item["target"]
            if not is_number(target) or not math.isfinite(target):
                raise reader.error(("metric", "target"), f"target must be a number: {target!r}")
            target = float(target)
    listed: list[tuple[Metric, tuple[Any, ...]]] = []
    several = data.get("metrics")
    if several is not None:
        if not isinstance(several, list) or not several:
            raise reader.error(("metrics",), "metrics must be a list of {name:, goal:}")
        for i, item in enumerate(several):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict):
                raise reader.error(("metrics", i), "each of metrics is {name:, goal:}")
            listed.append((_metric(item, ("metrics", i), reader, single=False), ("metrics", i)))
    if not listed:
        if single is None:
            raise reader.error(
                (), "no metric: name what the program prints (metric: {name: val_loss})"
            )
        return (single,), target
    goals: dict[str, str] = {}
    out: list[Metric] = []
    for metric, path in listed:
        if metric.name not in goals:
            goals[metric.name] = metric.goal
            out.append(metric)
        elif goals[metric.name] != metric.goal:
            raise reader.error(path, _twice(metric.name, goals[metric.name], metric.goal))
    if single is not None:
        if single.name not in goals:
            raise reader.error(
                ("metric",),
                f"metric {single.name!r} is not among metrics ({', '.join(goals)}); "
                "list every objective under metrics:",
            )
        if goals[single.name] != single.goal:
            raise reader.error(("metric",), _twice(single.name, goals[single.name], single.goal))
    if target is not None and len(out) > 1:
        raise reader.error(("metric", "target"), "target needs a single metric, not several")
    return tuple(out), target


def _twice(name: str, first: str, second: str) -> str:
    return f"metric {name!r} is named twice with different goals ({first} and {second})"


def _metric(
    item: dict[str, Any], path: tuple[Any, ...], reader: SweepSource, *, single: bool
) -> Metric:
    allowed = ("name", "goal", "target") if single else ("name", "goal")
    for key in item:
        if key in allowed:
            continue
        if key in ("impute", "impute_while_running"):
            reader.warn(f"ignoring {key!r} (W&B's bayes search scores failed runs; Optuna's don't)")
            continue
        if key == "target":
            raise reader.error((*path, key), "target goes under metric: (a single objective)")
        raise reader.error((*path, key), f"unknown metric key {key!r}{did_you_mean(key, allowed)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise reader.error(path, "a metric needs a name: (what the program prints)")
    goal = item.get("goal", "minimize")
    goal = {"min": "minimize", "max": "maximize"}.get(goal, goal) if isinstance(goal, str) else goal
    if goal not in ("minimize", "maximize"):
        raise reader.error((*path, "goal"), f"goal must be minimize or maximize, got {goal!r}")
    return Metric(name.strip(), goal)


# the command -------------------------------------------------------------------------------


def _command(value: Any, reader: SweepSource) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_COMMAND
    if isinstance(value, str):  # tui-hpo also takes one line, split as a shell would
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise reader.error(("command",), f"command: {exc}") from None
    if not isinstance(value, list) or not value:
        raise reader.error(("command",), "command must be a list of words (program, flags, ...)")
    words = []
    for i, token in enumerate(value):
        if not isinstance(token, str) and not is_number(token):
            raise reader.error(("command", i), f"command words are text, got {token!r}")
        words.append(token if isinstance(token, str) else str(token))
    return tuple(words)


def _check_command(
    command: tuple[str, ...],
    program: str | None,
    params: dict[str, Param],
    cwd: Path,
    reader: SweepSource,
) -> None:
    """Everything the command names must exist now: a typo would otherwise fail every trial."""
    uses_program, uses_args, named = False, False, set()
    for i, token in enumerate(command):
        for macro in _MACRO.findall(token):
            if macro not in MACROS:
                hint = "; use ${args_json}" if macro == "args_json_file" else ""
                raise reader.error(
                    ("command", i),
                    f"unknown macro ${{{macro}}} (the command runs without a shell; macros: "
                    f"{', '.join('${' + m + '}' for m in MACROS)}){hint}",
                )
            if macro == "program":
                uses_program = True
                if program is None:
                    raise reader.error(("command", i), "command uses ${program} but no program:")
            if macro in _LIST_MACROS and token != f"${{{macro}}}":
                raise reader.error(("command", i), f"${{{macro}}} must be a word of its own")
            uses_args = uses_args or macro.startswith("args")
        for name in _PLACEHOLDER.findall(token):
            if name not in params:
                known = ", ".join(params) or "none"
                raise reader.error(
                    ("command", i),
                    f"{{{name}}} is not a parameter{did_you_mean(name, list(params))} "
                    f"(parameters: {known})",
                )
            named.add(name)
    if uses_program and program is not None:
        path = Path(program).expanduser()
        if not (path if path.is_absolute() else cwd / path).is_file():
            raise reader.error(("program",), f"program {program!r} not found in {cwd}")
    if not uses_args:
        for name in params:
            if name not in named:
                reader.warn(
                    f"parameter {name!r} is not in the command (no ${{args}}, no {{{name}}}): "
                    "the program won't get it"
                )


def _format(value: Any) -> str:
    """floats by repr (``1e-05``, ``0.1``): what the program parses is exactly what's stored."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def build_argv(
    sweep: Sweep, values: dict[str, Any], *, interpreter: str = sys.executable
) -> tuple[list[str], dict[str, str]]:
    """The program's argv, W&B's macros and tui-hpo's ``{param}`` placeholders filled in, and
    environment variables to add (none so far: the second item is there for macros to come).

    ``${args}`` and its kin list the parameters in the file's order, each a word of its own;
    ``${env}`` is ``/usr/bin/env`` as in W&B (left out where it doesn't exist).
    """
    order = [n for n in sweep.params if n in values] + [n for n in values if n not in sweep.params]
    ordered = {name: values[name] for name in order}
    lists = {
        "args": [f"--{k}={_format(v)}" for k, v in ordered.items()],
        "args_no_hyphens": [f"{k}={_format(v)}" for k, v in ordered.items()],
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{k}={_format(v)}"
            for k, v in ordered.items()
            if v is not False
        ],
    }
    words = {
        "env": "/usr/bin/env" if os.path.exists("/usr/bin/env") else "",
        "interpreter": interpreter,
        "program": sweep.program or "",
        "args_json": json.dumps(ordered),
    }

    def fill(match: re.Match[str]) -> str:
        # One pass over the word: what a macro expands to is never read as a placeholder.
        macro, name = match.group(1), match.group(2)
        return words[macro] if macro is not None else _format(ordered[name])

    argv: list[str] = []
    for token in sweep.command:
        whole = _MACRO.fullmatch(token)
        if whole and whole.group(1) in lists:
            argv.extend(lists[whole.group(1)])
        elif whole and whole.group(1) == "env":
            argv.extend([words["env"]] if words["env"] else [])
        else:
            argv.append(_FILL.sub(fill, token))
    return argv, {}


# sampler and pruner --------------------------------------------------------------------------


def _sampler(
    data: dict[str, Any], params: dict[str, Param], reader: SweepSource
) -> tuple[Any, int | None]:
    """``method`` as an Optuna sampler spec (and a grid's size), unless ``sampler`` names one."""
    from tui_hpo.control.specs import sampler_spec

    method = data.get("method")
    choices = (*METHODS, "custom")
    if method is not None and (not isinstance(method, str) or method not in choices):
        raise reader.error(
            ("method",),
            f"method must be grid, random or bayes, got {method!r}{did_you_mean(method, METHODS)}",
        )
    if data.get("sampler") is not None:
        return _spec_from(data["sampler"], "sampler", reader), None
    if method is None:
        raise reader.error((), "no method: say method: bayes, random or grid (or sampler:)")
    if method == "custom":
        raise reader.error(
            ("method",), "method custom is W&B's scheduler: name tui-hpo's sampler: instead"
        )
    if method != "grid":
        return _checked(lambda: sampler_spec(METHODS[method]), ("method",), reader), None
    if not params:
        raise reader.error(("method",), "method grid needs parameters with values:")
    space = {name: _grid_values(param, reader) for name, param in params.items()}
    size = math.prod(len(values) for values in space.values())
    spec = _checked(lambda: sampler_spec("grid", {"search_space": space}), ("method",), reader)
    return spec, size


def _grid_values(param: Param, reader: SweepSource) -> list[Any]:
    """Every value of a parameter: its values, or each point of an int_uniform (or of an even
    q_uniform) of at most MAX_GRID_POINTS; a continuous range has no grid."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if param.prior is None and isinstance(dist, IntDistribution) and not dist.log:
        if (dist.high - dist.low) // dist.step < MAX_GRID_POINTS:
            return list(range(dist.low, dist.high + 1, dist.step))
    if param.prior is None and isinstance(dist, FloatDistribution) and dist.step is not None:
        count = round((dist.high - dist.low) / dist.step)
        if count < MAX_GRID_POINTS:
            low, step = Decimal(repr(dist.low)), Decimal(repr(dist.step))
            return [float(low + k * step) for k in range(count + 1)]
    raise reader.at(
        param.line,
        f"method grid needs values: for {param.name!r} (or an int_uniform or even q_uniform "
        f"of at most {MAX_GRID_POINTS} points)",
    )


def _pruner(data: dict[str, Any], reader: SweepSource) -> Any:
    from tui_hpo.control.specs import pruner_spec

    if data.get("pruner") is not None:
        return _spec_from(data["pruner"], "pruner", reader)
    early = data.get("early_terminate")
    if early is None:
        return None
    kwargs = _hyperband(early, reader)
    return _checked(lambda: pruner_spec("hyperband", kwargs), ("early_terminate",), reader)


def _hyperband(early: Any, reader: SweepSource) -> dict[str, Any]:
    """W&B's hyperband as Optuna's ``HyperbandPruner`` kwargs.

    W&B stops runs at bands: ``min_iter * eta**k``, or, given ``max_iter`` and ``s``,
    ``max_iter / eta**k`` for k = 1..s (those two win, as in W&B). Optuna's pruner takes the
    smallest band and the largest resource and makes its brackets from them.
    """
    here = ("early_terminate",)
    if not isinstance(early, dict):
        raise reader.error(here, "early_terminate must be a mapping (type: hyperband, ...)")
    if early.get("type") != "hyperband":
        raise reader.error(
            (*here, "type"),
            f"early_terminate: only type: hyperband is supported, got {early.get('type')!r}",
        )
    for key in early:
        if key not in _HYPERBAND_KEYS:
            raise reader.error(
                (*here, key), f"unknown hyperband key {key!r}{did_you_mean(key, _HYPERBAND_KEYS)}"
            )
    if "strict" in early:
        reader.warn("ignoring 'strict' (Optuna's hyperband has one stopping rule)")
    numbers: dict[str, int | None] = {}
    for key, least in (("eta", 2), ("min_iter", 1), ("max_iter", 1), ("s", 0)):
        value = early.get(key)
        if value is None and key == "eta":
            value = 3
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (not is_int(value) or value < least):
            extra = " (Optuna's reduction_factor)" if key == "eta" else ""
            raise reader.error(
                (*here, key),
                f"{key} must be a whole number of at least {least}{extra}, got {value!r}",
            )
        numbers[key] = value
    eta, min_iter, max_iter, s = (numbers[k] for k in ("eta", "min_iter", "max_iter", "s"))
    assert eta is not None
    if max_iter is not None and s is not None:
        bands = [int(max_iter / eta**k) for k in range(1, s + 1) if max_iter / eta**k >= 1]
        if not bands:
            raise reader.error(
                (*here, "s"), "hyperband has no band: max_iter / eta is below 1 (raise max_iter)"
            )
        return {"min_resource": min(bands), "max_resource": max_iter, "reduction_factor": eta}
    if min_iter is None:
        raise reader.error(here, "hyperband needs min_iter, or max_iter and s")
    if max_iter is not None and min_iter > max_iter:
        raise reader.error(
            (*here, "min_iter"), f"min_iter ({min_iter}) must not be above max_iter ({max_iter})"
        )
    return {
        "min_resource": min_iter,
        "max_resource": max_iter if max_iter is not None else "auto",
        "reduction_factor": eta,
    }


_SPEC_TEXT = re.compile(r"\s*([A-Za-z][\w-]*)\s*(?::\s*(.*?))?\s*\Z", re.DOTALL)


def _spec_from(value: Any, kind: str, reader: SweepSource) -> Any:
    """``sampler:``/``pruner:`` in tui-hpo's spec form: ``tpe``, ``tpe:{"seed": 1}`` (the name,
    then the kwargs' JSON as ``--sampler-kwargs`` takes it), or ``{name: tpe, kwargs: {...}}``."""
    from tui_hpo.control.specs import parse_kwargs, pruner_spec, sampler_spec

    make = sampler_spec if kind == "sampler" else pruner_spec
    usage = f"{kind} must be a name, NAME:{{JSON kwargs}} or {{name:, kwargs:}}, got {value!r}"
    if isinstance(value, str):
        match = _SPEC_TEXT.match(value)
        if not match:
            raise reader.error((kind,), usage)
        name, text = match.group(1), match.group(2)
        return _checked(
            lambda: make(name, parse_kwargs(text, f"{kind} {name} kwargs")), (kind,), reader
        )
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise reader.error((kind,), usage)
    for key in value:
        if key not in ("name", "kwargs"):
            raise reader.error((kind, key), f"unknown {kind} key {key!r}: it takes name, kwargs")
    kwargs = value.get("kwargs") or {}
    if isinstance(kwargs, str):
        kwargs = _checked(lambda: parse_kwargs(kwargs, f"{kind} kwargs"), (kind, "kwargs"), reader)
    if not isinstance(kwargs, dict):
        raise reader.error((kind, "kwargs"), f"{kind} kwargs must be a mapping, got {kwargs!r}")
    return _checked(lambda: make(value["name"], kwargs), (kind,), reader)


def _checked(make: Callable[[], Any], path: tuple[Any, ...], reader: SweepSource) -> Any:
    try:
        return make()
    except UserError as exc:
        raise reader.error(path, exc.message) from None


# the short form --------------------------------------------------------------------------


_FLAG_PARAM = re.compile(r"(" + NAME + r")=([a-z_]+)(?::(.*))?\Z", re.DOTALL)
_FLAG_USAGE = (
    "expected NAME=DISTRIBUTION:ARG:ARG ... (lr=log_uniform_values:1e-5:1e-1, "
    "layers=int_uniform:1:8, act=values:relu,tanh, seed=value:3)"
)


def sweep_from_flags(
    command: str,
    params: list[str],
    metrics: list[str],
    *,
    cwd: Path,
    summary: str | None = None,
) -> dict[str, Any]:
    """``--command``, ``--param`` and ``--metric`` as a sweep file's mapping (W&B's format), so
    that flags and files go through the same checks (:func:`sweep_from_mapping`) and workers
    on other machines can read the same thing (:func:`dump_sweep`). Each flag is checked here
    too, so that a mistake names the flag it is in."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"--command {command!r}: {exc}") from None
    if not words:
        raise UserError("--command is empty")
    parameters: dict[str, Any] = {}
    for text in params:
        name, spec = _flag_param(text)
        if name in parameters:
            raise UserError(f"--param {text!r}: {name!r} is given twice")
        parameters[name] = spec
    goals: dict[str, str] = {}
    for text in metrics:
        name, _, goal = text.partition(":")
        name, goal = name.strip(), goal.strip().lower() or "minimize"
        if not name or goal not in ("minimize", "maximize", "min", "max"):
            raise UserError(f"--metric {text!r}: expected NAME or NAME:minimize|maximize")
        goal = {"min": "minimize", "max": "maximize"}.get(goal, goal)
        if goals.get(name, goal) != goal:
            raise UserError(f"--metric {text!r}: {_twice(name, goals[name], goal)}")
        goals[name] = goal
    wanted = [{"name": name, "goal": goal} for name, goal in goals.items()]
    mapping: dict[str, Any] = {"command": words, "method": "bayes"}
    if parameters:
        mapping["parameters"] = parameters
    if len(wanted) == 1:
        mapping["metric"] = wanted[0]
    elif wanted:
        mapping["metrics"] = wanted
    if summary:
        mapping["summary"] = summary
    mapping["cwd"] = str(Path(cwd).expanduser().absolute())
    return mapping


def _flag_param(text: str) -> tuple[str, dict[str, Any]]:
    """``lr=log_uniform_values:1e-5:1e-1`` -> ("lr", {"distribution": ..., "min": ..., ...})."""
    usage = f"--param {text!r}: {_FLAG_USAGE}"
    match = _FLAG_PARAM.match(text.strip())
    if not match:
        raise UserError(usage)
    name, kind, rest = match.group(1), match.group(2), match.group(3)
    spec: dict[str, Any]
    if kind in ("values", "categorical"):
        if not rest:
            raise UserError(usage)
        spec = {"values": [_scalar(v.strip()) for v in rest.split(",")]}
    elif kind in ("value", "constant"):
        if rest is None:
            raise UserError(usage)
        spec = {"value": _scalar(rest)}
    elif kind not in PARAM_KEYS:
        hint = did_you_mean(kind, (*DISTRIBUTIONS, "values", "value"))
        raise UserError(f"--param {text!r}: unknown distribution {kind!r}{hint}")
    else:
        parts = (rest or "").split(":") if rest else []
        keys = (
            ("mu", "sigma") if kind in NORMALS else ("a", "b") if kind in BETAS else ("min", "max")
        )
        keys += ("q",) if kind.startswith("q_") else ()
        if len(parts) < 2 or len(parts) > len(keys):
            raise UserError(usage)
        spec = {"distribution": kind}
        for key, part in zip(keys, parts, strict=False):
            value = _scalar(part.strip())
            if not is_number(value):
                raise UserError(f"--param {text!r}: {key} {part!r} is not a number")
            spec[key] = value
    param(name, spec, ("parameters", name), SweepSource(f"--param {text!r}"))
    return name, spec


def _scalar(text: str) -> Any:
    """A word from a flag as YAML would read it: 3 -> int, 1e-3 -> float, true -> bool."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"
