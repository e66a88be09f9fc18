"""What the sweep does next: a scheduler that only decides (no journal, runner, engine, thread or clock).

It owns the set of trials in flight, the budget and the bandwidth, the trials to re-run after a
restart, the queue of suggestions computed ahead and the failure policy, and it answers each event the sweep
reports (:class:`SuggestionReady`, :class:`Submitted`, :class:`Recorded`, ...) with the commands
to carry out next (:class:`Ask`, :class:`StartTrial`, :class:`Post`, ...). :class:`~hydra_sigopt.sweep.Sweep`
is the shell that carries them out, in order, and reports back.

The ordering rules, which ``tests/test_scheduler.py`` checks over generated interleavings:

* a trial is started only while a slot is free and the budget is not issued (with tasks, the budget
  counts costs: the trials finished and in flight, each costing its task's cost);
* a slot held by the job of a trial stopped before a restart (:meth:`Scheduler.hold`: saving its
  checkpoint, or swallowing the stop until cancelled) is not free until that job is gone;
* a trial whose job the cluster refused for now keeps its slot and stays pending (it is not
  journaled as running) until the runner reports its job started;
* a suggestion is asked for only once every recorded result is posted, with every trial in
  flight and every suggestion computed ahead that the engine computed on the results it has now
  as pending (so no suggestion misses a result or duplicates one computed on the same data);
  trials suggested before the last result was posted are not pending: recording them as
  placeholders at the mean value cost an asynchronous sweep most of its progress on Branin
  (``benchmarks/async_quality.py``); a synchronous batch is all computed on the same data;
* suggestions are computed ahead (one at a time, asynchronous sweeps only) while fewer are ready
  than slots freed per computation lately, counted from when the queue was last full with the
  engine idle (at least one; slots freed while a result's post holds the engine back are not
  counted): a burst of ending trials finds as many suggestions ready; none is computed ahead
  beyond the budget;
* when trials end, their results are recorded first; then freed slots are refilled from trials
  to re-run and from a suggestion already computed (not waiting for one, and not asking for a new
  one); then the results are posted; only then is the next suggestion asked for;
* results are posted aside (:class:`Post`, then :class:`Posted`): while a post is under way (a
  server slow to answer, or out of reach for minutes), asynchronous trials that end are recorded
  and their slots refilled from suggestions already computed; none is asked for until
  :class:`Posted` says every result recorded is posted, and the sweep does not finish before;
* while a free slot waits for a suggestion and asynchronous trials run, their results are still
  recorded and posted as they end (the slot takes the suggestion once it is ready);
* once more than ``max_failure_rate`` of the finished trials failed, the sweep stops after
  posting what was recorded.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hydra_sigopt.backends.base import Suggestion

# ------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Ask:
    """Compute a suggestion now (the sweep waits for it) and report :class:`SuggestionReady`."""

    pending: tuple[Suggestion, ...]


@dataclass(frozen=True)
class Prefetch:
    """Start computing the next suggestion in the background; report :class:`SuggestionReady` when done."""

    pending: tuple[Suggestion, ...]


@dataclass(frozen=True)
class AwaitPrefetch:
    """Wait for the suggestion being computed; report :class:`SuggestionReady` (nothing if the
    shell reported it already, with the events this command answers: they come in order)."""


@dataclass(frozen=True)
class StartTrial:
    """Journal trial ``number`` with its suggestion, start its job, report :class:`Submitted`."""

    number: int
    suggestion: Suggestion
    rerun_of: int | None = None


@dataclass(frozen=True)
class MarkRunning:
    """Journal these trials as running (their jobs' ids are not known: batch launchers)."""

    numbers: tuple[int, ...]


@dataclass(frozen=True)
class KeepWarm:
    """Keep jobs started ahead for up to ``trials_left`` trials (where the runner does that).

    ``next_up``: the suggestions the next free slots take, in that order (trials to re-run, then
    those computed ahead), so that jobs waiting for a trial can prepare these ones' start."""

    trials_left: int
    next_up: tuple[Suggestion, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Wait for trials to end, or for the suggestion under way; report :class:`Ended` (possibly with
    none), then :class:`SuggestionReady` if it came."""


@dataclass(frozen=True)
class Record:
    """Journal the results of these ended trials; report :class:`Recorded`."""

    numbers: tuple[int, ...]


@dataclass(frozen=True)
class Post:
    """Start posting these recorded results to the engine (each once, in order, after those under
    way); report :class:`Posted` as they are posted."""

    numbers: tuple[int, ...]


@dataclass(frozen=True)
class AwaitPosts:
    """Wait until every result given to :class:`Post` is posted; report :class:`Posted`."""


@dataclass(frozen=True)
class StopForFailures:
    """Stop the sweep: too many trials failed; ``number`` is the last failure."""

    number: int


@dataclass(frozen=True)
class Finish:
    """The budget is spent and no trial is in flight."""


Command = (
    Ask
    | Prefetch
    | AwaitPrefetch
    | StartTrial
    | MarkRunning
    | KeepWarm
    | Wait
    | Record
    | Post
    | AwaitPosts
    | StopForFailures
    | Finish
)

# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class SuggestionReady:
    suggestion: Suggestion


@dataclass(frozen=True)
class Submitted:
    """Trial ``number``'s job started; ``job_id`` where the runner knows it at once.

    ``deferred``: the cluster refused the job for now and the runner submits it again later; the
    trial stays pending (not journaled as running) until a ``Submitted`` with its job id follows.
    """

    number: int
    job_id: str | None
    deferred: bool = False


@dataclass(frozen=True)
class Ended:
    """These trials' jobs ended (their outcomes are the shell's to record)."""

    numbers: tuple[int, ...]


@dataclass(frozen=True)
class Recorded:
    """Results journaled: ``failed`` by trial number; ``dropped``: trials another process abandoned first."""

    failed: Mapping[int, bool]
    dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class Posted:
    """These results reached the engine (their observations' ids are journaled)."""

    numbers: tuple[int, ...]


@dataclass(frozen=True)
class StepBudgetSpent:
    """The steps the trials may report together are spent (``early_stopping.step_budget``): no
    trial starts any more; those in flight end (stopped at their next report)."""


@dataclass(frozen=True)
class HeldSlotsFreed:
    """These held slots (:meth:`Scheduler.hold`) are free: the jobs holding them ended or were cancelled."""

    numbers: tuple[int, ...]


Event = SuggestionReady | Submitted | Ended | Recorded | Posted | StepBudgetSpent | HeldSlotsFreed

# ------------------------------------------------------------------------------------ the scheduler

#: Budget arithmetic in costs (0.1 + 0.2 ...) is compared with this slack.
COST_SLACK = 1e-9
#: How many of the last suggestion computations size the queue of ready suggestions: enough to
#: remember a burst of trials ending together, few enough to forget one.
RECENT_COMPUTATIONS = 8


def full_cost(suggestion: Suggestion) -> float:
    """Without tasks every trial costs 1: the budget counts trials."""
    return 1.0


@dataclass
class _InFlight:
    suggestion: Suggestion
    #: The results posted when its suggestion was computed (-1: unknown, e.g. adopted at resume).
    made_at: int = -1
    marked: bool = False  # journaled as running
    deferred: bool = False  # its submission is to be tried again (no job yet)


@dataclass
class Scheduler:
    """Decides the sweep's next commands; see the module docstring for the rules."""

    budget: float
    bandwidth: int
    asynchronous: bool
    #: ``(failed, finished) -> bool``: whether the failure policy stops the sweep now.
    too_many_failures: Callable[[int, int], bool]
    #: What a trial spends of the budget: its task's cost (:func:`full_cost` without tasks).
    cost_of: Callable[[Suggestion], float] = full_cost
    next_number: int = 0
    finished: int = 0
    failed: int = 0
    finished_cost: float = 0.0
    in_flight: dict[int, _InFlight] = field(default_factory=dict)
    #: Trials to run again with their suggestion (lost in a restart): (original number, suggestion).
    reruns: deque[tuple[int, Suggestion]] = field(default_factory=deque)
    #: Suggestions computed ahead, for the next free slots (oldest first), with the results posted
    #: when each was computed.
    _ready: deque[tuple[Suggestion, int]] = field(default_factory=deque)
    _computing = False  # a Prefetch or Ask is under way
    _posted = 0  # results given to the engine (Post commands issued) by this scheduler
    _posting = 0  # of those, the ones not reported Posted yet
    _computing_made_at = 0  # _posted when the computation under way was asked for
    #: Slots freed since the queue was last full with the engine idle (the ends that emptied it and
    #: set the engine computing), and while it computed.
    _freed_since_full = 0
    #: Those slots, per each of the last computations: the queue's depth follows their maximum.
    _recent_freed: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_COMPUTATIONS))
    _waiting_for_suggestion = False  # a fill stopped until SuggestionReady
    #: Slots held by jobs this scheduler does not run: those of trials stopped before a restart,
    #: still running (saving a checkpoint, or swallowing the stop until cancelled), by trial number.
    held: set[int] = field(default_factory=set)

    # ------------------------------------------------------------------ set-up (resume)

    def adopt(self, number: int, suggestion: Suggestion) -> None:
        """A trial re-attached after a restart: in flight, journaled as running."""
        self.in_flight[number] = _InFlight(suggestion, marked=True)

    def hold(self, numbers: Iterable[int]) -> None:
        """Slots these running jobs of trials stopped before a restart hold until HeldSlotsFreed."""
        self.held.update(numbers)

    def count_finished(self, failed: bool, cost: float = 1.0) -> None:
        """A trial finished before this sweeper started (resume)."""
        self.finished += 1
        self.failed += int(failed)
        self.finished_cost += cost

    # ------------------------------------------------------------------ queries

    @property
    def issued(self) -> float:
        """What counts against the budget: the costs of the trials finished and in flight."""
        return math.fsum([self.finished_cost, *(self.cost_of(f.suggestion) for f in self.in_flight.values())])

    @property
    def budget_left(self) -> bool:
        return self.issued < self.budget - COST_SLACK

    @property
    def spent(self) -> bool:
        """The budget is spent by the trials finished (none in flight can add to it)."""
        return self.finished_cost >= self.budget - COST_SLACK

    def pending(self) -> tuple[Suggestion, ...]:
        """What the engine must not suggest again: the trials in flight, then the suggestions ready,
        that it suggested knowing every result it knows now (see the module docstring). Whole
        suggestions: the engine records each at its own task (multitask)."""
        made = [(f.suggestion, f.made_at) for f in self.in_flight.values()] + list(self._ready)
        return tuple(s for s, made_at in made if made_at == self._posted)

    @property
    def ready_depth(self) -> int:
        """How many suggestions to keep ready: as many slots as were freed per computation lately,
        counted from when the queue was last full with the engine idle (a clock-free measure of the
        rate at which slots free against the engine's speed)."""
        return max(1, min(self.bandwidth, max(self._recent_freed, default=1)))

    # ------------------------------------------------------------------ events -> commands

    def begin(self) -> list[Command]:
        """The first commands: fill the slots."""
        return self._fill()

    def on(self, event: Event) -> list[Command]:
        """The commands that follow from ``event``, to be carried out before any others still queued."""
        if isinstance(event, SuggestionReady):
            return self._on_suggestion(event.suggestion)
        if isinstance(event, Submitted):
            flight = self.in_flight[event.number]
            flight.deferred = event.deferred
            flight.marked = event.job_id is not None
            return []
        if isinstance(event, Ended):
            self._count_freed(len(event.numbers))
            return [Record(event.numbers)] if event.numbers else self._fill()
        if isinstance(event, StepBudgetSpent):
            self.budget = min(self.budget, self.issued)
            return []
        if isinstance(event, HeldSlotsFreed):
            self._count_freed(len(event.numbers))  # slots freed as an end frees one
            self.held.difference_update(event.numbers)
            return [] if self._waiting_for_suggestion else self._fill()
        if isinstance(event, Posted):
            return self._on_posted(event)
        return self._on_recorded(event)

    def idle(self) -> list[Command]:
        """What to do once every command given was carried out: journal the trials started
        without a job id as running, keep jobs warm, compute the next suggestion ahead, then wait
        for trials to end, or finish."""
        commands: list[Command] = []
        if not self._computing and len(self._ready) + len(self.reruns) >= self.ready_depth:
            # The slots freed so far found their suggestions ready: no demand left unmet. (Counted
            # on, the ends a full queue met one at a time, once it drained, made one computation
            # count them all, and the queue went back to a burst's depth for good.)
            self._freed_since_full = 0
        unmarked = tuple(n for n, f in self.in_flight.items() if not f.marked and not f.deferred)
        if unmarked:
            for n in unmarked:
                self.in_flight[n].marked = True
            commands.append(MarkRunning(unmarked))
        if not self.in_flight and not (self.held and self.budget_left):
            if self._posting:  # nothing left to record meanwhile: the posts are waited for
                return [*commands, AwaitPosts()]
            # A free slot waits for the suggestion under way: the trials that ran meanwhile ended.
            return [*commands, AwaitPrefetch() if self._waiting_for_suggestion else Finish()]
        trials_left = max(0, math.ceil(self.budget - self.issued - COST_SLACK))
        commands.append(KeepWarm(trials_left, self._next_up()[:trials_left]))
        if self._prefetch_wanted():
            self._begin_computing()
            commands.append(Prefetch(self.pending()))
        return [*commands, Wait()]

    def _count_freed(self, ended: int) -> None:
        """The demand one computation meets: the slots freed since the queue was last full with the
        engine idle. Counting only the ends while the engine computed missed the end that set it
        computing: a burst of two trials ending 0.1 s apart kept one suggestion ready, and the
        second slot waited a whole computation each time (issue 17: ASHA frees slots in bursts).

        Not while a result's post holds the engine back and it computes nothing: those ends wait for
        the post (a server slow to answer, or out of reach for minutes), not for the engine, and
        would size the queue by an outage."""
        if self._computing or not self._posting:
            self._freed_since_full += ended

    def _on_suggestion(self, suggestion: Suggestion) -> list[Command]:
        self._computing = False
        self._recent_freed.append(self._freed_since_full)
        self._freed_since_full = 0
        self._ready.append((suggestion, self._computing_made_at))
        if not self._waiting_for_suggestion:
            return []  # computed ahead: for the next free slot
        self._waiting_for_suggestion = False
        # The slot waited for it; events since (a failure, the step budget) may have closed it.
        return self._fill()

    def forget(self, event: Recorded) -> None:
        """Results recorded (or dropped): their trials are out of flight, counted for the budget and
        the failure policy. Alone, for a sweep that is stopping: nothing follows."""
        for number in event.dropped:
            del self.in_flight[number]
        for number, failed in event.failed.items():
            self.finished_cost += self.cost_of(self.in_flight.pop(number).suggestion)
            self.finished += 1
            self.failed += int(failed)

    def _on_recorded(self, event: Recorded) -> list[Command]:
        self.forget(event)
        recorded = tuple(event.failed)
        last_failure = next((n for n in reversed(recorded) if event.failed[n]), None)
        stop = last_failure is not None and self.too_many_failures(self.failed, self.finished)
        commands: list[Command] = []
        if recorded and self.asynchronous and not stop:
            commands += self._fill(prefetched_only=True)  # refill first: the freed slot need not wait for posting
        commands += [Post(recorded)] if recorded else []
        self._posted += len(recorded)
        self._posting += len(recorded)
        if stop:
            assert last_failure is not None
            return [*commands, StopForFailures(last_failure)]
        return commands + self._fill()

    def _on_posted(self, event: Posted) -> list[Command]:
        self._posting -= len(event.numbers)
        if self._posting or not self._waiting_for_suggestion or self._computing:
            return []
        # A free slot waited for the posts to ask for its suggestion (events since may have closed it).
        self._waiting_for_suggestion = False
        return self._fill()

    # ------------------------------------------------------------------ filling slots

    def _fill(self, prefetched_only: bool = False) -> list[Command]:
        """Start trials while a slot is free and the budget allows, as far as suggestions are at hand."""
        commands: list[Command] = []
        while len(self.in_flight) + len(self.held) < self.bandwidth and self.budget_left:
            if self.reruns:
                rerun_of, suggestion = self.reruns.popleft()
                commands.append(self._start(suggestion, rerun_of))
            elif self._ready:
                suggestion, made_at = self._ready.popleft()
                commands.append(self._start(suggestion, made_at=made_at))
            elif prefetched_only:
                break
            else:
                self._waiting_for_suggestion = True
                return commands + self._suggestion_for_free_slot()  # the fill goes on at SuggestionReady
        return commands

    def _suggestion_for_free_slot(self) -> list[Command]:
        """Have a suggestion computed for a free slot. While asynchronous trials run, the sweep goes
        on recording their results meanwhile (a Prefetch, then Waits that end when it is ready): a
        GP suggestion takes seconds, in which other trials end. Else it waits for it (Ask)."""
        collect_meanwhile = self.asynchronous and bool(self.in_flight)
        if self._computing:
            return [] if collect_meanwhile else [AwaitPrefetch()]
        if self._posting:  # asked for once the engine has every result (at Posted)
            return [] if collect_meanwhile else [AwaitPosts()]
        self._begin_computing()
        return [Prefetch(self.pending()) if collect_meanwhile else Ask(self.pending())]

    def _begin_computing(self) -> None:
        """A suggestion is asked for (Prefetch or Ask): on the results posted so far."""
        self._computing = True
        self._computing_made_at = self._posted

    def _start(self, suggestion: Suggestion, rerun_of: int | None = None, made_at: int = -1) -> StartTrial:
        number = self.next_number
        self.next_number += 1
        self.in_flight[number] = _InFlight(suggestion, made_at=made_at)
        return StartTrial(number, suggestion, rerun_of)

    def _next_up(self) -> tuple[Suggestion, ...]:
        """The suggestions the next free slots take, in the order :meth:`_fill` takes them (while
        the budget lets them start)."""
        return tuple([*(s for _, s in self.reruns), *(s for s, _ in self._ready)])

    def _prefetch_wanted(self) -> bool:
        return (
            self.asynchronous
            and not self._computing
            and not self._posting
            and len(self._ready) < self.ready_depth
            and not self.reruns
            and self._budget_left_after_ready()
        )

    def _budget_left_after_ready(self) -> bool:
        """Whether the budget still has room once the suggestions ready have started too."""
        ready = math.fsum(self.cost_of(s) for s, _ in self._ready)
        return self.issued + ready < self.budget - COST_SLACK


# ------------------------------------------------------------------------------------ the loop


def drive(scheduler: Scheduler, carry_out: Callable[[Command], Sequence[Event]]) -> None:
    """Carry out ``scheduler``'s commands with ``carry_out`` until it says :class:`Finish`.

    The events a command produced are answered one at a time, in order, each once every command
    that followed from the one before it was carried out: each decision is taken on the state the
    effects before it left. (Answered together, a suggestion ready in the same poll as a trial's
    end had another computed before that trial's result was recorded.)
    """
    queue: deque[Command | Event] = deque(scheduler.begin())
    while True:
        if not queue:
            queue.extend(scheduler.idle())
        item = queue.popleft()
        if isinstance(item, Finish):
            return
        follow = scheduler.on(item) if isinstance(item, Event) else carry_out(item)
        queue.extendleft(reversed(follow))
