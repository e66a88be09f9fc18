"""How the sweeper treats signals: SIGTERM as Ctrl-C, and no signal in the middle of stopping.

Python delivers signals to the main thread only, and only the main thread may install handlers:
a sweep run from another thread (a test, a notebook's worker) leaves the handlers as they are.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def ignore_further_ctrl_c() -> None:
    """The sweeper is stopping: another Ctrl-C must not break the shutdown or print a traceback."""
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def handle_sigterm_as_interrupt() -> Any:
    """Treat SIGTERM (``hydra-sigopt kill``, Slurm ending a sweeper job) like Ctrl-C; return the old handler."""
    if not _in_main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for a critical section (main thread only)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
