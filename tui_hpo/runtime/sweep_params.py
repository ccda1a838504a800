"""One W&B sweep ``parameters`` entry as a ``Param``: an Optuna distribution, plus W&B's own
draw (the prior) where Optuna's would differ.

Every W&B distribution is here, with the keys each takes and the checks of their values, so
that ``runtime.sweeps`` (the rest of the file) stays short. Nested ``parameters`` become dotted
names, as W&B passes them.

Optuna and numpy are imported inside the functions: ``tui-hpo --help`` must not pay for them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tui_hpo.errors import UserError, one_line
from tui_hpo.runtime.sweep_model import Param
from tui_hpo.runtime.sweep_source import SweepSource

if TYPE_CHECKING:
    import numpy as np

PARAM_KEYS: dict[str, frozenset[str]] = {
    "constant": frozenset({"value"}),
    "categorical": frozenset({"values", "probabilities"}),
    "int_uniform": frozenset({"min", "max"}),
    "uniform": frozenset({"min", "max"}),
    "q_uniform": frozenset({"min", "max", "q"}),
    "log_uniform": frozenset({"min", "max"}),
    "log_uniform_values": frozenset({"min", "max"}),
    "q_log_uniform": frozenset({"min", "max", "q"}),
    "q_log_uniform_values": frozenset({"min", "max", "q"}),
    "inv_log_uniform": frozenset({"min", "max"}),
    "inv_log_uniform_values": frozenset({"min", "max"}),
    "normal": frozenset({"mu", "sigma"}),
    "q_normal": frozenset({"mu", "sigma", "q"}),
    "log_normal": frozenset({"mu", "sigma"}),
    "q_log_normal": frozenset({"mu", "sigma", "q"}),
    "beta": frozenset({"a", "b"}),
    "q_beta": frozenset({"a", "b", "q"}),
}
"""Each W&B distribution and the keys it takes (W&B's schema allows no others)."""
DISTRIBUTIONS = tuple(PARAM_KEYS)
_ALIASES = {"categorical_w_probabilities": "categorical"}
_ALL_PARAM_KEYS = frozenset().union(*PARAM_KEYS.values()) | {"distribution"}
NORMALS = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
BETAS = frozenset({"beta", "q_beta"})
_EXPONENTS = frozenset({"log_uniform", "q_log_uniform", "inv_log_uniform"})
"""W&B's older log distributions: ``min`` and ``max`` are natural-log exponents."""
_LOG_SCALE = frozenset(
    {
        "log_uniform",
        "log_uniform_values",
        "q_log_uniform",
        "q_log_uniform_values",
        "inv_log_uniform",
        "inv_log_uniform_values",
        "log_normal",
        "q_log_normal",
    }
)
"""Searched on a log scale by Optuna. ``inv_log_uniform`` is among them: if 1/X is log-uniform
on [1/max, 1/min] then log X is uniform on [log min, log max], the same law as log-uniform."""

SIGMAS = 5.0
"""Normal distributions are searched within mu ± 5 sigma (Optuna needs bounds)."""
NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_PARAM_NAME = re.compile(NAME + r"\Z")
"""W&B's pattern for parameter names: they become ``--name=value`` flags."""


# parameters --------------------------------------------------------------------------------


def parameters(data: Any, reader: SweepSource) -> dict[str, Param]:
    if data is None:
        return {}
    if not isinstance(data, dict) or not data:
        raise reader.error(("parameters",), "parameters must be a non-empty mapping of name: {...}")
    out: dict[str, Param] = {}
    _flatten(data, ("parameters",), "", out, reader)
    return out


def _flatten(
    data: dict[Any, Any],
    path: tuple[Any, ...],
    prefix: str,
    out: dict[str, Param],
    reader: SweepSource,
) -> None:
    """Nested ``parameters`` become dotted names (``optimizer.lr``), as W&B passes them."""
    for name, spec in data.items():
        sub = (*path, name)
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise reader.error(
                sub, f"parameter name {name!r}: use letters, digits, _ . - (a letter or _ first)"
            )
        full = f"{prefix}{name}"
        if isinstance(spec, dict) and "parameters" in spec:
            extra = [k for k in spec if k != "parameters"]
            if extra:
                raise reader.error(
                    (*sub, extra[0]),
                    f"parameter {full!r} holds parameters:, so it takes no {extra[0]!r}",
                )
            nested = spec["parameters"]
            if not isinstance(nested, dict) or not nested:
                raise reader.error((*sub, "parameters"), "nested parameters must be a mapping")
            _flatten(nested, (*sub, "parameters"), f"{full}.", out, reader)
            continue
        if not isinstance(spec, dict):
            raise reader.error(
                sub, f"parameter {full!r} must be a mapping (values:, min:/max:, ...), not {spec!r}"
            )
        if full in out:
            raise reader.error(sub, f"parameter {full!r} is given twice (once nested)")
        out[full] = param(full, spec, sub, reader)


_Fail = Callable[[str, str], UserError]


def param(name: str, spec: dict[Any, Any], path: tuple[Any, ...], reader: SweepSource) -> Param:
    def fail(key: str, message: str) -> UserError:
        return reader.error((*path, key) if key in spec else path, f"parameter {name!r}: {message}")

    for key in spec:
        if key not in _ALL_PARAM_KEYS:
            raise fail(key, f"unknown key {key!r}{did_you_mean(key, sorted(_ALL_PARAM_KEYS))}")
    kind = spec.get("distribution")
    if kind is None:
        kind = _default_distribution(spec)
        if kind is None:
            raise fail("", "needs value:, values:, min: and max:, or mu: and sigma:")
    elif not isinstance(kind, str) or _ALIASES.get(kind, kind) not in PARAM_KEYS:
        raise fail(
            "distribution", f"unknown distribution {kind!r}{did_you_mean(kind, DISTRIBUTIONS)}"
        )
    kind = _ALIASES.get(kind, kind)
    allowed = PARAM_KEYS[kind] | {"distribution"}
    for key in spec:
        if key in allowed:
            continue
        if key == "values":
            raise fail("values", f"values: can't go with distribution {kind} ({_draws(kind)})")
        takes = ", ".join(sorted(PARAM_KEYS[kind]))
        raise fail(key, f"{key}: doesn't apply to distribution {kind} (it takes {takes})")
    line = reader.line(path)
    from optuna.distributions import CategoricalDistribution

    if kind == "constant":
        if "value" not in spec:
            raise fail("distribution", "constant needs value:")
        return Param(name, CategoricalDistribution([_choice(spec["value"], fail)]), line=line)
    if kind == "categorical":
        choices = _choices(spec.get("values"), fail)
        probabilities = spec.get("probabilities")
        prior = None if probabilities is None else _weighted(choices, probabilities, fail)
        return Param(name, CategoricalDistribution(choices), prior, line)
    try:
        return _numeric(name, kind, spec, fail, line)
    except ValueError as exc:  # Optuna's own check of bounds this module let through
        raise fail("distribution", one_line(exc)) from None


def _default_distribution(spec: dict[Any, Any]) -> str | None:
    """W&B's choice when a parameter names no distribution."""
    if "values" in spec:
        return "categorical"
    if "value" in spec:
        return "constant"
    if "min" in spec and "max" in spec:
        return "int_uniform" if is_int(spec["min"]) and is_int(spec["max"]) else "uniform"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    return None


def _draws(kind: str) -> str:
    if kind == "constant":
        return "it takes value:"
    if kind in NORMALS:
        return "it draws from mu and sigma"
    if kind in BETAS:
        return "it draws from a and b"
    return "it draws between min and max"


def _choice(value: Any, fail: _Fail) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise fail("values", f"values must be numbers, text, true/false or null, got {value!r}")


def _choices(values: Any, fail: _Fail) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise fail("values", "values: must be a non-empty list")
    choices = [_choice(v, fail) for v in values]
    seen: dict[Any, Any] = {}
    for value in choices:
        if value in seen:
            # Optuna finds a choice by ==, so 1, 1.0 and true would all store the first.
            same = "" if repr(seen[value]) == repr(value) else f" ({seen[value]!r} and {value!r})"
            raise fail("values", f"values repeat {value!r}{same}: Optuna can't tell them apart")
        seen[value] = value
    return choices


def _weighted(choices: list[Any], probabilities: Any, fail: _Fail) -> Callable[[Any], Any]:
    if not isinstance(probabilities, list) or len(probabilities) != len(choices):
        raise fail("probabilities", f"probabilities needs one number per value ({len(choices)})")
    if not all(is_number(p) and p >= 0 for p in probabilities):
        raise fail("probabilities", "probabilities must be numbers >= 0")
    total = float(sum(probabilities))
    if abs(total - 1.0) > 1e-6:
        raise fail("probabilities", f"probabilities sum to {total:g}, not 1")
    weights = [float(p) / total for p in probabilities]  # numpy wants 1 within 1e-8

    def draw(rng: np.random.RandomState) -> Any:
        return choices[int(rng.choice(len(choices), p=weights))]

    return draw


def _number(spec: dict[Any, Any], key: str, fail: _Fail, default: float | None = None) -> float:
    if key not in spec:
        if default is not None:
            return default
        raise fail("distribution", f"{spec.get('distribution', 'it')} needs {key}:")
    value = spec[key]
    if not is_number(value) or not math.isfinite(value):
        raise fail(key, f"{key} must be a number, got {value!r}")
    return value


def _exp(value: float, key: str, fail: _Fail) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        raise fail(key, f"e^{value:g} is too large for a float") from None


def _numeric(name: str, kind: str, spec: dict[Any, Any], fail: _Fail, line: int | None) -> Param:
    """A W&B distribution as Optuna bounds, plus W&B's own draw where Optuna's would differ."""
    from optuna.distributions import FloatDistribution, IntDistribution

    q: float | None = None
    if kind.startswith("q_"):
        q = spec.get("q", 1.0)  # W&B's default is the float 1.0: its values stay floats
        if not is_number(q) or not math.isfinite(q) or q <= 0:
            raise fail("q", f"q must be a number above 0, got {q!r}")
    base: Callable[[Any], float]
    if kind in NORMALS:
        mu, sigma = _number(spec, "mu", fail, 0.0), _number(spec, "sigma", fail, 1.0)
        if sigma <= 0:
            raise fail("sigma", f"sigma must be more than 0, got {sigma:g}")
        low, high = mu - SIGMAS * sigma, mu + SIGMAS * sigma
        logged = "log" in kind
        if logged:
            low, high = _exp(low, "mu", fail), _exp(high, "mu", fail)
            if low <= 0:
                raise fail("mu", f"e^(mu - {SIGMAS:g} sigma) is 0 as a float; raise mu")

        def base(rng: Any) -> float:
            x = float(rng.normal(mu, sigma))
            return math.exp(min(x, 700.0)) if logged else x

    elif kind in BETAS:
        a, b = _number(spec, "a", fail, 1.0), _number(spec, "b", fail, 1.0)
        for key, value in (("a", a), ("b", b)):
            if value <= 0:
                raise fail(key, f"{key} must be more than 0, got {value:g}")
        low, high = 0.0, 1.0

        def base(rng: Any) -> float:
            return float(rng.beta(a, b))

    else:
        low, high = _number(spec, "min", fail), _number(spec, "max", fail)
        if kind == "int_uniform":
            if low != int(low) or high != int(high):
                raise fail("min", f"int_uniform needs whole numbers, got {low!r} and {high!r}")
            if low > high:
                raise fail("min", f"min ({low:g}) must not be above max ({high:g})")
            return Param(name, IntDistribution(int(low), int(high)), line=line)
        if low >= high:
            raise fail("min", f"min ({low:g}) must be below max ({high:g})")
        if kind == "inv_log_uniform":  # log(1/X) uniform in [min, max]
            low, high = _exp(-high, "max", fail), _exp(-low, "min", fail)
        elif kind in _EXPONENTS:
            low, high = _exp(low, "min", fail), _exp(high, "max", fail)
        elif kind.endswith("_values") and low <= 0:
            raise fail("min", f"{kind} needs min > 0, got {low:g}")
        if low <= 0 and kind in _EXPONENTS:
            raise fail("min", f"{kind}: the lower bound is 0 as a float; narrow min and max")
        base = _bounded_base(kind, low, high)
    if q is not None:
        return _quantized(name, kind, low, high, q, base, fail, line)
    if kind in ("uniform", "log_uniform", "log_uniform_values"):
        return Param(name, FloatDistribution(low, high, log=kind in _LOG_SCALE), line=line)
    # normal, log_normal, beta, inv_log_uniform*: W&B's draw, kept inside Optuna's bounds.
    lo, hi = low, high

    def clipped(rng: Any) -> float:
        return min(max(base(rng), lo), hi)

    return Param(name, FloatDistribution(low, high, log=kind in _LOG_SCALE), clipped, line)


def _bounded_base(kind: str, low: float, high: float) -> Callable[[Any], float]:
    if kind.startswith("inv_"):
        inv_low, inv_high = math.log(1.0 / high), math.log(1.0 / low)
        return lambda rng: 1.0 / math.exp(float(rng.uniform(inv_low, inv_high)))
    if "log" in kind:
        log_low, log_high = math.log(low), math.log(high)
        return lambda rng: math.exp(float(rng.uniform(log_low, log_high)))
    return lambda rng: float(rng.uniform(low, high))


def _quantized(
    name: str,
    kind: str,
    low: float,
    high: float,
    q: float,
    base: Callable[[Any], float],
    fail: _Fail,
    line: int | None,
) -> Param:
    """W&B's ``round(X / q) * q``: the bounds become the multiples of q inside [low, high], so
    every sampler (not only random search) gives the program a multiple of q. An integer ``q``
    gives integers, as in W&B (``q: 1`` -> ``--batch_size=32``, not ``32.0``)."""
    from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

    k_low, k_high = math.ceil(low / q - 1e-9), math.floor(high / q + 1e-9)
    if k_low > k_high:
        raise fail("q", f"no multiple of q={q:g} lies between {low:g} and {high:g}")
    logged = kind in _LOG_SCALE
    distribution: BaseDistribution
    if is_int(q):
        lo, hi = k_low * int(q), k_high * int(q)
        if logged and q == 1:
            distribution = IntDistribution(lo, hi, log=True)
        else:
            distribution = IntDistribution(lo, hi, step=int(q))

        def value(k: int) -> Any:
            return k * int(q)

    else:
        lo, hi = _times(k_low, q), _times(k_high, q)
        if logged:  # Optuna has no stepped log floats: the draw rounds
            distribution = FloatDistribution(lo, hi, log=True)
        else:
            distribution = FloatDistribution(lo, hi, step=q)

        def value(k: int) -> Any:
            return _times(k, q)

    def draw(rng: Any) -> Any:
        return value(min(max(round(base(rng) / q), k_low), k_high))

    # An even q_uniform is what Optuna draws already (W&B's ends only weigh half as much).
    even = kind == "q_uniform" and math.isclose(lo, low) and math.isclose(hi, high)
    return Param(name, distribution, None if even else draw, line)


def _times(k: int, q: float) -> float:
    """k * q without binary drift (3 * 0.1 is 0.3), so values sit on Optuna's step grid."""
    return float(Decimal(k) * Decimal(repr(q)))


# small helpers -----------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def did_you_mean(word: Any, known: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
