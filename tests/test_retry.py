"""The one retry helper (hydra_sigopt/retry.py), on a fake clock: no test here waits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_sigopt.retry import RetriesExhausted, RetryPolicy, retry


class FakeTime:
    """A clock that only moves when slept on, or when an attempt takes time."""

    def __init__(self, attempt_s: float = 0.0) -> None:
        self.now = 0.0
        self.attempt_s = attempt_s
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def failing(times: int, fake: FakeTime, error: type[Exception] = Transient) -> object:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        fake.now += fake.attempt_s
        if calls["n"] <= times:
            raise error(f"failure {calls['n']}")
        return "ok"

    call.calls = calls  # type: ignore[attr-defined]
    return call


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


def run(call: object, policy: RetryPolicy, fake: FakeTime) -> str:
    return retry(call, policy, is_transient, clock=fake.clock, sleep=fake.sleep)  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_cap() -> None:
    fake = FakeTime()
    assert run(failing(7, fake), RetryPolicy(base_s=0.5, cap_s=4.0, deadline_s=600), fake) == "ok"
    assert fake.pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_a_permanent_failure_is_raised_at_once() -> None:
    fake = FakeTime()
    call = failing(1, fake, Permanent)
    with pytest.raises(Permanent):
        run(call, RetryPolicy(deadline_s=600), fake)
    assert fake.pauses == [] and call.calls["n"] == 1  # type: ignore[attr-defined]


def test_attempts_limit_the_tries() -> None:
    fake = FakeTime()
    call = failing(10, fake)
    with pytest.raises(RetriesExhausted) as info:
        run(call, RetryPolicy(attempts=3), fake)
    assert call.calls["n"] == 3 and info.value.attempts == 3  # type: ignore[attr-defined]
    assert isinstance(info.value.last, Transient) and info.value.__cause__ is info.value.last


def test_refused_connections_give_up_at_the_deadline_not_after_the_next_pause() -> None:
    """Issue 15: a limit of 8 s was reported as 16 s (a full 8 s pause slept past the deadline)."""
    fake = FakeTime()
    with pytest.raises(RetriesExhausted) as info:
        run(failing(100, fake), RetryPolicy(base_s=0.5, cap_s=30, deadline_s=8), fake)
    assert fake.pauses == [0.5, 1.0, 2.0, 4.0, 0.5]
    assert info.value.elapsed_s == pytest.approx(8.0)


def test_on_retry_sees_each_failure_and_pause() -> None:
    fake = FakeTime()
    seen: list[tuple[str, float]] = []
    retry(
        failing(2, fake),  # type: ignore[arg-type]
        RetryPolicy(deadline_s=60),
        is_transient,
        on_retry=lambda exc, pause: seen.append((str(exc), pause)),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert seen == [("failure 1", 0.5), ("failure 2", 1.0)]


def test_a_policy_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy()
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@settings(deadline=None)  # a small cap under a long deadline is thousands of (fake) pauses
@given(
    base=st.floats(0.01, 5),
    cap=st.floats(0.1, 60),
    deadline=st.floats(0.1, 1000),
    attempt_s=st.floats(0, 10),
)
def test_pauses_never_pass_the_cap_nor_the_deadline(base: float, cap: float, deadline: float, attempt_s: float) -> None:
    fake = FakeTime(attempt_s)
    with pytest.raises(RetriesExhausted) as info:
        run(failing(10**9, fake), RetryPolicy(base_s=base, cap_s=cap, deadline_s=deadline), fake)
    assert all(0 < p <= max(cap, base) for p in fake.pauses)
    # Time spent pausing never passes the deadline; the whole overshoots it by one attempt at most.
    assert sum(fake.pauses) <= deadline + 1e-9
    assert info.value.elapsed_s <= deadline + attempt_s + 1e-9
