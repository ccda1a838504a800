"""Reading a W&B sweep configuration file (and ``--command`` flags) into a ``Sweep``.

The file is read as W&B reads it: ``program``, ``command`` and its macros, ``method``,
``metric``, ``parameters`` (every W&B distribution), ``early_terminate`` (hyperband),
``run_cap`` and ``name``. tui-hpo's own keys say what W&B can't: several ``metrics``,
``sampler``/``pruner`` in tui-hpo's spec form, ``workers``, ``gpus``, ``trial_timeout``,
``summary``, ``keep``, ``kill_grace`` and ``cwd``. docs/sweeps.md has the whole format.

Every mistake is one line naming the file and the line of the key at fault, found before
anything is written anywhere.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui_hpo.errors import UserError, one_line
from tui_hpo.runtime.sweep_model import DEFAULT_COMMAND, Metric, Param, Sweep

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
IGNORED_KEYS = {
    "entity": "a W&B account setting",
    "project": "a W&B project setting",
    "controller": "W&B's sweep controller",
    "imports": "W&B's package list",
    "job": "a W&B launch job",
    "image_uri": "a W&B launch image",
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
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
)
SIGMAS = 5.0
"""Normal distributions are searched within mu ± 5 sigma (Optuna needs bounds)."""
MACROS = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
)
_MACRO = re.compile(r"\$\{([^}]*)\}")
_PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}]*)\}")
MAX_GRID_INTS = 1000


class _Where:
    """Says where a key is: ``FILE:LINE:`` for a file, a flag's name for flags."""

    def __init__(self, label: str, lines: dict[tuple[Any, ...], int] | None = None) -> None:
        self.label = label
        self.lines = lines or {}

    def error(self, path: tuple[Any, ...], message: str) -> UserError:
        line = None
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                break
        at = f"{self.label}:{line}" if line is not None else self.label
        return UserError(f"{at}: {message}")


# reading the file --------------------------------------------------------------------------


def load_sweep(path: Path, *, cwd: Path | None = None) -> Sweep:
    """The sweep file at ``path``, checked; ``cwd`` overrides where its trials run."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"can't read sweep file {path}: {exc.strerror or exc}") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise UserError(f"{path}:{line} YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep file is a mapping (program:, method:, parameters:, ...)")
    lines: dict[tuple[Any, ...], int] = {}
    _record_lines(node, (), lines)
    return sweep_from_mapping(data, source=path, where=_Where(str(path), lines), cwd=cwd)


def _record_lines(node: Any, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            lines[sub] = key.start_mark.line + 1
            _record_lines(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, i), lines)


def dump_sweep(mapping: dict[str, Any], path: Path) -> None:
    """Write a sweep (one made from flags) for workers to read, wherever they run."""
    import yaml

    path.write_text(yaml.safe_dump(mapping, sort_keys=False))


# the mapping ---------------------------------------------------------------------------------


def sweep_from_mapping(
    data: dict[str, Any],
    *,
    source: Path | None = None,
    where: _Where | None = None,
    cwd: Path | None = None,
) -> Sweep:
    """Check a sweep's mapping (a file's, or what flags make) and build the ``Sweep``."""
    where = where or _Where("--command")
    warnings: list[str] = []
    for key in data:
        if key in W_AND_B_KEYS or key in OWN_KEYS:
            continue
        if key in IGNORED_KEYS:
            warnings.append(
                f"{where.label}: ignoring {key!r} ({IGNORED_KEYS[key]}; tui-hpo keeps "
                "everything in its storage)"
            )
            continue
        known = (*W_AND_B_KEYS, *OWN_KEYS, *IGNORED_KEYS)
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise where.error((key,), f"unknown key {key!r}{hint}")

    folder = source.parent if source is not None else Path.cwd()
    if cwd is None and data.get("cwd") is not None:
        cwd = Path(_text(data, "cwd", where)).expanduser()
        if not cwd.is_absolute():
            cwd = folder / cwd
    cwd = (cwd or folder).absolute()
    if not cwd.is_dir():
        raise where.error(("cwd",), f"folder {cwd} not found (where trials would run)")

    params = _parameters(data.get("parameters"), where)
    metrics, target = _metrics(data, where)
    program = data.get("program")
    if program is not None and not isinstance(program, str):
        raise where.error(("program",), f"program must be a path, got {program!r}")
    command = _command(data.get("command"), where)
    _check_command(command, program, params, where, cwd)

    summary = data.get("summary", "last")
    if summary not in ("last", "min", "max"):
        raise where.error(("summary",), f"summary must be last, min or max, got {summary!r}")
    keep = data.get("keep", [])
    if isinstance(keep, str):
        keep = [keep]
    if not isinstance(keep, list) or not all(isinstance(k, str) and k for k in keep):
        raise where.error(("keep",), f"keep must be a list of metric names, got {keep!r}")
    method = data.get("method")
    sampler, grid_size = _sampler(data, method, params, where)
    pruner = _pruner(data, where)
    run_cap = _positive_int(data, "run_cap", where)
    if run_cap is None:
        run_cap = grid_size
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise where.error(("name",), f"name must be text, got {name!r}")
    gpus = data.get("gpus")
    if gpus is not None:
        if isinstance(gpus, list):
            gpus = ",".join(str(g) for g in gpus)
        gpus = str(gpus)
    trial_timeout = _positive_number(data, "trial_timeout", where)
    kill_grace = data.get("kill_grace", 10.0)
    if isinstance(kill_grace, bool) or not isinstance(kill_grace, (int, float)) or kill_grace < 0:
        raise where.error(("kill_grace",), f"kill_grace must be seconds >= 0, got {kill_grace!r}")
    return Sweep(
        source=source,
        command=command,
        cwd=cwd,
        params=params,
        metrics=metrics,
        program=program,
        keep=tuple(k for k in keep if k not in {m.name for m in metrics}),
        summary=summary,
        target=target,
        name=name,
        method=method,
        sampler=sampler,
        pruner=pruner,
        run_cap=run_cap,
        grid_size=grid_size,
        workers=_positive_int(data, "workers", where),
        gpus=gpus,
        trial_timeout=trial_timeout,
        kill_grace=float(kill_grace),
        warnings=tuple(warnings),
        raw=dict(data),
    )


def _text(data: dict[str, Any], key: str, where: _Where) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise where.error((key,), f"{key} must be text, got {value!r}")
    return value


def _positive_int(data: dict[str, Any], key: str, where: _Where) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error((key,), f"{key} must be a whole number of at least 1, got {value!r}")
    return value


def _positive_number(data: dict[str, Any], key: str, where: _Where) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise where.error((key,), f"{key} must be seconds > 0, got {value!r}")
    return float(value)


# metrics -----------------------------------------------------------------------------------


def _metrics(data: dict[str, Any], where: _Where) -> tuple[tuple[Metric, ...], float | None]:
    found: list[tuple[Metric, tuple[Any, ...]]] = []
    target = None
    single = data.get("metric")
    if single is not None:
        if isinstance(single, str):
            single = {"name": single}
        if not isinstance(single, dict):
            raise where.error(("metric",), "metric must be a mapping with name: and goal:")
        found.append((_metric(single, ("metric",), where), ("metric",)))
        if single.get("target") is not None:
            target = single["target"]
            if isinstance(target, bool) or not isinstance(target, (int, float)):
                raise where.error(("metric", "target"), f"target must be a number: {target!r}")
            target = float(target)
    several = data.get("metrics")
    if several is not None:
        if not isinstance(several, list) or not several:
            raise where.error(("metrics",), "metrics must be a list of {name:, goal:}")
        for i, item in enumerate(several):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict):
                raise where.error(("metrics", i), "each metric is {name:, goal:}")
            found.append((_metric(item, ("metrics", i), where), ("metrics", i)))
    if not found:
        raise where.error((), "no metric: say which printed metric to optimize (metric: name:)")
    goals: dict[str, str] = {}
    out: list[Metric] = []
    for metric, path in found:
        if metric.name in goals:
            if goals[metric.name] != metric.goal:
                raise where.error(
                    path,
                    f"metric {metric.name!r} is named twice with different goals "
                    f"({goals[metric.name]} and {metric.goal})",
                )
            continue
        goals[metric.name] = metric.goal
        out.append(metric)
    if target is not None and len(out) > 1:
        raise where.error(("metric", "target"), "target needs a single metric")
    return tuple(out), target


def _metric(item: dict[str, Any], path: tuple[Any, ...], where: _Where) -> Metric:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error(path, "a metric needs a name:")
    goal = str(item.get("goal", "minimize")).lower()
    goal = {"min": "minimize", "max": "maximize"}.get(goal, goal)
    if goal not in ("minimize", "maximize"):
        raise where.error((*path, "goal"), f"goal must be minimize or maximize, got {goal!r}")
    unknown = set(item) - {"name", "goal", "target"}
    if unknown:
        raise where.error((*path, sorted(unknown)[0]), f"unknown metric key {sorted(unknown)[0]!r}")
    return Metric(name.strip(), goal)  # type: ignore[arg-type]


# parameters --------------------------------------------------------------------------------


def _parameters(data: Any, where: _Where) -> dict[str, Param]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise where.error(("parameters",), "parameters must be a mapping of name: {...}")
    out: dict[str, Param] = {}
    _flatten(data, ("parameters",), "", out, where)
    return out


def _flatten(
    data: dict[str, Any], path: tuple[Any, ...], prefix: str, out: dict[str, Param], where: _Where
) -> None:
    for name, spec in data.items():
        full = f"{prefix}{name}"
        sub = (*path, name)
        if isinstance(spec, dict) and "parameters" in spec:
            if not isinstance(spec["parameters"], dict):
                raise where.error((*sub, "parameters"), "nested parameters must be a mapping")
            _flatten(spec["parameters"], (*sub, "parameters"), f"{full}.", out, where)
            continue
        if not isinstance(spec, dict):
            raise where.error(sub, f"parameter {full!r} must be a mapping (values:, min:, ...)")
        out[full] = _param(full, spec, sub, where)


def _param(name: str, spec: dict[str, Any], path: tuple[Any, ...], where: _Where) -> Param:
    from optuna.distributions import CategoricalDistribution

    known = {"distribution", "value", "values", "probabilities", "min", "max", "mu", "sigma", "q"}
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise where.error((*path, key), f"unknown key {key!r} in parameter {name!r}{hint}")
    kind = spec.get("distribution")
    if kind is None:
        kind = _default_distribution(spec)
        if kind is None:
            raise where.error(
                path, f"parameter {name!r} needs value:, values:, min:/max: or mu:/sigma:"
            )
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), DISTRIBUTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise where.error(
            (*path, "distribution"), f"unknown distribution {kind!r} for {name!r}{hint}"
        )
    line = where.lines.get(path)

    def fail(key: str, message: str) -> UserError:
        return where.error((*path, key) if key in spec else path, f"parameter {name!r}: {message}")

    if kind == "constant":
        if "value" not in spec:
            raise fail("distribution", "constant needs value:")
        return Param(name, CategoricalDistribution([_choice(spec["value"], fail)]), line=line)
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise fail("values", "categorical needs a non-empty values: list")
        choices = [_choice(v, fail) for v in values]
        if len(set(map(repr, choices))) != len(choices):
            raise fail("values", "values repeat")
        probabilities = spec.get("probabilities")
        prior = None
        if probabilities is not None:
            prior = _weighted(choices, probabilities, fail)
        return Param(name, CategoricalDistribution(choices), prior=prior, line=line)
    if "values" in spec:
        raise fail("values", f"values: can't go with distribution {kind} (it draws from bounds)")
    return _numeric(name, kind, spec, fail, line)


def _default_distribution(spec: dict[str, Any]) -> str | None:
    """W&B's choice when a parameter names no distribution."""
    if "values" in spec:
        return "categorical"
    if "value" in spec:
        return "constant"
    if "min" in spec and "max" in spec:
        ints = all(
            isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max")
        )
        return "int_uniform" if ints else "uniform"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(value: Any, fail: Callable[[str, str], UserError]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise fail("values", f"values must be numbers, text, true/false or null, got {value!r}")


def _weighted(
    choices: list[Any], probabilities: Any, fail: Callable[[str, str], UserError]
) -> Callable[[Any], Any]:
    if not isinstance(probabilities, list) or len(probabilities) != len(choices):
        raise fail("probabilities", "probabilities needs one number per value")
    if not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 0 for p in probabilities
    ):
        raise fail("probabilities", "probabilities must be numbers >= 0")
    if abs(sum(probabilities) - 1.0) > 1e-6:
        raise fail("probabilities", f"probabilities sum to {sum(probabilities):g}, not 1")
    weights = [float(p) for p in probabilities]

    def draw(rng: Any) -> Any:
        return choices[int(rng.choice(len(choices), p=weights))]

    return draw


def _number(spec: dict[str, Any], key: str, fail: Callable[[str, str], UserError]) -> float:
    if key not in spec:
        raise fail("distribution", f"{spec.get('distribution', 'it')} needs {key}:")
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise fail(key, f"{key} must be a number, got {value!r}")
    return float(value)


def _numeric(
    name: str, kind: str, spec: dict[str, Any], fail: Callable[[str, str], UserError], line: Any
) -> Param:
    from optuna.distributions import FloatDistribution, IntDistribution

    q = _number(spec, "q", fail) if "q" in spec or kind.startswith("q_") else None
    if kind.startswith("q_") and "q" not in spec:
        q = 1.0  # W&B's default quantum
    if q is not None and q <= 0:
        raise fail("q", f"q must be more than 0, got {q:g}")
    if kind in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu = float(spec.get("mu", 0.0))
        sigma = float(spec.get("sigma", 1.0))
        if sigma <= 0:
            raise fail("sigma", f"sigma must be more than 0, got {sigma:g}")
        low, high = mu - SIGMAS * sigma, mu + SIGMAS * sigma
        logged = kind.endswith("log_normal")
        if logged:
            low, high = math.exp(low), math.exp(high)

        def draw_normal(rng: Any) -> float:
            x = float(rng.normal(mu, sigma))
            x = math.exp(x) if logged else x
            if q is not None:
                x = round(x / q) * q
            return min(max(x, low), high)

        return Param(name, FloatDistribution(low, high, log=logged), draw_normal, line)
    low, high = _number(spec, "min", fail), _number(spec, "max", fail)
    if low > high or (low == high and kind != "int_uniform"):
        raise fail("min", f"min ({low:g}) must be below max ({high:g})")
    if kind == "int_uniform":
        if low != int(low) or high != int(high):
            raise fail("min", "int_uniform needs whole-number min and max")
        return Param(name, IntDistribution(int(low), int(high)), line=line)
    if kind in ("log_uniform", "q_log_uniform", "inv_log_uniform"):
        low, high = math.exp(low), math.exp(high)  # W&B: min and max are exponents here
        kind = kind + "_values"
    if (
        kind in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
        and low <= 0
    ):
        raise fail("min", f"{kind} needs min > 0, got {low:g}")
    if kind == "uniform":
        return Param(name, FloatDistribution(low, high), line=line)
    if kind == "log_uniform_values":
        return Param(name, FloatDistribution(low, high, log=True), line=line)
    if kind == "q_uniform":
        assert q is not None
        steps = (high - low) / q
        if abs(steps - round(steps)) < 1e-9:
            return Param(name, FloatDistribution(low, high, step=q), line=line)

        def draw_q(rng: Any) -> float:
            return min(max(round(float(rng.uniform(low, high)) / q) * q, low), high)

        return Param(name, FloatDistribution(low, high), draw_q, line)
    if kind == "q_log_uniform_values":
        assert q is not None

        def draw_q_log(rng: Any) -> float:
            x = math.exp(float(rng.uniform(math.log(low), math.log(high))))
            return min(max(round(x / q) * q, low), high)

        return Param(name, FloatDistribution(low, high, log=True), draw_q_log, line)
    # inv_log_uniform_values: 1/X is log-uniform over [1/max, 1/min]

    def draw_inv(rng: Any) -> float:
        x = 1.0 / math.exp(float(rng.uniform(math.log(1.0 / high), math.log(1.0 / low))))
        return min(max(x, low), high)

    return Param(name, FloatDistribution(low, high), draw_inv, line)


# the command -------------------------------------------------------------------------------


def _command(value: Any, where: _Where) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_COMMAND
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise where.error(("command",), "command must be a list of words")
    return tuple(value)


def _check_command(
    command: tuple[str, ...],
    program: str | None,
    params: dict[str, Param],
    where: _Where,
    cwd: Path,
) -> None:
    uses_program = False
    for i, token in enumerate(command):
        for macro in _MACRO.findall(token):
            if macro not in MACROS:
                raise where.error(("command", i), f"unknown macro ${{{macro}}}")
            if macro == "program":
                uses_program = True
                if program is None:
                    raise where.error(("command", i), "command uses ${program} but no program:")
            if macro.startswith("args") and macro != "args_json" and token != f"${{{macro}}}":
                raise where.error(("command", i), f"${{{macro}}} must be a word of its own")
        for name in _PLACEHOLDER.findall(token):
            if name not in params:
                known = ", ".join(params) or "none"
                raise where.error(
                    ("command", i), f"{{{name}}} is not a parameter (parameters: {known})"
                )
    if uses_program and program is not None:
        path = Path(program).expanduser()
        if not (path if path.is_absolute() else cwd / path).is_file():
            raise where.error(("program",), f"program {program!r} not found in {cwd}")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


_FILL = re.compile(r"\$\{([^}]*)\}|(?<!\$)\{([^{}]*)\}")


def _fill(match: re.Match[str], words: dict[str, str], values: dict[str, Any]) -> str:
    """One pass over a word: what a macro expands to is never read as a placeholder."""
    macro, name = match.group(1), match.group(2)
    return words[macro] if macro is not None else _format(values[name])


def build_argv(
    sweep: Sweep, values: dict[str, Any], *, interpreter: str = sys.executable
) -> tuple[list[str], dict[str, str]]:
    """The program's argv, W&B's macros and tui-hpo's ``{param}`` placeholders filled in."""
    args = [f"--{k}={_format(v)}" for k, v in values.items()]
    lists = {
        "args": args,
        "args_no_hyphens": [f"{k}={_format(v)}" for k, v in values.items()],
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{k}={_format(v)}"
            for k, v in values.items()
            if v is not False
        ],
    }
    words = {
        "env": "/usr/bin/env" if os.path.exists("/usr/bin/env") else "",
        "interpreter": interpreter,
        "program": sweep.program or "",
        "args_json": json.dumps(values),
    }
    argv: list[str] = []
    for token in sweep.command:
        whole = _MACRO.fullmatch(token)
        if whole and whole.group(1) in lists:
            argv.extend(lists[whole.group(1)])
            continue
        if whole and whole.group(1) == "env":
            if words["env"]:
                argv.append(words["env"])
            continue
        argv.append(_FILL.sub(lambda m: _fill(m, words, values), token))
    return argv, {}


# sampler and pruner --------------------------------------------------------------------------


def _sampler(
    data: dict[str, Any], method: Any, params: dict[str, Param], where: _Where
) -> tuple[Any, int | None]:
    from tui_hpo.control.specs import sampler_spec

    grid_size = None
    spec = None
    if method is not None:
        if method not in METHODS:
            raise where.error(("method",), f"method must be grid, random or bayes, got {method!r}")
        if method == "grid":
            space: dict[str, list[Any]] = {}
            for name, param in params.items():
                space[name] = _grid_values(param, where)
            grid_size = math.prod(len(v) for v in space.values()) if space else None
            spec = _checked(
                lambda: sampler_spec("grid", {"search_space": space}), ("method",), where
            )
        else:
            spec = _checked(lambda: sampler_spec(METHODS[method]), ("method",), where)
    if data.get("sampler") is not None:
        spec = _spec_from(data["sampler"], "sampler", where)
    if spec is None:
        raise where.error((), "no method: say grid, random or bayes (or sampler:)")
    return spec, grid_size


def _grid_values(param: Param, where: _Where) -> list[Any]:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and dist.high - dist.low < MAX_GRID_INTS:
        return list(range(dist.low, dist.high + 1))
    raise where.error(
        ("parameters", *param.name.split(".")),
        f"method grid needs values: for {param.name!r} (or an int_uniform of at most "
        f"{MAX_GRID_INTS} values)",
    )


def _pruner(data: dict[str, Any], where: _Where) -> Any:
    from tui_hpo.control.specs import pruner_spec

    if data.get("pruner") is not None:
        return _spec_from(data["pruner"], "pruner", where)
    early = data.get("early_terminate")
    if early is None:
        return None
    if not isinstance(early, dict) or early.get("type") != "hyperband":
        raise where.error(
            ("early_terminate",), "early_terminate: only type: hyperband is supported"
        )
    eta = early.get("eta", 3)
    min_iter, max_iter, s = early.get("min_iter"), early.get("max_iter"), early.get("s")
    for key, value in (("eta", eta), ("min_iter", min_iter), ("max_iter", max_iter), ("s", s)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise where.error(("early_terminate", key), f"{key} must be a whole number >= 1")
    if eta < 2:
        raise where.error(("early_terminate", "eta"), "eta must be at least 2")
    if min_iter is None and max_iter is not None and s is not None:
        min_iter = max(1, round(max_iter / eta**s))
    kwargs: dict[str, Any] = {
        "min_resource": min_iter or 1,
        "max_resource": max_iter if max_iter is not None else "auto",
        "reduction_factor": eta,
    }
    return _checked(lambda: pruner_spec("hyperband", kwargs), ("early_terminate",), where)


def _spec_from(value: Any, kind: str, where: _Where) -> Any:
    """``sampler:``/``pruner:`` in tui-hpo's form: a name, or {name:, kwargs:}."""
    from tui_hpo.control.specs import pruner_spec, sampler_spec

    make = sampler_spec if kind == "sampler" else pruner_spec
    if isinstance(value, str):
        return _checked(lambda: make(value), (kind,), where)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        kwargs = value.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise where.error((kind, "kwargs"), f"{kind} kwargs must be a mapping")
        return _checked(lambda: make(value["name"], kwargs), (kind,), where)
    raise where.error((kind,), f"{kind} must be a name or {{name:, kwargs:}}")


def _checked(make: Callable[[], Any], path: tuple[Any, ...], where: _Where) -> Any:
    try:
        return make()
    except UserError as exc:
        raise where.error(path, exc.message) from None


# the short form --------------------------------------------------------------------------


_FLAG_PARAM = re.compile(r"^([A-Za-z_][\w.\-]*)=([a-z_]+)(?::(.*))?$")


def sweep_from_flags(
    command: str,
    params: list[str],
    metrics: list[str],
    *,
    cwd: Path,
    summary: str | None = None,
) -> dict[str, Any]:
    """``--command``, ``--param`` and ``--metric`` as a sweep file's mapping (W&B's format),
    so that flags and files go through the same checks and workers read the same thing."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"--command {command!r}: {exc}") from None
    if not words:
        raise UserError("--command is empty")
    parameters: dict[str, Any] = {}
    for text in params:
        parameters.update(_flag_param(text))
    wanted: list[dict[str, str]] = []
    for text in metrics:
        name, _, goal = text.partition(":")
        if not name.strip():
            raise UserError(f"--metric {text!r}: expected NAME[:minimize|maximize]")
        wanted.append({"name": name.strip(), "goal": goal.strip() or "minimize"})
    mapping: dict[str, Any] = {"command": words, "method": "bayes", "parameters": parameters}
    if len(wanted) == 1:
        mapping["metric"] = wanted[0]
    else:
        mapping["metrics"] = wanted
    if summary:
        mapping["summary"] = summary
    mapping["cwd"] = str(cwd)
    return mapping


def _flag_param(text: str) -> dict[str, Any]:
    usage = (
        f"--param {text!r}: expected NAME=DISTRIBUTION:ARG:... "
        "(lr=log_uniform_values:1e-5:1e-1, layers=int_uniform:1:8, act=values:relu,tanh, "
        "seed=value:3)"
    )
    match = _FLAG_PARAM.match(text.strip())
    if not match:
        raise UserError(usage)
    name, kind, rest = match.group(1), match.group(2), match.group(3) or ""
    if kind in ("values", "categorical"):
        return {name: {"values": [_scalar(v) for v in rest.split(",") if v != ""]}}
    if kind in ("value", "constant"):
        return {name: {"value": _scalar(rest)}}
    parts = [p for p in rest.split(":") if p != ""]
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(kind, DISTRIBUTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"--param {text!r}: unknown distribution {kind!r}{hint}")
    keys = ("mu", "sigma", "q") if kind.endswith("normal") else ("min", "max", "q")
    if len(parts) < 2 or len(parts) > 3:
        raise UserError(usage)
    spec: dict[str, Any] = {"distribution": kind}
    for key, part in zip(keys, parts, strict=False):
        value = _scalar(part)
        if isinstance(value, str):
            raise UserError(f"--param {text!r}: {key} {part!r} is not a number")
        spec[key] = value
    return {name: spec}


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
