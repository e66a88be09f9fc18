"""Processes on this machine: whether one runs, stopping submitit's local jobs, and where a job's
result is.

Used by the runners (re-attaching and cancelling ``submitit_local`` jobs), by warm jobs (whether
their sweeper still runs), by a resumed sweep and by ``hydra-sigopt kill``; it imports nothing of
the sweeper's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


def pid_running(pid: str | int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def local_job_running(job_id: str | int, submitit_folder: str | None = None) -> bool:
    """Whether a submitit local job's controller runs: its pid is alive and is that controller.

    Pids are reused, so the pid alone could name an unrelated process after a restart.
    """
    if not pid_running(job_id):
        return False
    try:
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return "submitit.local._local" in cmdline and (submitit_folder is None or submitit_folder in cmdline)


def cancel_local_jobs(
    job_ids: Sequence[str | int], submitit_folder: str | None = None, grace_s: float = 3.0
) -> list[str]:
    """Stop submitit local jobs and their task processes; return the ids that were still running.

    First what submitit's own cancel does (SIGINT to each job's controller, which stops its
    tasks). A controller started from a background shell ignores SIGINT, and submitit's tasks
    ignore SIGTERM, so whatever still runs after ``grace_s`` is killed, tasks first.
    """
    live = {str(j): int(j) for j in job_ids if str(j).isdigit() and local_job_running(j, submitit_folder)}
    tasks = {pid: _children(pid) for pid in live.values()}
    for pid in live.values():
        os.kill(pid, signal.SIGINT)
    everything = [p for pid in live.values() for p in (*tasks[pid], pid)]
    deadline = time.time() + grace_s
    while time.time() < deadline and any(pid_running(p) for p in everything):
        time.sleep(0.1)
    for victim in everything:
        if pid_running(victim):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return list(live)


def job_result_file(submitit_folder: str, job_id: str, cwd: str | None = None) -> Path:
    """The file in which submitit leaves a job's result (its only task's), local or Slurm.

    ``submitit_folder`` is the launcher's pattern (``%j`` is the job id); a relative one is taken
    from ``cwd``, the sweeper's working directory.
    """
    folder = Path(submitit_folder.replace("%j", job_id))
    if cwd and not folder.is_absolute():
        folder = Path(cwd) / folder
    return folder / f"{job_id}_0_result.pkl"
