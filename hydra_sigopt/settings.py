"""Validating ``hydra.sweeper`` into settings and an experiment definition, before anything runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra_sigopt.backends import BACKENDS
from hydra_sigopt.backends.lite import COMPUTE_MODES
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import parse_metrics
from hydra_sigopt.runners import SCHEDULERS
from hydra_sigopt.space import build_space

ON_INTERRUPT = ("cancel", "detach")
# Fields a user may set under hydra.sweeper (the plugin's dataclass has the same ones).
KNOWN_KEYS = (
    "name",
    "params",
    "metrics",
    "observation_budget",
    "parallel_bandwidth",
    "max_failure_rate",
    "backend",
    "dev_run",
    "compute_mode",
    "seed",
    "conditionals",
    "linear_constraints",
    "scheduler",
    "warm_jobs",
    "on_interrupt",
    "resume",
    "progress_interval",
    "api",
)
# The failure rate is judged over at least this many trials, so that one early failure in a
# budget of many does not end the sweep (with max_failure_rate 0 any failure still does).
MIN_TRIALS_FOR_FAILURE_RATE = 5


@dataclass(frozen=True)
class SweepSettings:
    backend: str = "lite"
    dev_run: bool = False
    max_failure_rate: float = 0.5
    scheduler: str = "auto"
    warm_jobs: int | str = "auto"
    on_interrupt: str = "cancel"
    resume: str | None = None
    progress_interval: float = 10.0
    compute_mode: str = "default"
    seed: int | None = None
    api: Mapping[str, Any] = field(default_factory=dict)

    def failure_rate_exceeded(self, failed: int, finished: int) -> bool:
        return failed / max(finished, MIN_TRIALS_FOR_FAILURE_RATE) > self.max_failure_rate


def _int_at_least_one(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"expected a whole number >= 1, got {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, default: str, valid: Sequence[str]) -> str:
    value = raw.get(key, default)
    if value is None:
        value = default
    if value not in valid:
        raise ConfigError(key, f"got {value!r}; valid values are {list(valid)}")
    return str(value)


def parse_settings(
    raw: Mapping[str, Any], arguments: Sequence[str] = (), default_name: str = "hydra-sigopt"
) -> tuple[SweepSettings, ExperimentDefinition]:
    """Check every field of ``hydra.sweeper`` and the command-line sweep overrides."""
    unknown = sorted(set(raw) - set(KNOWN_KEYS) - {"_target_"})
    if unknown:
        raise ConfigError(str(unknown[0]), f"unknown setting; valid settings are {list(KNOWN_KEYS)}")
    budget = _int_at_least_one(raw, "observation_budget", 20)
    bandwidth = _int_at_least_one(raw, "parallel_bandwidth", 1)
    rate = raw.get("max_failure_rate", 0.5)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ConfigError("max_failure_rate", f"expected a number from 0 to 1, got {rate!r}")
    interval = raw.get("progress_interval", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ConfigError("progress_interval", f"expected seconds > 0, got {interval!r}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("seed", f"expected a whole number or null, got {seed!r}")
    dev_run = raw.get("dev_run", False)
    if not isinstance(dev_run, bool):
        raise ConfigError("dev_run", f"expected true or false, got {dev_run!r}")
    warm_jobs = raw.get("warm_jobs", "auto")
    if warm_jobs is None:
        warm_jobs = "auto"
    if warm_jobs != "auto" and (isinstance(warm_jobs, bool) or not isinstance(warm_jobs, int) or warm_jobs < 0):
        raise ConfigError("warm_jobs", f"expected auto or a whole number >= 0, got {warm_jobs!r}")
    name = raw.get("name") or default_name
    api = raw.get("api") or {}
    if not isinstance(api, Mapping):
        raise ConfigError("api", "expected a dict of API settings")
    settings = SweepSettings(
        backend=_choice(raw, "backend", "lite", BACKENDS),
        dev_run=dev_run,
        max_failure_rate=float(rate),
        scheduler=_choice(raw, "scheduler", "auto", SCHEDULERS),
        warm_jobs=warm_jobs,
        on_interrupt=_choice(raw, "on_interrupt", "cancel", ON_INTERRUPT),
        resume=raw.get("resume") or None,
        progress_interval=float(interval),
        compute_mode=_choice(raw, "compute_mode", "default", COMPUTE_MODES),
        seed=seed,
        api=dict(api),
    )
    space = build_space(
        raw.get("params") or {},
        arguments,
        conditionals=_list(raw, "conditionals"),
        linear_constraints=_list(raw, "linear_constraints"),
    )
    metrics = parse_metrics(raw.get("metrics", [{"name": "value", "objective": "minimize"}]))
    definition = ExperimentDefinition(
        name=str(name),
        space=space,
        metrics=metrics,
        observation_budget=budget,
        parallel_bandwidth=bandwidth,
        type="random" if dev_run else "offline",
    )
    return settings, definition


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(key, f"expected a list, got {value!r}")
    return list(value)
