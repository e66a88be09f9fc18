"""Slurm's commands, called and read in one place: ``squeue``, ``scancel``, and ``sbatch``'s refusals.

``sacct`` is read through submitit's watcher (it already parses it); what submitit does not do
lives here, each command with an injectable ``run`` so that the parsing is unit-tested against
fake commands as well as used against the real cluster. Measured on the project's cluster with
slurmctld stopped: ``sbatch`` and ``scancel`` fail after ~9 s, ``squeue`` after ~18 s, all saying
"Unable to contact slurm controller (connect failure)"; ``scancel`` then exits 8.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Run = Callable[..., "subprocess.CompletedProcess[str]"]

#: How long one Slurm command may take (a busy controller answers slowly; a dead one after ~18 s).
COMMAND_TIMEOUT_S = 60.0

# Refusals that pass by themselves (a controller restarting, failing over or overloaded): worth
# retrying. Anything else (an unknown partition, an invalid account) will not change.
TRANSIENT_REFUSALS = (
    "unable to contact slurm controller",
    "socket timed out",
    "slurm temporarily unable to accept job",
    "resource temporarily unavailable",
    "connection refused",
    "zero bytes were transmitted or received",
)


# States in which a job ended without running to its end: no result file is coming (one written
# just before is already there), so there is no reason to wait long for a late one.
DIED_STATES = frozenset(
    {"CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)


# States in which a job waits for the cluster, not for its task: counted apart from running ones.
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "CONFIGURING"})


def is_transient_refusal(message: str) -> bool:
    """Whether a Slurm command's error message says the cluster is briefly unavailable."""
    text = message.lower()
    return any(r in text for r in TRANSIENT_REFUSALS)


def _run_command(run: Run, argv: Sequence[str]) -> subprocess.CompletedProcess[str] | str:
    """The finished command, or why it could not run."""
    try:
        return run(list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"


def scancel(job_ids: Sequence[str], run: Run = subprocess.run) -> dict[str, str | None]:
    """Cancel Slurm jobs one by one; for each id, None when Slurm took the cancel, else why not.

    One call per job so that a failure is known per job. scancel exits 0 for a job that already
    ended (measured): nothing is left to cancel then, which is what the caller wants.
    """
    failed: dict[str, str | None] = {}
    for job_id in job_ids:
        done = _run_command(run, ["scancel", str(job_id)])
        if isinstance(done, str):
            failed[job_id] = done
        else:
            failed[job_id] = None if done.returncode == 0 else _first_error_line(done)
    return failed


def squeue_knows(job_id: str, run: Run = subprocess.run) -> bool | None:
    """Whether Slurm's queue holds a job; None when Slurm could not be asked."""
    done = _run_command(run, ["squeue", "-h", "-j", str(job_id), "-o", "%T"])
    if isinstance(done, str):
        return None
    if done.returncode == 0:
        return bool(done.stdout.strip())
    if "invalid job id" in done.stderr.lower():
        return False
    return None


def pending_reasons(job_ids: Sequence[str], run: Run = subprocess.run) -> dict[str, str]:
    """Why Slurm holds these jobs back (squeue's reason: ``Resources``, ``BeginTime``, ...), where it says."""
    return {job_id: reason for job_id, (_, reason) in queue_states(job_ids, run).items() if reason}


def queue_states(job_ids: Sequence[str], run: Run = subprocess.run) -> dict[str, tuple[str, str | None]]:
    """The queue's state and reason of each job it holds (``PENDING``, ``JobHeldAdmin``); {} when
    Slurm cannot be asked. A job that left the queue is not in the answer."""
    if not job_ids:
        return {}
    done = _squeue(job_ids, run)
    if isinstance(done, str) or done.returncode != 0:
        return {}
    return _states(done.stdout)


def _squeue(job_ids: Sequence[str], run: Run) -> subprocess.CompletedProcess[str] | str:
    return _run_command(run, ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])


def _states(stdout: str) -> dict[str, tuple[str, str | None]]:
    rows = (line.split("|", 2) for line in stdout.splitlines() if line.count("|") == 2)
    return {i.strip(): (t.strip(), None if r.strip() in ("", "None") else r.strip()) for i, t, r in rows}


#: squeue's states of a job that is over (squeue lists them a while, MinJobAge, after the end).
ENDED_STATES = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
)


def slurm_jobs_not_ended(job_ids: Sequence[str], run: Run = subprocess.run) -> list[str]:
    """Those of these jobs still in Slurm's queue and not over, in one squeue call; all of them when
    the queue cannot be asked (not knowing is no sign that a job ended)."""
    if not job_ids:
        return []
    done = _squeue(job_ids, run)
    if isinstance(done, str):
        return list(job_ids)
    if done.returncode != 0:
        if "invalid job id" not in done.stderr.lower():
            return list(job_ids)
        if len(job_ids) > 1:  # one id Slurm forgot fails the whole call: asked one by one
            return [j for j in job_ids if squeue_knows(j, run) is not False]
        return []
    states = _states(done.stdout)
    return [j for j in job_ids if j in states and states[j][0] not in ENDED_STATES]


def slurm_jobs_not_ending(job_ids: Sequence[str], run: Run = subprocess.run) -> list[str]:
    """Those of these jobs that are not over and not being ended either (COMPLETING: cancelled or
    done, Slurm ends its processes): those a cancel still has to end; all when the queue cannot be asked."""
    not_ended = slurm_jobs_not_ended(job_ids, run)
    states = queue_states(not_ended, run) if not_ended else {}
    return [j for j in not_ended if states.get(j, ("",))[0] != "COMPLETING"]


def sacct_end(job_id: str, run: Run = subprocess.run) -> tuple[str, str] | None:
    """How Slurm's accounting says a job ended: (state, exit code as ``code:signal``), if it knows."""
    done = _run_command(run, ["sacct", "-n", "-X", "-j", str(job_id), "-o", "State,ExitCode", "--parsable2"])
    if isinstance(done, str) or done.returncode != 0:
        return None
    rows = [line.split("|") for line in done.stdout.splitlines() if line.count("|") == 1]
    if not rows:
        return None
    state, exit_code = rows[-1]  # the last row is the job's latest run (a requeued job has several)
    return state.split(" ")[0], exit_code.strip()


def slurm_knows_job(job: Any, run: Run = subprocess.run) -> bool:
    """Whether Slurm's accounting (sacct, through submitit) or its queue (squeue) knows a job.

    When Slurm cannot be asked (slurmctld unreachable), the answer is yes: not knowing is no
    reason to run a trial twice.
    """
    try:
        if job.watcher.get_state(job.job_id, mode="force") != "UNKNOWN":
            return True
    except Exception as exc:  # submitit's sacct call failed
        log.warning("Could not ask Slurm about job %s (%s); waiting for it", job.job_id, exc)
        return True
    known = squeue_knows(str(job.job_id), run)
    if known is None:
        log.warning("Could not ask Slurm about job %s; waiting for it", job.job_id)
        return True
    return known


def _first_error_line(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[0] if text else f"exit status {done.returncode}"
