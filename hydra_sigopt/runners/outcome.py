"""How a trial's job ended (:class:`JobOutcome`), read from what Hydra's launchers return.

A trial's task returns the app's value inside its job (see :mod:`.task`); Hydra wraps it in a
``JobReturn``; the runners turn that, or a job that died, into one :class:`JobOutcome`. When and
where the task ran comes beside it, in the trial's report folder (``report_files.RunRecord``).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The file in a failed trial's job dir that keeps its whole traceback (the journal keeps a shortened one).
FULL_TRACEBACK_FILE = "failure_traceback.log"
#: Longest failure reason and traceback kept in the journal, trials.csv and the log.
MAX_REASON_CHARS = 500
MAX_TRACEBACK_CHARS = 5000


@dataclass(frozen=True)
class TrialResult:
    """What the task of a job started by an earlier version returned: the app's value, where and when it ran.

    Kept so that a sweep resumed after an upgrade reads the results of its jobs still running; the
    task now returns the app's own value (Hydra's callbacks see it), and notes the rest in a file.
    """

    value: Any
    started_at: float
    ended_at: float
    host: str
    #: Whether the trial learnt of a stop by the sweeper (a result returned without: it trained to
    #: its end, whatever the sweeper decided on reports it read late).
    stop_learnt: bool = True


@dataclass(frozen=True)
class JobOutcome:
    """How one trial's job ended."""

    number: int
    ok: bool
    value: Any = None
    error: BaseException | None = None
    reason: str | None = None
    traceback: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    host: str | None = None
    job_id: str | None = None
    #: Where the failure's whole traceback or log is (the reason and traceback above may be cut).
    full_log: str | None = None
    #: Whether the trial learnt of a stop by the sweeper (:attr:`TrialResult.stop_learnt`); True
    #: where it cannot be known.
    stop_learnt: bool = True
    #: When the trial's slot was taken, for a job whose task was restarted (submitit_local at a
    #: time-out): the run record of its last attempt starts later than the trial.
    held_from: float | None = None


def describe_error(error: BaseException) -> str:
    """``Type: message``, also for an exception whose ``str()`` raises (it must not stop the sweep)."""
    try:
        message = str(error)
    except Exception as exc:
        message = f"<str() raised {type(exc).__name__}>"
    return f"{type(error).__name__}: {message}"


def shorten(text: str, limit: int, full_at: str | None = None) -> str:
    """``text`` cut to about ``limit`` characters at a line end, saying how much was cut and where it is whole."""
    if len(text) <= limit:
        return text
    line_end = text.rfind("\n", 0, limit)
    head = text[:line_end] if line_end > limit // 2 else text[:limit]
    where = f"; full traceback in {full_at}" if full_at else ""
    return f"{head} ... ({len(text) - len(head)} characters cut{where})"


def outcome_from_job_return(number: int, ret: Any, job_id: str | None = None) -> JobOutcome:
    """Read a Hydra JobReturn without re-raising the task's exception."""
    from hydra.core.utils import JobStatus

    raw = getattr(ret, "_return_value", None)
    if ret.status == JobStatus.COMPLETED:
        if isinstance(raw, TrialResult):
            # getattr: the result of a job started by an older version of the sweeper.
            learnt = getattr(raw, "stop_learnt", True)
            return JobOutcome(
                number,
                True,
                raw.value,
                started_at=raw.started_at,
                ended_at=raw.ended_at,
                host=raw.host,
                job_id=job_id,
                stop_learnt=learnt,
            )
        return JobOutcome(number, True, raw, ended_at=time.time(), job_id=job_id)
    error = raw if isinstance(raw, BaseException) else None
    reason = describe_error(error) if error is not None else f"job ended with status {ret.status}"
    tb = "".join(traceback.format_exception(error)) if error is not None else None
    forget_frames(error)
    return JobOutcome(
        number,
        False,
        error=error,
        reason=reason,
        traceback=tb,
        ended_at=time.time(),
        job_id=job_id,
        full_log=_full_traceback_file(ret),
    )


def forget_frames(error: BaseException | None) -> None:
    """Drop the frames of an exception (and those it was raised from), once their text is kept.

    Hydra's run_job keeps the task's exception in its JobReturn, which the frame of run_job in
    that exception's traceback holds: a reference cycle per failed trial, with every local of
    the task in it, that only the cyclic garbage collector frees (seen: 590 MB for 10 MB errors).
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def _full_traceback_file(ret: Any) -> str | None:
    """The file where the task kept a failed trial's whole traceback, if it is there."""
    try:
        path = Path(str(ret.hydra_cfg.hydra.runtime.output_dir), FULL_TRACEBACK_FILE)
    except Exception:  # a launcher's JobReturn without Hydra's config
        return None
    return str(path) if path.exists() else None


def failure_in_one_line(outcome: JobOutcome) -> str:
    """A failure for a message (the one that stopped the sweep, one after a stop): one line and where
    the rest is.

    A stop is a message like every refusal (Hydra prints a compact exception alone): ~17 lines
    of the task's traceback buried the stop itself; they are in the file named here.
    """
    lines = (outcome.reason or "no reason was recorded").strip().splitlines() or [""]
    said = lines[0] + (" ..." if len(lines) > 1 else "")
    if outcome.full_log:
        kind = "full traceback" if outcome.full_log.endswith(FULL_TRACEBACK_FILE) else "its job's log"
        said += f" ({kind} in {outcome.full_log})"
    elif outcome.traceback:
        said += " (its traceback is in trials.csv)"
    return said
