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

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt import driver
from hydra_sigopt.journal import JOURNAL_NAME, PENDING, RUNNING, STOPPED, SweepLock, Trial, journal_path
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
    this copy's journal shows unfinished or stopped early (None: nothing; it has ended, or is gone).
    A resumed copy would take those jobs for its own while they write in the original's trial folders."""
    holder = _sweeper_of(Path(original))
    if holder is not None:
        return f"its sweeper, {holder}"
    record = driver.read_record(sweep_dir)
    if record is not None and driver.driver_state(str(record["job_id"])) is not None:
        return f"its driver, Slurm job {record['job_id']}"
    jobs = jobs_still_running(meta, _job_ids_of_unfinished(trials))
    if jobs:
        return f"its {meta.get('launcher')} job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}"
    return None


def jobs_of_a_gone_original(
    sweep_dir: Path, original: str, meta: Mapping[str, Any], trials: Sequence[Trial]
) -> str | None:
    """When the original sweep dir is gone (deleted, moved away) while jobs it started still run
    (its driver job, its trials' jobs): which, and the command that stops them. Nothing else can:
    ``hydra-sigopt kill`` of the original has no dir to run on, and the copy must not act on them
    while they run (their results go to the original's folder). None: the original is there, or
    nothing of it runs."""
    if not original_gone(original):
        return None
    record = driver.read_record(sweep_dir)
    drivers = [str(record["job_id"])] if record and driver.driver_state(str(record["job_id"])) else []
    jobs = jobs_still_running(meta, _job_ids_of_unfinished(trials))
    if not drivers and not jobs:
        return None
    stop = _how_to_stop(str(meta.get("launcher")), jobs, drivers)
    resume = f"hydra-sigopt continue {shlex.quote(str(sweep_dir))} --run"
    gone = f"the original sweep dir {original} is gone (no {JOURNAL_NAME} there)"
    return f"{gone}, but its jobs still run: stop them with {stop}, then {resume}"


def original_gone(original: str) -> bool:
    """Whether the original sweep is gone from its recorded path: no journal there, nor a driver's
    record (a sweep submitted and not started yet). Not whether the folder exists: the jobs of a
    deleted sweep make folders in it again (an app saving its checkpoint in its output folder), and
    a folder without its journal holds no sweep that ``hydra-sigopt`` could act on."""
    place = Path(original)
    return not journal_path(place).exists() and driver.read_record(place) is None


def _job_ids_of_unfinished(trials: Sequence[Trial]) -> list[str]:
    """The jobs of the trials not ended: pending, running, or stopped early, whose job runs on until
    it ends (it saves a checkpoint, or swallows the stop)."""
    return [str(t.job_id) for t in trials if t.state in (PENDING, RUNNING, STOPPED) and t.job_id]


def _how_to_stop(launcher: str, jobs: Sequence[str], drivers: Sequence[str]) -> str:
    """The commands that stop these jobs of a sweep and its driver job (a Slurm job, whatever the launcher)."""
    if launcher != "local":
        # Job ids are one cluster's: a copy carried to another cluster must not cancel its jobs there.
        return f"`scancel {' '.join([*drivers, *jobs])}` (Slurm jobs, on the cluster the original ran on)"
    # A submitit_local job id is its controller's pid, which keeps SIGINT blocked (the sweeper starts it
    # so) and passes SIGTERM on to its tasks, which submitit has ignore it: SIGINT to the tasks, its
    # children, stops them as a Ctrl-C does, and the controller ends with them.
    pids = ",".join(jobs)
    commands = [f"`pkill -INT -P {pids}` (the tasks of the submitit_local jobs, pids {pids})"] if jobs else []
    commands += [f"`scancel {drivers[0]}` (its driver, a Slurm job)"] if drivers else []
    return " and ".join(commands)


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


def jobs_still_running(meta: Mapping[str, Any], job_ids: Sequence[str]) -> list[str]:
    """Those of these jobs that still run (submitit_local's on this host, or Slurm's)."""
    if meta.get("launcher") == "local":
        return [j for j in job_ids if local_job_running(j, meta.get("submitit_folder"))]
    if meta.get("launcher") == "slurm" and job_ids:
        return slurm_jobs_not_ending(job_ids)
    return []
