"""Slots held by jobs the sweep does not run: those of trials stopped before a restart that still run.

A trial stopped early learns of it at its next report and may then save a checkpoint; one that
swallows the stop runs until cancelled (:meth:`hydra_sigopt.early_stopping.EarlyStopping.overstaying`).
A sweeper killed meanwhile leaves such a job running, and the resumed sweep, which does not run
it, started a new trial beside it: two jobs at ``parallel_bandwidth`` 1 (a GPU shared with a job
still writing its checkpoint). The resumed sweep holds their slots
(:meth:`hydra_sigopt.scheduler.Scheduler.hold`) until their jobs are gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from hydra_sigopt.journal import Trial
from hydra_sigopt.runners import TrialRunner
from hydra_sigopt.scheduler import HeldSlotsFreed

#: Seconds between two looks at the held jobs (on Slurm, one squeue call for all of them).
CHECK_EVERY_S = 2.0


class HeldSlots:
    """The held jobs, by trial number, and when they are gone (as the runner can tell)."""

    def __init__(self, runner: TrialRunner, clock: Callable[[], float] = time.monotonic) -> None:
        self.runner = runner
        self.clock = clock
        self._jobs: dict[int, str] = {}
        self._looked_at = 0.0

    def hold(self, stopped: Iterable[Trial]) -> list[int]:
        """Hold the slots of these stopped trials whose jobs still run; their numbers."""
        jobs = {t.number: str(t.job_id) for t in stopped if t.job_id is not None}
        running = set(self.runner.untracked_running(list(jobs.values())))
        self._jobs = {number: job for number, job in jobs.items() if job in running}
        self._looked_at = self.clock()
        return sorted(self._jobs)

    def freed(self) -> list[HeldSlotsFreed]:
        """The slots whose jobs have ended (or were cancelled) since the last look, at most every
        CHECK_EVERY_S; none while no slot is held."""
        if not self._jobs or self.clock() - self._looked_at < CHECK_EVERY_S:
            return []
        self._looked_at = self.clock()
        running = set(self.runner.untracked_running(list(self._jobs.values())))
        gone = tuple(sorted(n for n, job in self._jobs.items() if job not in running))
        for number in gone:
            del self._jobs[number]
        return [HeldSlotsFreed(gone)] if gone else []
