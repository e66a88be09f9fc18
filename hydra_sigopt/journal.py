"""The sweep's state on disk: an SQLite journal in the sweep dir.

Every state change is committed before the action it enables (a trial is recorded before it is
submitted, a result before it is posted to the engine), so a kill at any instant leaves a journal
from which the sweep continues without losing or repeating work. WAL mode keeps readers (the
``hydra-sigopt`` command) from blocking the sweeper.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.errors import JournalError, SweepDirTaken
from hydra_sigopt.journal_file import JournalFile
from hydra_sigopt.journal_guard import JournalFullError as JournalFullError  # raised on a full disk; imported from here
from hydra_sigopt.journal_guard import JournalGuard, set_nonce
from hydra_sigopt.journal_guard import JournalLostError as JournalLostError  # raised by the guard; imported from here
from hydra_sigopt.journal_reports import DamagedReport, ReportTable
from hydra_sigopt.metrics import MetricValue, is_finite_number
from hydra_sigopt.trial_state import TrialState, is_legal

JOURNAL_NAME = "sigopt_journal.sqlite"
LOCK_NAME = "sigopt_journal.lock"
#: Written by ``hydra-sigopt kill`` before it signals the sweeper (see hydra_sigopt.stopping.kill_requested).
KILL_MARKER_NAME = "sigopt_kill_requested"
FORMAT_VERSION = 2
#: The formats this version reads. Format 1 knew no stopped trials and no reports (early stopping):
#: a sweeper that opens a format-1 journal to write marks it format 2 first, so that an older
#: hydra-sigopt refuses it by name instead of neither counting nor posting its stopped trials.
READS_FORMATS = (1, 2)

PENDING, RUNNING, COMPLETED, FAILED, ABANDONED, STOPPED = (s.value for s in TrialState)
STATES = tuple(s.value for s in TrialState)
FINISHED_STATES = (COMPLETED, FAILED, STOPPED)


class IllegalTransition(JournalError):
    """A write the trial state machine refuses (see :mod:`hydra_sigopt.trial_state`); nothing was written."""

    def __init__(self, number: int, current: str | None, target: str) -> None:
        self.number = number
        self.current = current
        self.target = target
        now = "does not exist" if current is None else f"is {current}"
        super().__init__(f"trial #{number} {now}; it cannot become {target}")


_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    suggestion_id TEXT,
    assignments TEXT NOT NULL,
    overrides TEXT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    metric_values TEXT,
    failure_reason TEXT,
    failure_traceback TEXT,
    host TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    observed_at REAL,
    observation_id TEXT,
    rerun_of INTEGER,
    task TEXT
);
CREATE INDEX IF NOT EXISTS trials_state ON trials (state);
"""
    # The reports table is made by the first report (ReportTable.add), through the sweeper's own
    # connection: pages made at creation and never read again would be lost with a truncated file,
    # and the lost-journal guard could not restore it from the sweeper's copy.
)


@dataclass(frozen=True)
class Trial:
    """One row of the journal."""

    number: int
    suggestion_id: str | None
    assignments: dict[str, Any]
    overrides: list[str]
    state: str
    job_id: str | None
    values: tuple[MetricValue, ...]
    failure_reason: str | None
    failure_traceback: str | None
    host: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    observed_at: float | None
    observation_id: str | None
    rerun_of: int | None
    task: str | None = None  # multitask sweeps: the task the engine chose

    @property
    def observed(self) -> bool:
        return self.observed_at is not None

    @property
    def observed_as_failed(self) -> bool:
        """Failed, or stopped early before reporting every metric: the engine learns a failure."""
        return self.state == FAILED or (self.state == STOPPED and self.failure_reason is not None)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def value(self, metric: str) -> float | None:
        for v in self.values:
            if v.name == metric:
                return v.value
        return None


class DamagedRow(ValueError):
    """A trial row SQLite reads but whose content the journal never writes (edited by hand, say)."""


def _is_metric_value(value: Any) -> bool:
    """Whether ``value`` is one metric's value as :meth:`MetricValue.to_sigopt` writes it."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and is_finite_number(value.get("value"))
        and (value.get("value_stddev") is None or is_finite_number(value["value_stddev"]))
    )


def _row_problem(state: Any, assignments: Any, overrides: Any, values: Any) -> str | None:
    """What in a trial row's content the journal would never have written, or None.

    Checked on reading, so that a damaged row is refused when the journal is opened instead of
    crashing whatever reads it later (a resume would first have run trials and changed the file).
    """
    if state not in STATES:
        return f"state {state!r} is not a trial state"
    if not isinstance(assignments, dict):
        return "its assignments are not a JSON object"
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return "its overrides are not a list of strings"
    if not isinstance(values, list) or not all(_is_metric_value(v) for v in values):
        return "its metric values are not a list of names with finite numbers"
    return None


def _trial_from_row(row: sqlite3.Row) -> Trial:
    assignments = json.loads(row["assignments"])
    overrides = json.loads(row["overrides"])
    raw_values = json.loads(row["metric_values"] or "[]")
    problem = _row_problem(row["state"], assignments, overrides, raw_values)
    if problem is not None:
        raise DamagedRow(f"trial #{row['number']}: {problem}")
    values = tuple(MetricValue(v["name"], v["value"], v.get("value_stddev")) for v in raw_values)
    return Trial(
        number=row["number"],
        suggestion_id=row["suggestion_id"],
        assignments=assignments,
        overrides=overrides,
        state=row["state"],
        job_id=row["job_id"],
        values=values,
        failure_reason=row["failure_reason"],
        failure_traceback=row["failure_traceback"],
        host=row["host"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        observed_at=row["observed_at"],
        observation_id=row["observation_id"],
        rerun_of=row["rerun_of"],
        # Journals made before multitask have no task column (and no sweep of theirs has tasks).
        task=row["task"] if "task" in row.keys() else None,  # noqa: SIM118 (a Row has no __contains__ by name)
    )


_REQUIRED_META = ("experiment_id", "backend", "identity", "fingerprint")


def _meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with a journal's meta table, or None."""
    missing = [key for key in _REQUIRED_META if key not in meta]
    if missing:
        return f"meta {', '.join(repr(k) for k in missing)} missing"
    identity = meta["identity"]
    if not isinstance(identity, dict) or not all(isinstance(identity.get(k), list) for k in ("parameters", "metrics")):
        return "meta 'identity' has no parameters and metrics"
    return None


def _refuse_damaged(journal: Journal) -> None:
    """Refuse a journal whose tables or rows were damaged (every row, reports included, is read once, here)."""
    try:
        problem = _meta_problem(journal.meta())
        journal.trials()
        journal.reports.all()
    except (DamagedRow, DamagedReport) as exc:
        problem = str(exc)
    except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        journal.close()
        raise JournalError(f"{journal.path} is damaged ({problem}); it was left untouched")


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection, also where SQLite cannot create the WAL's -shm file (a read-only mount,
    a teammate's folder) when the WAL is empty: then the database file is read as immutable. A sweep
    that ended cleanly left no WAL, so nothing is missed.

    Without a WAL (no sweeper has the journal open, and the last one closed it cleanly) the file is
    read as immutable too: SQLite would create the -wal and -shm files, and leave them behind in the
    user's folder. What a sweeper starting meanwhile writes goes to its WAL, not to this file."""
    uri = path.resolve().as_uri()
    wal = Path(f"{path}-wal")
    if not wal.exists():
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30)
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK) and os.access(path, os.R_OK):
            raise
    if _size(wal) > 0:  # read as immutable, the journal would miss the WAL's commits: a wrong state
        raise _wal_unreadable(path)
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30)


def _size(path: Path) -> int:
    """A file's size; 0 once it is gone (a sweeper closing cleanly removes its WAL)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _wal_unreadable(path: Path) -> JournalError:
    """Why a journal with commits in its WAL cannot be read here, and what reads it."""
    shm = Path(f"{path}-shm")
    why = "cannot be opened here" if shm.exists() else f"missing, and {path.parent} is not writable here"
    return JournalError(
        f"{path} cannot be read: its latest commits are in its -wal file, which SQLite cannot read without "
        f"its -shm file ({why}); read the sweep where it can be written, or copy the sweep dir with its "
        "-wal and -shm files"
    )


#: How every SQLite database file begins.
SQLITE_HEADER = b"SQLite format 3\x00"


def _held_connection(
    path: Path, connect: Callable[[JournalFile], tuple[sqlite3.Connection, Any]]
) -> tuple[sqlite3.Connection, JournalFile, Any]:
    """The connection ``connect`` makes (and what else it returns), with the file held from before
    it opens (see :mod:`hydra_sigopt.journal_file`): the journal releases it after closing it."""
    try:
        file = JournalFile(path)
    except OSError as exc:
        raise JournalError(f"{path} cannot be read ({exc.strerror}); it was left untouched") from None
    try:
        db, found = connect(file)
    except BaseException:
        file.release()  # no connection of this journal's is open
        raise
    return db, file, found


def _connect_readable(path: Path, file: JournalFile, readonly: bool) -> tuple[sqlite3.Connection, Any]:
    """A connection to a journal file in a format this version reads, and that format.

    A file that is no SQLite database is refused before SQLite opens it for writing: an empty one
    (truncated to 0 bytes) it would take for a new database, and write its header in. Read through
    the held descriptor: another journal of this process may have the file open (see journal_file)."""
    header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        what = "is empty" if not header else "is no SQLite database"
        raise JournalError(f"{path} is not a readable journal (the file {what}); it was left untouched")
    try:
        db = _connect(path, readonly=readonly)
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable journal ({exc}); it was left untouched") from None
    try:
        return db, _format_of(path, db)
    except BaseException:
        db.close()  # before the caller releases the file (see journal_file)
        raise


def _format_of(path: Path, db: sqlite3.Connection) -> Any:
    """The journal's format version; :class:`JournalError` for one this version does not read."""
    try:
        version = db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable journal ({exc}); it was left untouched") from None
    if version is None:
        raise JournalError(f"{path} has no format version; it was left untouched")
    found = json.loads(version[0])
    if found not in READS_FORMATS:
        newer = "a newer" if isinstance(found, int) and found > FORMAT_VERSION else "an unknown"
        raise JournalError(
            f"{path} is in {newer} journal format ({found}); this hydra-sigopt reads format "
            f"{FORMAT_VERSION}. Upgrade hydra-sigopt-sweeper to continue this sweep."
        )
    return found


def _build(tmp: Path, meta: Mapping[str, Any]) -> None:
    """Write a new journal holding ``meta`` at ``tmp`` (renamed into place by Journal.create)."""
    tmp.unlink(missing_ok=True)
    db = _connect(tmp)
    try:
        with db:
            db.executescript(_SCHEMA)
            rows = {"format_version": FORMAT_VERSION, "created_at": time.time(), **meta}
            db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])
        # Checkpointed with it: the new journal is whole in its file, nonce included, before it is
        # renamed into place.
        set_nonce(db)
    finally:
        db.close()


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = _connect_readonly(path)
    else:
        db = sqlite3.connect(path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a killed process (only power loss may drop the last commit).
        db.execute("PRAGMA synchronous=NORMAL")
    db.row_factory = sqlite3.Row
    return db


def journal_path(sweep_dir: str | os.PathLike[str]) -> Path:
    return Path(sweep_dir) / JOURNAL_NAME


#: Abandons a trial (state, reason, now, whether it never started, number): one that never started
#: loses the start time its batch gave it.
_ABANDON = (
    "UPDATE trials SET state = ?, failure_reason = ?, ended_at = COALESCE(ended_at, ?),"
    " started_at = CASE WHEN ? THEN NULL ELSE started_at END WHERE number = ?"
)


class Journal:
    """Read and write a sweep's journal. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, file: JournalFile) -> None:
        self.path = path
        self._db = connection
        # The file this connection writes (held till it closes): deleted, replaced or truncated, a write stops.
        self._guard = JournalGuard(path, connection, file, self.close)
        #: The trials' intermediate reports (early stopping), written through this journal's guard.
        self.reports = ReportTable(connection, self._writing)

    # ---------------------------------------------------------------- opening

    @classmethod
    def create(cls, sweep_dir: str | os.PathLike[str], meta: Mapping[str, Any]) -> Journal:
        """A new journal in ``sweep_dir`` holding ``meta`` (JSON-serialisable values)."""
        path = journal_path(sweep_dir)
        if path.exists():
            raise JournalError(f"{path} already exists; open it to resume instead")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Build under a temporary name and rename: a journal is either complete or absent.
        tmp = path.with_name(path.name + ".creating")
        try:
            _build(tmp, meta)
            os.replace(tmp, path)
        except (sqlite3.Error, OSError) as exc:
            # A full disk, a quota: nothing half-made stays behind.
            for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)
            raise JournalError(f"could not create the journal {path} ({exc}); nothing was left behind") from None
        db, file, _ = _held_connection(path, lambda file: (_connect(path), FORMAT_VERSION))
        return cls(path, db, file)

    @classmethod
    def open(cls, sweep_dir: str | os.PathLike[str], readonly: bool = False) -> Journal:
        """The journal of an existing sweep; :class:`JournalError` with a clear message otherwise."""
        path = journal_path(sweep_dir)
        if not Path(sweep_dir).is_dir():
            raise JournalError(f"{sweep_dir} is not a directory")
        if not path.is_file():
            raise JournalError(f"{sweep_dir} is not a hydra-sigopt sweep dir (no {JOURNAL_NAME} in it)")
        db, file, found = _held_connection(path, lambda file: _connect_readable(path, file, readonly))
        journal = cls(path, db, file)
        _refuse_damaged(journal)
        if found != FORMAT_VERSION and not readonly:
            journal.set_meta(format_version=FORMAT_VERSION)
        if not readonly:
            journal._guard.give_nonce()  # a journal made before nonces: an overwrite is noticed from now on
        return journal

    def close(self) -> None:
        self._db.close()
        self._guard.file.release()  # after the connection: closing its descriptor drops the process's locks

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, into the journal file this sweep opened and no other."""
        self._guard.check()
        try:
            with self._db:
                yield
        except sqlite3.DatabaseError as exc:
            # A file changed under the sweep is reported as such; a full disk in one line (the
            # transaction was rolled back: the journal is intact, the sweep resumable).
            self._guard.explain_failed_write(exc)
            raise

    @property
    def lost(self) -> bool:
        """Whether the journal file was lost under this sweep (see :mod:`hydra_sigopt.journal_guard`)."""
        return self._guard.lost

    # ---------------------------------------------------------------- meta

    def meta(self) -> dict[str, Any]:
        return {row["key"]: json.loads(row["value"]) for row in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self._writing():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
            )

    # ---------------------------------------------------------------- trials

    def add_trial(
        self,
        number: int,
        suggestion_id: str | None,
        assignments: Mapping[str, Any],
        overrides: Sequence[str],
        rerun_of: int | None = None,
        task: str | None = None,
    ) -> None:
        row = {
            "number": number,
            "suggestion_id": suggestion_id,
            "assignments": json.dumps(dict(assignments)),
            "overrides": json.dumps(list(overrides)),
            "state": PENDING,
            "created_at": time.time(),
            "rerun_of": rerun_of,
        } | ({"task": task} if task else {})  # journals made before multitask have no task column
        with self._writing():
            marks = ", ".join("?" * len(row))
            self._db.execute(f"INSERT INTO trials ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))

    @contextmanager
    def _moving(self, numbers: Sequence[int], target: str, recovering: bool = False) -> Iterator[None]:
        """One write transaction that moves trials to ``target``, after checking each may go there.

        BEGIN IMMEDIATE takes the write lock before the check, so another process (``hydra-sigopt
        kill``) cannot change a trial between the check and the write.
        """
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(numbers))
            current = dict(
                self._db.execute(f"SELECT number, state FROM trials WHERE number IN ({marks})", tuple(numbers))
            )
            for n in numbers:
                if n not in current or not is_legal(current[n], target, recovering):
                    raise IllegalTransition(n, current.get(n), target)
            yield

    def mark_running(self, numbers: Sequence[int], job_ids: Sequence[str | None] | None = None) -> None:
        now = time.time()
        ids = list(job_ids) if job_ids is not None else [None] * len(numbers)
        with self._moving(numbers, RUNNING):
            self._db.executemany(
                "UPDATE trials SET state = ?, job_id = COALESCE(?, job_id), started_at = COALESCE(started_at, ?)"
                " WHERE number = ?",
                [(RUNNING, jid, now, n) for n, jid in zip(numbers, ids)],
            )

    def record_result(
        self,
        number: int,
        *,
        values: Sequence[MetricValue] = (),
        failure_reason: str | None = None,
        failure_traceback: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        host: str | None = None,
        job_id: str | None = None,
    ) -> None:
        state = FAILED if failure_reason is not None else COMPLETED
        with self._moving([number], state):
            self._db.execute(
                "UPDATE trials SET state = ?, metric_values = ?, failure_reason = ?, failure_traceback = ?,"
                " started_at = COALESCE(?, started_at), ended_at = ?, host = COALESCE(?, host),"
                " job_id = COALESCE(?, job_id) WHERE number = ?",
                (
                    state,
                    json.dumps([v.to_sigopt() for v in values]),
                    failure_reason,
                    failure_traceback,
                    started_at,
                    ended_at if ended_at is not None else time.time(),
                    host,
                    job_id,
                    number,
                ),
            )

    def recover_result(
        self,
        number: int,
        *,
        values: Sequence[MetricValue],
        started_at: float | None = None,
        ended_at: float | None = None,
        host: str | None = None,
    ) -> None:
        """Complete an abandoned trial with the valid result its job wrote after all (a resume found it),
        or a stopped one with the result its job returned without learning of the stop (the decision
        came on reports read after it had trained to its end).

        Refused (:class:`IllegalTransition`) unless the trial is abandoned or stopped, was never
        observed and was not re-run: then its suggestion has no other result.
        """
        with self._moving([number], COMPLETED, recovering=True):
            taken = self._db.execute(
                "SELECT 1 FROM trials WHERE (number = ? AND observed_at IS NOT NULL) OR rerun_of = ?", (number, number)
            ).fetchone()
            if taken is not None:
                raise IllegalTransition(number, self.trial(number).state, COMPLETED)
            self._db.execute(
                "UPDATE trials SET state = ?, metric_values = ?, failure_reason = NULL, failure_traceback = NULL,"
                " started_at = COALESCE(?, started_at), ended_at = COALESCE(?, ended_at), host = COALESCE(?, host)"
                " WHERE number = ?",
                (COMPLETED, json.dumps([v.to_sigopt() for v in values]), started_at, ended_at, host, number),
            )

    def mark_observed(self, number: int, observation_id: str | None) -> None:
        """Note that a finished trial's result was posted to the engine (once)."""
        with self._writing():
            done = self._db.execute(
                "UPDATE trials SET observed_at = ?, observation_id = ?"
                " WHERE number = ? AND state IN (?, ?, ?) AND observed_at IS NULL",
                (time.time(), observation_id, number, *FINISHED_STATES),
            )
            if done.rowcount != 1:
                row = self._db.execute("SELECT state FROM trials WHERE number = ?", (number,)).fetchone()
                raise IllegalTransition(number, None if row is None else row[0], "observed")

    def mark_stopped(self, number: int, values: Sequence[MetricValue], failure_reason: str | None = None) -> None:
        """Journal the decision to stop a running trial early, with the values it is observed with
        (a ``failure_reason``: observed as failed)."""
        with self._moving([number], STOPPED):
            self._db.execute(
                "UPDATE trials SET state = ?, metric_values = ?, failure_reason = ?, ended_at = ? WHERE number = ?",
                (STOPPED, json.dumps([v.to_sigopt() for v in values]), failure_reason, time.time(), number),
            )

    def note_stopped_job_end(self, number: int, host: str | None, started_at: float | None) -> None:
        """Where and since when a stopped trial's job ran, known once it ends (after the stop): its
        start replaces the submission's, as a completed trial's does (its duration is the job's run)."""
        with self._writing():
            self._db.execute(
                "UPDATE trials SET host = COALESCE(host, ?), started_at = COALESCE(?, started_at)"
                " WHERE number = ? AND state = ?",
                (host, started_at, number, STOPPED),
            )

    def mark_abandoned(self, numbers: int | Sequence[int], reason: str, never_started: bool = False) -> None:
        """Mark trials abandoned (re-run by a resumed sweep), all in one transaction. ``never_started``:
        they never ran (an in-process batch journals its trials running together, at its start)."""
        batch = [numbers] if isinstance(numbers, int) else list(numbers)
        now = time.time()
        with self._moving(batch, ABANDONED):
            self._db.executemany(_ABANDON, [(ABANDONED, reason, now, never_started, n) for n in batch])

    def keep_running(self, numbers: Sequence[int], reason: str) -> None:
        """Undo the abandon of trials whose job could not be cancelled: they run on.

        Only for trials this stop just abandoned with ``reason`` (another process's abandon stands).
        """
        with self._moving(numbers, RUNNING, recovering=True):
            marks = ",".join("?" * len(numbers))
            others = self._db.execute(
                f"SELECT number FROM trials WHERE number IN ({marks}) AND failure_reason IS NOT ?",
                (*numbers, reason),
            ).fetchone()
            if others is not None:
                raise IllegalTransition(int(others[0]), ABANDONED, RUNNING)
            self._db.executemany(
                "UPDATE trials SET state = ?, failure_reason = NULL, ended_at = NULL WHERE number = ?",
                [(RUNNING, n) for n in numbers],
            )

    def abandon_in_flight(self, numbers: Sequence[int], reason: str, never_started: Sequence[int] = ()) -> list[int]:
        """Abandon those of ``numbers`` still pending or running, in one transaction; return them.

        For stopping a sweep: a trial that another process finished or abandoned meanwhile
        (``hydra-sigopt kill``, a result recorded just before) keeps its state. Those of
        ``never_started`` lose their start time (see :meth:`mark_abandoned`).
        """
        with self._writing():
            self._db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(numbers))
            rows = self._db.execute(
                f"SELECT number FROM trials WHERE number IN ({marks}) AND state IN (?, ?) ORDER BY number",
                (*numbers, PENDING, RUNNING),
            )
            in_flight = [int(r[0]) for r in rows]
            now = time.time()
            self._db.executemany(_ABANDON, [(ABANDONED, reason, now, n in never_started, n) for n in in_flight])
        return in_flight

    def trials(self, states: Sequence[str] | None = None) -> list[Trial]:
        if states:
            marks = ",".join("?" * len(states))
            cursor = self._db.execute(f"SELECT * FROM trials WHERE state IN ({marks}) ORDER BY number", tuple(states))
        else:
            cursor = self._db.execute("SELECT * FROM trials ORDER BY number")
        return [_trial_from_row(r) for r in cursor]

    def trial(self, number: int) -> Trial:
        row = self._db.execute("SELECT * FROM trials WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise KeyError(number)
        return _trial_from_row(row)

    def next_number(self) -> int:
        row = self._db.execute("SELECT MAX(number) FROM trials").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1


#: How long a sweeper starting tries again for a lock that is taken: ``holder()`` (``hydra-sigopt
#: status``, ``kill``) takes it for an instant to see whether it is free, and a sweeper starting in
#: that instant was refused as if another one ran.
BUSY_PROBE_S = 1.0


def _flock_within(handle: Any, seconds: float) -> None:
    """Lock ``handle`` exclusively, trying again for ``seconds``; BlockingIOError if it stays taken."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SweepLock:
    """The exclusive lock of a sweep dir: one sweeper at a time. The lock file names its holder."""

    def __init__(self, sweep_dir: str | os.PathLike[str]) -> None:
        self.path = Path(sweep_dir) / LOCK_NAME
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`JournalError` (:class:`SweepDirTaken`: naming the process that holds it)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._locked_handle()
        except OSError as exc:  # a read-only file system, no permission
            raise JournalError(f"cannot write in the sweep dir {self.path.parent}: {exc.strerror}") from None
        while not self._names(handle):
            # A sweeper that was refused removed the lock file after we opened it: lock the new one.
            handle.close()
            handle = self._locked_handle()
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}@{socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def _locked_handle(self) -> Any:
        handle = open(self.path, "a+")
        try:
            _flock_within(handle, BUSY_PROBE_S)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            pid, _, host = holder.partition("@")
            raise SweepDirTaken(
                f"another sweeper (pid {pid}{f' on {host}' if host else ''}) is running this sweep "
                f"({self.path.parent}); wait for it to end or stop it first (hydra-sigopt kill)",
                pid,
                host,
            ) from None
        return handle

    def _names(self, handle: Any) -> bool:
        """Whether the lock file's path still names the open (and locked) file."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(handle.fileno())
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def holder(self) -> tuple[int, str] | None:
        """(pid, host) of the live process holding the lock, or None when it is free."""
        if not self.path.exists():
            return None
        handle, mode = self._probe_handle()
        with handle:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                pid, _, host = handle.read().strip().partition("@")
                return (int(pid) if pid.isdigit() else -1, host)
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def _probe_handle(self) -> tuple[Any, int]:
        """The lock file opened to try its lock, and the lock to try. Where it cannot be written (a
        teammate's sweep, a read-only copy) it is opened to read, and tried shared: that lock, too,
        is refused while a sweeper holds it, and NFS grants it on a read-only file (not an exclusive one)."""
        try:
            return open(self.path, "a+"), fcntl.LOCK_EX
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            return open(self.path), fcntl.LOCK_SH

    def last_host(self) -> str | None:
        """The host of the last sweeper that held the lock (its name stays in the file), if known."""
        try:
            host = self.path.read_text().strip().partition("@")[2]
        except OSError:
            return None
        return host or None


@contextmanager
def open_journal(sweep_dir: str | os.PathLike[str], readonly: bool = True) -> Iterator[Journal]:
    journal = Journal.open(sweep_dir, readonly=readonly)
    try:
        yield journal
    finally:
        journal.close()
