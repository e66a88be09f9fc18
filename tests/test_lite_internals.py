"""The lite engine relies on sigoptlite internals to record the running trials' placeholders
without the client's per-request JSON-schema check: fail loudly if they change, and show that the
engine sees (and suggests) exactly what the client route gave it."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from hydra_sigopt.backends import create_backend, lite
from hydra_sigopt.backends.base import Suggestion
from hydra_sigopt.backends.lite import LiteBackend, _broker_of, _engine_copy
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space
from hydra_sigopt.tasks import Task

PARAMS = {
    "x": "interval(0, 1)",
    "n": "int(interval(1, 5))",
    "opt": "choice(sgd, adam)",
    "lr": "tag(log, interval(1e-4, 1))",
}


def definition(tasks: tuple[Task, ...] = ()) -> ExperimentDefinition:
    metrics = parse_metrics([{"name": "y", "objective": "minimize"}, {"name": "t", "strategy": "store"}])
    return ExperimentDefinition("internals", build_space(PARAMS), metrics, 40, 4, tasks=tasks)


def engine(seed: int, observed: int, tasks: tuple[Task, ...] = ()) -> LiteBackend:
    """A seeded lite engine past its random start (``observed`` results)."""
    backend = create_backend("lite", seed=seed)
    assert isinstance(backend, LiteBackend)
    backend.start(definition(tasks))
    for i in range(observed):
        s = backend.suggest([])
        backend.observe(s, [MetricValue("y", (s.assignments["x"] - 0.3) ** 2 + i % 3), MetricValue("t", 1.0)])
    return backend


def by_client(backend: LiteBackend, driver: Any, pending: Sequence[Mapping[str, Any]], liar: Any) -> None:
    """The route the placeholders took before: one observation request each through the client."""
    for assignments in pending:
        backend._record(driver, assignments, liar, failed=not liar, task=backend._full_task())


PENDING = [{"x": 0.5, "n": 2, "opt": "adam", "lr": 0.01}, {"x": 0.1, "n": 5, "opt": "sgd", "lr": 0.5}]


@pytest.mark.parametrize("with_results", [True, False], ids=["mean-lie", "failed-before-any-result"])
@pytest.mark.parametrize("tasks", [(), (Task("short", 0.25, ("epochs=3",)), Task("full", 1.0))], ids=["plain", "tasks"])
def test_placeholders_recorded_directly_are_the_observations_the_client_route_made(
    with_results: bool, tasks: tuple[Task, ...]
) -> None:
    backend = engine(seed=3, observed=6 if with_results else 0, tasks=tasks)
    liar = backend._placeholder_values()
    assert bool(liar) == with_results
    direct, client = copy.deepcopy(backend._driver), copy.deepcopy(backend._driver)
    backend._record_placeholders(direct, PENDING, liar)
    by_client(backend, client, PENDING, liar)
    assert _broker_of(direct).observations == _broker_of(client).observations
    assert len(_broker_of(direct).observations) == len(_broker_of(backend._driver).observations) + len(PENDING)
    for o in _broker_of(direct).observations[-len(PENDING) :]:
        assert dataclasses.is_dataclass(o) and o.failed is not with_results


def test_suggestions_with_trials_running_are_those_of_the_client_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the random start (GP phase), with trials running: the same suggestions, value for value."""

    def run(route: str) -> list[dict[str, Any]]:
        backend = engine(seed=5, observed=12)
        if route == "client":
            monkeypatch.setattr(LiteBackend, "_record_placeholders", by_client)
        made = [dict(backend.suggest(PENDING).assignments) for _ in range(2)]
        monkeypatch.undo()
        return made

    assert run("direct") == run("client")


def test_an_assignment_outside_the_space_is_still_refused() -> None:
    """The engine's own check against the experiment stays on the direct route."""
    backend = engine(seed=1, observed=0)
    with pytest.raises(Exception, match="opt"):
        backend._record_placeholders(copy.deepcopy(backend._driver), [{**PENDING[0], "opt": "lbfgs"}], [])


def test_the_engine_copy_shares_the_recorded_observations_but_not_their_list() -> None:
    """Each suggestion copies the engine to record placeholders; the recorded observations (frozen
    sigoptlite dataclasses) are shared rather than copied, so its cost no longer grows with them."""
    backend = engine(seed=2, observed=8)
    original = _broker_of(backend._driver)
    copied = _broker_of(_engine_copy(backend._driver))
    assert copied.observations == original.observations and copied.observations is not original.observations
    assert all(c is o for c, o in zip(copied.observations, original.observations))
    before = len(original.observations)
    backend.suggest(PENDING)  # placeholders go into the copy only
    assert len(_broker_of(backend._driver).observations) == before


def test_suggestions_from_the_shared_copy_are_those_of_a_deep_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(copier: Any) -> list[dict[str, Any]]:
        monkeypatch.setattr(lite, "_engine_copy", copier)
        backend = engine(seed=7, observed=12)
        made = [dict(backend.suggest(PENDING).assignments) for _ in range(2)]
        monkeypatch.undo()
        return made

    assert run(lite._engine_copy) == run(copy.deepcopy)


def test_the_engine_computes_on_one_blas_thread_and_gives_the_app_its_own_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenBLAS's idle workers spin: beside the engine's thousands of small calls they burnt more CPU
    than the engine itself, on the cores the trials' jobs needed (issue 16). An app running in the
    sweeper's process (basic launcher) keeps its own BLAS threads between suggestions."""
    from sigoptlite.broker import Broker
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen: list[set[int]] = []
    create = Broker.create_suggestion

    def spying(self: Any) -> Any:
        seen.append(blas_threads())
        return create(self)

    monkeypatch.setattr(Broker, "create_suggestion", spying)
    backend = engine(seed=4, observed=10)
    with threadpool_limits(limits=2, user_api="blas"):  # the app's setting, whatever the machine's cores
        backend.suggest(PENDING)
        assert blas_threads() == {2}
    assert seen and seen[-1] == {1}


def test_the_engine_is_told_each_running_trial_at_its_own_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The constant liar recorded every running trial at the full task: a running trial of the cheap
    task was told to the engine as a full training at the mean value, whatever task it ran."""
    tasks = (Task("short", 0.25, ("epochs=3",)), Task("full", 1.0))
    backend = engine(seed=3, observed=6, tasks=tasks)
    copies: list[Any] = []

    def copied(driver: Any) -> Any:
        copies.append(_engine_copy(driver))
        return copies[-1]

    monkeypatch.setattr(lite, "_engine_copy", copied)
    backend.suggest([Suggestion("90", PENDING[0], "short"), Suggestion("91", PENDING[1], "full")])
    told = _broker_of(copies[0]).observations[-2:]
    assert [(dict(o.assignments), o.task.name, o.task.cost) for o in told] == [
        (PENDING[0], "short", 0.25),
        (PENDING[1], "full", 1.0),
    ]
