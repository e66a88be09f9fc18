"""One contract, every backend: the suite below runs against each engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy
import pytest
from sigopt_server import SigOptTestServer

from hydra_sigopt.backends import Backend, PastObservation, create_backend
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space
from hydra_sigopt.tasks import Task


def definition(budget: int = 10, bandwidth: int = 3, **params: object) -> ExperimentDefinition:
    space = build_space(params or {"x": "interval(0, 1)", "n": "int(interval(1, 5))", "opt": "choice(sgd, adam)"})
    return ExperimentDefinition(
        "test", space, parse_metrics([{"name": "y", "objective": "minimize"}]), budget, bandwidth
    )


@pytest.fixture(params=["lite", "api"])
def make_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Backend]]:
    """A factory of backends of one kind (the api kind against a local SigOpt-compatible server)."""
    if request.param == "lite":
        yield lambda: create_backend("lite")
        return
    with SigOptTestServer(tokens={"t0ken"}, suggestions="lite") as server:
        monkeypatch.setenv("SIGOPT_API_TOKEN", "t0ken")
        monkeypatch.setenv("SIGOPT_API_URL", server.url)
        monkeypatch.delenv("SIGOPT_PROJECT", raising=False)
        yield lambda: create_backend("api", settings={"timeout": 10}, dev_run=False)


@pytest.fixture
def backend(make_backend: Callable[[], Backend]) -> Iterator[Backend]:
    b = make_backend()
    yield b
    b.close()


def test_suggestions_fit_the_space_and_observations_are_accepted(backend: Backend) -> None:
    d = definition()
    backend.start(d)
    ids = []
    for i in range(3):
        s = backend.suggest([])
        d.space.check(s.assignments)
        ids.append(backend.observe(s, [MetricValue("y", float(i))]))
    assert backend.observation_count() == 3
    # An id is the engine's own (a server's), or none at all (the local engine gives none).
    assert len(set(ids)) == 3 if backend.name == "api" else ids == [None] * 3


def test_pending_trials_get_distinct_suggestions(backend: Backend) -> None:
    d = definition()
    backend.start(d)
    pending: list[dict[str, object]] = []
    for _ in range(3):
        s = backend.suggest(pending)
        pending.append(dict(s.assignments))
    assert len({tuple(sorted(p.items())) for p in pending}) == 3


def test_failed_observations_restore_and_counts(backend: Backend, make_backend: Callable[[], Backend]) -> None:
    d = definition()
    eid = backend.start(d)
    s = backend.suggest([])
    backend.observe(s, failed=True, metadata={"job_number": 0})
    s2 = backend.suggest([])
    backend.observe(s2, [MetricValue("y", 1.0)], metadata={"job_number": 1})
    assert backend.observation_count() == 2
    # A new process picks the experiment up from the journal's observations.
    fresh = make_backend()
    fresh.start(d, resume_id=eid)
    fresh.restore(
        [
            PastObservation(s.assignments, failed=True, suggestion_id=s.id),
            PastObservation(s2.assignments, (MetricValue("y", 1.0),), suggestion_id=s2.id),
        ]
    )
    assert fresh.observation_count() == 2
    d.space.check(fresh.suggest([]).assignments)


def test_multitask_suggestions_carry_a_task_and_a_restored_engine_keeps_them(
    backend: Backend, make_backend: Callable[[], Backend]
) -> None:
    d = dataclasses.replace(definition(), tasks=(Task("short", 0.25, ("epochs=3",)), Task("full", 1.0)))
    eid = backend.start(d)
    past = []
    for i in range(5):
        s = backend.suggest([])
        assert s.task in ("short", "full"), s
        backend.observe(s, [MetricValue("y", float(i))], metadata={"job_number": i})
        past.append(PastObservation(s.assignments, (MetricValue("y", float(i)),), suggestion_id=s.id, task=s.task))
    fresh = make_backend()
    fresh.start(d, resume_id=eid)
    fresh.restore(past)  # the local engine refuses an observation without its task
    assert fresh.observation_count() == 5
    assert fresh.suggest([]).task in ("short", "full")


def test_start_is_idempotent(backend: Backend) -> None:
    d = definition()
    eid = backend.start(d)
    s = backend.suggest([])
    backend.observe(s, [MetricValue("y", 1.0)])
    assert backend.start(d) == eid and backend.start(d, resume_id=eid) == eid
    assert backend.observation_count() == 1  # the same experiment, not a new one


def test_attach_points_at_an_experiment_that_delete_then_removes(
    backend: Backend, make_backend: Callable[[], Backend]
) -> None:
    d = definition()
    eid = backend.start(d)
    other = make_backend()
    other.attach(eid)
    assert other.experiment_id == eid
    other.delete()
    if backend.name == "api":  # the server experiment is gone; a local engine has nothing elsewhere
        from hydra_sigopt.backends.api import ApiError

        with pytest.raises(ApiError) as info:
            make_backend().start(d, resume_id=eid)
        assert info.value.status == 404


def test_a_posted_observation_is_found_or_the_engine_says_it_cannot_tell(backend: Backend) -> None:
    backend.start(definition())
    s = backend.suggest([])
    oid = backend.observe(s, [MetricValue("y", 1.0)])
    assert backend.find_observation(s) == (oid if backend.name == "api" else None)
    backend.reconcile([])  # nothing open is left to this sweep; it must not fail either way


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


def test_lite_liar_survives_results_near_the_float_limit() -> None:
    """Two finite results near 1e308 overflowed the constant liar's mean, and every resume replayed it."""
    d = definition(bandwidth=2)
    b = create_backend("lite", seed=2)
    b.start(d)
    for value in (1.7e308, 1.6e308):
        b.observe(b.suggest([]), [MetricValue("y", value)])
    running = b.suggest([])
    s = b.suggest([running.assignments])
    d.space.check(s.assignments)
    restored = create_backend("lite", seed=2)
    restored.start(d)
    restored.restore([PastObservation({"x": 0.5, "n": 1, "opt": "sgd"}, (MetricValue("y", -1.7e308),))] * 2)
    d.space.check(restored.suggest([running.assignments]).assignments)


def test_lite_keeps_suggesting_once_every_point_of_a_small_grid_was_tried() -> None:
    """The engine's model fails with an IndexError once a discrete space has no untried point."""
    d = definition(bandwidth=1, x="choice(16, 32, 64)")
    b = create_backend("lite", seed=1)
    b.start(d)
    for i in range(10):
        s = b.suggest([])
        d.space.check(s.assignments)
        b.observe(s, [MetricValue("y", float(i % 3))])
