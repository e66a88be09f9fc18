"""Warm jobs: submitit jobs started before their trial is known.

Starting a trial's job costs a Python start, the app's imports and unpickling the launcher
(about half a second locally, more with heavy imports); with one job per trial that is half a
second of an idle slot per trial. A warm job pays it while other trials run, then waits for a
claim file naming its trial. The slot that frees next is refilled by writing that file.

The claim file is the only channel, and whoever creates it first wins (``os.link`` is atomic
and fails when the name exists): the sweeper with a trial, or the job itself when it gives up
waiting. A warm job gives up after ``max_wait_s`` (its wait counts against its time limit) or
when the sweeper process is gone, so a killed sweeper leaves no job waiting forever.

Beside its claim file a waiting job may find a hint (:func:`tell_next_trial`): the overrides of
the trial it will likely get. It composes that trial's config while it waits, and a claim for
those overrides runs on it at once: a freed slot no longer waits for Hydra's composition.
"""

from __future__ import annotations

import contextlib
import copy
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


def next_trial_path(claim_path: Path) -> Path:
    """Where the sweeper tells a waiting job the overrides of the trial it will likely get."""
    return claim_path.with_name(f"{claim_path.stem}.next")


def tell_next_trial(claim_path: Path, overrides: list[str]) -> None:
    """Tell the job waiting on ``claim_path`` its likely trial's overrides (renamed into place: the
    job reads a whole hint, the old or the new one)."""
    path = next_trial_path(claim_path)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(overrides))
        os.replace(tmp, path)
    except BaseException:  # no half-written hint left beside the claim (a full disk)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def read_next_trial(claim_path: Path) -> list[str] | None:
    """The overrides the sweeper said this job's trial will likely have, or None."""
    try:
        overrides = json.loads(next_trial_path(claim_path).read_text())
    except (OSError, ValueError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


class _ComposedAhead:
    """The launcher's config loader, answering the trial's composition with the one made ahead
    (once, for the same sweep config and overrides); every other call goes to the loader."""

    def __init__(self, loader: Any, config: Any, overrides: list[str], composed: Any) -> None:
        self._loader = loader
        self._ahead: tuple[Any, list[str], Any] | None = (config, overrides, composed)

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] is master_config and ahead[1] == list(sweep_overrides):
            return ahead[2]
        return self._loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def with_config_composed(launcher: Any, overrides: list[str], composed: Any) -> Any:
    """A copy of the launcher whose trial of ``overrides`` runs on the config composed ahead."""
    context = copy.copy(launcher.hydra_context)
    context.config_loader = _ComposedAhead(context.config_loader, launcher.config, overrides, composed)
    ready = copy.copy(launcher)
    ready.hydra_context = context
    return ready


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
        #: The config composed ahead for the trial the sweeper hinted at: (its overrides, the config).
        self._composed: tuple[list[str], Any] | None = None
        self._hinted: list[str] | None = None  # the last hint acted on (composed, or failing to)

    def __call__(self) -> Any:
        from hydra_sigopt.runners.executor import detaches
        from hydra_sigopt.runners.trial_job import leave_if_it_ended_before

        leave_if_it_ended_before(self._what_it_ran)  # Slurm requeued it after its trial (or its retirement)
        if detaches(self.launcher):
            leave_the_terminals_process_group()  # before SIGINT is unblocked (see TimedTask)
        take_interrupts()  # a local job starts with SIGINT blocked (processes.interrupts_kept_from_children)
        path = Path(self.claim_path)
        self._warm_up(path)
        payload = self._wait(path)
        if "stop" in payload:
            _job_log().info("Warm job not used: %s", payload["stop"])
            return NotUsed(str(payload["stop"]))
        self._trial_args = self._trial_args_from(payload)
        launcher, ahead = self.launcher, ""
        if self._composed is not None and self._composed[0] == self._trial_args[0]:
            launcher, ahead = with_config_composed(self.launcher, *self._composed), " (its config composed ahead)"
        self._composed = None
        _job_log().info("Warm job runs trial #%d%s", self._trial_args[2], ahead)
        from hydra_sigopt.runners.trial_job import run_trial

        return run_trial(launcher, self._trial_args)

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

    def _warm_up(self, path: Path) -> None:
        """Do the launcher's per-job work that does not depend on the trial: plugin discovery and
        a first config composition (Hydra's parser and config loading have slow first calls).

        Not the composition once the claim is there: a job still starting when its trial came
        (slots freeing faster than jobs start) would compose twice before the trial's task runs,
        the first time for nothing (and a retired job would compose only to end)."""
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals

        started = time.monotonic()
        try:
            Singleton.set_state(self.singleton_state)
            setup_globals()
        except Exception as exc:  # only a head start: the trial's own start reports real errors
            _job_log().info("Warm-up skipped: %s: %s", type(exc).__name__, exc)
        else:
            # The trial the sweeper hinted at is the better warm-up: its composition is kept.
            if not self._compose_next_trial(path) and self.warm_up_overrides is not None and read_claim(path) is None:
                self._compose(list(self.warm_up_overrides))
        _job_log().info("Warm job ready in %.2f s", time.monotonic() - started)

    def _compose_next_trial(self, path: Path) -> bool:
        """Compose the config of the trial the sweeper hinted at (see tell_next_trial), unless it is
        composed already or the claim is there; whether it composed one."""
        overrides = read_next_trial(path)
        if overrides is None or overrides == self._hinted or read_claim(path) is not None:
            return False
        self._hinted = overrides
        composed = self._compose(overrides)
        self._composed = None if composed is None else (overrides, composed)
        return True

    def _compose(self, overrides: list[str]) -> Any:
        """The sweep config of a trial with these overrides, as the launcher composes it; None if
        that fails (the trial's own composition then reports the error, in its own start)."""
        try:
            loader = self.launcher.hydra_context.config_loader
            return loader.load_sweep_config(self.launcher.config, overrides)
        except Exception as exc:
            _job_log().info("Composing ahead skipped: %s: %s", type(exc).__name__, exc)
            return None

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
            if self._compose_next_trial(path):
                continue  # the claim may have come meanwhile
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
