"""Past FIT_EVERY_SUGGESTION_UNTIL results the lite engine reuses its GP fit for refills with
nothing pending, until the results have grown by REFIT_GROWTH (issue 16: at 200 results the fit
was 0.46 s of a 1.5 s refill). Below it, and whenever trials are pending, every suggestion fits."""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterator
from typing import Any

import pytest

from hydra_sigopt.backends import PastObservation, create_backend, lite
from hydra_sigopt.backends.lite import LiteBackend
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space

PARAMS = {"x": "interval(0, 1)", "lr": "tag(log, interval(1e-4, 1))", "opt": "choice(sgd, adam)"}


def loss(a: dict[str, Any]) -> float:
    return (a["x"] - 0.3) ** 2 + abs(a["lr"] - 0.01) + (a["opt"] == "sgd")


def engine_with(results: int) -> LiteBackend:
    """A seeded lite engine that has observed ``results`` random points (as a resumed sweep has)."""
    rng = random.Random(results)
    backend = create_backend("lite", seed=7)
    assert isinstance(backend, LiteBackend)
    metrics = parse_metrics([{"name": "loss", "objective": "minimize"}])
    backend.start(ExperimentDefinition("fit", build_space(PARAMS), metrics, 500, 4))
    past = []
    for _ in range(results):
        a = {"x": rng.random(), "lr": 10 ** rng.uniform(-4, 0), "opt": rng.choice(["sgd", "adam"])}
        past.append(PastObservation(a, (MetricValue("loss", loss(a)),)))
    backend.restore(past)
    return backend


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The hyperparameters each real fit of the engine returned, in order."""
    from sigoptlite.sources import GPSource

    done: list[Any] = []
    fit = GPSource.update_hyperparameters

    def counted(self: Any, observations: Any, hyperparameters: Any) -> Any:
        done.append(fit(self, observations, hyperparameters))
        return done[-1]

    monkeypatch.setattr(GPSource, "update_hyperparameters", counted)
    yield done


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The hyperparameters each GP suggestion was computed with."""
    from sigoptlite.sources import GPSource

    seen: list[Any] = []
    next_point = GPSource.next_point

    def recorded(self: Any, observations: Any) -> Any:
        seen.append(self.hyperparameters)
        return next_point(self, observations)

    monkeypatch.setattr(GPSource, "next_point", recorded)
    yield seen


def refill(backend: LiteBackend) -> None:
    """One trial ends and its slot is refilled, nothing else pending (an asynchronous refill)."""
    s = backend.suggest([])
    backend.observe(s, [MetricValue("loss", loss(dict(s.assignments)))])


def test_past_fifty_results_refills_reuse_the_fit_until_the_results_grow_a_tenth(
    fits: list[Any], used: list[Any]
) -> None:
    backend = engine_with(55)
    for _ in range(6):  # suggested on 55..60 results: 60 < 55 * 1.1
        refill(backend)
    assert len(fits) == 1, "one fit for six refills"
    assert used == [fits[0]] * 6, "each refill used that fit"
    refill(backend)  # on 61 results: refitted
    assert len(fits) == 2 and used[-1] == fits[1]


def test_below_fifty_results_every_suggestion_fits(fits: list[Any]) -> None:
    backend = engine_with(lite.FIT_EVERY_SUGGESTION_UNTIL - 5)
    for _ in range(5):
        refill(backend)
    assert len(fits) == 5


def test_a_suggestion_with_trials_pending_fits_with_their_placeholders_and_keeps_no_fit(
    fits: list[Any], used: list[Any]
) -> None:
    backend = engine_with(60)
    refill(backend)  # the fit on 60 results, kept
    pending = [backend.suggest([]).assignments]  # kept fit, nothing pending
    backend.suggest(pending)  # one pending: a fit with its placeholder, not kept
    refill(backend)
    assert len(fits) == 2
    assert used == [fits[0], fits[0], fits[1], fits[0]]


def test_the_engine_fits_through_the_gp_source_its_broker_module_names() -> None:
    """Pins the sigoptlite internals the kept fit relies on (see lite._install_fit_keeping_source)."""
    import sigoptlite.broker
    from sigoptlite.sources import GPSource

    create_backend("lite")
    assert issubclass(sigoptlite.broker.GPSource, GPSource)
    code = inspect.getsource(sigoptlite.broker.Broker.create_suggestion)
    assert "source = GPSource(self.experiment)" in code
    assert "self.hyperparameters = source.update_hyperparameters(self.observations, self.hyperparameters)" in code
    assert "source.get_suggestion(self.observations)" in code
