"""Reading a submitit job's files: the trial it runs, its result, or a one-line reason why there is none."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt.runners.outcome import describe_error

log = logging.getLogger(__name__)


class ForgottenBySlurm(RuntimeError):
    """A re-attached job that neither Slurm's queue nor its accounting knows any more."""


def job_tasks(job: Any) -> list[Any]:
    """A job's tasks: the job itself, or one sub-job per task (a DDP trial: one Slurm task per device)."""
    return list(getattr(job, "_sub_jobs", None) or [job])


def results_written(job: Any) -> bool:
    """Whether every task of the job wrote its result file (a multi-task job's tasks end one by one)."""
    return all(task.paths.result_pickle.exists() for task in job_tasks(job))


def any_result_written(job: Any) -> bool:
    """Whether a task of the job wrote its result: a job that ended so is read (a rank killed at the
    time limit writes none; submitit then says which task failed), not run again."""
    return any(task.paths.result_pickle.exists() for task in job_tasks(job))


def set_aside_an_earlier_jobs_results(job: Any) -> None:
    """Rename the result files that an earlier job with the same id left in a just-submitted job's folder.

    A local job's id is its controller's process id, and its folder is named by it: the system reuses
    pids (``pid_max`` is often 32768), so a long sweep can give a new job the folder of an earlier one,
    whose result would be read at once as the new trial's (and the new job's own result never). Slurm
    job ids come back only when its id counter wraps. Called right after submission: a result older
    than the job's submitted pickle (dumped just before the job was started) is an earlier job's, as
    the job itself judges it (see trial_job.leave_if_it_ended_before); the new job's own is newer.
    Renamed, never deleted: the earlier trial's value was read from it.
    """
    try:
        submitted = Path(job.paths.submitted_pickle).stat().st_mtime_ns
    except OSError:  # not there: nothing to compare with
        return
    for task in job_tasks(job):
        result = Path(task.paths.result_pickle)
        for path in (result, result.with_suffix(result.suffix + ".save_tmp")):
            _set_aside_if_older(path, submitted, job.job_id)


def _set_aside_if_older(path: Path, than_ns: int, job_id: Any) -> None:
    aside = path.with_name(f"{path.name}.earlier-job-{time.time_ns()}")
    try:
        if path.stat().st_mtime_ns >= than_ns:
            return
        os.rename(path, aside)
        if aside.stat().st_mtime_ns >= than_ns:  # the new job's own, written in between: put back
            os.rename(aside, path)
            return
    except OSError:  # gone meanwhile, or the folder refuses: the job's own result will say
        return
    log.info("Job %s got the id of an earlier job, whose result stays as %s", job_id, aside)


def read_result(job: Any) -> Any:
    """A finished job's return value (task 0's, as hydra-submitit-launcher's ``launch`` takes it), or
    the exception of its first failed task raised (as submitit's ``results()``); never waits for the
    job to exit.

    ``Job.results()`` first waits until submitit considers the job done, in steps of one second,
    and a local job is done only once its controller process has exited.
    """
    if not results_written(job):
        return job.results()[0]  # no result: submitit says why (after the runner's grace)
    from submitit.core.utils import FailedJobError

    # A multi-task job's own _get_outcome_and_result refuses to run ("for a meta-job"): each task's.
    outcomes = [(task, *task._get_outcome_and_result()) for task in job_tasks(job)]
    for task, outcome, value in outcomes:
        if outcome == "error":
            raise FailedJobError(f"Job (task={task.task_id}) failed during processing with trace:\n{value}")
    return outcomes[0][2]


def death_reason(job: Any, exc: BaseException) -> str:
    """A complete one-line reason for a job whose result could not be had: how it ended (Slurm's state
    and exit code where known) and where its log is."""
    from submitit.core.utils import FailedJobError

    lines = describe_error(exc).partition(": ")[2].strip().splitlines()
    if isinstance(exc, FailedJobError):  # the job's own traceback: the exception under its last frame
        return f"job {job.job_id} failed outside the task: {_exception_line(lines)}"
    if results_written(job):
        return f"the result of job {job.job_id} could not be read: {describe_error(exc)}"
    state, exit_code = _end(job)
    reason = f"job {job.job_id} ended without a result"
    if state and state not in ("UNKNOWN", "FINISHED", "COMPLETED"):
        reason += f" (state {state}{f' {exit_code}' if exit_code else ''})"
    if isinstance(exc, ForgottenBySlurm):
        reason += f": {exc}"
    if state == "TIMEOUT":
        # Slurm killed it at its limit: the task did not end on submitit's pre-timeout signal (a
        # signal arriving while another handler logs is lost inside logging, seen here).
        reason = f"TIMEOUT: time limit reached (hydra.launcher.timeout_min), {reason}"
    return f"{reason}; its log: {job.paths.stderr}"


class ResultUnknownError(RuntimeError):
    """A job that ended without a result while the disk holding its folder refused writes, with nothing
    of it showing it tried to write one: the disk may or may not be why (a job killed by the system, a
    crash of the app's own, would have ended so on any disk)."""


def refused_result_write(job: Any, number: int, exc: BaseException) -> Exception | None:
    """Why a job that ended without a result (``exc``: what reading it raised) may not have written one:
    the disk holding its folder refuses writes now (full to its last byte, read-only, over quota). None
    when it takes them.

    submitit's job then failed only to save its result (the trial's own value may be fine): counted
    as a failed trial it spent the budget and told the engine its point fails; the sweep stops instead.
    Tried with a byte written, as the result would be (a full disk still makes empty files). The disk
    is blamed only where the job shows it tried to write its result (see :func:`tried_to_write_a_result`);
    else the message says how the job ended (a crash said "could not write its result").
    """
    from hydra_sigopt.runners.batch import FOLDER_REFUSED

    folder = Path(job.paths.result_pickle).parent
    probe = folder / f".write_check.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"x")
    except OSError as refused:
        if refused.errno not in FOLDER_REFUSED:
            return None
        return _refusal(job, number, folder, refused.errno, exc)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


def _refusal(job: Any, number: int, folder: Path, errno: int, exc: BaseException) -> Exception:
    """The stop's error: the disk blamed where the job tried to write its result, else how it ended."""
    not_counted = f"trial #{number} is not counted as failed; a resumed sweep runs a trial in its place"
    if tried_to_write_a_result(job):
        return OSError(
            errno,
            f"{os.strerror(errno)}: job {job.job_id} of trial #{number} could not write its result in {folder} "
            f"({not_counted})",
        )
    return ResultUnknownError(
        f"trial #{number}: {death_reason(job, exc)}; the disk holding {folder} refuses writes now "
        f"({os.strerror(errno)}), but nothing shows the job tried to write its result there ({not_counted})"
    )


#: What submitit's job logs when it cannot save its result (nor then the error that gave).
_DUMP_FAILED = "Could not dump error"


def tried_to_write_a_result(job: Any) -> bool:
    """Whether a task of the job began to save its result and failed: submitit's temporary file of it
    is left behind (a full disk: made, not filled), or its log says so (a read-only folder: none made)."""
    for task in job_tasks(job):
        result = Path(task.paths.result_pickle)
        if result.with_suffix(result.suffix + ".save_tmp").exists() or _DUMP_FAILED in _log_tail(task.paths.stderr):
            return True
    return False


def _log_tail(path: Any, size: int = 65536) -> str:
    """The end of a job's log ('' where it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _end(job: Any) -> tuple[str | None, str | None]:
    """The job's final state and, on Slurm, its exit code (``3:0``: exit status 3; ``0:9``: signal 9)."""
    if hasattr(job, "watcher") and _is_slurm(job):
        from hydra_sigopt.runners.slurm import sacct_end

        end = sacct_end(str(job.job_id))
        if end is not None:
            return end
    state = _state(job)
    return (state.split(" ")[0] if state else None), None


def _is_slurm(job: Any) -> bool:
    return type(job).__name__ == "SlurmJob"


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


def find_job_of_trial(folder: Any, number: int, overrides: Sequence[str], known_job_ids: Collection[str]) -> str | None:
    """The id of the job, among those in the submitit ``folder`` and not in ``known_job_ids``, that
    was submitted to run trial ``number`` with ``overrides`` (see :meth:`SubmititRunner.find_job`)."""
    from submitit.core.utils import JobPaths

    root = Path(JobPaths.get_first_id_independent_folder(folder))
    wanted = (number, list(overrides))
    for pickle_path in sorted(root.glob("*/*_submitted.pkl")):
        job_id = pickle_path.name.removesuffix("_submitted.pkl")
        if job_id not in known_job_ids and trial_of_job(pickle_path) == wanted:
            return job_id
    return None


def node_of(job: Any) -> str | None:
    """Where a job ran: the node Slurm's accounting names; a local job ran on this host."""
    if not _is_slurm(job):
        import socket

        return socket.gethostname()
    try:
        node = str(job.get_info(mode="cache").get("NodeList", "")).strip()
    except Exception:  # accounting unreachable: the host stays unknown
        return None
    return node if node and node not in ("None", "None assigned") else None


def _exception_line(trace: list[str]) -> str:
    """The line of a traceback that names the exception: the first after its last frame (a
    multi-line message, Hydra's MissingConfigException for one, ends with other lines)."""
    last_frame = max((i for i, line in enumerate(trace) if line.startswith("  ")), default=-1)
    after = [line for line in trace[last_frame + 1 :] if line.strip()]
    return after[0] if after else (trace[-1] if trace else "")
