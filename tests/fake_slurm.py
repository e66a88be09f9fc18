"""Fake ``sacct``, ``squeue``, ``scancel`` and ``sbatch`` on PATH, as submitit tests itself: the runner's Slurm code
runs its real subprocess calls and parsing against them, without a cluster and without waiting.

The fakes answer from one JSON file: job states, and whether the controller is down (then they
fail with the messages and exit codes measured on the project's real cluster with slurmctld
stopped: ``scancel`` exits 8, ``squeue`` and ``sbatch`` exit 1).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

UNREACHABLE = "Unable to contact slurm controller (connect failure)"

_SCRIPT = r"""#!{python}
import json, sys
from pathlib import Path
state_file = Path({state!r})
world = json.loads(state_file.read_text())
command = Path(sys.argv[0]).name
world.setdefault("calls", []).append([command, *sys.argv[1:]])
state_file.write_text(json.dumps(world))
jobs = world["jobs"]
down = world.get("controller_down", False)
if command == "sacct":
    if down:
        print("sacct: error: Problem talking to the database: Connection refused", file=sys.stderr)
        sys.exit(1)
    ids = [i for k, a in enumerate(sys.argv[:-1]) if a == "-j" for i in sys.argv[k + 1].split(",")]
    if "State,ExitCode" in sys.argv:  # the sweeper's own query of how a job ended
        for job_id in ids:
            if job_id in jobs:
                print(f"{{jobs[job_id]}}|{{world.get('exit_codes', {{}}).get(job_id, '0:0')}}")
        sys.exit(0)
    print("JobID|State|NodeList")
    for job_id in ids:
        if job_id in jobs:
            print(f"{{job_id}}|{{jobs[job_id]}}|vm")
elif command == "squeue" and "%i|%T|%r" in sys.argv:  # queue states and why jobs are pending
    asked = sys.argv[sys.argv.index("-j") + 1].split(",")
    if down:
        print("slurm_load_jobs error: {unreachable}", file=sys.stderr)
        sys.exit(1)
    if len(asked) == 1 and asked[0] not in jobs:  # measured: one id the controller forgot
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        sys.exit(1)
    for job_id in asked:
        if job_id in jobs:  # as the real squeue: a job that left the queue is not listed
            print(f"{{job_id}}|{{jobs[job_id]}}|{{world.get('reasons', {{}}).get(job_id, 'None')}}")
elif command == "squeue":
    job_id = sys.argv[sys.argv.index("-j") + 1]
    if down:
        print("slurm_load_jobs error: {unreachable}", file=sys.stderr)
        sys.exit(1)
    if job_id not in jobs:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        sys.exit(1)
    if jobs[job_id] in ("PENDING", "RUNNING", "REQUEUED"):
        print(jobs[job_id])
elif command == "sbatch":
    if down:
        print("sbatch: error: Batch job submission failed: {unreachable}", file=sys.stderr)
        sys.exit(1)
    if world.get("refuse"):
        print(world["refuse"], file=sys.stderr)
        sys.exit(1)
    job_id = str(world.get("next_id", 1000))
    world["next_id"] = int(job_id) + 1
    jobs[job_id] = "PENDING"
    state_file.write_text(json.dumps(world))
    cluster = world.get("cluster")  # a multi-cluster setup's: real sbatch names it after the id
    if "--parsable" in sys.argv:
        print(job_id if cluster is None else f"{{job_id}};{{cluster}}")
    else:
        print(f"Submitted batch job {{job_id}}" + ("" if cluster is None else f" on cluster {{cluster}}"))
elif command == "scancel":
    job_id = sys.argv[1]
    if down:
        print(f"scancel: error: Kill job error on job id {{job_id}}: {unreachable}", file=sys.stderr)
        sys.exit(8)
    if jobs.get(job_id) in ("PENDING", "RUNNING"):
        jobs[job_id] = "CANCELLED by 0"
        world["jobs"] = jobs
        state_file.write_text(json.dumps(world))
"""


class FakeSlurm:
    """The fake cluster's state; change it between the runner's calls."""

    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.state_file = folder / "slurm.json"
        self._write({"jobs": {}, "controller_down": False, "calls": []})
        for command in ("sacct", "squeue", "scancel", "sbatch"):
            path = self.bin / command
            path.write_text(_SCRIPT.format(python=sys.executable, state=str(self.state_file), unreachable=UNREACHABLE))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def _read(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]

    def _write(self, world: dict) -> None:  # type: ignore[type-arg]
        self.state_file.write_text(json.dumps(world))

    def set_state(self, job_id: str, state: str) -> None:
        world = self._read()
        world["jobs"][job_id] = state
        self._write(world)

    def set_reason(self, job_id: str, reason: str) -> None:
        world = self._read()
        world.setdefault("reasons", {})[job_id] = reason
        self._write(world)

    def set_exit_code(self, job_id: str, exit_code: str) -> None:
        world = self._read()
        world.setdefault("exit_codes", {})[job_id] = exit_code
        self._write(world)

    def state(self, job_id: str) -> str | None:
        return self._read()["jobs"].get(job_id)  # type: ignore[no-any-return]

    def controller_down(self, down: bool = True) -> None:
        world = self._read()
        world["controller_down"] = down
        self._write(world)

    def refuse(self, message: str | None) -> None:
        """Make sbatch fail with ``message`` (None: accept jobs again)."""
        world = self._read()
        world["refuse"] = message
        self._write(world)

    def on_cluster(self, name: str | None) -> None:
        """Make sbatch answer as on a multi-cluster setup: ``N;name`` with ``--parsable`` (None: one cluster)."""
        world = self._read()
        world["cluster"] = name
        self._write(world)

    def calls(self, command: str) -> list[list[str]]:
        return [c for c in self._read()["calls"] if c[0] == command]

    def path_env(self) -> str:
        return f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"


class FakeClock:
    """A monotonic clock that only moves when slept on (see ``SubmititRunner(clock=, sleep=)``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.on_sleep: list[tuple[float, object]] = []  # (at, action): actions run once the clock passes ``at``

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        # submitit ignores a forced sacct refresh that comes within 1 ms of real time after the last
        # one (InfoWatcher.update_if_long_enough); the runner forces one every 2 s of its clock, real time in use, so
        # let real time pass too, or a fake-clock test would see forced checks skipped at random.
        time.sleep(0.002)
        self.now += max(seconds, 0.001)
        due = [(at, action) for at, action in self.on_sleep if at <= self.now]
        self.on_sleep = [(at, action) for at, action in self.on_sleep if at > self.now]
        for _, action in due:
            action()  # type: ignore[operator]
