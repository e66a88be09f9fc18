"""What a trial's Slurm job waits for, in the sweep's log, so a user can tell a queue from a hang.

One line when a job is requeued, held or suspended (at once), when a first wait in the queue has
lasted ``note_after_s`` (a few seconds in the queue is normal and not worth a line), when the
reason a logged wait is held back changes (``Resources`` -> ``JobHeldAdmin``), and when a logged
wait ends. Slurm is asked for reasons only about jobs worth a line, and about logged waits at most
every ``reason_check_s``: squeue calls are what a busy cluster's users are asked to keep few.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .slurm import DIED_STATES, WAITING_STATES, pending_reasons

log = logging.getLogger("hydra_sigopt")


@dataclass
class JobState:
    """A job's Slurm state when last looked at, since when, and what the log has said of it."""

    state: str | None = None
    since: float = 0.0
    #: The current state was logged (a first short wait in the queue is not).
    logged: bool = False
    #: The reason squeue gave when the wait was last logged.
    reason: str | None = None
    #: The state before this one: RUNNING -> PENDING is a requeue.
    previous: str | None = None


class QueueLog:
    """Decides and writes the lines; the runner gives it each trial's job id and Slurm state."""

    def __init__(
        self,
        clock: Callable[[], float],
        note_after_s: float = 30.0,
        reason_check_s: float = 10.0,
        reasons: Callable[[Sequence[str]], dict[str, str]] = pending_reasons,
    ) -> None:
        self.clock, self.reasons = clock, reasons
        self.note_after_s, self.reason_check_s = note_after_s, reason_check_s
        self.states: dict[int, JobState] = {}
        self._reasons_asked = -float("inf")

    def waiting(self) -> list[int]:
        return sorted(n for n, s in self.states.items() if s.state in WAITING_STATES)

    def forget(self, number: int) -> None:
        self.states.pop(number, None)

    def note(self, jobs: dict[int, tuple[str, str]]) -> None:
        """``jobs``: trial number -> (job id, submitit's state of the job) for every tracked job."""
        due = [n for n, (_, state) in jobs.items() if self._changed(n, state)]
        held = [n for n in jobs if n not in due and self._logged_wait(n)]
        if held and self.clock() - self._reasons_asked < self.reason_check_s:
            held = []
        asked = [jobs[n][0] for n in [*due, *held] if self.states[n].state in WAITING_STATES]
        if held:
            self._reasons_asked = self.clock()
        reasons = self.reasons(asked) if asked else {}
        for number in due:
            self._line(number, jobs[number][0], reasons.get(jobs[number][0]), changed=True)
        for number in held:
            reason = reasons.get(jobs[number][0])
            if reason and reason != self.states[number].reason:
                self._line(number, jobs[number][0], reason, changed=False)

    def _changed(self, number: int, submitit_state: str) -> bool:
        """Update the job's known state; whether it is now worth a line."""
        state = submitit_state.split(" ")[0]  # "CANCELLED by 0"
        if state in ("UNKNOWN", "COMPLETED", "FINISHED", *DIED_STATES):
            return False  # the end of a job is reported with its outcome
        known = self.states.setdefault(number, JobState())
        if state != known.state:
            log.debug("Trial #%d: Slurm state %s -> %s", number, known.state, state)
            waited_long = known.logged
            known.previous, known.state, known.since, known.logged = known.state, state, self.clock(), False
            if state == "RUNNING":
                return waited_long  # the end of a wait that was logged
            # Requeued, held, suspended: at once; a job first seen requeued (it ran and was requeued
            # between two looks at accounting) too.
            return known.previous is not None or state.startswith("REQUEUE")
        return state in WAITING_STATES and not known.logged and self.clock() - known.since >= self.note_after_s

    def _logged_wait(self, number: int) -> bool:
        known = self.states.get(number)
        return known is not None and known.logged and known.state in WAITING_STATES

    def _line(self, number: int, job_id: str, reason: str | None, changed: bool) -> None:
        known = self.states[number]
        what = str(known.state).lower()
        if changed and known.previous == "RUNNING" and known.state == "PENDING":
            what = f"requeued, {what}"  # (accounting may also show REQUEUED in between: its own word)
        waited = self.clock() - known.since
        if known.state in WAITING_STATES and waited >= 1:
            what += f" for {waited:.0f} s"
        known.logged, known.reason = True, reason
        log.info("Trial #%d: job %s %s%s", number, job_id, what, f" ({reason})" if reason else "")
