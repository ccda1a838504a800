"""Optuna samplers and pruners from a name plus JSON kwargs, as typed on the command line.

The user picks a sampler or pruner by name and may tune it with a JSON object of constructor
kwargs. Both are kept as a :class:`Spec` so that what the user asked for can be stored with the
study and shown again, and so that every worker process can build its own, identical copy.

Mistakes must surface when the command is typed, not minutes later in a worker: a spec is
validated by building it once, and because several Optuna constructors accept nonsense without
complaint (``TPESampler(n_startup_trials="x")`` only fails at the first sample), the kwargs are
also checked against the constructor's annotations first.

Optuna is imported inside the functions: importing it costs noticeable time, and ``--help``
should not pay for it.
"""

from __future__ import annotations

import difflib
import inspect
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tui_hpo.errors import UserError, one_line

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

SAMPLER_NAMES: tuple[str, ...] = ("tpe", "gp", "cmaes", "nsga2", "nsga3", "qmc", "random", "grid")
PRUNER_NAMES: tuple[str, ...] = (
    "median",
    "percentile",
    "hyperband",
    "successive-halving",
    "threshold",
    "wilcoxon",
    "patient",
    "none",
)

_PATIENT_KEYS = ("patience", "min_delta", "wrapped", "wrapped_kwargs")
_GRID_HINT = 'sampler grid needs kwargs {"search_space": {"param": [values, ...]}}'
_MAX_SHOWN = 160
"""Longest kwargs text quoted in an error: a big grid would otherwise swamp the one line."""


@dataclass(frozen=True)
class Spec:
    """A sampler or pruner as the user named it: what gets stored and shown (provenance)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "kwargs": self.kwargs}, sort_keys=True, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """Read back what :meth:`to_json` stored; a damaged record is reported, not a traceback."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"stored sampler/pruner spec is not valid JSON: {one_line(exc)}"
            ) from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("name"), str)
            or not isinstance(data.get("kwargs", {}), dict)
        ):
            raise UserError(
                f'stored sampler/pruner spec must look like {{"name": ..., "kwargs": {{...}}}}, '
                f"got {_clip(text)}"
            )
        return cls(data["name"], dict(data.get("kwargs", {})))

    def label(self) -> str:
        if not self.kwargs:
            return self.name
        args = ", ".join(
            f"{key}={json.dumps(value, sort_keys=True, separators=(',', ':'))}"
            for key, value in sorted(self.kwargs.items())
        )
        return f"{self.name}({args})"


def parse_kwargs(text: str | None, what: str) -> dict[str, Any]:
    """JSON object text -> dict. None/"" -> {}. Not JSON or not an object -> UserError like
    "--sampler-kwargs is not valid JSON: Expecting ',' delimiter at char 12" or "... must be a
    JSON object, got a list"."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a JSON object, got {_json_kind(value)}: {_clip(text)}")
    return value


def sampler_spec(name: str, kwargs: dict[str, Any] | None = None) -> Spec:
    """Check a sampler choice now, so a typo fails at the prompt rather than in every worker."""
    spec = _spec("sampler", name, kwargs, SAMPLER_NAMES)
    with warnings.catch_warnings():
        # Validation only: warnings belong to the workers that really sample.
        warnings.simplefilter("ignore")
        make_sampler(spec, seed=None)
    return spec


def pruner_spec(name: str, kwargs: dict[str, Any] | None = None) -> Spec:
    """Check a pruner choice now, so a typo fails at the prompt rather than in every worker."""
    spec = _spec("pruner", name, kwargs, PRUNER_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_pruner(spec)
    return spec


def make_sampler(spec: Spec, *, seed: int | None = None) -> BaseSampler:
    """Build the sampler; an explicit ``seed`` in the kwargs beats the run's seed, so that a
    user who pinned one gets exactly what they asked for."""
    name = _normalise(spec.name)
    classes = _sampler_classes()
    if name not in classes:
        raise _unknown("sampler", spec.name, SAMPLER_NAMES)
    kwargs = dict(spec.kwargs)
    if name == "grid":
        _check_grid(kwargs)
    if seed is not None:
        kwargs.setdefault("seed", seed)
    return _build("sampler", name, classes[name], kwargs, shown=spec.kwargs)


def make_pruner(spec: Spec) -> BasePruner:
    name = _normalise(spec.name)
    classes = _pruner_classes()
    if name not in classes:
        raise _unknown("pruner", spec.name, PRUNER_NAMES)
    if name == "patient":
        return _make_patient(spec.kwargs)
    if name == "none" and spec.kwargs:
        raise UserError(f"pruner none takes no kwargs, got {_show(spec.kwargs)}")
    return _build("pruner", name, classes[name], dict(spec.kwargs), shown=spec.kwargs)


def _sampler_classes() -> dict[str, type]:
    import optuna.samplers as s

    return {
        "tpe": s.TPESampler,
        "gp": s.GPSampler,
        "cmaes": s.CmaEsSampler,
        "nsga2": s.NSGAIISampler,
        "nsga3": s.NSGAIIISampler,
        "qmc": s.QMCSampler,
        "random": s.RandomSampler,
        "grid": s.GridSampler,
    }


def _pruner_classes() -> dict[str, type]:
    import optuna.pruners as p

    return {
        "median": p.MedianPruner,
        "percentile": p.PercentilePruner,
        "hyperband": p.HyperbandPruner,
        "successive-halving": p.SuccessiveHalvingPruner,
        "threshold": p.ThresholdPruner,
        "wilcoxon": p.WilcoxonPruner,
        "patient": p.PatientPruner,
        "none": p.NopPruner,
    }


def _spec(kind: str, name: str, kwargs: dict[str, Any] | None, names: tuple[str, ...]) -> Spec:
    normal = _normalise(name)
    if normal not in names:
        raise _unknown(kind, name, names)
    try:
        # A private, JSON-clean copy: the spec is stored as JSON and must not alias the caller's.
        clean = json.loads(json.dumps(kwargs or {}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{kind} {normal} kwargs must be JSON values: {one_line(exc)}") from None
    if not isinstance(clean, dict):
        raise UserError(f"{kind} {normal} kwargs must be a JSON object, got {_json_kind(clean)}")
    if normal == "patient" and isinstance(clean.get("wrapped"), str):
        clean["wrapped"] = _normalise(clean["wrapped"])
    return Spec(normal, clean)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _unknown(kind: str, name: str, names: tuple[str, ...]) -> UserError:
    return UserError(f"unknown {kind} {name!r}: choose one of {', '.join(names)}")


def _build(
    kind: str,
    name: str,
    cls: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    shown: dict[str, Any],
    objects: dict[str, Any] | None = None,
) -> Any:
    """Call the constructor, turning anything it objects to into one line for the user.

    ``objects`` are arguments this module made (a wrapped pruner), exempt from the JSON checks.
    """
    from optuna.exceptions import ExperimentalWarning

    missing = _missing_keys(cls, {**kwargs, **(objects or {})})
    if missing:
        needed = ", ".join(f'"{key}": ...' for key in missing)
        raise UserError(f"{kind} {name} needs kwargs {{{needed}}}")
    prefix = f"{kind} {name} rejects kwargs {_show(shown)}"
    problem = _check_kwargs(cls, kwargs)
    if problem:
        raise UserError(f"{prefix}: {problem}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return cls(**kwargs, **(objects or {}))
    except ImportError as exc:
        raise UserError(f"{kind} {name} needs a package that is missing: {one_line(exc)}") from None
    except Exception as exc:  # any constructor complaint is the user's to fix; Ctrl-C passes
        raise UserError(f"{prefix}: {one_line(exc)}") from None


def _make_patient(kwargs: dict[str, Any]) -> BasePruner:
    from optuna.pruners import PatientPruner

    prefix = f"pruner patient rejects kwargs {_show(kwargs)}"
    extra = sorted(set(kwargs) - set(_PATIENT_KEYS))
    if extra:
        raise UserError(
            f"{prefix}: unexpected key {extra[0]!r}; it takes {', '.join(_PATIENT_KEYS)}"
        )
    if "patience" not in kwargs:
        raise UserError(
            'pruner patient needs kwargs {"patience": ...} '
            '(optional: "min_delta", "wrapped", "wrapped_kwargs")'
        )
    wrapped = kwargs.get("wrapped", "none")
    wrapped_kwargs = kwargs.get("wrapped_kwargs", {})
    if not isinstance(wrapped, str):
        raise UserError(f"{prefix}: wrapped must be a pruner name, got {_show(wrapped)}")
    if not isinstance(wrapped_kwargs, dict):
        raise UserError(
            f"{prefix}: wrapped_kwargs must be a JSON object, got {_show(wrapped_kwargs)}"
        )
    # Built even for "none" so that stray wrapped_kwargs are reported; PatientPruner spells
    # "nothing wrapped" as None, not as a NopPruner.
    try:
        inner = make_pruner(Spec(wrapped, wrapped_kwargs))
    except UserError as exc:
        raise UserError(f"pruner patient, wrapped: {exc.message}") from None
    args = {key: kwargs[key] for key in ("patience", "min_delta") if key in kwargs}
    objects = {"wrapped_pruner": None if _normalise(wrapped) == "none" else inner}
    return _build("pruner", "patient", PatientPruner, args, shown=kwargs, objects=objects)


def _check_grid(kwargs: dict[str, Any]) -> None:
    """GridSampler takes an empty or malformed grid and only fails once trials start."""
    space = kwargs.get("search_space")
    if not isinstance(space, dict) or not space:
        raise UserError(_GRID_HINT)
    for param, values in space.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{_GRID_HINT}; {param!r} has {_show(values)}")
        for value in values:
            if isinstance(value, (dict, list)):
                raise UserError(
                    f"sampler grid values must be numbers, strings, true/false or null; "
                    f"{param!r} has {_show(value)}"
                )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "None": (type(None),),
    "dict": (dict,),
    "Mapping": (dict,),
    "list": (list,),
    "Sequence": (list,),
}
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "None": "null",
    "dict": "an object",
    "Mapping": "an object",
    "list": "a list",
    "Sequence": "a list",
}


def _missing_keys(cls: Callable[..., Any], kwargs: dict[str, Any]) -> list[str]:
    """Required constructor arguments absent from ``kwargs`` (PercentilePruner's percentile)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return [
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in kwargs
    ]


def _check_kwargs(cls: Callable[..., Any], kwargs: dict[str, Any]) -> str | None:
    """First problem with ``kwargs`` for ``cls`` judged from its signature, or None.

    Unknown annotations are let through: the constructor has the last word. Only what JSON can
    express is judged, and callables or Optuna objects (``gamma``, ``independent_sampler``)
    cannot come from JSON at all.
    """
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    named = {
        n: p
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    for key in sorted(kwargs):
        if key not in named:
            usable = [n for n, p in named.items() if _json_expressible(p.annotation)]
            close = difflib.get_close_matches(key, usable, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unexpected key {key!r}{hint}; it takes {', '.join(usable)}"
        problem = _check_value(key, kwargs[key], named[key].annotation)
        if problem:
            return problem
    return None


def _check_value(key: str, value: Any, annotation: Any) -> str | None:
    parts = _annotation_parts(annotation)
    if not parts or any(p == "Any" or _is_unknown(p) for p in parts):
        return None
    allowed = tuple(t for p in parts if p in _JSON_TYPES for t in _JSON_TYPES[p])
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if ok:
        return None
    words = [_TYPE_WORDS[p] for p in parts if p in _TYPE_WORDS]
    if not any(w != "null" for w in words):
        return f"{key} takes a Python object ({_annotation_text(annotation)}), not JSON"
    return f"{key} must be {' or '.join(words)}, got {_show(value)}"


def _json_expressible(annotation: Any) -> bool:
    parts = _annotation_parts(annotation)
    return not parts or any(p not in ("None",) and not _is_object(p) for p in parts)


def _is_object(part: str) -> bool:
    return part == "Callable" or part.startswith("Base")


def _is_unknown(part: str) -> bool:
    return part not in _JSON_TYPES and not _is_object(part)


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _annotation_parts(annotation: Any) -> list[str]:
    """'int | None' -> ['int', 'None']; 'dict[str, Any] | None' -> ['dict', 'None']."""
    text = _annotation_text(annotation)
    if not text:
        return []
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    bases = [p.split("[", 1)[0].strip().rsplit(".", 1)[-1] for p in parts]
    return ["None" if base == "NoneType" else base for base in bases]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _show(value: Any) -> str:
    return _clip(json.dumps(value, sort_keys=True))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


DEFAULT_SAMPLER = Spec("tpe", {})


DEFAULT_PRUNER = Spec("median", {})
