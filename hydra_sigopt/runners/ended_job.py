"""Reading a submitit job's files: the trial it runs, its result, or a one-line reason why there is none."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from hydra_sigopt.runners.outcome import describe_error

log = logging.getLogger(__name__)


def read_result(job: Any) -> Any:
    """A finished job's return value, or its exception raised; never waits for the job to exit.

    ``Job.result()`` first waits until submitit considers the job done, in steps of one second,
    and a local job is done only once its controller process has exited.
    """
    if not job.paths.result_pickle.exists():
        return job.result()  # no result: submitit says why (after the runner's grace)
    from submitit.core.utils import FailedJobError

    outcome, value = job._get_outcome_and_result()
    if outcome == "error":
        raise FailedJobError(f"Job (task=0) failed during processing with trace:\n{value}")
    return value


def death_reason(job: Any, exc: BaseException) -> str:
    """A one-line reason for a job whose result could not be had (state from Slurm where known)."""
    from submitit.core.utils import FailedJobError

    lines = describe_error(exc).partition(": ")[2].strip().splitlines()
    if isinstance(exc, FailedJobError):  # the job's own traceback: its last line says what failed
        return f"job {job.job_id} failed outside the task: {lines[-1] if lines else ''}"
    if job.paths.result_pickle.exists():
        return f"the result of job {job.job_id} could not be read: {describe_error(exc)}"
    state = _state(job)
    prefix = f"job {job.job_id} ended without a result"
    if state and state not in ("UNKNOWN", "FINISHED", "COMPLETED"):
        prefix += f" (state {state})"
    if state == "TIMEOUT":
        # Slurm killed it at its limit: the task did not end on submitit's pre-timeout signal (a
        # signal arriving while another handler logs is lost inside logging, seen here).
        prefix = f"TIMEOUT: time limit reached (hydra.launcher.timeout_min), {prefix}"
    return f"{prefix}: {type(exc).__name__}: {lines[0] if lines else ''}"


def _state(job: Any) -> str | None:
    """The job's state as Slurm's accounting (or submitit's local bookkeeping) has it, if known."""
    try:
        return str(job.watcher.get_state(job.job_id, mode="force") if hasattr(job, "watcher") else job.state)
    except Exception:
        return None


def trial_of_job(submitted_pickle: Path) -> tuple[int, list[str]] | None:
    """(number, overrides) of the trial a job was submitted to run, from submitit's pickle of its call.

    A trial's job calls the launcher with (overrides, "hydra.sweep.dir", number, ...); a warm job
    calls a :class:`~hydra_sigopt.warm.WarmJob`, whose claim file names the trial it was given.
    """
    from hydra_sigopt.warm import WarmJob, read_claim

    try:
        with open(submitted_pickle, "rb") as f:
            call = pickle.load(f)
        if isinstance(call.function, WarmJob):
            claim = read_claim(Path(call.function.claim_path)) or {}
            return (int(claim["number"]), list(claim["overrides"])) if "number" in claim else None
        return int(call.args[2]), list(call.args[0])
    except Exception as exc:  # another tool's job, a file being written: not a trial of this sweep
        log.debug("could not read %s: %s", submitted_pickle, exc)
        return None
