"""The files a trial and the sweeper share for early stopping: its reports, and the stop marker.

The two sides share nothing but the file system (a trial may run on another node, over NFS):

* the trial appends one JSON line per report to ``reports.jsonl`` (flushed and fsynced before
  ``report`` returns); the sweeper reads complete lines only, from where it stopped reading, so a
  line being written is read once it is whole;
* the sweeper writes ``stop`` (atomically: a temporary file renamed) once it has journaled its
  decision to stop the trial; the trial looks for it at each report.

Each trial has its folder ``<sweep dir>/.hydra_sigopt/trials/<trial number>/``: the sweeper knows
it without composing the trial's config (``hydra.sweep.subdir`` may be anything).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHANNEL_DIR = ".hydra_sigopt"
REPORTS_NAME = "reports.jsonl"
STOP_NAME = "stop"


def trials_root(sweep_dir: Path) -> Path:
    """The folder holding every trial's report folder (absolute: jobs may run from elsewhere)."""
    return Path(os.path.abspath(sweep_dir)) / CHANNEL_DIR / "trials"


def trial_folder(root: Path, number: int) -> Path:
    return root / str(number)


def append_report(folder: Path, step: int, metrics: dict[str, float], at: float) -> None:
    """Append one report line and make it durable before returning."""
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"step": step, "metrics": metrics, "time": at}, allow_nan=False) + "\n"
    with open(folder / REPORTS_NAME, "ab") as f:
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


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


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def write_stop(folder: Path, step: int, reason: str) -> None:
    """Tell the trial to stop (after the decision was journaled): a whole file or none."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STOP_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps({"step": step, "reason": reason}) + "\n")
    os.replace(tmp, folder / STOP_NAME)


def stop_requested(folder: Path) -> bool:
    return (folder / STOP_NAME).exists()
