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


def test_the_deadline_counts_from_the_start_of_the_first_failed_attempt() -> None:
    """Issue 15: attempts that hang until their timeout (a frozen server, timeout 3, limit 8) gave up
    after 14 s reporting 11 s: the first attempt's 3 s were not counted, and the last one ran 3 s past."""
    fake = FakeTime(attempt_s=3.0)
    with pytest.raises(RetriesExhausted) as info:
        run(failing(100, fake), RetryPolicy(base_s=0.5, cap_s=30, deadline_s=8, min_attempt_s=3.0), fake)
    assert fake.pauses == [0.5]  # after 3.5 + 3 s, a third attempt could not end by the deadline
    assert info.value.elapsed_s == fake.now == pytest.approx(6.5)


def test_before_retry_is_told_the_time_left_so_that_the_attempt_can_end_by_the_deadline() -> None:
    fake = FakeTime()
    lefts: list[float] = []

    def call() -> str:
        fake.now += min(3.0, lefts[-1]) if lefts else 3.0  # a timeout cut to the time left
        raise Transient("frozen")

    policy = RetryPolicy(base_s=0.5, cap_s=30, deadline_s=8, min_attempt_s=1.0)
    with pytest.raises(RetriesExhausted) as info:
        retry(call, policy, is_transient, before_retry=lefts.append, clock=fake.clock, sleep=fake.sleep)
    assert fake.pauses == [0.5, 0.5] and lefts == [pytest.approx(4.5), pytest.approx(1.0)]
    assert info.value.elapsed_s == fake.now == pytest.approx(8.0)


def test_the_first_attempt_is_made_whatever_the_deadline() -> None:
    fake = FakeTime(attempt_s=5.0)
    call = failing(100, fake)
    with pytest.raises(RetriesExhausted):
        run(call, RetryPolicy(deadline_s=1, min_attempt_s=1.0), fake)
    assert call.calls["n"] == 1  # type: ignore[attr-defined]


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
    with pytest.raises(ValueError, match="min_attempt_s"):
        RetryPolicy(deadline_s=1, min_attempt_s=-1)


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


@settings(deadline=None)
@given(
    base=st.floats(0.01, 5),
    cap=st.floats(0.1, 60),
    deadline=st.floats(0.1, 1000),
    attempt_s=st.floats(0.01, 10),
    spare=st.floats(0, 5),
)
def test_attempts_that_take_at_most_their_least_time_end_by_the_deadline(
    base: float, cap: float, deadline: float, attempt_s: float, spare: float
) -> None:
    """Counted from the first attempt's start, the whole never passes the deadline (but for a first
    attempt longer than it, which is always made)."""
    fake = FakeTime(attempt_s)
    policy = RetryPolicy(base_s=base, cap_s=cap, deadline_s=deadline, min_attempt_s=attempt_s + spare)
    with pytest.raises(RetriesExhausted) as info:
        run(failing(10**9, fake), policy, fake)
    assert info.value.elapsed_s == pytest.approx(fake.now)
    assert fake.now <= max(deadline, attempt_s) + 1e-9
