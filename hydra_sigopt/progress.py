"""One-line progress reports: plain log lines that read well in a terminal and in a Slurm log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hydra_sigopt.metrics import Metric

log = logging.getLogger("hydra_sigopt.progress")


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class Progress:
    """Counters kept as trials end (constant cost per trial), logged at most every ``interval`` s."""

    budget: float  # with tasks, in costs (may be a fraction)
    metric: Metric | None
    interval: float = 10.0
    done: int = 0
    failed: int = 0
    stopped: int = 0  # stopped early (hydra.sweeper.early_stopping); counted in done
    running: int = 0
    waiting: int = 0  # started trials whose job waits in the cluster's queue, or to be submitted
    unsubmitted: int = 0  # of those waiting, the ones whose job the cluster has not accepted yet
    best_value: float | None = None
    best_trial: int | None = None
    #: Multitask: the budget counts the trials' costs, and the line says what is spent of it.
    with_costs: bool = False
    spent: float = 0.0
    spent_at_start: float = 0.0
    #: early_stopping.step_budget: the line counts the steps reported against it, and the estimate
    #: is that of whichever budget ends the sweep first (set_steps gives the count).
    step_budget: int | None = None
    steps: int | None = None
    steps_at_start: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    #: Where the elapsed time counts from: this run's start, less the time earlier runs of the sweep
    #: took (see :mod:`hydra_sigopt.sweeper_time`; the time no sweeper ran is not counted).
    started: float = field(default=-1.0)
    #: When this sweeper process took over (a resume): the rate behind the estimate counts from here.
    resumed: float = field(default=-1.0)
    #: Called as lines are due (``beat(force)``): notes in the journal that the sweeper still runs.
    beat: Callable[[bool], None] | None = field(default=None, repr=False)
    done_at_start: int = 0
    #: Trials a resumed sweep re-attached to: they ran before it, so they leave the rate out.
    carried_over: frozenset[int] = frozenset()
    #: The sweep has ended (its last line): nothing is left to run, whatever the budgets say (a grid run through).
    ended: bool = False
    _last_log: float = 0.0
    _dirty: bool = True
    _estimate_shown: bool = False

    def __post_init__(self) -> None:
        now = self.clock()
        self.started = now if self.started < 0 else self.started
        self.resumed = now if self.resumed < 0 else self.resumed

    def trial_finished(
        self, number: int, value: float | None, failed: bool, stopped: bool = False, cost: float = 1.0
    ) -> None:
        self.done += 1
        self.spent += cost
        if number in self.carried_over:
            self.spent_at_start += cost  # spent before this process took over, mostly
        self.failed += int(failed)
        self.stopped += int(stopped)
        self._dirty = True
        if value is None or self.metric is None:
            return
        if self.best_value is None or self.metric.better(value, self.best_value):
            self.best_value, self.best_trial = value, number

    def count_elapsed_from(self, run_started_epoch: float, ran_before_s: float) -> None:
        """The elapsed time: since this run started, plus ``ran_before_s`` that earlier runs took."""
        self.started = self.clock() - max(0.0, time.time() - run_started_epoch) - ran_before_s
        self._dirty = True

    def resume(self, done: int, carried_over: Iterable[int] = ()) -> None:
        """A resumed sweep: the estimate counts from now and from the trials it starts (not the
        ``carried_over`` ones it re-attached to)."""
        self.resumed = self.clock()
        self.done_at_start = done
        self.spent_at_start = self.spent
        self.carried_over = frozenset(carried_over)
        self.steps = None  # the first count given after this is the baseline of the step rate
        self._dirty = True

    def set_steps(self, reported: int) -> None:
        """``reported`` steps so far, summed over the trials (early_stopping.step_budget)."""
        if self.steps is None:
            self.steps_at_start = reported
        if reported != self.steps:
            self.steps = reported
            self._dirty = True

    def set_running(self, running: int, waiting: int = 0, unsubmitted: int = 0) -> None:
        """``running`` trials in flight, of which ``waiting`` wait for the cluster (shown apart), and
        of those ``unsubmitted`` wait for it to accept their job (shown as ``hydra-sigopt status`` does)."""
        if (running, waiting, unsubmitted) != (self.running, self.waiting, self.unsubmitted):
            self.running, self.waiting, self.unsubmitted = running, waiting, unsubmitted
            self._dirty = True

    def line(self) -> str:
        now = self.clock()
        elapsed = now - self.started
        done = f"{self.done} trials done ({self.spent:.4g}/{self.budget} of the budget spent)"
        parts = [done if self.with_costs else f"{self.done}/{self.budget} trials done"]
        if self.step_budget is not None:
            parts.append(f"{self.steps or 0}/{self.step_budget} steps reported")
        parts.append(f"{self.running - self.waiting} running")
        if self.waiting > self.unsubmitted:
            parts.append(f"{self.waiting - self.unsubmitted} queued")
        if self.unsubmitted:
            parts.append(f"{self.unsubmitted} waiting to be submitted")
        parts.append(f"{self.failed} failed")
        if self.stopped:
            parts.append(f"{self.stopped} stopped early")
        if self.best_value is not None and self.metric is not None:
            parts.append(f"best {self.metric.name}={self.best_value:.6g} (trial #{self.best_trial})")
        parts.append(f"elapsed {format_duration(elapsed)}")
        left = self._time_left(now)
        if left is not None:
            parts.append(f"~{format_duration(left)} left")
        return "Progress: " + ", ".join(parts)

    def _time_left(self, now: float) -> float | None:
        """At the rate since this process took over, until the first budget to be spent; None
        without a rate, once the sweep has ended, or once a budget is spent (the trials': nothing is
        left to run; the steps': the running trials stop at their next report)."""
        if self.ended or self.spent >= self.budget - 1e-9:
            return None
        took = now - self.resumed
        estimates = [_left(took, self.spent - self.spent_at_start, self.budget - self.spent)]
        if self.step_budget is not None:
            steps = self.steps or 0
            if steps >= self.step_budget:
                return None
            estimates.append(_left(took, steps - self.steps_at_start, self.step_budget - steps))
        known = [e for e in estimates if e is not None]
        return min(known) if known else None

    def log_last(self, line: bool = True) -> None:
        """The run's end, after its wrap-up (the engine's last calls, the results files): noted in
        the journal, so that the elapsed time counts the wrap-up too; and (``line``: the sweep ran to
        its end) the sweep's last line, unless the line logged last already says it all."""
        self.ended = True
        if self.beat is not None:
            self.beat(True)  # the run's end, as this line says it
        if not line:
            return
        # The line logged last estimated a time left, which an ended sweep has not; or its elapsed
        # time is 2 s or more behind (a slow wrap-up: a server slow to answer the last calls).
        if self._dirty or self._estimate_shown or self.clock() - self._last_log >= 2.0:
            self.maybe_log(force=True)

    def maybe_log(self, force: bool = False) -> None:
        now = self.clock()
        if self.beat is not None:
            self.beat(False)
        if force or (self._dirty and now - self._last_log >= self.interval):
            log.info(self.line())
            self._estimate_shown = self._time_left(now) is not None
            self._last_log = now
            self._dirty = False


def _left(took: float, done: float, remaining: float) -> float | None:
    """The time ``remaining`` units take when ``done`` took ``took`` seconds (None: no rate yet or none left)."""
    return took / done * remaining if done > 0 and remaining > 1e-9 else None
