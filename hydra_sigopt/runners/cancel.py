"""Cancelling trial jobs: the one canceller for the sweep loop, warm jobs and ``hydra-sigopt kill``."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from hydra_sigopt.processes import cancel_local_jobs
from hydra_sigopt.runners.slurm import Run, scancel, slurm_jobs_not_ended


@dataclass(frozen=True)
class Cancellation:
    """What cancelling some jobs did: each job id is in exactly one of the three."""

    #: Stopped now (a local process killed, or Slurm accepted the cancel).
    cancelled: tuple[str, ...] = ()
    #: Nothing was running any more (local jobs only: Slurm does not say).
    already_gone: tuple[str, ...] = ()
    #: Still running, with why the cancel failed (slurmctld unreachable, say).
    failed: dict[str, str] = field(default_factory=dict)

    def describe(self, job_id: str) -> str:
        """One job's fate, in a few words."""
        if job_id in self.failed:
            return f"cancel failed, still running: {self.failed[job_id]}"
        return "already gone" if job_id in self.already_gone else "cancelled"


def cancel_jobs(
    cluster: str, job_ids: Sequence[str], submitit_folder: str | None = None, run: Run = subprocess.run
) -> Cancellation:
    """Cancel jobs on a submitit ``cluster`` ("slurm" or "local"), reporting each one's fate."""
    ids = [str(j) for j in job_ids]
    if cluster == "slurm":
        refused = {j: why for j, why in scancel(ids, run).items() if why is not None}
        return Cancellation(cancelled=tuple(j for j in ids if j not in refused), failed=refused)
    if cluster == "local":
        stopped = set(cancel_local_jobs([j for j in ids if j.isdigit()], submitit_folder))
        return Cancellation(
            cancelled=tuple(j for j in ids if j in stopped), already_gone=tuple(j for j in ids if j not in stopped)
        )
    return Cancellation(already_gone=tuple(ids))


def cancel_running(
    cluster: str, job_ids: Sequence[str], submitit_folder: str | None = None, run: Run = subprocess.run
) -> Cancellation:
    """Cancel those of these jobs that still run or wait; one that ended is ``already_gone`` (on
    Slurm too: ``scancel`` of an ended job does nothing, but would be reported as a cancel)."""
    ids = [str(j) for j in job_ids]
    if cluster != "slurm" or not ids:
        return cancel_jobs(cluster, ids, submitit_folder, run)
    # A queue that cannot be asked is no sign that a job ended: cancel it (as for held slots).
    not_ended = slurm_jobs_not_ended(ids, run)
    ended = [j for j in ids if j not in not_ended]
    done = cancel_jobs(cluster, [j for j in ids if j not in ended], submitit_folder, run)
    return dataclasses.replace(done, already_gone=(*done.already_gone, *ended))
