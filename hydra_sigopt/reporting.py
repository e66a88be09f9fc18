"""What a task function calls to report progress and be stopped early: ``report``, ``should_stop``.

::

    from hydra_sigopt import TrialStopped, report

    for epoch in range(1, cfg.epochs + 1):
        train_one_epoch()
        report(epoch, val_loss=evaluate())   # raises TrialStopped once the sweeper stops this trial

Inside a trial of this sweeper, each report is appended to the trial's report file (see
:mod:`hydra_sigopt.report_files`), which the sweeper journals and judges by the configured rule.
Anywhere else (a plain ``python train.py``, another sweeper) both functions do nothing. Processes
the task starts report for its trial too, those started with ``spawn`` (a fresh interpreter) through
the environment variable :data:`TRIAL_ENV`.

Where the trial runs inside the sweeper's own process and thread (Hydra's basic launcher), the
sweeper cannot look at the file while the trial runs; it registers a hook instead, which ``report``
calls after writing: the sweeper reads, journals and decides right then, through the same path.

Which trial a report is for: the thread running the trial's task (Hydra calls the task function in
the sweeper's main thread, or a job's) reports for the trial running now. Any other thread reports
for the trial that was running at its first report, and once that trial has ended its reports are
left out: with the basic launcher one process runs the trials one after another, and a thread a
trial left running (a logger, a prefetcher) would otherwise report into the trials after it. A
thread of a ``concurrent.futures.ThreadPoolExecutor`` is bound the same way per task it runs, not
for its life: a pool the app keeps for every trial (an evaluation pool made at first use) runs each
trial's work, submitted while that trial runs, and a task a trial left running is left out as a
thread is.

Of a multi-process trial (DDP, one Slurm task per device: every rank runs the task) only rank 0's
reports are written, by the rule Lightning's ``rank_zero_only`` follows (:data:`RANK_VARIABLES`; a
process alone in its world, :data:`WORLD_SIZE_VARIABLES`, is rank 0, a process group's rank comes first);
the other ranks check their steps (against their own reports only: rank 0 may have reported first),
wait for the verdict as rank 0 does, and raise ``TrialStopped``
at the same report, so that every rank stops together.

A trial in a job of its own is judged by the sweeper when it next reads the reports (every second,
or within half a step for shorter steps: ``EarlyStopping.read_interval``). At a step where the
rule decides (a rung of ``asha``; each step from ``min_step`` on for ``median``) ``report`` waits
for that verdict, so that a trial the rule stops is stopped there instead of training one more
step first, which would be most of its cost at the lowest rung. The wait is bounded: never longer
than the step just trained took (waiting longer would cost more than the step it may save), nor
than :data:`VERDICT_WAIT_MAX_S`; a sweeper that is slow or gone only makes the trial go on as it
would without the wait.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import numbers
import operator
import os
import reprlib
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from hydra_sigopt.metrics import plain_scalar
from hydra_sigopt.report_files import (
    LARGEST_STEP,
    MonitorNeverLogged,
    append_report,
    first_in_the_sweep,
    folder_there,
    judged_step,
    last_report,
    stop_requested,
    stop_seen,
    trial_folder,
    write_monitor_never_logged,
    write_stop_seen,
)
from hydra_sigopt.stop_rules import StopRule, decides_at

log = logging.getLogger("hydra_sigopt")

#: The longest a report waits for the sweeper's verdict (it reads reports at least every second).
VERDICT_WAIT_MAX_S = 5.0
#: How often a waiting report looks for the verdict.
VERDICT_POLL_S = 0.05


class TrialStopped(Exception):
    """The sweeper stopped this trial early; the task may catch it (to save a checkpoint) and return."""


@dataclass
class _Trial:
    number: int
    folder: Path
    #: The sweep's rule, for trials judged by a sweeper in another process (None: nothing to wait for).
    rule: StopRule | None = None
    #: The step of this process's last report.
    last_step: int | None = None
    #: A spawned worker's: the trial's last report when the worker learnt of the trial (an earlier
    #: stage's), which rank 0's steps count on from (see _counted_from).
    inherited_step: int | None = None
    #: When the step being trained started (the trial's start, then each report's return).
    step_started: float = 0.0
    #: A step whose verdict did not come in time (the sweeper busy, detached or gone): no report
    #: waits again until the sweeper is seen judging (a ``judged`` file at that step or later).
    unanswered: int | None = None
    #: Whether a report could not be written (said once per trial).
    write_failed: bool = False
    #: Whether the trial's folder was there (as the task started here, or made by a report): missing
    #: after that, it was deleted with its sweep dir, and reports do not make the deleted folders again.
    folder_was_there: bool = False
    #: Whether report() raised TrialStopped for this trial; and whether a report after it (the app
    #: caught the stop and trained on) was said.
    stop_raised: bool = False
    trained_on_said: bool = False
    #: Whether the trial learnt of its stop here (report() raised it, should_stop() said so).
    stop_learnt: bool = False
    #: Set when the trial's task has returned (under _ending): reports of threads it left running are left out.
    ended: bool = False
    #: Named in the environment by a trial whose sweeper judges in the trial's own process (the
    #: basic launcher): this process (a spawned worker) cannot reach it while the trial runs.
    judged_in_the_trials_process: bool = False


_active: _Trial | None = None
#: The thread running the active trial's task (threading.get_ident()).
_active_thread: int | None = None
#: Per thread other than the task's: ``.trial``, the trial current at its first report, and ``.work``,
#: a weak reference to the pool task it was running then (see _pool_work_item; None: a thread of its own).
_bindings = threading.local()
#: Held while a report is written and while a trial ends: no report is written after its trial's end.
_ending = threading.Lock()


def _new_lock_in_the_child() -> None:
    """A process forked while another thread wrote a report would inherit the lock held, forever."""
    global _ending
    _ending = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_the_child)
#: The environment variables that give a process's rank, in the order Lightning's rank_zero_only
#: reads them (lightning_fabric.utilities.rank_zero._get_rank): SLURM_PROCID can be set where
#: Slurm does not start the ranks, so the launcher's RANK and LOCAL_RANK come first.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
#: The environment variables that give the number of a trial's processes (torchrun's and Lightning's
#: launchers, Slurm's job and step, LSF's jsrun): a world of one is rank 0 whatever the ranks above say.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "JSM_NAMESPACE_SIZE")
#: The environment variable naming the trial to processes the task starts (JSON: number, folder, rule).
TRIAL_ENV = "HYDRA_SIGOPT_TRIAL"
#: The trial the environment named, as last read: (the variable's value, the trial).
_from_environment: tuple[str, _Trial | None] | None = None
#: Set by a sweeper whose trials run in its own process: called with the trial's number after each report.
_in_process_hook: Callable[[int], None] | None = None
#: The process and thread that set the hook: the only ones it may be called from.
_hook_thread: tuple[int, int] | None = None


def report(step: int, **metrics: float) -> None:
    """Report the trial's metrics at ``step`` (an epoch, an iteration: whole numbers, increasing).

    Raises :class:`TrialStopped` once the sweeper has decided to stop this trial, and ValueError
    for a malformed report (nothing of it is written). A report the file system refuses (full, over
    quota) is left out with a warning, and the training goes on. Does nothing outside a sweep of
    this sweeper, nor in a thread whose trial has ended (see the module's doc). On a rank other
    than 0 nothing is written: the step is checked, and the stop raised, as on rank 0.
    """
    trial = _current()
    if trial is None:
        return
    if trial.ended:
        _say_left_out(trial, step)
        return
    if stop_requested(trial.folder):
        _say_if_it_trained_on(trial)
        _told_of_its_stop(trial)
        raise TrialStopped(f"trial #{trial.number} was stopped early by the sweeper")
    rank_zero = _is_rank_zero()
    checked_step = _checked_step(step, _counted_from(trial, rank_zero))
    written = rank_zero and _append(trial, checked_step, _checked_values(checked_step, metrics))
    previous, trial.last_step = _counted_from(trial, rank_zero), checked_step
    if written or not rank_zero:  # the other ranks wait for the verdict on rank 0's report too
        _judge(trial, previous, checked_step, written)
    trial.step_started = time.monotonic()
    if stop_requested(trial.folder):
        _told_of_its_stop(trial)
        raise TrialStopped(f"trial #{trial.number} was stopped early by the sweeper at step {checked_step}")


def _counted_from(trial: _Trial, rank_zero: bool) -> int | None:
    """The step this process's next report must exceed: its own last report's; before its first, on
    rank 0 the trial's last report when it learnt of the trial (a second stage's worker counts on
    from the first stage's). Not on another rank: rank 0 may have written this stage's first reports
    before that rank first looked (a spawned rank starts later), and its own step 1 was refused as
    not increasing."""
    if trial.last_step is not None or not rank_zero:
        return trial.last_step
    return trial.inherited_step


def _told_of_its_stop(trial: _Trial) -> None:
    """The trial learns of its stop here: it will not train to its end (see :func:`learnt_of_its_stop`)."""
    _learns_of_its_stop(trial)
    trial.stop_raised = True


def _learns_of_its_stop(trial: _Trial) -> None:
    if not trial.stop_learnt:  # noted once, for the trial's other processes too
        write_stop_seen(trial.folder)
        trial.stop_learnt = True


def _say_if_it_trained_on(trial: _Trial) -> None:
    """Once: a report after TrialStopped was raised, so the app caught it and trains on (a catch-all
    ``except Exception`` around a step); the stop then saves nothing."""
    if not trial.stop_raised or trial.trained_on_said:
        return
    trial.trained_on_said = True
    log.warning(
        "Trial #%d reports after its stop: the app caught TrialStopped and trains on (a catch-all `except"
        " Exception`?). Let it end the task, or catch it only to save a checkpoint. Where the sweeper can"
        " cancel the trial's job (submitit launchers) it does after early_stopping.stop_grace_s; with the"
        " basic launcher the trial holds the sweep until it ends",
        trial.number,
    )


def _checked_values(step: int, metrics: dict[str, Any]) -> dict[str, float]:
    values = {name: _checked_value(step, name, value) for name, value in metrics.items()}
    if not values:
        raise ValueError(f"report(step={step}) has no metric; pass them by name: report(step, val_loss=0.31)")
    return values


def _is_rank_zero() -> bool:
    """Whether this process is rank 0 of its trial (or the only one), as Lightning tells it: the
    process group's rank once torch.distributed is set up (Lightning's DDP strategies set
    ``rank_zero_only.rank`` to it), else the rank its environment gives, in a world of more than
    one process only. A process alone in its world is rank 0 whatever a variable says: Lightning's
    single-device strategy has global rank 0 (``trainer.is_global_zero``) with SLURM_PROCID=1 too,
    and a cluster may export LOCAL_RANK or SLURM_PROCID to a job of one process."""
    distributed = _distributed_rank()
    if distributed is not None:
        return distributed == 0
    if _alone_in_its_world():
        return True
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value) == 0
            except ValueError:  # not a rank (set by something else): as if absent, Lightning would fail
                return True
    return True


def _distributed_rank() -> int | None:
    """This process's rank in torch.distributed's default group (None: torch not imported, or no group)."""
    distributed = sys.modules.get("torch.distributed")
    try:
        if distributed is None or not distributed.is_available() or not distributed.is_initialized():
            return None
        return int(distributed.get_rank())
    except Exception:  # a torch build without the calls, a group being torn down: read the environment
        return None


def _alone_in_its_world() -> bool:
    """Whether the environment says this process's world has one process: every world size it names
    (:data:`WORLD_SIZE_VARIABLES`) is 1, or it names none. ddp_spawn's ranks name none (Lightning sets
    only LOCAL_RANK in them) but train in a process group, which _distributed_rank reads first."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name)
        try:
            if value is not None and int(value) > 1:
                return False
        except ValueError:  # not a size (set by something else): as if absent
            continue
    return True


def _judge(trial: _Trial, previous: int | None, step: int, written: bool) -> None:
    """Have the report at ``step`` judged: at once by a sweeper in this process (its hook), or wait
    a moment for the verdict of one elsewhere where the rule decides (``written``: by this process;
    a rank other than 0 waits for the verdict on rank 0's report)."""
    hook = _in_process_hook
    if hook is not None or trial.judged_in_the_trials_process:
        if not written:
            return
        if hook is not None and _on_the_hooks_thread():
            hook(trial.number)
        else:
            _say_off_thread(trial)
    elif _verdict_due(trial, previous, step) and not _await_verdict(
        trial.folder, step, time.monotonic() - trial.step_started
    ):
        trial.unanswered = step


def _append(trial: _Trial, step: int, values: dict[str, float]) -> bool:
    """Write the report; on a file system that refuses it (full, over quota, read-only, an NFS
    server gone) say so once and let the training go on: a lost report costs a judgement at most,
    a crashed training all of it."""
    try:
        with _ending:
            if trial.ended:  # ended as this thread reported: left out as a report after it is
                return False
            if trial.folder_was_there and not folder_there(trial.folder):
                raise FileNotFoundError(
                    errno.ENOENT, "deleted (with its sweep dir?); not made again", str(trial.folder)
                )
            append_report(trial.folder, step, values, time.time(), time.monotonic() - trial.step_started)
            trial.folder_was_there = True
    except OSError as error:
        if not trial.write_failed:
            log.warning(
                "report(step=%d) could not be written to %s (%s: %s); the training goes on, and the "
                "sweeper judges it only by the reports it can read",
                step,
                trial.folder,
                type(error).__name__,
                error,
            )
        trial.write_failed = True
        return False
    return True


def _verdict_due(trial: _Trial, previous: int | None, step: int) -> bool:
    """Whether the report at ``step`` waits for the sweeper's verdict: the rule decides there."""
    return trial.rule is not None and decides_at(trial.rule, previous, step) and _sweeper_answers(trial)


def _sweeper_answers(trial: _Trial) -> bool:
    """Whether waiting for a verdict may pay: none went unanswered, or the sweeper has judged since.
    Without this a trial whose sweeper is gone (detached, killed while its Slurm jobs run on) or
    never reads while it runs (launchers other than submitit's) would wait at every such step."""
    if trial.unanswered is not None and (judged_step(trial.folder) or -1) >= trial.unanswered:
        trial.unanswered = None
    return trial.unanswered is None


def _await_verdict(folder: Path, step: int, step_took: float) -> bool:
    """Wait until the sweeper has judged ``step`` (stopped the trial, or let it go on), for at most
    as long as the step took and VERDICT_WAIT_MAX_S; whether it did."""
    deadline = time.monotonic() + min(step_took, VERDICT_WAIT_MAX_S)
    while not stop_requested(folder) and (judged_step(folder) or 0) < step:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(VERDICT_POLL_S, left))
    return True


def should_stop() -> bool:
    """Whether the sweeper has decided to stop this trial (False outside a sweep of this sweeper)."""
    trial = _current()
    if trial is None or not stop_requested(trial.folder):
        return False
    _learns_of_its_stop(trial)  # the app's loop ends on it, as on TrialStopped
    return True


def learnt_of_its_stop() -> bool:
    """Whether this trial learnt of its stop, in this process or another of its own (report()
    raised TrialStopped, should_stop() said so). One that did not trained to its end: the sweeper
    decided the stop on reports it read late, and the trial's result stands."""
    trial = _current()
    return trial is not None and (trial.stop_learnt or stop_seen(trial.folder))


def note_monitor_never_logged(monitor: str, logged: list[str]) -> bool:
    """Note for the sweeper that the callback's ``monitor`` was never logged (see MonitorNeverLogged);
    False outside a sweep of this sweeper (nothing to note it for) and on ranks other than 0."""
    trial = _current()
    if trial is None or not _is_rank_zero():
        return False
    write_monitor_never_logged(trial.folder, MonitorNeverLogged(monitor, tuple(logged)))
    return True


def last_reported_step() -> int | None:
    """The step of this trial's last report from this process (None: none yet, or outside a sweep); in
    a spawned worker before its first, the trial's last report when the worker started (an earlier stage's)."""
    trial = _current()
    if trial is None:
        return None
    return trial.last_step if trial.last_step is not None else trial.inherited_step


def _current() -> _Trial | None:
    """The trial this thread reports for: the task's thread, the trial running now; another thread,
    the trial running at its first report (ended or not: see report), a pool's thread at its current
    task's first report (see _pool_work_item); else the one named in the
    environment by the process that started this one (a worker started with ``spawn``, as
    ``torch.multiprocessing.spawn`` and Lightning's ``ddp_spawn`` start them: a fresh interpreter
    that inherits the environment, not the module's state)."""
    if _active is not None and threading.get_ident() == _active_thread:
        return _active
    work = _pool_work_item()
    bound: _Trial | None = getattr(_bindings, "trial", None)
    if bound is not None and _bindings.work() is work:
        return bound
    if _active is not None:
        _bindings.trial, _bindings.work = _active, _reference_to(work)
        return _active
    return _named_in_environment()


def _pool_work_item() -> object | None:
    """The task of a ``concurrent.futures.ThreadPoolExecutor`` (asyncio's executor too) this thread
    runs now, found on its stack; None in a thread of its own. A pool's threads outlive the trial that
    started them and run the work of whichever trial submits it: one task is what reports for one
    trial, as a thread of its own is."""
    pools = sys.modules.get("concurrent.futures.thread")  # not imported: no pool runs
    run = getattr(getattr(pools, "_WorkItem", None), "run", None)
    if run is None:
        return None
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code is not run.__code__:
        frame = frame.f_back
    return None if frame is None else frame.f_locals.get("self")


def _reference_to(work: object | None) -> Callable[[], object | None]:
    """A reference that does not keep ``work`` alive (a finished task's id may be given to the next one)."""
    if work is None:
        return lambda: None
    try:
        return weakref.ref(work)
    except TypeError:  # a pool of another Python whose tasks take no weak references: the thread binds
        return lambda: work


def _named_in_environment() -> _Trial | None:
    global _from_environment
    named = os.environ.get(TRIAL_ENV)
    if named is None or _runs_a_hydra_app():
        return None
    if _from_environment is None or _from_environment[0] != named:
        _from_environment = (named, _trial_named(named))
    return _from_environment[1]


def _runs_a_hydra_app() -> bool:
    """Whether this process runs a Hydra app of its own (another sweep or run started inside the
    trial, with its own sweeper or none): its reports are not the trial's, whatever it inherited.
    A worker a task spawns (torch.multiprocessing.spawn, ddp_spawn) does not start Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return False
    return HydraConfig.initialized()


def _trial_named(named: str) -> _Trial | None:
    try:
        fields = json.loads(named)
        rule = StopRule(**fields["rule"]) if fields.get("rule") else None
        trial = _Trial(int(fields["number"]), Path(fields["folder"]), rule)
        trial.judged_in_the_trials_process = bool(fields.get("in_process", False))
        started = float(fields.get("started", time.time()))
    except (ValueError, TypeError, KeyError):  # not ours, or from another version: report nothing
        return None
    # A worker of a later stage (a second Trainer's ddp_spawn) counts on from the trial's last report,
    # and its first step started then (or with the trial), not at its first report: it waits for
    # the verdict, as the trial's own process does. Only a report of this run of the task: a requeued
    # job's first attempt left its own, which the new attempt reports again.
    last = last_report(trial.folder)
    if last is not None and last[1] >= started:
        trial.inherited_step, started = last
    trial.step_started = time.monotonic() - max(0.0, time.time() - started)
    trial.folder_was_there = folder_there(trial.folder)
    return trial


def _checked_step(step: Any, last: int | None) -> int:
    whole = _whole_number(step)
    if whole is None:
        raise ValueError(f"report(step={step!r}): the step must be a whole number (an epoch or iteration)")
    if not 0 <= whole <= LARGEST_STEP:
        raise ValueError(f"report(step={whole}): the step must be a whole number from 0 to {LARGEST_STEP}")
    if last is not None and whole <= last:
        raise ValueError(f"report(step={whole}): steps must increase, and the previous report's step was {last}")
    return whole


def _whole_number(step: Any) -> int | None:
    """``step`` as an int: ints and numpy integers, and floats with a whole value (``1.0``, an
    epoch computed by division); None for anything else (1.5, NaN, a bool, text)."""
    if isinstance(step, bool):
        return None
    try:
        return operator.index(step)
    except TypeError:
        pass
    if not isinstance(step, numbers.Real):  # Python and numpy floats; not text
        return None
    value = float(step)
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _checked_value(step: int, name: str, value: Any) -> float:
    number: float | None = None
    detach = getattr(value, "detach", None)
    if callable(detach):  # a tensor in the autograd graph (a step's loss): its value, without torch's warning
        value = detach()
    if not isinstance(value, (bool, str, bytes)):
        try:
            number = float(plain_scalar(value))  # Python numbers, numpy and torch values of one element
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int past a float's range
            number = None
    if number is None:
        raise ValueError(f"report(step={step}): {name} must be a number, got {reprlib.repr(value)}")
    if not math.isfinite(number):
        raise ValueError(f"report(step={step}): {name} is {number}; only finite numbers can be reported")
    return number


# ---------------------------------------------------------------------------------- the sweeper's side


@contextmanager
def reporting_to(root: Path, number: int, rule: StopRule | None = None) -> Iterator[None]:
    """Make :func:`report` write to trial ``number``'s folder under ``root`` meanwhile (the trial's
    task runs); with the sweep's ``rule``, wait for the sweeper's verdict where it decides."""
    global _active, _active_thread
    trial = _Trial(number, trial_folder(root, number), rule if rule is not None and rule.active else None)
    trial.step_started = time.monotonic()
    trial.folder_was_there = folder_there(trial.folder)  # noted by the task as it started (see write_output_dir)
    previous, _active = _active, trial
    previous_thread, _active_thread = _active_thread, threading.get_ident()
    previous_named = os.environ.get(TRIAL_ENV)
    os.environ[TRIAL_ENV] = _name(trial)  # for the processes the task starts (see _current)
    try:
        yield
    finally:
        with _ending:  # a report being written by one of its threads is whole before the end
            trial.ended = True
        _active, _active_thread = previous, previous_thread
        if previous_named is None:
            os.environ.pop(TRIAL_ENV, None)
        else:
            os.environ[TRIAL_ENV] = previous_named


def _name(trial: _Trial) -> str:
    rule = dataclasses.asdict(trial.rule) if trial.rule is not None else None
    in_process = _in_process_hook is not None and _on_the_hooks_thread()
    fields = {"number": trial.number, "folder": str(trial.folder), "rule": rule, "in_process": in_process}
    return json.dumps({**fields, "started": time.time()})  # when the trial started (see _trial_named)


def set_in_process_hook(hook: Callable[[int], None] | None) -> None:
    """Have :func:`report` call ``hook(trial number)`` after each report made in this process and
    thread (None: stop). Reports from other threads, or from processes forked from this one, are
    written only: the hook works on the sweeper's journal, whose SQLite connection belongs to this
    thread; the sweeper journals them when the trial's task has returned."""
    global _in_process_hook, _hook_thread
    _in_process_hook = hook
    _hook_thread = (os.getpid(), threading.get_ident())


def _on_the_hooks_thread() -> bool:
    return _hook_thread == (os.getpid(), threading.get_ident())


def _say_off_thread(trial: _Trial) -> None:
    if first_in_the_sweep(trial.folder, "off_thread"):
        log.warning(
            "report() was called from another thread or process than the trial's task: with the basic "
            "launcher such reports are journaled when the trial ends, and cannot stop it early "
            "(hydra/launcher=submitit_local judges them while the trial runs)"
        )


def _say_left_out(trial: _Trial, step: Any) -> None:
    if first_in_the_sweep(trial.folder, "left_out"):
        log.warning(
            "report(step=%r) came from a thread that trial #%d left running after its task returned: it is"
            " left out, not counted for the trial running now (nor are that thread's later reports)."
            " Stop or join the threads that report before the task returns",
            step,
            trial.number,
        )
