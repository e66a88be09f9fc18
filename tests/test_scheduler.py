"""The scheduler's ordering rules over generated interleavings of events (no threads, no sleeps).

A simulated shell carries out the scheduler's commands: suggestions are numbered points, a
background suggestion becomes ready at a point the test draws, and each wait ends a drawn subset
of the trials in flight, each failed or not. Every run must keep the rules of
:mod:`hydra_sigopt.scheduler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_sigopt.backends.base import Suggestion
from hydra_sigopt.scheduler import (
    Ask,
    AwaitPosts,
    AwaitPrefetch,
    Command,
    Ended,
    Finish,
    HeldSlotsFreed,
    KeepWarm,
    MarkRunning,
    Post,
    Posted,
    Prefetch,
    Record,
    Recorded,
    Scheduler,
    StartTrial,
    StepBudgetSpent,
    StopForFailures,
    Submitted,
    SuggestionReady,
    Wait,
    drive,
)


class Stopped(Exception):
    def __init__(self, command: StopForFailures) -> None:
        self.command = command


@dataclass
class Shell:
    """Carries out commands like the sweep does, recording what a user would see happen."""

    scheduler: Scheduler
    draw: Any
    jobs_have_ids: bool
    log: list[tuple[str, Any]] = field(default_factory=list)
    running: set[int] = field(default_factory=set)
    deferred: set[int] = field(default_factory=set)  # the cluster refused their job for now
    started_late: set[int] = field(default_factory=set)
    recorded_not_posted: set[int] = field(default_factory=set)
    posting: list[int] = field(default_factory=list)  # given to Post, in order, not Posted yet
    posted: list[int] = field(default_factory=list)
    suggestions: int = 0
    delivered: set[int] = field(default_factory=set)  # points reported ready (SuggestionReady)
    started_points: set[int] = field(default_factory=set)
    made_at: dict[int, int] = field(default_factory=dict)  # point -> results posted when it was computed
    points_in_flight: dict[int, int] = field(default_factory=dict)  # trial -> its point
    background: tuple[Any, ...] | None = None  # pending of a Prefetch under way
    stopped: StopForFailures | None = None
    #: Multitask: the tasks the engine picks from, by name (the drawn task of the last suggestion).
    tasks: tuple[str, ...] = ()
    task: str | None = None
    #: Slots held by jobs of trials stopped before a restart, until they end (freed during waits).
    held: set[int] = field(default_factory=set)

    def new_suggestion(self, pending: tuple[Any, ...]) -> Suggestion:
        # Rule: a suggestion is asked for with no result unposted, and with every trial in flight and
        # every suggestion computed ahead pending that was computed knowing the results known now.
        assert not self.recorded_not_posted, f"asked with results not posted: {self.recorded_not_posted}"
        now = len(self.posted)
        in_flight = self.running | self.starting()
        fresh_trials = {n for n in in_flight if self.made_at[self.points_in_flight[n]] == now}
        assert sorted(p.assignments["trial"] for p in pending if "trial" in p.assignments) == sorted(fresh_trials)
        ahead = sorted(p.assignments["point"] for p in pending if "trial" not in p.assignments)
        assert ahead == sorted(p for p in self.delivered - self.started_points if self.made_at[p] == now), pending
        self.suggestions += 1
        self.made_at[self.suggestions] = now
        self.task = self.draw(st.sampled_from(self.tasks)) if self.tasks else None
        return Suggestion(str(self.suggestions), {"point": self.suggestions}, self.task)

    def starting(self) -> set[int]:
        return set(self.scheduler.in_flight) - self.running

    def run(self) -> None:
        carried_out = 0

        def carry_out(command: Command) -> list[Any]:
            nonlocal carried_out
            carried_out += 1
            assert carried_out < 10_000, "the sweep never finished"
            if isinstance(command, StopForFailures):
                self.finish_posts()  # as the sweep does before it stops
                raise Stopped(command)
            return self.carry_out(command)

        try:
            drive(self.scheduler, carry_out)
            assert not self.posting, f"finished with posts under way: {self.posting}"
            self.log.append(("Finish", None))
        except Stopped as stop:
            self.stopped = stop.command
            self.log.append(("StopForFailures", None))

    def carry_out(self, command: Command) -> list[Any]:
        self.log.append((type(command).__name__, command))
        if isinstance(command, Ask):
            return [self.ready(self.new_suggestion(command.pending))]
        if isinstance(command, Prefetch):
            self.new_suggestion(command.pending)
            self.background = command.pending
            return []
        if isinstance(command, AwaitPrefetch):  # nothing if the last wait reported it already
            return [] if self.background is None else [self.finish_background()]
        if isinstance(command, StartTrial):
            self.started_points.add(command.suggestion.assignments["point"])
            self.points_in_flight[command.number] = command.suggestion.assignments["point"]
            busy = len(self.running | self.deferred) + len(self.held)
            assert busy < self.scheduler.bandwidth, "a trial started without a free slot"
            if self.scheduler.asynchronous and self.draw(st.booleans()):
                self.deferred.add(command.number)
                return [Submitted(command.number, None, deferred=True)]
            self.running.add(command.number)
            return [Submitted(command.number, f"job-{command.number}" if self.jobs_have_ids else None)]
        if isinstance(command, Wait):
            return self.wait()
        if isinstance(command, Record):
            return [self.record(command.numbers)]
        if isinstance(command, MarkRunning):
            assert not set(command.numbers) & self.deferred, "a trial with no job yet journaled as running"
        if isinstance(command, Post):
            assert set(command.numbers) <= self.recorded_not_posted, "posted what was not recorded"
            assert not set(command.numbers) & {*self.posting, *self.posted}, "posted twice"
            self.posting += command.numbers
        if isinstance(command, AwaitPosts):
            return [self.finish_posts()]
        assert isinstance(command, (Post, MarkRunning, KeepWarm)), command
        return []

    def finish_posts(self, count: int | None = None) -> Posted:
        """The first ``count`` posts under way reach the engine (all of them: None), in order."""
        done = self.posting[: len(self.posting) if count is None else count]
        del self.posting[: len(done)]
        self.recorded_not_posted -= set(done)
        self.posted += done
        return Posted(tuple(done))

    def finish_background(self) -> SuggestionReady:
        assert self.background is not None
        self.background = None
        return self.ready(Suggestion(str(self.suggestions), {"point": self.suggestions}, self.task))

    def ready(self, suggestion: Suggestion) -> SuggestionReady:
        self.delivered.add(suggestion.assignments["point"])
        return SuggestionReady(suggestion)

    def wait(self) -> list[Any]:
        late = self.start_deferred()
        events: list[Any] = [Submitted(n, f"job-{n}") for n in sorted(late)]
        timed_out = not self.running or self.draw(st.booleans())  # a wait that saw no trial end
        ended = set() if timed_out else self.draw(st.sets(st.sampled_from(sorted(self.running)), min_size=1))
        self.ended = {n: self.draw(st.booleans()) for n in sorted(ended)}
        events.append(Ended(tuple(sorted(ended))))
        freed = set(self.draw(st.sets(st.sampled_from(sorted(self.held))))) if self.held else set()
        if self.held and not self.running and not self.deferred and not freed:
            freed = {min(self.held)}  # a held job ends in the end (or is cancelled)
        if freed:
            self.held -= freed
            events.append(HeldSlotsFreed(tuple(sorted(freed))))
        if self.posting:  # posts under way end while jobs run, or not yet (a server out of reach)
            least = 0 if self.running or self.deferred else 1
            events.append(self.finish_posts(self.draw(st.integers(least, len(self.posting)))))
        if self.background is not None and self.draw(st.booleans()):
            events.append(self.finish_background())  # the prefetch finished while jobs ran
        return events

    def start_deferred(self) -> set[int]:
        """Refused jobs the runner submits during a wait (at least one when nothing else runs)."""
        if not self.deferred:
            return set()
        late = set(self.draw(st.sets(st.sampled_from(sorted(self.deferred)))))
        if not self.running and not late:
            late = {min(self.deferred)}
        self.deferred -= late
        self.running |= late
        self.started_late |= late
        return late

    def record(self, numbers: tuple[int, ...]) -> Recorded:
        self.running -= set(numbers)
        self.recorded_not_posted |= set(numbers)
        return Recorded({n: self.ended[n] for n in numbers})


def numbered(scheduler: Scheduler) -> None:
    """Make each in-flight suggestion name its trial, so the shell can check ``pending``."""
    original = scheduler._start

    def start(suggestion: Suggestion, rerun_of: int | None = None, made_at: int = -1) -> StartTrial:
        command = original(suggestion, rerun_of, made_at)
        tagged = Suggestion(suggestion.id, {**suggestion.assignments, "trial": command.number}, suggestion.task)
        scheduler.in_flight[command.number].suggestion = tagged
        return StartTrial(command.number, tagged, rerun_of)

    scheduler._start = start  # type: ignore[method-assign]


@settings(max_examples=300, deadline=None)
@given(
    budget=st.integers(1, 12),
    bandwidth=st.integers(1, 5),
    asynchronous=st.booleans(),
    jobs_have_ids=st.booleans(),
    max_rate=st.sampled_from([0.0, 0.5, 1.0]),
    held=st.sets(st.integers(100, 104), max_size=3),
    data=st.data(),
)
def test_generated_interleavings_keep_the_ordering_rules(
    budget: int,
    bandwidth: int,
    asynchronous: bool,
    jobs_have_ids: bool,
    max_rate: float,
    held: set[int],
    data: st.DataObject,
) -> None:
    """``held``: a resumed sweep's slots held by jobs of trials stopped before its restart."""
    scheduler = Scheduler(budget, bandwidth, asynchronous, lambda failed, done: failed / max(done, 5) > max_rate)
    scheduler.hold(held)
    numbered(scheduler)
    shell = Shell(scheduler, data.draw, jobs_have_ids, held=set(held))
    shell.run()
    starts = [c.number for name, c in shell.log if name == "StartTrial"]
    assert starts == list(range(len(starts))), "trial numbers are consecutive from 0"
    # Every recorded result is posted once, before the sweep ends.
    assert not shell.recorded_not_posted
    assert len(shell.posted) == len(set(shell.posted))
    if shell.stopped is None:
        assert len(starts) == budget and sorted(shell.posted) == starts and not scheduler.in_flight
    else:
        assert shell.stopped.number in shell.posted
    # Suggestions are computed ahead only within the budget: a sweep that spends it made no more.
    if shell.stopped is None:
        assert shell.suggestions == budget
    assert shell.suggestions <= len(starts) + bandwidth
    # Trials with no job id at submission are journaled as running before anyone waits for them.
    # A trial with no job yet is never journaled as running (checked as it happens, in carry_out).
    if not jobs_have_ids:
        marked: set[int] = set()
        for name, c in shell.log:
            if name == "MarkRunning":
                marked |= set(c.numbers)
            if name == "Wait":
                # (A trial the cluster refused for now is journaled as running with its late job id.)
                refused = shell.started_late | shell.deferred
                assert set(scheduler_started_before(shell.log, c)) - refused <= marked


def scheduler_started_before(log: list[tuple[str, Any]], wait: Any) -> list[int]:
    started = []
    for name, c in log:
        if c is wait:
            break
        if name == "StartTrial":
            started.append(c.number)
    return started


def test_a_ready_suggestion_refills_a_freed_slot_before_the_results_are_posted() -> None:
    scheduler = Scheduler(4, 2, True, lambda f, d: False)
    assert [type(c) for c in scheduler.begin()] == [Ask]
    # Trial 0 runs while the second suggestion is computed: computed aside (Prefetch), not waited for.
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("1", {})))] == [StartTrial, Prefetch]
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("2", {})))] == [StartTrial]
    assert [type(c) for c in scheduler.idle()] == [MarkRunning, KeepWarm, Prefetch, Wait]
    assert scheduler.on(SuggestionReady(Suggestion("3", {}))) == []  # ready while the jobs run
    assert scheduler.on(Ended((0,))) == [Record((0,))]
    commands = scheduler.on(Recorded({0: False}))
    assert [type(c) for c in commands] == [StartTrial, Post]
    assert commands[0] == StartTrial(2, Suggestion("3", {}))
    scheduler.on(Submitted(2, "job-2"))
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]  # the next is asked for once 0 is posted
    assert scheduler.on(Posted((0,))) == []
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Prefetch, Wait]


def test_jobs_kept_warm_are_told_the_suggestions_the_next_free_slots_take_in_order() -> None:
    # So that a warm job composes its trial's config while the slots are busy: a freed slot then
    # starts its trial without Hydra's composition (the largest share of a refill with ASHA).
    scheduler = Scheduler(6, 2, True, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("1", {"p": 1})))
    scheduler.on(SuggestionReady(Suggestion("2", {"p": 2})))
    assert KeepWarm(4, ()) in scheduler.idle()  # both started: none is next up
    assert scheduler.on(SuggestionReady(Suggestion("3", {"p": 3}))) == []  # ready while both slots are busy
    assert KeepWarm(4, (Suggestion("3", {"p": 3}),)) in scheduler.idle()
    scheduler.reruns.append((0, Suggestion("0", {"p": 0})))  # a trial lost in a restart goes first
    assert KeepWarm(4, (Suggestion("0", {"p": 0}), Suggestion("3", {"p": 3}))) in scheduler.idle()


def test_without_a_ready_suggestion_the_results_are_posted_before_the_next_is_asked_for() -> None:
    scheduler = Scheduler(4, 1, True, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("1", {})))
    scheduler.on(Submitted(0, "job-0"))
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Prefetch, Wait]
    scheduler.on(Ended((0,)))
    assert [type(c) for c in scheduler.on(Recorded({0: False}))] == [Post, AwaitPrefetch]


def test_while_a_free_slot_waits_for_a_suggestion_the_other_trials_results_are_recorded() -> None:
    """Issue 16: a free slot waited for the engine (seconds with the GP) with the sweep blocked:
    trials ending meanwhile were neither journaled nor posted, and their slots not refilled either,
    until the suggestion came."""
    scheduler = Scheduler(10, 2, True, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("0", {"p": 0})))
    scheduler.on(SuggestionReady(Suggestion("1", {"p": 1})))
    scheduler.on(Submitted(0, "job-0"))
    scheduler.on(Submitted(1, "job-1"))
    # Trial 0 ends and its slot waits for the third suggestion, computed aside once 0 is posted.
    scheduler.on(Ended((0,)))
    assert [type(c) for c in scheduler.on(Recorded({0: False}))] == [Post]
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]
    assert [type(c) for c in scheduler.on(Posted((0,)))] == [Prefetch]
    # Trial 1 ends meanwhile: its result is recorded and posted at once.
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]
    assert scheduler.on(Ended((1,))) == [Record((1,))]
    # Nothing runs any more: the slots wait for it.
    assert scheduler.on(Recorded({1: False})) == [Post((1,)), AwaitPrefetch()]
    assert scheduler.on(Posted((1,))) == []
    # Once it is ready a free slot takes it, and the next is computed aside for the other.
    commands = scheduler.on(SuggestionReady(Suggestion("2", {"p": 2})))
    assert commands == [StartTrial(2, Suggestion("2", {"p": 2})), Prefetch(())]


def test_while_a_result_is_posted_the_trials_that_end_are_recorded_and_nothing_is_asked_for() -> None:
    """A server out of reach: the post of trial 0's result retried for minutes while the loop waited
    on it, and trials that ended meanwhile were not recorded, nor their slots refilled from a
    suggestion computed ahead. Posting is aside now; the next suggestion waits for it."""
    scheduler = Scheduler(10, 3, True, lambda f, d: False)
    scheduler.begin()
    for i in range(3):
        scheduler.on(SuggestionReady(Suggestion(str(i), {"p": i})))
    for n in range(3):
        scheduler.on(Submitted(n, f"job-{n}"))
    scheduler.idle()
    scheduler.on(SuggestionReady(Suggestion("3", {"p": 3})))  # computed ahead
    scheduler.on(Ended((0,)))
    assert [type(c) for c in scheduler.on(Recorded({0: False}))] == [StartTrial, Post]
    scheduler.on(Submitted(3, "job-3"))
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]  # no Prefetch while 0 is posted
    # Trial 1 ends during the post: recorded, and posted after 0; its slot waits for the posts.
    assert scheduler.on(Ended((1,))) == [Record((1,))]
    assert scheduler.on(Recorded({1: False})) == [Post((1,))]
    assert scheduler.on(Posted((0,))) == []
    assert scheduler.on(Posted((1,))) == [Prefetch(())]  # on results 0 and 1, which 2 and 3 were not


def test_without_trials_running_the_suggestion_is_asked_for_once_the_posts_are_done() -> None:
    scheduler = Scheduler(4, 1, False, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("0", {"p": 0})))
    scheduler.on(Ended((0,)))
    assert scheduler.on(Recorded({0: False})) == [Post((0,)), AwaitPosts()]
    assert scheduler.on(Posted((0,))) == [Ask(())]


def test_with_no_trial_left_running_the_free_slots_wait_for_the_suggestion() -> None:
    scheduler = Scheduler(10, 1, True, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("0", {"p": 0})))
    scheduler.on(Submitted(0, "job-0"))
    scheduler.idle()  # the next is computed ahead
    scheduler.on(Ended((0,)))
    assert scheduler.on(Recorded({0: False})) == [Post((0,)), AwaitPrefetch()]


def test_too_many_failures_stop_after_posting_without_refilling() -> None:
    scheduler = Scheduler(10, 2, True, lambda failed, done: failed / max(done, 5) > 0.0)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("1", {})))
    scheduler.on(SuggestionReady(Suggestion("2", {})))
    scheduler.idle()
    scheduler.on(SuggestionReady(Suggestion("3", {})))
    scheduler.on(Ended((0, 1)))
    assert scheduler.on(Recorded({0: False, 1: True})) == [Post((0, 1)), StopForFailures(1)]


def test_reruns_after_a_restart_come_first_and_keep_their_suggestion() -> None:
    scheduler = Scheduler(3, 2, True, lambda f, d: False, next_number=5)
    scheduler.count_finished(failed=False)
    scheduler.reruns.append((3, Suggestion("s3", {"x": 1})))
    scheduler.adopt(4, Suggestion("s4", {"x": 2}))
    assert scheduler.begin() == [StartTrial(5, Suggestion("s3", {"x": 1}), rerun_of=3)]
    # The budget (3) is issued: one finished, two in flight; nothing more is asked for.
    assert [type(c) for c in scheduler.idle()] == [MarkRunning, KeepWarm, Wait]


def test_a_slot_held_by_a_job_stopped_before_the_restart_is_taken_once_the_job_is_gone() -> None:
    """A resumed sweep started a trial in the slot of a stopped trial's job still saving its
    checkpoint (or swallowing the stop until cancelled): two jobs at parallel_bandwidth 1."""
    scheduler = Scheduler(3, 1, True, lambda f, d: False, next_number=1)
    scheduler.count_finished(failed=False)
    scheduler.hold([0])
    assert scheduler.begin() == []
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Prefetch, Wait]  # not Finish: a trial is to come
    assert scheduler.on(SuggestionReady(Suggestion("1", {}))) == []  # ready, for the held slot
    assert scheduler.on(HeldSlotsFreed((0,))) == [StartTrial(1, Suggestion("1", {}))]


def test_once_the_step_budget_is_spent_no_trial_starts_and_the_sweep_ends_with_those_in_flight() -> None:
    scheduler = Scheduler(10, 2, True, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("1", {})))
    scheduler.on(SuggestionReady(Suggestion("2", {})))
    scheduler.idle()
    scheduler.on(SuggestionReady(Suggestion("3", {})))  # prefetched for the next free slot
    assert scheduler.on(StepBudgetSpent()) == []
    scheduler.on(Ended((0,)))
    assert scheduler.on(Recorded({0: False})) == [Post((0,))]  # the freed slot is not refilled
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]
    assert scheduler.idle()[0] == KeepWarm(0)
    scheduler.on(Ended((1,)))
    assert scheduler.on(Recorded({1: False})) == [Post((1,))]
    assert scheduler.idle() == [AwaitPosts()]  # it ends once the engine has every result
    assert scheduler.on(Posted((0, 1))) == []
    assert scheduler.idle() == [Finish()]


COSTS = {"short": 0.25, "third": 1 / 3, "half": 0.5, "full": 1.0}


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(1, 8),
    bandwidth=st.integers(1, 5),
    asynchronous=st.booleans(),
    tasks=st.sets(st.sampled_from(["short", "third", "half"]), min_size=1),
    data=st.data(),
)
def test_with_tasks_the_budget_counts_their_costs(
    budget: int, bandwidth: int, asynchronous: bool, tasks: set[str], data: st.DataObject
) -> None:
    """Issue 17, multitask: "at most the compute of N full trainings" is a budget of N. A trial starts
    only while the costs of the trials finished and running are under it, so the sweep spends it and
    goes over by less than the last trial's cost."""
    scheduler = Scheduler(
        budget, bandwidth, asynchronous, lambda failed, done: False, cost_of=lambda s: COSTS[s.task or "full"]
    )
    numbered(scheduler)
    shell = Shell(scheduler, data.draw, jobs_have_ids=True, tasks=(*sorted(tasks), "full"))
    shell.run()
    started = [c for name, c in shell.log if name == "StartTrial"]
    costs = [COSTS[c.suggestion.task] for c in started]
    assert budget - 1e-9 <= sum(costs) < budget + costs[-1]
    assert sorted(shell.posted) == [c.number for c in started] and not scheduler.in_flight


def four_running_and_one_computed_ahead() -> Scheduler:
    """An asynchronous sweep (budget 20, 4 slots) with its four trials running and the engine
    computing the next suggestion ahead."""
    scheduler = Scheduler(20, 4, True, lambda f, d: False)
    scheduler.begin()
    for i in range(4):
        scheduler.on(SuggestionReady(Suggestion(str(i), {"p": i})))
    for n in range(4):
        scheduler.on(Submitted(n, f"job-{n}"))
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Prefetch, Wait]
    return scheduler


def test_after_a_burst_of_ending_trials_as_many_suggestions_are_kept_ready_for_the_next() -> None:
    """Issue 16: slots freed together waited for one suggestion after another. The queue of
    suggestions computed ahead grows to the slots freed per computation, each computed with
    those ahead of it pending (so they differ), and within the budget."""
    scheduler = four_running_and_one_computed_ahead()
    # Three trials end while the engine computes: the freed slots wait for it, then for two more.
    assert scheduler.on(Ended((0, 1, 2))) == [Record((0, 1, 2))]
    assert [type(c) for c in scheduler.on(Recorded({0: False, 1: False, 2: False}))] == [Post]
    assert [type(c) for c in scheduler.idle()] == [KeepWarm, Wait]  # trial 3 runs: its result is awaited too
    assert scheduler.on(Posted((0, 1, 2))) == []  # the suggestion under way is for a freed slot
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("4", {"p": 4})))] == [StartTrial, Prefetch]
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("5", {"p": 5})))] == [StartTrial, Prefetch]
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("6", {"p": 6})))] == [StartTrial]
    for n in range(4, 7):
        scheduler.on(Submitted(n, f"job-{n}"))
    # Now three are computed ahead, one at a time, each with the ones before it pending, and the
    # trials suggested since the results were posted (5 and 6; 3 and 4 were computed before).
    for k in range(3):
        commands = scheduler.idle()
        prefetch = next(c for c in commands if isinstance(c, Prefetch))
        assert [p.assignments["p"] for p in prefetch.pending] == [5, 6, *range(7, 7 + k)]
        assert scheduler.on(SuggestionReady(Suggestion(str(7 + k), {"p": 7 + k}))) == []
    assert not any(isinstance(c, Prefetch) for c in scheduler.idle())  # three are ready
    # The next burst finds them: every freed slot is refilled before the results are posted.
    scheduler.on(Ended((3, 4, 5)))
    commands = scheduler.on(Recorded({3: False, 4: False, 5: False}))
    assert [type(c) for c in commands] == [StartTrial, StartTrial, StartTrial, Post]
    assert [c.suggestion.assignments["p"] for c in commands[:3]] == [7, 8, 9]


def test_no_suggestion_is_computed_ahead_beyond_the_budget() -> None:
    scheduler = Scheduler(5, 4, True, lambda f, d: False)
    scheduler._recent_freed.append(4)  # slots have been freeing fast: keep up to 4 ready
    scheduler.begin()
    for i in range(4):
        scheduler.on(SuggestionReady(Suggestion(str(i), {"p": i})))
    for n in range(4):
        scheduler.on(Submitted(n, f"job-{n}"))
    assert any(isinstance(c, Prefetch) for c in scheduler.idle())
    scheduler.on(SuggestionReady(Suggestion("4", {"p": 4})))  # the fifth and last trial's
    assert not any(isinstance(c, Prefetch) for c in scheduler.idle())


def test_trials_suggested_before_the_last_result_was_posted_are_not_placeholders() -> None:
    """Issue 16: the engine records the pending trials as placeholders at the mean value. With every
    running trial pending, as an asynchronous sweep always has, that cost most of its progress on
    Branin (benchmarks/async_quality.py: median regret 0.48, against 0.13 with only the suggestions
    made on the current results pending). A synchronous batch is all computed on the same results:
    its trials stay pending for each other."""
    scheduler = Scheduler(20, 2, True, lambda f, d: False)
    assert scheduler.begin() == [Ask(())]
    assert scheduler.on(SuggestionReady(Suggestion("0", {"p": 0})))[1] == Prefetch(
        (Suggestion("0", {"p": 0}),)
    )  # same results
    scheduler.on(SuggestionReady(Suggestion("1", {"p": 1})))
    scheduler.on(Submitted(0, "job-0"))
    scheduler.on(Submitted(1, "job-1"))
    assert scheduler.idle()[-2] == Prefetch((Suggestion("0", {"p": 0}), Suggestion("1", {"p": 1})))
    scheduler.on(SuggestionReady(Suggestion("2", {"p": 2})))
    scheduler.on(Ended((0,)))
    assert scheduler.on(Recorded({0: False})) == [StartTrial(2, Suggestion("2", {"p": 2})), Post((0,))]
    scheduler.on(Submitted(2, "job-2"))
    scheduler.on(Posted((0,)))
    # Trials 1 and 2 were suggested before trial 0's result reached the engine: not pending.
    assert scheduler.idle()[-2] == Prefetch(())
    scheduler.on(SuggestionReady(Suggestion("3", {"p": 3})))
    assert scheduler.idle()[-1] == Wait()  # one ready: enough while slots free one at a time


def test_a_synchronous_batch_is_asked_for_with_all_of_its_trials_pending() -> None:
    scheduler = Scheduler(6, 3, False, lambda f, d: False)
    scheduler.begin()
    scheduler.on(SuggestionReady(Suggestion("0", {"p": 0})))
    assert scheduler.on(SuggestionReady(Suggestion("1", {"p": 1}))) == [
        StartTrial(1, Suggestion("1", {"p": 1})),
        Ask((Suggestion("0", {"p": 0}), Suggestion("1", {"p": 1}))),
    ]


def test_held_slots_are_freed_once_the_runner_no_longer_sees_their_jobs() -> None:
    from hydra_sigopt.held_slots import CHECK_EVERY_S, HeldSlots
    from hydra_sigopt.runners import TrialRunner

    class Runner(TrialRunner):
        def __init__(self) -> None:
            self.alive = {"11", "12"}

        def start(self, number: int, overrides: Any) -> str | None:
            raise NotImplementedError

        def wait(self, timeout: float) -> list[Any]:
            return []

        def running(self) -> list[int]:
            return []

        def untracked_running(self, job_ids: Any) -> list[str]:
            return [j for j in job_ids if j in self.alive]

    now = [0.0]
    runner = Runner()
    held = HeldSlots(runner, clock=lambda: now[0])
    stopped = [SimpleNamespace(number=n, job_id=job) for n, job in [(1, "11"), (2, "12"), (3, "13")]]
    assert held.hold(stopped) == [1, 2]  # type: ignore[arg-type]  # job 13 had ended: nothing to hold
    runner.alive = {"12"}
    assert held.freed() == []  # looked at again only CHECK_EVERY_S later
    now[0] += CHECK_EVERY_S
    assert held.freed() == [HeldSlotsFreed((1,))]
    runner.alive = set()
    now[0] += CHECK_EVERY_S
    assert held.freed() == [HeldSlotsFreed((2,))]
    now[0] += CHECK_EVERY_S
    assert held.freed() == []


def test_a_burst_that_begins_while_the_engine_is_idle_is_counted_whole_for_the_next() -> None:
    """Issue 17: ASHA frees slots in bursts. Two trials ending one poll apart while the engine was
    idle with one suggestion ready: the first took it and set the engine computing, the second
    waited for that computation. Only the second was counted (ends while computing), so one
    suggestion stayed ready and every such burst kept a slot waiting a whole computation."""
    scheduler = four_running_and_one_computed_ahead()
    assert scheduler.on(SuggestionReady(Suggestion("4", {"p": 4}))) == []  # one ready, the engine idle

    # The burst: trial 0 ends and takes the ready suggestion; the engine computes the next.
    scheduler.on(Ended((0,)))
    assert StartTrial in [type(c) for c in scheduler.on(Recorded({0: False}))]
    scheduler.on(Submitted(4, "job-4"))
    scheduler.on(Posted((0,)))
    assert Prefetch in [type(c) for c in scheduler.idle()]
    # Trial 1 ends one poll later: its slot waits for that computation.
    scheduler.on(Ended((1,)))
    assert [type(c) for c in scheduler.on(Recorded({1: False}))] == [Post]
    scheduler.on(Posted((1,)))
    assert [type(c) for c in scheduler.on(SuggestionReady(Suggestion("5", {"p": 5})))] == [StartTrial]
    scheduler.on(Submitted(5, "job-5"))
    # Between the bursts, the engine computes ahead for as many as the last burst freed.
    ahead = 0
    while any(isinstance(c, Prefetch) for c in scheduler.idle()):
        scheduler.on(SuggestionReady(Suggestion(f"a{ahead}", {"p": 100 + ahead})))
        ahead += 1
    assert len(scheduler._ready) == 2, "the next burst of two would find one suggestion ready"
    # The next burst: the second slot starts at once too.
    scheduler.on(Ended((2,)))
    assert StartTrial in [type(c) for c in scheduler.on(Recorded({2: False}))]
    scheduler.on(Ended((3,)))
    assert [type(c) for c in scheduler.on(Recorded({3: False}))] == [StartTrial, Post]


class _ScriptedWorld:
    """Carries out a scheduler's commands: the engine computes a suggestion in one Wait, and at each
    other Wait the next number of trials in ``script`` ends (oldest first). Records the most
    suggestions ready at once per Wait."""

    class Done(Exception):
        pass

    def __init__(self, scheduler: Scheduler, script: list[int]) -> None:
        self.scheduler, self.script = scheduler, list(script)
        self.running: list[int] = []
        self.computing = False
        self.made = 0
        self.ready_at_waits: list[int] = []

    def suggestion(self) -> SuggestionReady:
        self.made += 1
        return SuggestionReady(Suggestion(str(self.made), {"p": self.made}))

    def carry_out(self, command: object) -> list[object]:
        if isinstance(command, Ask):
            return [self.suggestion()]
        if isinstance(command, Prefetch):
            self.computing = True
        elif isinstance(command, AwaitPrefetch):
            self.computing = False
            return [self.suggestion()]
        elif isinstance(command, StartTrial):
            self.running.append(command.number)
            return [Submitted(command.number, f"job-{command.number}")]
        elif isinstance(command, Record):
            return [Recorded({n: False for n in command.numbers})]
        elif isinstance(command, Post):
            return [Posted(command.numbers)]
        elif isinstance(command, AwaitPosts):
            return [Posted(())]
        elif isinstance(command, Wait):
            return self.wait()
        return []

    def wait(self) -> list[object]:
        self.ready_at_waits.append(len(self.scheduler._ready))
        if self.computing:  # the engine is done before the next trial ends
            self.computing = False
            return [Ended(()), self.suggestion()]
        if not self.script:
            raise self.Done
        ended, self.running = self.running[: self.script[0]], self.running[self.script[0] :]
        self.script.pop(0)
        return [Ended(tuple(ended))]


def test_after_a_burst_is_forgotten_single_ends_keep_one_suggestion_ready() -> None:
    """A review of the rule above: counting every end since the last suggestion also counted the
    ends the full queue met without the engine. Once the burst was forgotten, the queue drained one
    end at a time and its next computation counted all of them: the queue went back to the burst's
    depth, each suggestion then computed that many results before it ran, for the rest of the sweep."""
    scheduler = Scheduler(500, 4, True, lambda f, d: False)
    world = _ScriptedWorld(scheduler, [3] + [1] * 60)  # a burst of three, then one trial at a time
    with pytest.raises(_ScriptedWorld.Done):
        drive(scheduler, world.carry_out)
    assert max(world.ready_at_waits[:20]) >= 2, world.ready_at_waits  # the burst deepened the queue
    assert scheduler.ready_depth == 1
    assert max(world.ready_at_waits[-30:]) == 1, world.ready_at_waits


def test_slots_that_wait_for_a_slow_post_do_not_deepen_the_queue() -> None:
    """A review: while a result's post is under way (a server slow to answer, or out of reach for
    minutes) the engine computes nothing, and every trial ending meanwhile was counted as demand
    on the engine: after one outage the queue kept three suggestions ready, each computed on the
    same results, for the next eight computations."""
    scheduler = four_running_and_one_computed_ahead()
    assert scheduler.on(SuggestionReady(Suggestion("4", {"p": 4}))) == []  # one ready, the engine idle
    scheduler.on(Ended((0,)))
    assert [type(c) for c in scheduler.on(Recorded({0: False}))] == [StartTrial, Post]  # its post hangs
    scheduler.on(Submitted(4, "job-4"))
    assert Prefetch not in [type(c) for c in scheduler.idle()]
    for n in (1, 2):  # two more end while the post hangs: their slots wait for it
        scheduler.on(Ended((n,)))
        assert [type(c) for c in scheduler.on(Recorded({n: False}))] == [Post]
        scheduler.idle()
    scheduler.on(Posted((0,)))
    scheduler.on(Posted((1,)))
    assert [type(c) for c in scheduler.on(Posted((2,)))] == [Prefetch]
    scheduler.on(SuggestionReady(Suggestion("5", {"p": 5})))
    assert scheduler.ready_depth == 1


def test_a_held_slot_freed_with_an_ending_trial_counts_as_a_burst() -> None:
    """A review: a slot held by a job stopped before a restart, freed in the same poll as a trial
    ends, asks as much of the queue as two trials ending together; it was not counted."""
    scheduler = Scheduler(20, 4, True, lambda f, d: False)
    scheduler.hold([99])
    scheduler.begin()
    for i in range(3):
        scheduler.on(SuggestionReady(Suggestion(str(i), {"p": i})))
    for n in range(3):
        scheduler.on(Submitted(n, f"job-{n}"))
    assert Prefetch in [type(c) for c in scheduler.idle()]
    assert scheduler.on(SuggestionReady(Suggestion("3", {"p": 3}))) == []  # one ready, the engine idle
    assert [type(c) for c in scheduler.on(HeldSlotsFreed((99,)))] == [StartTrial]  # takes the one ready
    scheduler.on(Submitted(3, "job-3"))
    scheduler.on(Ended((0,)))
    assert [type(c) for c in scheduler.on(Recorded({0: False}))] == [Post]  # waits for the engine
    assert [type(c) for c in scheduler.on(Posted((0,)))] == [Prefetch]
    scheduler.on(SuggestionReady(Suggestion("4", {"p": 4})))
    assert scheduler.ready_depth == 2
