"""The sweep's driver as a small Slurm job (``hydra-sigopt submit``): no terminal to keep open.

The sweeper process (the driver) normally lives in the user's shell, on a login node where long
processes get killed and SSH sessions die. ``hydra-sigopt submit -- <command>`` runs the command in
a Slurm job instead and returns at once. The job's script (:data:`SCRIPT`) keeps it alive:

* at its time limit (``--signal=B:USR1@LEAD``) it stops the sweeper, which leaves its trials
  running (``on_interrupt=detach``), and requeues itself; the requeued job resumes the sweep from
  its journal and re-attaches the trials;
* stopped by Slurm (``scancel``, ``scontrol requeue``, preemption: SIGTERM) it stops the sweeper
  the same way; a requeued job resumes.

``hydra-sigopt kill`` cancels the driver job before it cancels the trials; ``status`` shows it.
The driver's record (:data:`RECORD_NAME`) and log live in the sweep dir's :data:`DRIVER_DIR`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt import driver_env
from hydra_sigopt.errors import SigOptSweeperError
from hydra_sigopt.journal import SweepLock, journal_path
from hydra_sigopt.overrides import format_override
from hydra_sigopt.runners.slurm import queue_states, slurm_jobs_not_ended

DRIVER_DIR = "sigopt_driver"
RECORD_NAME = "driver.json"
#: Taken by ``hydra-sigopt submit`` while it checks the sweep dir, submits and records the driver.
SUBMIT_LOCK_NAME = ".submit.lock"
#: Set in the driver job's environment to the driver's own Slurm job id.
ENV_VAR = "HYDRA_SIGOPT_DRIVER_JOB"
#: The record's entry saying where the sweep dir is (the journal has one too: see hydra_sigopt.copies).
LOCATION = "sweep_dir_location"

SCRIPT = """#!/bin/bash
# The driver of a hydra-sigopt sweep, written by `hydra-sigopt submit` (see hydra_sigopt/driver.py).
{directives}
export {env_var}="$SLURM_JOB_ID"
requeues="${{SLURM_RESTART_COUNT:-0}}"
# The sweeper submits the trials' jobs itself: they must not inherit this job's Slurm settings.
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN)_'); do unset "$v"; done
cd {cwd}
{command} &
child=$!
stopping=""
stop_sweeper() {{ stopping="$1"; kill -TERM "$child" 2>/dev/null; }}
trap 'stop_sweeper time-limit' USR1
trap 'stop_sweeper slurm' TERM
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
wait "$child" 2>/dev/null; status=${{status:-$?}}
if [ "$stopping" = time-limit ]; then
    if [ "$requeues" -lt {max_requeues} ]; then
        echo "hydra-sigopt driver: time limit near; requeued (the sweep resumes from its journal)"
        scontrol requeue "${env_var}"
        exit 0
    fi
    echo "hydra-sigopt driver: time limit near and {max_requeues} requeues used; the trials run on:" \\
         "hydra-sigopt submit the same command again to resume"
fi
exit "$status"
"""


@dataclass(frozen=True)
class DriverOptions:
    """The driver job's resources (it needs little: one CPU, some memory for the engine)."""

    partition: str | None = None
    time_min: int = 24 * 60
    cpus: int = 1
    mem_gb: float = 4.0
    account: str | None = None
    #: How often it requeues itself at its time limit before it stops (the trials run on).
    max_requeues: int = 20
    #: Seconds before the time limit at which it stops the sweeper and requeues.
    lead_s: int = 120


def location_of(sweep_dir: Path) -> dict[str, Any]:
    """Where a sweep dir is: its real path and its inode (see hydra_sigopt.copies)."""
    return {"path": os.path.realpath(sweep_dir), "inode": os.stat(sweep_dir).st_ino}


class SubmitError(SigOptSweeperError, ValueError):
    """``hydra-sigopt submit`` was given a command it cannot run as a driver, or sbatch refused it."""


def sweep_dir_of(command: Sequence[str], cwd: Path) -> Path | None:
    """The ``hydra.sweep.dir`` the command sets, resolved against ``cwd``."""
    for arg in command:
        if arg.startswith("hydra.sweep.dir="):
            return (cwd / arg.partition("=")[2].strip("'\"")).resolve()
    return None


def driver_command(command: Sequence[str], sweep_dir: Path) -> list[str]:
    """The command as the driver runs it: a multirun into a fixed sweep dir that leaves its trials
    running when stopped (a requeued driver re-attaches them; ``hydra-sigopt kill`` cancels them)."""
    argv = list(command)
    python_module = Path(argv[0]).name.startswith("python") and argv[1:2] == ["-m"]  # python -m pkg.train
    flags = argv[3:] if python_module else argv[1:]
    if "-m" not in flags and "--multirun" not in flags:
        # Not added: a command that runs one training instead of a sweep would wait in the queue to
        # fail there. A config that turns the sweep on (hparams_search=..., hydra.mode: MULTIRUN) needs it too.
        raise SubmitError(
            "the command after -- must be a multirun: add -m to it (python train.py -m ...), also where a "
            "config turns the sweep on (hparams_search=..., which sets hydra.mode: MULTIRUN)"
        )
    if not any(a.startswith("hydra.sweep.dir=") for a in argv):
        argv.append(format_override("hydra.sweep.dir", str(sweep_dir)))
    if not any(a.startswith("hydra.sweeper.on_interrupt=") for a in argv):
        argv.append("hydra.sweeper.on_interrupt=detach")
    return argv


def script_text(argv: Sequence[str], cwd: Path, sweep_dir: Path, options: DriverOptions) -> str:
    folder = sweep_dir / DRIVER_DIR
    directives = [
        f"--job-name=sigopt-driver-{sweep_dir.name}",
        f"--output={folder}/driver-%j.log",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{options.lead_s}",
        f"--time={options.time_min}",
        "--ntasks=1",
        f"--cpus-per-task={options.cpus}",
        f"--mem={int(options.mem_gb * 1024)}M",
    ]
    directives += [f"--partition={options.partition}"] if options.partition else []
    directives += [f"--account={options.account}"] if options.account else []
    return SCRIPT.format(
        directives="\n".join(f"#SBATCH {shlex.quote(d)}" for d in directives),
        env_var=ENV_VAR,
        cwd=shlex.quote(str(cwd)),
        command=" ".join(shlex.quote(a) for a in argv),
        max_requeues=options.max_requeues,
    )


def submit(
    command: Sequence[str], cwd: Path, sweep_dir: Path, options: DriverOptions, environ: Mapping[str, str]
) -> tuple[dict[str, Any], str | None]:
    """Sbatch the driver and keep its script and record in the sweep dir; return the record and, where
    its environment carries a SigOpt secret, a note saying so (see :mod:`hydra_sigopt.driver_env`).

    A sweep dir that a driver job or a sweeper runs is refused before anything is written: a second
    driver would be refused by the sweep's lock once it started, and its record would have replaced
    the running driver's (the one ``status`` shows and ``kill`` cancels).
    """
    if options.lead_s >= options.time_min * 60:
        raise SubmitError(f"--time {options.time_min} minutes leaves no time before the {options.lead_s} s lead")
    argv = driver_command(command, sweep_dir)
    refuse_taken(sweep_dir)
    backend = driver_env.sweep_backend(argv, cwd, environ)
    env, carried = driver_env.driver_environment(backend, environ)
    folder = sweep_dir / DRIVER_DIR
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)  # before sbatch: the job's log goes there as it starts
    text = script_text(argv, cwd, sweep_dir, options)
    try:
        with _submit_lock(folder):
            refuse_taken(sweep_dir)  # another submit may have gone through since the check above
            job_id = _sbatch(text, env)
            (folder / "driver.sh").write_text(text)
            record = {
                "job_id": job_id,
                "command": argv,
                # What submit added for its job (on_interrupt=detach): a resume from a terminal leaves it out.
                "added_overrides": argv[len(command) :],
                "cwd": str(cwd),
                "log": str(folder / f"driver-{job_id}.log"),
                "submitted_at": time.time(),
                # Where the sweep dir is: a copy of it must not cancel this job (see hydra_sigopt.copies).
                LOCATION: location_of(sweep_dir),
            }
            _write_record(folder, record)
    except SubmitError:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return record, driver_env.carried_note(backend, carried) if carried else None


def refuse_taken(sweep_dir: Path) -> None:
    """Raise :class:`SubmitError` if the sweep's recorded driver job is still queued or running, or a
    live sweeper (a terminal's, a driver's) holds the sweep."""
    refuse_queued_driver(sweep_dir)
    holder = SweepLock(sweep_dir).holder() if journal_path(sweep_dir).exists() else None
    if holder is not None:
        pid, host = holder
        raise SubmitError(
            f"a sweeper (pid {pid}{f' on {host}' if host else ''}) runs {sweep_dir} already; see hydra-sigopt "
            f"status {shlex.quote(str(sweep_dir))}"
        )


def refuse_queued_driver(sweep_dir: Path) -> None:
    """Raise :class:`SubmitError` if the sweep's recorded driver job is queued or running, this
    process's own driver job aside: one requeued (preemption, ``scontrol requeue``) waits PENDING and
    resumes the sweep once Slurm starts it again, so a second sweeper started meanwhile runs beside it."""
    record = read_record(sweep_dir)
    if record is None or str(record["job_id"]) == os.environ.get(ENV_VAR):
        return
    state = _not_ended_state(str(record["job_id"]))
    if state is not None:
        where = shlex.quote(str(sweep_dir))
        raise SubmitError(
            f"{sweep_dir} is run by its driver, Slurm job {record['job_id']} ({state}); follow it with "
            f"hydra-sigopt status {where}, or stop it first with hydra-sigopt kill {where}"
        )


def _not_ended_state(job_id: str) -> str | None:
    """The driver job's state while it is queued or running (lower case); None once it ended."""
    if not slurm_jobs_not_ended([job_id]):
        return None
    state = queue_states([job_id]).get(job_id)
    return state[0].lower() if state else "state unknown: Slurm's queue could not be asked"


@contextmanager
def _submit_lock(folder: Path) -> Iterator[None]:
    """One submit at a time on a sweep dir: two started at once would both find it free."""
    with open(folder / SUBMIT_LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _sbatch(script: str, env: Mapping[str, str]) -> str:
    """Submit the script (on stdin: no file is written for a job Slurm refuses); the job's id."""
    done = subprocess.run(
        ["sbatch", "--parsable"], input=script, env=dict(env), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SubmitError(f"sbatch refused the driver job: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    tmp = folder / f".{RECORD_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(folder / RECORD_NAME)


def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    """The driver job's record, if the sweep was started by ``hydra-sigopt submit``."""
    try:
        return json.loads((Path(sweep_dir) / DRIVER_DIR / RECORD_NAME).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def driver_state(job_id: str) -> str | None:
    """The driver job's state while Slurm's queue holds it (PENDING, RUNNING, ...); None once it is gone."""
    state = queue_states([job_id]).get(job_id)
    return state[0] if state else None


def stop_driver(job_id: str, wait_s: float = 90.0) -> bool:
    """Cancel the driver job and wait until Slurm's queue no longer holds it; False if it is still there."""
    subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=60, check=False)
    deadline = time.monotonic() + wait_s
    while driver_state(job_id) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True
