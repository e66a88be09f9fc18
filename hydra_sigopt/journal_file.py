"""One read-only descriptor of the journal file per process, for reading its bytes beside SQLite.

On POSIX, closing ANY descriptor of a file drops EVERY fcntl lock the process holds on that file,
SQLite's included (SQLite's "How To Corrupt An SQLite Database File", 2.2). A sweeper that opened
and closed the journal file to read its header lost its connection's lock; another process's
connection (``sqlite3 sweep/sigopt_journal.sqlite``), closing, then took itself for the last one and
removed the WAL the sweeper went on writing to: its later commits reached no other process, and a
``kill -9`` lost them.

So the journal's bytes are read (``os.pread``) through one descriptor, opened before the process's
first connection to the file and closed only after its last :class:`JournalFile` is released,
which every journal does after closing its connection.
"""

from __future__ import annotations

import os
from pathlib import Path

#: (st_dev, st_ino) -> [descriptor, holders]: the descriptors this process holds, by the file they read.
_HELD: dict[tuple[int, int], list[int]] = {}


class JournalFile:
    """A hold on the process's descriptor of one journal file; :meth:`release` it after closing the connection."""

    def __init__(self, path: Path) -> None:
        found = os.stat(path)
        key = (found.st_dev, found.st_ino)
        if key not in _HELD:
            fd = os.open(path, os.O_RDONLY)
            opened = os.fstat(fd)
            key = (opened.st_dev, opened.st_ino)  # the file the descriptor reads, should the path have changed
            # Replaced in that instant by a file already held: this descriptor stays open, as
            # closing it would drop that file's locks.
            _HELD.setdefault(key, [fd, 0])
        _HELD[key][1] += 1
        self.key = key
        self._held = True

    @property
    def fd(self) -> int:
        return _HELD[self.key][0]

    def read(self, size: int, offset: int = 0) -> bytes:
        """Bytes of the file as it is now (b"" past its end)."""
        return os.pread(self.fd, size, offset)

    def copy_to(self, target: Path) -> None:
        """Copy the file's content to ``target`` (a new file), through this descriptor."""
        offset = 0
        with open(target, "wb") as out:
            while chunk := os.pread(self.fd, 1 << 20, offset):
                out.write(chunk)
                offset += len(chunk)

    def release(self) -> None:
        """Let the descriptor go; closed with the process's last hold (no connection of it is open then)."""
        if not self._held:
            return
        self._held = False
        entry = _HELD[self.key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self.key]
            os.close(entry[0])
