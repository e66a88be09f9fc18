"""benchmarks/multi_fidelity.py's regret: a problem without a known optimum (the digits MLP) is
measured against its own best full training, also in a run of both problems."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def multi_fidelity() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import multi_fidelity

        yield multi_fidelity
    finally:
        sys.path.remove(str(BENCH))


def test_the_digits_regret_is_against_the_digits_best_in_a_run_of_both_problems(multi_fidelity: ModuleType) -> None:
    last = multi_fidelity.curves.MAX_STEP
    optimum = multi_fidelity.curves.OPTIMA["hartmann6_fidelity"]
    values = {
        ("hartmann6_fidelity", "sigopt_full"): optimum + 1.0,
        ("hartmann6_fidelity", "optuna_hyperband"): optimum + 2.0,
        ("digits_mlp", "sigopt_full"): 0.30,
        ("digits_mlp", "optuna_hyperband"): 0.25,
    }
    logs = {(p, c, 0): [{"time": 1.0, "step": last, "value": v}] for (p, c), v in values.items()}
    contenders = ["sigopt_full", "optuna_hyperband"]
    summary = multi_fidelity.summarize(["hartmann6_fidelity", "digits_mlp"], [0], logs, 1, contenders)
    digits = summary["digits_mlp"]
    assert digits["optimum"] == 0.25  # the hartmann values (near -3.3) are another problem's
    assert digits["contenders"]["sigopt_full"]["final"] == [pytest.approx(0.05)]
    assert summary["hartmann6_fidelity"]["contenders"]["sigopt_full"]["final"] == [pytest.approx(1.0)]
