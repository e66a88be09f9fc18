"""The time sweepers ran a sweep: what its elapsed time counts, in the progress line and in
``hydra-sigopt status`` alike.

A sweep killed in the evening and resumed the next morning did not run in between; counting the
night (both figures counted from the sweep's creation) hid how long the sweep takes, and the two
figures disagreed (status stopped at the last trial's end, the progress line at its last line).
Each sweeper notes in the journal's meta when it starts and, every :data:`BEAT_S` seconds or so
while it runs, that it still does: ``sweeper_runs``, one ``[start, last seen]`` per run (epoch
seconds). The elapsed time is the sum of the runs' spans: a sweeper killed without its wrap-up
(``kill -9``) loses at most the time since its last note. Jobs that ran on while no sweeper ran
are not counted: nothing ran the sweep then.

A trial run in the sweeper's own process (the basic launcher) holds its main thread for as long as
it trains, so the journal's note could not follow it: a sweep killed five hours into its first
trial said "Elapsed: 0s". A thread of the sweeper writes the time in a file (:class:`AliveMark`)
meanwhile; the last run of a sweeper that is gone ends at the later of its note and that time.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt.journal import Journal, Trial

#: The journal's meta entry: [[start, last seen], ...], one per sweeper run, epoch seconds.
RUNS = "sweeper_runs"
#: How often a running sweeper notes that it still runs (at most; it notes as it logs progress).
BEAT_S = 2.0


def runs_of(meta: Mapping[str, Any], trials: Sequence[Trial]) -> list[tuple[float, float]]:
    """The sweeper runs the journal notes. A journal written before they were noted: one run, from
    the sweep's creation to the last thing its trials did (the time it was down cannot be told)."""
    noted = meta.get(RUNS)
    if noted:
        return [(float(start), float(end)) for start, end in noted]
    if not trials:
        return []
    created = float(meta.get("created_at", 0.0))
    last = max(t.ended_at or t.started_at or t.created_at for t in trials)
    return [(created, max(created, last))]


def alive_mark_path(sweep_dir: Path) -> Path:
    """The file a running sweeper touches every :data:`BEAT_S` seconds (see :class:`AliveMark`)."""
    return Path(sweep_dir) / ".hydra_sigopt" / "sweeper_alive"


def last_alive(sweep_dir: Path) -> float | None:
    """When a sweeper of this sweep last said it ran (the time the mark holds); None without a mark.

    The time written in the file, not the file's own: a copy of the sweep dir made without keeping
    file times (``cp -r``, ``scp -r``) has the copy's time, which counted the days between the sweep's
    end and the copy as time a sweeper ran."""
    try:
        return float(alive_mark_path(sweep_dir).read_text())
    except (OSError, ValueError):
        return None


def _now_stamp() -> bytes:
    """The time now as the mark holds it (always as long: rewritten in place, it needs no truncation)."""
    return f"{time.time():.3f}\n".encode()


def with_last_sign(runs: Sequence[tuple[float, float]], alive_at: float | None) -> list[tuple[float, float]]:
    """The runs, the last one ending at ``alive_at`` where its sweeper touched the mark after its
    last note in the journal (it was busy in a trial of its own process when it died)."""
    spans = list(runs)
    if spans and alive_at is not None and alive_at > spans[-1][1]:
        spans[-1] = (spans[-1][0], alive_at)
    return spans


def time_ran(runs: Sequence[tuple[float, float]], until: float | None = None) -> float:
    """The runs' time; ``until``: the last run still runs, up to then."""
    spans = list(runs)
    if until is not None and spans:
        spans[-1] = (spans[-1][0], max(until, spans[-1][0]))
    return math.fsum(max(0.0, end - start) for start, end in spans)


def time_between(runs: Sequence[tuple[float, float]], until: float | None = None) -> float:
    """The time between the first run's start and the last run's end that no sweeper ran."""
    if not runs:
        return 0.0
    end = runs[-1][1] if until is None else max(until, runs[-1][0])
    return max(0.0, end - runs[0][0] - time_ran(runs, until))


def start_run(journal: Journal, now: float, alive_at: float | None = None) -> float:
    """Note that a sweeper starts running the sweep at ``now``; the time its earlier runs took
    (``alive_at``: the mark's time, see :func:`with_last_sign`, read before this run touches it)."""
    runs = with_last_sign(runs_of(journal.meta(), journal.trials()), alive_at)
    journal.set_meta(**{RUNS: [*[list(r) for r in runs], [now, now]]})
    return time_ran(runs)


class AliveMark:
    """A thread that writes the time in :func:`alive_mark_path` every :data:`BEAT_S` seconds while the
    sweeper runs, also while a trial holds its main thread. It only rewrites the file it made at the
    start: a sweep dir removed or moved meanwhile is not made again by it.

    Used as a context manager around the whole run (see Sweep), so that every way the run ends stops
    it: stopped only as the run's end was noted, it ran on after a stop whose journal had failed (lost,
    its disk full), rewriting the mark of a sweep that had ended for as long as the process lived."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = alive_mark_path(sweep_dir)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._touch_until_stopped, name="hydra-sigopt-alive", daemon=True)

    def start(self) -> None:
        with contextlib.suppress(OSError):  # a sweep dir that refuses the file: the journal's note alone
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(_now_stamp())
            self._thread.start()

    def stop(self) -> None:
        """Before the run's end is noted: the mark is then never later than the note. Once is enough."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> AliveMark:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _touch_until_stopped(self) -> None:
        while not self._stop.wait(BEAT_S):
            with contextlib.suppress(OSError), open(self.path, "r+b") as mark:  # r+: never made again
                mark.write(_now_stamp())


class Heartbeat:
    """Notes in the journal that this run of the sweep goes on (at most every :data:`BEAT_S` s).
    ``mark``: the run's :class:`AliveMark`, stopped when the run's end is noted (``force``)."""

    def __init__(
        self, journal: Journal, clock: Callable[[], float] = time.monotonic, mark: AliveMark | None = None
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.mark = mark
        self._last = -math.inf

    def __call__(self, force: bool = False) -> None:
        if force and self.mark is not None:
            self.mark.stop()
        if not force and self.clock() - self._last < BEAT_S:
            return
        self._last = self.clock()
        runs = [list(r) for r in self.journal.meta().get(RUNS) or []]
        if runs:  # noted by start_run
            runs[-1][1] = time.time()
            self.journal.set_meta(**{RUNS: runs})
