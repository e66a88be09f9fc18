"""A copy of a sweep dir (``cp -a``, an rsync'ed backup): its journal names the original's jobs.

A copy's journal and driver record name the same Slurm job ids, submitit_local jobs and driver job
as the sweep it was copied from. ``hydra-sigopt kill`` or ``delete`` run on a backup cancelled the
live sweep's jobs and its driver. So each sweeper run notes in the journal where its sweep dir is
(:data:`LOCATION`; ``hydra-sigopt submit`` in the driver's record too), and the commands that act
on jobs refuse a folder that is not that one.

"The same folder" is one whose inode or real path is the recorded one: a ``mv`` on the same file
system keeps the inode; on NFS a compute node and a login node may mount the folder at different
paths (and with a different ``st_dev``), but its inode is the same. A copy differs in both.
Journals written before the record have none: they are taken as the original, as they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt import driver
from hydra_sigopt.journal import PENDING, RUNNING, SweepLock, Trial, journal_path
from hydra_sigopt.processes import local_job_running
from hydra_sigopt.runners.slurm import slurm_jobs_not_ending

#: The journal's meta entry (and the driver record's): {"path": real path, "inode": st_ino}.
LOCATION = driver.LOCATION
location_of = driver.location_of  # here beside LOCATION; defined in driver, which records it too


def original_of(sweep_dir: Path, meta: Mapping[str, Any] | None) -> str | None:
    """The path of the sweep dir that ``sweep_dir`` is a copy of (None: it is that sweep's own dir, or
    no record says where that is). The journal's record, else the driver's (a sweep not started yet)."""
    recorded = (meta or {}).get(LOCATION) or (driver.read_record(sweep_dir) or {}).get(LOCATION)
    if not isinstance(recorded, Mapping):
        return None
    try:
        here = location_of(sweep_dir)
    except OSError:
        return None
    if recorded.get("inode") == here["inode"] or recorded.get("path") == here["path"]:
        return None
    return str(recorded.get("path"))


def why_original_runs(sweep_dir: Path, original: str, meta: Mapping[str, Any], trials: Sequence[Trial]) -> str | None:
    """What of the original sweep still runs: its sweeper, its driver job, or the jobs of the trials
    this copy's journal shows unfinished (None: nothing; it has ended, or is gone)."""
    holder = _sweeper_of(Path(original))
    if holder is not None:
        return f"its sweeper, {holder}"
    record = driver.read_record(sweep_dir)
    if record is not None and driver.driver_state(str(record["job_id"])) is not None:
        return f"its driver, Slurm job {record['job_id']}"
    jobs = _jobs_running(meta, [str(t.job_id) for t in trials if t.state in (PENDING, RUNNING) and t.job_id])
    if jobs:
        return f"its {meta.get('launcher')} job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}"
    return None


def _sweeper_of(sweep_dir: Path) -> str | None:
    """The sweeper holding the sweep in ``sweep_dir`` ("pid N on host"), if one does."""
    if not journal_path(sweep_dir).exists():
        return None
    try:
        holder = SweepLock(sweep_dir).holder()
    except OSError:
        return None
    if holder is None:
        return None
    pid, host = holder
    return f"pid {pid}" + (f" on {host}" if host else "")


def _jobs_running(meta: Mapping[str, Any], job_ids: Sequence[str]) -> list[str]:
    """Those of these jobs that still run (submitit_local's on this host, or Slurm's)."""
    if meta.get("launcher") == "local":
        return [j for j in job_ids if local_job_running(j, meta.get("submitit_folder"))]
    if meta.get("launcher") == "slurm" and job_ids:
        return slurm_jobs_not_ending(job_ids)
    return []
