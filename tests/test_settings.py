"""Validating hydra.sweeper settings before anything runs, and refusing tokens in the config."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.metrics import Metric
from hydra_sigopt.secrets import refuse_tokens_in_config
from hydra_sigopt.settings import SweepSettings, parse_settings
from hydra_sigopt.stop_rules import StopRule

BASE: dict[str, Any] = {"params": {"lr": "interval(0,1)"}}


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        pytest.param({"observation_budget": 0}, "observation_budget", "a whole number >= 1, got 0", id="budget-0"),
        pytest.param({"observation_budget": -1}, "observation_budget", "whole number >= 1, got -1", id="budget-neg"),
        pytest.param({"observation_budget": 1.5}, "observation_budget", "whole number >= 1, got 1.5", id="budget-1.5"),
        pytest.param({"observation_budget": "x"}, "observation_budget", "whole number >= 1, got 'x'", id="budget-s"),
        pytest.param({"observation_budget": "inf"}, "observation_budget", "got 'inf'", id="budget-inf-text"),
        pytest.param({"warm_jobs": "nan"}, "warm_jobs", "got 'nan'", id="warm-jobs-nan-text"),
        pytest.param({"observation_budget": True}, "observation_budget", "whole number >= 1", id="budget-bool"),
        pytest.param({"observation_budget": None}, "observation_budget", "whole number >= 1", id="budget-null"),
        pytest.param({"parallel_bandwidth": 0}, "parallel_bandwidth", "whole number >= 1, got 0", id="bandwidth-0"),
        pytest.param({"max_failure_rate": -0.1}, "max_failure_rate", "a number from 0 to 1", id="rate-negative"),
        pytest.param({"max_failure_rate": 1.5}, "max_failure_rate", "a number from 0 to 1", id="rate-above-1"),
        pytest.param({"max_failure_rate": math.nan}, "max_failure_rate", "a number from 0 to 1", id="rate-nan"),
        pytest.param({"max_failure_rate": "0.5"}, "max_failure_rate", "a number from 0 to 1", id="rate-text"),
        pytest.param({"backend": "foo"}, "backend", "got 'foo'; valid values are ['lite', 'api']", id="backend"),
        pytest.param({"scheduler": "foo"}, "scheduler", "valid values are ['auto', 'async', 'batch']", id="scheduler"),
        pytest.param(
            {"on_interrupt": "foo"}, "on_interrupt", "valid values are ['cancel', 'detach']", id="on-interrupt"
        ),
        pytest.param(
            {"compute_mode": "foo"}, "compute_mode", "valid values are ['default', 'kde_only']", id="compute-mode"
        ),
        pytest.param(
            {"budget": 10}, "budget", "unknown setting; valid settings are ['name', 'params'", id="unknown-setting"
        ),
        pytest.param({"dev_run": "yes"}, "dev_run", "expected true or false, got 'yes'", id="dev-run-text"),
        pytest.param({"warm_jobs": -1}, "warm_jobs", "expected auto or a whole number >= 0, got -1", id="warm-neg"),
        pytest.param({"warm_jobs": "many"}, "warm_jobs", "expected auto or a whole number >= 0", id="warm-text"),
        pytest.param({"warm_jobs": True}, "warm_jobs", "expected auto or a whole number >= 0", id="warm-bool"),
        pytest.param({"warm_jobs": 1.5}, "warm_jobs", "expected auto or a whole number >= 0", id="warm-float"),
        pytest.param({"seed": 1.5}, "seed", "expected a whole number or null, got 1.5", id="seed-float"),
        pytest.param({"seed": True}, "seed", "expected a whole number or null", id="seed-bool"),
        pytest.param({"progress_interval": 0}, "progress_interval", "expected seconds > 0", id="progress-0"),
        pytest.param({"api": "http://x"}, "api", "expected a dict of API settings", id="api-not-dict"),
        pytest.param({"conditionals": "x"}, "conditionals", "expected a list", id="conditionals-not-list"),
        pytest.param({"metrics": []}, "metrics", "non-empty list", id="metrics-checked"),
        pytest.param({"params": {"lr": "interval(1,0)"}}, "params.lr", "min must be less than max", id="params"),
        pytest.param({"params": {}}, "params", "the search space is empty", id="no-params"),
        pytest.param({"seed": -1}, "seed", "valid seeds are 0 to 2**32-1 (4294967295)", id="seed-negative"),
        pytest.param({"seed": 2**32}, "seed", "valid seeds are 0 to 2**32-1", id="seed-too-large"),
        pytest.param({"progress_interval": math.nan}, "progress_interval", "seconds > 0", id="progress-nan"),
        pytest.param({"progress_interval": math.inf}, "progress_interval", "seconds > 0 (a finite", id="progress-inf"),
        pytest.param({"params": ["lr"]}, "params", "expected a dict {config key: sweep}", id="params-list"),
        pytest.param({"metrics": {"loss": "minimize"}}, "metrics", "expected a non-empty list", id="metrics-dict"),
        pytest.param(
            {"backend": "api", "api": {"url": "http://x"}}, "api.url", "unknown setting; valid", id="api-unknown"
        ),
        pytest.param({"backend": "api", "api": {"timeout": 0}}, "api.timeout", "seconds > 0", id="api-timeout-0"),
        pytest.param({"backend": "api", "api": {"timeout": -5}}, "api.timeout", "seconds > 0", id="api-timeout-neg"),
        pytest.param(
            {"backend": "api", "api": {"max_unreachable_s": -1}}, "api.max_unreachable_s", "seconds > 0", id="unreach"
        ),
        pytest.param(
            {"backend": "api", "api": {"api_url": "notaurl"}}, "api.api_url", "not an http(s) URL", id="api-url"
        ),
        pytest.param(
            {"backend": "api", "api": {"api_url": "ftp://h/api"}}, "api.api_url", "not an http(s) URL", id="api-ftp"
        ),
        pytest.param({"api": {"timeout": 5}}, "api.timeout", "applies to backend: api only", id="api-with-lite"),
        pytest.param({"api": {"project": "p"}}, "api.project", "the backend is 'lite'", id="api-project-lite"),
        pytest.param(
            {"backend": "api", "api": {"api_url": "http://h/api"}, "name": "n" * 101},
            "name",
            "is 101 characters long; SigOpt takes experiment names of at most 100",
            id="api-name-too-long",
        ),
        pytest.param(
            {"early_stopping": "asha"}, "early_stopping", "expected a dict such as {rule: asha", id="es-not-dict"
        ),
        pytest.param(
            {"early_stopping": {"rule": "hyperband"}},
            "early_stopping.rule",
            "got 'hyperband'; valid values are ['none', 'median', 'asha']",
            id="es-rule",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "grace_period": 2}},
            "early_stopping.grace_period",
            "unknown setting; valid settings are ['rule', 'metric', 'min_step', 'max_step', 'reduction_factor', "
            "'step_budget', 'observe_stopped', 'stop_grace_s', 'compare_tasks']",
            id="es-unknown",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "observe_stopped": "last"}},
            "early_stopping.observe_stopped",
            "got 'last'; valid values are ['last_value', 'failed']",
            id="es-observe-stopped",
        ),
        pytest.param(
            {"early_stopping": {"rule": "median", "metric": "val_los"}},
            "early_stopping.metric",
            "got 'val_los'; valid values are the metrics ['value']",
            id="es-metric-unknown",
        ),
        pytest.param(
            {
                "metrics": [{"name": "loss", "objective": "minimize"}, {"name": "acc"}],
                "early_stopping": {"rule": "asha"},
            },
            "early_stopping.metric",
            "two metrics are optimized (['loss', 'acc']): name the one the rule watches; valid values are",
            id="es-metric-ambiguous",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "min_step": 0}},
            "early_stopping.min_step",
            "expected a whole number >= 1, got 0",
            id="es-min-step-0",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "min_step": 1.5}},
            "early_stopping.min_step",
            "expected a whole number >= 1, got 1.5",
            id="es-min-step-float",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "min_step": 4, "max_step": 2}},
            "early_stopping.max_step",
            "expected a whole number >= 5, got 2",
            id="es-max-below-min",
        ),
        pytest.param(  # asha's rungs lie below max_step: none at all would stop nothing
            {"early_stopping": {"rule": "asha", "min_step": 4, "max_step": 4}},
            "early_stopping.max_step",
            "expected a whole number >= 5, got 4",
            id="es-asha-max-at-min",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "reduction_factor": 1}},
            "early_stopping.reduction_factor",
            "expected a number > 1 (such as 2 or 3), got 1",
            id="es-factor-1",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "reduction_factor": math.inf}},
            "early_stopping.reduction_factor",
            "expected a number > 1",
            id="es-factor-inf",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "reduction_factor": True}},
            "early_stopping.reduction_factor",
            "expected a number > 1",
            id="es-factor-bool",
        ),
        pytest.param(
            {"early_stopping": {"step_budget": 0}},
            "early_stopping.step_budget",
            "expected a whole number >= 1, got 0",
            id="es-step-budget-zero",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "step_budget": "40 trainings"}},
            "early_stopping.step_budget",
            "expected a whole number >= 1, got '40 trainings'",
            id="es-step-budget-text",
        ),
        pytest.param(
            {"early_stopping": {"stop_grace_s": -1}},
            "early_stopping.stop_grace_s",
            "expected a number of seconds >= 0, got -1",
            id="es-stop-grace-negative",
        ),
        pytest.param(
            {"early_stopping": {"stop_grace_s": "1m"}},
            "early_stopping.stop_grace_s",
            "expected a number of seconds >= 0, got '1m'",
            id="es-stop-grace-text",
        ),
        pytest.param(
            {"early_stopping": {"rule": "asha", "compare_tasks": "pooled"}},
            "early_stopping.compare_tasks",
            "got 'pooled'; valid values are ['apart', 'together']",
            id="es-compare-tasks",
        ),
    ],
)
def test_bad_settings(change: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, **change})
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"hydra.sweeper.{key}: "), message
    assert says in message, message


def test_a_name_of_100_characters_is_fine_and_lite_has_the_same_limit() -> None:
    """sigoptlite's experiment schema takes names of at most 100 characters too (it refused 101 with a traceback)."""
    parse_settings({**BASE, "backend": "api", "api": {"api_url": "http://h/api"}, "name": "n" * 100})
    parse_settings({**BASE, "name": "n" * 100})
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.name: .* is 101 characters long"):
        parse_settings({**BASE, "name": "n" * 101})


def test_api_url_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGOPT_API_URL", "localhost:4000")
    with pytest.raises(ConfigError, match=r"api_url: SIGOPT_API_URL is 'localhost:4000', not an http\(s\) URL"):
        parse_settings({**BASE, "backend": "api"})


def test_api_defaults_with_lite_and_a_metric_dict_with_a_name_pass() -> None:
    api = {"api_url": None, "timeout": 30.0, "max_unreachable_s": 600.0, "token": None}
    _, definition = parse_settings({**BASE, "api": api, "metrics": {"name": "acc"}})
    assert [m.name for m in definition.metrics] == ["acc"]


def test_every_optuna_setting_is_named_in_one_message_with_its_translation() -> None:
    optuna = {
        "n_trials": 50,
        "direction": "maximize",
        "n_jobs": 4,
        "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 123},
        "storage": "sqlite:///x.db",
        "study_name": "s",
        "search_space": {"x": {"type": "float"}},
        "custom_search_space": "my.module.fn",
    }
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, **optuna, "max_failure_rate": 0.1})
    message = str(info.value)
    assert message.startswith(", ".join(f"hydra.sweeper.{k}" for k in optuna) + ": these are settings of the Optuna")
    for says in (
        "n_trials -> observation_budget: 50",
        "direction -> metrics[].objective, e.g. metrics: [{name: value, objective: maximize}]",
        "n_jobs -> parallel_bandwidth: 4",
        "sampler.seed -> seed: 123",
        "storage -> the sweep dir",
        "study_name -> the sweep dir",
        "search_space -> params",
        "custom_search_space -> conditionals",
    ):
        assert says in message, message


def test_an_optuna_multi_objective_direction_becomes_two_metrics() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, "direction": ["minimize", "maximize"]})
    assert str(info.value).startswith("hydra.sweeper.direction: this is a setting of the Optuna sweeper")
    assert "[{name: metric0, objective: minimize}, {name: metric1, objective: maximize}]" in str(info.value)


def test_bad_command_line_override_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(BASE, ["lr=interval(1,0)"])
    assert str(info.value).startswith("command-line override 'lr=interval(1,0)': min must be less than max")


def test_defaults() -> None:
    settings, definition = parse_settings(BASE, default_name="train")
    assert settings == SweepSettings()
    assert (settings.backend, settings.scheduler, settings.on_interrupt, settings.compute_mode) == (
        "lite",
        "auto",
        "cancel",
        "default",
    )
    assert settings.max_failure_rate == 0.5 and settings.seed is None and settings.resume is None
    assert definition.name == "train"
    assert definition.observation_budget == 20
    assert definition.parallel_bandwidth == 1
    assert definition.type == "offline"
    assert definition.metrics == (Metric("value", "minimize", "optimize"),)
    assert definition.space.names == ["lr"]


def test_early_stopping_watches_the_optimized_metric_in_its_direction_by_default() -> None:
    metrics = [{"name": "seconds", "strategy": "store"}, {"name": "acc", "objective": "maximize"}]
    settings, _ = parse_settings({**BASE, "metrics": metrics, "early_stopping": {"rule": "median"}})
    assert settings.early_stopping == StopRule("median", "acc", minimize=False)
    named = {"rule": "median", "metric": "seconds", "min_step": None, "max_step": None}
    settings, _ = parse_settings({**BASE, "metrics": metrics, "early_stopping": named})
    assert settings.early_stopping == StopRule("median", "seconds", minimize=False)  # store metrics maximize by default


def test_nulls_fall_back_to_defaults() -> None:
    """Structured configs write unset options as null."""
    raw = {**BASE, "name": None, "backend": None, "scheduler": None, "on_interrupt": None, "compute_mode": None}
    settings, definition = parse_settings({**raw, "_target_": "hydra_plugins.x.SigOptSweeper", "resume": None})
    assert settings == SweepSettings()
    assert definition.name == "hydra-sigopt"


def test_every_setting_is_used() -> None:
    raw = {
        **BASE,
        "name": "my-sweep",
        "metrics": [{"name": "acc"}],
        "observation_budget": 50,
        "parallel_bandwidth": 4,
        "max_failure_rate": 0,
        "backend": "api",
        "dev_run": False,
        "compute_mode": "kde_only",
        "seed": 7,
        "scheduler": "batch",
        "on_interrupt": "detach",
        "resume": "multirun/2024-01-01",
        "progress_interval": 2,
        "early_stopping": {"rule": "asha", "min_step": 2, "max_step": 50, "reduction_factor": 4, "step_budget": 2000},
        "api": {"api_url": "http://localhost:4000/api"},
    }
    settings, definition = parse_settings(raw, ["seed_everything=3", "wd=choice(0,0.1)"])
    assert settings == SweepSettings(
        backend="api",
        dev_run=False,
        max_failure_rate=0.0,
        scheduler="batch",
        on_interrupt="detach",
        resume="multirun/2024-01-01",
        progress_interval=2.0,
        compute_mode="kde_only",
        seed=7,
        early_stopping=StopRule(
            "asha", "acc", minimize=False, min_step=2, max_step=50, reduction_factor=4.0, step_budget=2000
        ),
        api={"api_url": "http://localhost:4000/api", "timeout": 30.0, "max_unreachable_s": 600.0},
    )
    assert type(settings.max_failure_rate) is float
    body = definition.to_sigopt()
    assert body["name"] == "my-sweep"
    assert body["observation_budget"] == 50 and body["parallel_bandwidth"] == 4
    assert body["metrics"] == [{"name": "acc", "objective": "maximize", "strategy": "optimize"}]
    assert [p["name"] for p in body["parameters"]] == ["lr", "wd"]
    assert definition.space.fixed_overrides == ("seed_everything=3",)


def test_dev_run_makes_a_random_experiment() -> None:
    settings, definition = parse_settings({**BASE, "dev_run": True})
    assert settings.dev_run is True
    assert definition.type == "random"
    assert definition.to_sigopt()["type"] == "random"


@pytest.mark.parametrize(
    ("rate", "failed", "finished", "exceeded"),
    [
        pytest.param(0.5, 0, 0, False, id="nothing-finished"),
        pytest.param(0.5, 1, 1, False, id="first-trial-failed"),
        pytest.param(0.5, 2, 2, False, id="two-of-two-judged-over-five"),
        pytest.param(0.5, 3, 3, True, id="three-of-three"),
        pytest.param(0.5, 5, 10, False, id="exactly-the-rate"),
        pytest.param(0.5, 6, 10, True, id="above-the-rate"),
        pytest.param(0.0, 1, 1, True, id="zero-rate-any-failure"),
        pytest.param(0.0, 1, 100, True, id="zero-rate-late-failure"),
        pytest.param(0.0, 0, 100, False, id="zero-rate-no-failure"),
        pytest.param(1.0, 10, 10, False, id="rate-one-never"),
    ],
)
def test_failure_rate_exceeded(rate: float, failed: int, finished: int, exceeded: bool) -> None:
    settings, _ = parse_settings({**BASE, "max_failure_rate": rate})
    assert settings.failure_rate_exceeded(failed, finished) is exceeded


# --------------------------------------------------------------------------------------------
# Tokens never come from the config
# --------------------------------------------------------------------------------------------

SECRET = "s3cr3t-T0KEN-value"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param({"api": {"token": SECRET}}, "api.token", id="api-token"),
        pytest.param({"api_token": SECRET}, "api_token", id="api_token"),
        pytest.param({"api": {"url": "http://x", "client_token": SECRET}}, "api.client_token", id="client-token"),
        pytest.param({"SIGOPT_API_TOKEN": SECRET}, "SIGOPT_API_TOKEN", id="env-style"),
        pytest.param({"api": {"password": SECRET}}, "api.password", id="password"),
        pytest.param({"api": {"auth": {"secret": SECRET}}}, "api.auth.secret", id="nested"),
        pytest.param({"api": {"api_key": SECRET}}, "api.api_key", id="api-key"),
    ],
)
def test_tokens_in_config_are_refused(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        refuse_tokens_in_config({**BASE, **raw})
    message = str(info.value)
    assert message.startswith(f"hydra.sweeper.{key}: "), message
    assert "SIGOPT_API_TOKEN" in message and "SIGOPT_ENV_FILE" in message
    assert SECRET not in message
    assert SECRET not in repr(info.value)


def test_ordinary_settings_and_parameters_named_like_tokens_pass() -> None:
    raw = {
        "params": {"max_tokens": "choice(128,256)", "tokenizer": "choice(bpe,wordpiece)"},
        "api": {"api_url": "http://localhost:4000/api", "verify_ssl_certs": False},
        "backend": "api",
        "observation_budget": 10,
    }
    refuse_tokens_in_config(raw)
    _, definition = parse_settings(raw)
    assert definition.space.names == ["max_tokens", "tokenizer"]


def test_two_optimized_metrics_need_no_early_stopping_metric_without_a_rule() -> None:
    """The default (rule none) refused every multi-objective sweep (caught by test_return_conventions)."""
    metrics = [{"name": "loss", "objective": "minimize"}, {"name": "acc", "objective": "maximize"}]
    settings, _ = parse_settings({**BASE, "metrics": metrics})
    assert not settings.early_stopping.active
    with pytest.raises(ConfigError, match="name the one the rule watches"):
        parse_settings({**BASE, "metrics": metrics, "early_stopping": {"rule": "asha"}})
