"""How an in-process trial ended (its value, or its failure), kept beside it until the journal has it.

With Hydra's basic launcher a batch of trials runs one after the other in the sweeper's own
process, and Hydra hands their values back together when the whole batch has run. A sweeper
killed in the middle (``kill -9``, the out-of-memory killer, a dead SSH session) took the values
of the batch's finished trials with it, and the resumed sweep ran them again. So each value is
also kept, as its task returns, in the trial's folder (``hydra_sigopt.report_files``): a resume,
and ``hydra-sigopt status``, read it for a trial the journal shows running.

A failure is kept the same way (its one-line reason and traceback, as JSON: the resume records the
trial as failed, as the batch's end would have, instead of running it again); a Ctrl-C is no
failure, and is not kept. At ``parallel_bandwidth: 1`` too: between the task's return and the
journal, Hydra runs the user's ``on_job_end`` callbacks (an upload, say) in the sweeper's process.

A kept end is whole or absent: written aside, synced, then renamed over (a kill at any instant
leaves at most a temporary file, never read). It is read only for a trial still running in the
journal, and removed once the journal has the trial's result (:func:`forget_kept`): a kill between
the two leaves a file that is never read again, so never recorded twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from hydra_sigopt.crashpoints import crash_point

log = logging.getLogger("hydra_sigopt")

#: In a trial's folder: its task's return value and run (see KeptReturn).
RETURNED_NAME = "returned.pkl"
#: In a trial's folder: its task's failure (see KeptFailure).
RAISED_NAME = "raised.json"
#: Whether a value that could not be kept was said already (see keep_return).
_not_kept_said = False


@dataclass(frozen=True)
class KeptReturn:
    """What an in-process trial's task returned, and when and where it ran."""

    value: Any
    started_at: float
    ended_at: float
    host: str


@dataclass(frozen=True)
class KeptFailure:
    """How an in-process trial's task failed (its one-line reason, its traceback), and when and where it ran."""

    reason: str
    traceback: str | None
    started_at: float
    ended_at: float
    host: str
    #: The file with the whole traceback (the reason and traceback recorded may be cut); None where
    #: it could not be written, and in a failure kept by an older version.
    full_log: str | None = None


def keep_return(folder: Path, kept: KeptReturn) -> None:
    """Keep the value durably in the trial's folder. Best effort: a value that cannot be pickled is
    said in the log once, never the trial's failure: only a kill would miss it."""
    path = folder / RETURNED_NAME
    crash_point("keeping_return")
    try:
        pickle_durably(path, kept)
    except OSError as exc:
        # The disk (full, failing, read-only): the sweep's own next write says so, in one line. A
        # warning here would go to the log file on that same disk, and fail there with a traceback.
        log.debug("Trial's value not kept in %s (%s)", path, exc)
    except Exception as exc:
        global _not_kept_said
        # Once a sweep: an app whose every value holds something unpicklable would say it at each trial.
        say = log.debug if _not_kept_said else log.warning
        _not_kept_said = True
        say("Trial's value not kept in %s (%s): a sweeper killed in this batch runs the trial again", path, exc)


def pickle_durably(path: Path, value: Any) -> None:
    """Pickle ``value`` to ``path`` whole or not at all: written aside, synced, renamed over, and the
    rename synced (it survives a power cut). A kill at any instant leaves at most the aside file,
    which no reader takes for ``path``; on an error it is removed and the error raised."""
    import cloudpickle  # submitit's pickler: what pickle cannot (a value of a class defined in the app's script)

    _write_durably(path, lambda f: cloudpickle.dump(value, f))


def _write_durably(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` whole or not at all (see pickle_durably)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(aside, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(aside, path)
        _sync_folder(path.parent)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kept_return(folder: Path) -> KeptReturn | None:
    """The value kept in the trial's folder, None if none was kept (or it cannot be read: the trial is
    then run again, as before there were kept values)."""
    try:
        with open(folder / RETURNED_NAME, "rb") as f:
            kept = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # unpicklable here (the app's module gone), or damaged by hand
        log.warning("The value kept in %s cannot be read (%s): its trial is run again", folder / RETURNED_NAME, exc)
        return None
    return kept if isinstance(kept, KeptReturn) else None


#: The opcode every pickle ends with: a file cut short ends with another byte (almost always).
_PICKLE_STOP = b"."


def returned_at(folder: Path) -> float | None:
    """When the trial's task returned, as its kept value's file says (None: none kept, or one cut
    short). For ``hydra-sigopt status`` and ``kill``, which do not unpickle it: a value of the app's
    own classes needs the app's modules (the resume, run as the sweep was, reads it), and
    ``status --watch`` would load every value every few seconds."""
    path = folder / RETURNED_NAME
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            whole = f.read(1) == _PICKLE_STOP
            return os.fstat(f.fileno()).st_mtime if whole else None
    except OSError:  # none kept (or empty: seek before its start)
        return None


def keep_failure(folder: Path, kept: KeptFailure) -> None:
    """Keep the trial's failure durably in its folder. Best effort, as keep_return: only a kill would miss it."""
    text = json.dumps(asdict(kept)).encode()
    try:
        _write_durably(folder / RAISED_NAME, lambda f: f.write(text))
    except OSError as exc:  # the disk: said by the sweep's own next write (see keep_return)
        log.debug("Trial's failure not kept in %s (%s)", folder / RAISED_NAME, exc)


def kept_failure(folder: Path) -> KeptFailure | None:
    """The failure kept in the trial's folder, None if none was kept (or it cannot be read: the trial
    is then run again, as before failures were kept)."""
    try:
        fields = json.loads((folder / RAISED_NAME).read_bytes())
        return KeptFailure(**fields)
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged by hand, or written by another version
        log.warning("The failure kept in %s cannot be read (%s): its trial is run again", folder / RAISED_NAME, exc)
        return None


def raised_at(folder: Path) -> float | None:
    """When the trial's task raised, as its kept failure's file says (None: none kept)."""
    try:
        return os.stat(folder / RAISED_NAME).st_mtime
    except OSError:
        return None


def forget_kept(folder: Path) -> None:
    """Remove what the trial kept of its end, once the journal has its result: it would never be read
    again (the sweep dir is the user's to keep small). A file that stays (a kill first, a file system
    that refuses) is harmless: only a trial still running in the journal has its kept end read."""
    for name in (RETURNED_NAME, RAISED_NAME):
        with contextlib.suppress(OSError):
            (folder / name).unlink(missing_ok=True)
