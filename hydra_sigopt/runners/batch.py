"""Synchronous batches through ``Launcher.launch``: works with every Hydra launcher."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import Any

from hydra_sigopt.runners.base import TrialRunner
from hydra_sigopt.runners.outcome import JobOutcome, describe_error, forget_frames, outcome_from_job_return
from hydra_sigopt.runners.task import take_ended_here


class BatchRunner(TrialRunner):
    """Queues the trials of a batch, then runs them all in one blocking ``launch()`` call."""

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher
        self.kind = type(launcher).__name__
        self.logs_each_trial = True
        self.runs_trials_here = self.kind == "BasicLauncher"
        # In-process trials report to the sweeper as they run; another launcher's are read after the batch.
        self.reads_reports_while_running = self.runs_trials_here
        self._queued: list[tuple[int, list[str]]] = []
        self._ended_before_interrupt: list[JobOutcome] = []

    def start(self, number: int, overrides: Sequence[str]) -> str | None:
        if self._queued and number != self._queued[-1][0] + 1:
            raise ValueError("a batch's job numbers must be consecutive")
        self._queued.append((number, list(overrides)))
        return None

    def running(self) -> list[int]:
        return [n for n, _ in self._queued]

    def wait(self, timeout: float) -> list[JobOutcome]:
        if not self._queued:
            return []
        batch, self._queued = self._queued, []
        first = batch[0][0]
        started = time.time()
        numbers = [n for n, _ in batch]
        try:
            returns = self.launcher.launch([o for _, o in batch], initial_job_idx=first)
        except KeyboardInterrupt:
            # In-process trials of the batch that had ended, failed ones too (they are no less done).
            self._ended_before_interrupt = take_ended_here(numbers)
            for outcome in self._ended_before_interrupt:
                forget_frames(outcome.error)  # its text is kept (see forget_frames)
            raise
        except Exception as exc:  # e.g. submitit's UncompletedJobError: the batch's results are lost
            take_ended_here(numbers)  # else kept for good, and found by a later sweep's trials of these numbers
            tb = traceback.format_exc()
            reason = f"the launcher lost the batch: {describe_error(exc)}"
            return [
                JobOutcome(n, False, error=exc, reason=reason, traceback=tb, started_at=started, ended_at=time.time())
                for n, _ in batch
            ]
        take_ended_here(numbers)  # their JobReturns say it all
        outcomes = [outcome_from_job_return(n, ret) for (n, _), ret in zip(batch, returns)]
        missing = [n for n, _ in batch[len(returns) :]]
        outcomes += [
            JobOutcome(n, False, reason="the launcher returned no result for this job", ended_at=time.time())
            for n in missing
        ]
        return outcomes

    def ended_before_interrupt(self) -> list[JobOutcome]:
        ended, self._ended_before_interrupt = self._ended_before_interrupt, []
        return ended

    def describe(self) -> str:
        return f"batch (synchronous, through {type(self.launcher).__name__}.launch)"
