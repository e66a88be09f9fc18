"""Search-space entries written for Hydra's other sweepers, read as this sweeper's grammar.

Users migrating a config bring the forms of the Ax, Nevergrad and (1.1-era) Optuna sweepers:

* Ax: ``{type: range, bounds: [a, b], log_scale: true, value_type: int}``,
  ``{type: choice, values: [...]}``, ``{type: fixed, value: x}``;
* Nevergrad: ``{lower: a, upper: b, log: true, integer: true}`` and a plain list of options;
* Optuna 1.1: ``{type: float|int, low: a, high: b, log: true, step: s}``,
  ``{type: categorical, choices: [...]}``.

Each becomes the equivalent Hydra grammar string (``tag(log, interval(1e-05, 0.1))``), which the
sweep logs and then parses like any other entry, so there is one path from text to parameter.
SigOpt-native dicts (``type: double|int|categorical`` with ``bounds: {min, max}``, ``grid`` or
``categorical_values``) are not translated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.grids import check_grid_length
from hydra_sigopt.overrides import format_value


@dataclass(frozen=True)
class Translated:
    dialect: str  # whose form it was, for the log line
    # The same entry in Hydra's sweep grammar, or as a SigOpt-native dict where the grammar has no
    # word for it (an unordered choice of numbers: the grammar's numeric choice is an ordered grid).
    grammar: str | dict[str, Any]


def translate_peer_spec(spec: Any, where: str) -> Translated | None:
    """The grammar equivalent of another sweeper's entry, or None for this sweeper's own forms."""
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return Translated("a list of options (Nevergrad)", _choice(spec, where))
    if not isinstance(spec, Mapping):
        return None
    kind = spec.get("type")
    if kind in ("range", "choice", "fixed"):
        return Translated(f"Ax's type: {kind}", _ax(spec, where))
    if "lower" in spec or "upper" in spec:
        return Translated("Nevergrad's lower/upper", _nevergrad(spec, where))
    if "low" in spec or "high" in spec or "choices" in spec:
        return Translated(f"Optuna's type: {kind}{_optuna_step_ignored(spec)}", _optuna(spec, where))
    return None


def _ax(spec: Mapping[str, Any], where: str) -> str | dict[str, Any]:
    _known(spec, ("type", "bounds", "values", "value", "log_scale", "value_type", "is_ordered", "digits"), where)
    if spec["type"] == "fixed":
        return format_value(spec.get("value"))
    unordered = _distinct_numbers(spec.get("values")) if spec.get("is_ordered") is False else []
    if spec["type"] == "choice" and len(unordered) >= 2:
        # Ax's sweeper gives Ax an unordered choice parameter: SigOpt's categorical (the app still gets numbers).
        return {"type": "categorical", "categorical_values": unordered}
    if spec["type"] == "choice":
        return _choice(spec.get("values"), where, key="values")
    bounds = spec.get("bounds")
    if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
        raise ConfigError(f"{where}.bounds", f"an Ax range needs bounds: [low, high], got {bounds!r}")
    value_type = spec.get("value_type")
    as_int = value_type == "int" or (value_type is None and all(_is_int(b) for b in bounds))
    return _interval(bounds[0], bounds[1], as_int, bool(spec.get("log_scale")), where)


def _nevergrad(spec: Mapping[str, Any], where: str) -> str:
    # init and step are Nevergrad's starting point and mutation scale: the search space is the same without them.
    _known(spec, ("lower", "upper", "log", "integer", "init", "step"), where)
    if spec.get("lower") is None or spec.get("upper") is None:
        raise ConfigError(where, "a Nevergrad scalar needs both lower and upper here (SigOpt searches bounded spaces)")
    return _interval(spec["lower"], spec["upper"], bool(spec.get("integer")), bool(spec.get("log")), where)


def _optuna(spec: Mapping[str, Any], where: str) -> str | dict[str, Any]:
    _known(spec, ("type", "low", "high", "step", "log", "choices", "q"), where)
    kind = spec.get("type")
    if kind == "categorical" or "choices" in spec:
        return _choice(spec.get("choices"), where, key="choices")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}.type", f"an Optuna-style entry has type float, int or categorical, got {kind!r}")
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step") or spec.get("q")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or not _is_number(low):
        raise ConfigError(where, f"an Optuna-style entry needs numbers low and high, got low={low!r}, high={high!r}")
    # log before step, as Hydra's Optuna sweeper reads it (create_optuna_distribution_from_config):
    # a log-uniform float or int, the step ignored. A config ported from Optuna means what it meant there.
    if step is not None and not (step == 1 and kind == "int") and not spec.get("log"):
        return _stepped(low, high, step, kind == "int", where)
    return _interval(low, high, kind == "int", bool(spec.get("log")), where)


def _optuna_step_ignored(spec: Mapping[str, Any]) -> str:
    """A note for the log where an Optuna entry has both ``log`` and ``step`` (Optuna ignores the step)."""
    step = spec.get("step") or spec.get("q")
    if spec.get("log") and step is not None and not (step == 1 and spec.get("type") == "int"):
        return f" (its step {format_value(step)} is ignored with log: true, as in Optuna's sweeper)"
    return ""


def _interval(low: Any, high: Any, as_int: bool, log: bool, where: str) -> str:
    if not _is_number(low) or not _is_number(high):
        raise ConfigError(where, f"bounds must be numbers, got {low!r} and {high!r}")
    text = f"interval({format_value(low)}, {format_value(high)})"
    if as_int:
        text = f"int(interval({format_value(int(low))}, {format_value(int(high))}))"
    elif _is_int(low) and _is_int(high):
        text = f"interval({format_value(float(low))}, {format_value(float(high))})"
    return f"tag(log, {text})" if log else text


def _stepped(low: float, high: float, step: Any, as_int: bool, where: str) -> str | dict[str, Any]:
    """Optuna's stepped range includes ``high`` where the steps reach it (Hydra's range excludes its stop)."""
    if not _is_number(step) or step <= 0:
        raise ConfigError(f"{where}.step", f"expected a number > 0, got {step!r}")
    count = math.floor((high - low) / step + 1e-9) + 1
    # Counted before listing: a tiny step would list its values for minutes, in gigabytes.
    interval = f"type: {'int' if as_int else 'float'}, low: {format_value(low)}, high: {format_value(high)}"
    written = f"{{{interval}, step: {format_value(step)}}}"
    check_grid_length(count, f"{where}.step", written, f"{{{interval}}} (no step)")
    values = (
        [low + i * step for i in range(count)] if as_int else [float(f"{low + i * step:.12g}") for i in range(count)]
    )
    return _choice(values, where)


def _choice(values: Any, where: str, key: str = "") -> str | dict[str, Any]:
    at = f"{where}.{key}" if key else where
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(at, f"expected a non-empty list of options, got {values!r}")
    if None in values and len(values) > 1:
        # Hydra's choice() takes no null (its parser refused the choice(null, adam) written for
        # [null, adam]); a categorical does, and the app gets None.
        return {"type": "categorical", "categorical_values": list(values)}
    try:
        return "choice(" + ", ".join(format_value(v) for v in values) + ")"
    except TypeError as exc:
        raise ConfigError(at, str(exc)) from None


def _known(spec: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ConfigError(where, f"unknown key(s) {unknown} for this form; its keys are {list(keys)}")


def _distinct_numbers(values: Any) -> list[Any]:
    """The numbers listed, each once, in order; none where any option is not a number (those
    choices are categorical already)."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not all(_is_number(v) for v in values):
        return []
    return list({repr(v): v for v in values}.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
