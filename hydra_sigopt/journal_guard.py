"""Noticing that a sweep's journal file was deleted, replaced, truncated or overwritten while the sweep runs.

SQLite keeps writing to an open file that was deleted or replaced, so the loss would go unnoticed
until the sweep ends: :class:`JournalGuard` checks the file before every write and, when it
changed, saves what the open connection still reads and stops the sweep with how to go on.

Another database copied over the journal in place keeps its inode, a valid header and may be
larger: each journal carries its own random nonce in its header (SQLite's application id) to tell
it from any other database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from hydra_sigopt.errors import JournalError
from hydra_sigopt.journal_file import JournalFile

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Where SQLite keeps the application id (big-endian, signed) in the database file's header.
NONCE_BYTES = slice(68, 72)

#: SQLite's result code for a write the disk had no room for (sqlite3.SQLITE_FULL, missing from typeshed).
SQLITE_FULL = 13
#: SQLite's primary result codes (the low byte of an extended one) for a file system that fails the
#: journal's reads or writes: SQLITE_IOERR, and SQLITE_READONLY (a file system remounted read-only).
SQLITE_IOERR, SQLITE_READONLY = 10, 8

NOT_RESUMABLE = "its state could not be saved, so this sweep cannot be resumed"
DELETED = "deleted"
MOVED = "moved"
REPLACED = "replaced by another file"
DAMAGED = "truncated or overwritten"
OVERWRITTEN = "overwritten with another database"
#: What the user put in the journal's place is theirs: kept, and the sweep's state saved beside it.
#: A journal deleted or damaged in place is the sweep's own: restored.
USERS_FILE = (REPLACED, OVERWRITTEN)


def new_nonce() -> int:
    """A random non-zero application id for a new journal (0 is SQLite's default: any database)."""
    return int.from_bytes(secrets.token_bytes(4), "big", signed=True) or 1


def set_nonce(connection: sqlite3.Connection) -> None:
    """Give the journal a new nonce, checkpointed into the file's header where the guard reads it
    (the journal uses WAL: until a checkpoint, the header in the file keeps the old value)."""
    connection.execute(f"PRAGMA application_id = {new_nonce()}")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class JournalLostError(JournalError):
    """The journal file was deleted, replaced, truncated or overwritten under a running sweep;
    ``resumable``: whether the sweep's state was saved, for a resumed sweep to go on from."""

    def __init__(self, message: str, resumable: bool = True, moved_to: Path | None = None) -> None:
        super().__init__(message)
        self.resumable = resumable
        #: The sweep dir's new place, when it was moved (renamed) rather than deleted: resumed from there.
        self.moved_to = moved_to


class JournalFullError(JournalError):
    """The disk holding the journal is full: SQLite rolled the write back, the journal
    keeps every change before it, and the sweep continues once space is freed."""


class JournalIOError(JournalFullError):
    """The file system holding the journal fails under the sweep (a disk gone bad, a file system shut
    down or remounted read-only): the sweep stops as on a full disk, writing nothing more there."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"the file system holding the sweep dir {path.parent} failed under the sweep ({what}): the journal "
            "could not record the sweep's last change; resume it once that file system works again (remounted, checked)"
        )


def raise_if_io_error(path: Path, exc: sqlite3.DatabaseError) -> None:
    """Say a failing file system in one line, not as SQLite's ``disk I/O error`` traceback."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (SQLITE_IOERR, SQLITE_READONLY):
        # SQLite does not say which: a quota's refusal also reaches it as an I/O error.
        raise JournalIOError(path, f"{exc}: a disk gone bad, a read-only remount, or a quota exceeded") from exc


def raise_if_full(path: Path, exc: sqlite3.DatabaseError) -> None:
    """Say a full disk in one line. SQLite says ``database or disk is full`` (SQLITE_FULL) for a
    full disk only: a quota's refusal reaches it as an I/O error, left as it is. The code's
    attribute is Python 3.11's; before, the message says it."""
    if getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "database or disk is full" in str(exc):
        raise JournalFullError(
            f"the disk holding the sweep dir {path.parent} is full: the journal could not record the sweep's last "
            "change (it keeps every change before it); free some space there"
        ) from exc


class JournalGuard:
    """The journal file one connection writes, checked before each write.

    The file is read through ``file``, the process's one descriptor of it (see
    :mod:`hydra_sigopt.journal_file`): never a descriptor opened and closed while the connection is open.
    """

    def __init__(
        self, path: Path, connection: sqlite3.Connection, file: JournalFile, close: Callable[[], None]
    ) -> None:
        self.path = path
        self._db = connection
        self.file = file
        self.close = close
        self._file_id = file.key
        self._largest = os.fstat(file.fd).st_size
        self._nonces = self._own_nonces()
        self.lost = False

    def _own_nonces(self) -> set[int]:
        """The nonces the journal's file may show: the journal's own and, should a reader have kept
        the checkpoint of a nonce just given from reaching the file, the one the file has now."""
        own = self._db.execute("PRAGMA application_id").fetchone()[0]
        return {own, _file_nonce(self._header())}

    def give_nonce(self) -> None:
        """Give a journal made before nonces (application id 0) its own, for :meth:`check` to compare."""
        if self._nonces != {0}:
            return
        self.check()
        set_nonce(self._db)
        self._nonces = self._own_nonces()

    def _header(self) -> bytes:
        return self.file.read(NONCE_BYTES.stop)

    def check(self) -> None:
        """Raise :class:`JournalLostError` (after saving what can be) if the file changed under the
        sweep; :class:`JournalIOError` if its file system fails to say (a disk gone bad)."""
        try:
            problem = self._file_problem()
        except OSError as exc:
            raise JournalIOError(self.path, exc.strerror or str(exc)) from exc
        if problem == MOVED:
            raise self._moved()
        if problem is not None:
            message = self._stop(problem)
            raise JournalLostError(message, resumable=not message.endswith(NOT_RESUMABLE))

    def explain_failed_write(self, exc: sqlite3.DatabaseError) -> None:
        """Raise what a failed write means to the user: the file changed under the sweep, or its disk full."""
        self.check()
        raise_if_full(self.path, exc)
        raise_if_io_error(self.path, exc)

    def _file_problem(self) -> str | None:
        """How the journal file changed under this sweep, or None."""
        try:
            found = os.stat(self.path)
            header = self._header()
        except (FileNotFoundError, NotADirectoryError):  # the sweep dir gone too, or a file in its place
            return MOVED if self._new_place() is not None else DELETED
        if (found.st_dev, found.st_ino) != self._file_id:
            return REPLACED
        # The database file only grows (no VACUUM): smaller means truncated or overwritten.
        if not header.startswith(SQLITE_MAGIC) or found.st_size < self._largest:
            return DAMAGED
        if _file_nonce(header) not in self._nonces:
            return OVERWRITTEN
        self._largest = found.st_size
        return None

    def _new_place(self) -> Path | None:
        """Where the journal file is now, when it still has a name (its sweep dir renamed: `mv`), as
        the held descriptor tells it (Linux's /proc); None when it was deleted."""
        try:
            if os.fstat(self.file.fd).st_nlink == 0:
                return None
            place = Path(os.readlink(f"/proc/self/fd/{self.file.fd}"))
        except OSError:
            return None
        return place if place != self.path and place.name == self.path.name else None

    def _moved(self) -> JournalLostError:
        """The sweep dir was renamed: its journal goes with it, whole (the connection writes to the
        same file); nothing is made again at the old name, which would be a second sweep of the same
        trials. The sweep stops, to be resumed from the new place."""
        new_dir = self._new_place()
        self.lost = True
        self.close()
        where = f"to {new_dir.parent}" if new_dir is not None else "away"
        return JournalLostError(
            f"the sweep dir {self.path.parent} was moved {where} while the sweep ran; its journal went with it",
            moved_to=None if new_dir is None else new_dir.parent,
        )

    def _stop(self, problem: str) -> str:
        """Save what this connection still reads, close it, and say what happened and how to go on."""
        self.lost = True
        message = f"the journal {self.path} was {problem} while the sweep ran"
        saved = self._save_copy()
        if problem == OVERWRITTEN:
            self._close_sparing_the_file()
        else:
            self.close()  # the journal's connection: nothing more goes to a lost file
        if problem in USERS_FILE:
            # The sweep's WAL, beside the user's file, would be replayed into it if it is a database.
            self._remove_wal()
        if saved is None:
            return f"{message}; {NOT_RESUMABLE}"
        if problem not in USERS_FILE:
            # Deleted or damaged in place: the file is the sweep's own, put back as it was.
            self._remove_wal()  # the old file's, which must not meet the restored one
            os.replace(saved, self.path)
            return f"{message}; it was restored from the sweeper's open copy, so the sweep can be resumed"
        return (
            f"{message}; the sweep's state as of its last write is saved in {saved}: to resume the sweep, "
            f"move {saved.name} over {self.path.name}"
        )

    def _remove_wal(self) -> None:
        for suffix in ("-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    def _close_sparing_the_file(self) -> None:
        """Close the connection without harm to the database now in the journal's file.

        Closing checkpoints the sweep's WAL into the file it opened, which is still this one (same
        inode): the file's content is copied aside first (through the held descriptor) and put back after.
        """
        spared = self.path.with_name(self.path.name + ".spared")
        try:
            self.file.copy_to(spared)
            shutil.copystat(self.path, spared)  # by path: copystat opens no descriptor of the file
        except OSError:
            spared.unlink(missing_ok=True)
            self.close()  # a full disk: the file cannot be spared, and the connection must go
            return
        self.close()
        os.replace(spared, self.path)

    def _save_copy(self) -> Path | None:
        """A checked copy of the journal as this connection reads it (the old file, if replaced)."""
        copy = self.path.with_name(self.path.name + ".recovered")
        try:
            # A cleanup script's `rm -rf multirun/...` took the whole sweep dir: made again, for the
            # journal the sweep is resumed from (a sweep meant to go is deleted by hydra-sigopt delete).
            copy.parent.mkdir(parents=True, exist_ok=True)
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
            with contextlib.suppress(OSError):  # a file where the sweep dir was: no copy was made
                copy.unlink(missing_ok=True)
            return None
        return copy


def _file_nonce(header: bytes) -> int:
    """The nonce in a journal file's header (0, SQLite's default, also for a header cut short)."""
    return int.from_bytes(header[NONCE_BYTES], "big", signed=True)
