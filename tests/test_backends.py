"""One contract, every backend: the suite below runs against each engine."""

from __future__ import annotations

from collections.abc import Iterator

import numpy
import pytest

from hydra_sigopt.backends import Backend, PastObservation, create_backend
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space


def definition(budget: int = 10, bandwidth: int = 3, **params: object) -> ExperimentDefinition:
    space = build_space(params or {"x": "interval(0, 1)", "n": "int(interval(1, 5))", "opt": "choice(sgd, adam)"})
    return ExperimentDefinition(
        "test", space, parse_metrics([{"name": "y", "objective": "minimize"}]), budget, bandwidth
    )


@pytest.fixture(params=["lite"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    b = create_backend(request.param)
    yield b
    b.close()


def test_suggestions_fit_the_space_and_observations_are_accepted(backend: Backend) -> None:
    d = definition()
    backend.start(d)
    for i in range(3):
        s = backend.suggest([])
        d.space.check(s.assignments)
        assert backend.observe(s, [MetricValue("y", float(i))])


def test_pending_trials_get_distinct_suggestions(backend: Backend) -> None:
    d = definition()
    backend.start(d)
    pending: list[dict[str, object]] = []
    for _ in range(3):
        s = backend.suggest(pending)
        pending.append(dict(s.assignments))
    assert len({tuple(sorted(p.items())) for p in pending}) == 3


def test_failed_observations_and_restore(backend: Backend) -> None:
    d = definition()
    backend.start(d)
    s = backend.suggest([])
    backend.observe(s, failed=True)
    fresh = create_backend(backend.name)
    fresh.start(d)
    fresh.restore(
        [
            PastObservation(s.assignments, failed=True),
            PastObservation({"x": 0.2, "n": 2, "opt": "sgd"}, (MetricValue("y", 1.0),)),
        ]
    )
    d.space.check(fresh.suggest([]).assignments)


def test_lite_engine_runs_under_numpy_2_through_its_gp_phase() -> None:
    assert int(numpy.__version__.split(".")[0]) >= 2
    b = create_backend("lite", seed=1)
    d = definition(budget=12, x="interval(0, 1)", z="tag(log, interval(0.01, 10))")
    b.start(d)
    # Past the random phase (max(2 * dims, 4) observations) the GP makes the suggestions.
    for _ in range(8):
        s = b.suggest([])
        b.observe(s, [MetricValue("y", (s.assignments["x"] - 0.3) ** 2 + s.assignments["z"])])
    s = b.suggest([{"x": 0.5, "z": 1.0}])
    d.space.check(s.assignments)


def test_lite_seed_makes_suggestions_reproducible() -> None:
    def first_three(seed: int) -> list[dict[str, object]]:
        b = create_backend("lite", seed=seed)
        b.start(definition())
        return [dict(b.suggest([]).assignments) for _ in range(3)]

    assert first_three(7) == first_three(7)
    assert first_three(7) != first_three(8)
