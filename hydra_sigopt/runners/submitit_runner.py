"""One submitit job per trial, submitted without blocking, polled until done.

Builds the executor the way ``BaseSubmititLauncher.launch`` does (:mod:`.executor`) and submits
the launcher object's call itself, so each job runs exactly what Hydra's launcher would have run
(through :class:`~.trial_job.TrialJob`: not again in a job Slurm requeued after its trial ended).
Each trial's job is one :class:`_TrackedJob`; warm jobs live in a :class:`~.warm_pool.WarmPool`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.processes import local_job_running
from hydra_sigopt.runners.base import CancelReport, TrialRunner
from hydra_sigopt.runners.cancel import Cancellation, cancel_jobs, cancel_running
from hydra_sigopt.runners.ended_job import (
    ForgottenBySlurm,
    any_result_written,
    death_reason,
    find_job_of_trial,
    node_of,
    read_result,
    refused_result_write,
    results_written,
    set_aside_an_earlier_jobs_results,
)
from hydra_sigopt.runners.executor import (
    log_submitit_once,
    make_executor,
    pre_timeout_reason,
    run_jobs_from,
    starting_jobs,
)
from hydra_sigopt.runners.launch_failures import overrides_to_relaunch, say_relaunched
from hydra_sigopt.runners.local_jobs import LocalJobWatch
from hydra_sigopt.runners.outcome import JobOutcome, outcome_from_job_return
from hydra_sigopt.runners.queue_log import QueueLog
from hydra_sigopt.runners.refused import RefusedSubmissions
from hydra_sigopt.runners.slurm import DIED_STATES, slurm_jobs_not_ended, slurm_knows_job
from hydra_sigopt.runners.trial_job import submit_trial
from hydra_sigopt.runners.warm_pool import WarmPool
from hydra_sigopt.warm import max_wait_for

log = logging.getLogger(__name__)


@dataclass
class _TrackedJob:
    """One trial's submitit job and what the runner has learnt about it."""

    job: Any
    #: Wall time of the submission (or re-attachment): the start reported for a job that died.
    submitted_at: float
    #: Started by an earlier sweeper process (a local one is then judged by its pid, see _done).
    reattached: bool = False
    #: Clock time at which it was first seen ended without a result file (see _ready).
    dead_since: float | None = None
    #: A re-attached Slurm job that submitit cannot find: clock time Slurm was last asked about it.
    slurm_asked_at: float | None = None
    #: Slurm no longer knows it (neither queue nor accounting): it ended without a result.
    forgotten: bool = False
    #: The trial's overrides, for a job this runner submitted (None: re-attached).
    overrides: list[str] | None = None
    #: How many earlier jobs of the trial died before its task started (see _died_at_launch).
    relaunches: int = 0


def _forgotten_by_slurm(tracked: _TrackedJob, now: float, recheck_s: float) -> bool:
    """Whether Slurm no longer knows a re-attached job (asked at most every ``recheck_s``).

    submitit counts a job it cannot find as running: one Slurm forgot (accounting purged, and
    squeue failing when the sweep re-attached) would be waited for forever.
    """
    if tracked.job.state != "UNKNOWN":
        tracked.slurm_asked_at = None  # Slurm reports it: submitit will see it end
        return False
    assert tracked.slurm_asked_at is not None
    if now - tracked.slurm_asked_at < recheck_s:
        return False
    tracked.slurm_asked_at = now
    tracked.forgotten = not slurm_knows_job(tracked.job)
    return tracked.forgotten


class SubmititRunner(TrialRunner):
    """One submitit job per trial, on hydra-submitit-launcher's local or Slurm executor."""

    asynchronous = True

    def __init__(
        self,
        launcher: Any,
        poll_interval: float | None = None,
        state_check_interval: float = 2.0,
        warm_jobs: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from submitit.core.utils import JobPaths

        self.launcher = launcher
        self.cluster: str = launcher._EXECUTOR
        self.kind = self.cluster
        # How often finished jobs are looked for: locally a stat per job (cheap, and each 10 ms
        # here is 10 ms of an idle slot); on Slurm a stat of a shared file system per job, for
        # jobs that run minutes or hours.
        self.poll_interval = poll_interval or (0.5 if self.cluster == "slurm" else 0.02)
        # How often Slurm's accounting is asked for every job's state (one sacct call for all of
        # them, see wait): a job that died is noticed within this plus dead_grace_s.
        self.state_check_interval = state_check_interval
        self.clock, self.sleep = clock, sleep
        self.executor = make_executor(launcher)
        log_submitit_once()
        self.submitit_folder = str(launcher.params["submitit_folder"])
        claims_dir = Path(JobPaths.get_first_id_independent_folder(self.executor.folder)) / "warm"
        max_wait_s = max_wait_for(launcher.params.get("timeout_min"))
        self.warm = WarmPool(self.executor, launcher, warm_jobs, claims_dir, max_wait_s, clock)
        # How long a job that ended without a result file may still produce one (shared file systems
        # lag); a job Slurm reports cancelled, failed or killed wrote all it will write already.
        self.result_grace_s = 15.0 if self.cluster == "slurm" else 1.0
        self.dead_grace_s = 1.0
        # What a job waits for in Slurm's queue, in the log (and which trials count as queued).
        self.queue_log = QueueLog(clock)
        # How often a re-attached job that submitit cannot find is asked about again.
        self.unknown_recheck_s = 60.0
        self._jobs: dict[int, _TrackedJob] = {}
        self.local = LocalJobWatch(dict(launcher.params), self.submitit_folder, self.cluster == "local")
        self.refused = RefusedSubmissions(self._submit, clock)
        self._started_late: list[tuple[int, str]] = []
        self.stopping = False  # see stop_starting
        self._last_forced_check = -math.inf

    # ------------------------------------------------------------------ starting

    def start(self, number: int, overrides: Sequence[str], relaunches: int = 0) -> str | None:
        """Submit the trial's job (or hand it to a warm job); None when the cluster refuses jobs for
        now: it is submitted again while :meth:`wait` runs, and reported by :meth:`started_late`.
        ``relaunches``: how often a job of the trial died at its launch before (see _relaunched)."""
        job = self.warm.take(number, overrides)
        if job is None and self.refused.refusing:
            self.refused.add(number, overrides, relaunches=relaunches)  # behind the trials already waiting
            return None
        if job is None:
            try:
                job = self._submit(number, overrides)
            except Exception as exc:
                self.refused.add(number, overrides, refusal=exc, relaunches=relaunches)
                return None
        self._jobs[number] = _TrackedJob(job, time.time(), overrides=list(overrides), relaunches=relaunches)
        self.local.started(number, job)
        return str(job.job_id)

    def stop_starting(self) -> None:
        self.stopping = True

    def started_late(self) -> list[tuple[int, str]]:
        """Trials submitted by :meth:`wait` after the cluster refused them for a while: (number, job id)."""
        late, self._started_late = self._started_late, []
        return late

    def _submit(self, number: int, overrides: Sequence[str]) -> Any:
        with starting_jobs(self.launcher):
            job = submit_trial(self.executor, self.launcher, number, overrides)
        set_aside_an_earlier_jobs_results(job)
        self.warm.cold_job_started()
        return job

    def _submit_refused(self) -> bool:
        """Submit the trials the cluster refused, once a try is due; True if one went through."""
        started = self.refused.retry_due()
        for number, job, waited in started:
            self._jobs[number] = _TrackedJob(job, time.time(), overrides=waited.overrides, relaunches=waited.relaunches)
            self.local.started(number, job)
            self._started_late.append((number, str(job.job_id)))
        return bool(started)

    def reattach(self, number: int, job_id: str) -> bool:
        import submitit

        job: Any
        # Every task of a multi-task job (DDP), as the executor submitted it.
        tasks = tuple(range(self.executor._executor._num_tasks()))
        if self.cluster == "slurm":
            job = submitit.SlurmJob(folder=self.executor.folder, job_id=job_id, tasks=tasks)
            # A job Slurm no longer knows (accounting purged, another cluster) would be waited on for
            # ever: submitit counts an unknown state as not done. With no result either, re-run it.
            if not any_result_written(job) and not slurm_knows_job(job):
                return False
        else:
            job = submitit.LocalJob(folder=self.executor.folder, job_id=job_id, tasks=tasks)
            # A local job dies with its sweeper's process group (Ctrl-C in the terminal, a lost
            # SSH session): with no process and no result there is nothing to wait for; re-run it.
            if not any_result_written(job) and not local_job_running(job_id, self.submitit_folder):
                return False
        asked_at = self.clock() if self.cluster == "slurm" else None
        self._jobs[number] = _TrackedJob(job, submitted_at=time.time(), reattached=True, slurm_asked_at=asked_at)
        self.local.started(number, job)
        return True

    def find_job(self, number: int, overrides: Sequence[str], known_job_ids: Collection[str]) -> str | None:
        """The job of trial ``number`` among the job folders of jobs not in ``known_job_ids``.

        For a trial the journal has no job id for: the sweeper died between submitting its job
        and journaling the id, and the job may run on. submitit keeps each job's call in its
        folder; a warm job's trial is in its claim file.
        """
        return find_job_of_trial(self.executor.folder, number, overrides, known_job_ids)

    def run_from(self, job_python: Callable[[str], str]) -> bool:
        """Cold and warm jobs share the executor: both run from the snapshot."""
        run_jobs_from(self.executor, job_python)
        return True

    def keep_warm(self, trials_left: int, next_up: Sequence[Sequence[str]] = ()) -> None:
        self.warm.keep_warm(trials_left, next_up)

    def running(self) -> list[int]:
        return sorted([*self._jobs, *self.refused.numbers()])

    def waiting(self) -> list[int]:
        """Trials whose job waits for the cluster (queued, requeued, held, or not yet accepted)."""
        return sorted([*(n for n in self.queue_log.waiting() if n in self._jobs), *self.unsubmitted()])

    def unsubmitted(self) -> list[int]:
        return self.refused.numbers()

    def _note_states(self) -> None:
        if self.cluster == "slurm":
            self.queue_log.note({n: (str(t.job.job_id), str(t.job.state)) for n, t in self._jobs.items()})

    def wait(self, timeout: float) -> list[JobOutcome]:
        deadline = self.clock() + timeout
        while True:
            # One forced sacct call refreshes every job (submitit's watcher otherwise backs off to
            # minutes, which would leave a cancelled job's slot empty that long).
            force = self.clock() - self._last_forced_check >= self.state_check_interval
            if force:
                self._last_forced_check = self.clock()
            submitted = not self.stopping and self._submit_refused()  # a job submitted now would run unjournaled
            jobs = list(self._jobs.items())
            finished = [n for i, (n, tracked) in enumerate(jobs) if self._ready(tracked, force and i == 0)]
            if force:
                self._note_states()  # with the states just refreshed
                self.local.check()
            if finished or submitted or self._nothing_to_wait_for(deadline):
                relaunched = [n for n in finished if self._relaunched(n)]
                return [self._collect(n) for n in finished if n not in relaunched]
            self.sleep(min(self.poll_interval, max(0.0, deadline - self.clock())))

    def _nothing_to_wait_for(self, deadline: float) -> bool:
        nothing = not self._jobs and not self.refused.numbers()
        return nothing or self.clock() >= deadline or self.warm.due()

    def _ready(self, tracked: _TrackedJob, force: bool) -> bool:
        """Done, and its result is there or will not come (without blocking the loop to find out)."""
        # The result file is written under a temporary name and renamed: once it exists the trial
        # is over, even while submitit's controller is still tidying up (a local controller takes
        # a further 0.1-0.2 s to exit).
        job = tracked.job
        if results_written(job):
            return True
        if not self._done(tracked, force):
            tracked.dead_since = None  # back to running (e.g. requeued)
            return False
        if results_written(job):
            return True
        # submitit waits up to _results_timeout_s for a late result file inside result(); wait that
        # grace here instead, so that one dead job does not stall the refilling of the other slots.
        if tracked.dead_since is None:
            tracked.dead_since = self.clock()
        if self.clock() - tracked.dead_since < self._grace(tracked):
            return False
        for task in (job, *job._sub_jobs):  # a multi-task job's tasks wait on their own
            task._results_timeout_s = 0
        return True

    def _grace(self, tracked: _TrackedJob) -> float:
        """How long an ended job without a result file is given to produce one."""
        if self.cluster == "slurm" and str(tracked.job.state).split(" ")[0] in DIED_STATES:  # "CANCELLED by 0"
            return self.dead_grace_s
        return self.result_grace_s

    def _done(self, tracked: _TrackedJob, force: bool) -> bool:
        """Whether a job has ended; a re-attached local job is judged by its pid and result file."""
        job = tracked.job
        if tracked.reattached and self.cluster != "slurm":
            return results_written(job) or not local_job_running(job.job_id, self.submitit_folder)
        if job.done(force_check=force):
            return True
        return tracked.slurm_asked_at is not None and _forgotten_by_slurm(tracked, self.clock(), self.unknown_recheck_s)

    def _relaunched(self, number: int) -> bool:
        """Start again a trial whose job died at its launch (see died_at_launch); whether it was."""
        overrides = None if self.stopping else overrides_to_relaunch(self._jobs[number])
        if overrides is None:
            return False
        tracked = self._jobs.pop(number)
        self.queue_log.forget(number)
        self.local.forget(number)
        job_id = self.start(number, overrides, tracked.relaunches + 1)  # None: refused for now, see wait()
        if job_id is not None:
            self._started_late.append((number, job_id))
        say_relaunched(number, str(tracked.job.job_id), job_id)
        return True

    def _collect(self, number: int) -> JobOutcome:
        """The outcome of a finished job; a job that died without a result is a failure."""
        tracked = self._jobs.pop(number)
        self.queue_log.forget(number)
        # Restarted by submitit_local at a time-out: the trial held its slot since its first attempt.
        held_from = tracked.submitted_at if self.local.ended(number) else None
        job = tracked.job
        job_id = str(job.job_id)
        try:
            if tracked.forgotten and not results_written(job):
                # Not job.result(): it waits until submitit sees the job end, which it never will.
                raise ForgottenBySlurm("neither Slurm's queue nor its accounting knows this job any more")
            ret = read_result(job)
        except Exception as exc:
            if refusal := refused_result_write(job, number, exc):
                raise refusal from exc  # the sweep stops, as on the launcher's own refused writes
            return JobOutcome(
                number,
                False,
                error=exc,
                reason=death_reason(job, exc),
                traceback=traceback.format_exc(),
                started_at=tracked.submitted_at,
                ended_at=time.time(),
                host=node_of(job),
                job_id=job_id,
                full_log=str(job.paths.stderr),
                held_from=held_from,
            )
        outcome = dataclasses.replace(outcome_from_job_return(number, ret, job_id=job_id), held_from=held_from)
        if outcome.host is None:
            outcome = dataclasses.replace(outcome, host=node_of(job))  # a failed task says no host
        if not outcome.ok and "timed-out" in (outcome.reason or ""):
            # submitit raises inside the task when the time-limit signal arrives and no requeue is left.
            outcome = dataclasses.replace(outcome, reason=pre_timeout_reason(self.launcher, outcome.reason or ""))
        return outcome

    # ------------------------------------------------------------------ stopping

    def cancel_all(self) -> CancelReport:
        self.close()
        jobs = self.cancel(list(self._jobs))
        return CancelReport(sorted([*jobs.cancelled, *self.refused.clear()]), jobs.failed)

    cancels_trials = True

    def drop_unsubmitted(self) -> dict[int, str]:
        why = self.refused.last_refusal()
        return dict.fromkeys(self.refused.clear(), why)

    def cancel(self, numbers: Sequence[int]) -> CancelReport:
        by_job = {str(self._jobs[n].job.job_id): n for n in numbers if n in self._jobs}
        for number in by_job.values():
            self.local.forget(number)  # the cancel stops its processes
        done = cancel_jobs(self.cluster, list(by_job), self.submitit_folder)
        failed = {by_job[job_id]: why for job_id, why in done.failed.items()}
        return CancelReport([n for n in by_job.values() if n not in failed], failed)

    def cancel_untracked(self, job_ids: Sequence[str]) -> Cancellation:
        return cancel_running(self.cluster, job_ids, self.submitit_folder)

    def untracked_running(self, job_ids: Sequence[str]) -> list[str]:
        if self.cluster == "local":
            return [j for j in job_ids if local_job_running(j, self.submitit_folder)]
        return slurm_jobs_not_ended(job_ids)

    def close(self) -> None:
        self.warm.close()
        self.local.close()

    def describe(self) -> str:
        return f"async (one submitit '{self.cluster}' job per trial)"


class SubmititBatchRunner(SubmititRunner):
    """Synchronous batches on submitit that still keep each job's result apart.

    ``launch()`` loses a whole batch when one job dies; submitting per job and waiting for all
    turns a dead job into one failed trial.
    """

    asynchronous = False

    def wait(self, timeout: float) -> list[JobOutcome]:
        # Kept here, not in a local: a Ctrl-C while the batch runs keeps those already ended.
        self._batch_ended: list[JobOutcome] = []
        while self._jobs or self.refused.numbers():
            if self.between_polls is not None:
                self.between_polls()  # the batch's trials report while it runs: the sweep may stop some
            self._batch_ended += super().wait(timeout=self.poll_interval * 4)
        outcomes, self._batch_ended = self._batch_ended, []
        return outcomes

    def ended_before_interrupt(self) -> list[JobOutcome]:
        """The batch's trials that had ended, and those whose result came since (read, not waited for)."""
        ended, self._batch_ended = getattr(self, "_batch_ended", []), []
        return ended + super().wait(timeout=0)

    def describe(self) -> str:
        return f"batch (synchronous batches of submitit '{self.cluster}' jobs)"
