"""Declaring metrics, through real sweeps: the refusals and warnings a user reads at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_example, write_app

pytestmark = pytest.mark.slow

WARNING = (
    "hydra.sweeper.metrics: no objective given for ['loss'], so SigOpt's default is used: maximize. "
    "For a loss, set {name: loss, objective: minimize}; to keep maximize, set objective: maximize"
)


@pytest.mark.parametrize("declared", ["[loss]", "[{name: loss}]"])
def test_a_metric_declared_without_objective_is_maximized_with_a_warning(tmp_path: Path, declared: str) -> None:
    """A loss ported as ``metrics=[loss]`` was maximized, said only by the start line's "(maximize)",
    while the sweep's default metric is minimized."""
    app = write_app(
        tmp_path, "observation_budget: 2\nparams:\n  x: interval(-5, 5)", body='return {"loss": (cfg.x - 1) ** 2}'
    )
    run = run_example(tmp_path, f"hydra.sweeper.metrics={declared}", app=app).assert_ok()
    assert run.output.count(WARNING) == 1, run.output[-3000:]
    assert "Metrics: optimizing: loss (maximize)" in run.output
    assert run.results["metrics"] == [{"name": "loss", "objective": "maximize", "strategy": "optimize"}]


def test_a_metric_with_its_objective_is_not_warned_of(tmp_path: Path) -> None:
    app = write_app(
        tmp_path, "observation_budget: 1\nparams:\n  x: interval(-5, 5)", body='return {"loss": (cfg.x - 1) ** 2}'
    )
    run = run_example(tmp_path, "hydra.sweeper.metrics=[{name: loss, objective: minimize}]", app=app).assert_ok()
    assert "no objective given" not in run.output


def test_no_optimized_metric_is_refused_in_words(tmp_path: Path) -> None:
    """It read "0 have strategy 'optimize' ([]); mark the others strategy: store …"."""
    app = write_app(tmp_path, "observation_budget: 1\nparams:\n  x: interval(-5, 5)")
    run = run_example(
        tmp_path, "hydra.sweeper.metrics=[{name: a, strategy: store}, {name: b, strategy: store}]", app=app
    )
    assert run.proc.returncode != 0
    said = (
        "hydra.sweeper.metrics: no metric is optimized, and SigOpt optimizes one or two; "
        "give one or two of ['a', 'b'] strategy: optimize (the default strategy)"
    )
    assert said in run.proc.stderr, run.proc.stderr[-2000:]
    assert "([])" not in run.output
