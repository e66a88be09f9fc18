"""How a sweep stops before its budget is spent: what happens to the running trials, and what the user reads.

Every stop ends in :class:`SweepAbortedError` with a message that says what became of the running
trials (cancelled, or left running for a resumed sweep to re-attach) and how to continue.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from hydra_sigopt.errors import BackendUnavailableError, SweepAbortedError
from hydra_sigopt.journal import Journal, JournalLostError
from hydra_sigopt.runners import JobOutcome, TrialRunner, describe_error
from hydra_sigopt.scheduler import Scheduler
from hydra_sigopt.secrets import redact
from hydra_sigopt.settings import SweepSettings
from hydra_sigopt.signals import signals_ignored

log = logging.getLogger("hydra_sigopt")


class Stopping:
    """The stop policy (``on_interrupt``, ``max_failure_rate``) carried out on the running trials."""

    def __init__(
        self,
        settings: SweepSettings,
        journal: Journal,
        runner: TrialRunner,
        scheduler: Scheduler,
        continue_hint: str,
        tokens: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.runner = runner
        self.scheduler = scheduler
        #: "Continue this sweep with: <command>", the last words of every stop.
        self.continue_hint = continue_hint
        self.tokens = tokens

    # ------------------------------------------------------------------ the ways a sweep stops

    def interrupted(self) -> NoReturn:
        """Ctrl-C or SIGTERM (``hydra-sigopt kill``)."""
        what = self.apply_interrupt_policy("cancelled: the sweeper was interrupted")
        log.error("Interrupted. %s. %s", what, self.continue_hint)
        raise SweepAbortedError(f"Interrupted. {what}. {self.continue_hint}")

    def engine_unreachable(self, exc: BackendUnavailableError) -> NoReturn:
        """The engine is out of reach: leave the jobs running, a resumed sweep re-attaches to them."""
        running = sorted(self.scheduler.in_flight) if self.runner.asynchronous else []
        left = f" Trials {running} were left running; a resumed sweep re-attaches to them." if running else ""
        log.error("%s.%s %s", exc, left, self.continue_hint)
        raise SweepAbortedError(f"{exc}.{left} {self.continue_hint}") from None

    def journal_lost(self, exc: JournalLostError) -> NoReturn:
        """Nothing can be recorded any more: cancel the trials (a resumed sweep re-runs them)."""
        running = sorted(self.scheduler.in_flight)
        self.runner.cancel_all()
        self.scheduler.in_flight.clear()
        what = f" Running trials {running} were cancelled." if running else ""
        log.error("%s.%s %s", exc, what, self.continue_hint)
        raise SweepAbortedError(f"{exc}.{what} {self.continue_hint}") from None

    def failed_on(self, exc: Exception) -> NoReturn:
        """Anything else (sbatch refusing a job, an engine error): stop as on Ctrl-C, and say how to go on."""
        what = self.apply_interrupt_policy("cancelled: the sweep stopped on an error")
        error = redact(describe_error(exc), *self.tokens)
        log.error("The sweep stopped on %s. %s. %s", error, what, self.continue_hint)
        raise SweepAbortedError(f"the sweep stopped on {error}. {what}. {self.continue_hint}") from exc

    def too_many_failures(self, outcome: JobOutcome) -> NoReturn:
        cancelled = self.stop_running("cancelled: the sweep stopped after too many failures")
        detail = outcome.traceback or outcome.reason or ""
        message = (
            f"max_failure_rate={self.settings.max_failure_rate} exceeded: {self.scheduler.failed} of "
            f"{self.scheduler.finished} "
            f"trials failed (the rate counts at least 5 trials). Last failure, trial #{outcome.number}:\n{detail}"
        )
        if cancelled:
            message += f"\nCancelled running trials {cancelled}."
        message += f"\n{self.continue_hint}"
        raise SweepAbortedError(message) from outcome.error

    # ------------------------------------------------------------------ the running trials

    def apply_interrupt_policy(self, reason: str) -> str:
        """Cancel or leave the running trials (``on_interrupt``); say which."""
        if self.settings.on_interrupt == "detach" and self.runner.asynchronous:
            running = sorted(self.scheduler.in_flight)
            if not running:
                return "No trial was running"
            return f"Trials {running} were left running (on_interrupt: detach); a resumed sweep re-attaches to them"
        cancelled = self.stop_running(reason)
        return "Running trials were cancelled" + (f": {cancelled}" if cancelled else "")

    def stop_running(self, reason: str) -> list[int]:
        """Mark the running trials abandoned (a resumed sweep replaces them), then cancel them.

        Marked first, in one transaction, so that a second Ctrl-C or a kill during the
        cancellation cannot turn them into failed observations; signals wait meanwhile.
        """
        if not self.scheduler.in_flight:
            return []
        with signals_ignored():
            self.journal.abandon_in_flight(sorted(self.scheduler.in_flight), reason)
            cancelled = self.runner.cancel_all()
            self.scheduler.in_flight.clear()
        return cancelled
