"""Slurm jobs that died at their launch, before their task started: submitted again, not failures.

Slurm before 23.02 does not create a missing output folder, and submitit creates a job's folder
only once ``sbatch`` has returned: a job started within those milliseconds fails at once ("Could not
open stdout file"), leaving no log, through no fault of the trial (submitit; hydra issue 2100).
"""

from __future__ import annotations

import logging
from typing import Any

from hydra_sigopt.runners.ended_job import results_written

log = logging.getLogger(__name__)

#: How many times a trial's job that died at its launch is submitted again before it counts as failed.
MAX_RELAUNCHES = 2
#: The states of a Slurm job that failed to launch (a job the user cancelled stays a failure).
LAUNCH_FAILURES = frozenset({"FAILED", "NODE_FAIL", "BOOT_FAIL"})


def died_at_launch(job: Any) -> bool:
    """Whether a Slurm job ended without ever starting its task: failed, and Slurm opened none of its log files."""
    if type(job).__name__ != "SlurmJob" or results_written(job):
        return False
    state = str(job.state).split(" ")[0]
    return state in LAUNCH_FAILURES and not job.paths.stdout.exists() and not job.paths.stderr.exists()


def overrides_to_relaunch(tracked: Any) -> list[str] | None:
    """The overrides to submit a trial's tracked job (``.job``, ``.overrides``, ``.relaunches``) again
    with, if it died at its launch and may be: one this runner submitted (its overrides known), not
    too often; None otherwise."""
    if tracked.overrides is None or tracked.relaunches >= MAX_RELAUNCHES or not died_at_launch(tracked.job):
        return None
    return list(tracked.overrides)


def say_relaunched(number: int, dead_job: str, new_job: str | None) -> None:
    again = f"submitted again as job {new_job}" if new_job else "its new submission is refused for now"
    log.warning(
        "Trial #%d's job %s died before its task started (Slurm wrote no log: a node could not open it); %s",
        number,
        dead_job,
        again,
    )
