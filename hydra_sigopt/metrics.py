"""Metrics as SigOpt defines them, and turning a task's return value into an observation."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra_sigopt.errors import ConfigError

OBJECTIVES = ("maximize", "minimize")
STRATEGIES = ("optimize", "constraint", "store")
METRIC_KEYS = ("name", "objective", "strategy", "threshold")
MAX_OPTIMIZED_METRICS = 2
#: What SigOpt takes (sigoptlite refused a longer metric name with a traceback at the experiment's creation).
MAX_METRIC_NAME_LENGTH = 100


def is_finite_number(value: Any) -> bool:
    """A finite int or float, as journaled values are (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Metric:
    name: str
    objective: str = "maximize"
    strategy: str = "optimize"
    threshold: float | None = None

    def to_sigopt(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "objective": self.objective, "strategy": self.strategy}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` for this metric."""
        return a > b if self.objective == "maximize" else a < b

    def bound(self) -> str:
        """The threshold as the condition a value meets: ``mem <= 0.62``, ``acc >= 0.9``."""
        return f"{self.name} {'>=' if self.objective == 'maximize' else '<='} {self.threshold:g}"

    def satisfies(self, value: float) -> bool:
        """Whether ``value`` meets this metric's threshold (always true without one)."""
        if self.threshold is None:
            return True
        return value >= self.threshold if self.objective == "maximize" else value <= self.threshold


def parse_metrics(raw: Any) -> tuple[Metric, ...]:
    """Validate ``hydra.sweeper.metrics`` (a list of dicts or names, or one dict or name)."""
    expected = "expected a non-empty list such as [{name: loss, objective: minimize}]"
    if isinstance(raw, Mapping) and "name" not in raw:
        raise ConfigError("metrics", f"{expected}, got the dict {dict(raw)!r}")
    if isinstance(raw, (Mapping, str)):
        raw = [raw]
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ConfigError("metrics", expected)
    metrics: list[Metric] = []
    for i, m in enumerate(raw):
        where = f"metrics[{i}]"
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, Mapping):
            raise ConfigError(where, f"expected a dict with keys {list(METRIC_KEYS)}, got {m!r}")
        unknown = sorted(set(m) - set(METRIC_KEYS))
        if unknown:
            raise ConfigError(where, f"unknown key(s) {unknown}; valid keys are {list(METRIC_KEYS)}")
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name", "every metric needs a non-empty name")
        if len(name) > MAX_METRIC_NAME_LENGTH:
            raise ConfigError(
                f"{where}.name",
                f"the name is {len(name)} characters long; SigOpt allows at most {MAX_METRIC_NAME_LENGTH}",
            )
        objective = m.get("objective") or "maximize"
        if objective not in OBJECTIVES:
            raise ConfigError(f"{where}.objective", f"got {objective!r}; valid values are {list(OBJECTIVES)}")
        strategy = m.get("strategy") or "optimize"
        if strategy not in STRATEGIES:
            raise ConfigError(f"{where}.strategy", f"got {strategy!r}; valid values are {list(STRATEGIES)}")
        threshold = m.get("threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)
        ):
            raise ConfigError(f"{where}.threshold", f"expected a finite number, got {threshold!r}")
        if strategy == "constraint" and threshold is None:
            raise ConfigError(f"{where}.threshold", "a constraint metric needs a threshold")
        if any(x.name == name for x in metrics):
            raise ConfigError(f"{where}.name", f"the metric name {name!r} is used twice")
        metrics.append(Metric(name, objective, strategy, None if threshold is None else float(threshold)))
    _check_optimized_count(metrics)
    _check_single_threshold(metrics)
    return tuple(metrics)


def _check_optimized_count(metrics: Sequence[Metric]) -> None:
    """SigOpt optimizes one or two metrics: say which to change, for none as for too many."""
    optimized = [m.name for m in metrics if m.strategy == "optimize"]
    if not optimized:
        raise ConfigError(
            "metrics",
            f"no metric is optimized, and SigOpt optimizes one or two; give one or two of "
            f"{[m.name for m in metrics]} strategy: optimize (the default strategy)",
        )
    if len(optimized) > MAX_OPTIMIZED_METRICS:
        raise ConfigError(
            "metrics",
            f"SigOpt optimizes one or two metrics; {len(optimized)} have strategy 'optimize' ({optimized}); "
            "keep two and mark the others strategy: store or constraint",
        )


def _check_single_threshold(metrics: Sequence[Metric]) -> None:
    """A threshold on an optimized metric bounds a Pareto front: SigOpt takes it with two optimized
    metrics only (sigoptlite refused one on the single optimized metric with a traceback)."""
    optimized = [i for i, m in enumerate(metrics) if m.strategy == "optimize"]
    if len(optimized) == 1 and metrics[optimized[0]].threshold is not None:
        raise ConfigError(
            f"metrics[{optimized[0]}].threshold",
            "SigOpt takes a threshold on an optimized metric only when two metrics are optimized; remove it",
        )


def default_objective_warning(raw: Any) -> str | None:
    """The start's warning when metrics that SigOpt judges by their objective (optimized or
    constraint ones) were declared without one, as ``hydra.sweeper.metrics`` (``raw``) gave them.

    SigOpt's default objective is maximize while the sweep's default metric ``value`` (and
    Optuna's direction) is minimized: a loss declared by its name alone is maximized, with only the
    start line's ``(maximize)`` to tell. SigOpt's default is kept, as documented; this says so.
    """
    unset = _declared_without_objective(raw)
    if not unset:
        return None
    return (
        f"hydra.sweeper.metrics: no objective given for {unset}, so SigOpt's default is used: maximize. "
        f"For a loss, set {{name: {unset[0]}, objective: minimize}}; to keep maximize, set objective: maximize"
    )


def _declared_without_objective(raw: Any) -> list[str]:
    """The names of the optimized and constraint metrics of a valid ``hydra.sweeper.metrics`` without an objective."""
    if raw is None:  # the default metric, value, minimized
        return []
    entries = [raw] if isinstance(raw, (Mapping, str)) else list(raw)
    declared = [{"name": e} if isinstance(e, str) else e for e in entries]
    return [
        str(e["name"])
        for e in declared
        if not e.get("objective") and (e.get("strategy") or "optimize") in ("optimize", "constraint")
    ]


def describe_metrics(metrics: Sequence[Metric]) -> str:
    """The start log's line on the metrics: which way each is optimized, what bounds the others.

    The objective defaults to maximize while Optuna's direction defaults to minimize: a migrated
    config that dropped its ``direction`` would silently optimize the wrong way without this line.
    """
    parts = []
    optimized = [_optimized(m) for m in metrics if m.strategy == "optimize"]
    parts.append("optimizing: " + ", ".join(optimized))
    constraints = [m.bound() for m in metrics if m.strategy == "constraint" and m.threshold is not None]
    if constraints:
        parts.append("constraint: " + ", ".join(constraints))
    stored = [m.name for m in metrics if m.strategy == "store"]
    if stored:
        parts.append("stored: " + ", ".join(stored))
    return "; ".join(parts)


def _optimized(metric: Metric) -> str:
    threshold = "" if metric.threshold is None else f", threshold {metric.threshold:g}"
    return f"{metric.name} ({metric.objective}{threshold})"


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    value_stddev: float | None = None

    def to_sigopt(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        if self.value_stddev is not None:
            out["value_stddev"] = self.value_stddev
        return out


class InvalidResult(ValueError):
    """A task's return value cannot be an observation; the message is the failure reason."""


def parse_result(result: Any, metrics: Sequence[Metric]) -> tuple[MetricValue, ...]:
    """Read a task's return value as one value per metric, or raise :class:`InvalidResult`.

    A mapping by metric name always works. A single-metric app may return a number, or
    ``(value, stddev)`` (the Ax sweeper's ``(mean, sem)``). When every metric is optimized, a
    tuple or list gives one value per metric in declaration order (the Optuna sweeper's
    multi-objective convention). Each value is a number (Python, numpy or torch scalar),
    ``(value, stddev)`` or ``{"value": v, "value_stddev": s}``.
    """
    if result is None:
        raise InvalidResult(_returned_none(metrics))
    if len(metrics) == 1 and (not isinstance(result, Mapping) or _is_value_with_noise(result)):
        return (_metric_value(metrics[0].name, result),)
    if _is_sequence(result):
        return _values_in_order(result, metrics)
    if not isinstance(result, Mapping):
        raise InvalidResult(
            f"returned {_describe(result)}; with {len(metrics)} metrics the task must return a dict "
            f"with keys {[m.name for m in metrics]}, or a tuple of one value per metric in that order"
        )
    missing = [m.name for m in metrics if m.name not in result]
    if missing:
        raise InvalidResult(f"the returned dict lacks metric(s) {missing} (it has keys {sorted(map(str, result))})")
    return tuple(_metric_value(m.name, result[m.name]) for m in metrics)


def _returned_none(metrics: Sequence[Metric]) -> str:
    """Why a task that returned None failed: most often its function lacks the ``return`` (the
    lightning-hydra-template's returns None where ``optimized_metric`` is unset), which "metric
    'value' is NoneType None, not a number" did not tell."""
    wanted = f"metric {metrics[0].name!r}" if len(metrics) == 1 else f"metrics {[m.name for m in metrics]}"
    return (
        f"the task returned None, not {wanted}: does the task function end with a return? "
        "(the lightning-hydra-template's returns None without optimized_metric)"
    )


def _is_value_with_noise(result: Mapping[Any, Any]) -> bool:
    """Whether a single metric's app returned its value and noise, ``{"value": v, "value_stddev": s}``.

    Exactly these two keys: a dict that merely has a ``value`` key (``{"value": loss, "acc": a}``
    with ``accuracy`` declared) is a dict by metric name that lacks the metric, and read as the
    noise form it scored every trial on ``value``, silently.
    """
    return set(result) == {"value", "value_stddev"}


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (tuple, list))


def _values_in_order(result: Sequence[Any], metrics: Sequence[Metric]) -> tuple[MetricValue, ...]:
    """A tuple of one value per metric, in declaration order, when every metric is optimized."""
    names = [m.name for m in metrics]
    others = [m.name for m in metrics if m.strategy != "optimize"]
    if others:
        raise InvalidResult(
            f"returned {_describe(result)}; with constraint or store metrics {others} a tuple is ambiguous: "
            f"return a dict with keys {names}"
        )
    if len(result) != len(metrics):
        raise InvalidResult(
            f"returned {_describe(result)} ({len(result)} values); expected {len(metrics)}, one per "
            f"optimized metric in the order {names}, or a dict with those keys"
        )
    return tuple(_metric_value(m.name, v) for m, v in zip(metrics, result))


def _metric_value(name: str, raw: Any) -> MetricValue:
    """One metric's value (and optional stddev) as finite floats."""
    stddev_raw = None
    if isinstance(raw, Mapping):
        if "value" not in raw:
            raise InvalidResult(f"metric {name!r}: a dict value needs a 'value' key, got {sorted(map(str, raw))}")
        stddev_raw = raw.get("value_stddev")
        raw = raw["value"]
    elif _is_sequence(raw) and len(raw) == 2:
        raw, stddev_raw = raw  # (value, stddev), as Ax apps return (mean, sem)
    stddev = None
    if stddev_raw is not None:
        stddev = _as_float(f"{name}.value_stddev", stddev_raw)
        if stddev < 0:
            raise InvalidResult(f"metric {name!r}: value_stddev must be >= 0, got {stddev}")
    return MetricValue(name, _as_float(name, raw), stddev)


def _as_float(name: str, raw: Any) -> float:
    """A finite float from a Python, numpy or torch scalar."""
    if raw is None or isinstance(raw, (bool, str, bytes)):
        raise InvalidResult(f"metric {name!r} is {_describe(raw)}, not a number")
    try:
        value = _number(name, raw)
    except InvalidResult:
        raise
    except (TypeError, ValueError, OverflowError):
        raise InvalidResult(f"metric {name!r} is {_describe(raw)}, not a number") from None
    except Exception as exc:  # a CUDA tensor after a device error: this trial's failure, not the sweep's
        raise InvalidResult(f"metric {name!r}: reading its number raised {type(exc).__name__}: {exc}") from None
    if not math.isfinite(value):
        raise InvalidResult(f"metric {name!r} is {value}")
    return value


def _number(name: str, raw: Any) -> float:
    """``float(raw)``, through ``item()`` for numpy / torch values of one element."""
    raw = plain_scalar(raw)
    if isinstance(raw, bool):  # numpy / torch booleans
        raise InvalidResult(f"metric {name!r} is {_describe(raw)}, not a number")
    return float(raw)


def plain_scalar(raw: Any) -> Any:
    """The Python number in a numpy or torch value of one element (``np.float32(v)``, ``np.array([v])``,
    ``torch.tensor([[v]])``); anything else as it is.

    ``float()`` alone takes a one-element torch tensor but numpy 2 refuses ``np.array([v])``: through
    ``item()`` both are numbers, in a return value and in ``report()`` alike.
    """
    item = getattr(raw, "item", None)
    if callable(item) and (getattr(raw, "ndim", None) == 0 or _element_count(raw) == 1):
        return item()
    return raw


def _element_count(raw: Any) -> int | None:
    """How many elements a torch tensor (``numel()``) or a numpy array (``size``) holds; None for others."""
    numel = getattr(raw, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(raw, "size", None)
    return size if isinstance(size, int) else None


#: Words that name a value's noise: a key of them beside a metric was meant as its stddev, most likely.
NOISE_WORDS = ("stddev", "std", "sd", "sem", "stderr", "sigma", "noise")


def unread_noise_keys(result: Any, metrics: Sequence[Metric]) -> list[str]:
    """Keys of a returned dict that look like a metric's noise but are not read as one.

    Extra keys are ignored (a dict returned for the app's own logs has many); one named like a
    stddev (``{"value": v, "stddev": s}``, ``{"loss": v, "loss_std": s}``) was meant as the noise,
    and ignored it is lost without a word. The caller warns of them.
    """
    if not isinstance(result, Mapping) or _is_value_with_noise(result):
        return []
    names = {m.name for m in metrics}
    found = [str(k) for k in result if k not in names and _looks_like_noise(str(k))]
    for name in names & set(result):
        if isinstance(result[name], Mapping):
            found += [
                f"{name}.{k}" for k in result[name] if k not in ("value", "value_stddev") and _looks_like_noise(str(k))
            ]
    return found


def _looks_like_noise(key: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    return any(w in NOISE_WORDS for w in words) or key.lower().endswith(("std", "stddev", "stderr", "sigma"))


def _describe(value: Any) -> str:
    """A short description of a value for failure reasons."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken tensor's repr may raise as its number does
        text = f"<repr raised {type(exc).__name__}>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def meets_constraints(values: Sequence[MetricValue], metrics: Sequence[Metric]) -> bool:
    """Whether results are feasible: every constraint metric has a value within its threshold.

    The one feasibility rule of the sweep (progress, best trial, reports, plot): a missing
    constraint value is not a pass.
    """
    by_name = {v.name: v.value for v in values}
    return all(m.name in by_name and m.satisfies(by_name[m.name]) for m in metrics if m.strategy == "constraint")
