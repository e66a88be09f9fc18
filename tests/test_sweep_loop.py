"""The async loop's order of effects, with the real engine and a runner that finishes trials on cue.

The runner stands in for submitit only to make the order of events deterministic: which trial
ends when, and whether the next suggestion was ready by then. Real jobs are in test_example_app.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt import sweep as sweep_module
from hydra_sigopt.backends import Suggestion
from hydra_sigopt.backends.base import Pending, pending_parts
from hydra_sigopt.backends.lite import LiteBackend
from hydra_sigopt.errors import BackendUnavailableError, SweepAbortedError
from hydra_sigopt.journal import Journal, JournalFullError
from hydra_sigopt.metrics import MetricValue
from hydra_sigopt.reports import ResultsNotWritten
from hydra_sigopt.runners import JobOutcome, TrialRunner
from hydra_sigopt.settings import parse_settings
from hydra_sigopt.sweep import Sweep

SPACE = {"params": {"x": "interval(0,1)", "y": "interval(0,1)"}, "seed": 3, "progress_interval": 60}


class CueRunner(TrialRunner):
    """Asynchronous; each wait() ends the oldest running trial, once ``ready()`` says so within its
    timeout (else none: here trials end only on cue). A look with no time to wait ends none."""

    asynchronous = True
    kind = "cue"

    def __init__(self, events: list[tuple[str, int]], fail_start_of: int | None = None) -> None:
        self.events = events
        self.fail_start_of = fail_start_of
        self.ready = lambda: True
        self._running: deque[tuple[int, list[str]]] = deque()

    def start(self, number: int, overrides: Sequence[str]) -> str | None:
        if number == self.fail_start_of:
            raise RuntimeError("sbatch: error: Batch job submission failed")
        self.events.append(("start", number))
        self._running.append((number, list(overrides)))
        return f"job-{number}"

    def running(self) -> list[int]:
        return [n for n, _ in self._running]

    def running_xs(self) -> set[float]:
        return {float(next(o for o in overrides if o.startswith("x=")).split("=")[1]) for _, overrides in self._running}

    def wait(self, timeout: float) -> list[JobOutcome]:
        if timeout == 0 or not self._running:  # a look at the jobs, not a wait: no cue to end one
            return []
        deadline = time.time() + timeout
        while not self.ready():
            if time.time() >= deadline:
                return []
            time.sleep(0.01)
        number, overrides = self._running.popleft()
        x = float(next(o for o in overrides if o.startswith("x=")).split("=")[1])
        return [JobOutcome(number, True, value=x, started_at=time.time() - 1, ended_at=time.time())]


class SlowObserveBackend(LiteBackend):
    """The real engine; posting takes a while, and each suggestion notes what it was told."""

    def __init__(self, events: list[tuple[str, int]], unreachable_for: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.events = events
        self.unreachable_for = unreachable_for
        self.observed: list[Mapping[str, Any]] = []
        self.issued: list[Mapping[str, Any]] = []
        self.unaccounted: list[list[Mapping[str, Any]]] = []
        #: The x of each trial whose job still runs (set by a test that knows its runner).
        self.running_xs: Callable[[], set[float]] = set
        #: The results posted (a test may take them when the sweep asks, not when the engine looks).
        self.observed_so_far: Callable[[], list[Mapping[str, Any]]] = lambda: list(self.observed)

    def suggest(self, pending: Sequence[Pending]) -> Suggestion:
        # Each earlier suggestion is pending, observed, or still running (a trial suggested on
        # older results runs without being pending): never ended and not yet posted.
        known = [dict(a) for a in [*(pending_parts(p)[0] for p in pending), *self.observed_so_far()]]
        running = self.running_xs()
        self.unaccounted.append([a for a in self.issued if dict(a) not in known and a["x"] not in running])
        suggestion = super().suggest(pending)
        self.issued.append(suggestion.assignments)
        return suggestion

    def observe(
        self,
        suggestion: Suggestion,
        values: Sequence[MetricValue] = (),
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        time.sleep(0.2)  # a remote SigOpt: long enough for a racing suggestion to miss this result
        if metadata and metadata["job_number"] == self.unreachable_for:
            raise BackendUnavailableError("SigOpt at http://sigopt.invalid is unreachable")
        observation_id = super().observe(suggestion, values, failed, metadata)
        self.observed.append(suggestion.assignments)
        self.events.append(("observe", int(metadata["job_number"]) if metadata else -1))
        return observation_id


def make_sweep(tmp_path: Path, runner: CueRunner, backend: SlowObserveBackend, budget: int) -> Sweep:
    settings, definition = parse_settings({**SPACE, "observation_budget": budget, "parallel_bandwidth": 2})
    backend.start(definition)
    sweep = Sweep(settings, definition, tmp_path / "sweep", runner, backend)
    # Each trial ends once every slot is busy (or no trial is left to start), the results are
    # posted and the next suggestion is ready, in the scheduler's hands: the case where a slot is
    # refilled at once.
    runner.ready = lambda: (
        sweep.aside.prefetch is None
        and sweep.posts.under_way is None
        and (len(runner.running()) == 2 or not sweep.scheduler.budget_left)
    )
    return sweep


def test_a_freed_slot_is_refilled_before_the_result_is_posted_and_no_suggestion_misses_a_result(
    tmp_path: Path,
) -> None:
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events)
    runner = CueRunner(events)
    backend.running_xs = runner.running_xs
    make_sweep(tmp_path, runner, backend, budget=6).run()
    # The prefetched suggestion starts trial n+2 before trial n's result is posted ...
    assert events == [
        ("start", 0),
        ("start", 1),
        *[e for n in range(4) for e in (("start", n + 2), ("observe", n))],
        ("observe", 4),
        ("observe", 5),
    ]
    # ... and every suggestion was computed knowing each earlier trial as running or observed,
    # never in between (a result recorded but not yet posted).
    assert backend.unaccounted == [[]] * 6
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        assert [(t.state, t.observed) for t in journal.trials()] == [("completed", True)] * 6


def test_results_recorded_before_a_failed_refill_are_still_posted(tmp_path: Path) -> None:
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events)
    sweep = make_sweep(tmp_path, CueRunner(events, fail_start_of=3), backend, budget=6)
    with pytest.raises(SweepAbortedError, match="Batch job submission failed"):
        sweep.run()
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        trials = {t.number: t for t in journal.trials()}
    # Trial 1 ended and was journaled just before starting trial 3 failed: its result is posted too.
    assert [n for n, t in trials.items() if t.observed] == [0, 1]
    assert ("observe", 1) in events


def test_a_slot_waits_for_the_engine_when_no_suggestion_is_ready(tmp_path: Path) -> None:
    """Without a ready suggestion, the result is posted before the slot is refilled."""
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events)
    slow = threading.Event()
    original = backend.suggest

    def slow_suggest(pending: Sequence[Mapping[str, Any]]) -> Suggestion:
        if slow.is_set():
            time.sleep(0.5)
        return original(pending)

    backend.suggest = slow_suggest  # type: ignore[method-assign]
    runner = CueRunner(events)
    sweep = make_sweep(tmp_path, runner, backend, budget=4)
    start_prefetch = sweep.aside.start_prefetch

    def noting_what_is_known_when_asked(pending: Sequence[Pending]) -> None:
        # The trials running and the results posted when the sweep asks (in its own thread), not
        # when the engine's thread gets to look: trials end meanwhile (at once here), and are
        # recorded and posted while the suggestion is computed, as they should be.
        running, observed = runner.running_xs(), list(backend.observed)
        backend.running_xs, backend.observed_so_far = (lambda: running), (lambda: observed)
        start_prefetch(pending)

    sweep.aside.start_prefetch = noting_what_is_known_when_asked  # type: ignore[method-assign]
    slow.set()
    runner.ready = lambda: True  # trials end before the next suggestion is there
    sweep.run()
    assert events.index(("observe", 0)) < events.index(("start", 2))
    assert backend.unaccounted == [[]] * 4


def test_while_a_slot_waits_for_the_engine_a_trial_that_ends_is_journaled_and_posted(tmp_path: Path) -> None:
    """Issue 16: a slot waiting for a suggestion (seconds with the GP) blocked the sweep: a trial
    ending meanwhile was neither journaled nor posted until the suggestion came. Here the second
    suggestion is computed while trial 0 runs, and comes only once trial 0's result is posted."""
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events)
    runner = CueRunner(events)
    sweep = make_sweep(tmp_path, runner, backend, budget=3)
    runner.ready = lambda: True  # trials end as soon as they are waited for
    posted_0 = threading.Event()
    in_time: list[bool] = []
    suggest, observe = backend.suggest, backend.observe

    def gated_suggest(pending: Sequence[Mapping[str, Any]]) -> Suggestion:
        if len(backend.issued) == 1:  # the second suggestion
            in_time.append(posted_0.wait(timeout=5))
        return suggest(pending)

    def noting_observe(suggestion: Suggestion, *args: Any, **kw: Any) -> Any:
        observation_id = observe(suggestion, *args, **kw)
        posted_0.set()
        return observation_id

    backend.suggest = gated_suggest  # type: ignore[method-assign]
    backend.observe = noting_observe  # type: ignore[method-assign]
    sweep.run()
    assert in_time == [True], "trial 0's result waited for the suggestion computed meanwhile"
    assert events[:3] == [("start", 0), ("observe", 0), ("start", 1)]
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        assert [(t.state, t.observed) for t in journal.trials()] == [("completed", True)] * 3


def test_a_failed_post_while_stopping_does_not_hide_why_the_sweep_stopped(tmp_path: Path) -> None:
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events, unreachable_for=1)
    sweep = make_sweep(tmp_path, CueRunner(events, fail_start_of=3), backend, budget=6)
    with pytest.raises(SweepAbortedError, match="Batch job submission failed"):
        sweep.run()
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        trials = {t.number: t for t in journal.trials()}
    # Trial 1's result is journaled but not posted: a resumed sweep posts it.
    assert trials[1].state == "completed" and not trials[1].observed


def test_a_result_that_arrives_after_a_kill_abandoned_its_trial_is_dropped_not_a_crash(tmp_path: Path) -> None:
    """hydra-sigopt kill on a frozen sweeper abandons its trials; the sweeper, thawed, loses that race."""
    events: list[tuple[str, int]] = []
    backend = SlowObserveBackend(events)
    runner = CueRunner(events)
    sweep = make_sweep(tmp_path, runner, backend, budget=4)
    plain_wait = runner.wait

    def wait_while_killed(timeout: float) -> list[JobOutcome]:
        outcomes = plain_wait(timeout)
        if outcomes and outcomes[0].number == 1:
            assert sweep.journal is not None
            with Journal.open(tmp_path / "sweep") as other_process:
                other_process.mark_abandoned(1, "cancelled by hydra-sigopt kill (scancel)")
        return outcomes

    runner.wait = wait_while_killed  # type: ignore[method-assign]
    sweep.run()
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        states = {t.number: (t.state, t.observed) for t in journal.trials()}
    assert states[1] == ("abandoned", False)
    assert ("observe", 1) not in events
    # The budget counts results: the dropped trial is replaced by a new one.
    assert sum(1 for s in states.values() if s == ("completed", True)) == 4


def test_the_last_progress_line_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[tuple[str, int]] = []
    sweep = make_sweep(tmp_path, CueRunner(events), SlowObserveBackend(events), budget=3)
    sweep.progress.interval = 0  # a line at every change
    with caplog.at_level(logging.INFO, logger="hydra_sigopt"):
        sweep.run()
    last = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress: 3/3 trials done")]
    assert len(last) == 1, last


def test_a_disk_that_fills_during_the_wrap_up_ends_the_sweep_on_its_one_line_with_the_journal_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trials' output fills the disk as the sweep ends: the results files are refused (one line
    says so), and the last progress line's journal write then raised JournalFullError inside the
    wrap-up, skipping the journal's close and replacing that line (found by review)."""
    events: list[tuple[str, int]] = []
    sweep = make_sweep(tmp_path, CueRunner(events), SlowObserveBackend(events), budget=2)
    refused = ResultsNotWritten("could not write trials.csv and optimization_results.yaml in the sweep dir")
    monkeypatch.setattr(sweep_module, "write_final_reports", lambda sweep_dir, journal: refused)

    def heartbeat_on_a_full_disk(line: bool = True) -> None:
        raise JournalFullError("the disk holding the sweep dir is full")

    sweep.progress.log_last = heartbeat_on_a_full_disk  # type: ignore[method-assign]
    with pytest.raises(ResultsNotWritten, match=r"could not write trials\.csv"):
        sweep.run()
    assert sweep.journal is not None
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):  # closed by the wrap-up, as at every end
        sweep.journal.meta()


def test_the_local_engine_leaves_no_observation_id_rather_than_the_string_none(tmp_path: Path) -> None:
    events: list[tuple[str, int]] = []
    make_sweep(tmp_path, CueRunner(events), SlowObserveBackend(events), budget=2).run()
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        assert [(t.observed, t.observation_id) for t in journal.trials()] == [(True, None)] * 2
