"""``hydra-sigopt status DIR --watch [SECONDS]``: the status drawn again every few seconds, until the sweep ends.

Read-only, as ``status`` is: each snapshot is ``status`` itself. On a terminal the screen is
cleared before each one (as ``watch(1)`` does); into a file or a pipe each snapshot follows the last
after a line with its time, so ``> status.log`` reads as a log. It ends by itself, after a last
snapshot, once nothing of the sweep runs: no sweeper holds it, no driver job of ``hydra-sigopt
submit`` is queued or running, and no job of an unfinished trial still runs (a killed sweeper's
``submitit_local`` or Slurm jobs run on). Ctrl-C ends it quietly.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

from hydra_sigopt import copies, driver
from hydra_sigopt.journal import PENDING, RUNNING, SweepLock, journal_path, open_journal

#: ``--watch`` without a value: seconds between snapshots.
DEFAULT_EVERY_S = 5.0
#: ANSI: cursor home, then clear the screen.
CLEAR_SCREEN = "\033[H\033[2J"


def watch(sweep_dir: Path, every_s: float, show_status: Callable[[], object], title: str) -> int:
    """Draw ``show_status`` (which prints) every ``every_s`` seconds until the sweep has ended; 0."""
    on_terminal = sys.stdout.isatty()
    try:
        _wait_for_the_sweep(sweep_dir, every_s)
        while True:
            ended = sweep_has_ended(sweep_dir)  # before the snapshot: the last one shows the end
            _draw(show_status, title, on_terminal)
            if ended:
                return 0
            time.sleep(every_s)
    except KeyboardInterrupt:  # the way to stop watching a sweep that runs on: no traceback
        print(flush=True)
        return 0


def _wait_for_the_sweep(sweep_dir: Path, every_s: float) -> None:
    """Wait until the sweep dir holds a sweep (a journal, or a submitted driver's record): watch is
    often run just after the sweep's command, before Hydra made the folder. Said once."""
    said = False
    while not _is_a_sweep(sweep_dir):
        if not said:
            print(f"Waiting for a sweep in {sweep_dir} (none yet: it appears once its sweeper starts)", flush=True)
            said = True
        time.sleep(min(every_s, 1.0))


def _is_a_sweep(sweep_dir: Path) -> bool:
    return journal_path(sweep_dir).exists() or driver.read_record(sweep_dir) is not None


def sweep_has_ended(sweep_dir: Path) -> bool:
    """Whether nothing of the sweep runs: no sweeper, no driver job waiting or running, no trial's job."""
    record = driver.read_record(sweep_dir)
    if record is not None and driver.driver_state(str(record["job_id"])) is not None:
        return False
    if not journal_path(sweep_dir).exists():
        return True  # a driver that ended without starting the sweep
    try:
        if SweepLock(sweep_dir).holder() is not None:
            return False
        lock_unknown = False
    except OSError:  # a read-only copy of someone's sweep: its lock cannot be tried; its journal says
        lock_unknown = True
    with open_journal(sweep_dir) as journal:
        meta, unfinished = journal.meta(), journal.trials([PENDING, RUNNING])
    if lock_unknown:
        return not unfinished
    return not copies.jobs_still_running(meta, [str(t.job_id) for t in unfinished if t.job_id])


def _draw(show_status: Callable[[], object], title: str, on_terminal: bool) -> None:
    """One snapshot, printed at once (drawn line by line, a slow status would flicker on a terminal)."""
    snapshot = io.StringIO()
    with redirect_stdout(snapshot):
        show_status()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    if on_terminal:
        sys.stdout.write(f"{CLEAR_SCREEN}{title}    {stamp}\n\n{snapshot.getvalue()}")
    else:
        sys.stdout.write(f"--- {stamp} ---\n{snapshot.getvalue()}\n")
    sys.stdout.flush()
