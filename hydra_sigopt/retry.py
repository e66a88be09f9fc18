"""One way to retry a call that may fail for a while: capped exponential backoff under a deadline.

Generic on purpose (the SigOpt API's calls use it; so can ``sbatch`` while slurmctld restarts): a
:class:`RetryPolicy` says how long to keep trying, and a function passed in says which failures
are worth another try (transient) and which are final (permanent: re-raised at once). The clock and
the sleep are injectable, so the policy is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Pauses of ``base_s``, doubling up to ``cap_s``; give up at ``deadline_s`` or after ``attempts``.

    ``deadline_s`` counts from the start of the first failed attempt (an attempt that hangs until
    its timeout is time out of reach too). No attempt is started that cannot end by the deadline:
    a pause is shortened to leave the next attempt ``min_attempt_s``, the least time it needs, and
    when even that does not fit, the call gives up. The first attempt is always made.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    deadline_s: float | None = None
    attempts: int | None = None
    min_attempt_s: float = 0.0

    def __post_init__(self) -> None:
        if self.deadline_s is None and self.attempts is None:
            raise ValueError("a retry policy needs a deadline, a number of attempts, or both")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.min_attempt_s < 0:
            raise ValueError("min_attempt_s must not be negative")

    def pauses(self) -> Iterator[float]:
        """The uncapped-by-deadline pauses, in order: base, 2 * base, ... up to the cap."""
        pause = self.base_s
        while True:
            yield min(pause, self.cap_s)
            pause *= 2


class RetriesExhausted(Exception):
    """Every attempt the policy allowed failed with a transient error; ``last`` is the last one."""

    def __init__(self, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"gave up after {attempts} attempts in {elapsed_s:.1f} s: {last}")
        self.last = last
        self.attempts = attempts
        self.elapsed_s = elapsed_s


class Backoff:
    """A policy's pauses one failure at a time, for a loop that must not block on a retry (it tries
    again later: ``sbatch`` while slurmctld restarts). :func:`retry` is the blocking form."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._pauses = policy.pauses()
        self.attempts = 0
        self.first_failure: float | None = None

    def failed(self, now: float, started: float | None = None) -> float | None:
        """One more failed attempt, ended at ``now`` (begun at ``started``, if known): the pause before
        the next one, or None to give up."""
        self.attempts += 1
        if self.first_failure is None:
            self.first_failure = now if started is None else started
        return _next_pause(self.policy, self._pauses, self.attempts, self.elapsed(now))

    def elapsed(self, now: float) -> float:
        """Seconds since the first failure (since its attempt began, when that is known)."""
        return 0.0 if self.first_failure is None else now - self.first_failure

    def time_left(self, now: float) -> float:
        """Seconds until the deadline (infinite without one)."""
        if self.policy.deadline_s is None:
            return float("inf")
        return self.policy.deadline_s - self.elapsed(now)


def retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
    before_retry: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried again after each transient failure until the policy gives up.

    A permanent failure is raised as it is; giving up raises :class:`RetriesExhausted` from the last
    failure. ``on_retry(error, pause)`` is called before each pause (to log it); ``before_retry(left)``
    just before each attempt but the first, with the seconds left until the deadline (so that the
    caller can shorten that attempt's timeout to end by it).
    """
    backoff = Backoff(policy)
    while True:
        started = clock()
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = clock()
            pause = backoff.failed(now, started)
            if pause is None:
                raise RetriesExhausted(exc, backoff.attempts, backoff.elapsed(now)) from exc
            if on_retry is not None:
                on_retry(exc, pause)
            sleep(pause)
            if before_retry is not None:
                before_retry(backoff.time_left(clock()))


def _next_pause(policy: RetryPolicy, pauses: Iterator[float], attempt: int, elapsed: float) -> float | None:
    """The pause before the next attempt, or None when the policy allows no more."""
    if policy.attempts is not None and attempt >= policy.attempts:
        return None
    pause = next(pauses)
    if policy.deadline_s is None:
        return pause
    # The longest pause that still leaves the next attempt its least time before the deadline.
    room = policy.deadline_s - elapsed - policy.min_attempt_s
    if room <= 0:
        return None
    return min(pause, room)
