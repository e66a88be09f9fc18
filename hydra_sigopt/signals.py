"""How the sweeper treats signals: SIGTERM as Ctrl-C, one stop however many signals come, and no
signal in the middle of an effect that must finish (a trial's submission, a stop's bookkeeping).

Python delivers signals to the main thread only, and only the main thread may install handlers:
a sweep run from another thread (a test, a notebook's worker) leaves the handlers as they are.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Interrupts:
    """Ctrl-C and SIGTERM during a sweep (``hydra-sigopt kill``, Slurm ending or requeueing a
    submitted driver): the first one stops the sweep (KeyboardInterrupt); those that follow while it
    stops are ignored. They come in bursts: Slurm signals every process of a job, and the driver
    script forwards the same SIGTERM to the sweeper a few milliseconds later.
    """

    def __init__(self) -> None:
        self.requested: int | None = None  # the signal that asked for the stop
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if _in_main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def stopping(self) -> None:
        """The sweep stops (whatever raised the KeyboardInterrupt): further signals change nothing."""
        if self.requested is None:
            self.requested = signal.SIGINT

    def check(self) -> None:
        """Raise the stop asked for, if any: a trial run in this process may have swallowed it."""
        if self.requested is not None:
            raise KeyboardInterrupt(f"signal {self.requested}")

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a stop signal until the effects inside are done (a trial journaled and its job
        started and journaled: cut halfway, the job would run unknown to the journal, and twice)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            return
        self.requested = signum
        if not self._deferring:
            raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for a critical section (main thread only)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
