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


def test_the_asha_bound_simulation_spends_one_step_a_slot_and_stops_by_the_sweepers_rule(
    multi_fidelity: ModuleType,
) -> None:
    """benchmarks/asha_bound.py: every trial's reports are steps 1, 2, ... on one of 4 slots, so no
    configuration is trained to the end before 4 x MAX_STEP steps are spent; ASHA stops most trials."""
    import asha_bound

    last, resource = asha_bound.curves.MAX_STEP, 20 * asha_bound.curves.MAX_STEP
    full = asha_bound.simulate(0, resource, None)
    stopped = asha_bound.simulate(0, resource, asha_bound.asha(3.0, 1))
    for reports in (full, stopped):
        assert len(reports) == resource
        first_full = next(i for i, r in enumerate(reports) if r["step"] == last)
        assert first_full == asha_bound.SLOTS * (last - 1)  # the first slot's last step, in the last round
    assert sum(r["step"] == last for r in full) == resource // last
    started = sum(r["step"] == 1 for r in stopped)
    assert started > 3 * sum(r["step"] == last for r in stopped)  # most trials stopped, each at a rung


@pytest.mark.timeout(120)
def test_the_async_quality_simulation_drives_the_real_scheduler_to_its_budget(multi_fidelity: ModuleType) -> None:
    """benchmarks/async_quality.py carries out the real scheduler's commands in simulated time: once
    the scheduler waited for results to be posted (Posted), the simulation, which answered no post,
    looped for ever (make bench-quick hung in a fresh-clone CI run). Every trial of the budget runs."""
    import async_quality

    simulation = async_quality.Simulation(async_quality.PROBLEMS["branin"], 0, 8, 0.25, "queue", 4)
    result = simulation.run()
    assert len(simulation.values) == 8 and 0 < result["utilisation"] <= 1
