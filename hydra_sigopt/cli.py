"""The ``hydra-sigopt`` command: install the engine; inspect, continue, kill and delete sweeps.

The original Sigopt-Hyperopt tool's commands map here: ``start`` is the Hydra app itself
(``python train.py -m``), ``continue`` / ``kill_jobs`` / ``delete`` are ``continue`` / ``kill`` /
``delete`` below.
"""

from __future__ import annotations

import argparse
import csv
import errno
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_sigopt import copies, driver, sweepdir
from hydra_sigopt.errors import JournalError, SigOptSweeperError, SweepAbortedError
from hydra_sigopt.journal import (
    ABANDONED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    STOPPED,
    Journal,
    SweepLock,
    Trial,
    journal_path,
    open_journal,
)
from hydra_sigopt.kept_returns import RETURNED_NAME, raised_at, returned_at
from hydra_sigopt.metrics import InvalidResult, parse_result
from hydra_sigopt.observations import released_already, suggestions_in_use
from hydra_sigopt.processes import job_result_file, local_job_running, result_written_at, results_of_every_task
from hydra_sigopt.progress import format_duration
from hydra_sigopt.report_files import output_dir, stop_seen, trial_folder, trials_root
from hydra_sigopt.reports import (
    RESULTS_NAME,
    TRIALS_NAME,
    budget_spent,
    cheaper_tasks,
    metrics_from_meta,
    no_best,
    pasteable_overrides,
    rerun_arguments,
    rerun_overrides,
    results_document,
    shared_overrides,
    summarize,
    swept_overrides,
    why_no_best,
)
from hydra_sigopt.result_pickle import UNKNOWN, Outcome, kept_value_in_pickle, outcome_in_pickle
from hydra_sigopt.resume import (
    IN_PROCESS_LAUNCHER,
    ended_the_sweepers_process_in_lines,
    ended_with_the_sweeper,
    the_one_running,
)
from hydra_sigopt.runners.slurm import WAITING_STATES, queue_states, slurm_jobs_not_ending
from hydra_sigopt.secrets import has_development_token
from hydra_sigopt.stopping import forget_kill, request_kill
from hydra_sigopt.sweeper_time import last_alive, runs_of, time_between, time_ran, with_last_sign
from hydra_sigopt.unsubmitted import never_submitted
from hydra_sigopt.watch import DEFAULT_EVERY_S, watch

if TYPE_CHECKING:
    from hydra_sigopt.backends import Backend

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # what a shell reports for a Unix tool whose reader went away


class UsageError(SigOptSweeperError):
    """A command-line argument is invalid."""


class NotStartedError(SigOptSweeperError):
    """A sweep submitted with ``hydra-sigopt submit`` whose driver job has not started it."""


#: How long kill and delete keep trying a SigOpt server out of reach.
COMMAND_UNREACHABLE_S = 10.0


def _out(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------- install-engine


def _install_engine(args: argparse.Namespace) -> int:
    from hydra_sigopt.backends.lite import install_command, load_local_driver

    command = install_command()
    _out("Installing the local SigOpt engine without its stale pins:\n  " + " ".join(command))
    if args.dry_run:
        return 0
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        print("pip failed; see its output above.", file=sys.stderr)
        return done.returncode
    load_local_driver()
    _out("The local engine (sigoptlite) imports and is ready.")
    return 0


# ---------------------------------------------------------------------- status / best


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _driver_job(sweep_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The record of the driver job of a sweep started by ``hydra-sigopt submit``, and its state in
    Slurm's queue (None: gone from it)."""
    record = driver.read_record(sweep_dir)
    return record, None if record is None else driver.driver_state(str(record["job_id"]))


def _driver_line(record: dict[str, Any], state: str | None, original: str | None) -> str:
    """The driver job, and where its log is (``original``: this dir is a copy of that sweep's, whose driver it is)."""
    where = f"{state.lower()}, log {record['log']}" if state else f"ended, log {record['log']}"
    whose = "the original's, " if original else ""
    return f"Driver:      {whose}Slurm job {record['job_id']} ({where})"


def _code_line(sweep_dir: Path, code: dict[str, Any]) -> str:
    """Where the trials' code came from: the snapshot and its commit, or the working tree; then the
    code of each resume that ran other code, from its first trial on."""
    from hydra_sigopt.snapshot import describe_identity

    def source(record: dict[str, Any]) -> str:
        if record.get("mode", "none") == "none":
            return f"working tree ({describe_identity(record)}; no snapshot: edits reach trials started after them)"
        folder = sweep_dir.resolve() / str(record.get("dir"))
        return f"snapshot ({record['mode']}) {folder} of {record.get('root')}: {describe_identity(record)}"

    resumes = [f"from trial #{r.get('from_trial', '?')} (resumed): {source(r)}" for r in code.get("resumed_with", [])]
    return f"\n{'':13}".join([source(code), *resumes])


def _status_or_watch(args: argparse.Namespace) -> int:
    """``status``, or with ``--watch`` the same drawn again every few seconds until the sweep ends."""
    if args.watch is None:
        return _status(args)
    title = f"Every {args.watch:g} s: hydra-sigopt status {args.sweep_dir} (Ctrl-C stops watching, not the sweep)"
    return watch(Path(args.sweep_dir), args.watch, lambda: _status(args), title)


def _status(args: argparse.Namespace) -> int:
    record, driver_state = _driver_job(Path(args.sweep_dir))
    original = _copy_of(Path(args.sweep_dir))
    if original is not None:  # its journal and driver record are the original's, as they were when copied
        _out(f"Copy of:     {original} (this folder is a copy; the driver and jobs below are the original's)")
    if record is not None:
        _out(_driver_line(record, driver_state, original))
        if not journal_path(Path(args.sweep_dir)).exists():
            _out("Trials:      none yet (the driver job has not started the sweep)")
            return 0
    with open_journal(args.sweep_dir) as journal:
        meta = journal.meta()
        trials = journal.trials()
        last_steps = journal.reports.last_steps()
    metrics = metrics_from_meta(meta)
    summary = summarize(trials, metrics, cheaper_tasks(meta))
    budget = _observation_budget(meta)
    now = time.time()
    started = float(meta.get("created_at", now))
    holder, unknown = _lock_holder(Path(args.sweep_dir))
    maybe_held = holder is not None or unknown is not None
    # Trials whose job a stop found refused (never submitted): pending, and nothing of them runs.
    unsubmitted = {t.number: why for t in trials if (why := never_submitted(meta, t)) is not None}
    lost = [
        t for t in _lost_with_the_sweeper(meta, trials, maybe_held, Path(args.sweep_dir)) if t.number not in unsubmitted
    ]
    ended_in, not_started = _the_one_running(meta, lost, Path(args.sweep_dir))
    lost = [t for t in lost if t.number not in not_started]
    unread = {} if maybe_held else _ended_unread(meta, trials, Path(args.sweep_dir))
    returned = _returned_in_the_batch(meta, trials, Path(args.sweep_dir)) if holder is not None else {}
    in_batch = _waiting_in_the_batch(meta, trials, returned) if holder is not None else {}
    to_submit = _waiting_to_be_submitted(meta, trials, holder) - unsubmitted.keys()
    idle = {*unread, *unsubmitted, *to_submit, *returned, *in_batch, *not_started}
    _out(f"Sweep:       {Path(args.sweep_dir).resolve()}")
    _out(
        f"Experiment:  {meta.get('name')} (backend {meta.get('backend')}, experiment {meta.get('experiment_id')}, "
        f"launcher {meta.get('launcher', '?')})"
    )
    if meta.get("code"):
        _out(f"Code:        {_code_line(Path(args.sweep_dir), meta['code'])}")
    done, spent = summary.done, budget_spent(meta, trials)
    stopped = f", {summary.stopped} stopped early" if summary.stopped else ""
    # Multitask: the budget counts costs, not trials.
    counted = f"{done} done, {spent:.4g}/{budget} of the budget spent" if meta["identity"].get("tasks") else None
    in_queue = _slurm_queue(meta, trials)
    queued = sum(1 for state, _ in in_queue.values() if state in WAITING_STATES)
    _out(
        f"Trials:      {counted or f'{done}/{budget} done'} ({summary.completed} completed{stopped}, "
        f"{summary.failed} failed), {summary.running - queued - len(lost) - len(idle)} running"
        f"{f', {queued} queued' if queued else ''}"
        f"{f', {len(to_submit)} waiting to be submitted' if to_submit else ''}"
        f"{f', {len(in_batch)} waiting in the batch' if in_batch else ''}"
        f"{f', {len(unread)} ended while no sweeper ran (recorded on resume)' if unread else ''}"
        f"{f', {len(returned)} returned (recorded when its batch ends)' if returned else ''}"
        f"{f', {len(lost)} lost with the sweeper (run again on resume)' if lost else ''}"
        f"{f', {len(not_started)} not started in its batch (run on resume)' if not_started else ''}"
        f"{f', {len(unsubmitted)} never submitted (submitted on resume)' if unsubmitted else ''}{_abandoned(trials)}"
    )
    if ended_in:
        first, *detail = ended_the_sweepers_process_in_lines(ended_in)
        _out(f"Ended:       {first}")
        for line in detail:
            _out(f"             {line}")
    if meta.get("step_budget") is not None:  # the budget a sweep with early stopping ends on, often
        _out(f"Steps:       {sum(last_steps.values())}/{meta['step_budget']} reported (early_stopping.step_budget)")
    if unposted := _unposted(trials, holder is not None):
        _out(f"Unposted:    {unposted}")
    why_ended = _why_ended(Path(args.sweep_dir), meta, trials, last_steps)
    queued_driver = f"Slurm job {record['job_id']}, is {driver_state.lower()}" if record and driver_state else None
    if original is not None and why_ended is None:
        _out(f"Sweeper:     {_copys_sweeper(Path(args.sweep_dir), original, meta, trials)}")
    else:
        _out(f"Sweeper:     {_sweeper(Path(args.sweep_dir), holder, unknown, why_ended, queued_driver)}")
    elapsed = _elapsed(meta, trials, now if holder is not None else None, Path(args.sweep_dir))
    _out(f"Elapsed:     {elapsed} (started {time.ctime(started)})")
    optimized = [m for m in metrics if m.strategy == "optimize"]
    fixed = shared_overrides(meta)
    if summary.best and len(optimized) == 1:
        b = summary.best[0]
        _out(
            f"Best:        {optimized[0].name}={_fmt(b.value(optimized[0].name))} (trial #{b.number}): "
            f"{pasteable_overrides(b, fixed)}"
        )
        # The line above holds the searched values only: pasted alone, it lost the sweep's own overrides.
        _out(
            f"             every override to rerun it, fixed ones too: hydra-sigopt best {shlex.quote(args.sweep_dir)}"
        )
    elif summary.best:
        count = f"{len(summary.best)} trial{'s' if len(summary.best) > 1 else ''}"
        _out(f"Pareto set:  {count}: {', '.join(f'#{t.number}' for t in summary.best)}")
        _out(f"             every override to rerun each: hydra-sigopt best {shlex.quote(args.sweep_dir)}")
    else:
        none = why_no_best(trials, metrics, cheaper_tasks(meta))
        _out(f"Best:        {none[0].lower()}{none[1:]}{'' if why_ended else ' yet'}")
    running = [t for t in trials if t.state in (PENDING, RUNNING)]
    if running:
        heading = "Running:" if not (lost or idle) else "Unfinished:"
        _out(heading if original is None else f"{heading[:-1]} (the original's trials, as copied; their jobs are its):")
        for t in running:
            since = f"for {format_duration(now - t.started_at)}" if t.started_at else "not started"
            state, reason = in_queue.get(str(t.job_id), (t.state, None))
            slurm = f" (Slurm: {state.lower()}{f', {reason}' if reason else ''})" if str(t.job_id) in in_queue else ""
            if t in lost:
                _out(f"  #{t.number:<4} job {t.job_id or '-':<10} lost with the sweeper (run again on resume)")
                continue
            if t.number in not_started:
                _out(f"  #{t.number:<4} job {'-':<10} not started in its batch (run on resume)")
                continue
            if t.number in unsubmitted:
                _out(f"  #{t.number:<4} job {'-':<10} never submitted ({unsubmitted[t.number]}); submitted on resume")
                continue
            if t.number in to_submit:
                _out(f"  #{t.number:<4} job {'-':<10} waiting to be submitted (the sweeper submits its job)")
                continue
            if t.number in in_batch:
                _out(f"  #{t.number:<4} job {'-':<10} waiting in the batch (runs after #{in_batch[t.number]})")
                continue
            if t.number in returned:
                ago = _ago(now, returned[t.number])
                ended = "failed" if _raised(t, Path(args.sweep_dir)) else "returned"
                _out(f"  #{t.number:<4} job {'-':<10} {ended} {ago} ago (recorded when its batch ends)")
                continue
            if t.number in unread:
                ago = _ago(now, unread[t.number])
                _out(f"  #{t.number:<4} job {t.job_id or '-':<10} ended {ago} ago (its result is recorded on resume)")
                continue
            shown = "queued" if state in WAITING_STATES else t.state  # a pending job is not running yet
            _out(f"  #{t.number:<4} job {t.job_id or '-':<10} {shown:<8} {since}{slurm}")
    if args.all:
        _out()
        _out(_trials_table(trials, metrics, fixed, with_tasks=bool(meta["identity"].get("tasks"))))
    return 0


def _observation_budget(meta: Mapping[str, Any]) -> float:
    """The sweep's budget as journaled: trials, or with tasks costs (4.5 stays 4.5, not 4)."""
    budget = meta.get("observation_budget", 0)
    return budget if isinstance(budget, (int, float)) else 0


def _unposted(trials: Sequence[Trial], held: bool) -> str:
    """The finished trials whose results the engine does not have yet (a server slow to answer, or
    out of reach for a while: the sweeper records the trials that end meanwhile, and posts them
    once it answers), and who posts them; '' if none."""
    numbers = [f"#{t.number}" for t in trials if t.state in (COMPLETED, FAILED, STOPPED) and not t.observed]
    if not numbers:
        return ""
    who = "the sweeper posts them once the engine answers" if held else "a resumed sweep posts them"
    return f"{', '.join(numbers)}: ended and recorded, not posted to the engine yet ({who})"


def _elapsed(meta: dict[str, Any], trials: Sequence[Trial], until: float | None, sweep_dir: Path) -> str:
    """The time sweepers ran the sweep, as the progress line counts it (``until``: one runs now),
    and, where it was down between runs, that this time is left out."""
    runs = runs_of(meta, trials) if until is not None else with_last_sign(runs_of(meta, trials), last_alive(sweep_dir))
    ran, down = time_ran(runs, until), time_between(runs, until)
    if down < 1:
        return format_duration(ran)
    return f"{format_duration(ran)} with a sweeper running, not counting {format_duration(down)} between runs"


#: Launchers whose trials run as jobs of their own, which outlive a sweeper killed (submitit's).
JOB_LAUNCHERS = ("local", "slurm")


def _lock_holder(sweep_dir: Path) -> tuple[tuple[int, str] | None, str | None]:
    """(pid, host) of the sweeper holding the sweep (None: no sweeper), and why that cannot be told
    (None: it can; a read-only copy of someone's sweep, whose lock cannot be tried here)."""
    try:
        return SweepLock(sweep_dir).holder(), None
    except OSError as exc:
        return None, str(exc.strerror)


def _lost_with_the_sweeper(
    meta: dict[str, Any], trials: Sequence[Trial], maybe_held: bool, sweep_dir: Path
) -> list[Trial]:
    """The unfinished trials that died with the sweeper when none holds the sweep (``maybe_held``:
    one does, or who does cannot be told), whatever the journal last said: those that ran in its
    process; on submitit_local, those whose job is gone without a result (a hang-up of the terminal
    ends the jobs with the sweeper), where this host is the one they ran on."""
    if maybe_held:
        return []
    unfinished = [t for t in trials if t.state in (PENDING, RUNNING)]
    if meta.get("launcher") == "local" and SweepLock(sweep_dir).last_host() == socket.gethostname():
        folder = meta.get("submitit_folder")
        return [t for t in unfinished if not _wrote_result(meta, t) and not _local_job_alive(t, folder)]
    if meta.get("launcher") in JOB_LAUNCHERS:
        return []
    return [t for t in unfinished if _returned_at(meta, t, sweep_dir) is None]  # one that had returned is not lost


def _the_one_running(meta: dict[str, Any], lost: Sequence[Trial], sweep_dir: Path) -> tuple[list[int], set[int]]:
    """Of the trials lost with an in-process sweeper's process, the one it ended in and those of its
    batch that had not started (see resume.the_one_running): counted as lost, a kill at a batch's
    first trial read as three trials' work gone."""
    ended_here = ended_with_the_sweeper(meta.get("launcher"), lost)
    return the_one_running(ended_here, sweep_dir) if ended_here else ([], set())


def _waiting_to_be_submitted(meta: dict[str, Any], trials: Sequence[Trial], holder: tuple[int, str] | None) -> set[int]:
    """The trials a running sweeper has taken whose job it has not submitted yet: its sbatch is under
    way or was refused for now (a slurmctld outage: it is tried again, with backoff). No job of them
    exists, so they are not running. Only while a sweeper holds the sweep: a trial left without a job
    by a sweeper that died is another case (its job may have been submitted and not journaled)."""
    if holder is None or meta.get("launcher") not in JOB_LAUNCHERS:
        return set()
    return {t.number for t in trials if t.state == PENDING and not t.job_id}


def _ago(now: float, at: float) -> str:
    """How long ago a file was written: its time is its file server's, and one ahead of this host's
    would give a negative age."""
    return format_duration(max(0.0, now - at))


def _ended_unread(meta: dict[str, Any], trials: Sequence[Trial], sweep_dir: Path) -> dict[int, float]:
    """The unfinished trials whose job has ended while no sweeper held the sweep (its result file is
    there: ``on_interrupt: detach``, a sweeper killed), or whose task had returned in the sweeper's
    process before it ended (its value kept beside it): when each ended. They are not running; a
    resumed sweep reads their results."""
    ended = {}
    for t in trials:
        at = _result_written_at(meta, t) if t.state in (PENDING, RUNNING) and t.job_id else None
        if at is None and t.state == RUNNING:
            at = _returned_at(meta, t, sweep_dir)
        if at is not None:
            ended[t.number] = at
    return ended


def _returned_in_the_batch(meta: dict[str, Any], trials: Sequence[Trial], sweep_dir: Path) -> dict[int, float]:
    """The trials of a running sweeper's batch (the basic launcher) whose task has returned, and when:
    Hydra hands the batch's values back only once all of it ran, so the journal still says running."""
    returned = {t.number: _returned_at(meta, t, sweep_dir) for t in trials if t.state == RUNNING}
    return {number: at for number, at in returned.items() if at is not None}


def _waiting_in_the_batch(meta: dict[str, Any], trials: Sequence[Trial], ended: Mapping[int, float]) -> dict[int, int]:
    """The trials of a running sweeper's batch (the basic launcher) that have not started, each with
    the trial it runs after: the launcher runs the batch's trials one after the other, in order, so
    only the first of those not ended runs (the journal says running for all of the batch)."""
    if meta.get("launcher") != IN_PROCESS_LAUNCHER:
        return {}
    unended = sorted(t.number for t in trials if t.state == RUNNING and t.number not in ended)
    return {number: before for before, number in pairwise(unended)}


def _returned_at(meta: dict[str, Any], trial: Trial, sweep_dir: Path) -> float | None:
    """When an in-process trial's task returned (or raised), keeping its value (or failure: see
    kept_returns); None elsewhere."""
    if meta.get("launcher") != IN_PROCESS_LAUNCHER:
        return None
    folder = trial_folder(trials_root(sweep_dir), trial.number)
    return returned_at(folder) or raised_at(folder)


def _raised(trial: Trial, sweep_dir: Path) -> bool:
    """Whether an in-process trial's task raised, keeping its failure (see kept_returns)."""
    return raised_at(trial_folder(trials_root(sweep_dir), trial.number)) is not None


def _kept_a_failure(meta: dict[str, Any], trial: Trial, sweep_dir: Path) -> bool:
    """Whether an in-process trial's task returned a value the sweep records as a failure (NaN)."""
    try:
        with open(trial_folder(trials_root(sweep_dir), trial.number) / RETURNED_NAME, "rb") as f:
            value = kept_value_in_pickle(f)
    except Exception:  # none kept, or not readable here: the resume reads it, and says
        return False
    return _not_recordable(value, meta)


def _result_written_at(meta: dict[str, Any], trial: Trial) -> float | None:
    """When the trial's submitit job ended with its result (None: it did not, or the file is an older
    job's of the same id; see result_written_at). A multi-task job (DDP) has ended once every rank
    wrote its result, or once rank 0 did and the job is gone: a rank killed at the time limit writes
    none (the resume then records a failure)."""
    path = _result_file(meta, str(trial.job_id))
    if path is None:
        return None
    launcher = str(meta["launcher"])
    if (at := result_written_at(path, trial.created_at, launcher)) is not None:
        return at
    rank_0 = result_written_at(path, trial.created_at, launcher, every_task=False)
    return rank_0 if rank_0 is not None and not _jobs_running(meta, [str(trial.job_id)]) else None


def _local_job_alive(trial: Trial, submitit_folder: str | None) -> bool:
    return trial.job_id is not None and local_job_running(trial.job_id, submitit_folder)


def _slurm_queue(meta: dict[str, Any], trials: Sequence[Trial]) -> dict[str, tuple[str, str | None]]:
    """Slurm's state and reason of the running trials' jobs (one squeue call), so that a job waiting
    in the queue (pending, requeued, held) is told apart from one running; {} off Slurm."""
    if meta.get("launcher") != "slurm":
        return {}
    return queue_states([str(t.job_id) for t in trials if t.state in (PENDING, RUNNING) and t.job_id])


def _abandoned(trials: Sequence[Trial]) -> str:
    """How many trials were abandoned, and what took their place: the same suggestion run again (a
    trial lost with its sweeper) or, after a stop, new suggestions."""
    abandoned = [t.number for t in trials if t.state == ABANDONED]
    if not abandoned:
        return ""
    rerun = len({t.rerun_of for t in trials} & set(abandoned))
    replaced = len(abandoned) - rerun
    what = [f"{rerun} re-run"] if rerun else []
    # Not "replaced": right after a stop no new suggestion has taken their place yet.
    what += [f"{replaced} given up: new suggestions take their place"] if replaced else []
    return f", {len(abandoned)} abandoned ({', '.join(what)})"


def _budget_spent(meta: Mapping[str, Any], budget: float, spent: float, last_steps: Mapping[int, int]) -> str | None:
    """Which budget ended the sweep, if one is spent: its trials' (``spent`` of ``budget``: costs
    with tasks), or its steps'."""
    if spent >= budget - 1e-9:
        return "the budget is spent"
    step_budget = meta.get("step_budget")
    # Every trial's steps, those abandoned at a resume too, as the sweep counts them.
    if step_budget is not None and sum(last_steps.values()) >= step_budget:
        return f"early_stopping.step_budget={step_budget} is spent"
    return None


def _why_ended(
    sweep_dir: Path, meta: Mapping[str, Any], trials: Sequence[Trial], last_steps: Mapping[int, int]
) -> str | None:
    """Which spent budget ended the sweep (None: it has not ended). Only once a sweeper wrapped the
    sweep up: one killed before that left work for a resume."""
    if not _wrapped_up(sweep_dir, trials):
        return None
    return _budget_spent(meta, _observation_budget(meta), budget_spent(meta, trials), last_steps)


def _wrapped_up(sweep_dir: Path, trials: Sequence[Trial]) -> bool:
    """Whether the last sweeper wrapped the sweep up: no trial is unfinished in the journal (running,
    its result unread, lost with the sweeper) and the result files show every trial as the journal
    does. A sweeper killed before its wrap-up left that to a resume, which records and writes them."""
    if any(t.state in (PENDING, RUNNING) for t in trials) or not (sweep_dir / RESULTS_NAME).is_file():
        return False
    return _states_in_trials_csv(sweep_dir) == {str(t.number): t.state for t in trials}


def _states_in_trials_csv(sweep_dir: Path) -> dict[str, str] | None:
    """Each trial's state as ``trials.csv`` shows it (None: no such file, or unreadable)."""
    try:
        with open(sweep_dir / TRIALS_NAME, newline="", encoding="utf-8") as f:
            return {row["number"]: row["state"] for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return None


def _sweeper(
    sweep_dir: Path,
    holder: tuple[int, str] | None,
    unknown: str | None,
    spent: str | None,
    driver_job: str | None,
) -> str:
    """Whether a sweeper runs this sweep (the lock's holder), else how to resume it. ``spent``: the
    budget that ended a sweep wrapped up (None: it did not end). ``driver_job``: the sweep's driver
    job and its state while Slurm's queue holds it (requeued, it resumes the sweep)."""
    if unknown is not None:
        return f"unknown (the lock file cannot be opened: {unknown})"
    if holder is not None:
        pid, host = holder
        if pid <= 0:
            return "starting (it holds the lock and has not written its pid yet)"
        return f"pid {pid}" + (f" on {host}" if host else "")
    if spent is not None:
        return f"not running ({spent})"
    if driver_job is not None:
        return f"not running: its driver, {driver_job}; it runs the sweep once it starts (hydra-sigopt kill stops both)"
    return f"not running — resume with: hydra-sigopt continue {sweep_dir} --run"


def _copys_sweeper(sweep_dir: Path, original: str, meta: dict[str, Any], trials: Sequence[Trial]) -> str:
    """Who runs the sweep a copy holds: the original, while anything of it runs; else a resume of the copy."""
    running = copies.why_original_runs(sweep_dir, original, meta, trials)
    if running is not None:
        return f"none in this copy; the original at {original} runs ({running}): hydra-sigopt status {original}"
    resume = f"hydra-sigopt continue {sweep_dir} --run"
    return f"not running (the original at {original} has ended) — resume this copy with: {resume}"


def _cut(text: str, size: int) -> str:
    """``text`` in at most ``size`` characters, a cut one ending with "…": cut bare, a row showed
    ``lin1_size=12`` for 128 (trials.csv has the whole)."""
    return text if len(text) <= size else text[: size - 1] + "…"


def _trials_table(trials: Sequence[Trial], metrics: Sequence[Any], fixed: Sequence[str], with_tasks: bool) -> str:
    """One row per trial; a multitask sweep's say each trial's task (a short one's values are no full training's)."""
    task = ["task"] if with_tasks else []
    header = ["#", "state", "job", *task, *[m.name for m in metrics], "duration", "overrides / failure"]
    rows = [header]
    for t in trials:
        detail = t.failure_reason if t.state in ("failed", ABANDONED) else " ".join(swept_overrides(t, fixed))
        rows.append(
            [
                str(t.number),
                t.state,
                t.job_id or "",
                *([t.task or ""] if with_tasks else []),
                *[_fmt(t.value(m.name)) for m in metrics],
                "" if t.duration is None else format_duration(t.duration),
                _cut(detail or "", 100),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)


def _refuse_unstarted(sweep_dir: Path) -> None:
    """A submitted sweep whose driver job has not made its journal yet: say so (it read as "not a
    hydra-sigopt sweep dir", which sends the user looking for a wrong path)."""
    record = driver.read_record(sweep_dir)
    if record is None or journal_path(sweep_dir).exists():
        return
    job, state = record["job_id"], driver.driver_state(str(record["job_id"]))
    if state is not None:
        why = f"the sweep's driver (Slurm job {job}, {state.lower()}) has not started it yet"
        raise NotStartedError(f"{sweep_dir}: {why}")
    raise NotStartedError(
        f"{sweep_dir}: the sweep's driver (Slurm job {job}) ended without starting it; see its log {record['log']}"
    )


def _best(args: argparse.Namespace) -> int:
    _refuse_unstarted(Path(args.sweep_dir))
    with open_journal(args.sweep_dir) as journal:
        meta, trials, last_steps = journal.meta(), journal.trials(), journal.reports.last_steps()
    if args.trial is not None:
        _out_trial(_trial_named(trials, args.trial), meta, args.lines)
        return 0
    doc = results_document(meta, trials)
    by_number = {t.number: t for t in trials}
    if doc.get("best_overrides"):
        _out_trial(by_number[doc["best_trial"]], meta, args.lines)
        return 0
    if doc.get("solutions") and args.lines:
        numbers = ", ".join(f"#{s['trial']}" for s in doc["solutions"])
        raise UsageError(f"--lines prints one trial's overrides: add --trial N (the Pareto-optimal trials: {numbers})")
    if doc.get("solutions"):
        _print_solutions(doc["solutions"], meta, by_number)
        return 0
    ended = _why_ended(Path(args.sweep_dir), meta, trials, last_steps) is not None
    print(f"{no_best(doc)}{'' if ended else ' yet'}.", file=sys.stderr)
    if doc.get("front_ignoring_thresholds"):  # how far the sweep got, on stderr: not overrides to paste
        print(f"# the Pareto front ignoring them: front_ignoring_thresholds in {RESULTS_NAME}", file=sys.stderr)
    return 1


def _print_solutions(
    solutions: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], by_number: Mapping[int, Trial]
) -> None:
    """One line of overrides per Pareto-optimal trial on stdout, each after its trial and values on
    stderr: ``eval "python train.py $(hydra-sigopt best DIR | head -1)"`` must get overrides only."""
    for s in solutions:
        values = " ".join(f"{k}={_fmt(v)}" for k, v in s["values"].items())
        print(f"# trial #{s['trial']}: {values}", file=sys.stderr, flush=True)
        _out(rerun_overrides(by_number[s["trial"]], meta))
    if len(solutions) > 1:
        print("# one trial's overrides alone: hydra-sigopt best DIR --trial N", file=sys.stderr)


def _trial_named(trials: Sequence[Trial], number: int) -> Trial:
    """Trial ``number`` of the journal (any trial, not only a best one)."""
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        numbers = sorted(t.number for t in trials)
        valid = f"#{numbers[0]} to #{numbers[-1]}" if numbers else "none yet"
        raise UsageError(f"--trial {number}: the sweep has no trial #{number} (its trials: {valid})")
    return found


def _out_trial(trial: Trial, meta: Mapping[str, Any], lines: bool) -> None:
    """A trial's overrides: quoted for the shell on one line (to paste, or for ``eval``), or (``lines``)
    one argument a line in Hydra's quoting alone, for ``mapfile -t`` or ``xargs -d '\\n'``: in a bare
    ``$(hydra-sigopt best DIR)`` the shell split ``label='a b'`` at its space and kept the quotes."""
    if not lines:
        _out(rerun_overrides(trial, meta))
        return
    arguments = rerun_arguments(trial, meta)
    if broken := next((a for a in arguments if "\n" in a), None):
        key = broken.split("=", 1)[0]
        raise UsageError(
            f"--lines: trial #{trial.number}'s {key} holds a line break, which one argument a line cannot carry; "
            f'use: best=$(hydra-sigopt best DIR) && eval "python train.py $best"'
        )
    _out("\n".join(arguments))


# ---------------------------------------------------------------------- plot


def _plot(args: argparse.Namespace) -> int:
    from hydra_sigopt.plot import empty_parameters_note, plot_sweep

    try:
        import matplotlib  # noqa: F401 (not in the [lite] install the README starts with)
    except ImportError:
        raise UsageError("plot needs matplotlib: pip install 'hydra-sigopt-sweeper[plot]'") from None
    _refuse_unstarted(Path(args.sweep_dir))
    out = Path(args.output or Path(args.sweep_dir) / "sweep.png")
    _check_image_format(out)
    with open_journal(args.sweep_dir) as journal:
        meta = journal.meta()
        trials = journal.trials()
        reports = journal.reports.all()
    if nothing := _nothing_to_plot(trials):
        print(nothing, file=sys.stderr)
        return 1
    try:
        plot_sweep(meta, trials, out, reports)
    except OSError as exc:  # a read-only sweep dir (someone else's): status and best need no write
        why = exc.strerror or exc
        raise UsageError(f"cannot write {out} ({why}); write the plot elsewhere with -o FILE.png") from None
    note = empty_parameters_note(meta, trials)
    _out(f"Wrote {out} ({note})" if note else f"Wrote {out}")
    return 0


def _nothing_to_plot(trials: Sequence[Trial]) -> str | None:
    """Why a sweep has nothing to plot (no trial ended yet), in one line; an image of empty panels said
    nothing a user could read."""
    if any(t.state in (COMPLETED, FAILED, STOPPED) for t in trials):
        return None
    started = sum(t.state != ABANDONED for t in trials)
    return f"Nothing to plot yet: no trial has ended ({started} started)."


def _check_image_format(out: Path) -> None:
    """The output is a file whose extension names a format matplotlib writes. Without one, matplotlib
    would write ``out`` + ``.png``: a file not named, perhaps the user's, replaced."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = out.suffix.lower().lstrip(".")
    if out.is_dir():
        raise UsageError(f"-o {out} is a directory; name the image file, e.g. -o {out / 'sweep.png'}")
    # Not created: a typo in the path would leave a tree of folders somewhere unexpected.
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: the folder {out.parent} does not exist; create it first")
    if not extension:
        raise UsageError(f"-o {out} has no extension; name the image's format, e.g. -o {out}.png")
    if extension not in formats:
        raise UsageError(f"-o {out}: .{extension} is not an image format; use one of .{', .'.join(formats)}")


# ---------------------------------------------------------------------- continue


def _continue(args: argparse.Namespace) -> int:
    from hydra_sigopt.continuation import continue_command

    _refuse_unstarted(Path(args.sweep_dir))
    if args.run:
        driver.refuse_queued_driver(Path(args.sweep_dir))  # a requeued driver resumes the sweep itself
    with open_journal(args.sweep_dir) as journal:
        meta = journal.meta()
    command = _without_the_drivers_detach(meta.get("command") or {}, Path(args.sweep_dir))
    _out(continue_command(command, Path(args.sweep_dir)))
    if not args.run:
        return 0
    if not meta.get("command"):  # an early version's journal: the line above is a template
        raise UsageError(f"--run: {args.sweep_dir}'s journal does not record its command; fill in the one above")
    # Become the sweeper (the shell too: `exec` runs the command in its place) rather than wait for a
    # child: a user's kill of the pid they started left the child sweeper running, holding the sweep.
    sys.stdout.flush()
    os.execv("/bin/sh", ["/bin/sh", "-c", continue_command(command, Path(args.sweep_dir), True)])


def _without_the_drivers_detach(command: Mapping[str, Any], sweep_dir: Path) -> Mapping[str, Any]:
    """The sweep's command without the ``on_interrupt`` override ``hydra-sigopt submit`` added for its
    driver job, outside such a job: there it keeps the trials running while the job requeues; a
    terminal user's Ctrl-C means the default, cancel. An on_interrupt the user gave stays."""
    if os.environ.get(driver.ENV_VAR):
        return command  # a driver job resuming the sweep (hydra-sigopt continue --run in a submitted job)
    added = (driver.read_record(sweep_dir) or {}).get("added_overrides") or []
    argv = list(command.get("argv") or [])
    dropped = [a for a in added if a.startswith("hydra.sweeper.on_interrupt=") and a in argv]
    if not dropped:
        return command
    print(
        f"Without {dropped[0]}, which hydra-sigopt submit added for its driver job: Ctrl-C here cancels "
        "the running trials (on_interrupt: cancel)",
        file=sys.stderr,
        flush=True,
    )
    return {**command, "argv": [a for a in argv if a != dropped[0]]}


# ---------------------------------------------------------------------- kill / delete


def _cancel_job(launcher: str, job_id: str, submitit_folder: str | None) -> tuple[str, bool]:
    """Cancel one job; what was done, and whether the job is gone (False: the cancel failed)."""
    from hydra_sigopt.runners.cancel import cancel_jobs

    if launcher not in ("slurm", "local") or (launcher == "local" and not job_id.isdigit()):
        return "no job to cancel", True
    done = cancel_jobs(launcher, [job_id], submitit_folder)
    return done.describe(job_id), job_id not in done.failed


def _refuse_unwritable(sweep_dir: Path) -> None:
    """Refuse, before anything is done, a sweep this user cannot write (a teammate's, a read-only
    copy): kill and delete write its journal and lock, and would stop halfway with a traceback."""
    journal = journal_path(sweep_dir)
    if not journal.exists() and driver.read_record(sweep_dir) is None:
        return  # not a sweep: the journal's open says so
    files = [sweep_dir, journal, journal.with_name(journal.name + "-wal"), journal.with_name(journal.name + "-shm")]
    for path in [*files, SweepLock(sweep_dir).path]:
        if path.exists() and not os.access(path, os.W_OK):
            why = os.strerror(errno.EROFS if os.statvfs(path).f_flag & os.ST_RDONLY else errno.EACCES)
            which = "" if path == sweep_dir else f" ({path.name})"
            raise UsageError(
                f"cannot write in the sweep dir {sweep_dir}{which}: {why}; nothing was done "
                "(run it as the sweep's owner, where its files can be written)"
            )


def _copy_of(sweep_dir: Path) -> str | None:
    """The sweep dir ``sweep_dir`` is a copy of (None: it is the sweep's own; see hydra_sigopt.copies)."""
    if not journal_path(sweep_dir).exists():
        return copies.original_of(sweep_dir, None)  # the driver's record, if any, says
    with open_journal(sweep_dir) as journal:
        return copies.original_of(sweep_dir, journal.meta())


def _jobs_of_a_gone_original(sweep_dir: Path, original: str) -> str | None:
    """The jobs a copy's original left running when its dir is gone, and how to stop them (see copies)."""
    if not journal_path(sweep_dir).exists():
        return None
    with open_journal(sweep_dir) as journal:
        meta, trials = journal.meta(), journal.trials()
    return copies.jobs_of_a_gone_original(sweep_dir, original, meta, trials)


def _gone_original_at_rest(sweep_dir: Path) -> str | None:
    """The original sweep dir of this copy when that dir is gone and nothing of its sweep runs (no
    sweeper can hold a gone dir; no driver or job of it is alive): kill and delete have nothing of the
    original's to act on, and sending the user to run them on the original named a folder that is not
    there. None: not such a copy (its own sweep, an original that is there, jobs of it that still run,
    or a copy that names nothing of the original's: kill and delete act on its own files, as on any sweep)."""
    original = _copy_of(sweep_dir)
    if original is None or not copies.original_gone(original) or not journal_path(sweep_dir).exists():
        return None
    if not _acts_beyond_the_copy(sweep_dir):
        return None
    with open_journal(sweep_dir) as journal:
        meta, trials, stopped = journal.meta(), journal.trials(), journal.trials([STOPPED])
    if copies.jobs_of_a_gone_original(sweep_dir, original, meta, trials) or _stopped_jobs_running(meta, stopped):
        return None
    return original


def _nothing_of_a_gone_original_runs(sweep_dir: Path) -> str | None:
    """What kill says of a copy whose original dir is gone and of which nothing runs: there is nothing
    to stop (see _gone_original_at_rest). None: not such a copy."""
    if (original := _gone_original_at_rest(sweep_dir)) is None:
        return None
    return (
        f"{sweep_dir} is a copy of the sweep at {original}, which is gone, and nothing of that sweep runs"
        f" (no sweeper, driver or job): there is nothing to stop. To go on with this copy: "
        f"hydra-sigopt continue {sweep_dir} --run"
    )


def _acts_beyond_the_copy(sweep_dir: Path) -> bool:
    """Whether a kill or delete of this copy would act on what is the original's: a driver job, a job
    that may still run, or a server experiment (its open suggestions). A copy of a sweep that ended
    on the local engine names none: deleting it deletes its files only, as it did."""
    if driver.read_record(sweep_dir) is not None or not journal_path(sweep_dir).exists():
        return True
    with open_journal(sweep_dir) as journal:
        meta, unfinished, stopped = journal.meta(), journal.trials([PENDING, RUNNING]), journal.trials([STOPPED])
    return meta.get("backend") == "api" or bool(unfinished) or bool(_stopped_jobs_running(meta, stopped))


def _refuse_a_copy(sweep_dir: Path, command: str) -> None:
    """Refuse to act on the jobs and driver a copy's journal names: they are the original sweep's."""
    original = _copy_of(sweep_dir)
    if original is None or not _acts_beyond_the_copy(sweep_dir):
        return
    done = "nothing was cancelled" + (" or deleted" if command == "delete" else "")
    if (gone := _jobs_of_a_gone_original(sweep_dir, original)) is not None:
        raise UsageError(f"{sweep_dir} is a copy of another sweep dir, and {gone}; {done}")
    raise UsageError(
        f"{sweep_dir} is a copy of the sweep at {original}; {done}: run hydra-sigopt {command} {original} on the "
        f"original (hydra-sigopt delete {sweep_dir} --local-only deletes only this copy's files, touching no job)"
    )


def _stop_driver_job(sweep_dir: Path) -> None:
    """Cancel the sweep's driver job (``hydra-sigopt submit``), if it is queued or running."""
    record = driver.read_record(sweep_dir)
    if record is None or driver.driver_state(str(record["job_id"])) is None:
        return
    _out(f"Stopping the sweep's driver, Slurm job {record['job_id']}")
    if not driver.stop_driver(str(record["job_id"])):
        raise SweepAbortedError(f"the driver job {record['job_id']} is still in Slurm's queue after scancel")


def kill_sweep(
    sweep_dir: Path, wait_s: float = 60.0, release_suggestions: bool = True
) -> list[tuple[int, str | None, str]]:
    """Stop a live sweeper of this sweep (or its driver job), cancel its jobs, and mark them in the
    journal; say what became of each trial that was running (by the sweeper's hand or by this command's).
    Without a live sweeper, delete the sweep's open suggestions that its journal does not need on
    the SigOpt server (``release_suggestions``; not when the experiment is deleted next).

    A job that wrote its result is not cancelled, and its trial stays running in the journal: a
    resumed sweep records and posts that result, as it would have without the kill (this command
    reads only whether it is a failure, to say so).
    """
    _refuse_unwritable(sweep_dir)
    _refuse_a_copy(sweep_dir, "kill")
    _stop_driver_job(sweep_dir)
    if driver.read_record(sweep_dir) is not None and not journal_path(sweep_dir).exists():
        return []  # the driver was stopped before it started the sweep
    Journal.open(sweep_dir, readonly=True).close()  # a clear error for a folder that is not a sweep
    sweeper_was_live = SweepLock(sweep_dir).holder() is not None
    done = _stop_sweeper(sweep_dir, wait_s)
    with Journal.open(sweep_dir) as journal:
        meta = journal.meta()
        unfinished = journal.trials([PENDING, RUNNING])
        _, not_started = _the_one_running(meta, unfinished, sweep_dir)  # of a dead sweeper's in-process batch
        for t in unfinished:
            done.append((t.number, t.job_id, _cancel_trial(journal, meta, t, sweep_dir, t.number in not_started)))
        listed = {number for number, _, _ in done}
        for t in _stopped_jobs_running(meta, [t for t in journal.trials([STOPPED]) if t.number not in listed]):
            # Its next report may be an hour of GPU away, and an app may swallow TrialStopped and train on.
            what, _ = _cancel_job(str(meta["launcher"]), str(t.job_id), meta.get("submitit_folder"))
            done.append((t.number, t.job_id, f"{_stopped_job(sweep_dir, t)}: {what}"))
        in_use = suggestions_in_use(journal.trials())
        released = released_already(journal.meta(), in_use)  # by the last sweeper's wrap-up
    if release_suggestions and not sweeper_was_live and not released:  # a live one releases them itself
        _release_open_suggestions(meta, in_use)
    return done


def _stopped_jobs_running(meta: dict[str, Any], stopped: Sequence[Trial]) -> list[Trial]:
    """Those of these trials stopped early whose job still runs (it has not ended with a result)."""
    with_jobs = [t for t in stopped if t.job_id and not _wrote_result(meta, t)]
    running = _jobs_running(meta, [str(t.job_id) for t in with_jobs])
    return [t for t in with_jobs if str(t.job_id) in running]


def _jobs_running(meta: dict[str, Any], job_ids: Sequence[str]) -> set[str]:
    """Those of these jobs of the sweep a cancel still has to end (none off submitit)."""
    if meta.get("launcher") == "local":
        return {j for j in job_ids if local_job_running(j, meta.get("submitit_folder"))}
    return set(slurm_jobs_not_ending(job_ids)) if meta.get("launcher") == "slurm" and job_ids else set()


def _stopped_job(sweep_dir: Path, trial: Trial) -> str:
    """What the job of a trial stopped early was doing: it learns of the stop at its next report."""
    if stop_seen(trial_folder(trials_root(sweep_dir), trial.number)):
        return "stopped early; its job was still running after TrialStopped (saving a checkpoint, or training on)"
    return "stopped early; its job was still running on to its next report, where it learns of the stop"


def _release_open_suggestions(meta: dict[str, Any], in_use: Sequence[str]) -> None:
    """Delete this sweep's open suggestions on the server that its journal no longer needs.

    A dead sweeper (``kill -9``) left them open, and a SigOpt server counts an open suggestion as
    work in progress until a resume tidies it. Only this sweep's (its ``sweep_id``): the experiment
    may be shared. Best effort: a server out of reach gets one line, and the local kill stands.
    """
    if meta.get("backend") != "api" or not meta.get("experiment_id") or not meta.get("sweep_id"):
        return
    try:
        backend = _api_backend(meta)
        backend.sweep_id = str(meta["sweep_id"])
        backend.reconcile(in_use)
    except SigOptSweeperError as exc:
        why = _development_token_needed(meta, exc) or exc
        _out(f"The sweep's open suggestions on the SigOpt server were not deleted ({why}); a resumed sweep does it.")


def _development_token_needed(meta: Mapping[str, Any], exc: BaseException) -> str | None:
    """Why the server refused the sweep's experiment (HTTP 403), when the reason is the token's kind:
    it was created with the development token (a dev_run sweep), which is not at hand, and a server
    shows a development experiment to that token only. None: some other failure, told as it is."""
    api = meta.get("api") or {}
    # Journals from before the record say dev_run only: with it, the sweep used the development token if it had one.
    created_with_it = api.get("development_token", api.get("dev_run", False))
    if getattr(exc, "status", None) != 403 or not created_with_it or has_development_token():
        return None
    return (
        f"SigOpt experiment {meta.get('experiment_id')} was created with the development token (dev_run), and the "
        "server refuses it to the regular token (HTTP 403); give the development token as SIGOPT_DEV_TOKEN, in the "
        "environment or in the file SIGOPT_ENV_FILE names"
    )


def _api_backend(meta: dict[str, Any]) -> Backend:
    """An api backend attached to the sweep's experiment, with the token it ran with.

    A server hides an experiment made with the development token from the regular one (HTTP 403).
    Not the sweep's patience with an outage: a command that cannot reach the server says so soon.
    """
    from hydra_sigopt.backends import create_backend

    api = dict(meta.get("api") or {})
    settings = {**api, "max_unreachable_s": COMMAND_UNREACHABLE_S}
    # Its messages name this wait, not api.max_unreachable_s: the sweep's value is another.
    patience = f"hydra-sigopt gives up after {COMMAND_UNREACHABLE_S:g} s"
    backend = create_backend("api", settings=settings, dev_run=bool(api.get("dev_run", False)), patience=patience)
    backend.attach(str(meta.get("experiment_id")))
    return backend


def _stop_sweeper(sweep_dir: Path, wait_s: float) -> list[tuple[int, str | None, str]]:
    """SIGTERM the live sweeper (it stops as on Ctrl-C); what it did with its running trials."""
    lock = SweepLock(sweep_dir)
    holder = _named_holder(lock)
    if holder is None:
        return []
    pid, host = holder
    if host and host != socket.gethostname():
        raise SweepAbortedError(
            f"the sweeper of this sweep runs on host {host} (pid {pid}); run hydra-sigopt kill there"
        )
    with open_journal(sweep_dir) as journal:
        meta = journal.meta()
        running = [t.number for t in journal.trials([PENDING, RUNNING])]
        stopped = _stopped_jobs_running(meta, journal.trials([STOPPED]))
    # It cancels its running trials even with on_interrupt: detach. (Not a submitted driver's: this
    # command lists the trials that one leaves, as it cancels them.)
    try:  # the marker written inside: a Ctrl-C just after it must not leave it behind
        request_kill(sweep_dir, pid)
        killed = _signal_and_wait(lock, pid, wait_s)
    finally:  # left behind, it would name a later sweeper of the same pid (a container's)
        forget_kill(sweep_dir)
    cancelled_here = _cancel_what_it_left(sweep_dir, running) if killed else {}
    with open_journal(sweep_dir) as journal:
        after = [journal.trial(n) for n in running]
    did = [
        (t.number, t.job_id, cancelled_here.get(t.number, _SWEEPER_DID[t.state]))
        for t in after
        if t.state in _SWEEPER_DID
    ]
    return did + ([] if killed else _stopped_jobs_it_ended(sweep_dir, meta, stopped))


def _signal_and_wait(lock: SweepLock, pid: int, wait_s: float) -> bool:
    """SIGTERM the sweeper and wait for it to let the sweep go; whether it had to be SIGKILLed."""
    _out(f"Stopping the sweeper (pid {pid}); it cancels its own jobs and writes its results")
    try:
        os.kill(pid, signal.SIGTERM)  # handled like Ctrl-C (a background process may ignore SIGINT)
    except ProcessLookupError:
        pass
    return not _released_within(lock, wait_s) and _kill_hung_sweeper(lock, pid, wait_s)


def _stopped_jobs_it_ended(
    sweep_dir: Path, meta: dict[str, Any], stopped: Sequence[Trial]
) -> list[tuple[int, str | None, str]]:
    """The jobs of trials stopped early that the sweeper's stop ended (it cancels every job it tracks,
    these too); those still running are left to kill_sweep, which cancels them."""
    running = _jobs_running(meta, [str(t.job_id) for t in stopped])
    ended = [t for t in stopped if str(t.job_id) not in running]
    return [(t.number, t.job_id, f"{_stopped_job(sweep_dir, t)}: cancelled by the sweeper") for t in ended]


def _named_holder(lock: SweepLock, wait_s: float = 2.0) -> tuple[int, str] | None:
    """The lock's holder, once its file names a process that holds the file open (a sweeper writes
    its pid just after it takes the lock; until then the file is empty, or names the sweeper before
    it, whose pid may be another process's by now). Refused if it names none: ``os.kill(-1, ...)``
    would signal every process there is."""
    deadline = time.monotonic() + wait_s
    while (holder := lock.holder()) is not None and not _names_its_holder(holder, lock.path):
        if time.monotonic() >= deadline:
            raise SweepAbortedError(
                f"the sweep is locked, but its lock file {lock.path} does not name the process holding it; "
                f"find it with `fuser {lock.path}` and stop it yourself"
            )
        time.sleep(0.1)
    return holder


def _names_its_holder(holder: tuple[int, str], path: Path) -> bool:
    """Whether the lock file's (pid, host) is a process here that has the lock file open (a process
    on another host cannot be checked from here, nor signalled: the caller refuses it)."""
    pid, host = holder
    if pid <= 0:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        fds = os.scandir(f"/proc/{pid}/fd")
    except OSError:  # gone, or another user's process
        return False
    wanted = str(path.resolve())
    with fds:
        return any(_link(entry.path) == wanted for entry in fds)


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _released_within(lock: SweepLock, seconds: float) -> bool:
    """Whether the lock's holder lets it go within ``seconds``."""
    deadline = time.monotonic() + seconds
    while lock.holder() is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def _kill_hung_sweeper(lock: SweepLock, pid: int, waited_s: float) -> bool:
    """SIGKILL a sweeper that ignored SIGTERM (frozen, a hung file system): the journal survives a
    kill at any instant, and this command then cancels its jobs itself. Whether it was killed."""
    holder = _named_holder(lock)
    if holder is None or holder[0] != pid:
        return False  # it let the lock go just now, or another process holds it now: not to be killed
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _released_within(lock, 10.0):
        raise SweepAbortedError(
            f"the sweeper (pid {pid}) did not stop, even on SIGKILL, and still holds the sweep; "
            "its jobs are left as they are"
        )
    _out(f"The sweeper (pid {pid}) did not stop within {waited_s:.0f} s of SIGTERM; killed it (SIGKILL)")
    return True


def _cancel_what_it_left(sweep_dir: Path, numbers: Sequence[int]) -> dict[int, str]:
    """Cancel the jobs of trials a sweeper killed mid-stop had marked abandoned (it marks them all,
    then cancels them one by one: those after the kill run on, and a local job it had paused stays
    paused); what was done, by trial number."""
    with open_journal(sweep_dir) as journal:
        meta = journal.meta()
        left = [t for t in (journal.trial(n) for n in numbers) if t.state == ABANDONED and t.job_id]
    launcher, folder = str(meta.get("launcher", "")), meta.get("submitit_folder")
    return {t.number: f"cancelled: {_cancel_job(launcher, str(t.job_id), folder)[0]}" for t in left}


#: What a stopping sweeper did with a running trial, by the trial's state after it stopped.
_SWEEPER_DID = {
    ABANDONED: "cancelled by the sweeper",
    COMPLETED: "finished; the sweeper recorded its result",
    FAILED: "failed; the sweeper recorded it",
    STOPPED: "stopped early by the sweeper; its last reports are its result",
}


def _cancel_trial(
    journal: Journal, meta: dict[str, Any], trial: Trial, sweep_dir: Path, not_started: bool = False
) -> str:
    """Cancel a running trial's job and mark it abandoned, unless its job already wrote a result (or,
    in the sweeper's process, its task returned and kept its value: see kept_returns). ``not_started``:
    it waited in a dead sweeper's in-process batch (journaled running, with the batch's start)."""
    launcher = str(meta.get("launcher", ""))
    if trial.job_id and _wrote_result(meta, trial):
        if _wrote_failure(meta, trial.job_id):
            return "failed; a resumed sweep records its failure"
        return "finished; a resumed sweep records its result"
    if trial.state == RUNNING and _returned_at(meta, trial, sweep_dir) is not None:
        if _raised(trial, sweep_dir) or _kept_a_failure(meta, trial, sweep_dir):
            return "failed in the sweeper's process, which ended; a resumed sweep records its failure"
        return "finished in the sweeper's process, which ended; a resumed sweep records its result"
    what, gone = _cancel_job(launcher, trial.job_id, meta.get("submitit_folder")) if trial.job_id else ("", True)
    if not gone:  # it stays running in the journal: a resume re-attaches it, a kill tries again
        return f"{what}; run hydra-sigopt kill again"
    what = what or ("had not started in its batch: nothing to cancel" if not_started else _without_a_job(meta))
    reason = f"cancelled by hydra-sigopt kill ({what})"
    if not journal.abandon_in_flight([trial.number], reason, never_started=[trial.number] if not_started else []):
        what += "; its result was recorded meanwhile"  # a frozen sweeper thawed: its result stands
    return what


def _without_a_job(meta: dict[str, Any]) -> str:
    """What became of a trial with no job: a launcher without jobs (basic) runs a batch's trials one
    after the other in the sweeper's process, gone when this command finds them running (which of
    them had started, the journal cannot tell); with jobs, it never got one."""
    if meta.get("launcher") in JOB_LAUNCHERS:
        return "never started"
    return "in the sweeper's process, which ended: nothing left to cancel"


def _wrote_result(meta: dict[str, Any], trial: Trial) -> bool:
    """Whether the trial's submitit job left its result file (not an older job's of the same id: a
    local job's id is its process id, which the system reuses)."""
    return _result_written_at(meta, trial) is not None


def _wrote_failure(meta: dict[str, Any], job_id: str) -> bool:
    """Whether the result a submitit job of this sweep left is a failure: its task raised (submitit's
    "error"), Hydra's launcher returned the app's failure (a failed ``JobReturn``), or the app
    returned no value the sweep can record (a loss that diverged to NaN: the resume records a failed
    trial). False where it cannot be read: the resume reads it again, and says."""
    from hydra.core.utils import JobStatus

    path = _result_file(meta, job_id)
    if path is None:
        return False
    # A multi-task job (DDP) is rank 0's value, as Hydra's launcher takes it; the resume fails it on
    # another rank's error outside the app (submitit's), or on a rank that ended without a result.
    rank_0, *others = results_of_every_task(path)
    if any(not r.exists() or _outcome_in(r).tag == "error" for r in others):
        return True
    outcome = _outcome_in(rank_0)
    if outcome.tag == "error" or (outcome.status is not None and outcome.status != JobStatus.COMPLETED.value):
        return True
    return outcome.status is not None and _not_recordable(outcome.return_value, meta)


def _outcome_in(result: Path) -> Outcome:
    """What one task's result file says (nothing known where it cannot be read)."""
    try:
        with open(result, "rb") as f:
            return outcome_in_pickle(f)
    except Exception:
        return Outcome(None, None)


def _not_recordable(value: Any, meta: dict[str, Any]) -> bool:
    """Whether a completed task's return value (when this command could read it) is one the sweep
    records as a failure: NaN, None, a dict without a metric."""
    if value is UNKNOWN:
        return False
    try:
        parse_result(value, metrics_from_meta(meta))
    except InvalidResult:
        return True
    except Exception:  # a meta this version does not read: leave it to the resume
        return False
    return False


def _result_file(meta: dict[str, Any], job_id: str) -> Path | None:
    """Where a submitit job of this sweep leaves its result (None: the sweep's launcher has no jobs)."""
    folder = meta.get("submitit_folder")
    if meta.get("launcher") not in JOB_LAUNCHERS or not folder:
        return None
    return job_result_file(str(folder), job_id, (meta.get("command") or {}).get("cwd"))


def _kill(args: argparse.Namespace) -> int:
    if (nothing := _nothing_of_a_gone_original_runs(Path(args.sweep_dir))) is not None:
        _out(nothing)
        return 0
    done = kill_sweep(Path(args.sweep_dir))
    for number, job_id, what in done:
        _out(f"  trial #{number} job {job_id or '-'}: {what}")
    if len(done) == 1:
        _out("1 trial was running; it is listed above.")
    else:
        _out(f"{len(done)} trials were running; each is listed above." if done else "No running trials.")
    return 0


def _delete(args: argparse.Namespace) -> int:
    given = Path(args.sweep_dir)
    # A symlink is resolved before anything is done: the sweep lives in its target.
    sweep_dir = given.resolve() if given.is_symlink() else given
    meta, found = _sweep_contents(sweep_dir)
    _refuse_unwritable(sweep_dir)  # before asking: a yes would lead nowhere
    original = copies.original_of(sweep_dir, meta)
    if original is not None and _acts_beyond_the_copy(sweep_dir):  # the original's jobs, driver, experiment
        return _delete_a_copy(args, sweep_dir, original, found)
    # An experiment the sweep attached to is shared: deleted, every sweep on it would lose it.
    shared = meta.get("backend") == "api" and _attached(meta, sweep_dir)
    remote = meta.get("backend") == "api" and not args.local_only and not shared
    # Before asking: another experiment at the id by now, or other sweeps' results in it, keep it.
    kept = _why_keep_experiment(meta, shared) if meta.get("backend") == "api" and not args.local_only else None
    remote = remote and kept is None
    if not args.yes and not _confirm_delete(sweep_dir, found, meta, remote):
        return EXIT_USAGE if not sys.stdin.isatty() else 1
    kill_sweep(sweep_dir, release_suggestions=not remote and (kept is None or kept.ours))
    if remote:
        _delete_experiment(meta)
    elif kept is not None:
        _out(f"{kept.reason}; this sweep's open suggestions were released." if kept.ours else f"{kept.reason}.")
    elif shared and not args.local_only:
        how = "attached to it" if _attached_per_record(meta, sweep_dir) else "may not have created it (no record says)"
        _out(
            f"SigOpt experiment {meta.get('experiment_id')} is left as it is: this sweep {how} "
            "(hydra.sweeper.api.experiment_id), and other sweeps may use it; its open suggestions were released."
        )
    _, found = _sweep_contents(sweep_dir)  # again: with the trials a live sweeper started meanwhile
    sweepdir.remove(found.sweep)
    _out(f"Deleted from {sweep_dir}: {sweepdir.describe(found.sweep)}.")
    if sweepdir.remove_if_empty(sweep_dir):
        _out(f"Deleted {sweep_dir} (nothing else was in it).")
        if given.is_symlink():
            given.unlink()
            _out(f"Deleted the symlink {given}.")
    else:
        _out(f"Kept {sweep_dir} and what the sweep did not write: {sweepdir.describe(found.other)}.")
    return 0


def _delete_a_copy(args: argparse.Namespace, sweep_dir: Path, original: str, found: sweepdir.SweepDirContents) -> int:
    """Delete a copy's files only (``--local-only``): no job, driver, suggestion or experiment is touched.
    Without ``--local-only`` too when the original is gone and nothing of it runs: there is nothing
    else to act on, bar a server experiment (which the original, moved elsewhere, may still use)."""
    at_rest = _gone_original_at_rest(sweep_dir) is not None
    if not args.local_only:
        if at_rest:
            _refuse_the_experiment_of_a_gone_original(sweep_dir, original)
        else:
            _refuse_a_copy(sweep_dir, "delete")
    if not args.yes and not _confirm_delete(sweep_dir, found, {}, False):
        return EXIT_USAGE if not sys.stdin.isatty() else 1
    if at_rest:
        _out(f"{sweep_dir} is a copy of the sweep at {original}, which is gone, and nothing of that sweep runs.")
    else:
        _out(
            f"{sweep_dir} is a copy of the sweep at {original}: the jobs and driver it names, the original's, "
            "are left as they are."
        )
    sweepdir.remove(found.sweep)
    _out(f"Deleted from {sweep_dir}: {sweepdir.describe(found.sweep)}.")
    if sweepdir.remove_if_empty(sweep_dir):
        _out(f"Deleted {sweep_dir} (nothing else was in it).")
    else:
        _out(f"Kept {sweep_dir} and what the sweep did not write: {sweepdir.describe(found.other)}.")
    return 0


def _refuse_the_experiment_of_a_gone_original(sweep_dir: Path, original: str) -> None:
    """A copy whose original dir is gone may name a server experiment: the original, moved away (an
    rsync to another cluster), may still use it, and a copy cannot tell. Deleting it is left to the user."""
    with open_journal(sweep_dir) as journal:
        meta = journal.meta()
    if meta.get("backend") != "api":
        return
    raise UsageError(
        f"{sweep_dir} is a copy of the sweep at {original}, which is gone; nothing of that sweep runs, but this copy"
        f" names SigOpt experiment {meta.get('experiment_id')}, which the original, if moved elsewhere, may still use:"
        f" nothing was deleted. hydra-sigopt delete {sweep_dir} --local-only deletes only this copy's files, leaving"
        " the experiment on the server"
    )


def _why_keep_experiment(meta: dict[str, Any], shared: bool) -> Any:
    """Why the sweep's server experiment is left as it is (see api_identity.why_keep); None: as before.

    One the server no longer has stops the command (nothing local deleted), naming ``--local-only``.
    A server out of reach stops it too when the experiment was to be deleted; an attached one's stays
    best effort, as the release of its open suggestions is.
    """
    from hydra_sigopt.backends.api_identity import ExperimentNotThisSweepsError, why_keep

    try:
        kept = why_keep(_api_backend(meta), meta)
        return None if shared and kept is not None and kept.ours else kept  # an attached one is never deleted
    except ExperimentNotThisSweepsError as exc:
        raise SweepAbortedError(
            f"{exc}; nothing was deleted. The journal keeps this sweep's results; to delete only its local files, "
            "run hydra-sigopt delete --local-only"
        ) from None
    except SigOptSweeperError as exc:
        if shared:
            return None
        why = _development_token_needed(meta, exc) or (
            f"could not check SigOpt experiment {meta.get('experiment_id')} before deleting it: {str(exc).rstrip('.')}"
        )
        raise SweepAbortedError(
            f"{why}. Nothing was deleted; to delete only the sweep's local files, run hydra-sigopt delete --local-only"
        ) from None


def _attached_per_record(meta: dict[str, Any], sweep_dir: Path) -> bool:
    """Whether the journal or the sweep's multirun.yaml says the sweep attached (not a guess)."""
    return "experiment_shared" in meta or (sweep_dir / "multirun.yaml").is_file()


def _attached(meta: dict[str, Any], sweep_dir: Path) -> bool:
    """Whether the sweep attached to an experiment it did not create. A journal written before it
    recorded this does not say: the sweep's ``multirun.yaml`` does (``api.experiment_id``); without
    that file the experiment is taken as shared (a user can delete an experiment left over; one
    deleted under another sweep is lost)."""
    if "experiment_shared" in meta:
        return bool(meta["experiment_shared"])
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.load(sweep_dir / "multirun.yaml")
        return OmegaConf.select(config, "hydra.sweeper.api.experiment_id") is not None
    except Exception:  # missing, unreadable or damaged: not known to be the sweep's own
        return True


def _sweep_contents(sweep_dir: Path) -> tuple[dict[str, Any], sweepdir.SweepDirContents]:
    with open_journal(sweep_dir) as journal:
        meta = journal.meta()
        numbers = [t.number for t in journal.trials()]
    # The trials' output folders as they noted them: a subdir without Hydra's .hydra record is known by it alone.
    root = trials_root(sweep_dir)
    noted = [d for d in (output_dir(root, n) for n in numbers) if d is not None]
    return meta, sweepdir.contents(sweep_dir, numbers, meta, noted)


def _confirm_delete(sweep_dir: Path, found: sweepdir.SweepDirContents, meta: dict[str, Any], remote: bool) -> bool:
    """Ask, saying what goes and what stays; False without an answer (no terminal) or without a yes."""
    if not sys.stdin.isatty():
        print("Refusing to delete without confirmation; pass --yes.", file=sys.stderr)
        return False
    _out(f"In {sweep_dir.resolve()}, these were written by the sweep and will be deleted:")
    _out(f"  {sweepdir.describe(found.sweep)}")
    if found.other:
        _out(f"These stay: {sweepdir.describe(found.other)}")
    experiment = f" and SigOpt experiment {meta.get('experiment_id')}" if remote else ""
    answer = input(f"Delete them{experiment}? [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    _out("Nothing deleted.")
    return False


def _delete_experiment(meta: dict[str, Any]) -> None:
    """Delete the server experiment, or stop naming ``--local-only`` (nothing local is deleted then)."""
    experiment_id = str(meta.get("experiment_id"))
    try:
        _api_backend(meta).delete()
    except SigOptSweeperError as exc:
        why = _development_token_needed(meta, exc) or (
            f"could not delete SigOpt experiment {experiment_id}: {str(exc).rstrip('.')}"
        )
        raise SweepAbortedError(
            f"{why}. Nothing local was deleted; to delete only the sweep's local files, run hydra-sigopt delete "
            "--local-only"
        ) from None
    _out(f"Deleted SigOpt experiment {experiment_id}.")


# ---------------------------------------------------------------------- submit


def _submit(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("give the sweep's command after --, e.g. hydra-sigopt submit -- python train.py -m ...")
    cwd = Path.cwd()
    sweep_dir = driver.sweep_dir_of(command, cwd) or (
        Path(args.sweep_dir).resolve() if args.sweep_dir else cwd / "multirun" / time.strftime("%Y-%m-%d/%H-%M-%S")
    )
    _refuse_submitting_a_copy(sweep_dir)
    options = driver.DriverOptions(
        partition=args.partition, time_min=args.time, cpus=args.cpus, mem_gb=args.mem_gb, account=args.account
    )
    try:
        record, note = driver.submit(command, cwd, sweep_dir, options, os.environ)
    except driver.SubmitError as exc:
        raise UsageError(str(exc)) from None
    where = shlex.quote(str(sweep_dir))
    _out(f"Submitted the sweep's driver as Slurm job {record['job_id']}; sweep dir {sweep_dir}")
    _out(f"  follow it:  tail -f {shlex.quote(record['log'])}   or   hydra-sigopt status {where}")
    _out(f"  stop it:    hydra-sigopt kill {where}   (scancel {record['job_id']} leaves its trials running)")
    if note:
        print(note, file=sys.stderr)
    return 0


def _refuse_submitting_a_copy(sweep_dir: Path) -> None:
    """Refuse, before anything is written or submitted, a copy of a sweep dir while its original runs:
    the driver job's resume would refuse it in the job (as ``continue`` does), where only its log says so."""
    original = _copy_of(sweep_dir)
    if original is None:
        return
    meta: dict[str, Any] = {}
    trials: list[Trial] = []
    if journal_path(sweep_dir).exists():
        with open_journal(sweep_dir) as journal:
            meta, trials = journal.meta(), journal.trials()
    if (gone := copies.jobs_of_a_gone_original(sweep_dir, original, meta, trials)) is not None:
        raise UsageError(f"{sweep_dir} is a copy of another sweep dir, and {gone}; nothing was submitted")
    if (running := copies.why_original_runs(sweep_dir, original, meta, trials)) is not None:
        raise UsageError(
            f"{sweep_dir} is a copy of the sweep at {original}, which still runs ({running}); nothing was submitted: "
            f"follow the original with hydra-sigopt status {original}, or submit this copy once it has ended"
        )


# ---------------------------------------------------------------------- main


def _seconds(text: str) -> float:
    """``--watch``'s interval: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0, e.g. --watch 10")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hydra-sigopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("install-engine", help="install sigoptlite and libsigopt without their stale pins")
    p.add_argument("--dry-run", action="store_true", help="print the pip command only")
    p.set_defaults(func=_install_engine)

    def with_dir(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the sweep's hydra.sweep.dir")
        return p

    p = with_dir("status", "trials by state, budget used, best so far, running jobs")
    p.add_argument("--all", action="store_true", help="also print a table of every trial")
    p.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_EVERY_S,
        type=_seconds,
        metavar="SECONDS",
        help=f"draw it again every SECONDS (default {DEFAULT_EVERY_S:g}) until the sweep ends; waits for a "
        "sweep dir not made yet (give SWEEP_DIR first: status SWEEP_DIR --watch)",
    )
    p.set_defaults(func=_status_or_watch)
    p = with_dir("best", "the best overrides, ready to paste (the Pareto set for two metrics)")
    p.add_argument("--trial", type=int, metavar="N", help="print trial #N's overrides instead (one of a Pareto set)")
    p.add_argument(
        "--lines",
        action="store_true",
        help="one argument a line, not quoted for the shell: "
        'lines=$(hydra-sigopt best DIR --lines) && mapfile -t best <<< "$lines"',
    )
    p.set_defaults(func=_best)
    p = with_dir("plot", "objective per trial with the best so far, and one panel per parameter (PNG)")
    p.add_argument("-o", "--output", help="image path, e.g. out.png or out.svg (default: SWEEP_DIR/sweep.png)")
    p.set_defaults(func=_plot)
    with_dir("kill", "stop the sweeper and cancel every running job of the sweep").set_defaults(func=_kill)
    p = with_dir("delete", "cancel running jobs, delete the remote experiment and the files the sweep wrote")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--local-only", action="store_true", help="keep the server experiment (gone, or the server out of reach)"
    )
    p.set_defaults(func=_delete)
    p = sub.add_parser(
        "submit", help="run the sweep's driver as a Slurm job that requeues itself (no terminal to keep open)"
    )
    p.add_argument("--partition", help="the driver job's partition (default: Slurm's)")
    p.add_argument("--time", type=int, default=24 * 60, help="its time limit in minutes; it requeues itself at it")
    p.add_argument("--cpus", type=int, default=1, help="CPUs of the driver job (the engine uses one)")
    p.add_argument("--mem-gb", type=float, default=4.0, help="memory of the driver job")
    p.add_argument("--account", help="the driver job's account")
    p.add_argument("--sweep-dir", help="hydra.sweep.dir, when the command does not set it")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- python your_app.py -m ...")
    p.set_defaults(func=_submit)
    p = with_dir("continue", "print (or --run) the command that resumes the sweep")
    p.add_argument("--run", action="store_true", help="run it")
    p.set_defaults(func=_continue)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # `hydra-sigopt status | head`: the reader is gone; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (JournalError, UsageError) as exc:
        print(f"hydra-sigopt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # damage found after the journal was opened and checked
        print(f"hydra-sigopt: {args.sweep_dir}: the journal is damaged ({exc}); it was left untouched", file=sys.stderr)
        return EXIT_USAGE
    except SigOptSweeperError as exc:
        print(f"hydra-sigopt: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
