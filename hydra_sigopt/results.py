"""A trial's result: read from its job's outcome, journaled, posted to the engine, counted.

Journal before effect: a result is journaled (``completed`` or ``failed``) before it is posted,
and the observation's id right after; a resumed sweep posts what was journaled and not posted.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from hydra_sigopt.backends import Backend, Suggestion
from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.errors import BackendUnavailableError, EngineLostError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.journal import STOPPED, IllegalTransition, Journal, Trial
from hydra_sigopt.kept_returns import forget_kept
from hydra_sigopt.metrics import InvalidResult, Metric, MetricValue, meets_constraints, parse_result, unread_noise_keys
from hydra_sigopt.observations import observation_metadata
from hydra_sigopt.progress import Progress
from hydra_sigopt.report_files import run_record, trial_folder
from hydra_sigopt.runners import (
    FULL_TRACEBACK_FILE,
    MAX_REASON_CHARS,
    MAX_TRACEBACK_CHARS,
    JobOutcome,
    describe_error,
    failure_in_one_line,
    shorten,
)
from hydra_sigopt.scheduler import Recorded
from hydra_sigopt.secrets import redact
from hydra_sigopt.tasks import cost_of, is_full

log = logging.getLogger("hydra_sigopt")


def left_unposted_said(numbers: list[int], backend: str, out_of_reach: bool) -> str:
    """What a stop says of the results it leaves unposted, true of the engine: the local one runs in
    this process (it was busy, never out of reach; the journal replays every result into a resumed
    sweep's engine), a server may be out of reach or only slow to answer the call under way."""
    if backend == "lite":
        return (
            f"Trials {numbers} are not given to the engine yet (the local engine, in this process, was still"
            " computing when the sweep stopped): nothing is lost, the journal keeps their results and a"
            " resumed sweep gives them to its engine"
        )
    why = "the engine is out of reach" if out_of_reach else "the engine has not answered the call under way"
    return f"Trials {numbers} are not posted yet ({why}); a resumed sweep posts them"


class JournaledResult(NamedTuple):
    """A finished trial, journaled, whose observation is still to be posted."""

    outcome: JobOutcome
    suggestion: Suggestion
    values: tuple[MetricValue, ...]
    failed: bool  # observed as failed
    #: Stopped early by the sweeper: never a failure of the app (max_failure_rate, progress).
    stopped: bool = False


class _HasSuggestion(Protocol):
    @property
    def suggestion(self) -> Suggestion: ...


class Results:
    """Journals the results of ended trials, then posts them, each once."""

    def __init__(
        self,
        journal: Journal,
        backend: Backend,
        definition: ExperimentDefinition,
        progress: Progress,
        tokens: tuple[str, ...] = (),
        runner_kind: str = "",
        trials_root: Path | None = None,
    ) -> None:
        self.journal = journal
        #: Where each trial's task notes when and where it ran (``report_files.RunRecord``).
        self.trials_root = trials_root
        #: Where trials run (``TrialRunner.kind``): a failed local trial's host is the sweeper's.
        self.runner_kind = runner_kind
        self.backend = backend
        self.definition = definition
        self.progress = progress
        #: Tokens to mask in the failure reasons and tracebacks written.
        self.tokens = tokens
        self.ended: dict[int, JobOutcome] = {}  # outcomes of the last wait, until journaled
        self.unposted: dict[int, JournaledResult] = {}  # journaled, until posted
        #: A call under way (a post, the suggestion computed ahead) was not answered when the sweep
        #: stopped (the engine slow, or out of reach): the stop calls the engine no more; a resumed
        #: sweep posts (and finds that post if it landed) and deletes the open suggestions no trial uses.
        self.engine_stalled = False
        #: The results a stop left for a resumed sweep to post (the engine slow or out of reach).
        self.left_unposted: list[int] = []
        #: Whether :meth:`post_before_stopping` logs what it leaves unposted (False: the stop's message says it).
        self.log_left_unposted = True
        self.last_failure: JobOutcome | None = None  # for the message, should the sweep stop on it
        self.noise_keys_warned = False  # once per sweep: every trial of the app returns the same keys

    # ------------------------------------------------------------------ journaling

    def record_ended(self, numbers: Iterable[int], in_flight: Mapping[int, _HasSuggestion]) -> Recorded:
        """Journal the results of these trials of the last wait."""
        return self.record_all([self.ended.pop(n) for n in numbers], in_flight)

    def record_all(self, outcomes: Iterable[JobOutcome], in_flight: Mapping[int, _HasSuggestion]) -> Recorded:
        """Journal the results of ended trials (before any is posted)."""
        failed: dict[int, bool] = {}
        dropped: list[int] = []
        for outcome in outcomes:
            recorded = self.record(outcome, in_flight[outcome.number].suggestion)
            if recorded is None:
                dropped.append(outcome.number)
                continue
            self.unposted[outcome.number] = recorded
            failed[outcome.number] = recorded.failed and not recorded.stopped
            if failed[outcome.number]:  # the one the message names, should the sweep stop on it
                self.last_failure = recorded.outcome
        return Recorded(failed, tuple(dropped))

    def record(self, outcome: JobOutcome, suggestion: Suggestion) -> JournaledResult | None:
        """Journal a finished trial and count it; None if another process abandoned it first.

        The observation is posted later (after refilling the slot, in async mode).
        """
        values, outcome = self.read_values(outcome)
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
            self._forget_kept_end(outcome.number)  # the journal has the trial's end, whichever it is
            # Written first, read only now: a write checks that the journal file is still the
            # sweep's own before anything reads it (journal_guard), a read would not.
            trial = self.journal.trial(outcome.number)
            if trial.state == STOPPED and self._completes_after_all(trial, outcome, values):
                return JournaledResult(outcome, suggestion, values, False)
            if trial.state == STOPPED:  # stopped early: its result was journaled with the decision
                return self._stopped(trial, outcome, suggestion)
            # A lost race, deliberately dropped: `hydra-sigopt kill` abandoned the trial while its
            # result was on the way, and a resumed sweep runs that suggestion again.
            log.warning(
                "Trial #%d's result arrived after the trial was abandoned (%s); it is dropped", outcome.number, exc
            )
            return None
        crash_point("after_result")
        self._forget_kept_end(outcome.number)
        if failed:
            log.warning("Trial #%d failed: %s", outcome.number, outcome.reason)
        self.count_finished(outcome.number, failed, values, task=suggestion.task)
        return JournaledResult(outcome, suggestion, values, failed)

    def _forget_kept_end(self, number: int) -> None:
        """Journal first, then this: an in-process trial's kept value or failure is no longer needed."""
        if self.trials_root is not None:
            forget_kept(trial_folder(self.trials_root, number))

    def _completes_after_all(self, trial: Trial, outcome: JobOutcome, values: tuple[MetricValue, ...]) -> bool:
        """Whether a stopped trial whose job returned a valid result without learning of the stop
        (it had trained to its end before the sweeper read the reports it stopped it on) is
        completed with that result; journaled and counted if so."""
        if not outcome.ok or outcome.reason is not None or outcome.stop_learnt:
            return False
        try:
            self.journal.recover_result(
                trial.number, values=values, started_at=outcome.started_at, ended_at=outcome.ended_at, host=outcome.host
            )
        except IllegalTransition:  # its stopped observation was posted (a resume, just before)
            return False
        log.info(
            "Trial #%d had trained to its end before the reports it was stopped on were read: it completes"
            " with its result",
            trial.number,
        )
        self.count_finished(trial.number, False, values, task=trial.task)
        return True

    def _stopped(self, trial: Trial, outcome: JobOutcome, suggestion: Suggestion) -> JournaledResult:
        """A trial stopped early whose job has ended (whatever its end): its result is the one journaled
        with the stop decision, its last reported values. Counted as done, never as the best so far."""
        # The task's own start comes with a result it returned; a job ended without one says only
        # when it was submitted (or re-attached, for a resumed sweep): the journal has better.
        self.journal.note_stopped_job_end(trial.number, outcome.host, outcome.started_at if outcome.ok else None)
        if _raised_by_the_app(outcome):  # after its stop (saving a checkpoint?), not a cancel of its job
            log.warning(
                "Trial #%d was stopped early, and then its app failed: %s", trial.number, failure_in_one_line(outcome)
            )
        self.count_finished(trial.number, False, (), stopped=True, task=trial.task)
        outcome = dataclasses.replace(outcome, reason=trial.failure_reason)
        return JournaledResult(outcome, suggestion, trial.values, trial.observed_as_failed, stopped=True)

    def read_values(self, outcome: JobOutcome) -> tuple[tuple[MetricValue, ...], JobOutcome]:
        """The metric values of a trial that returned, or its outcome as a failure, fit to be written.

        Anything raised while reading the return value (a tensor's ``item()`` after a device
        error) is that trial's failure: raised here it would stop the sweep, and every resume
        would run the same point into the same crash.
        """
        outcome = self.as_it_ran(outcome)
        values: tuple[MetricValue, ...] = ()
        if outcome.ok:
            try:
                values = parse_result(outcome.value, self.definition.metrics)
            except InvalidResult as exc:
                outcome = dataclasses.replace(outcome, reason=str(exc), traceback=None)
            except Exception as exc:
                reason = f"reading the returned value raised {describe_error(exc)}"
                outcome = dataclasses.replace(outcome, reason=reason, traceback=traceback.format_exc())
        if values:  # a warning about the value read, never a reason to fail the trial
            self.warn_of_unread_noise(outcome)
        return values, self.fit_to_write(outcome)

    def warn_of_unread_noise(self, outcome: JobOutcome) -> None:
        """Once: a returned key named like a stddev is ignored, as every extra key is, not taken as the noise."""
        unread = [] if self.noise_keys_warned else unread_noise_keys(outcome.value, self.definition.metrics)
        if unread:
            self.noise_keys_warned = True
            log.warning(
                "Trial #%d returned %s beside its metrics: extra keys are ignored, so it is not read as a "
                "metric's noise; give a value with its noise as {%r: (v, s)} or "
                "{%r: {'value': v, 'value_stddev': s}} (warned once)",
                outcome.number,
                unread,
                *[_noisy_metric(unread[0], self.definition.metrics)] * 2,
            )

    def as_it_ran(self, outcome: JobOutcome) -> JobOutcome:
        """The outcome with when and where the trial's task ran, by the trial's own record where it wrote one."""
        if self.trials_root is None:
            return outcome
        ran = run_record(trial_folder(self.trials_root, outcome.number))
        if ran is None:  # the job died first, the record was lost (a full disk): the runner's view must do
            return outcome
        learnt = ran.stop_learnt if outcome.ok else outcome.stop_learnt
        started = min(ran.started_at, outcome.held_from or ran.started_at)  # restarted: since its first attempt
        return dataclasses.replace(
            outcome, started_at=started, ended_at=ran.ended_at, host=ran.host, stop_learnt=learnt
        )

    def fit_to_write(self, outcome: JobOutcome) -> JobOutcome:
        """The failure's reason and traceback without tokens, cut to a size the journal and log can hold."""
        if outcome.reason is None:
            return outcome
        reason = shorten(redact(outcome.reason, *self.tokens), MAX_REASON_CHARS, outcome.full_log)
        tb = outcome.traceback and shorten(
            redact(outcome.traceback, *self.tokens), MAX_TRACEBACK_CHARS, outcome.full_log
        )
        return dataclasses.replace(outcome, reason=reason, traceback=tb)

    # ------------------------------------------------------------------ posting

    def observation_call(self, number: int) -> Callable[[], str | None]:
        """The engine's call that posts this journaled result (made aside: see :mod:`hydra_sigopt.posting`)."""
        _, suggestion, values, failed, _ = self.unposted[number]
        return self._call_for(number, suggestion, values, failed)

    def posted(self, number: int, observation_id: str | None) -> None:
        """A result of :attr:`unposted` reached the engine: journal its observation's id (once)."""
        if number not in self.unposted:
            return
        self._journal_posted(number, observation_id)
        del self.unposted[number]  # only once posted: post_before_stopping tries the others

    def observe(self, number: int, suggestion: Suggestion, values: tuple[MetricValue, ...], failed: bool) -> None:
        """Post one journaled result at once, then journal that it was posted."""
        self._journal_posted(number, self._call_for(number, suggestion, values, failed)())

    def _call_for(
        self, number: int, suggestion: Suggestion, values: tuple[MetricValue, ...], failed: bool
    ) -> Callable[[], str | None]:
        """The engine's call for one result. Its metadata comes from its journal row, read now: the
        same whether it is posted by the loop or by a resumed sweep (job id, host, duration and a
        failure's reason included)."""
        step = self.journal.reports.last_steps().get(number)
        metadata = observation_metadata(self.journal.trial(number), self.runner_kind, step)
        return lambda: self.backend.observe(suggestion, values=values, failed=failed, metadata=metadata)

    def _journal_posted(self, number: int, observation_id: str | None) -> None:
        crash_point("after_observe")
        self.journal.mark_observed(number, observation_id)

    def post_before_stopping(self, engine_reachable: bool = True) -> None:
        """Post journaled results while the sweep stops on another error, which must not be masked.

        Not once the engine is out of reach: each post would wait a whole ``api.max_unreachable_s``
        again (a frozen server held a sweep of 4 unposted results 5 times its limit). The journal
        has them: a resumed sweep posts them. Nor once a post under way went unanswered
        (:attr:`engine_stalled`): the engine is slow or out of reach, and the stop must not wait on it."""
        out_of_reach = not engine_reachable
        engine_reachable = engine_reachable and not self.engine_stalled
        for number, (_, suggestion, values, failed, _stopped) in sorted(self.unposted.items()):
            if not engine_reachable:
                break
            try:
                self.observe(number, suggestion, values, failed)
            except BackendUnavailableError:
                engine_reachable, out_of_reach = False, True
                break
            except EngineLostError:  # the journal has them, and no resume posts them there
                self.unposted.clear()
                break
            except Exception as exc:  # the journal has the result: a resumed sweep posts it
                log.warning("Trial #%d's result is not posted yet (%s); a resumed sweep posts it", number, exc)
            del self.unposted[number]
        if self.unposted and self.log_left_unposted:
            log.warning("%s", left_unposted_said(sorted(self.unposted), self.backend.name, out_of_reach))
        self.left_unposted = sorted({*self.left_unposted, *self.unposted})
        self.unposted.clear()

    def left_unposted_said(self) -> str:
        """What a stop's message says of the results it left unposted: the local engine was only busy
        (see :func:`left_unposted_said`); a server did not answer (slow, or out of reach)."""
        if self.backend.name == "lite":
            return left_unposted_said(self.left_unposted, "lite", out_of_reach=False)
        return f"Trials {self.left_unposted} are not posted: the engine did not answer; a resumed sweep posts them"

    # ------------------------------------------------------------------ counting

    def count_finished(
        self, number: int, failed: bool, values: tuple[MetricValue, ...], stopped: bool = False, task: str | None = None
    ) -> None:
        """Progress counts a finished trial (the scheduler counts it for the budget and failure policy);
        a trial ``stopped`` early, or of a cheaper task, is never the best so far."""
        metric = self.progress.metric
        value = None
        if not failed and metric is not None and is_full(self.definition.tasks, task):
            value = next((v.value for v in values if v.name == metric.name), None)
            if not meets_constraints(values, self.definition.metrics):
                value = None
        cost = cost_of(self.definition.tasks, task)
        self.progress.trial_finished(number, None if stopped else value, failed, stopped, cost)


def _raised_by_the_app(outcome: JobOutcome) -> bool:
    """Whether a failed outcome is the app's exception (its task kept the whole traceback), not a
    job that ended without a result (cancelled for overstaying its stop, killed)."""
    return not outcome.ok and bool(outcome.full_log) and str(outcome.full_log).endswith(FULL_TRACEBACK_FILE)


def _noisy_metric(key: str, metrics: Sequence[Metric]) -> str:
    """The metric a key named like a noise was meant for: the one it starts with (``acc_std``: acc)."""
    named = [m.name for m in metrics if key.startswith(m.name) and key != m.name]
    return max(named, key=len) if named else metrics[0].name
