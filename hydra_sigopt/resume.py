"""Opening a sweep dir's journal, and resuming what it holds.

:func:`locked_journal` takes the sweep dir's lock and creates the journal of a new sweep or opens
an existing one, refusing a changed definition or backend. :func:`plan_resume` reads the journal
into a :class:`ResumePlan` (what to replay into the engine, post, re-attach or re-run), without any
effect; :class:`Resumption` starts the experiment and carries the plan out.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt import __version__, sweepdir
from hydra_sigopt.backends import Backend, PastObservation, Suggestion
from hydra_sigopt.backends.api_identity import CREATED_KEY, TAG_KEY, ExperimentNotThisSweepsError
from hydra_sigopt.continuation import same_command_line
from hydra_sigopt.copies import LOCATION, jobs_of_a_gone_original, location_of, original_of, why_original_runs
from hydra_sigopt.crashpoints import crash_point
from hydra_sigopt.errors import ConfigError, JournalError, SweepAbortedError, SweepDirTaken
from hydra_sigopt.experiment import ExperimentDefinition, describe_identity_change
from hydra_sigopt.journal import (
    ABANDONED,
    COMPLETED,
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
from hydra_sigopt.kept_returns import forget_kept, kept_failure, kept_return
from hydra_sigopt.metrics import MetricValue, describe_metrics
from hydra_sigopt.processes import job_result_file, result_written_at, this_process_started_at
from hydra_sigopt.report_files import output_dir, trial_folder, trials_root
from hydra_sigopt.reports import budget_spent
from hydra_sigopt.results import Results
from hydra_sigopt.runners import JobOutcome, TrialRunner
from hydra_sigopt.scheduler import Scheduler
from hydra_sigopt.sweeper_time import AliveMark, Heartbeat, last_alive, start_run
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
            _refuse_another_sweep(journal.meta(), sweep_dir, definition, backend_name, command)
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
    backend.sweep_id = uuid.uuid4().hex  # before the experiment, whose metadata names its sweep
    experiment_id = backend.start(definition)
    return Journal.create(
        sweep_dir,
        {
            "sweep_id": backend.sweep_id,
            "experiment_id": experiment_id,
            "experiment_shared": backend.experiment_shared,
            CREATED_KEY: backend.experiment_created,
            TAG_KEY: backend.experiment_tag,
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
    stored: Mapping[str, Any],
    sweep_dir: Path,
    definition: ExperimentDefinition,
    backend_name: str,
    command: Mapping[str, Any],
) -> None:
    """Raise unless the journal's sweep has this definition and backend."""
    if stored.get("fingerprint") != definition.fingerprint():
        changes = describe_identity_change(stored.get("identity", {}), definition.identity())
        raise JournalError(
            f"the sweep in {sweep_dir} was started with a different experiment definition: "
            + "; ".join(changes or ["(definition differs)"])
            + ". "
            + _how_to_continue(sweep_dir, stored.get("command") or {}, command)
        )
    if stored.get("backend") != backend_name:
        raise JournalError(
            f"the sweep in {sweep_dir} uses backend {stored.get('backend')!r}, not "
            f"{backend_name!r}; set hydra.sweeper.backend={stored.get('backend')} to continue it"
        )


def _how_to_continue(sweep_dir: Path, started: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """The way on from a changed definition. Run with the command line the sweep was started with
    (``hydra-sigopt continue DIR --run`` after editing config.yaml), the change is in the config
    files, and the old advice, to run that command, pointed at the very command refused."""
    new_sweep = "use another hydra.sweep.dir (Hydra's default makes a new one per run)"
    if same_command_line(started, now):
        return (
            "The command line is the one the sweep was started with, so this changed in the app's config files "
            "(hydra.sweeper.* in its YAML): to continue this sweep, change them back; "
            f"to search the new space, {new_sweep}."
        )
    return (
        f"To start a new sweep instead, {new_sweep}; to continue this one, run the command it was started with "
        f"(hydra-sigopt continue {sweep_dir} prints it)."
    )


def _refuse_a_copy_of_a_running_sweep(meta: Mapping[str, Any], trials: Sequence[Trial], sweep_dir: Path) -> None:
    """A copy of a sweep dir (a backup) is resumed only once its original has ended: it would
    re-attach the original's jobs, whose results go to the original's folder, and cancel them on its
    stop. Resumed after that (the original lost), the copy becomes the sweep: its own dir is noted."""
    original = original_of(sweep_dir, meta)
    gone = jobs_of_a_gone_original(sweep_dir, original, meta, trials) if original is not None else None
    if gone is not None:
        raise JournalError(f"{sweep_dir} is a copy of another sweep dir, and {gone}; nothing was started")
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
    #: Trials running in the sweeper's own process when it ended (the basic launcher): said on resume.
    ended_here: tuple[int, ...] = ()
    #: Stopped early and not observed (their jobs had not ended), started by this run's launcher:
    #: their jobs may still run, and the sweeper that would have cancelled them is gone.
    stopped_unended: tuple[Trial, ...] = ()
    #: Every suggestion the journal holds, those of abandoned trials too.
    used_suggestion_ids: tuple[str, ...] = ()

    @property
    def open_suggestion_ids(self) -> list[str]:
        """The suggestions still in use: a result not posted yet is posted with its own (issue 15)."""
        return [t.suggestion_id for t in (*self.to_post, *self.in_flight) if t.suggestion_id]


#: The launcher whose trials run in the sweeper's own process (Hydra's basic launcher, as journaled).
IN_PROCESS_LAUNCHER = "BasicLauncher"
#: How to keep a sweep safe from a trial that ends its process.
JOBS_ADVICE = (
    "a trial that ends its process (os._exit, a native crash, the out-of-memory killer) ends an in-process sweep "
    "with it, whatever the exit status says: run each trial as a job of its own, hydra/launcher=submitit_local "
    "(or submitit_slurm)"
)


def ended_the_sweepers_process(numbers: Sequence[int]) -> str:
    """What the trials the sweeper's process was running when it ended tell: nothing of ours ran after
    it (os._exit skips every handler; its exit status may be 0), so a later status or resume says it.
    A batch of the basic launcher is journaled running whole, and runs one trial at a time."""
    # A stop on a journal it could not write (a full disk) leaves the batch running there too, and its log says so.
    how = (
        "the app called os._exit or the process was killed, "
        "unless the sweep's log says it stopped on a journal it could not write"
    )
    return f"{_which_ended(numbers)} was running in the sweeper's process when it ended ({how})"


def ended_the_sweepers_process_in_lines(numbers: Sequence[int]) -> list[str]:
    """The same and the advice as ``hydra-sigopt status`` shows them: the fact, then the cause and what
    to do on lines of their own (in one line they ran to about 450 characters)."""
    return [
        f"{_which_ended(numbers)} was running in the sweeper's process when it ended",
        "(the app called os._exit or the process was killed, unless the log says the journal could not be written)",
        "Run trials as jobs so that one cannot end the sweep: hydra/launcher=submitit_local (or submitit_slurm)",
    ]


def _which_ended(numbers: Sequence[int]) -> str:
    return f"Trial #{numbers[0]}" if len(numbers) == 1 else f"One of trials {', '.join(f'#{n}' for n in numbers)}"


def the_one_running(numbers: Sequence[int], sweep_dir: Path) -> tuple[list[int], set[int]]:
    """Of the in-process trials a sweeper's process ended with (none had kept its end), the one it
    ended in, and those of its batch that had not started. The basic launcher runs a batch's trials one
    after the other, in order, and each notes its output folder as it starts: the last that noted one
    was running, and those after it had not started (naming them all, "One of trials #1, #2", left the
    user to guess which trial to look into). With no note (a disk refusing writes), all of them, as
    before: any may have run."""
    root = trials_root(sweep_dir)
    started = [n for n in numbers if output_dir(root, n) is not None]
    if not started:
        return list(numbers), set()
    running = max(started)
    return [running], {n for n in numbers if n > running}


def ended_with_the_sweeper(launcher: str | None, trials: Sequence[Trial]) -> list[int]:
    """The trials of an in-process sweep the journal shows running: the sweeper's process ended with one
    of them (its own end would have recorded them). Only where no sweeper holds the sweep."""
    return [t.number for t in trials if t.state == RUNNING] if launcher == IN_PROCESS_LAUNCHER else []


def plan_resume(trials: Sequence[Trial], previous_launcher: str | None, launcher: str) -> ResumePlan:
    same_launcher = previous_launcher == launcher
    return ResumePlan(
        ended_here=tuple(ended_with_the_sweeper(previous_launcher, trials)),
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
        #: After a resume: the in-process trials recorded from the value they kept (see kept_returns).
        self.recorded_from_kept: set[int] = set()
        #: After a resume: the in-process trials of the batch that had not started when the sweeper's process ended.
        self.not_started: set[int] = set()
        self.journal = journal
        self.backend = backend
        self.runner = runner
        self.scheduler = scheduler
        self.results = results

    def start_or_resume(self, sweep_dir: Path, mark: AliveMark) -> None:
        """Start or re-open the experiment; resume the journal's trials, if it has any. ``mark``: the
        run's :class:`AliveMark`, started here (its owner stops it, however the run ends)."""
        run_started = time.time()
        ran_before = start_run(self.journal, run_started, last_alive(sweep_dir))
        # Where this sweep's dir is: a copy of it (a backup) must not act on its jobs (hydra_sigopt.copies).
        self.journal.set_meta(**{LOCATION: location_of(sweep_dir)})
        trials = self.journal.trials()
        meta = self.journal.meta()
        self._keep_the_name(meta)
        self.backend.expected_created, self.backend.expected_tag = meta.get(CREATED_KEY), meta.get(TAG_KEY)
        try:
            experiment_id = self.backend.start(self.definition, resume_id=meta.get("experiment_id"))
        except ExperimentNotThisSweepsError as exc:
            self.backend.experiment_id = None  # nothing more is sent to it (no suggestion released there)
            log.error("%s; %s", exc, exc.advice(sweep_dir))
            raise SweepAbortedError(f"{exc}; {exc.advice(sweep_dir)}") from None
        if meta.get(CREATED_KEY) is None and self.backend.experiment_created is not None:
            self.journal.set_meta(**{CREATED_KEY: self.backend.experiment_created})  # a journal from before the record
        if meta.get(TAG_KEY) is None and self.backend.experiment_tag is not None:
            self.journal.set_meta(**{TAG_KEY: self.backend.experiment_tag})
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
            self.carry_out(plan, sweep_dir)
            in_flight = [t.number for t in plan.in_flight if t.number not in self.recorded_from_kept]
            self.results.progress.resume(self.results.progress.done, carried_over=in_flight)
        self.results.progress.count_elapsed_from(run_started, ran_before)
        mark.start()  # read above (last_alive) before this run touches it
        self.results.progress.beat = Heartbeat(self.journal, mark=mark)
        self._log_start(sweep_dir)

    def _keep_the_name(self, meta: Mapping[str, Any]) -> None:
        """A sweep keeps the name it started with: the name is cosmetic, and may come from the time
        (``${now:...}`` in the command the interrupted sweep printed)."""
        started_as = str(meta.get("name") or self.definition.name)
        if started_as != self.definition.name:
            log.info("hydra.sweeper.name gives %r now; the sweep keeps the name it started with", self.definition.name)
            self.definition = dataclasses.replace(self.definition, name=started_as)

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

    def carry_out(self, plan: ResumePlan, sweep_dir: Path) -> None:
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
        self.recorded_from_kept = self._record_kept_returns(plan.ended_here, sweep_dir)
        _forget_kept_ends_of_recorded_trials(self.journal.trials(), sweep_dir)
        ended_here = [n for n in plan.ended_here if n not in self.recorded_from_kept]
        running, self.not_started = the_one_running(ended_here, sweep_dir)
        if running:  # the sweeper's process ended with a trial: nothing could say so then
            log.warning("%s; %s", ended_the_sweepers_process(running), JOBS_ADVICE)
        for t in plan.in_flight:
            if t.number not in self.recorded_from_kept:
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

    # ------------------------------------------------------------------ in-process trials that had returned

    def _record_kept_returns(self, numbers: Sequence[int], sweep_dir: Path) -> set[int]:
        """Record the trials of an in-process batch whose task had returned (or raised) when the sweeper's
        process ended (their ends came back only with the whole batch's): from the value (or failure)
        each kept beside it (see kept_returns), journaled, counted and posted as the batch's end would
        have; not run again. Those without one (the trial that was running, those not started) are run
        again."""
        recorded: set[int] = set()
        for number in numbers:
            outcome = _kept_outcome(number, trial_folder(trials_root(sweep_dir), number))
            if outcome is None:
                continue
            trial = self.journal.trial(number)
            self.journal_last_reports([number])  # reported after the last sweeper's last read of them
            result = self.results.record(outcome, suggestion_of(trial))
            if result is None:  # abandoned meanwhile (hydra-sigopt kill): run again
                continue
            if outcome.ok:
                log.info("Trial #%d had returned before the sweeper's process ended: its result is recorded", number)
            else:
                log.info("Trial #%d had failed before the sweeper's process ended: it is recorded as failed", number)
            self.results.observe(number, result.suggestion, result.values, result.failed)
            self.scheduler.count_finished(result.failed, cost_of(self.definition.tasks, trial.task))
            recorded.add(number)
        return recorded

    # ------------------------------------------------------------------ results of abandoned trials

    def _wrote_result_since_created(self, trial: Trial) -> bool:
        """Whether the trial's job left its result file (not an older job's of the same id; see
        result_written_at)."""
        if trial.job_id is None or self.runner.submitit_folder is None:
            return False
        result = job_result_file(self.runner.submitit_folder, trial.job_id)
        # Rank 0's is enough to try: the re-attached job is then waited for until every rank's end.
        return result_written_at(result, trial.created_at, self.runner.kind, every_task=False) is not None

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
        self.journal.mark_abandoned(trial.number, f"re-run after restart: {why}", trial.number in self.not_started)
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
        if trial.number in self.not_started:
            return "it had not started in its batch when the sweeper's process ended"
        if trial.job_id and same_launcher and self.runner.submitit_folder is not None:
            return f"its job {trial.job_id} is gone without a result (ended, killed, or unknown to {self.runner.kind})"
        return f"it ran inside the stopped sweeper process ({self.runner.describe()} cannot re-attach)"


def _kept_outcome(number: int, folder: Path) -> JobOutcome | None:
    """How an in-process trial ended, as it kept it beside it (see kept_returns); None: it kept nothing."""
    kept = kept_return(folder)
    if kept is not None:
        return JobOutcome(number, True, kept.value, started_at=kept.started_at, ended_at=kept.ended_at, host=kept.host)
    failure = kept_failure(folder)
    if failure is None:
        return None
    return JobOutcome(
        number,
        False,
        reason=failure.reason,
        traceback=failure.traceback or None,
        started_at=failure.started_at,
        ended_at=failure.ended_at,
        host=failure.host,
        full_log=failure.full_log,
    )


def _forget_kept_ends_of_recorded_trials(trials: Sequence[Trial], sweep_dir: Path) -> None:
    """Remove the ends in-process trials kept that the journal has (a sweeper killed between the
    journal's record and the file's removal left them; never read again: see kept_returns)."""
    root = trials_root(sweep_dir)
    for t in trials:
        if t.state in (COMPLETED, FAILED, ABANDONED):
            forget_kept(trial_folder(root, t.number))
