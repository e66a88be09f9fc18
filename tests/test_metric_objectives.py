"""Declaring metrics, through real sweeps: the refusals and warnings a user reads at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_example, write_app

pytestmark = pytest.mark.slow


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
