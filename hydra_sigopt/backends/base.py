"""The engine seam: what the sweep needs from SigOpt, whichever SigOpt it is.

Contract every backend honours (tests/test_backends.py runs the same suite against each):

* ``sweep_id`` (set by the sweep before ``start``) is the sweep's own id from its journal. An
  engine shared by several sweeps (a server experiment several sweeps attach to) tags what it
  creates with it, so that it never mistakes another sweep's suggestions for its own.
* ``start(definition, resume_id)`` creates the experiment, or attaches to ``resume_id`` (the
  journal's experiment, on resume) or to the one named at construction, and returns its id. It
  comes before the other methods but ``attach``; called again, it returns the same id and
  creates nothing.
* ``attach(experiment_id)`` points a fresh backend at an existing experiment without starting a
  sweep on it (no checks, no suggestions): what ``hydra-sigopt delete`` needs before ``delete()``.
* ``restore(observations, open_suggestion_ids)`` brings a fresh backend up to a journal's state
  after a restart: afterwards suggestions take those observations into account. Engines that keep
  their own state (a SigOpt server) hold the observations already; they keep the open suggestions
  the journal still uses (``open_suggestion_ids``) and delete this sweep's others. An engine
  that numbers its suggestions itself numbers the next after every id the journal holds
  (``used_suggestion_ids``, those of abandoned trials too), so that none is given twice.
* ``reconcile(keep_suggestion_ids)`` deletes this sweep's open suggestions but those (called when
  a sweep stops: a server counts an open suggestion as work in progress).
* ``find_observation(suggestion)`` is the id of the engine's observation of that suggestion if it
  has one already (a result posted just before a crash), else None.
* ``suggest(pending)`` returns one new suggestion. ``pending`` lists the assignments of the
  suggestions made on the results the engine has now, running or ready (a synchronous batch: the
  batch so far); the suggestion should differ from them (that is what keeps N parallel slots
  exploring N different points). It may be called from a worker thread, never from two threads at
  once.
* ``observe(suggestion, values=..., failed=...)`` records one result and returns an id. Called at
  most once per suggestion by the sweep; a backend that may see a retried call after a lost
  answer must make sure it records the observation once.
* ``discard(suggestion)`` forgets an open suggestion that will never be observed.
* ``delete()`` removes the experiment where it lives remotely; ``close()`` frees resources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue


@dataclass(frozen=True)
class Suggestion:
    id: str
    assignments: Mapping[str, Any]
    #: The name of the task the engine chose (multitask sweeps only).
    task: str | None = None


#: A running trial the engine must not suggest again: its suggestion (which names its task in a
#: multitask sweep), or its assignments alone (a trial of the full task).
Pending = Mapping[str, Any] | Suggestion


def pending_parts(pending: Pending) -> tuple[Mapping[str, Any], str | None]:
    """A running trial's assignments and task name (None: the full task, or no tasks)."""
    if isinstance(pending, Suggestion):
        return pending.assignments, pending.task
    return pending, None


@dataclass(frozen=True)
class PastObservation:
    """A result read from the journal, replayed into an engine on resume."""

    assignments: Mapping[str, Any]
    values: tuple[MetricValue, ...] = ()
    failed: bool = False
    suggestion_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None  # multitask sweeps: the task it was run at


class Backend(ABC):
    """Base class of the SigOpt engines; see the module docstring for the contract."""

    #: Short name used in config (``hydra.sweeper.backend``) and in the journal.
    name: str = "abstract"

    experiment_id: str | None = None
    #: The sweep's id (from its journal); see the module docstring.
    sweep_id: str | None = None
    #: Whether ``start`` attached to an experiment named at construction, which the sweep did not
    #: create (``hydra.sweeper.api.experiment_id``): other sweeps may share it, so it is never deleted.
    experiment_shared: bool = False
    #: The app's code a new sweep's trials run (commit, dirty, diff hash, as its journal records them),
    #: set by the sweep before ``start``; an engine that records where an experiment came from uses it.
    code: Mapping[str, Any] | None = None
    #: When the engine made the experiment (a SigOpt server's ``created``), known once ``start`` ran; the
    #: journal keeps it. ``expected_created`` is the journal's record, set before a resume's ``start``:
    #: an engine that can tell refuses another experiment under the same id (None: not recorded).
    experiment_created: int | None = None
    expected_created: int | None = None
    #: The id of the sweep that created the experiment (from its metadata; None: unknown), known once
    #: ``start`` ran, and the journal's record of it: told apart where ``created`` cannot (one second).
    experiment_tag: str | None = None
    expected_tag: str | None = None

    @abstractmethod
    def start(self, definition: ExperimentDefinition, resume_id: str | None = None) -> str: ...

    @abstractmethod
    def attach(self, experiment_id: str) -> None: ...

    @abstractmethod
    def restore(
        self,
        observations: Sequence[PastObservation],
        open_suggestion_ids: Sequence[str] = (),
        used_suggestion_ids: Sequence[str] = (),
    ) -> None: ...

    @abstractmethod
    def suggest(self, pending: Sequence[Pending]) -> Suggestion: ...

    @abstractmethod
    def observe(
        self,
        suggestion: Suggestion,
        values: Sequence[MetricValue] = (),
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None: ...  # the observation's id, where the engine gives one

    def observation_count(self) -> int | None:
        """How many observations the engine holds (None where it cannot tell)."""
        return None

    def best_assignments(self) -> list[dict[str, Any]] | None:
        """The engine's own best assignments and values (None where the sweep computes them)."""
        return None

    def public_settings(self) -> dict[str, Any]:
        """Settings worth keeping in the journal to reach the experiment later (never a token)."""
        return {}

    def find_observation(self, suggestion: Suggestion) -> str | None:
        """The engine's observation of ``suggestion`` (None for engines that only hold what the journal replays)."""
        return None

    def reconcile(self, keep_suggestion_ids: Sequence[str]) -> None:
        """Delete this sweep's open suggestions but ``keep_suggestion_ids`` (engines that keep none: nothing)."""

    def discard(self, suggestion: Suggestion) -> None:
        """Forget an open suggestion (nothing to do for engines that keep none open)."""

    def delete(self) -> None:
        """Delete the experiment where it lives (nothing to do for in-process engines)."""

    def close(self) -> None:
        """Free resources."""
