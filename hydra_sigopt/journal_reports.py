"""The journal's table of intermediate reports (early stopping): one row per trial and step.

Written through the journal's own transaction (and its guard against a lost file); idempotent, so
that a report file read again (a resumed sweep reads each running trial's file from its start)
changes nothing. A journal made before this table existed gets it at its first report.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from hydra_sigopt.metrics import is_finite_number

REPORTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    number INTEGER NOT NULL,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    reported_at REAL,
    journaled_at REAL NOT NULL,
    PRIMARY KEY (number, step)
);
"""


@dataclass(frozen=True)
class Report:
    """One report of a trial: its metrics at ``step``."""

    number: int
    step: int
    metrics: Mapping[str, float]
    reported_at: float | None = None


class DamagedReport(ValueError):
    """A report row SQLite reads but whose content the journal never writes (edited by hand, say)."""


class ReportTable:
    def __init__(self, db: sqlite3.Connection, writing: Callable[[], AbstractContextManager[None]]) -> None:
        self._db = db
        self._writing = writing

    def add(self, reports: Sequence[Report]) -> int:
        """Journal reports (those already journaled are left as they are); how many were new."""
        if not reports:
            return 0
        with self._writing():
            self._db.execute(REPORTS_SCHEMA)  # a journal made before this table existed
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO reports (number, step, metrics, reported_at, journaled_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(r.number, r.step, json.dumps(dict(r.metrics)), r.reported_at, time.time()) for r in reports],
            )
            return self._db.total_changes - before

    def all(self, numbers: Sequence[int] | None = None) -> list[Report]:
        """Every journaled report (of these trials), by trial and step."""
        if not self._exists():
            return []
        rows = self._db.execute("SELECT number, step, metrics, reported_at FROM reports ORDER BY number, step")
        wanted = None if numbers is None else set(numbers)
        return [_report(*row) for row in rows if wanted is None or row[0] in wanted]

    def last_steps(self) -> dict[int, int]:
        """The last step each trial reported, by trial number (trials that reported)."""
        if not self._exists():
            return {}
        return {int(n): int(s) for n, s in self._db.execute("SELECT number, MAX(step) FROM reports GROUP BY number")}

    def _exists(self) -> bool:
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reports'").fetchone()
        return found is not None


def _report(number: Any, step: Any, metrics: Any, reported_at: Any) -> Report:
    """A journaled report row, or :class:`DamagedReport` naming what is wrong with it."""
    if not _is_int(number):
        raise DamagedReport(f"a report's trial number must be a whole number, not {number!r}")
    if not _is_int(step):
        raise DamagedReport(f"trial #{number}'s report: its step must be a whole number, not {step!r}")
    try:
        values = json.loads(metrics)
    except (TypeError, ValueError):
        values = None
    if not (isinstance(values, dict) and values and all(is_finite_number(v) for v in values.values())):
        problem = f"its metrics are not numbers by name ({metrics!r})"
        raise DamagedReport(f"trial #{number}'s report at step {step}: {problem}")
    if reported_at is not None and not is_finite_number(reported_at):
        raise DamagedReport(f"trial #{number}'s report at step {step}: its time is not a number ({reported_at!r})")
    return Report(number, step, values, reported_at)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
