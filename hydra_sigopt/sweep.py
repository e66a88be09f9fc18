"""The sweep loop: suggest, record, run, record, observe, until the budget is spent.

:class:`Sweep` is the shell that carries out the scheduler's commands (:mod:`hydra_sigopt.scheduler`
decides) with the journal, the runner, the engine and threads for its calls. Opening and resuming a
journal is :mod:`hydra_sigopt.resume`'s; journaling and posting results :mod:`hydra_sigopt.results`'
(posted aside by :mod:`hydra_sigopt.posting`); stopping early :mod:`hydra_sigopt.stopping`'s.

Order of effects (what makes a kill at any instant safe): a trial is written to the journal
before its job starts; its job id right after submission; its result before the observation is
posted; the observation's id after. On restart the journal says exactly what is left to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_for
from pathlib import Path
from typing import Any

from hydra_sigopt.backends import Backend, Suggestion
from hydra_sigopt.continuation import continue_command
from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.early_stopping import EarlyStopping
from hydra_sigopt.engine_aside import GRACE_S, EngineAside
from hydra_sigopt.errors import BackendUnavailableError, EngineLostError, JournalError, SweepAbortedError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.held_slots import HeldSlots
from hydra_sigopt.journal import Journal, JournalFullError, JournalLostError
from hydra_sigopt.observations import SUGGESTIONS_RELEASED, suggestions_in_use, sweep_id
from hydra_sigopt.posting import PostsAside, settle_engine_calls
from hydra_sigopt.progress import Progress
from hydra_sigopt.report_files import trials_root
from hydra_sigopt.reports import ResultsNotWritten, log_results, write_final_reports
from hydra_sigopt.results import Results
from hydra_sigopt.resume import Resumption, locked_journal
from hydra_sigopt.runners import JobOutcome, TrialRunner
from hydra_sigopt.scheduler import (
    Ask,
    AwaitPosts,
    AwaitPrefetch,
    Command,
    Ended,
    Event,
    KeepWarm,
    MarkRunning,
    Post,
    Posted,
    Prefetch,
    Record,
    Scheduler,
    StartTrial,
    StepBudgetSpent,
    StopForFailures,
    Submitted,
    SuggestionReady,
    Wait,
    drive,
)
from hydra_sigopt.secrets import tokens_of, tokens_withheld
from hydra_sigopt.settings import SweepSettings
from hydra_sigopt.signals import Interrupts
from hydra_sigopt.snapshot import CodePlan, CodeWatch, code_for_sweep
from hydra_sigopt.stopping import Stopping, forget_kill, interrupted_while_starting
from hydra_sigopt.sweeper_time import AliveMark
from hydra_sigopt.tasks import cost_of, task_named

log = logging.getLogger("hydra_sigopt")


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
        code: CodePlan | None = None,
    ) -> None:
        self.settings = settings
        self.definition = definition
        self.sweep_dir = Path(sweep_dir)
        self.runner = runner
        self.backend = backend
        self.command = dict(command or {})
        self.on_locked = on_locked
        self.code = code
        self._code_watch: CodeWatch | None = None
        self.budget = definition.observation_budget
        self.bandwidth = definition.parallel_bandwidth
        self.journal: Journal | None = None
        # The single owner of the trials in flight, the budget and the order of effects.
        self.scheduler = Scheduler(
            self.budget,
            self.bandwidth,
            runner.asynchronous,
            settings.failure_rate_exceeded,
            cost_of=lambda suggestion: cost_of(definition.tasks, suggestion.task),
        )
        reads_reports = settings.early_stopping.reads_reports
        self.aside = EngineAside(backend, self._read_reports if reads_reports else None)
        self.held = HeldSlots(runner)
        self.interrupts = Interrupts()
        self.started = False
        primary = definition.optimized_metrics[0] if len(definition.optimized_metrics) == 1 else None
        self.progress = Progress(
            self.budget,
            primary,
            settings.progress_interval,
            with_costs=bool(definition.tasks),
            step_budget=settings.early_stopping.step_budget,
        )

    # ------------------------------------------------------------------ entry point

    def run(self) -> dict[str, Any]:
        """Run the sweep; return the content of ``optimization_results.yaml``."""
        if self.code is not None:  # a new sweep's experiment is created before its journal records the code
            self.backend.code = self.code.identity()
        self.interrupts.install()  # from the start: a Ctrl-C at any instant ends in the stop's one line
        try:
            opened = locked_journal(
                self.sweep_dir, self.definition, self.settings.backend, self.backend, self.command, self.runner.kind
            )
            # The tokens are withheld from the trials' environment: the backend has its token already.
            with opened as journal, tokens_withheld(also=tokens_of(self.backend)) as tokens:
                return self._run_locked(journal, tuple(tokens))
        except KeyboardInterrupt:
            if self.started:  # after the wrap-up gave the signals back: as without the sweeper
                raise
            raise interrupted_while_starting(continue_command(self.command, self.sweep_dir)) from None
        finally:
            self.interrupts.restore()  # done already, unless start-up was cut short

    def _run_locked(self, journal: Journal, tokens: tuple[str, ...]) -> dict[str, Any]:
        self.journal = journal
        root = trials_root(self.sweep_dir)
        self.results = Results(journal, self.backend, self.definition, self.progress, tokens, self.runner.kind, root)
        self.posts = PostsAside(self.results)
        command = continue_command(self.command, self.sweep_dir)
        rule, tasks = self.settings.early_stopping, self.definition.tasks
        self.early = EarlyStopping(rule, journal, root, self.definition.metrics, tasks=tasks)
        self.stopping = Stopping(
            self.settings, self.results, self.runner, self.scheduler, command, self.early.journal_last_reports
        )
        doc: dict[str, Any] | ResultsNotWritten = {}
        if self.on_locked is not None:
            crash_point("writing_sweep_dir")
            self.on_locked()
        # Stopped however the run ends (its own stop notes the run's end, which a failed journal skips).
        with AliveMark(self.sweep_dir) as mark:
            engine_reachable = True
            finished = False
            self.started = True  # a stop from here on is the loop's (Stopping)
            try:
                self.backend.sweep_id = sweep_id(journal)
                begin_run(journal, self.sweep_dir)
                self._use_code(journal)
                parts = (self.definition, journal, self.backend, self.runner, self.scheduler, self.results)
                resumption = Resumption(*parts, self.early.journal_last_reports)
                resumption.start_or_resume(self.sweep_dir, mark)
                # hydra-sigopt continue repeats the sweep's last command (a raised budget stays), from its cwd.
                journal.set_meta(command=dict(self.command))
                # What `hydra-sigopt status` weighs the steps against (a resume may raise it); the plot's curves.
                rule = self.settings.early_stopping
                journal.set_meta(step_budget=rule.step_budget, judged_metric=rule.metric if rule.active else None)
                journal.set_meta(declared_fixed=list(self.definition.space.declared_fixed))  # pasted with the best
                self.early.start()
                self.early.adopt_stopped_jobs(resumption.stopped_unended)
                self.scheduler.hold(self.held.hold(resumption.stopped_unended))
                cancel_stopped_before_restart(self.early, self.runner)
                if self.settings.early_stopping.reads_reports:
                    self.runner.between_polls = self._read_reports
                self._loop()
                journal.set_meta(
                    engine_observation_count=self.backend.observation_count(),
                    engine_best=self.backend.best_assignments(),
                )
                finished = True
            except KeyboardInterrupt:
                self.interrupts.stopping()
                self._settle_engine_calls()
                self.stopping.interrupted(self.interrupts.requested_at, self.interrupts.requested)
            except BackendUnavailableError as exc:
                engine_reachable = False
                self.stopping.engine_unreachable(exc)
            except EngineLostError as exc:  # nothing of the sweep's left there: no suggestion to release
                engine_reachable = False
                self.stopping.failed_on(exc)
            except SweepAbortedError:
                raise
            except (JournalLostError, JournalFullError) as exc:
                self.stopping.journal_unwritable(exc)
            except Exception as exc:
                self.stopping.failed_on(exc)
            finally:
                self.interrupts.stopping()  # the wrap-up below runs to its end whatever signal comes
                self.early.close()
                self.runner.close()
                # A journal that failed (also in a stop's own writes): nor the reports beside it, on a full disk.
                if not (self.stopping.journal_failed or journal.lost):
                    # Nor once a call went unanswered at the stop: each call would retry a whole max_unreachable_s.
                    if engine_reachable and not self.results.engine_stalled:
                        release_unused_suggestions(journal, self.backend, self.aside.prefetch)
                    doc = write_final_reports(self.sweep_dir, journal)
                    # Its elapsed time counts the wrap-up. It writes to the journal: on a disk that filled at
                    # the end, the line that says so above stays the sweep's last word, and the journal is closed.
                    with contextlib.suppress(JournalError, sqlite3.Error):
                        self.progress.log_last(line=finished)
                journal.close()
                self.backend.close()
                self.interrupts.restore()
                crash_point("after_wrap_up")
        if isinstance(doc, ResultsNotWritten):
            raise doc
        log_results(self.sweep_dir, doc)
        return doc

    def _use_code(self, journal: Journal) -> None:
        """Make (or find again) the code snapshot before the first trial, and have the jobs run from it."""
        if self.code is None:
            return
        stored = journal.meta().get("code")
        # Trials numbered from here on run the code of this run (a resumed sweep's earlier ones may not).
        from_snapshot, record = code_for_sweep(self.code, stored, self.sweep_dir, self.runner, journal.next_number())
        journal.set_meta(code=record)
        if not from_snapshot:
            self._code_watch = self.code.watch

    # ------------------------------------------------------------------ the loop: carrying out the scheduler's commands

    def _loop(self) -> None:
        """Carry out the scheduler's commands in order, reporting what happened, until it says Finish."""
        if self.early.newly_spent():  # by the trials of the sweep this one resumes
            self.scheduler.on(StepBudgetSpent())
        drive(self.scheduler, self._carry_out_guarded)
        self.progress.set_running(0)
        self.progress.set_steps(self.early.steps_spent)

    def _carry_out_guarded(self, command: Command) -> list[Event]:
        """_carry_out, after a Ctrl-C or SIGTERM is acted on; what was recorded is posted if it fails."""
        self.interrupts.check()
        try:
            return self._carry_out(command)
        except Exception as exc:
            self._settle_engine_calls()
            self.results.post_before_stopping(engine_reachable=not isinstance(exc, BackendUnavailableError))
            raise

    def _carry_out(self, command: Command) -> list[Event]:
        """One command's effects; the events they produced."""
        if isinstance(command, Ask):
            self.aside.start_prefetch(command.pending)  # computed aside all the same: reports are read meanwhile
            return [self._ready(self.aside.take_prefetch())]
        if isinstance(command, Prefetch):
            self.aside.start_prefetch(command.pending)
        elif isinstance(command, AwaitPrefetch):
            # None under way: the last Wait reported it already, after results that freed the slots.
            return [] if self.aside.prefetch is None else [self._ready(self.aside.take_prefetch())]
        elif isinstance(command, StartTrial):
            with self.interrupts.deferred():
                return [self._start_trial(command)]
        elif isinstance(command, MarkRunning):
            assert self.journal is not None
            self.journal.mark_running(list(command.numbers))
        elif isinstance(command, KeepWarm):
            self.runner.keep_warm(command.trials_left, [trial_overrides(self.definition, s) for s in command.next_up])
        elif isinstance(command, Wait):
            return self._wait()
        elif isinstance(command, Record):
            self.early.journal_last_reports(command.numbers)
            ended = self.results.ended
            self.early.advise_on_completed(n for n in command.numbers if n in ended and ended[n].ok)
            return [self.results.record_ended(command.numbers, self.scheduler.in_flight)]
        elif isinstance(command, Post):
            self._post(command.numbers)
        elif isinstance(command, AwaitPosts):
            return [Posted(tuple(self.posts.wait_all(meanwhile=self.aside.read_reports)))]
        elif isinstance(command, StopForFailures):
            # Not waiting for the posts under way: a server out of reach would hold the stop for
            # api.max_unreachable_s. The stop posts what is left (none a second time), or leaves it to a resume.
            self._settle_engine_calls()
            last_failure = self.results.last_failure
            assert last_failure is not None and last_failure.number == command.number
            self.stopping.too_many_failures(last_failure)
        return []

    def _start_trial(self, command: StartTrial) -> Submitted:
        """Journal the trial, then start its job; journal its job id as soon as it is known."""
        assert self.journal is not None
        if self._code_watch is not None:
            self._code_watch.check()
        number, suggestion = command.number, command.suggestion
        task = task_named(self.definition.tasks, suggestion.task)
        overrides = trial_overrides(self.definition, suggestion)
        self.journal.add_trial(
            number, suggestion.id, suggestion.assignments, overrides, rerun_of=command.rerun_of, task=suggestion.task
        )
        crash_point("after_record_trial")
        if not self.runner.logs_each_trial:
            swept = overrides[len(self.definition.space.fixed_overrides) :]
            log.info("\t#%d : %s%s", number, " ".join(swept), f"  (task {task.name})" if task else "")
        job_id = self.runner.start(number, overrides)
        crash_point("after_submit")
        if job_id is not None:
            # Known at once (submitit): journaled now, so a restart can find the job.
            self.journal.mark_running([number], [job_id])
        return Submitted(number, job_id, deferred=job_id is None and self.runner.asynchronous)

    def _wait(self) -> list[Event]:
        """Wait for trials to end (at most until the next progress line); report them and any suggestion ready."""
        next_read = self._read_reports()
        # With a rule to apply, the running jobs' reports are read at least every POLL_INTERVAL_S,
        # more often when their steps are short.
        most = next_read if self.settings.early_stopping.reads_reports else 5.0
        aside: list[Future[Any]] = [f for f in (self.aside.prefetch, self.posts.under_way) if f is not None]
        outcomes = wait_for_trials(
            self.runner, bool(self.scheduler.in_flight), aside, min(self.settings.progress_interval, most)
        )
        if not outcomes:  # else the line follows their recording (see _post), and counts them done
            self.progress.set_running(len(self.scheduler.in_flight), *_waiting_counts(self.runner))
            self.progress.set_steps(self.early.steps_spent)
            self.progress.maybe_log()
        # Only trials in flight: an abandoned trial re-attached to read its result at resume, and
        # not read then, stays abandoned.
        self.results.ended = {o.number: o for o in outcomes if o.number in self.scheduler.in_flight}
        spent = [StepBudgetSpent()] if self.early.newly_spent() else []
        # A suggestion ready by now comes after the results: they are recorded and posted before
        # it is answered, so before any other suggestion is asked for.
        freed = self.held.freed()  # slots of jobs stopped before a restart (a resumed sweep), now gone
        # After the results: a slot they free is filled once they are recorded and posted; the posts
        # ended too, so that these results are posted before the next suggestion is asked for.
        events = [*started_late(self.runner, self.results.journal), *spent, Ended(tuple(self.results.ended)), *freed]
        return [*events, *self._posts_done(), *self._prefetch_done()]

    def _read_reports(self) -> float:
        """Read and judge the running trials' reports (:func:`read_reports`); when to read them again."""
        return read_reports(self.early, self.runner, self.scheduler.in_flight)

    def _post(self, numbers: tuple[int, ...]) -> None:
        self.posts.add(numbers)
        self.progress.set_running(len(self.runner.running()), *_waiting_counts(self.runner))
        self.progress.set_steps(self.early.steps_spent)
        self.progress.maybe_log()

    def _posts_done(self) -> list[Event]:
        """The posts ended since the last look, journaled."""
        posted = self.posts.collect()
        return [Posted(tuple(posted))] if posted else []

    def _settle_engine_calls(self) -> None:
        """Before a stop: the engine's calls under way end soon, or the stop calls it no more (engine_stalled)."""
        settle_before_stopping(self.results, self.posts, self.aside.prefetch, in_process=self.backend.name == "lite")

    # ------------------------------------------------------------------ suggestions

    def _prefetch_done(self) -> list[Event]:
        """The prefetched suggestion, once computed (reported once)."""
        suggestion = self.aside.prefetch_ready()
        return [] if suggestion is None else [self._ready(suggestion)]

    def _ready(self, suggestion: Suggestion) -> SuggestionReady:
        """The engine's new suggestion, for the scheduler: made (on a server, open there), not journaled yet."""
        crash_point("after_suggest")
        return SuggestionReady(checked(self.definition, suggestion))


def settle_before_stopping(results: Results, posts: PostsAside, prefetch: Future[Any] | None, in_process: bool) -> None:
    """Wait for the engine's calls under way, once (see settle_engine_calls): a stop that raises (too
    many failures) passes the loop's guard, which settles again; a second grace held the stop as long
    again and said the same lines twice."""
    if not results.engine_stalled and not settle_engine_calls(posts, prefetch, in_process=in_process):
        results.engine_stalled = True


def wait_for_trials(
    runner: TrialRunner, any_in_flight: bool, aside: Sequence[Future[Any]], timeout: float
) -> list[JobOutcome]:
    """The runner's wait, cut short once an engine call made ``aside`` ends: the suggestion under
    way is ready (a free slot may be waiting for it) or the post under way ended (the next starts;
    a suggestion may wait for it), looked at as often as the runner looks at its jobs."""
    if not any_in_flight:  # only slots held by an earlier run's jobs: nothing here ends
        wait_for(aside, timeout=timeout, return_when=FIRST_COMPLETED) if aside else time.sleep(timeout)
        return []
    if not aside:
        return runner.wait(timeout=timeout)
    slice_s = min(timeout, runner.poll_interval)
    for _ in range(max(1, math.ceil(timeout / max(slice_s, 1e-3)))):
        if any(f.done() for f in aside):
            return runner.wait(timeout=0)
        outcomes = runner.wait(timeout=slice_s)
        if outcomes:
            return outcomes
    return []


def started_late(runner: TrialRunner, journal: Journal) -> list[Event]:
    """Journal the jobs the runner submitted after the cluster refused them for a while."""
    late = runner.started_late()
    for number, job_id in late:
        journal.mark_running([number], [job_id])
    return [Submitted(number, job_id) for number, job_id in late]


def begin_run(journal: Journal, sweep_dir: Path) -> None:
    """Before the first suggestion: none is released yet by this run, and a kill's marker left by a
    ``hydra-sigopt kill`` cut short is not this run's (a later sweeper may get the same pid)."""
    journal.set_meta(**{SUGGESTIONS_RELEASED: None})
    forget_kill(sweep_dir)


def release_unused_suggestions(journal: Journal, backend: Backend, prefetch: Future[Suggestion] | None) -> None:
    """Leave no open suggestion the journal does not own: a SigOpt server counts it as work in progress.

    Those of trials cancelled on Ctrl-C, a prefetched one never used, those a timed-out request
    made on the server anyway. Best effort: a resumed sweep does it again.
    """
    if prefetch is not None:
        wait_for([prefetch], timeout=GRACE_S)  # it may be creating one right now
    in_use = suggestions_in_use(journal.trials())
    try:
        backend.reconcile(in_use)
    except Exception as exc:
        log.warning("The sweep's unused open suggestions were not deleted (%s); a resumed sweep does it", exc)
    else:
        # Only a note (a resumed sweep releases them again): a journal that cannot take it now (its
        # disk full) must not replace the stop's message nor cut the wrap-up short.
        with contextlib.suppress(JournalError, sqlite3.Error):
            journal.set_meta(**{SUGGESTIONS_RELEASED: in_use})


def read_reports(early: EarlyStopping, runner: TrialRunner, running: Collection[int]) -> float:
    """Read and judge the running trials' reports; cancel the jobs of stopped trials that overstay.
    How long to wait before reading them again."""
    early.poll(running)
    failed = cancel_overstaying(early.overstaying(running), runner)
    early.retry_cancel_later(failed)
    cancel_stopped_before_restart(early, runner)
    return early.read_interval(running)


def cancel_overstaying(late: Sequence[tuple[int, float]], runner: TrialRunner) -> list[int]:
    """Cancel the jobs of stopped trials that still run (:meth:`EarlyStopping.overstaying`), saying
    so; return those whose cancel failed (slurmctld out of reach, say), to be tried again."""
    if not late:
        return []
    done = runner.cancel([number for number, _ in late])
    again = "it is tried again later" if runner.cancels_trials else "it holds its slot until it ends"
    for number, since in late:
        why = done.failed.get(number)
        fate = f"could not cancel it ({why}); {again}" if why else "cancelled, to free its slot"
        log.warning(
            "Trial #%d was stopped early %.0f s ago and its job still runs (the app may catch TrialStopped and"
            " train on, or one of its processes may hang): %s",
            number,
            since,
            fate,
        )
    return sorted(done.failed) if runner.cancels_trials else []


def cancel_stopped_before_restart(early: EarlyStopping, runner: TrialRunner) -> None:
    """Cancel the jobs of trials stopped before this run's restart (the sweeper that would have
    cancelled them was killed) once they overstay as :meth:`EarlyStopping.overstaying` has it."""
    late = early.overstaying_adopted()
    if not late:
        return
    done = runner.cancel_untracked([job_id for _, job_id, _ in late])
    for number, job_id, since in late:
        if job_id in done.already_gone:
            continue
        why = done.failed.get(job_id)
        fate = f"could not cancel it ({why}); it is tried again later" if why else "cancelled, to free its slot"
        log.warning(
            "Trial #%d was stopped early %.0f s ago, before this restart, and its job %s still runs: %s",
            number,
            since,
            job_id,
            fate,
        )
    early.adopt_again([(number, job_id) for number, job_id, _ in late if job_id in done.failed])


def trial_overrides(definition: ExperimentDefinition, suggestion: Suggestion) -> list[str]:
    """The overrides a trial of this suggestion runs with: its assignments, then its task's."""
    task = task_named(definition.tasks, suggestion.task)
    return definition.space.overrides_for(suggestion.assignments) + list(task.overrides if task else ())


def checked(definition: ExperimentDefinition, suggestion: Suggestion) -> Suggestion:
    """A suggestion inside the declared space, with exact grid values for the app, the journal and the engine."""
    try:
        definition.space.check(suggestion.assignments)
        if definition.tasks and task_named(definition.tasks, suggestion.task) is None:
            raise ValueError("no task, in a multitask sweep")
    except ValueError as exc:
        raise SweepAbortedError(
            f"the SigOpt engine suggested assignments outside the declared space ({exc}); "
            f"suggestion {suggestion.id}: {dict(suggestion.assignments)}"
        ) from None
    return dataclasses.replace(suggestion, assignments=definition.space.snap(suggestion.assignments))


def _waiting_counts(runner: TrialRunner) -> tuple[int, int]:
    """How many started trials wait for the cluster, and of those how many for it to accept their job."""
    return len(runner.waiting()), len(runner.unsubmitted())


__all__ = ["Sweep", "checked"]
