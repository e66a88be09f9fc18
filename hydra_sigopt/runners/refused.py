"""Trials whose job the cluster refused for now, submitted again with capped backoff.

A slurmctld restart or failover makes ``sbatch`` fail for a while ("Unable to contact slurm
controller", ...). The sweep must not stop for that, nor block on it: the refused trials wait
here, in start order, and :meth:`RefusedSubmissions.retry_due` submits them again once a try is
due (2, 4, 8, ... up to 30 s apart), while the runner goes on collecting the other trials' results.
A refusal that will not pass, or refusals for longer than the limit, are raised. The pauses are the
project's one retry policy (:mod:`hydra_sigopt.retry`), taken one failure at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from hydra_sigopt.retry import Backoff, RetryPolicy
from hydra_sigopt.runners.slurm import is_transient_refusal

log = logging.getLogger(__name__)

#: Pauses between tries: doubling from the first, at most the second; given up after the third.
FIRST_PAUSE_S = 2.0
MAX_PAUSE_S = 30.0
LIMIT_S = 600.0
POLICY = RetryPolicy(base_s=FIRST_PAUSE_S, cap_s=MAX_PAUSE_S, deadline_s=LIMIT_S)


class Waiting(NamedTuple):
    """A trial waiting for its job: its overrides, and how often a job of it died at its launch."""

    overrides: list[str]
    relaunches: int = 0


class RefusedSubmissions:
    """The trials waiting for the cluster to accept jobs again; ``submit(number, overrides)`` submits one."""

    def __init__(self, submit: Callable[[int, list[str]], Any], clock: Callable[[], float] = time.monotonic) -> None:
        self.submit = submit
        self.clock = clock
        self._waiting: dict[int, Waiting] = {}
        self._backoff: Backoff | None = None  # while the cluster refuses
        self._next_try_at = 0.0
        self._last_refusal = ""  # sbatch's own words

    @property
    def refusing(self) -> bool:
        """Whether the cluster refused the last try (new trials then queue behind the waiting ones)."""
        return self._backoff is not None

    def numbers(self) -> list[int]:
        return sorted(self._waiting)

    def add(self, number: int, overrides: Sequence[str], refusal: Exception | None = None, relaunches: int = 0) -> None:
        """Queue a trial: its submission was just refused (``refusal``), or the cluster refuses for now.

        Queued before a refusal that will not pass is raised: the sweep stops on it, and must know
        that this trial's job was never submitted (not left running, nor cancelled)."""
        self._waiting[number] = Waiting(list(overrides), relaunches)
        if refusal is not None:
            self._note(refusal)

    def retry_due(self) -> list[tuple[int, Any, Waiting]]:
        """Submit the waiting trials in order, if a try is due; (number, job, what waited) of those
        that went through."""
        if self._backoff is None or self.clock() < self._next_try_at:
            return []
        started: list[tuple[int, Any, Waiting]] = []
        for number, waiting in list(self._waiting.items()):
            try:
                job = self.submit(number, waiting.overrides)
            except Exception as exc:
                self._note(exc)  # the rest wait for the next try
                return started
            del self._waiting[number]
            started.append((number, job, waiting))
            log.info("Trial #%d: job %s submitted after %.0f s of refusals", number, job.job_id, self._refused_for())
        self._backoff = None
        return started

    def clear(self) -> list[int]:
        """Forget the waiting trials (they never started: nothing to cancel); their numbers."""
        numbers, self._waiting = self.numbers(), {}
        return numbers

    def last_refusal(self) -> str:
        """Why the waiting trials wait: the cluster's last refusal, in one line (sbatch's own words)."""
        return self._last_refusal

    def _note(self, exc: Exception) -> None:
        """Raise a refusal that will not pass, or the last one the policy allows; else plan the next try."""
        self._last_refusal = _last_line(str(exc))
        if not is_transient_refusal(str(exc)):
            raise exc
        self._backoff = self._backoff or Backoff(POLICY)
        pause = self._backoff.failed(self.clock())
        if pause is None:
            raise exc
        self._next_try_at = self.clock() + pause
        log.warning(
            "The cluster refuses jobs for now (%s); trying again in %.0f s (refused for %.0f s, gives up after %.0f s)",
            _last_line(str(exc)),
            pause,
            self._refused_for(),
            LIMIT_S,
        )

    def _refused_for(self) -> float:
        return 0.0 if self._backoff is None else self._backoff.elapsed(self.clock())


def _last_line(text: str) -> str:
    """The last non-empty line of a command's error output (sbatch's own message)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
