"""``submitit_local`` jobs while and after they run: what submitit's local executor does unseen.

Its controller restarts a task from scratch at a time-out (up to ``max_num_timeout`` times), saying
so only in the job's log; and a trial's task may leave programs running when it ends (a server, a
simulator, data loader workers), which nothing stops: the job's controller stops its tasks only.
:class:`LocalJobWatch` says each restart as it happens, and stops a trial's leftovers once its job
has ended, saying which.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.processes import (
    command_of,
    leftovers_of_local_job,
    local_job_running,
    local_job_started,
    signal_if_same,
)

log = logging.getLogger(__name__)

#: How long a leftover process has between SIGTERM and SIGKILL.
LEFTOVER_GRACE_S = 3.0
#: How long the sweep's end waits for a job's controller to exit, to stop what its trial left.
CONTROLLER_EXIT_WAIT_S = 5.0


@dataclass
class _Watched:
    number: int
    job_id: str
    #: When the job's process started (its identity: pids are reused).
    started: str | None
    #: The job's log, where submitit's controller says each restart ("Requeued job ..."), and how far it was read.
    log: Path
    read_to: int = 0
    restarts: int = 0


class LocalJobWatch:
    """Restarts of running local jobs, and the processes ended ones left behind (see module doc)."""

    def __init__(
        self,
        launcher_params: dict[str, object],
        submitit_folder: str,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Only local jobs: Slurm restarts nothing unseen, and ends a job's processes with it.
        self.enabled = enabled
        self.params = launcher_params
        self.submitit_folder = submitit_folder
        self.clock = clock
        self._running: dict[int, _Watched] = {}
        self._ended: list[_Watched] = []
        #: Leftovers sent SIGTERM: (when, the processes) to SIGKILL after the grace if still there.
        self._terminated: list[tuple[float, dict[int, str | None]]] = []

    def started(self, number: int, job: Any) -> None:
        """Trial ``number`` runs in this local job (submitted, taken from the warm pool or re-attached)."""
        if self.enabled:
            job_id = str(job.job_id)
            self._running[number] = _Watched(number, job_id, local_job_started(job_id), Path(job.paths.stdout))

    def check(self) -> None:
        """Say the restarts since the last check; stop what ended jobs left running (called every few seconds)."""
        for watched in self._running.values():
            self._note_restart(watched)
        self._stop_leftovers(wait_s=0.0)

    def ended(self, number: int) -> int:
        """Trial ``number``'s job ended: how often its task was restarted (its leftovers are stopped
        once its controller has exited)."""
        watched = self._running.pop(number, None)
        if watched is None:
            return 0
        self._note_restart(watched)  # one since the last check: an attempt resumed near its end ends within it
        self._ended.append(watched)
        self._stop_leftovers(wait_s=0.0)
        return watched.restarts

    def forget(self, number: int) -> None:
        """Trial ``number``'s job was cancelled (the cancel stops its processes) or left running (detach)."""
        self._running.pop(number, None)

    def close(self) -> None:
        """The sweep ends: stop what the ended trials left running, waiting for their controllers to exit."""
        self._stop_leftovers(wait_s=CONTROLLER_EXIT_WAIT_S)
        while self._terminated:
            time.sleep(0.1)
            self._kill_after_grace()

    def _note_restart(self, watched: _Watched) -> None:
        """Say each restart submitit's controller logged since the last look (only whole lines are read)."""
        try:
            with watched.log.open("rb") as f:
                f.seek(watched.read_to)
                new = f.read()
        except OSError:
            return  # not written yet
        whole = new[: new.rfind(b"\n") + 1]
        watched.read_to += len(whole)
        for _ in range(sum(b"Requeued job" in line for line in whole.splitlines())):
            watched.restarts += 1
            log.warning(
                "Trial #%d: job %s reached its time limit (hydra.launcher.timeout_min=%s) and submitit_local "
                "restarted its task from the start (restart %d of hydra.launcher.max_num_timeout=%s; the app "
                "resumes only from a checkpoint of its own)",
                watched.number,
                watched.job_id,
                self.params.get("timeout_min"),
                watched.restarts,
                self.params.get("max_num_timeout"),
            )

    def _stop_leftovers(self, wait_s: float) -> None:
        """SIGTERM what the ended jobs whose controller exited left running (within ``wait_s``)."""
        deadline = self.clock() + wait_s
        while True:
            still = [w for w in self._ended if local_job_running(w.job_id, self.submitit_folder)]
            for watched in (w for w in self._ended if w not in still):
                self._terminate(watched)
            self._ended = still
            if not still or self.clock() >= deadline:
                break
            time.sleep(0.05)
        self._kill_after_grace()

    def _terminate(self, watched: _Watched) -> None:
        left = leftovers_of_local_job(watched.job_id, watched.started)
        commands = {p: command_of(p) for p in left}  # before they are gone
        stopped = signal_if_same(left, signal.SIGTERM)
        if not stopped:
            return
        self._terminated.append((self.clock(), {p: left[p] for p in stopped}))
        log.warning(
            "Trial #%d ended and left %d process%s running; stopped: %s (a program meant to outlive its trial "
            "must be started without SUBMITIT_LOCAL_JOB_ID in its environment)",
            watched.number,
            len(stopped),
            "" if len(stopped) == 1 else "es",
            "; ".join(f"pid {p} ({commands[p]})" for p in stopped),
        )

    def _kill_after_grace(self) -> None:
        due = [(at, procs) for at, procs in self._terminated if self.clock() - at >= LEFTOVER_GRACE_S]
        for _, procs in due:
            signal_if_same(procs, signal.SIGKILL)
        self._terminated = [t for t in self._terminated if t not in due]
