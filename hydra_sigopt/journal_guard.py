"""Noticing that a sweep's journal file was deleted, replaced or truncated while the sweep runs.

SQLite keeps writing to an open file that was deleted or replaced, so the loss would go unnoticed
until the sweep ends: :class:`JournalGuard` checks the file before every write and, when it
changed, saves what the open connection still reads and stops the sweep with how to go on.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hydra_sigopt.errors import JournalError

SQLITE_MAGIC = b"SQLite format 3\x00"


class JournalLostError(JournalError):
    """The journal file was deleted, replaced or truncated under a running sweep."""


class JournalGuard:
    """The journal file one connection writes, checked before each write."""

    def __init__(self, path: Path, connection: sqlite3.Connection, close: Callable[[], None]) -> None:
        self.path = path
        self._db = connection
        self.close = close
        found = os.stat(path)
        self._file_id = (found.st_dev, found.st_ino)
        self._largest = found.st_size
        self.lost = False

    def check(self) -> None:
        """Raise :class:`JournalLostError` (after saving what can be) if the file changed under the sweep."""
        problem = self._file_problem()
        if problem is not None:
            raise JournalLostError(self._stop(problem))

    def _file_problem(self) -> str | None:
        """How the journal file changed under this sweep, or None."""
        try:
            found = os.stat(self.path)
            with open(self.path, "rb") as f:
                header = f.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            return "deleted"
        if (found.st_dev, found.st_ino) != self._file_id:
            return "replaced by another file"
        # The database file only grows (no VACUUM): smaller means truncated or overwritten.
        if header != SQLITE_MAGIC or found.st_size < self._largest:
            return "truncated or overwritten"
        self._largest = found.st_size
        return None

    def _stop(self, problem: str) -> str:
        """Save what this connection still reads, close it, and say what happened and how to go on."""
        self.lost = True
        message = f"the journal {self.path} was {problem} while the sweep ran"
        saved = self._save_copy()
        replaced = problem.startswith("replaced")
        self.close()  # the journal's connection: nothing more goes to a lost file
        if saved is None:
            return f"{message}; its state could not be saved, so this sweep cannot be resumed"
        if not replaced:
            # Deleted or damaged in place: the file is the sweep's own, put back as it was.
            for suffix in ("-wal", "-shm"):  # the old file's, which must not meet the restored one
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            os.replace(saved, self.path)
            return f"{message}; it was restored from the sweeper's open copy, so the sweep can be resumed"
        return (
            f"{message}; the sweep's state as of its last write is saved in {saved}: to resume the sweep, "
            f"move {saved.name} over {self.path.name}"
        )

    def _save_copy(self) -> Path | None:
        """A checked copy of the journal as this connection reads it (the old file, if replaced)."""
        copy = self.path.with_name(self.path.name + ".recovered")
        if not copy.parent.is_dir():
            return None
        try:
            target = sqlite3.connect(copy)
            try:
                self._db.backup(target)
                ok = target.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                ok = ok and target.execute("SELECT COUNT(*) FROM trials").fetchone() is not None
            finally:
                target.close()
        except (sqlite3.Error, OSError):
            ok = False
        if not ok:
            copy.unlink(missing_ok=True)
            return None
        return copy
