"""Warm jobs: submitit jobs started before their trial is known.

Starting a trial's job costs a Python start, the app's imports and unpickling the launcher
(about half a second locally, more with heavy imports); with one job per trial that is half a
second of an idle slot per trial. A warm job pays it while other trials run, then waits for a
claim file naming its trial. The slot that frees next is refilled by writing that file.

The claim file is the only channel, and whoever creates it first wins (``os.link`` is atomic
and fails when the name exists): the sweeper with a trial, or the job itself when it gives up
waiting. A warm job gives up after ``max_wait_s`` (its wait counts against its time limit) or
when the sweeper process is gone, so a killed sweeper leaves no job waiting forever.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.processes import leave_the_terminals_process_group, take_interrupts


def _job_log() -> logging.Logger:
    """submitit's logger: the warm job's lines land in the job's log with submitit's own."""
    from submitit.core.logger import get_logger

    return get_logger()


#: Longest wait of a warm job, and the share of its time limit it may spend waiting.
MAX_WAIT_S = 60.0
MAX_WAIT_SHARE_OF_TIMEOUT = 0.05


def max_wait_for(timeout_min: float | None) -> float:
    """How long a warm job may wait: at most a minute and 5 % of its time limit."""
    if not timeout_min or timeout_min <= 0:
        return MAX_WAIT_S
    return max(1.0, min(MAX_WAIT_S, MAX_WAIT_SHARE_OF_TIMEOUT * 60.0 * float(timeout_min)))


@dataclass(frozen=True)
class NotUsed:
    """What a warm job returns when it ran no trial."""

    reason: str


def claim(path: Path, payload: dict[str, Any]) -> bool:
    """Create ``path`` holding ``payload`` unless it exists; True when this call created it."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        # NFS may report a retransmitted link that succeeded as failed: then the claim is ours.
        try:
            return read_claim(path) == payload
        except (OSError, ValueError):
            return False
    finally:
        tmp.unlink()


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim in ``path``, or None while there is none."""
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None


class WarmJob:
    """The function a warm job runs: wait for a trial, then run it as the launcher would."""

    def __init__(
        self,
        launcher: Any,
        claim_path: str,
        singleton_state: Any,
        max_wait_s: float,
        poll_s: float,
        warm_up_overrides: list[str] | None = None,
        sweeper_pid: int | None = None,
        sweeper_host: str | None = None,
    ) -> None:
        self.launcher = launcher
        self.warm_up_overrides = warm_up_overrides
        self.claim_path = claim_path
        self.singleton_state = singleton_state
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self.sweeper_pid = os.getpid() if sweeper_pid is None else sweeper_pid
        self.sweeper_host = sweeper_host or socket.gethostname()
        self._trial_args: tuple[Any, ...] | None = None

    def __call__(self) -> Any:
        from hydra_sigopt.runners.executor import detaches
        from hydra_sigopt.runners.trial_job import leave_if_it_ended_before

        leave_if_it_ended_before(self._what_it_ran)  # Slurm requeued it after its trial (or its retirement)
        if detaches(self.launcher):
            leave_the_terminals_process_group()  # before SIGINT is unblocked (see TimedTask)
        take_interrupts()  # a local job starts with SIGINT blocked (processes.interrupts_kept_from_children)
        self._warm_up()
        path = Path(self.claim_path)
        payload = self._wait(path)
        if "stop" in payload:
            _job_log().info("Warm job not used: %s", payload["stop"])
            return NotUsed(str(payload["stop"]))
        self._trial_args = self._trial_args_from(payload)
        _job_log().info("Warm job runs trial #%d", self._trial_args[2])
        return self.launcher(*self._trial_args)

    def _trial_args_from(self, payload: dict[str, Any]) -> tuple[Any, ...]:
        """The launcher's arguments for the trial a claim names, as a cold job gets them."""
        number = int(payload["number"])
        return (list(payload["overrides"]), "hydra.sweep.dir", number, f"job_id_for_{number}", self.singleton_state)

    def _what_it_ran(self) -> str:
        """The trial its claim names, for its log (read only in a job that ran before)."""
        payload = read_claim(Path(self.claim_path)) or {}
        return f"Trial #{payload['number']}" if "number" in payload else "Warm job"

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """On preemption or time-out (submitit's requeue): requeue the trial itself, not the wait."""
        if self._trial_args is not None:
            return self._requeue_as(self._trial_args)
        path = Path(self.claim_path)
        if claim(path, {"stop": "preempted or timed out while waiting"}):
            return None  # end: the sweeper finds the claim taken and starts the trial elsewhere
        payload = read_claim(path)
        if payload is None or "stop" in payload:
            return None
        # The sweeper's trial arrived with the signal: requeue as that trial, or it would be lost.
        return self._requeue_as(self._trial_args_from(payload))

    def _requeue_as(self, trial_args: tuple[Any, ...]) -> Any:
        """The trial's call to requeue, as a cold job of it runs it (not again once it has ended)."""
        from hydra_sigopt.runners.trial_job import TrialJob

        return TrialJob(self.launcher).checkpoint(*trial_args)

    def _warm_up(self) -> None:
        """Do the launcher's per-job work that does not depend on the trial: plugin discovery and
        a first config composition (Hydra's parser and config loading have slow first calls)."""
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals

        started = time.monotonic()
        try:
            Singleton.set_state(self.singleton_state)
            setup_globals()
            if self.warm_up_overrides is not None:
                loader = self.launcher.hydra_context.config_loader
                loader.load_sweep_config(self.launcher.config, list(self.warm_up_overrides))
        except Exception as exc:  # only a head start: the trial's own composition reports real errors
            _job_log().info("Warm-up skipped: %s: %s", type(exc).__name__, exc)
        _job_log().info("Warm job ready in %.2f s", time.monotonic() - started)

    def _wait(self, path: Path) -> dict[str, Any]:
        """The claim: the sweeper's, or this job's own once it gives up waiting."""
        deadline = time.monotonic() + self.max_wait_s
        next_liveness_check = 0.0
        while True:
            if self.poll_s >= 0.1:  # a shared file system: refresh the folder's cached listing, as submitit does
                try:
                    path.parent.chmod(path.parent.stat().st_mode)
                except OSError:
                    pass
            payload = read_claim(path)
            if payload is not None:
                return payload
            now = time.monotonic()
            reason = None
            if now >= deadline:
                reason = f"no trial within {self.max_wait_s:.0f} s"
            elif now >= next_liveness_check:
                next_liveness_check = now + 1.0
                if self._sweeper_gone():
                    reason = f"the sweeper (pid {self.sweeper_pid}) is gone"
            if reason is not None:
                giving_up = {"stop": reason}
                if claim(path, giving_up):
                    return giving_up
                continue  # the sweeper's claim came first: run its trial
            time.sleep(self.poll_s)

    def _sweeper_gone(self) -> bool:
        """Whether the sweeper process has ended (knowable on its own host only)."""
        from hydra_sigopt.processes import pid_running

        return socket.gethostname() == self.sweeper_host and not pid_running(self.sweeper_pid)
