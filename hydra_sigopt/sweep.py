"""The sweep loop: suggest, record, run, record, observe, until the budget is spent.

Order of effects (what makes a kill at any instant safe): a trial is written to the journal
before its job starts; its job id right after submission; its result before the observation is
posted; the observation's id after. On restart the journal says exactly what is left to do.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from hydra_sigopt import __version__, sweepdir
from hydra_sigopt.backends import Backend, PastObservation, Suggestion
from hydra_sigopt.continuation import continue_command
from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.errors import BackendUnavailableError, JournalError, SweepAbortedError
from hydra_sigopt.experiment import ExperimentDefinition, describe_identity_change
from hydra_sigopt.journal import (
    FAILED,
    FINISHED_STATES,
    PENDING,
    RUNNING,
    IllegalTransition,
    Journal,
    JournalLostError,
    SweepLock,
    Trial,
    journal_path,
)
from hydra_sigopt.metrics import InvalidResult, MetricValue, meets_constraints, parse_result
from hydra_sigopt.observations import observation_metadata, suggestions_in_use, sweep_id
from hydra_sigopt.progress import Progress
from hydra_sigopt.reports import write_reports
from hydra_sigopt.runners import (
    MAX_REASON_CHARS,
    MAX_TRACEBACK_CHARS,
    JobOutcome,
    TrialRunner,
    describe_error,
    shorten,
)
from hydra_sigopt.scheduler import (
    Ask,
    AwaitPrefetch,
    Command,
    Ended,
    Event,
    Finish,
    KeepWarm,
    MarkRunning,
    Post,
    Prefetch,
    Record,
    Recorded,
    Scheduler,
    StartTrial,
    StopForFailures,
    Submitted,
    SuggestionReady,
    Wait,
)
from hydra_sigopt.secrets import redact, tokens_withheld
from hydra_sigopt.settings import SweepSettings

log = logging.getLogger("hydra_sigopt")

#: How long a stopping sweep waits for a suggestion request under way, so that its suggestion is not left open.
PREFETCH_GRACE_S = 30.0


class _Recorded(NamedTuple):
    """A finished trial, journaled, whose observation is still to be posted."""

    outcome: JobOutcome
    suggestion: Suggestion
    values: tuple[MetricValue, ...]
    failed: bool


class Sweep:
    """One sweep over a sweep dir; :meth:`run` creates or resumes it and runs it to the budget."""

    def __init__(
        self,
        settings: SweepSettings,
        definition: ExperimentDefinition,
        sweep_dir: Path,
        runner: TrialRunner,
        backend: Backend,
        command: Mapping[str, Any] | None = None,
        on_locked: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.definition = definition
        self.sweep_dir = Path(sweep_dir)
        self.runner = runner
        self.backend = backend
        self.command = dict(command or {})
        self.on_locked = on_locked
        self.budget = definition.observation_budget
        self.bandwidth = definition.parallel_bandwidth
        self.journal: Journal | None = None
        # The single owner of the trials in flight, the budget and the order of effects.
        self.scheduler = Scheduler(self.budget, self.bandwidth, runner.asynchronous, settings.failure_rate_exceeded)
        self._ended: dict[int, JobOutcome] = {}  # outcomes of the last wait, until journaled
        self._unposted: dict[int, _Recorded] = {}  # journaled results, until posted
        self._last_failure: JobOutcome | None = None
        self._prefetch: Future[Suggestion] | None = None
        self._pool: ThreadPoolExecutor | None = None
        #: Tokens to mask in whatever the sweep writes or logs.
        self._tokens: tuple[str, ...] = ()
        primary = definition.optimized_metrics[0] if len(definition.optimized_metrics) == 1 else None
        self.progress = Progress(self.budget, primary, settings.progress_interval)

    # ------------------------------------------------------------------ entry point

    def run(self) -> dict[str, Any]:
        """Run the sweep; return the content of ``optimization_results.yaml``."""
        # The lock comes first: two sweepers starting at once must not both create a journal, nor
        # two server experiments.
        created_dir = sweepdir.missing_ancestor(self.sweep_dir)
        lock = SweepLock(self.sweep_dir)
        created_lock = not lock.path.exists()
        lock.acquire()
        try:
            journal = self._open_journal()
        except BaseException:
            # Refused (a token, a changed definition, earlier results): leave the folder as it was.
            lock.release()
            if created_lock and not journal_path(self.sweep_dir).exists():
                lock.path.unlink(missing_ok=True)
                sweepdir.remove_created(self.sweep_dir, created_dir)
            raise
        try:
            with tokens_withheld(also=_tokens_of(self.backend)) as tokens:  # the backend has its token already
                self._tokens = tuple(tokens)
                return self._run_locked(journal)
        finally:
            lock.release()

    def _run_locked(self, journal: Journal) -> dict[str, Any]:
        self.journal = journal
        doc: dict[str, Any] = {}
        if self.on_locked is not None:
            self.on_locked()
        previous_handler = _handle_sigterm_as_interrupt()
        engine_reachable = True
        try:
            self.backend.sweep_id = sweep_id(journal)
            self._start_or_resume(journal)
            log.info(
                "SigOpt sweep '%s': backend %s (experiment %s), budget %d, parallel_bandwidth %d, scheduler %s",
                self.definition.name,
                self.backend.name,
                self.backend.experiment_id,
                self.budget,
                self.bandwidth,
                self.runner.describe(),
            )
            log.info("Sweep dir: %s", self.sweep_dir)
            for line in self.definition.space.describe():
                log.info("  %s", line)
            self._loop()
            journal.set_meta(
                engine_observation_count=self.backend.observation_count(),
                engine_best=self.backend.best_assignments(),
            )
        except KeyboardInterrupt:
            _ignore_further_ctrl_c()
            self._interrupted()
        except BackendUnavailableError as exc:
            # The engine is out of reach: leave the jobs running, a resumed sweep re-attaches to them.
            engine_reachable = False
            running = sorted(self.scheduler.in_flight) if self.runner.asynchronous else []
            left = f" Trials {running} were left running; a resumed sweep re-attaches to them." if running else ""
            log.error("%s.%s %s", exc, left, self._continue_hint())
            raise SweepAbortedError(f"{exc}.{left} {self._continue_hint()}") from None
        except SweepAbortedError:
            raise
        except JournalLostError as exc:
            # Nothing can be recorded any more: cancel the trials (a resumed sweep re-runs them).
            running = sorted(self.scheduler.in_flight)
            self.runner.cancel_all()
            self.scheduler.in_flight.clear()
            what = f" Running trials {running} were cancelled." if running else ""
            log.error("%s.%s %s", exc, what, self._continue_hint())
            raise SweepAbortedError(f"{exc}.{what} {self._continue_hint()}") from None
        except Exception as exc:
            # Anything else (sbatch refusing a job, an engine error): stop as on Ctrl-C, and say how to go on.
            what = self._apply_interrupt_policy("cancelled: the sweep stopped on an error")
            error = redact(describe_error(exc), *self._tokens)
            log.error("The sweep stopped on %s. %s. %s", error, what, self._continue_hint())
            raise SweepAbortedError(f"the sweep stopped on {error}. {what}. {self._continue_hint()}") from exc
        finally:
            _restore_sigterm(previous_handler)
            self.runner.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            if not journal.lost:
                if engine_reachable:
                    self._release_unused_suggestions(journal)
                doc = write_reports(self.sweep_dir, journal.meta(), journal.trials())
            journal.close()
            self.backend.close()
        self._log_best(doc)
        return doc

    def _release_unused_suggestions(self, journal: Journal) -> None:
        """Leave no open suggestion the journal does not own: a SigOpt server counts it as work in progress.

        Those of trials cancelled on Ctrl-C, a prefetched one never used, those a timed-out request
        made on the server anyway. Best effort: a resumed sweep does it again.
        """
        if self._prefetch is not None:
            wait_for([self._prefetch], timeout=PREFETCH_GRACE_S)  # it may be creating one right now
        try:
            self.backend.reconcile(suggestions_in_use(journal.trials()))
        except Exception as exc:
            log.warning("The sweep's unused open suggestions were not deleted (%s); a resumed sweep does it", exc)

    def _open_journal(self) -> Journal:
        """The sweep dir's journal: resumed if it exists, else created."""
        if journal_path(self.sweep_dir).exists():
            journal = Journal.open(self.sweep_dir)
            stored = journal.meta()
            new = self.definition.identity()
            if stored.get("fingerprint") != self.definition.fingerprint():
                journal.close()
                changes = describe_identity_change(stored.get("identity", {}), new)
                raise JournalError(
                    f"the sweep in {self.sweep_dir} was started with a different experiment definition: "
                    + "; ".join(changes or ["(definition differs)"])
                    + ". To start a new sweep instead, use another hydra.sweep.dir (Hydra's default makes a "
                    "new one per run); to continue this one, run it with its original search space and metrics."
                )
            if stored.get("backend") != self.settings.backend:
                journal.close()
                raise JournalError(
                    f"the sweep in {self.sweep_dir} uses backend {stored.get('backend')!r}, not "
                    f"{self.settings.backend!r}; set hydra.sweeper.backend={stored.get('backend')} to continue it"
                )
            return journal
        sweepdir.refuse_earlier_results(self.sweep_dir)
        # A new sweep: the experiment before the journal, so that a refused token or an unknown
        # experiment id leaves no half-made sweep (run() removes the folder it made).
        experiment_id = self.backend.experiment_id or self.backend.start(self.definition)
        return Journal.create(
            self.sweep_dir,
            {
                "experiment_id": experiment_id,
                "name": self.definition.name,
                "backend": self.settings.backend,
                "identity": self.definition.identity(),
                "fingerprint": self.definition.fingerprint(),
                "observation_budget": self.budget,
                "version": __version__,
                "host": socket.gethostname(),
                "command": self.command,
            },
        )

    # ------------------------------------------------------------------ start / resume

    def _start_or_resume(self, journal: Journal) -> None:
        trials = journal.trials()
        meta = journal.meta()
        previous_launcher = meta.get("launcher")
        experiment_id = self.backend.experiment_id or self.backend.start(
            self.definition, resume_id=meta.get("experiment_id")
        )
        journal.set_meta(
            experiment_id=experiment_id,
            observation_budget=self.budget,
            launcher=self.runner.kind,
            submitit_folder=self.runner.submitit_folder,
            api=self.backend.public_settings(),
        )
        self.scheduler.next_number = journal.next_number()
        if not trials:
            return
        log.info("Resuming the sweep in %s (%d trials in its journal)", self.sweep_dir, len(trials))
        observed = [t for t in trials if t.observed]
        in_flight = [t.suggestion_id for t in trials if t.state in (PENDING, RUNNING) and t.suggestion_id]
        self.backend.restore([_past(t) for t in observed], open_suggestion_ids=in_flight)
        for t in observed:
            self._count_finished(t.number, t.state == FAILED, t.values)
            self.scheduler.count_finished(t.state == FAILED)
        for t in trials:
            if t.state in FINISHED_STATES and not t.observed:
                log.info("Trial #%d finished before the restart; posting its observation now", t.number)
                self._observe(
                    t.number, Suggestion(t.suggestion_id or str(t.number), t.assignments), t.values, t.state == FAILED
                )
                self._count_finished(t.number, t.state == FAILED, t.values)
                self.scheduler.count_finished(t.state == FAILED)
        for t in trials:
            if t.state not in (PENDING, RUNNING):
                continue
            suggestion = Suggestion(t.suggestion_id or str(t.number), t.assignments)
            same_launcher = previous_launcher == self.runner.kind
            if t.job_id and same_launcher and self.runner.reattach(t.number, t.job_id):
                log.info("Trial #%d: re-attached to job %s, still running or finished since", t.number, t.job_id)
                self.scheduler.adopt(t.number, suggestion)
                continue
            if t.state == PENDING:
                why = "its job never started (the sweeper stopped before submitting it)"
            elif t.job_id and same_launcher and self.runner.submitit_folder is not None:
                why = f"its job {t.job_id} is gone without a result (ended, killed, or unknown to {self.runner.kind})"
            else:
                why = f"it ran inside the stopped sweeper process ({self.runner.describe()} cannot re-attach)"
            log.info("Trial #%d is re-run under a new job number: %s", t.number, why)
            journal.mark_abandoned(t.number, f"re-run after restart: {why}")
            self.scheduler.reruns.append((t.number, suggestion))  # a SigOpt server keeps it open for it
        self.progress.done_at_start = self.progress.done

    # ------------------------------------------------------------------ the loop: carrying out the scheduler's commands

    def _loop(self) -> None:
        """Carry out the scheduler's commands in order, reporting what happened, until it says Finish."""
        queue: deque[Command] = deque(self.scheduler.begin())
        while True:
            if not queue:
                queue.extend(self.scheduler.idle())
            command = queue.popleft()
            if isinstance(command, Finish):
                break
            try:
                events = self._carry_out(command)
            except Exception:
                self._post_before_stopping()
                raise
            for event in events:
                queue.extendleft(reversed(self.scheduler.on(event)))
        self.progress.set_running(0)
        self.progress.maybe_log(force=True)

    def _carry_out(self, command: Command) -> list[Event]:
        """One command's effects; the events they produced."""
        if isinstance(command, Ask):
            return [SuggestionReady(self._checked(self.backend.suggest(list(command.pending))))]
        if isinstance(command, Prefetch):
            self._start_prefetch(command.pending)
        elif isinstance(command, AwaitPrefetch):
            return [SuggestionReady(self._checked(self._take_prefetch()))]
        elif isinstance(command, StartTrial):
            return [self._start_trial(command)]
        elif isinstance(command, MarkRunning):
            assert self.journal is not None
            self.journal.mark_running(list(command.numbers))
        elif isinstance(command, KeepWarm):
            self.runner.keep_warm(command.trials_left)
        elif isinstance(command, Wait):
            return self._wait()
        elif isinstance(command, Record):
            return [*self._prefetch_done(), self._record_all(command.numbers)]
        elif isinstance(command, Post):
            self._post(command.numbers)
        elif isinstance(command, StopForFailures):
            assert self._last_failure is not None and self._last_failure.number == command.number
            self._abort_for_failures(self._last_failure)
        return []

    def _start_trial(self, command: StartTrial) -> Submitted:
        """Journal the trial, then start its job; journal its job id as soon as it is known."""
        assert self.journal is not None
        number, suggestion = command.number, command.suggestion
        overrides = self.definition.space.overrides_for(suggestion.assignments)
        self.journal.add_trial(number, suggestion.id, suggestion.assignments, overrides, rerun_of=command.rerun_of)
        crash_point("after_record_trial")
        if not self.runner.logs_each_trial:
            swept = overrides[len(self.definition.space.fixed_overrides) :]
            log.info("\t#%d : %s", number, " ".join(swept))
        job_id = self.runner.start(number, overrides)
        crash_point("after_submit")
        if job_id is not None:
            # Known at once (submitit): journaled now, so a restart can find the job.
            self.journal.mark_running([number], [job_id])
        return Submitted(number, job_id)

    def _wait(self) -> list[Event]:
        """Wait for trials to end (at most until the next progress line); report them and any suggestion ready."""
        self.progress.set_running(len(self.scheduler.in_flight))
        self.progress.maybe_log()
        outcomes = self.runner.wait(timeout=min(self.settings.progress_interval, 5.0))
        self._ended = {o.number: o for o in outcomes}
        return [*self._prefetch_done(), Ended(tuple(self._ended))]

    def _record_all(self, numbers: tuple[int, ...]) -> Recorded:
        """Journal the results of ended trials (before any is posted)."""
        failed: dict[int, bool] = {}
        dropped: list[int] = []
        for number in numbers:
            recorded = self._record(self._ended.pop(number))
            if recorded is None:
                dropped.append(number)
                continue
            self._unposted[number] = recorded
            failed[number] = recorded.failed
        return Recorded(failed, tuple(dropped))

    def _post(self, numbers: tuple[int, ...]) -> None:
        for number in numbers:
            outcome, suggestion, values, failed = self._unposted[number]
            self._observe(number, suggestion, values, failed)
            del self._unposted[number]
            if failed:
                self._last_failure = outcome  # for the message, should the sweep stop on it
        self.progress.set_running(len(self.runner.running()))
        self.progress.maybe_log()

    def _checked(self, suggestion: Suggestion) -> Suggestion:
        """A suggestion inside the declared space, with exact grid values for the app, the journal and the engine."""
        self._check_suggestion(suggestion)
        return Suggestion(suggestion.id, self.definition.space.snap(suggestion.assignments))

    def _start_prefetch(self, pending: Sequence[Mapping[str, Any]]) -> None:
        """Compute the next suggestion while jobs run, so a freed slot is refilled at once."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigopt-suggest")
        self._prefetch = self._pool.submit(self.backend.suggest, list(pending))

    def _take_prefetch(self) -> Suggestion:
        assert self._prefetch is not None
        future, self._prefetch = self._prefetch, None
        return future.result()

    def _prefetch_done(self) -> list[Event]:
        """The prefetched suggestion, once computed (reported once)."""
        if self._prefetch is None or not self._prefetch.done():
            return []
        return [SuggestionReady(self._checked(self._take_prefetch()))]

    def _check_suggestion(self, suggestion: Suggestion) -> None:
        try:
            self.definition.space.check(suggestion.assignments)
        except ValueError as exc:
            raise SweepAbortedError(
                f"the SigOpt engine suggested assignments outside the declared space ({exc}); "
                f"suggestion {suggestion.id}: {dict(suggestion.assignments)}"
            ) from None

    # ------------------------------------------------------------------ results

    def _record(self, outcome: JobOutcome) -> _Recorded | None:
        """Journal a finished trial and count it; None if another process abandoned it first.

        The observation is posted by the caller (after refilling the slot, in async mode).
        """
        assert self.journal is not None
        running = self.scheduler.in_flight[outcome.number]
        values, outcome = self._read_values(outcome)
        failed = outcome.reason is not None
        try:
            self.journal.record_result(
                outcome.number,
                values=values,
                failure_reason=outcome.reason,
                failure_traceback=outcome.traceback,
                started_at=outcome.started_at,
                ended_at=outcome.ended_at,
                host=outcome.host,
                job_id=outcome.job_id,
            )
        except IllegalTransition as exc:
            # A lost race, deliberately dropped: `hydra-sigopt kill` abandoned the trial while its
            # result was on the way, and a resumed sweep runs that suggestion again.
            log.warning(
                "Trial #%d's result arrived after the trial was abandoned (%s); it is dropped", outcome.number, exc
            )
            return None
        crash_point("after_result")
        if failed:
            log.warning("Trial #%d failed: %s", outcome.number, outcome.reason)
        self._count_finished(outcome.number, failed, values)
        return _Recorded(outcome, running.suggestion, values, failed)

    def _read_values(self, outcome: JobOutcome) -> tuple[tuple[MetricValue, ...], JobOutcome]:
        """The metric values of a trial that returned, or its outcome as a failure, fit to be written.

        Anything raised while reading the return value (a tensor's ``item()`` after a device
        error) is that trial's failure: raised here it would stop the sweep, and every resume
        would run the same point into the same crash.
        """
        values: tuple[MetricValue, ...] = ()
        if outcome.ok:
            try:
                values = parse_result(outcome.value, self.definition.metrics)
            except InvalidResult as exc:
                outcome = dataclasses.replace(outcome, reason=str(exc), traceback=None)
            except Exception as exc:
                reason = f"reading the returned value raised {describe_error(exc)}"
                outcome = dataclasses.replace(outcome, reason=reason, traceback=traceback.format_exc())
        return values, self._fit_to_write(outcome)

    def _fit_to_write(self, outcome: JobOutcome) -> JobOutcome:
        """The failure's reason and traceback without tokens, cut to a size the journal and log can hold."""
        if outcome.reason is None:
            return outcome
        reason = shorten(redact(outcome.reason, *self._tokens), MAX_REASON_CHARS, outcome.full_log)
        tb = outcome.traceback and shorten(
            redact(outcome.traceback, *self._tokens), MAX_TRACEBACK_CHARS, outcome.full_log
        )
        return dataclasses.replace(outcome, reason=reason, traceback=tb)

    def _observe(self, number: int, suggestion: Suggestion, values: tuple[MetricValue, ...], failed: bool) -> None:
        """Post a journaled result, with metadata from its journal row (the same after a restart)."""
        assert self.journal is not None
        metadata = observation_metadata(self.journal.trial(number), self.runner.kind)
        observation_id = self.backend.observe(suggestion, values=values, failed=failed, metadata=metadata)
        crash_point("after_observe")
        self.journal.mark_observed(number, observation_id)

    def _post_before_stopping(self) -> None:
        """Post journaled results while the sweep stops on another error, which must not be masked."""
        for number, (_, suggestion, values, failed) in sorted(self._unposted.items()):
            try:
                self._observe(number, suggestion, values, failed)
            except Exception as exc:  # the journal has the result: a resumed sweep posts it
                log.warning("Trial #%d's result is not posted yet (%s); a resumed sweep posts it", number, exc)
        self._unposted.clear()

    def _count_finished(self, number: int, failed: bool, values: tuple[MetricValue, ...]) -> None:
        """Progress counts a finished trial (the scheduler counts it for the budget and failure policy)."""
        metric = self.progress.metric
        value = None
        if not failed and metric is not None:
            value = next((v.value for v in values if v.name == metric.name), None)
            if not meets_constraints(values, self.definition.metrics):
                value = None
        self.progress.trial_finished(number, value, failed)

    def _abort_for_failures(self, outcome: JobOutcome) -> None:
        cancelled = self._stop_running("cancelled: the sweep stopped after too many failures")
        detail = outcome.traceback or outcome.reason or ""
        message = (
            f"max_failure_rate={self.settings.max_failure_rate} exceeded: {self.scheduler.failed} of "
            f"{self.scheduler.finished} "
            f"trials failed (the rate counts at least 5 trials). Last failure, trial #{outcome.number}:\n{detail}"
        )
        if cancelled:
            message += f"\nCancelled running trials {cancelled}."
        message += f"\n{self._continue_hint()}"
        raise SweepAbortedError(message) from outcome.error

    # ------------------------------------------------------------------ stopping

    def _stop_running(self, reason: str) -> list[int]:
        """Mark the running trials to be re-run by a resumed sweep, then cancel them.

        Marked first, in one transaction, so that a second Ctrl-C or a kill during the
        cancellation cannot turn them into failed observations; signals wait meanwhile.
        """
        assert self.journal is not None
        if not self.scheduler.in_flight:
            return []
        with _signals_ignored():
            self.journal.abandon_in_flight(sorted(self.scheduler.in_flight), reason)
            cancelled = self.runner.cancel_all()
            self.scheduler.in_flight.clear()
        return cancelled

    def _apply_interrupt_policy(self, reason: str) -> str:
        """Cancel or leave the running trials (``on_interrupt``); say which."""
        if self.settings.on_interrupt == "detach" and self.runner.asynchronous:
            running = sorted(self.scheduler.in_flight)
            if not running:
                return "No trial was running"
            return f"Trials {running} were left running (on_interrupt: detach); a resumed sweep re-attaches to them"
        cancelled = self._stop_running(reason)
        return "Running trials were cancelled" + (f": {cancelled}" if cancelled else "")

    def _interrupted(self) -> None:
        what = self._apply_interrupt_policy("cancelled: the sweeper was interrupted")
        log.error("Interrupted. %s. %s", what, self._continue_hint())
        raise SweepAbortedError(f"Interrupted. {what}. {self._continue_hint()}")

    def _continue_hint(self) -> str:
        return f"Continue this sweep with: {continue_command(self.command, self.sweep_dir)}"

    def _log_best(self, doc: Mapping[str, Any]) -> None:
        """The last lines of the log: where the results are, then the best overrides to paste."""
        log.info("Results: %s", self.sweep_dir / "optimization_results.yaml")
        if doc.get("best_overrides") is not None:
            log.info("Best trial #%s: %s", doc.get("best_trial"), doc.get("best_values"))
            log.info("Best overrides: %s", doc["best_overrides"])
        elif doc.get("solutions"):
            log.info("Pareto-optimal trials (%d), overrides:", len(doc["solutions"]))
            for s in doc["solutions"]:
                log.info("  #%s %s: %s", s["trial"], s["values"], s["overrides"])
        else:
            log.info("No trial completed; see %s", self.sweep_dir / "trials.csv")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _ignore_further_ctrl_c() -> None:
    """The sweeper is stopping: another Ctrl-C must not break the shutdown or print a traceback."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _handle_sigterm_as_interrupt() -> Any:
    """Treat SIGTERM (``hydra-sigopt kill``, Slurm ending a sweeper job) like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for a critical section (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _tokens_of(backend: Backend) -> tuple[str, ...]:
    """The token a backend uses (``backend: api``'s may come from the sigopt client's config file)."""
    credentials = getattr(backend, "credentials", None)
    return (credentials.token,) if credentials is not None and credentials.token else ()


def _past(trial: Trial) -> PastObservation:
    return PastObservation(
        assignments=trial.assignments,
        values=trial.values,
        failed=trial.state == FAILED,
        suggestion_id=trial.suggestion_id,
    )


__all__ = ["Sweep"]
