"""How a sweep stops before its budget is spent: what happens to the running trials, and what the user reads.

Every stop ends in :class:`SweepAbortedError` with a message that says what became of the running
trials (cancelled, or left running for a resumed sweep to re-attach) and how to continue.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.errors import (
    BackendUnavailableError,
    EngineLostError,
    JournalError,
    SweepAbortedError,
    full_error_requested,
)
from hydra_sigopt.journal import KILL_MARKER_NAME, STOPPED, JournalFullError, JournalLostError
from hydra_sigopt.reports import write_atomic
from hydra_sigopt.results import Results
from hydra_sigopt.runners import JobOutcome, TrialRunner, describe_error, failure_in_one_line
from hydra_sigopt.scheduler import Scheduler
from hydra_sigopt.secrets import redact
from hydra_sigopt.settings import SweepSettings
from hydra_sigopt.signals import signals_ignored
from hydra_sigopt.unsubmitted import set_aside_unsubmitted

log = logging.getLogger("hydra_sigopt")


def request_kill(sweep_dir: Path, pid: int) -> None:
    """Say to the sweeper ``pid`` that the signal it is about to get is ``hydra-sigopt kill``'s.

    A kill cancels the running trials whatever ``on_interrupt`` says: with ``detach`` the sweeper
    said "left running; a resumed sweep re-attaches to them", then the kill cancelled them. A file,
    not the journal: no other process writes the journal while its sweeper lives.
    """
    write_atomic(sweep_dir / KILL_MARKER_NAME, f"{pid}\n")


def kill_requested(sweep_dir: Path) -> bool:
    """Whether ``hydra-sigopt kill`` stops this process's sweep (a marker naming another pid is stale)."""
    try:
        return (sweep_dir / KILL_MARKER_NAME).read_text().strip() == str(os.getpid())
    except (OSError, UnicodeDecodeError):
        return False


def forget_kill(sweep_dir: Path) -> None:
    (sweep_dir / KILL_MARKER_NAME).unlink(missing_ok=True)


def interrupted_while_starting(continue_command: str) -> SweepAbortedError:
    """A Ctrl-C or SIGTERM while the sweep starts, before its loop: this run started no trial, and the
    journal (if the sweep has one yet) is as the last run left it."""
    started = "Interrupted while the sweep was starting; it started no trial"
    message = f"{started}. Continue this sweep with: {continue_command}"
    log.error("%s", message)
    return SweepAbortedError(message)


class Stopping:
    """The stop policy (``on_interrupt``, ``max_failure_rate``) carried out on the running trials."""

    def __init__(
        self,
        settings: SweepSettings,
        results: Results,
        runner: TrialRunner,
        scheduler: Scheduler,
        continue_command: str,
        journal_last_reports: Callable[[Iterable[int]], None] = lambda numbers: None,
    ) -> None:
        self.settings = settings
        self.results = results
        self.journal = results.journal
        self.runner = runner
        self.scheduler = scheduler
        #: Journals what trials reported before their jobs ended (their step in trials.csv).
        self.journal_last_reports = journal_last_reports
        #: The shell command that resumes the sweep (see :attr:`continue_hint`).
        self.continue_command = continue_command
        self.tokens = results.tokens
        #: Trials whose results were recorded while stopping (their jobs had ended), and whether each
        #: failed (else it finished: completed, or stopped early and then ended).
        self.kept: dict[int, bool] = {}
        #: Trials whose cancel failed, with why: their jobs may run on (they stay running in the journal).
        self.not_cancelled: dict[int, str] = {}
        #: Trials stopped early whose jobs still ran (saving a checkpoint, say) and were cancelled.
        self.stopped_jobs_cancelled: list[int] = []
        #: When the Ctrl-C or SIGTERM that stops the sweep came (None: not stopped by one).
        self.interrupted_at: float | None = None
        #: The journal could not be written (lost, its disk full): the wrap-up writes nothing more.
        self.journal_failed = False
        #: The stop is a SIGHUP's: the sweeper's terminal or SSH session was lost, not a stop the user asked for.
        self.hung_up = False

    @property
    def continue_hint(self) -> str:
        """The last words of every stop: how to continue, or that nothing is left to run."""
        if self.scheduler.spent and not self.scheduler.in_flight:
            return (
                "Every trial of the budget has run; to run more, raise hydra.sweeper.observation_budget in: "
                f"{self.continue_command}"
            )
        return f"Continue this sweep with: {self.continue_command}"

    # ------------------------------------------------------------------ the ways a sweep stops

    def interrupted(self, at: float | None = None, signum: int | None = None) -> NoReturn:
        """Ctrl-C, SIGTERM (``hydra-sigopt kill``) or SIGHUP (``signum``), which came ``at`` (None: now)."""
        self.interrupted_at = time.time() if at is None else at
        self.hung_up = signum == signal.SIGHUP
        crash_point("while_stopping")  # where Slurm's second SIGTERM (the driver script's forward) lands
        with self._unless_the_journal_fails("Interrupted"):
            what = self.apply_interrupt_policy("cancelled: the sweeper was interrupted")
            # What stop_running did not post: it posts only with trials running to cancel (none ran, or
            # detached); else results recorded as the local engine computed went unsaid.
            self.results.post_before_stopping()
        log.error("Interrupted. %s. %s", what, self.continue_hint)
        # from None: where the Ctrl-C landed (an import, a sleep) is no news, and Hydra printed it as a traceback
        raise SweepAbortedError(f"Interrupted. {what}. {self.continue_hint}") from None

    def engine_unreachable(self, exc: BackendUnavailableError) -> NoReturn:
        """The engine is out of reach: leave the jobs running, a resumed sweep re-attaches to them."""
        unsubmitted = set_aside_unsubmitted(self.runner, self.scheduler, self.journal)
        running = sorted(self.scheduler.in_flight) if self.runner.asynchronous else []
        left = f" {unsubmitted}." if unsubmitted else ""
        left += f" Trials {running} were left running; a resumed sweep re-attaches to them." if running else ""
        log.error("%s.%s %s", exc, left, self.continue_hint)
        raise SweepAbortedError(f"{exc}.{left} {self.continue_hint}") from None

    def journal_unwritable(self, exc: JournalError, cause: str = "") -> NoReturn:
        """Nothing can be recorded any more (the journal lost, its disk full): cancel the trials (a
        resumed sweep re-runs them). ``cause``: what was stopping the sweep when the journal failed."""
        self.journal_failed = True
        report = self.runner.cancel_all()
        self.scheduler.in_flight.clear()
        what = f" Running trials {report.cancelled} were cancelled." if report.cancelled else ""
        if report.failed:
            what += f" The cancel of trials {sorted(report.failed)} failed: their jobs may still run."
        # A journal lost with the sweep's state: no command continues it ("cannot be resumed" says so).
        hint = (
            self.continue_hint if getattr(exc, "resumable", True) else "Start a new sweep in another hydra.sweep.dir."
        )
        if moved_to := getattr(exc, "moved_to", None):  # the command's hydra.sweep.dir is the old place
            hint = f"Continue it where it is now with: hydra-sigopt continue {shlex.quote(str(moved_to))} --run"
        said = f"{cause}; {exc}" if cause else str(exc)
        log.error("%s.%s %s", said, what, hint)
        raise SweepAbortedError(f"{said}.{what} {hint}") from None

    @contextmanager
    def _unless_the_journal_fails(self, cause: str) -> Iterator[None]:
        """A stop whose own journal writes fail (a Ctrl-C or an error while the disk is full) stops as
        on the journal's failure: its trials cancelled all the same, one line, and how to continue;
        else the journal's error escaped the stop, leaving the jobs running and no hint."""
        try:
            yield
        except (JournalLostError, JournalFullError) as exc:
            self.journal_unwritable(exc, cause)

    def failed_on(self, exc: Exception) -> NoReturn:
        """Anything else (sbatch refusing a job, an engine error): stop as on Ctrl-C, and say how to go on."""
        error = redact(describe_error(exc), *self.tokens)
        with self._unless_the_journal_fails(f"The sweep stopped on {error}"):
            what = self.apply_interrupt_policy("cancelled: the sweep stopped on an error", said=error)
        # Its experiment gone, the sweep cannot be continued: what the journal keeps, and what to do.
        hint = self.continue_hint
        if isinstance(exc, EngineLostError):
            advice = exc.advice(self.journal.path.parent)
            hint = f"{advice[0].upper()}{advice[1:]}."
        log.error("The sweep stopped on %s. %s. %s", error, what, hint)
        raise SweepAbortedError(f"the sweep stopped on {error}. {what}. {hint}") from exc

    def too_many_failures(self, outcome: JobOutcome) -> NoReturn:
        """One line, as every stop; the trial's own traceback is in its file (and added on HYDRA_FULL_ERROR=1)."""
        unsubmitted = set_aside_unsubmitted(self.runner, self.scheduler, self.journal)
        self.results.log_left_unposted = False  # its message below says them: not a line before it too
        cancelled = self.stop_running("cancelled: the sweep stopped after too many failures")
        self.results.post_before_stopping()  # what stop_running did not post (with no trial running)
        said = [
            f"max_failure_rate={self.settings.max_failure_rate} exceeded: {self.scheduler.failed} of "
            f"{self.scheduler.finished} trials failed (the rate counts at least 5 trials). "
            f"Last failure, trial #{outcome.number}: {failure_in_one_line(outcome)}."
        ]
        if unsubmitted:
            said.append(f"{unsubmitted}.")
        if self.kept:
            said.append(f"{self._kept_said()}.")
        if self.results.left_unposted:  # true of the engine: the local one was only busy
            said.append(f"{self.results.left_unposted_said()}.")
        if cancelled:
            said.append(f"Cancelled running trials {cancelled}.")
        if self.stopped_jobs_cancelled:
            said.append(f"{self._stopped_jobs_said()}.")
        if self.not_cancelled:
            said.append(f"{self._cancel_failed()}.")
        message = " ".join([*said, self.continue_hint])
        if full_error_requested() and outcome.traceback:
            # The task's frames were dropped once their text was kept (see outcome.py): the text is all there is.
            message += f"\nTrial #{outcome.number}'s traceback:\n{outcome.traceback}"
        raise SweepAbortedError(message) from outcome.error

    # ------------------------------------------------------------------ the running trials

    def apply_interrupt_policy(self, reason: str, said: str = "") -> str:
        """Cancel or leave the running trials (``on_interrupt``); say which, and which never started
        (their jobs refused: there is nothing of them to leave or cancel). ``said``: the stop's reason."""
        unsubmitted = set_aside_unsubmitted(self.runner, self.scheduler, self.journal, said)
        if unsubmitted and not self.scheduler.in_flight:
            return unsubmitted  # not "No trial was running", nor "Running trials were cancelled"
        running = self._leave_or_cancel(reason)
        return f"{unsubmitted}. {running}" if unsubmitted else running

    def _leave_or_cancel(self, reason: str) -> str:
        if not self.scheduler.in_flight:  # every slot free (the engine computing the next suggestion)
            return "No trial was running"
        if self._leaves_trials_running():
            running = sorted(self.scheduler.in_flight)
            if self.hung_up:  # local jobs in the terminal's process group got the hang-up too
                return (
                    f"Trials {running} were left running (the sweeper's terminal hung up: SIGHUP); a resumed sweep "
                    "re-attaches to those still running and runs again any the hang-up ended"
                )
            return f"Trials {running} were left running (on_interrupt: detach); a resumed sweep re-attaches to them"
        cancelled = self.stop_running(reason)
        said = [self._kept_said()] if self.kept else []
        if cancelled or not (self.kept or self.not_cancelled or self.stopped_jobs_cancelled):
            said.append("Running trials were cancelled" + (f": {cancelled}" if cancelled else ""))
        if self.stopped_jobs_cancelled:
            said.append(self._stopped_jobs_said())
        if self.not_cancelled:
            said.append(self._cancel_failed())
        return ". ".join(said)

    def _leaves_trials_running(self) -> bool:
        """``on_interrupt: detach``, and a lost terminal whatever it says: a dropped SSH connection is no
        stop the user asked for, and cancelling threw away hours of their Slurm jobs' training (local
        jobs the hang-up reached too end without a result, and the resumed sweep runs them again).
        Never for ``hydra-sigopt kill``, nor for trials run in the sweeper's own process."""
        leave = self.settings.on_interrupt == "detach" or self.hung_up
        return leave and self.runner.asynchronous and not self._killed()

    def _killed(self) -> bool:
        """Whether ``hydra-sigopt kill`` stopped the sweep (it cancels the jobs a detach would leave)."""
        return kill_requested(self.journal.path.parent)

    def _kept_said(self) -> str:
        """The trials that ended as the sweep stopped, failed ones apart: "had finished" alone read as success."""
        numbers = sorted(self.kept)
        failed = [n for n in numbers if self.kept[n]]
        if not failed:
            return f"Trials {numbers} had finished: their results are recorded"
        finished = [n for n in numbers if n not in failed]
        said = [f"{', '.join(f'#{n}' for n in failed)} failed"]
        said += [f"{', '.join(f'#{n}' for n in finished)} finished"] if finished else []
        if len(self.kept) == 1:
            return f"Trial {said[0]}: its result is recorded"
        return f"Trials {'; '.join(said)}: their results are recorded"

    def _stopped_jobs_said(self) -> str:
        """The cancelled jobs of trials stopped early: not running trials (none is run again)."""
        numbers = self.stopped_jobs_cancelled
        whose = f"job of trial #{numbers[0]}" if len(numbers) == 1 else f"jobs of trials {numbers}"
        results = "its result stands" if len(numbers) == 1 else "their results stand"
        return f"The {whose}, stopped early ({results}), {'was' if len(numbers) == 1 else 'were'} cancelled too"

    def _cancel_failed(self) -> str:
        numbers = sorted(self.not_cancelled)
        why = self.not_cancelled[numbers[0]]
        return (
            f"The cancel of trials {numbers} failed ({why}): their jobs may still run; a resumed sweep "
            "re-attaches them, and hydra-sigopt kill tries the cancel again"
        )

    def stop_running(self, reason: str) -> list[int]:
        """Record the trials whose jobs ended; mark the others abandoned (a resumed sweep replaces
        them), then cancel them.

        Marked first, in one transaction, so that a second Ctrl-C or a kill during the
        cancellation cannot turn them into failed observations; signals wait meanwhile.
        """
        if not self.scheduler.in_flight:
            return []
        with signals_ignored():
            self._keep_finished_work()
            if not self.scheduler.in_flight:
                return []
            # Trials stopped early hold their slots until their jobs end: not abandoned, not run again.
            running = set(self.journal.abandon_in_flight(sorted(self.scheduler.in_flight), reason))
            crash_point("before_cancel")
            report = self.runner.cancel_all()
            if failed_running := sorted(running & set(report.failed)):
                self.journal.keep_running(failed_running, reason)
            self.not_cancelled = dict(report.failed)
            stopped = {t.number for t in self.journal.trials([STOPPED])}
            self.stopped_jobs_cancelled = [n for n in report.cancelled if n in stopped]
            self.scheduler.in_flight.clear()
        return [n for n in report.cancelled if n not in stopped]

    def _keep_finished_work(self) -> None:
        """Record and post the results that are there: outcomes not yet journaled, and the jobs that
        ended since the last wait (a result file written while the sweeper was busy is finished work).

        Best effort: whatever stops the sweep (a full disk, an engine out of reach) may stop this
        too, and must not be masked by it; what is journaled and not posted, a resumed sweep posts.
        """
        self.runner.stop_starting()  # a job submitted again now would run unknown to the journal
        try:
            ended = [*self.results.ended.values(), *self._ended_since_last_wait()]
            # When each ended by its own record: the runner saw a batch's trials end with the batch.
            outcomes = [self.results.as_it_ran(o) for o in ended]
            self.results.ended.clear()
            in_flight = [o for o in outcomes if o.number in self.scheduler.in_flight and not self._cut_short(o)]
            self.journal_last_reports([o.number for o in in_flight])  # as the loop's Record does
            recorded = self.results.record_all(in_flight, self.scheduler.in_flight)
            self.scheduler.forget(recorded)
            self.kept = dict(recorded.failed)
        except Exception as exc:
            log.warning("Could not record the results of the trials that had finished: %s", describe_error(exc))
        self.results.post_before_stopping()

    def _cut_short(self, outcome: JobOutcome) -> bool:
        """Whether a trial run in this process ended after the Ctrl-C that stops the sweep: it landed
        in the app, and what the app did then (Lightning's graceful shutdown and sys.exit(1), a loop
        that breaks and returns its value so far) is no result. Such a trial is abandoned, and a
        resumed sweep runs it again, as one whose job was cancelled."""
        if self.interrupted_at is None or not self.runner.runs_trials_here:
            return False
        if outcome.ended_at is not None and outcome.ended_at < self.interrupted_at:
            return False
        log.info(
            "Trial #%d was running in this process when the sweep was interrupted: its result is not kept, and a"
            " resumed sweep replaces it",
            outcome.number,
        )
        return True

    def _ended_since_last_wait(self) -> list[JobOutcome]:
        # A batch runner's wait runs its whole batch: only an asynchronous one answers at once; a
        # batch cut short by the Ctrl-C keeps those of its trials that had ended.
        return self.runner.wait(timeout=0) if self.runner.asynchronous else self.runner.ended_before_interrupt()
