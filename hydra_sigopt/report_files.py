"""The files a trial and the sweeper share for early stopping: its reports, and the stop marker.

The two sides share nothing but the file system (a trial may run on another node, over NFS):

* the trial appends one JSON line per report (its step, metrics, time, and the seconds the step
  took) to ``reports.jsonl`` (flushed and fsynced before ``report`` returns); the sweeper reads
  complete lines only, from where it stopped reading, so a line being written is read once it is
  whole;
* the sweeper writes ``stop`` (atomically: a temporary file renamed) once it has journaled its
  decision to stop the trial; the trial looks for it at each report;
* the sweeper writes ``judged`` (the same way), the last step it judged and let the trial go on
  from: at a step where the rule decides, the trial waits a moment for one of the two, so that a
  trial the rule stops does not train one more step first;
* the trial writes ``output_dir`` (the same way) as its task starts: its output folder, relative to
  the sweep dir, so that ``hydra-sigopt delete`` knows it for the sweep's whatever
  ``hydra.sweep.subdir`` named it, also without Hydra's ``.hydra`` record (``hydra.output_subdir=null``);
* the trial writes ``ran`` (the same way) when its task ends: when and where it ran, and whether it
  learnt of a stop. Hydra hands the launcher, and the user's callbacks, only what the task returns,
  which must stay the app's own value.

Each trial has its folder ``<sweep dir>/.hydra_sigopt/trials/<trial number>/``: the sweeper knows
it without composing the trial's config (``hydra.sweep.subdir`` may be anything).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHANNEL_DIR = ".hydra_sigopt"
REPORTS_NAME = "reports.jsonl"
STOP_NAME = "stop"
JUDGED_NAME = "judged"
#: Written by the trial when it learns of its stop (report() raises, should_stop() says so).
SEEN_NAME = "stop_seen"
#: Written by the trial when its task ends (see RunRecord).
RAN_NAME = "ran"
#: Written by the trial as its task starts: its output folder, relative to the sweep dir.
OUTPUT_NAME = "output_dir"
#: Written by the trial when its Lightning callback's monitored metric was never logged in a fit.
MONITOR_NAME = "monitor_never_logged"
#: The largest step a report may have: the journal keeps steps as SQLite's 64-bit integers.
LARGEST_STEP = 2**63 - 1


def trials_root(sweep_dir: Path) -> Path:
    """The folder holding every trial's report folder (absolute: jobs may run from elsewhere)."""
    return Path(os.path.abspath(sweep_dir)) / CHANNEL_DIR / "trials"


def trial_folder(root: Path, number: int) -> Path:
    return root / str(number)


def folder_there(folder: Path) -> bool:
    """Whether a trial's folder is there (False where it cannot be told: an NFS server gone). One
    there as the trial started and missing later was deleted with its sweep dir: the trial's side
    does not make it again (a user who deleted the sweep dir finds it back otherwise)."""
    try:
        return folder.is_dir()
    except OSError:
        return False


def append_report(folder: Path, step: int, metrics: dict[str, float], at: float, took: float) -> None:
    """Append one report line and make it durable before returning; ``took``: the seconds the step
    took, by the trial's clock (a cluster's queue left out): how long its next step may take.

    A line is whole or absent: one the file system refused part of (full, over quota) is cut off
    again before the OSError is raised. Should a part stay all the same (a kill mid-write), the
    next line starts on a line of its own, so the sweeper skips the part and keeps the line.
    """
    folder.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "metrics": metrics, "time": at, "took": round(took, 3)}
    line = (json.dumps(record, allow_nan=False) + "\n").encode()
    fd = os.open(folder / REPORTS_NAME, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # RDWR: its last byte is read
    try:
        end = os.fstat(fd).st_size
        if end and os.pread(fd, 1, end - 1) != b"\n":
            line = b"\n" + line
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until all is written: a file system that takes part of it returns a short count."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class ReportLines:
    """Reads a trial's report file incrementally: each complete line once."""

    path: Path
    offset: int = 0

    def new_lines(self) -> list[Any]:
        """The lines completed since the last call, parsed (a line that is not JSON: as its text)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [_parse(raw) for raw in complete.splitlines() if raw.strip()]


def last_report(folder: Path) -> tuple[int, float] | None:
    """The step and time of the trial's last whole report (None: none yet), from any of its processes."""
    for line in reversed(ReportLines(folder / REPORTS_NAME).new_lines()):
        if isinstance(line, dict) and isinstance(line.get("step"), int) and isinstance(line.get("time"), (int, float)):
            return line["step"], float(line["time"])
    return None


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def write_stop(folder: Path, step: int, reason: str) -> None:
    """Tell the trial to stop (after the decision was journaled): a whole file or none."""
    _write_whole(folder, STOP_NAME, json.dumps({"step": step, "reason": reason}) + "\n")


def write_judged(folder: Path, step: int) -> None:
    """Tell the trial its reports up to ``step`` were judged and do not stop it."""
    _write_whole(folder, JUDGED_NAME, f"{step}\n")


def judged_step(folder: Path) -> int | None:
    """The last step the sweeper judged and let the trial go on from (None: none yet)."""
    try:
        return int((folder / JUDGED_NAME).read_text())
    except (OSError, ValueError):
        return None


def _write_whole(folder: Path, name: str, text: str) -> None:
    """A whole file or none: written under a temporary name and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, folder / name)


#: The notes already said by this process, by sweep (trials root) and name (see first_in_the_sweep).
_said: set[tuple[Path, str]] = set()


def first_in_the_sweep(folder: Path, note: str) -> bool:
    """Whether ``note`` about trial ``folder``'s reports is said here for the first time in its
    sweep, by any process: a marker beside the trials' folders, created by the first only (a
    worker process of each trial would say it again, with one flag per process)."""
    root = folder.parent
    if (root, note) in _said:
        return False
    _said.add((root, note))
    try:
        os.close(os.open(root / f".{note}_said", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    except OSError:  # a file system that refuses the marker: said once per process, then
        return True
    return True


def write_output_dir(root: Path, number: int, output_dir: Path) -> None:
    """Note trial ``number``'s output folder (see the module's docstring), relative to the sweep dir:
    right in a copy or a moved sweep dir too. Best effort; one outside the sweep dir is not noted."""
    sweep_dir = root.parent.parent  # <sweep dir>/.hydra_sigopt/trials (trials_root)
    relative = os.path.relpath(os.path.realpath(output_dir), os.path.realpath(sweep_dir))
    if relative == "." or relative.startswith(".."):
        return
    with contextlib.suppress(OSError):
        _write_whole(trial_folder(root, number), OUTPUT_NAME, relative + "\n")


def output_dir(root: Path, number: int) -> str | None:
    """Trial ``number``'s output folder relative to the sweep dir, as it noted it (None: not noted)."""
    try:
        relative = (trial_folder(root, number) / OUTPUT_NAME).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return relative if relative and not Path(relative).is_absolute() and ".." not in Path(relative).parts else None


def write_stop_seen(folder: Path) -> None:
    """Note that the trial learnt of its stop (from any of its processes): it did not train to its end."""
    with contextlib.suppress(OSError):  # the trial's own process remembers it too (see stop_seen)
        (folder / SEEN_NAME).touch()


def stop_seen(folder: Path) -> bool:
    try:
        return (folder / SEEN_NAME).exists()
    except OSError:
        return False


def stop_requested(folder: Path) -> bool:
    try:
        return (folder / STOP_NAME).exists()
    except OSError:  # an NFS server gone (ESTALE, EIO): no stop can be seen; the training goes on
        return False


@dataclass(frozen=True)
class RunRecord:
    """When and where a trial's task ran, written by the trial as its task ends."""

    started_at: float
    ended_at: float
    host: str
    #: Whether the trial learnt of a stop by the sweeper (a result returned without: it trained to
    #: its end, whatever the sweeper decided on reports it read late).
    stop_learnt: bool


def write_run_record(folder: Path, record: RunRecord) -> None:
    """Best effort: without it the sweeper records the trial as ended when it saw the result."""
    with contextlib.suppress(OSError):
        _write_whole(folder, RAN_NAME, json.dumps(dataclasses.asdict(record)) + "\n")


def run_record(folder: Path) -> RunRecord | None:
    """The trial's record of its run (None: none was written, or it cannot be read)."""
    try:
        fields = json.loads((folder / RAN_NAME).read_text())
        return RunRecord(
            float(fields["started_at"]), float(fields["ended_at"]), str(fields["host"]), bool(fields["stop_learnt"])
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class MonitorNeverLogged:
    """``SigOptReport(monitor=...)`` found its metric in no validation of a fit: it reported nothing.
    The trial notes it for the sweeper, which says it in the sweep's output (a job's log is not
    where a user looks) in place of its advice to report, which that app follows already."""

    monitor: str
    logged: tuple[str, ...]  # the names the app did log (trainer.callback_metrics)


def write_monitor_never_logged(folder: Path, note: MonitorNeverLogged) -> None:
    """Best effort: without it the sweep says only that the trial reported nothing."""
    with contextlib.suppress(OSError):
        _write_whole(folder, MONITOR_NAME, json.dumps({"monitor": note.monitor, "logged": list(note.logged)}) + "\n")


def monitor_never_logged(folder: Path) -> MonitorNeverLogged | None:
    """The trial's note that its callback's monitor was never logged (None: none, or unreadable)."""
    try:
        fields = json.loads((folder / MONITOR_NAME).read_text())
        return MonitorNeverLogged(str(fields["monitor"]), tuple(str(name) for name in fields["logged"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
