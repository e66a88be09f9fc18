"""The sweeper's side of warm jobs (see :mod:`hydra_sigopt.warm` for the job's side).

A :class:`WarmPool` keeps up to ``size`` jobs waiting for a trial, hands the next trial to one of
them by writing its claim file, and retires the rest when they are not needed any more.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.runners.cancel import cancel_jobs
from hydra_sigopt.runners.ended_job import set_aside_an_earlier_jobs_results
from hydra_sigopt.runners.executor import starting_jobs
from hydra_sigopt.runners.slurm import is_transient_refusal
from hydra_sigopt.warm import WarmJob, claim, tell_next_trial

log = logging.getLogger(__name__)

#: How long no warm job is started after the cluster refused one.
REFUSED_PAUSE_S = 30.0


@dataclass(frozen=True)
class _Waiting:
    """A warm job and the claim file it waits for."""

    job: Any
    claim_path: Path


class WarmPool:
    """Warm jobs of one executor: started ahead, claimed by trials, retired when not needed."""

    def __init__(
        self,
        executor: Any,
        launcher: Any,
        size: int,
        claims_dir: Path,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.executor = executor
        self.launcher = launcher
        self.size = size
        self.claims_dir = claims_dir
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.cluster: str = launcher._EXECUTOR
        self._waiting: deque[_Waiting] = deque()
        self._wanted = 0
        # Set when warm jobs gave up unused (no slot freed within their wait); cleared by the next
        # trial start. Replacing them at once would start a job per warm slot and minute for nothing
        # while long trials run.
        self._paused = False
        # Warm jobs start once the jobs just submitted have started: locally they share the CPUs,
        # and a trial waiting for its job to start matters more than a job waiting for a trial.
        self._delay_s = 1.0 if self.cluster == "local" else 0.0
        self._not_before = 0.0
        self._last_overrides: list[str] | None = None
        #: The overrides each waiting job was told its trial will likely have (see prepare).
        self._told: dict[Path, list[str]] = {}

    def take(self, number: int, overrides: Sequence[str]) -> Any | None:
        """A warm job that will run this trial, or None when none is left waiting: one that composed
        this trial's config ahead (see prepare) if there is one, else the one waiting longest."""
        self._last_overrides = list(overrides)
        found = None
        for warm in self._in_claim_order(list(overrides)):
            self._waiting.remove(warm)
            self._told.pop(warm.claim_path, None)
            if not warm.job.done() and claim(warm.claim_path, {"number": number, "overrides": list(overrides)}):
                found = warm.job
                break
            log.debug("warm job %s was gone (gave up waiting or died)", warm.job.job_id)
        # A trial start allows replacing warm jobs that gave up (see keep_warm): forget them now.
        self._waiting = deque(w for w in self._waiting if not w.job.done())
        self._paused = False
        return found

    def _in_claim_order(self, overrides: list[str]) -> list[_Waiting]:
        """The waiting jobs, those told of this trial first (stable: the longest waiting first)."""
        return sorted(self._waiting, key=lambda w: self._told.get(w.claim_path) != overrides)

    def prepare(self, next_up: Sequence[Sequence[str]]) -> None:
        """Tell the waiting jobs, in the order :meth:`take` hands them out, the overrides of the
        trials the next free slots take: each composes its trial's config while the slots are busy
        (Hydra's composition, ~0.35 s here, was the largest share of a refill with early stopping).
        Only a hint: a job whose trial differs composes that trial's config as before."""
        waiting = {w.claim_path for w in self._waiting}
        self._told = {path: told for path, told in self._told.items() if path in waiting}
        for warm, overrides in zip(self._waiting, next_up):
            if self._told.get(warm.claim_path) != list(overrides):
                try:
                    tell_next_trial(warm.claim_path, list(overrides))
                except OSError as exc:  # only a head start: the claim, written next, says what a refusing disk means
                    log.debug("warm job %s not told its likely trial: %s", warm.job.job_id, exc)
                    continue
                self._told[warm.claim_path] = list(overrides)

    def cold_job_started(self) -> None:
        """A trial's job was submitted without a warm job: hold new warm jobs back a moment."""
        self._not_before = self.clock() + self._delay_s

    def keep_warm(self, trials_left: int, next_up: Sequence[Sequence[str]] = ()) -> None:
        """Have up to ``min(size, trials_left)`` jobs waiting: start missing ones, retire extra ones;
        tell them the trials ``next_up`` (see :meth:`prepare`)."""
        self._wanted = wanted = min(self.size, max(0, trials_left))
        waiting = deque(w for w in self._waiting if not w.job.done())
        if len(waiting) < len(self._waiting):
            gone = [w.job.job_id for w in self._waiting if w not in waiting]
            log.debug("warm jobs %s ended unused; replaced when the next trial starts", gone)
            self._paused = True
        self._waiting = waiting
        while len(self._waiting) > wanted:
            self._retire(self._waiting.pop(), "not needed: the budget is issued")
        while self.due():
            try:
                self._waiting.append(self._submit())
            except Exception as exc:
                if not is_transient_refusal(str(exc)):
                    raise
                # The cluster refuses jobs for now: trials need it more than warm jobs do.
                log.debug("warm job not started: %s", exc)
                self._not_before = self.clock() + REFUSED_PAUSE_S
                break
        self.prepare(next_up)

    def due(self) -> bool:
        """Whether warm jobs are missing and may be started now (see :meth:`keep_warm`)."""
        return len(self._waiting) < self._wanted and not self._paused and self.clock() >= self._not_before

    def close(self) -> None:
        """Retire every waiting job; never raises (warm jobs also end by themselves)."""
        while self._waiting:
            warm = self._waiting.pop()
            try:
                self._retire(warm, "the sweep ended")
            except Exception as exc:  # a courtesy: never in the way of stopping
                log.warning("Could not retire warm job %s: %s: %s", warm.job.job_id, type(exc).__name__, exc)

    def _submit(self) -> _Waiting:
        """Start one job that waits for its trial."""
        from hydra.core.singleton import Singleton

        self.claims_dir.mkdir(parents=True, exist_ok=True)
        path = self.claims_dir / f"{uuid.uuid4().hex}.json"
        poll_s = 0.01 if self.cluster == "local" else 0.2
        warm_job = WarmJob(
            self.launcher,
            str(path),
            Singleton.get_state(),
            self.max_wait_s,
            poll_s,
            warm_up_overrides=self._last_overrides,
        )
        with starting_jobs(self.launcher):
            job = self.executor.submit(warm_job)
        set_aside_an_earlier_jobs_results(job)
        return _Waiting(job, path)

    def _retire(self, warm: _Waiting, reason: str) -> None:
        """Tell a warm job to end without a trial (it exits within its poll interval)."""
        if not claim(warm.claim_path, {"stop": reason}):
            return  # it gave up first
        log.debug("warm job %s retired: %s", warm.job.job_id, reason)
        if self.cluster == "slurm" and not warm.job.paths.stdout.exists():
            # Still queued: it would only start to read its stop claim, holding an allocation meanwhile.
            done = cancel_jobs("slurm", [str(warm.job.job_id)])
            if done.failed:
                log.debug("scancel of warm job %s failed: %s", warm.job.job_id, done.failed)
