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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
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


def start_run(journal: Journal, now: float) -> float:
    """Note that a sweeper starts running the sweep at ``now``; the time its earlier runs took."""
    runs = runs_of(journal.meta(), journal.trials())
    journal.set_meta(**{RUNS: [*[list(r) for r in runs], [now, now]]})
    return time_ran(runs)


class Heartbeat:
    """Notes in the journal that this run of the sweep goes on (at most every :data:`BEAT_S` s)."""

    def __init__(self, journal: Journal, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.clock = clock
        self._last = -math.inf

    def __call__(self, force: bool = False) -> None:
        if not force and self.clock() - self._last < BEAT_S:
            return
        self._last = self.clock()
        runs = [list(r) for r in self.journal.meta().get(RUNS) or []]
        if runs:  # noted by start_run
            runs[-1][1] = time.time()
            self.journal.set_meta(**{RUNS: runs})
