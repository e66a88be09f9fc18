"""Running trials through Hydra's launchers: synchronous batches, or one submitit job per trial.

:class:`BatchRunner` works with any launcher through ``Launcher.launch`` (which blocks until the
whole batch is done). :class:`SubmititRunner` drives hydra-submitit-launcher's machinery itself,
submitting one job per trial without blocking, so a freed slot is refilled at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.processes import cancel_local_jobs, local_job_running
from hydra_sigopt.settings import SCHEDULERS
from hydra_sigopt.warm import WarmJob, claim, max_wait_for

log = logging.getLogger(__name__)

SUBMITIT_LAUNCHER_CLASSES = ("LocalLauncher", "SlurmLauncher")
# Fields of hydra-submitit-launcher 1.2.0's BaseQueueConf: passed to submitit under their own
# name; the launcher's other fields get the cluster prefix (``slurm_partition``). Mirrors
# BaseSubmititLauncher.launch; tests/test_launcher_internals.py checks it against the real class.
BASE_QUEUE_KEYS = frozenset(
    {
        "submitit_folder",
        "timeout_min",
        "cpus_per_task",
        "gpus_per_node",
        "tasks_per_node",
        "mem_gb",
        "nodes",
        "name",
        "stderr_to_stdout",
    }
)


@dataclass(frozen=True)
class TrialResult:
    """What a trial's task returned, with where and when it ran (made by :class:`TimedTask`)."""

    value: Any
    started_at: float
    ended_at: float
    host: str


class TaskExit(RuntimeError):
    """The task called ``sys.exit()``: that trial's failure, not the end of the sweep."""


#: The file in a failed trial's job dir that keeps its whole traceback (the journal keeps a shortened one).
FULL_TRACEBACK_FILE = "failure_traceback.log"
#: Longest failure reason and traceback kept in the journal, trials.csv and the log.
MAX_REASON_CHARS = 500
MAX_TRACEBACK_CHARS = 5000


class TimedTask:
    """Wraps the app's task function to record each trial's start, end and host.

    Also makes every way the task can fail an exception Hydra's ``run_job`` turns into a failed
    job (``sys.exit()`` included), and keeps the whole traceback in the trial's job dir.
    A class, not a closure, so that submitit can pickle it into the job.
    """

    def __init__(self, task_function: Callable[[Any], Any]) -> None:
        self.task_function = task_function
        self.__name__ = getattr(task_function, "__name__", "task")

    def __call__(self, cfg: Any) -> TrialResult:
        from hydra_sigopt.crashpoints import crash_point

        started = time.time()
        crash_point("in_task")
        try:
            value = self._run(cfg)
            if _in_submitit_job():
                _check_picklable(value)
        except Exception:
            _keep_full_traceback(traceback.format_exc())
            raise
        return TrialResult(value, started, time.time(), socket.gethostname())

    def _run(self, cfg: Any) -> Any:
        try:
            return self.task_function(cfg)
        except SystemExit as exc:
            # Hydra's run_job catches Exception only: in-process, SystemExit would end the sweeper
            # with the task's exit code and leave the trial running in the journal.
            if _raised_by_submitit(exc):
                raise  # the job exits to be requeued (time-out or preemption signal): not a failure
            code = "" if exc.code is None else repr(exc.code)
            raise TaskExit(f"the task called sys.exit({code})") from exc


def _raised_by_submitit(exc: SystemExit) -> bool:
    """Whether submitit's handler of a time-out or preemption signal raised it, to end the job it requeued."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("submitit.")


def _in_submitit_job() -> bool:
    """Whether this process is a submitit job (whose return value is pickled back to the sweeper)."""
    return "SUBMITIT_FOLDER" in os.environ and "SUBMITIT_EXECUTOR" in os.environ


def _check_picklable(value: Any) -> None:
    """Raise here, as the task's failure, what would otherwise lose the job's whole result.

    submitit pickles a job's return value after the task; when that fails it writes no result at
    all (its error dump trips over the half-written file), and the reason would be lost.
    """
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception as exc:
        raise TypeError(f"the task's return value cannot be sent back from its job ({describe_error(exc)})") from exc


def _keep_full_traceback(text: str) -> None:
    """Write a failed trial's whole traceback to its job dir (best effort: the journal keeps a short one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        from hydra_sigopt.secrets import redact, withheld_tokens

        path = Path(HydraConfig.get().runtime.output_dir, FULL_TRACEBACK_FILE)
        path.write_text(redact(text, *withheld_tokens()))
    except Exception as exc:  # no Hydra job config, a full disk: the shortened traceback must do
        log.debug("could not keep the full traceback: %s", exc)


def describe_error(error: BaseException) -> str:
    """``Type: message``, also for an exception whose ``str()`` raises (it must not stop the sweep)."""
    try:
        message = str(error)
    except Exception as exc:
        message = f"<str() raised {type(exc).__name__}>"
    return f"{type(error).__name__}: {message}"


def shorten(text: str, limit: int, full_at: str | None = None) -> str:
    """``text`` cut to about ``limit`` characters at a line end, saying how much was cut and where it is whole."""
    if len(text) <= limit:
        return text
    line_end = text.rfind("\n", 0, limit)
    head = text[:line_end] if line_end > limit // 2 else text[:limit]
    where = f"; full traceback in {full_at}" if full_at else ""
    return f"{head} ... ({len(text) - len(head)} characters cut{where})"


@dataclass(frozen=True)
class JobOutcome:
    """How one trial's job ended."""

    number: int
    ok: bool
    value: Any = None
    error: BaseException | None = None
    reason: str | None = None
    traceback: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    job_id: str | None = None
    #: Where the failure's whole traceback or log is (the reason and traceback above may be cut).
    full_log: str | None = None


def _outcome_from_job_return(number: int, ret: Any, job_id: str | None = None) -> JobOutcome:
    """Read a Hydra JobReturn without re-raising the task's exception."""
    from hydra.core.utils import JobStatus

    raw = getattr(ret, "_return_value", None)
    if ret.status == JobStatus.COMPLETED:
        if isinstance(raw, TrialResult):
            return JobOutcome(
                number, True, raw.value, started_at=raw.started_at, ended_at=raw.ended_at, host=raw.host, job_id=job_id
            )
        return JobOutcome(number, True, raw, ended_at=time.time(), job_id=job_id)
    error = raw if isinstance(raw, BaseException) else None
    reason = describe_error(error) if error is not None else f"job ended with status {ret.status}"
    tb = "".join(traceback.format_exception(error)) if error is not None else None
    _forget_frames(error)
    return JobOutcome(
        number,
        False,
        error=error,
        reason=reason,
        traceback=tb,
        ended_at=time.time(),
        job_id=job_id,
        full_log=_full_traceback_file(ret),
    )


def _forget_frames(error: BaseException | None) -> None:
    """Drop the frames of an exception (and those it was raised from), once their text is kept.

    Hydra's run_job keeps the task's exception in its JobReturn, which the frame of run_job in
    that exception's traceback holds: a reference cycle per failed trial, with every local of
    the task in it, that only the cyclic garbage collector frees (seen: 590 MB for 10 MB errors).
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def _full_traceback_file(ret: Any) -> str | None:
    """The file where :class:`TimedTask` kept a failed trial's whole traceback, if it is there."""
    try:
        path = Path(str(ret.hydra_cfg.hydra.runtime.output_dir), FULL_TRACEBACK_FILE)
    except Exception:  # a launcher's JobReturn without Hydra's config
        return None
    return str(path) if path.exists() else None


class TrialRunner(ABC):
    """Runs trials; the sweep loop asks it to start trials and waits for outcomes."""

    #: Whether trials start one by one as slots free up (else in blocking batches).
    asynchronous: bool = False
    #: Where jobs run: "local" or "slurm" for submitit, else the launcher's class name.
    kind: str = "unknown"
    #: Whether the launcher itself logs each trial's overrides (Hydra's launchers do in launch()).
    logs_each_trial: bool = False
    #: The submitit folder pattern of the jobs, where there is one.
    submitit_folder: str | None = None

    @abstractmethod
    def start(self, number: int, overrides: Sequence[str]) -> str | None:
        """Start (or queue) one trial; return its job id once known."""

    @abstractmethod
    def wait(self, timeout: float) -> list[JobOutcome]:
        """Outcomes of trials that ended; may return none when ``timeout`` passes first."""

    @abstractmethod
    def running(self) -> list[int]:
        """Numbers of trials started and not yet reported by :meth:`wait`."""

    def reattach(self, number: int, job_id: str) -> bool:
        """Adopt a job started by an earlier sweeper process; False where this runner cannot."""
        return False

    def cancel_all(self) -> list[int]:
        """Cancel running trials where possible; return their numbers."""
        return []

    def keep_warm(self, trials_left: int) -> None:
        """Have jobs started ahead for up to ``trials_left`` trials, where this runner does that."""

    def close(self) -> None:
        """Release what the runner holds beyond the trials (warm jobs); running trials stay. Never raises."""

    def describe(self) -> str:
        return type(self).__name__


class BatchRunner(TrialRunner):
    """Synchronous batches through ``Launcher.launch``: works with every launcher."""

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher
        self.kind = type(launcher).__name__
        self.logs_each_trial = True
        self._queued: list[tuple[int, list[str]]] = []

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
        try:
            returns = self.launcher.launch([o for _, o in batch], initial_job_idx=first)
        except Exception as exc:  # e.g. submitit's UncompletedJobError: the batch's results are lost
            tb = traceback.format_exc()
            reason = f"the launcher lost the batch: {describe_error(exc)}"
            return [
                JobOutcome(n, False, error=exc, reason=reason, traceback=tb, started_at=started, ended_at=time.time())
                for n, _ in batch
            ]
        outcomes = [_outcome_from_job_return(n, ret) for (n, _), ret in zip(batch, returns)]
        missing = [n for n, _ in batch[len(returns) :]]
        outcomes += [
            JobOutcome(n, False, reason="the launcher returned no result for this job", ended_at=time.time())
            for n in missing
        ]
        return outcomes

    def describe(self) -> str:
        return f"batch (synchronous, through {type(self.launcher).__name__}.launch)"


def is_submitit_launcher(launcher: Any) -> bool:
    """Whether ``launcher`` is hydra-submitit-launcher's local or Slurm launcher."""
    cls = type(launcher)
    return cls.__module__.startswith("hydra_plugins.hydra_submitit_launcher") and any(
        c.__name__ in SUBMITIT_LAUNCHER_CLASSES for c in cls.__mro__
    )


class SubmititRunner(TrialRunner):
    """One submitit job per trial, submitted without blocking, polled until done.

    Builds the executor the way ``BaseSubmititLauncher.launch`` does and submits the launcher
    object itself, so each job runs exactly what Hydra's launcher would have run.
    """

    asynchronous = True

    def __init__(
        self,
        launcher: Any,
        poll_interval: float | None = None,
        state_check_interval: float = 10.0,
        warm_jobs: int = 0,
    ) -> None:
        import submitit
        from submitit.core.utils import JobPaths

        self.launcher = launcher
        # How often finished jobs are looked for: locally a stat per job (cheap, and each 10 ms
        # here is 10 ms of an idle slot); on Slurm a stat of a shared file system per job, for
        # jobs that run minutes or hours.
        self.poll_interval = poll_interval or (0.5 if launcher._EXECUTOR == "slurm" else 0.02)
        self.state_check_interval = state_check_interval
        self._last_forced_check = 0.0
        self._dead_since: dict[int, float] = {}
        cluster = launcher._EXECUTOR
        params = dict(launcher.params)
        init_params: dict[str, Any] = {"folder": params["submitit_folder"]}
        if "max_num_timeout" in params:
            init_params[f"{cluster}_max_num_timeout"] = params["max_num_timeout"]
        self.executor = submitit.AutoExecutor(cluster=cluster, **init_params)
        base_keys = BASE_QUEUE_KEYS
        init_keys = {"max_num_timeout", "submitit_folder"}
        self.executor.update_parameters(
            **{(k if k in base_keys else f"{cluster}_{k}"): v for k, v in params.items() if k not in init_keys}
        )
        if cluster == "local":
            # submitit spaces submissions 0.2 s apart to spare a cluster's scheduler; starting a local
            # process needs no such care, and the pause would delay refilling a second freed slot.
            self.executor._executor._throttling = 0.0  # type: ignore[attr-defined]
        self.cluster = cluster
        self.kind = cluster
        self.submitit_folder = str(params["submitit_folder"])
        self.warm_jobs = warm_jobs
        self._warm: deque[_WarmJobHandle] = deque()
        self._claims_dir = Path(JobPaths.get_first_id_independent_folder(self.executor.folder)) / "warm"
        self._warm_max_wait_s = max_wait_for(params.get("timeout_min"))
        self._last_overrides: list[str] | None = None
        self._warm_wanted = 0
        # Set when warm jobs gave up unused (no slot freed within their wait); cleared by the next
        # trial start. Replacing them at once would start a job per warm slot and minute for nothing
        # while long trials run.
        self._warm_paused = False
        # Warm jobs start once the jobs just submitted have started: locally they share the CPUs,
        # and a trial waiting for its job to start matters more than a job waiting for a trial.
        self._warm_delay_s = 1.0 if cluster == "local" else 0.0
        self._warm_not_before = 0.0
        # How long a job that ended without a result file may still produce one (shared file systems lag).
        self.result_grace_s = 15.0 if cluster == "slurm" else 1.0
        self._jobs: dict[int, Any] = {}
        self._submitted_at: dict[int, float] = {}
        self._reattached: set[int] = set()
        # Re-attached Slurm jobs that submitit cannot find (UNKNOWN): when Slurm was last asked about
        # them, and those Slurm has forgotten (ended without a result).
        self.unknown_recheck_s = 60.0
        self._unknown_checked_at: dict[int, float] = {}
        self._forgotten: set[int] = set()

    def start(self, number: int, overrides: Sequence[str]) -> str | None:
        from hydra.core.singleton import Singleton

        self._last_overrides = list(overrides)
        job = self._take_warm_job(number, overrides)
        # A trial start allows replacing warm jobs that gave up (see keep_warm): forget them now.
        self._warm = deque(w for w in self._warm if not w.job.done())
        self._warm_paused = False
        if job is None:
            job = self.executor.submit(
                self.launcher, list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state()
            )
            self._warm_not_before = time.time() + self._warm_delay_s
        self._jobs[number] = job
        self._submitted_at[number] = time.time()
        return str(job.job_id)

    def running(self) -> list[int]:
        return sorted(self._jobs)

    def _take_warm_job(self, number: int, overrides: Sequence[str]) -> Any | None:
        """A warm job that will run this trial, or None when none is left waiting."""
        while self._warm:
            warm = self._warm.popleft()
            if not warm.job.done() and claim(warm.claim_path, {"number": number, "overrides": list(overrides)}):
                return warm.job
            log.debug("warm job %s was gone (gave up waiting or died)", warm.job.job_id)
        return None

    def keep_warm(self, trials_left: int) -> None:
        self._warm_wanted = wanted = min(self.warm_jobs, max(0, trials_left))
        waiting = deque(w for w in self._warm if not w.job.done())
        if len(waiting) < len(self._warm):
            gone = [w.job.job_id for w in self._warm if w not in waiting]
            log.debug("warm jobs %s ended unused; replaced when the next trial starts", gone)
            self._warm_paused = True
        self._warm = waiting
        while len(self._warm) > wanted:
            self._retire(self._warm.pop(), "not needed: the budget is issued")
        while self._warm_jobs_due():
            self._warm.append(self._submit_warm_job())

    def _warm_jobs_due(self) -> bool:
        """Whether warm jobs are missing and may be started now (see :meth:`keep_warm`)."""
        return len(self._warm) < self._warm_wanted and not self._warm_paused and time.time() >= self._warm_not_before

    def _submit_warm_job(self) -> _WarmJobHandle:
        """Start one job that waits for its trial (see :mod:`hydra_sigopt.warm`)."""
        from hydra.core.singleton import Singleton

        self._claims_dir.mkdir(parents=True, exist_ok=True)
        path = self._claims_dir / f"{uuid.uuid4().hex}.json"
        poll_s = 0.01 if self.cluster == "local" else 0.2
        warm_job = WarmJob(
            self.launcher,
            str(path),
            Singleton.get_state(),
            self._warm_max_wait_s,
            poll_s,
            warm_up_overrides=self._last_overrides,
        )
        return _WarmJobHandle(self.executor.submit(warm_job), path)

    def _retire(self, warm: _WarmJobHandle, reason: str) -> None:
        """Tell a warm job to end without a trial (it exits within its poll interval)."""
        if not claim(warm.claim_path, {"stop": reason}):
            return  # it gave up first
        log.debug("warm job %s retired: %s", warm.job.job_id, reason)
        if self.cluster == "slurm" and not warm.job.paths.stdout.exists():
            # Still queued: it would only start to read its stop claim, holding an allocation meanwhile.
            try:
                warm.job.cancel(check=False)
            except Exception as exc:
                log.debug("scancel of warm job %s failed: %s", warm.job.job_id, exc)

    def close(self) -> None:
        while self._warm:
            warm = self._warm.pop()
            try:
                self._retire(warm, "the sweep ended")
            except Exception as exc:  # a courtesy (warm jobs end by themselves): never in the way of stopping
                log.warning("Could not retire warm job %s: %s: %s", warm.job.job_id, type(exc).__name__, exc)

    def reattach(self, number: int, job_id: str) -> bool:
        import submitit

        folder = self.executor.folder
        job: Any
        if self.cluster == "slurm":
            job = submitit.SlurmJob(folder=folder, job_id=job_id)
            # A job Slurm no longer knows (accounting purged, another cluster) would be waited on for
            # ever: submitit counts an unknown state as not done. With no result either, re-run it.
            if not job.paths.result_pickle.exists() and not slurm_knows_job(job):
                return False
        else:
            job = submitit.LocalJob(folder=folder, job_id=job_id)
            # A local job dies with its sweeper's process group (Ctrl-C in the terminal, a lost
            # SSH session): with no process and no result there is nothing to wait for; re-run it.
            if not job.paths.result_pickle.exists() and not local_job_running(job_id, self.submitit_folder):
                return False
        self._jobs[number] = job
        self._submitted_at[number] = time.time()
        self._reattached.add(number)
        if self.cluster == "slurm":
            self._unknown_checked_at[number] = time.time()
        return True

    def _done(self, number: int, job: Any, force: bool) -> bool:
        """Whether a job has ended; a re-attached local job is judged by its pid and result file."""
        if number in self._reattached and self.cluster != "slurm":
            return job.paths.result_pickle.exists() or not local_job_running(job.job_id, self.submitit_folder)
        if job.done(force_check=force):
            return True
        return number in self._unknown_checked_at and self._forgotten_by_slurm(number, job)

    def _forgotten_by_slurm(self, number: int, job: Any) -> bool:
        """Whether Slurm no longer knows a re-attached job (asked at most every ``unknown_recheck_s``).

        submitit counts a job it cannot find as running: one Slurm forgot (accounting purged, and
        squeue failing when the sweep re-attached) would be waited for forever.
        """
        if job.state != "UNKNOWN":
            self._unknown_checked_at.pop(number, None)  # Slurm reports it: submitit will see it end
            return False
        if time.time() - self._unknown_checked_at[number] < self.unknown_recheck_s:
            return False
        self._unknown_checked_at[number] = time.time()
        if slurm_knows_job(job):
            return False
        self._forgotten.add(number)
        return True

    def _ready(self, number: int, job: Any, force: bool) -> bool:
        """Done, and its result is there or will not come (without blocking the loop to find out)."""
        # The result file is written under a temporary name and renamed: once it exists the trial
        # is over, even while submitit's controller is still tidying up (a local controller takes
        # a further 0.1-0.2 s to exit).
        if job.paths.result_pickle.exists():
            return True
        if not self._done(number, job, force):
            self._dead_since.pop(number, None)  # back to running (e.g. requeued)
            return False
        if job.paths.result_pickle.exists():
            return True
        # submitit waits up to _results_timeout_s for a late result file inside result(); wait that
        # grace here instead, so that one dead job does not stall the refilling of the other slots.
        first_seen = self._dead_since.setdefault(number, time.time())
        if time.time() - first_seen < self.result_grace_s:
            return False
        job._results_timeout_s = 0
        return True

    def wait(self, timeout: float) -> list[JobOutcome]:
        deadline = time.time() + timeout
        while True:
            # One forced sacct call refreshes every job (submitit's watcher otherwise backs off to
            # minutes, which would leave a cancelled job's slot empty that long).
            force = time.time() - self._last_forced_check >= self.state_check_interval
            if force:
                self._last_forced_check = time.time()
            finished = [
                n for i, (n, job) in enumerate(list(self._jobs.items())) if self._ready(n, job, force and i == 0)
            ]
            if finished or not self._jobs or time.time() >= deadline or self._warm_jobs_due():
                return [self._collect(n) for n in finished]
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.time())))

    def _collect(self, number: int) -> JobOutcome:
        """The outcome of a finished job; a job that died without a result is a failure."""
        job = self._jobs.pop(number)
        self._dead_since.pop(number, None)
        self._unknown_checked_at.pop(number, None)
        job_id = str(job.job_id)
        try:
            if number in self._forgotten and not job.paths.result_pickle.exists():
                # Not job.result(): it waits until submitit sees the job end, which it never will.
                raise RuntimeError("neither Slurm's queue nor its accounting knows this job any more")
            ret = _read_result(job)
        except Exception as exc:
            return JobOutcome(
                number,
                False,
                error=exc,
                reason=_death_reason(job, exc),
                traceback=traceback.format_exc(),
                started_at=self._submitted_at.pop(number, None),
                ended_at=time.time(),
                job_id=job_id,
                full_log=str(job.paths.stderr),
            )
        self._submitted_at.pop(number, None)
        outcome = _outcome_from_job_return(number, ret, job_id=job_id)
        if not outcome.ok and "timed-out" in (outcome.reason or ""):
            # submitit raises inside the task when the time-limit signal arrives and no requeue is left.
            reason = f"TIMEOUT: time limit reached (hydra.launcher.timeout_min), no requeue left: {outcome.reason}"
            outcome = dataclasses.replace(outcome, reason=reason)
        return outcome

    def cancel_all(self) -> list[int]:
        self.close()
        numbers = sorted(self._jobs)
        if self.cluster != "slurm":
            cancel_local_jobs([self._jobs[n].job_id for n in numbers], self.submitit_folder)
            return numbers
        for n in numbers:
            try:
                self._jobs[n].cancel(check=False)  # scancel
            except Exception as exc:  # already gone
                log.debug("cancel of trial %s failed: %s", n, exc)
        return numbers

    def describe(self) -> str:
        return f"async (one submitit '{self.cluster}' job per trial)"


@dataclass(frozen=True)
class _WarmJobHandle:
    job: Any
    claim_path: Path


def _read_result(job: Any) -> Any:
    """A finished job's return value, or its exception raised; never waits for the job to exit.

    ``Job.result()`` first waits until submitit considers the job done, in steps of one second,
    and a local job is done only once its controller process has exited.
    """
    if not job.paths.result_pickle.exists():
        return job.result()  # no result: submitit says why (after the grace, see _ready)
    from submitit.core.utils import FailedJobError

    outcome, value = job._get_outcome_and_result()
    if outcome == "error":
        raise FailedJobError(f"Job (task=0) failed during processing with trace:\n{value}")
    return value


def slurm_knows_job(job: Any) -> bool:
    """Whether Slurm's accounting (sacct) or its queue (squeue) knows a job."""
    import subprocess

    try:
        if job.watcher.get_state(job.job_id, mode="force") != "UNKNOWN":
            return True
        queue = subprocess.run(
            ["squeue", "-h", "-j", str(job.job_id), "-o", "%T"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("Could not ask Slurm about job %s (%s); waiting for it", job.job_id, exc)
        return True
    if queue.returncode == 0:
        return bool(queue.stdout.strip())
    if "invalid job id" in queue.stderr.lower():
        return False
    # slurmctld unreachable, say: not knowing is no reason to run the trial twice.
    log.warning("Could not ask Slurm about job %s (%s); waiting for it", job.job_id, queue.stderr.strip())
    return True


def _death_reason(job: Any, exc: BaseException) -> str:
    """A one-line reason for a job whose result could not be had (state from Slurm where known)."""
    from submitit.core.utils import FailedJobError

    lines = describe_error(exc).partition(": ")[2].strip().splitlines()
    if isinstance(exc, FailedJobError):  # the job's own traceback: its last line says what failed
        return f"job {job.job_id} failed outside the task: {lines[-1] if lines else ''}"
    if job.paths.result_pickle.exists():
        return f"the result of job {job.job_id} could not be read: {describe_error(exc)}"
    state = None
    try:
        state = job.watcher.get_state(job.job_id, mode="force") if hasattr(job, "watcher") else job.state
    except Exception:
        pass
    prefix = f"job {job.job_id} ended without a result"
    if state and state not in ("UNKNOWN", "FINISHED", "COMPLETED"):
        prefix += f" (state {state})"
    if state == "TIMEOUT":
        # Slurm killed it at its limit: the task did not end on submitit's pre-timeout signal (a
        # signal arriving while another handler logs is lost inside logging, seen here).
        prefix = f"TIMEOUT: time limit reached (hydra.launcher.timeout_min), {prefix}"
    return f"{prefix}: {type(exc).__name__}: {lines[0] if lines else ''}"


def make_runner(
    launcher: Any, scheduler: str, warm_jobs: int | str = "auto", parallel_bandwidth: int = 1
) -> TrialRunner:
    """The runner for ``hydra.sweeper.scheduler`` / ``warm_jobs`` and the configured launcher."""
    from hydra_sigopt.errors import ConfigError

    if scheduler not in SCHEDULERS:
        raise ConfigError("scheduler", f"got {scheduler!r}; valid values are {list(SCHEDULERS)}")
    submitit_ok = is_submitit_launcher(launcher)
    if scheduler == "async" and not submitit_ok:
        raise ConfigError(
            "scheduler",
            f"async needs hydra/launcher=submitit_local or submitit_slurm, but the launcher is "
            f"{type(launcher).__name__}; use scheduler: batch (or auto) with this launcher",
        )
    asynchronous = submitit_ok and scheduler in ("auto", "async")
    if warm_jobs != "auto" and int(warm_jobs) > 0 and not asynchronous:
        raise ConfigError(
            "warm_jobs",
            f"warm jobs need the async scheduler (hydra/launcher=submitit_local or submitit_slurm, scheduler "
            f"auto or async); here the launcher is {type(launcher).__name__} and the scheduler {scheduler}. "
            "Valid values here are auto or 0",
        )
    if asynchronous:
        if warm_jobs == "auto":
            # Locally a waiting job costs an idle process (two cover trials ending close together);
            # on Slurm it would hold an allocation idle.
            warm_jobs = min(2, parallel_bandwidth) if launcher._EXECUTOR == "local" else 0
        return SubmititRunner(launcher, warm_jobs=int(warm_jobs))
    if submitit_ok:
        return SubmititBatchRunner(launcher)
    return BatchRunner(launcher)


class SubmititBatchRunner(SubmititRunner):
    """Synchronous batches on submitit that still keep each job's result apart.

    ``launch()`` loses a whole batch when one job dies; submitting per job and waiting for all
    turns a dead job into one failed trial.
    """

    asynchronous = False

    def wait(self, timeout: float) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        while self._jobs:
            outcomes += super().wait(timeout=self.poll_interval * 4)
        return outcomes

    def describe(self) -> str:
        return f"batch (synchronous batches of submitit '{self.cluster}' jobs)"
