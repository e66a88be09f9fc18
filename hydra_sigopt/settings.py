"""Validating ``hydra.sweeper`` into settings and an experiment definition, before anything runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hydra_sigopt.backends import BACKENDS
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import Metric, is_finite_number, parse_metrics
from hydra_sigopt.overrides import bare_key
from hydra_sigopt.secrets import api_url_setting
from hydra_sigopt.snapshot import SNAPSHOT_MODES
from hydra_sigopt.space import build_space
from hydra_sigopt.stop_rules import RULES, STOPPED_OBSERVATIONS, TASK_COMPARISONS, StopRule
from hydra_sigopt.tasks import check_last_steps, parse_tasks
from hydra_sigopt.validation import check_experiment_name, check_space

ON_INTERRUPT = ("cancel", "detach")
# The lite engine's compute modes, and the schedulers (runners.make_runner picks the runner).
COMPUTE_MODES = ("default", "kde_only")
SCHEDULERS = ("auto", "async", "batch")
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
    "code_snapshot",
    "early_stopping",
    "tasks",
    "api",
)
# Settings of hydra-optuna-sweeper (its OptunaSweeperConf) and what they are here. The plugin's
# dataclass declares them (as null) so that Hydra lets them through and all are named at once.
OPTUNA_KEYS = (
    "n_trials",
    "direction",
    "n_jobs",
    "sampler",
    "storage",
    "study_name",
    "search_space",
    "custom_search_space",
)
SWEEP_DIR_TRANSLATION = (
    "the sweep dir (the sweep's state is kept in hydra.sweep.dir; rerun with the same "
    "hydra.sweep.dir, or hydra.sweeper.resume=<dir>, to continue it)"
)
# hydra.sweeper.api.* and the plugin's defaults (ApiConf): set to anything else with backend lite,
# they would be ignored, so they are refused.
API_DEFAULTS: dict[str, Any] = {
    "api_url": None,
    "verify_ssl_certs": None,
    "timeout": 30.0,
    "project": None,
    "experiment_id": None,
    "max_unreachable_s": 600.0,
    "token": None,
}
# numpy's generators (the engine's) take seeds in this range.
SEED_RANGE = (0, 2**32 - 1)
# The failure rate is judged over at least this many trials, so that one early failure in a
# budget of many does not end the sweep (with max_failure_rate 0 any failure still does).
MIN_TRIALS_FOR_FAILURE_RATE = 5


# What parallel_bandwidth, max_failure_rate and warm_jobs take: said alike for a value that is wrong
# (parse_settings) and one that is missing (valid_values, for a ??? not given).
WHOLE_NUMBER_FROM_1 = "a whole number >= 1"
RATE_FROM_0_TO_1 = "a number from 0 to 1"
AUTO_OR_WHOLE_NUMBER = "auto or a whole number >= 0"

# What a setting takes where its declared type says less (an int >= 1, a number or a word, a word of a list).
_VALID_VALUES: dict[str, str] = {
    "observation_budget": f"{WHOLE_NUMBER_FROM_1} (with tasks, a number > 0)",
    "parallel_bandwidth": WHOLE_NUMBER_FROM_1,
    "warm_jobs": AUTO_OR_WHOLE_NUMBER,
    "max_failure_rate": RATE_FROM_0_TO_1,
    **{
        key: f"one of {list(choices)}"
        for key, choices in {
            "backend": BACKENDS,
            "scheduler": SCHEDULERS,
            "compute_mode": COMPUTE_MODES,
            "on_interrupt": ON_INTERRUPT,
            "code_snapshot": SNAPSHOT_MODES,
            "early_stopping.rule": RULES,
            "early_stopping.observe_stopped": STOPPED_OBSERVATIONS,
            "early_stopping.compare_tasks": TASK_COMPARISONS,
        }.items()
    },
}


def valid_values(key: str) -> str | None:
    """What ``key`` (``early_stopping.rule``) takes, where more is known than its declared type."""
    return _VALID_VALUES.get(key)


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
    code_snapshot: str = "none"
    early_stopping: StopRule = field(default_factory=StopRule)
    api: Mapping[str, Any] = field(default_factory=dict)

    def failure_rate_exceeded(self, failed: int, finished: int) -> bool:
        return failed / max(finished, MIN_TRIALS_FOR_FAILURE_RATE) > self.max_failure_rate


def _int_at_least_one(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"expected {WHOLE_NUMBER_FROM_1}, got {value!r}")
    return value


def _number_from_text(value: Any) -> Any:
    """A number written as text (``${oc.env:BUDGET}`` gives the string "40") as that number, for the
    keys declared Any (a number or a word: no declared type converts them); anything else as it is."""
    if not isinstance(value, str):
        return value
    for number in (int, float):
        try:
            converted = number(value)
        except ValueError:
            continue
        return converted if math.isfinite(converted) else value  # "inf" and "nan" are refused as words
    return value


def _observation_budget(raw: Mapping[str, Any]) -> float:
    """Trials to run; with tasks it counts their costs, so a fraction is a budget too (4.5 full trainings)."""
    value = _number_from_text(raw.get("observation_budget", 20))
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 40.0 means 40, kept whole so that messages say 40
    if raw.get("tasks"):
        if not is_finite_number(value) or value <= 0:
            problem = f"expected a number > 0 (full trainings, with tasks), got {value!r}"
            raise ConfigError("observation_budget", problem)
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        # Only with tasks does a fraction mean something (a budget in costs): say so to whoever tries one.
        costs = "; a fractional budget counts task costs, with hydra.sweeper.tasks" if isinstance(value, float) else ""
        raise ConfigError("observation_budget", f"expected {WHOLE_NUMBER_FROM_1}, got {value!r}{costs}")
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
    refuse_optuna_keys(raw)
    unknown = sorted(set(raw) - set(KNOWN_KEYS) - set(OPTUNA_KEYS) - {"_target_"})
    if unknown:
        raise ConfigError(str(unknown[0]), f"unknown setting; valid settings are {list(KNOWN_KEYS)}")
    budget = _observation_budget(raw)
    bandwidth = _int_at_least_one(raw, "parallel_bandwidth", 1)
    rate = raw.get("max_failure_rate", 0.5)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ConfigError("max_failure_rate", f"expected {RATE_FROM_0_TO_1}, got {rate!r}")
    dev_run = raw.get("dev_run", False)
    if not isinstance(dev_run, bool):
        raise ConfigError("dev_run", f"expected true or false, got {dev_run!r}")
    warm_jobs = _number_from_text(raw.get("warm_jobs", "auto"))
    if warm_jobs is None:
        warm_jobs = "auto"
    if warm_jobs != "auto" and (isinstance(warm_jobs, bool) or not isinstance(warm_jobs, int) or warm_jobs < 0):
        raise ConfigError("warm_jobs", f"expected {AUTO_OR_WHOLE_NUMBER}, got {warm_jobs!r}")
    name = str(raw.get("name") or default_name)
    backend = _choice(raw, "backend", "lite", BACKENDS)
    # Both engines refuse a long name, sigoptlite only as the experiment is created (with a traceback).
    check_experiment_name(name)
    raw_metrics = raw.get("metrics")
    metrics = parse_metrics([{"name": "value", "objective": "minimize"}] if raw_metrics is None else raw_metrics)
    settings = SweepSettings(
        backend=backend,
        dev_run=dev_run,
        max_failure_rate=float(rate),
        scheduler=_choice(raw, "scheduler", "auto", SCHEDULERS),
        warm_jobs=warm_jobs,
        on_interrupt=_choice(raw, "on_interrupt", "cancel", ON_INTERRUPT),
        resume=raw.get("resume") or None,
        progress_interval=_seconds(raw, "progress_interval", 10.0),
        compute_mode=_choice(raw, "compute_mode", "default", COMPUTE_MODES),
        seed=_seed(raw),
        code_snapshot=_choice(raw, "code_snapshot", "none", SNAPSHOT_MODES),
        early_stopping=parse_early_stopping(raw.get("early_stopping"), metrics),
        api=_api_settings(raw, backend),
    )
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(
            "params", f"expected a dict {{config key: sweep}}, e.g. {{lr: 'interval(0, 1)'}}; got {params!r}"
        )
    space = build_space(
        params,
        arguments,
        conditionals=_list(raw, "conditionals"),
        linear_constraints=_list(raw, "linear_constraints"),
    )
    check_space(space)
    definition = ExperimentDefinition(
        name=str(name),
        space=space,
        metrics=metrics,
        observation_budget=budget,
        parallel_bandwidth=bandwidth,
        type="random" if dev_run else "offline",
        tasks=parse_tasks(raw.get("tasks"), metrics, swept_keys(space)),
    )
    check_last_steps(definition.tasks, settings.early_stopping)
    return settings, definition


EARLY_STOPPING_DEFAULTS: dict[str, Any] = {
    "rule": "none",
    "metric": None,
    "min_step": 1,
    "max_step": None,
    "reduction_factor": 3,
    "step_budget": None,
    "observe_stopped": "last_value",
    "stop_grace_s": 60,
    "compare_tasks": "apart",
}


def parse_early_stopping(raw: Any, metrics: Sequence[Metric]) -> StopRule:
    """``hydra.sweeper.early_stopping``: the rule, the metric it watches (a declared one) and its steps."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("early_stopping", f"expected a dict such as {{rule: asha, min_step: 1}}, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - set(EARLY_STOPPING_DEFAULTS))
    if unknown:
        valid = list(EARLY_STOPPING_DEFAULTS)
        raise ConfigError(f"early_stopping.{unknown[0]}", f"unknown setting; valid settings are {valid}")
    given = {k: v for k, v in raw.items() if v is not None}
    settings = {**EARLY_STOPPING_DEFAULTS, **given}
    rule = _choice({"early_stopping.rule": settings["rule"]}, "early_stopping.rule", "none", RULES)
    # Without a rule no metric is judged: a multi-objective sweep need not name one.
    metric = _watched_metric(settings["metric"], metrics) if rule != "none" or settings["metric"] else metrics[0]
    min_step = _whole(settings, "min_step", lowest=1)
    # asha's rungs lie below max_step (a full training): at min_step there would be none.
    lowest_max = min_step + 1 if rule == "asha" else min_step
    max_step = None if settings["max_step"] is None else _whole(settings, "max_step", lowest=lowest_max)
    factor = settings["reduction_factor"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 < factor < math.inf:
        raise ConfigError("early_stopping.reduction_factor", f"expected a number > 1 (such as 2 or 3), got {factor!r}")
    step_budget = None if settings["step_budget"] is None else _whole(settings, "step_budget", lowest=1)
    key = "early_stopping.observe_stopped"
    observe_stopped = _choice({key: settings["observe_stopped"]}, key, "last_value", STOPPED_OBSERVATIONS)
    grace = settings["stop_grace_s"]
    if not is_finite_number(grace) or grace < 0:
        raise ConfigError("early_stopping.stop_grace_s", f"expected a number of seconds >= 0, got {grace!r}")
    minimize = metric.objective == "minimize"
    key = "early_stopping.compare_tasks"
    compare_tasks = _choice({key: settings["compare_tasks"]}, key, "apart", TASK_COMPARISONS)
    return StopRule(
        rule,
        metric.name,
        minimize,
        min_step,
        max_step,
        float(factor),
        step_budget,
        observe_stopped,
        float(grace),
        compare_tasks,
    )


def _whole(settings: Mapping[str, Any], key: str, lowest: int) -> int:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(f"early_stopping.{key}", f"expected a whole number >= {lowest}, got {value!r}")
    return value


def _watched_metric(name: Any, metrics: Sequence[Metric]) -> Metric:
    """The metric the rule watches: the one named (it gives the direction), else the optimized one."""
    optimized = [m for m in metrics if m.strategy == "optimize"]
    if name is None and len(optimized) == 1:
        return optimized[0]
    names = [m.name for m in metrics]
    if name is None:
        problem = f"two metrics are optimized ({names}): name the one the rule watches"
        raise ConfigError("early_stopping.metric", f"{problem}; valid values are {names}")
    found = [m for m in metrics if m.name == name]
    if not found:
        raise ConfigError("early_stopping.metric", f"got {name!r}; valid values are the metrics {names}")
    return found[0]


def refuse_optuna_keys(raw: Mapping[str, Any]) -> None:
    """Name every setting of the Optuna sweeper at once, each with what it is here."""
    found = [key for key in OPTUNA_KEYS if raw.get(key) is not None]
    if not found:
        return
    translations = "; ".join(_optuna_translation(key, raw[key]) for key in found)
    raise ConfigError(
        ", ".join(f"hydra.sweeper.{key}" for key in found),
        f"{'this is a setting' if len(found) == 1 else 'these are settings'} of the Optuna sweeper; "
        f"here: {translations} (README: 'Coming from the Optuna sweeper')",
    )


def _optuna_translation(key: str, value: Any) -> str:
    """``key -> what to write here``, with the user's own value where it carries over."""
    if key == "n_trials":
        return f"n_trials -> observation_budget: {value}"
    if key == "n_jobs":
        return f"n_jobs -> parallel_bandwidth: {value}"
    if key == "direction":
        return f"direction -> metrics[].objective, e.g. metrics: {_metrics_for_directions(value)}"
    if key == "sampler":
        seed = value.get("seed") if isinstance(value, Mapping) else None
        if seed is not None:
            return f"sampler.seed -> seed: {seed} (SigOpt's engine replaces the sampler)"
        return "sampler -> none: SigOpt's engine replaces the sampler (seed: <n> for a reproducible sweep)"
    if key in ("storage", "study_name"):
        return f"{key} -> {SWEEP_DIR_TRANSLATION}"
    if key == "search_space":
        return "search_space -> params"
    return "custom_search_space -> conditionals (and conditions on params) or linear_constraints"


def _metrics_for_directions(direction: Any) -> str:
    """The ``metrics`` list that optimizes in Optuna's ``direction`` (one or a list)."""
    if isinstance(direction, Sequence) and not isinstance(direction, str):
        metrics = [f"{{name: metric{i}, objective: {d}}}" for i, d in enumerate(direction)]
        return f"[{', '.join(metrics)}] (a task returning a tuple gives them in this order)"
    return f"[{{name: value, objective: {direction}}}]"


def _seed(raw: Mapping[str, Any]) -> int | None:
    seed = raw.get("seed")
    low, high = SEED_RANGE
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high):
        raise ConfigError(
            "seed", f"expected a whole number or null, got {seed!r}; valid seeds are {low} to 2**32-1 ({high})"
        )
    return seed


def _seconds(raw: Mapping[str, Any], key: str, default: float, allow_inf: bool = False) -> float:
    """A duration in seconds: a number > 0 (finite unless ``allow_inf``)."""
    value = raw.get(key, default)
    if value is None:
        value = default
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0
    if not ok or math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(key, f"expected seconds > 0{'' if allow_inf else ' (a finite number)'}, got {value!r}")
    return float(value)


def _api_settings(raw: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """``hydra.sweeper.api``: known keys only, valid values, and only with ``backend: api``."""
    api = raw.get("api") or {}
    if not isinstance(api, Mapping):
        raise ConfigError("api", "expected a dict of API settings")
    unknown = sorted(str(k) for k in set(api) - set(API_DEFAULTS))
    if unknown:
        raise ConfigError(f"api.{unknown[0]}", f"unknown setting; valid settings are {list(API_DEFAULTS)[:-1]}")
    if backend != "api":
        changed = [k for k, default in API_DEFAULTS.items() if api.get(k, default) != default]
        if changed:
            raise ConfigError(
                f"api.{changed[0]}",
                f"applies to backend: api only, and the backend is {backend!r}; "
                "set hydra.sweeper.backend=api, or remove it",
            )
        return dict(api)
    checked = dict(api)
    checked["timeout"] = _seconds({"api.timeout": api.get("timeout")}, "api.timeout", API_DEFAULTS["timeout"])
    checked["max_unreachable_s"] = _seconds(
        {"api.max_unreachable_s": api.get("max_unreachable_s")},
        "api.max_unreachable_s",
        API_DEFAULTS["max_unreachable_s"],
        allow_inf=True,
    )
    _check_api_url(api.get("api_url"))
    return checked


def _check_api_url(configured: Any) -> None:
    """The API root (``api.api_url``, else ``$SIGOPT_API_URL``) must be an http(s) URL with a host."""
    url, source = configured, "hydra.sweeper.api.api_url"
    if not url:
        url, source = api_url_setting()
    if not url:
        return  # the backend says where the URL goes
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "api.api_url",
            f"{source} is {str(url)!r}, not an http(s) URL; expected e.g. https://sigopt.example.org/api",
        )


def swept_keys(space: Any) -> list[str]:
    """The config keys the sweep sets: its parameters', its conditionals' and the command line's."""
    keys = [bare_key(p.override_key) for p in space.parameters]
    keys += [bare_key(c.get("override_key", c["name"])) for c in space.conditionals]
    return keys + [bare_key(o) for o in space.fixed_overrides]


def sweep_dir_mode(config: Any) -> int | None:
    """``hydra.sweep.mode`` (octal permission bits of the sweep dir, as Hydra reads them), if set."""
    if "mode" not in config.hydra.sweep or config.hydra.sweep.mode is None:
        return None
    text = str(config.hydra.sweep.mode)
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ConfigError("hydra.sweep.mode", f"expected octal permission bits such as 755 or 0o750, got {text!r}")
    return mode


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(key, f"expected a list, got {value!r}")
    return list(value)
