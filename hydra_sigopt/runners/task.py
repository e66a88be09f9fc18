"""What runs inside a trial's job: the app's task, timed, with every way it can fail made a failure.

:class:`TimedTask` wraps the app's task function (the plugin hands it to Hydra's launcher); it is
pickled into submitit jobs, so it stays a small class with no reference to the sweeper.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hydra_sigopt.kept_returns import KeptFailure, KeptReturn, keep_failure, keep_return
from hydra_sigopt.processes import leave_the_terminals_process_group, take_interrupts
from hydra_sigopt.runners.outcome import FULL_TRACEBACK_FILE, JobOutcome, describe_error
from hydra_sigopt.signals import sweep_interrupted
from hydra_sigopt.stop_rules import StopRule

log = logging.getLogger(__name__)


#: How the tasks run in this process ended (their value, or their failure), by job number, until
#: their batch's ``launch()`` returns: a Ctrl-C that ends a batch of in-process trials (the basic
#: launcher runs them one after the other) keeps those that had ended (see BatchRunner).
_ended_here: dict[int, JobOutcome] = {}


def take_ended_here(numbers: Iterable[int]) -> list[JobOutcome]:
    """How these trials' tasks that ran in this process ended; forgotten here."""
    return [_ended_here.pop(n) for n in list(numbers) if n in _ended_here]


class TaskExit(RuntimeError):
    """The task called ``sys.exit()``: that trial's failure, not the end of the sweep."""


class TimedTask:
    """Wraps the app's task function to record each trial's start, end and host (in its report folder).

    Also makes every way the task can fail an exception Hydra's ``run_job`` turns into a failed
    job (``sys.exit()`` included), and keeps the whole traceback in the trial's job dir.
    A class, not a closure, so that submitit can pickle it into the job.
    """

    def __init__(
        self,
        task_function: Callable[[Any], Any],
        reports_root: Path | None = None,
        stop_rule: StopRule | None = None,
        detached: bool = False,
    ) -> None:
        self.task_function = task_function
        #: The sweeper's process: a task run in it keeps how it ended for BatchRunner (see _ended_here).
        self.sweeper_pid = os.getpid()
        #: ``on_interrupt: detach``: a local job leaves the terminal's process group, so that the
        #: terminal's Ctrl-C (sent to the whole group) stops the sweeper and leaves the job running.
        self.detached = detached
        self.__name__ = getattr(task_function, "__name__", "task")
        #: Where the trials' report folders are (``hydra_sigopt.report_files``): report() writes there.
        self.reports_root = reports_root
        #: The sweep's early-stopping rule: report() waits for the sweeper's verdict where it decides.
        self.stop_rule = stop_rule

    def __call__(self, cfg: Any) -> Any:
        """What the app's task returns: Hydra's callbacks (``on_job_end``) see the app's own value."""
        from hydra_sigopt.crashpoints import crash_point

        started = time.time()
        in_the_sweepers_process = os.getpid() == getattr(self, "sweeper_pid", None)  # getattr: older jobs
        if in_the_sweepers_process and sweep_interrupted():
            # The trial before swallowed the Ctrl-C (Lightning's graceful shutdown): end the batch here.
            raise KeyboardInterrupt("the sweep was interrupted before this trial started")
        if getattr(self, "detached", False):
            leave_the_terminals_process_group()
        take_interrupts()  # a local job starts with SIGINT blocked: the app takes Ctrl-C as usual
        crash_point("in_task")
        number = _job_number()
        self._note_output_dir(number)
        folder_was_there = self._trial_folder_there(number)  # one deleted by the end is not made again
        try:
            with submitits_signal_carried(), _terminations_noted():
                value, stop_learnt = self._run(cfg)
            if _in_submitit_job():
                _check_picklable(value)
        except Exception as exc:
            text = traceback.format_exc()
            full_log = _keep_full_traceback(text)
            ended = self._note_run(number, started, True, folder_was_there)
            if number is not None and in_the_sweepers_process:  # a failure is an end too: kept, not re-run
                reason = describe_error(exc)
                _ended_here[number] = JobOutcome(number, False, None, exc, reason, text, None, ended, full_log=full_log)
                if not sweep_interrupted():  # an app that turns the user's Ctrl-C into its own error
                    kept = KeptFailure(reason, text, started, ended, socket.gethostname(), full_log)
                    self._keep_failure(number, kept)
            raise
        ended = self._note_run(number, started, stop_learnt, folder_was_there)
        if number is not None and in_the_sweepers_process:  # not a job's, nor a worker's
            # Noted first: a Ctrl-C while the value is kept (a large one, an NFS fsync) stops the
            # sweep, which records the trials noted here instead of cancelling them.
            _ended_here[number] = JobOutcome(number, True, value, ended_at=ended)
            # Not a stopped trial's (journaled with the stop), nor one returned after the sweep's Ctrl-C
            # (swallowed: Lightning's graceful shutdown): the stop does not record it, a resume must not.
            if not stop_learnt and not sweep_interrupted():
                self._keep_return(number, KeptReturn(value, started, ended, socket.gethostname()))
        return value

    def _note_output_dir(self, number: int | None) -> None:
        """Tell ``hydra-sigopt delete`` where the trial's folder is, as the task starts (see
        report_files.write_output_dir): a folder without ``.hydra`` is known by it alone."""
        if self.reports_root is None or number is None:
            return
        from hydra.core.hydra_config import HydraConfig

        from hydra_sigopt.report_files import write_output_dir

        try:
            output_dir = Path(HydraConfig.get().runtime.output_dir)
        except Exception as exc:  # a note, never the trial's failure: no runtime config (a test calling the task)
            log.debug("the trial's output dir is unknown: %s", exc)
            return
        write_output_dir(self.reports_root, number, output_dir)

    def _note_run(self, number: int | None, started: float, stop_learnt: bool, folder_was_there: bool) -> float:
        """Tell the sweeper when and where trial ``number``'s task ran, beside its value (see
        report_files.RunRecord); return when it ended. ``folder_was_there``: the trial's folder was
        there as the task started (missing now, it was deleted with its sweep dir)."""
        ended = time.time()
        if self.reports_root is None or number is None:
            return ended
        from hydra_sigopt.report_files import RunRecord, folder_there, trial_folder, write_run_record

        folder = trial_folder(self.reports_root, number)
        if folder_was_there and not folder_there(folder):
            log.debug("trial #%d's folder %s was deleted (with its sweep dir?): its run is not noted", number, folder)
            return ended  # a folder the user deleted is not made again
        write_run_record(folder, RunRecord(started, ended, socket.gethostname(), stop_learnt))
        return ended

    def _keep_return(self, number: int, kept: KeptReturn) -> None:
        """Keep an in-process trial's value beside it (see kept_returns): Hydra hands it to the sweeper
        only when the whole batch has run, and a sweeper killed before would lose it."""
        if self.reports_root is None:
            return
        from hydra_sigopt.report_files import folder_there, trial_folder

        folder = trial_folder(self.reports_root, number)
        if folder_there(folder):  # noted by _note_run; one deleted with its sweep dir is not made again
            keep_return(folder, kept)

    def _keep_failure(self, number: int, kept: KeptFailure) -> None:
        """Keep an in-process trial's failure beside it, as its value would be (see _keep_return); the
        tokens the sweep withholds are masked first (the error may quote the app's environment)."""
        if self.reports_root is None:
            return
        from hydra_sigopt.report_files import folder_there, trial_folder
        from hydra_sigopt.secrets import redact, withheld_tokens

        folder = trial_folder(self.reports_root, number)
        if folder_there(folder):
            tokens = withheld_tokens()
            masked = dataclasses.replace(
                kept, reason=redact(kept.reason, *tokens), traceback=redact(kept.traceback or "", *tokens)
            )
            keep_failure(folder, masked)

    def _trial_folder_there(self, number: int | None) -> bool:
        """Whether trial ``number``'s report folder is there as its task starts (see _note_run)."""
        if self.reports_root is None or number is None:
            return False
        from hydra_sigopt.report_files import folder_there, trial_folder

        return folder_there(trial_folder(self.reports_root, number))

    def _run(self, cfg: Any) -> tuple[Any, bool]:
        """The task's value, and whether the trial learnt of a stop by the sweeper (see RunRecord)."""
        if self.reports_root is None:
            return self._call(cfg), False
        from hydra.core.hydra_config import HydraConfig

        from hydra_sigopt.reporting import TrialStopped, learnt_of_its_stop, reporting_to, should_stop

        # getattr: a job queued by an older version of the sweeper unpickles a task without it.
        rule = getattr(self, "stop_rule", None)
        with reporting_to(self.reports_root, int(HydraConfig.get().job.num), rule):
            try:
                value = self._call(cfg)
            except TrialStopped:
                if not should_stop():
                    raise  # raised by the app itself: not the sweeper's stop
                return None, True  # the sweeper journaled the stop; its last reports are the trial's result
            return value, learnt_of_its_stop()

    def _in_the_sweepers_process(self) -> bool:
        """A sweeper itself run as a submitit job: a SystemExit there must not end it (see _call)."""
        return os.getpid() == getattr(self, "sweeper_pid", None)

    def _call(self, cfg: Any) -> Any:
        try:
            return self.task_function(cfg)
        except SystemExit as exc:
            # Hydra's run_job catches Exception only: in-process, SystemExit would end the sweeper
            # with the task's exit code and leave the trial running in the journal.
            if _raised_by_submitit(exc) or (_terminated_by_the_cluster() and not self._in_the_sweepers_process()):
                raise  # the job exits to be requeued (time-out or preemption signal): not a failure
            code = "" if exc.code is None else repr(exc.code)
            raise TaskExit(f"the task called sys.exit({code})") from exc


def _job_number() -> int | None:
    """The trial's number (Hydra's job number); None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return int(HydraConfig.get().job.num)
    except ValueError as exc:  # no Hydra job config (a test calling the task): nothing to note
        log.debug("no Hydra job config: %s", exc)
        return None


class _GaveUpOnTheJob(BaseException):
    """submitit's give-up at the pre-timeout signal, carried through the app as a BaseException."""


@contextmanager
def submitits_signal_carried() -> Iterator[None]:
    """Let submitit's give-up at the pre-timeout signal (no requeue left) end the task wherever it lands.

    Its signal handler raises ``UncompletedJobError``, an Exception, in whatever code the task is
    running, and ``logging`` swallows every Exception raised inside a handler's ``emit`` ("--- Logging
    error ---"): an app that logs (or submitit itself, logging the SIGCONT Slurm sends with the
    signal) lost it, and the job ran on to Slurm's hard kill. It travels as a BaseException instead,
    which no ``except Exception`` stops, and is raised again here as submitit's own error.
    Its requeue (preemption, or a time-out with requeues left) is kept when Slurm's SIGTERM ends the
    ``scontrol requeue`` it runs (see carried). TrialJob sets it up for the whole launcher call too:
    the signal may land while Hydra sets the job up, before the task starts (see trial_job).
    """
    import signal
    import threading

    if not _in_submitit_job() or threading.current_thread() is not threading.main_thread():
        yield
        return
    from submitit.core.job_environment import JobEnvironment
    from submitit.core.logger import get_logger
    from submitit.core.utils import UncompletedJobError

    signum = JobEnvironment._usr_sig()
    submitits = signal.getsignal(signum)
    if not callable(submitits):
        yield
        return

    def carried(num: int, frame: FrameType | None) -> None:
        try:
            submitits(num, frame)
        except UncompletedJobError as exc:
            raise _GaveUpOnTheJob(str(exc)) from None
        except subprocess.CalledProcessError as exc:
            if not _requeue_ended_by_slurm(exc):
                raise
            # Slurm ends the job it requeues, and the ``scontrol requeue`` submitit runs inside it with
            # it (SIGTERM), often before that exits: the requeue was taken. End as submitit ends after
            # its requeue, leaving no result (the trial's failure otherwise, and the requeued job ran for
            # nothing); if Slurm cancelled the job instead, the sweeper reads that from Slurm's state.
            exit_as_requeued = getattr(getattr(submitits, "__self__", None), "_exit", None)
            if exit_as_requeued is None:
                raise
            get_logger().warning("%s was ended by Slurm's SIGTERM: the job is requeued", exc.cmd)
            exit_as_requeued()  # submitit's SystemExit: the task lets it through (see TimedTask._call)

    signal.signal(signum, carried)
    try:
        yield
    except _GaveUpOnTheJob as exc:
        raise UncompletedJobError(str(exc)) from None
    finally:
        signal.signal(signum, submitits)


def _requeue_ended_by_slurm(exc: subprocess.CalledProcessError) -> bool:
    """Whether submitit's ``scontrol requeue`` died of the SIGTERM Slurm sends the job it requeues."""
    import signal

    return exc.returncode == -signal.SIGTERM and "requeue" in list(exc.cmd)


#: Set when the job got SIGTERM while its task ran (see _terminations_noted).
_sigterm_received = False


@contextmanager
def _terminations_noted() -> Iterator[None]:
    """Note a SIGTERM the job gets while the task runs, keeping the handler submitit installed.

    Slurm sends SIGTERM before it requeues a job (``scontrol requeue``, a preemption), cancels it or
    ends it at its time limit. Inside a Slurm job Lightning's fit loop then raises
    ``SIGTERMException``, a ``SystemExit`` (its own handler runs the one found before it, this one),
    and the app leaves with it: that is the cluster ending the job, not the app calling
    ``sys.exit()``. Raised on as it is, the job leaves no result; a requeued job runs again, and
    the sweeper reads its next attempt (a cancelled one ends as cancelled).
    """
    import signal
    import threading

    global _sigterm_received
    previous = signal.getsignal(signal.SIGTERM)
    if not _in_submitit_job() or threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # outside a job (or with Python's default, which ends the process): nothing to keep
        return

    def noted(num: int, frame: FrameType | None) -> None:
        global _sigterm_received
        _sigterm_received = True
        previous(num, frame)

    _sigterm_received = False
    signal.signal(signal.SIGTERM, noted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _sigterm_received = False  # a SIGTERM is news for the task that got it only


def _terminated_by_the_cluster() -> bool:
    """Whether the job got SIGTERM while the task ran (see _terminations_noted)."""
    return _sigterm_received


def _raised_by_submitit(exc: SystemExit) -> bool:
    """Whether submitit's handler of a time-out or preemption signal raised it, to end the job it requeued."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("submitit.")


def _in_submitit_job() -> bool:
    """Whether this process is a submitit job (whose return value is pickled back to the sweeper)."""
    return "SUBMITIT_FOLDER" in os.environ and "SUBMITIT_EXECUTOR" in os.environ


def _check_picklable(value: Any) -> None:
    """Raise here, as the task's failure, what would otherwise lose the job's whole result.

    submitit pickles a job's return value after the task; when that fails it writes no result at
    all (its error dump trips over the half-written file), and the reason would be lost.
    """
    import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception as exc:
        raise TypeError(f"the task's return value cannot be sent back from its job ({describe_error(exc)})") from exc


def _keep_full_traceback(text: str) -> str | None:
    """Write a failed trial's whole traceback to its job dir (best effort: the journal keeps a short
    one); where it is (None: it could not be written)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        from hydra_sigopt.secrets import redact, withheld_tokens

        path = Path(HydraConfig.get().runtime.output_dir, FULL_TRACEBACK_FILE)
        path.write_text(redact(text, *withheld_tokens()))
        return str(path)
    except Exception as exc:  # no Hydra job config, a full disk: the shortened traceback must do
        log.debug("could not keep the full traceback: %s", exc)
        return None
