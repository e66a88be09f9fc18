"""Issue 16: a sweep whose space or settings make the local engine's GP slow says so at start, with
the setting that helps (hydra_sigopt/engine_speed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt.engine_speed import MANY_OBSERVATIONS, WIDE_CATEGORICAL, slow_engine_warnings
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
