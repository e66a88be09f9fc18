"""Opening a sweep dir's journal, and resuming what it holds.

:func:`locked_journal` takes the sweep dir's lock and creates the journal of a new sweep or opens
an existing one, refusing a changed definition or backend. :func:`plan_resume` reads the journal
into a :class:`ResumePlan` (what to replay into the engine, post, re-attach or re-run), without any
effect; :class:`Resumption` starts the experiment and carries the plan out.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt import __version__, sweepdir
from hydra_sigopt.backends import Backend, PastObservation, Suggestion
from hydra_sigopt.backends.api_identity import CREATED_KEY, ExperimentNotThisSweepsError
from hydra_sigopt.copies import LOCATION, location_of, original_of, why_original_runs
from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.errors import ConfigError, JournalError, SweepAbortedError, SweepDirTaken
from hydra_sigopt.experiment import ExperimentDefinition, describe_identity_change
from hydra_sigopt.journal import (
    ABANDONED,
    FAILED,
    FINISHED_STATES,
    PENDING,
    RUNNING,
    STOPPED,
    Journal,
    SweepLock,
    Trial,
    journal_path,
)
from hydra_sigopt.metrics import MetricValue, describe_metrics
from hydra_sigopt.processes import job_result_file, this_process_started_at
from hydra_sigopt.reports import budget_spent
from hydra_sigopt.results import Results
from hydra_sigopt.runners import JobOutcome, TrialRunner
from hydra_sigopt.scheduler import Scheduler
from hydra_sigopt.sweeper_time import Heartbeat, start_run
from hydra_sigopt.tasks import cost_of
from hydra_sigopt.unsubmitted import never_submitted

log = logging.getLogger("hydra_sigopt")

# ---------------------------------------------------------------------- opening the journal


@contextmanager
def locked_journal(
    sweep_dir: Path,
    definition: ExperimentDefinition,
    backend_name: str,
    backend: Backend,
    command: Mapping[str, Any],
    launcher: str,
) -> Iterator[Journal]:
    """The sweep dir's journal (see :func:`open_journal`), with the sweep dir's lock held meanwhile."""
    # The lock comes first: two sweepers starting at once must not both create a journal, nor
    # two server experiments.
    created_dir = sweepdir.missing_ancestor(sweep_dir)
    lock = SweepLock(sweep_dir)
    created_lock = not lock.path.exists()
    try:
        lock.acquire()
    except SweepDirTaken as taken:
        if starts_a_new_sweep(sweep_dir, definition):
            raise taken_by_another_sweep(sweep_dir, taken) from None
        raise
    crash_point("after_lock")  # a sweeper holding the sweep dir, its journal not yet made or opened
    try:
        journal = open_journal(sweep_dir, definition, backend_name, backend, command, launcher)
    except BaseException:
        # Refused (a token, a changed definition, earlier results): leave the folder as it was.
        lock.release()
        if created_lock and not journal_path(sweep_dir).exists():
            lock.path.unlink(missing_ok=True)
            sweepdir.remove_created(sweep_dir, created_dir)
        raise
    try:
        yield journal
    finally:
        lock.release()


def starts_a_new_sweep(sweep_dir: Path, definition: ExperimentDefinition) -> bool:
    """Whether this run starts a new sweep rather than resumes the one in ``sweep_dir``: that sweep's
    journal did not exist when this process started (two sweeps started in the same second share
    Hydra's default sweep dir), or holds another definition. Where that cannot be told: False."""
    if not journal_path(sweep_dir).exists():
        return True  # the other sweeper is about to create it
    try:
        with Journal.open(sweep_dir, readonly=True) as journal:
            meta = journal.meta()
    except Exception:
        return False  # damaged, or being made: the usual advice stands
    started_at = this_process_started_at()
    created_after_start = started_at is not None and float(meta.get("created_at", 0.0)) > started_at
    return created_after_start or meta.get("fingerprint") != definition.fingerprint()


def taken_by_another_sweep(sweep_dir: Path, taken: SweepDirTaken) -> JournalError:
    """The refusal of a new sweep whose sweep dir another one holds: stopping that one (hydra-sigopt
    kill, the advice to a sweep resumed twice) would stop a colleague's, or one's own other, sweep."""
    holder = f"pid {taken.pid}{f' on {taken.host}' if taken.host else ''}"
    return JournalError(
        f"the sweep dir {sweep_dir} is taken by another sweep ({holder}); give this new sweep its own: "
        f"hydra.sweep.dir={free_sibling(sweep_dir)} (Hydra's default, multirun/<date>/<time>, is the same for "
        "sweeps started in the same second)"
    )


def free_sibling(sweep_dir: Path) -> Path:
    """``<sweep_dir>-2`` (or -3, ...): a folder beside it that does not exist yet."""
    n = 2
    while sweep_dir.with_name(f"{sweep_dir.name}-{n}").exists():
        n += 1
    return sweep_dir.with_name(f"{sweep_dir.name}-{n}")


def open_journal(
    sweep_dir: Path,
    definition: ExperimentDefinition,
    backend_name: str,
    backend: Backend,
    command: Mapping[str, Any],
    launcher: str,
) -> Journal:
    """The sweep dir's journal: resumed if it exists (and is this sweep's, run by a launcher that can
    take over its running trials), else created."""
    if journal_path(sweep_dir).exists():
        journal = Journal.open(sweep_dir)
        try:
            _refuse_another_sweep(journal.meta(), sweep_dir, definition, backend_name)
            _refuse_a_copy_of_a_running_sweep(journal.meta(), journal.trials(), sweep_dir)
            _refuse_another_launchers_jobs(journal.trials(), journal.meta().get("launcher"), launcher, sweep_dir)
            _refuse_a_budget_already_exceeded(journal.meta(), journal.trials(), definition.observation_budget)
        except (JournalError, SweepAbortedError, ConfigError):
            journal.close()
            raise
        return journal
    sweepdir.refuse_earlier_results(sweep_dir)
    # A new sweep: the experiment before the journal, so that a refused token or an unknown
    # experiment id leaves no half-made sweep (locked_journal removes the folder it made).
    experiment_id = backend.start(definition)
    return Journal.create(
        sweep_dir,
        {
            "experiment_id": experiment_id,
            "experiment_shared": backend.experiment_shared,
            CREATED_KEY: backend.experiment_created,
            "name": definition.name,
            "backend": backend_name,
            "identity": definition.identity(),
            "fingerprint": definition.fingerprint(),
            "observation_budget": definition.observation_budget,
            "version": __version__,
            "host": socket.gethostname(),
            "command": dict(command),
        },
    )


def _refuse_another_sweep(
    stored: Mapping[str, Any], sweep_dir: Path, definition: ExperimentDefinition, backend_name: str
) -> None:
    """Raise unless the journal's sweep has this definition and backend."""
    if stored.get("fingerprint") != definition.fingerprint():
        changes = describe_identity_change(stored.get("identity", {}), definition.identity())
        raise JournalError(
            f"the sweep in {sweep_dir} was started with a different experiment definition: "
            + "; ".join(changes or ["(definition differs)"])
            + ". To start a new sweep instead, use another hydra.sweep.dir (Hydra's default makes a "
            f"new one per run); to continue this one, run the command it was started with (hydra-sigopt continue "
            f"{sweep_dir} prints it)."
        )
    if stored.get("backend") != backend_name:
        raise JournalError(
            f"the sweep in {sweep_dir} uses backend {stored.get('backend')!r}, not "
            f"{backend_name!r}; set hydra.sweeper.backend={stored.get('backend')} to continue it"
        )


def _refuse_a_copy_of_a_running_sweep(meta: Mapping[str, Any], trials: Sequence[Trial], sweep_dir: Path) -> None:
    """A copy of a sweep dir (a backup) is resumed only once its original has ended: it would
    re-attach the original's jobs, whose results go to the original's folder, and cancel them on its
    stop. Resumed after that (the original lost), the copy becomes the sweep: its own dir is noted."""
    original = original_of(sweep_dir, meta)
    running = why_original_runs(sweep_dir, original, meta, trials) if original is not None else None
    if running is not None:
        raise JournalError(
            f"{sweep_dir} is a copy of the sweep at {original}, which still runs ({running}); nothing was started. "
            f"Resume the original, or resume this copy once the original has ended (hydra-sigopt status {original})"
        )


def _refuse_another_launchers_jobs(
    trials: Sequence[Trial], previous: str | None, launcher: str, sweep_dir: Path
) -> None:
    """Jobs of the sweep's own launcher that may still run cannot be re-attached by another one.

    Resumed with ``hydra.sweeper.resume=<dir>`` and the launcher override forgotten, a Slurm sweep
    re-ran its running trials in the sweeper's process while their jobs ran on, paying twice for
    them and over the slots, and their results were lost, to that resume and to the next.
    """
    if previous not in ("local", "slurm") or previous == launcher:
        return
    running = [t for t in trials if t.state in (PENDING, RUNNING) and t.job_id]
    if running:
        raise SweepAbortedError(
            f"trials {[t.number for t in running]} run as {previous} jobs {[t.job_id for t in running]}, which "
            f"this run's launcher ({launcher}) cannot re-attach; resume with the sweep's launcher (hydra-sigopt "
            f"continue {sweep_dir} prints its command), or cancel them first: hydra-sigopt kill {sweep_dir}"
        )


def _refuse_a_budget_already_exceeded(meta: Mapping[str, Any], trials: Sequence[Trial], budget: float) -> None:
    """A resume whose ``observation_budget`` was lowered below what the sweep's trials spent already
    is refused before anything changes: it has nothing to run, and would log and show "4/2 trials
    done", as though the sweep had overrun its budget. The budget it last ran with is no such change,
    though a multitask sweep may have spent more (its last trial started within the budget and cost
    more than was left): run again, it ends as it is (a requeued driver, ``continue --run``)."""
    spent = budget_spent(meta, trials)
    last = meta.get("observation_budget")
    if budget >= spent - 1e-9 or (last is not None and budget >= last):
        return
    if meta["identity"].get("tasks"):  # multitask: the budget counts the trials' costs
        done = f"the {spent:.4g} of the budget this sweep's trials have spent already"
        least = f"at least {last}, the budget it last ran with (the sweep ends as it is), or more to run more trials"
    else:
        done = f"the {round(spent)} trials this sweep has done already"
        least = (
            f"{round(spent)} or more (at {round(spent)} the sweep ends as it is; above it, the sweep runs more trials)"
        )
    raise ConfigError("observation_budget", f"{budget} is below {done}; give {least}")


# ---------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ResumePlan:
    """What a resumed sweep does with the trials of its journal."""

    #: Posted before the restart: replayed into the engine, counted.
    observed: tuple[Trial, ...]
    #: Finished before the restart, not posted: posted now.
    to_post: tuple[Trial, ...]
    #: Pending or running: re-attached to their job where it can be, else re-run.
    in_flight: tuple[Trial, ...]
    #: Abandoned, not re-run, each with a job of its own: used if that job wrote a valid result after all.
    maybe_finished: tuple[Trial, ...]
    #: Whether the jobs were started by the launcher of this run (only then can they be re-attached).
    same_launcher: bool
    #: Stopped early and not observed (their jobs had not ended), started by this run's launcher:
    #: their jobs may still run, and the sweeper that would have cancelled them is gone.
    stopped_unended: tuple[Trial, ...] = ()
    #: Every suggestion the journal holds, those of abandoned trials too.
    used_suggestion_ids: tuple[str, ...] = ()

    @property
    def open_suggestion_ids(self) -> list[str]:
        """The suggestions still in use: a result not posted yet is posted with its own (issue 15)."""
        return [t.suggestion_id for t in (*self.to_post, *self.in_flight) if t.suggestion_id]


def plan_resume(trials: Sequence[Trial], previous_launcher: str | None, launcher: str) -> ResumePlan:
    same_launcher = previous_launcher == launcher
    return ResumePlan(
        observed=tuple(t for t in trials if t.observed),
        to_post=tuple(t for t in trials if t.state in FINISHED_STATES and not t.observed),
        in_flight=tuple(t for t in trials if t.state in (PENDING, RUNNING)),
        maybe_finished=_abandoned_with_a_job(trials) if same_launcher else (),
        same_launcher=same_launcher,
        stopped_unended=tuple(t for t in trials if t.state == STOPPED and not t.observed and t.job_id)
        if same_launcher
        else (),
        used_suggestion_ids=tuple(t.suggestion_id for t in trials if t.suggestion_id),
    )


def _abandoned_with_a_job(trials: Sequence[Trial]) -> tuple[Trial, ...]:
    """Abandoned trials that were not re-run and whose job id no other trial has (a local job's
    id is its pid, which the system reuses: then the result could be another trial's)."""
    rerun = {t.rerun_of for t in trials}
    job_ids = Counter(t.job_id for t in trials if t.job_id)
    return tuple(
        t for t in trials if t.state == ABANDONED and t.job_id and job_ids[t.job_id] == 1 and t.number not in rerun
    )


def suggestion_of(trial: Trial) -> Suggestion:
    return Suggestion(trial.suggestion_id or str(trial.number), trial.assignments, trial.task)


def past_observation(trial: Trial) -> PastObservation:
    return PastObservation(
        assignments=trial.assignments,
        values=trial.values,
        failed=trial.observed_as_failed,
        suggestion_id=trial.suggestion_id,
        task=trial.task,
    )


# ---------------------------------------------------------------------- carrying it out


class Resumption:
    """Starts (or re-opens) the experiment and carries out a :class:`ResumePlan`: the engine, the
    scheduler and the progress learn the past."""

    def __init__(
        self,
        definition: ExperimentDefinition,
        journal: Journal,
        backend: Backend,
        runner: TrialRunner,
        scheduler: Scheduler,
        results: Results,
        journal_last_reports: Callable[[Iterable[int]], None] = lambda numbers: None,
    ) -> None:
        self.definition = definition
        #: Journals what trials reported after the last sweeper's last read of them (EarlyStopping's).
        self.journal_last_reports = journal_last_reports
        #: After a resume: the trials stopped before the restart whose jobs may still run
        #: (:meth:`EarlyStopping.adopt_stopped_jobs` watches them).
        self.stopped_unended: tuple[Trial, ...] = ()
        self.journal = journal
        self.backend = backend
        self.runner = runner
        self.scheduler = scheduler
        self.results = results

    def start_or_resume(self, sweep_dir: Path) -> None:
        """Start or re-open the experiment; resume the journal's trials, if it has any."""
        run_started = time.time()
        ran_before = start_run(self.journal, run_started)
        # Where this sweep's dir is: a copy of it (a backup) must not act on its jobs (hydra_sigopt.copies).
        self.journal.set_meta(**{LOCATION: location_of(sweep_dir)})
        trials = self.journal.trials()
        meta = self.journal.meta()
        self.backend.expected_created = meta.get(CREATED_KEY)
        try:
            experiment_id = self.backend.start(self.definition, resume_id=meta.get("experiment_id"))
        except ExperimentNotThisSweepsError as exc:
            self.backend.experiment_id = None  # nothing more is sent to it (no suggestion released there)
            log.error("%s; %s", exc, exc.advice(sweep_dir))
            raise SweepAbortedError(f"{exc}; {exc.advice(sweep_dir)}") from None
        if meta.get(CREATED_KEY) is None and self.backend.experiment_created is not None:
            self.journal.set_meta(**{CREATED_KEY: self.backend.experiment_created})  # a journal from before the record
        self.journal.set_meta(
            experiment_id=experiment_id,
            observation_budget=self.definition.observation_budget,
            launcher=self.runner.kind,
            submitit_folder=self.runner.submitit_folder,
            api=self.backend.public_settings(),
        )
        self.scheduler.next_number = self.journal.next_number()
        if trials:
            log.info("Resuming the sweep in %s (%d trials in its journal)", sweep_dir, len(trials))
            plan = plan_resume(trials, meta.get("launcher"), self.runner.kind)
            self.carry_out(plan)
            in_flight = [t.number for t in plan.in_flight]
            self.results.progress.resume(self.results.progress.done, carried_over=in_flight)
        self.results.progress.count_elapsed_from(run_started, ran_before)
        self.results.progress.beat = Heartbeat(self.journal)
        self._log_start(sweep_dir)

    def _log_start(self, sweep_dir: Path) -> None:
        log.info(
            "SigOpt sweep '%s': backend %s (experiment %s), budget %s, parallel_bandwidth %d, scheduler %s",
            self.definition.name,
            self.backend.name,
            self.backend.experiment_id,
            self.definition.observation_budget,
            self.definition.parallel_bandwidth,
            self.runner.describe(),
        )
        log.info("Sweep dir: %s", sweep_dir)
        log.info("Metrics: %s", describe_metrics(self.definition.metrics))
        for line in self.definition.space.describe():
            log.info("  %s", line)

    def carry_out(self, plan: ResumePlan) -> None:
        self.backend.restore(
            [past_observation(t) for t in plan.observed],
            open_suggestion_ids=plan.open_suggestion_ids,
            used_suggestion_ids=plan.used_suggestion_ids,
        )
        for t in plan.observed:
            self._count(t, t.values)
        for t in plan.to_post:
            self._post_left_over(t)
            self._count(t, t.values)
        # Before any trial is re-attached: the runner's next outcomes are then these trials' alone.
        self._recover([t for t in plan.maybe_finished if self._wrote_result_since_created(t)])
        for t in plan.in_flight:
            self._reattach_or_rerun(t, plan.same_launcher)
        self.stopped_unended = plan.stopped_unended

    def _post_left_over(self, trial: Trial) -> None:
        """A result journaled before the restart: posted now, unless the engine has it (posted just before the stop)."""
        posted = self.backend.find_observation(suggestion_of(trial))
        if posted is not None:
            log.info("Trial #%d's observation was posted before the restart (observation %s)", trial.number, posted)
            self.journal.mark_observed(trial.number, posted)
            return
        log.info("Trial #%d finished before the restart; posting its observation now", trial.number)
        self.results.observe(trial.number, suggestion_of(trial), trial.values, trial.observed_as_failed)

    def _count(self, trial: Trial, values: tuple[MetricValue, ...]) -> None:
        failed, stopped = trial.state == FAILED, trial.state == STOPPED  # a stopped trial is no failure of the app
        self.results.count_finished(trial.number, failed, values, stopped, trial.task)
        self.scheduler.count_finished(failed, cost_of(self.definition.tasks, trial.task))

    # ------------------------------------------------------------------ results of abandoned trials

    def _wrote_result_since_created(self, trial: Trial) -> bool:
        """Whether the trial's job left a result file, written after the trial was (not an older job's)."""
        if trial.job_id is None or self.runner.submitit_folder is None:
            return False
        try:
            return job_result_file(self.runner.submitit_folder, trial.job_id).stat().st_mtime >= trial.created_at
        except OSError:
            return False

    def _recover(self, trials: Sequence[Trial]) -> None:
        """Read the results the jobs of abandoned trials wrote after all; use the valid ones."""
        by_number = {t.number: t for t in trials if self.runner.reattach(t.number, str(t.job_id))}
        for outcome in self._outcomes_of(set(by_number)):
            self._use_if_valid(by_number[outcome.number], outcome)

    def _outcomes_of(self, numbers: set[int], patience_s: float = 60.0) -> list[JobOutcome]:
        """The runner's outcomes of these re-attached trials, whose results are there already."""
        outcomes: list[JobOutcome] = []
        deadline = time.monotonic() + patience_s
        while len(outcomes) < len(numbers) and time.monotonic() < deadline:
            outcomes += [o for o in self.runner.wait(timeout=1.0) if o.number in numbers]
        missing = numbers - {o.number for o in outcomes}
        if missing:  # not seen: the loop receives them later and drops them (they stay abandoned)
            log.warning("Results of abandoned trials %s could not be read in %g s", sorted(missing), patience_s)
        return outcomes

    def _use_if_valid(self, trial: Trial, outcome: JobOutcome) -> None:
        values, outcome = self.results.read_values(outcome)
        if outcome.reason is not None:
            log.info(
                "Trial #%d was abandoned; its job %s ended with a failure since (%s), most likely of its cancellation:"
                " it stays abandoned",
                trial.number,
                trial.job_id,
                outcome.reason,
            )
            return
        # Its job trained on after the last sweeper's last read: the step it reached, and the steps the
        # budget counts, are those it reported (journaled before its result, as a running trial's are).
        self.journal_last_reports([trial.number])
        self.journal.recover_result(
            trial.number, values=values, started_at=outcome.started_at, ended_at=outcome.ended_at, host=outcome.host
        )
        log.info(
            "Trial #%d was abandoned, but its job %s finished with a result: recorded, and posted now",
            trial.number,
            trial.job_id,
        )
        self.results.observe(trial.number, suggestion_of(trial), values, False)  # metadata from the journal row
        self._count(trial, values)

    # ------------------------------------------------------------------ trials in flight

    def _reattach_or_rerun(self, trial: Trial, same_launcher: bool) -> None:
        job_id = trial.job_id or (self._unjournaled_job(trial) if same_launcher else None)
        if job_id and same_launcher and self.runner.reattach(trial.number, job_id):
            log.info("Trial #%d: re-attached to job %s, still running or finished since", trial.number, job_id)
            if job_id != trial.job_id:
                self.journal.mark_running([trial.number], [job_id])
            self.scheduler.adopt(trial.number, suggestion_of(trial))
            return
        why = self._why_lost(trial, same_launcher)
        log.info("Trial #%d is re-run under a new job number: %s", trial.number, why)
        self.journal.mark_abandoned(trial.number, f"re-run after restart: {why}")
        self.scheduler.reruns.append((trial.number, suggestion_of(trial)))  # a SigOpt server keeps it open for it

    def _unjournaled_job(self, trial: Trial) -> str | None:
        """The job of a pending trial whose submission the journal missed (a crash right after it)."""
        if trial.state != PENDING:
            return None
        known = {t.job_id for t in self.journal.trials() if t.job_id}
        job_id = self.runner.find_job(trial.number, trial.overrides, known)
        if job_id is not None:
            log.info("Trial #%d: found its job %s, submitted just before the sweeper stopped", trial.number, job_id)
        return job_id

    def _why_lost(self, trial: Trial, same_launcher: bool) -> str:
        refused = never_submitted(self.journal.meta(), trial)
        if refused is not None:
            return f"its job was never submitted (refused: {refused})"
        if trial.state == PENDING:
            return "its job never started (the sweeper stopped before submitting it)"
        if trial.job_id and same_launcher and self.runner.submitit_folder is not None:
            return f"its job {trial.job_id} is gone without a result (ended, killed, or unknown to {self.runner.kind})"
        return f"it ran inside the stopped sweeper process ({self.runner.describe()} cannot re-attach)"
