"""How the sweeper treats signals: SIGTERM and SIGHUP as Ctrl-C, one stop however many signals come, and no
signal in the middle of an effect that must finish (a trial's submission, a stop's bookkeeping).

Python delivers signals to the main thread only, and only the main thread may install handlers:
a sweep run from another thread (a test, a notebook's worker) leaves the handlers as they are.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: SIGHUP: the SSH session or terminal that ran the sweeper died. Left to its default it killed the
#: sweeper outright: trials.csv and optimization_results.yaml stale, the running trials neither
#: cancelled nor said to be left running (on_interrupt), the stop not journaled.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: After a stop by signal, how long more of them are absorbed while Hydra prints the stop and the
#: process exits (joining a suggestion thread can take seconds); after it, Ctrl-C works as usual.
AFTER_STOP_GRACE_S = 10.0


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP during a sweep (``hydra-sigopt kill``, Slurm ending or requeueing a
    submitted driver, a lost SSH session): the first one stops the sweep (KeyboardInterrupt); those that follow while it
    stops are ignored. They come in bursts: Slurm signals every process of a job, and the driver
    script forwards the same SIGTERM to the sweeper a few milliseconds later.
    """

    def __init__(self) -> None:
        self.requested: int | None = None  # the signal that asked for the stop
        self.requested_at: float | None = None  # when it came (time.time())
        self.signalled = False  # a signal came (not only a KeyboardInterrupt raised inside)
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        global _installed
        if _in_main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in _stop_signals_heeded()}
            _installed = self

    def restore(self) -> None:
        global _installed
        if _installed is self:
            _installed = None
        """Give the signals back; after a stop by signal, through a short grace that absorbs the rest
        of the burst (an impatient user's Ctrl-C every 0.2 s landed in Hydra's printing of the stop:
        a KeyboardInterrupt traceback hid how to continue the sweep, CI)."""
        if self.signalled and self._previous:
            grace = _AfterStop(self._previous, time.monotonic() + AFTER_STOP_GRACE_S)
            for s in self._previous:
                signal.signal(s, grace)
        else:
            _reinstall(self._previous)
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
        self.signalled = True
        if self.requested is not None:
            return
        self.requested, self.requested_at = signum, time.time()
        if not self._deferring:
            raise KeyboardInterrupt(f"signal {signum}")


#: The sweep's Interrupts while it runs in this process (see sweep_interrupted).
_installed: Interrupts | None = None


def sweep_interrupted() -> bool:
    """Whether a stop signal came to the sweep this process runs: a trial run here (the basic
    launcher's batch) must not start after it, even when the trial before swallowed the Ctrl-C."""
    return _installed is not None and _installed.requested is not None


def _stop_signals_heeded() -> tuple[int, ...]:
    """The stop signals, but SIGHUP where it is ignored: a sweeper started with ``nohup`` was meant
    to outlive its terminal, and must."""
    return tuple(s for s in STOP_SIGNALS if s != signal.SIGHUP or signal.getsignal(s) != signal.SIG_IGN)


class _AfterStop:
    """A signal handler that ignores stop signals until a deadline, then hands them to the handlers
    that were there before the sweep (for good: it reinstalls them)."""

    def __init__(self, previous: dict[int, Any], until: float) -> None:
        self.previous = dict(previous)
        self.until = until

    def __call__(self, signum: int, frame: Any) -> None:
        if time.monotonic() < self.until:
            return
        _reinstall(self.previous)
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)  # delivered again, now to the default action


def _reinstall(handlers: dict[int, Any]) -> None:
    for s, handler in handlers.items():
        signal.signal(s, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore the stop signals for a critical section (main thread only)."""
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
