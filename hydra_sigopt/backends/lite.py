"""The local engine: sigoptlite, SigOpt's optimizer running in the sweeper's process.

sigoptlite hands out one suggestion at a time (while one is open it returns it again) and
rejects ``parallel_bandwidth > 1``. Parallel suggestions are made by the constant-liar method:
the engine is copied, each pending suggestion is recorded in the copy as an observation with a
placeholder value (the mean of the values seen so far), and the copy is asked. Which suggestions
are pending is the scheduler's call (:mod:`hydra_sigopt.scheduler`): those computed on the results
the engine has now, not every running trial. The real engine
only ever receives real observations, with explicit assignments, which is also how a journal is
replayed after a restart. In a multitask sweep each observation carries its task, the placeholders
too: each running trial's own (its Suggestion names it; assignments alone are the full task).

The GP's hyperparameters are fitted at every suggestion while results are few; past
FIT_EVERY_SUGGESTION_UNTIL results a suggestion with nothing pending reuses the last fit until the
results have grown by REFIT_GROWTH (see LiteBackend._kept_fit).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hydra_sigopt.backends.base import Backend, PastObservation, Pending, Suggestion, pending_parts
from hydra_sigopt.backends.engine_random import EngineRandomState
from hydra_sigopt.errors import EngineUnavailableError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue
from hydra_sigopt.sigopt_client import import_sigopt, plain
from hydra_sigopt.tasks import full_task, task_named

log = logging.getLogger("hydra_sigopt")

#: The engine's two packages, installed without their stale pins (see ``hydra-sigopt install-engine``).
ENGINE_PACKAGES = ("sigoptlite==0.1.2", "libsigopt==1.0.0")
INSTALL_HINT = "hydra-sigopt install-engine"

#: Results up to which every suggestion refits the GP's hyperparameters (sigoptlite's own way).
#: The sample-efficiency benchmark's sweeps (30 trials) stay below it, so their suggestions are
#: unchanged. Syne Tune's GP searchers skip the fit the same way (``opt_skip_init_length``).
FIT_EVERY_SUGGESTION_UNTIL = 50
#: Past that, the fit is redone once the results have grown by this fraction since the last one.
#: At 200 results the fit was 0.46 s of a 1.5 s refill; a hyperparameter fitted on 200 results
#: moves little with the next 20 (issue 16).
REFIT_GROWTH = 0.1


def install_command() -> list[str]:
    """The pip command that installs the engine beside a modern numpy."""
    import sys

    return [sys.executable, "-m", "pip", "install", "--no-deps", *ENGINE_PACKAGES]


def load_local_driver() -> type:
    """Import sigoptlite's LocalDriver, or fail with the command that fixes the environment."""
    try:
        import numpy

        # libsigopt and sigoptlite still call numpy.product, removed in numpy 2.
        if not hasattr(numpy, "product"):
            numpy.product = numpy.prod  # type: ignore[attr-defined]
        from sigoptlite import LocalDriver
        from threadpoolctl import threadpool_limits  # noqa: F401  (used by _one_blas_thread)

        _install_fit_keeping_source()

        # libsigopt logs every engine call's inputs and outputs at INFO level.
        logging.getLogger("libsigopt").setLevel(logging.WARNING)
    except Exception as exc:  # ImportError, or a broken binary stack (ABI errors are not ImportError)
        raise EngineUnavailableError(
            f"The local SigOpt engine (sigoptlite) cannot be loaded: {type(exc).__name__}: {exc}. "
            f"Install it with: {INSTALL_HINT}  (runs: python -m pip install --no-deps "
            f"{' '.join(ENGINE_PACKAGES)}; also needs numpy, scipy, jsonschema, threadpoolctl and qmcpy==1.2, "
            "from: pip install 'hydra-sigopt-sweeper[lite]')"
        ) from exc
    return LocalDriver  # type: ignore[no-any-return]


class LiteBackend(Backend):
    """sigoptlite in-process; distinct parallel suggestions by constant liar."""

    name = "lite"

    def __init__(self, compute_mode: str = "default", seed: int | None = None) -> None:
        self._driver_class = load_local_driver()
        self._compute_mode = compute_mode
        self._random = EngineRandomState(seed)
        self._driver: Any = None
        self._definition: ExperimentDefinition | None = None
        self._observed: dict[str, list[float]] = {}
        self._next_id = 1
        self._exhausted = False  # the model found no untried point once (said once in the log)
        self._fit: _Fit | None = None  # the last fit on real results only
        # suggest() may run in the sweep's prefetch thread while observe() runs in the main one.
        self._lock = threading.Lock()

    def _connection(self, driver: Any) -> Any:
        """A ``sigopt.Connection`` over the given driver instance."""
        sigopt = import_sigopt()
        return sigopt.Connection(driver=lambda: driver)

    def start(self, definition: ExperimentDefinition, resume_id: str | None = None) -> str:
        if self._driver is not None:
            assert self.experiment_id is not None
            return self.experiment_id  # started already: the same engine
        self._definition = definition
        self._driver = self._driver_class(compute_mode=self._compute_mode)
        body = definition.to_sigopt()
        body["parallel_bandwidth"] = 1  # sigoptlite refuses more; parallelism is ours (see above)
        experiment = self._connection(self._driver).experiments().create(**body)
        self.experiment_id = str(experiment.id)
        return self.experiment_id

    def attach(self, experiment_id: str) -> None:
        """The engine lives in this process only: there is nothing elsewhere to point at (delete() is a no-op)."""
        self.experiment_id = str(experiment_id)

    def restore(
        self,
        observations: Sequence[PastObservation],
        open_suggestion_ids: Sequence[str] = (),
        used_suggestion_ids: Sequence[str] = (),
    ) -> None:
        for o in observations:
            self.observe(Suggestion(o.suggestion_id or "", o.assignments, o.task), o.values, o.failed)
        # Continue the numbering, and with it the engine's random streams: a resumed sweep must
        # not replay the random points it started with (an abandoned trial's were run again, side
        # by side with a trial of the same point, in a tester's kill-and-resume loops).
        ids = [*(o.suggestion_id for o in observations), *open_suggestion_ids, *used_suggestion_ids]
        self._next_id = max([self._next_id - 1, *_numbers(ids)]) + 1

    def suggest(self, pending: Sequence[Pending]) -> Suggestion:
        with self._lock:
            driver = _engine_copy(self._driver)
            liar = self._placeholder_values()
            sid = str(self._next_id)
            self._next_id += 1
            results = len(_broker_of(driver).observations)
            kept = None if pending else self._kept_fit(results)
        self._record_placeholders(driver, pending, liar)
        with self._random.stream(int(sid)), _one_blas_thread(), _keeping_fit(driver, kept):
            suggestion = self._model_suggestion(driver) or self._random_suggestion()
        if not pending and kept is None:
            self._remember_fit(driver, results)
        task = getattr(suggestion, "task", None)
        assignments = {str(k): plain(v) for k, v in suggestion.assignments.items()}
        return Suggestion(sid, assignments, None if task is None else str(task.name))

    def _kept_fit(self, results: int) -> Any:
        """The last fit's hyperparameters if they may serve a suggestion on ``results`` real results
        with nothing pending, else None (the engine fits anew)."""
        fit = self._fit
        if fit is None or results <= FIT_EVERY_SUGGESTION_UNTIL:
            return None
        return fit.hyperparameters if results < fit.results * (1 + REFIT_GROWTH) else None

    def _remember_fit(self, driver: Any, results: int) -> None:
        """Keep the hyperparameters the engine just fitted in ``driver`` on real results only (none
        while it suggests at random or by its KDE)."""
        hyperparameters = _broker_of(driver).hyperparameters
        if hyperparameters is not None:
            with self._lock:
                self._fit = _Fit(results, copy.deepcopy(hyperparameters))

    def _model_suggestion(self, driver: Any) -> Any:
        """The engine's suggestion, or None when its model finds no untried point.

        That happens in small discrete spaces (``choice(16, 32, 64)`` with a budget of 10) once
        every point was tried: the engine then fails with an IndexError inside its optimizer.
        """
        try:
            suggestion = self._connection(driver).experiments(self.experiment_id).suggestions().create()
        except Exception as exc:
            if not isinstance(exc.__cause__, IndexError):
                raise
            if not self._exhausted:
                log.warning(
                    "The engine's model finds no untried point in this discrete space (%s): "
                    "from now on such trials repeat a point chosen at random",
                    exc,
                )
            self._exhausted = True
            return None
        return suggestion

    def _random_suggestion(self) -> Any:
        """A random point of the space from a fresh random-type experiment (it honours every constraint)."""
        assert self._definition is not None
        body = {**self._definition.to_sigopt(), "type": "random", "parallel_bandwidth": 1}
        connection = self._connection(self._driver_class(compute_mode=self._compute_mode))
        experiment = connection.experiments().create(**body)
        return connection.experiments(experiment.id).suggestions().create()

    def observe(
        self,
        suggestion: Suggestion,
        values: Sequence[MetricValue] = (),
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        with self._lock:
            task = self._task(suggestion.task)
            observation = self._record(self._driver, suggestion.assignments, values, failed, task)
            if not failed:
                for v in values:
                    self._observed.setdefault(v.name, []).append(v.value)
        return None if observation.id is None else str(observation.id)  # the local engine gives none

    def observation_count(self) -> int | None:
        with self._lock:
            experiment = self._connection(self._driver).experiments(self.experiment_id).fetch()
        return int(experiment.progress.observation_count)

    def _record(
        self,
        driver: Any,
        assignments: Mapping[str, Any],
        values: Sequence[MetricValue],
        failed: bool,
        task: Mapping[str, Any] | None = None,
    ) -> Any:
        """Create one observation with explicit assignments (and its task, multitask) in ``driver``."""
        observations = self._connection(driver).experiments(self.experiment_id).observations()
        given: dict[str, Any] = {"assignments": dict(assignments)} | ({"task": dict(task)} if task else {})
        if failed:
            return observations.create(**given, failed=True)
        return observations.create(**given, values=[v.to_sigopt() for v in values])

    def _record_placeholders(self, driver: Any, pending: Sequence[Pending], liar: Sequence[MetricValue]) -> None:
        """Record the running trials in ``driver`` (a copy of the engine) as placeholder observations,
        each at its own task (a cheap task's trial told as a full training would tell the engine the
        full training of that point is under way, and the lie's value is the full task's mean).

        The observations _record would create, built by the same sigoptlite builder and checked
        against the experiment the same way, but without the request's JSON-schema check: it took
        18 ms an observation (3.4 s of a 4.2 s refill at 200 observations and bandwidth 64, under
        cProfile), for dicts this module shapes itself, for every running trial at every suggestion.
        """
        from sigoptlite.builders import LocalObservationBuilder

        broker = _broker_of(driver)
        values = [v.to_sigopt() for v in liar] if liar else None
        for running in pending:
            assignments, task = pending_parts(running)
            given = {
                "assignments": dict(assignments),
                "values": values,
                "failed": not liar,
                "task": self._task(task) if task is not None else self._full_task(),
            }
            observation = LocalObservationBuilder.create_object(**copy.deepcopy(given))
            LocalObservationBuilder.validate_object(observation, broker.experiment)
            broker.observations.append(observation)

    def _task(self, name: str | None) -> dict[str, Any] | None:
        """The engine's form of a task of this sweep (None without tasks)."""
        assert self._definition is not None
        found = task_named(self._definition.tasks, name)
        if self._definition.tasks and found is None:
            raise ValueError("a multitask sweep's observation needs its task")
        return None if found is None else found.to_sigopt()

    def _full_task(self) -> dict[str, Any] | None:
        assert self._definition is not None
        task = full_task(self._definition.tasks)
        return None if task is None else task.to_sigopt()

    def _placeholder_values(self) -> list[MetricValue]:
        """The constant lie for running trials: each metric's mean so far (none before any result)."""
        assert self._definition is not None
        if any(not self._observed.get(m.name) for m in self._definition.metrics):
            return []
        return [MetricValue(m.name, _mean(self._observed[m.name])) for m in self._definition.metrics]


@dataclasses.dataclass(frozen=True)
class _Fit:
    """The GP hyperparameters fitted on ``results`` real results (sigoptlite's list, one per metric)."""

    results: int
    hyperparameters: Any


#: Set in the thread of a suggestion that reuses a fit (see _keeping_fit).
_KEEPING_FIT = threading.local()


@contextlib.contextmanager
def _keeping_fit(driver: Any, hyperparameters: Any) -> Iterator[None]:
    """The engine in ``driver`` suggests with ``hyperparameters`` instead of fitting (None: it fits)."""
    if hyperparameters is None:
        yield
        return
    _broker_of(driver).hyperparameters = copy.deepcopy(hyperparameters)
    _KEEPING_FIT.active = True
    try:
        yield
    finally:
        _KEEPING_FIT.active = False


def _install_fit_keeping_source() -> None:
    """Make sigoptlite's broker build GP sources that skip the fit inside _keeping_fit.

    The broker fits in ``create_suggestion`` through ``GPSource.update_hyperparameters(observations,
    hyperparameters)``, passing its own hyperparameters (pinned by tests/test_lite_fit.py).
    Outside _keeping_fit the subclass is sigoptlite's source unchanged.
    """
    import sigoptlite.broker
    from sigoptlite.sources import GPSource

    if sigoptlite.broker.GPSource is not GPSource:
        return  # installed already

    class FitKeepingGPSource(GPSource):  # type: ignore[misc]
        def update_hyperparameters(self, observations: Any, hyperparameters: Any) -> Any:
            if getattr(_KEEPING_FIT, "active", False) and hyperparameters is not None:
                self.hyperparameters = hyperparameters
                return hyperparameters
            return super().update_hyperparameters(observations, hyperparameters)

    sigoptlite.broker.GPSource = FitKeepingGPSource


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while the engine computes, as it was before, after.

    OpenBLAS's worker threads spin between calls, and the engine makes thousands of small ones:
    in a 32-trial sweep on 2 cores they burnt 45 s of CPU beside the engine's own 35 s, taking it
    from the trials' jobs and slowing each suggestion from 1.25 s to 2.2 s (issue 16). The engine's
    matrices (one row per observation) are too small to gain from threads. The limit is the
    process's and is restored on leaving: an app run in this process keeps its own setting.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _blas_controller() -> Any:
    """The process's thread pools, found once: threadpoolctl's own ``threadpool_limits`` reads
    /proc/self/maps at every call (2 ms a suggestion). The engine's BLAS (numpy's and scipy's) is
    loaded by the time it first suggests; libraries loaded later are not the engine's."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _broker_of(driver: Any) -> Any:
    """The sigoptlite broker (the experiment and its observations) behind a LocalDriver (pinned by
    tests/test_lite_internals.py)."""
    return driver.routes["experiments"]["POST"].__self__.broker


def _engine_copy(driver: Any) -> Any:
    """A copy of the engine to record placeholders in, sharing the original's experiment and
    observations: sigoptlite's are frozen dataclasses it never changes once recorded, and copying
    them made every suggestion's cost grow with the observations (kde_only: 13 ms at 50, 34 ms at
    500, most of it the copy; issue 16). The copy's list of observations is its own."""
    broker = _broker_of(driver)
    shared = [broker.experiment, *broker.observations]
    return copy.deepcopy(driver, memo={id(o): o for o in shared})


def _mean(values: Sequence[float]) -> float:
    """The mean of finite floats without overflow (``statistics.fmean`` overflows near 1e308)."""
    return math.fsum(v / len(values) for v in values)


def _numbers(ids: Sequence[str | None]) -> list[int]:
    """The suggestion numbers among ids (this engine's ids are numbers; a journal may hold others)."""
    return [int(i) for i in ids if i is not None and i.isdigit()]
