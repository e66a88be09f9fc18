"""Issue 16: a sweep whose space or settings make the local engine's GP slow says so at start, with
the setting that helps (hydra_sigopt/engine_speed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt.engine_speed import (
    MANY_OBSERVATIONS,
    WIDE_CATEGORICAL,
    random_start_length,
    slow_engine_warnings,
    stopped_as_failed_warning,
)
from hydra_sigopt.settings import parse_settings
from tests.conftest import run_example, write_app

WIDE = "choice(" + ",".join(f"v{i}" for i in range(WIDE_CATEGORICAL)) + ")"


def _warnings(**raw: Any) -> list[str]:
    return slow_engine_warnings(*parse_settings({"params": {"x": "interval(0, 1)"}, **raw}))


def test_a_wide_categorical_is_named_with_kde_only() -> None:
    (line,) = _warnings(params={"x": "interval(0, 1)", "c": WIDE})
    assert f"params.c is a categorical of {WIDE_CATEGORICAL} values" in line
    assert "compute_mode=kde_only" in line


def test_a_budget_of_hundreds_is_named_with_kde_only() -> None:
    (line,) = _warnings(observation_budget=MANY_OBSERVATIONS)
    assert f"observation_budget is {MANY_OBSERVATIONS}" in line
    assert "compute_mode=kde_only" in line


def test_with_cheap_tasks_the_observations_the_budget_allows_are_counted() -> None:
    """With tasks the budget counts costs: 40 full trainings at a cost of 0.1 are 400 observations."""
    tasks = [{"name": "short", "cost": 0.1}, {"name": "full", "cost": 1}]
    (line,) = _warnings(observation_budget=40, tasks=tasks)
    assert "observation_budget is 40 with tasks costing down to 0.1 (up to 400 observations)" in line


@pytest.mark.parametrize(
    "raw",
    [
        {"observation_budget": MANY_OBSERVATIONS - 1},
        {"params": {"c": "choice(" + ",".join(f"v{i}" for i in range(WIDE_CATEGORICAL - 1)) + ")"}},
        {"observation_budget": 1000, "compute_mode": "kde_only"},
        {"observation_budget": 1000, "dev_run": True},
    ],
    ids=["budget-below", "categorical-below", "kde_only", "dev_run"],
)
def test_nothing_is_said_where_the_gp_is_not_slow_or_not_used(raw: dict[str, Any]) -> None:
    assert _warnings(**raw) == []


def test_the_sweep_says_it_at_start(tmp_path: Path) -> None:
    app = write_app(tmp_path, f"observation_budget: 1\nparams:\n  x: interval(0, 1)\n  y: '{WIDE}'")
    run = run_example(tmp_path, app=app).assert_ok()
    assert f"The sweep will be slow: params.y is a categorical of {WIDE_CATEGORICAL} values" in run.output


STOPPED_AS_FAILED = {
    "params": {"x": "interval(0, 1)", "y": "interval(0, 1)", "z": "interval(0, 1)"},
    "early_stopping": {"rule": "asha", "max_step": 27, "observe_stopped": "failed"},
}


def test_stopped_trials_observed_as_failed_are_named_with_the_trials_the_engine_needs() -> None:
    """A stopped trial observed as failed does not end the engine's random start: with ASHA, few trials
    complete, and on Hartmann-6 the sweep was random search throughout (README, "Benchmarks")."""
    line = stopped_as_failed_warning(*parse_settings(STOPPED_AS_FAILED))
    assert line is not None and "suggests at random until 7 trials have completed" in line
    assert "observe_stopped=last_value (the default)" in line
    for quiet in ({"observe_stopped": "last_value"}, {"rule": "none", "step_budget": 100}):
        raw = {**STOPPED_AS_FAILED, "early_stopping": {**STOPPED_AS_FAILED["early_stopping"], **quiet}}
        assert stopped_as_failed_warning(*parse_settings(raw)) is None
    assert stopped_as_failed_warning(*parse_settings({**STOPPED_AS_FAILED, "dev_run": True})) is None


def test_the_engine_leaves_its_random_start_after_the_completed_trials_named() -> None:
    """Tripwire on sigoptlite's rule (``Broker.is_initialization_phase``): failed observations do not count."""
    from hydra_sigopt.backends import PastObservation, create_backend
    from hydra_sigopt.backends.lite import _broker_of
    from hydra_sigopt.experiment import ExperimentDefinition
    from hydra_sigopt.metrics import MetricValue, parse_metrics
    from hydra_sigopt.space import build_space

    def broker_after(completed: int) -> Any:
        backend = create_backend("lite", seed=1)
        space = build_space(STOPPED_AS_FAILED["params"])
        backend.start(ExperimentDefinition("t", space, parse_metrics([{"name": "v", "objective": "minimize"}]), 99, 1))
        point = {"x": 0.5, "y": 0.5, "z": 0.5}
        done = [PastObservation(point, (MetricValue("v", float(i)),)) for i in range(completed)]
        backend.restore([*done, *(PastObservation(point, failed=True) for _ in range(30))])
        return _broker_of(backend._driver)  # type: ignore[attr-defined]

    assert broker_after(random_start_length(3) - 1).is_initialization_phase
    assert not broker_after(random_start_length(3)).is_initialization_phase


def test_the_sweep_says_it_at_start_when_stopped_trials_are_failed(tmp_path: Path) -> None:
    early = "early_stopping: {rule: asha, max_step: 9, observe_stopped: failed}"
    settings = f"observation_budget: 1\nparams:\n  x: interval(0, 1)\n{early}"
    run = run_example(tmp_path, app=write_app(tmp_path, settings)).assert_ok()
    assert "early_stopping.observe_stopped=failed: the local engine suggests at random until 5 trials" in run.output
