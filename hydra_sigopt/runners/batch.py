"""Synchronous batches through ``Launcher.launch``: works with every Hydra launcher."""

from __future__ import annotations

import errno
import time
import traceback
from collections.abc import Sequence
from typing import Any

from hydra_sigopt.runners.base import TrialRunner
from hydra_sigopt.runners.outcome import JobOutcome, describe_error, forget_frames, outcome_from_job_return
from hydra_sigopt.runners.task import take_ended_here

#: A launcher's OSError that says the sweep dir refuses writes (read-only, full, over quota), not that a trial failed.
FOLDER_REFUSED = (errno.EROFS, errno.ENOSPC, errno.EDQUOT)


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
            restore_sweep_logging(self.launcher)
            # In-process trials of the batch that had ended, failed ones too (they are no less done).
            self._ended_before_interrupt = take_ended_here(numbers)
            for outcome in self._ended_before_interrupt:
                forget_frames(outcome.error)  # its text is kept (see forget_frames)
            raise
        except Exception as exc:  # e.g. submitit's UncompletedJobError: the batch's results are lost
            restore_sweep_logging(self.launcher)
            # In-process trials that ended before the launcher raised (the basic launcher runs them one
            # after the other): their own ends. Taken in any case: else kept for good, and found by a
            # later sweep's trials of these numbers.
            ended = {o.number: o for o in take_ended_here(numbers)}
            if isinstance(exc, OSError) and exc.errno in FOLDER_REFUSED:
                # Hydra could not make a trial's folder: nothing of the trials ran, and nothing of theirs
                # failed. Recorded as failures, they spent the budget and told the engine their points
                # fail; the sweep stops instead (as on any error), and the resumed one runs them.
                raise
            tb = traceback.format_exc()
            reason = f"the launcher lost the batch: {describe_error(exc)}"
            for outcome in ended.values():
                forget_frames(outcome.error)  # its text is kept (see forget_frames)
            return [
                ended.get(n)
                or JobOutcome(
                    n, False, error=exc, reason=reason, traceback=tb, started_at=started, ended_at=time.time()
                )
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


def restore_sweep_logging(launcher: Any) -> None:
    """Hydra's logging of the sweep, as the basic launcher sets it again after each trial it runs: a
    launch cut short inside a trial (a Ctrl-C) skipped that, and the sweeper's stop lines went out in
    the app's format and into the interrupted trial's own log file."""
    config = getattr(launcher, "config", None)
    hydra = getattr(config, "hydra", None)
    if hydra is None:
        return
    from hydra.core.utils import configure_log

    configure_log(hydra.hydra_logging, hydra.verbose)
