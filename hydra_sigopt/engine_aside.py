"""The engine's calls the sweep loop makes in worker threads, reading the running trials' reports meanwhile.

A GP suggestion takes seconds, a SigOpt server may take seconds to answer (and retries for up to
``api.max_unreachable_s``), and an epoch may take less: a trial the early-stopping rule condemns
must not train on while the loop waits for the engine (issue 17; in the multi-fidelity benchmark,
trials condemned at step 1 ran all 27 steps so). The next suggestion is computed ahead (one at a
time) so that a freed slot is refilled at once. Results are posted aside too
(:mod:`hydra_sigopt.posting`), with the loop going on meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import TypeVar

from hydra_sigopt.backends import Backend, Suggestion
from hydra_sigopt.backends.base import Pending

log = logging.getLogger("hydra_sigopt")

#: How long a stopping sweep waits for a suggestion request under way, so that its suggestion is
#: not left open on a server.
GRACE_S = 30.0
T = TypeVar("T")


class EngineAside:
    """The suggestion computed ahead, in a thread of its own."""

    def __init__(self, backend: Backend, read_reports: Callable[[], float] | None = None) -> None:
        self.backend = backend
        #: Reads and judges the running trials' reports while an engine call runs, and says how long
        #: to wait before the next reading (None: no rule to apply).
        self.read_reports = read_reports
        #: The suggestion being computed, or computed and not taken yet.
        self.prefetch: Future[Suggestion] | None = None

    def start_prefetch(self, pending: Sequence[Pending]) -> None:
        """Compute the next suggestion while jobs run (one at a time: the scheduler asks for the
        next once this one is taken)."""
        pending = list(pending)
        self.prefetch = aside("sigopt-suggest", lambda: self.backend.suggest(pending))

    def take_prefetch(self) -> Suggestion:
        """The suggestion being computed, once it is there; reports are read meanwhile. Until then
        it stays :attr:`prefetch`: a stop meanwhile waits for it, so as not to leave it open."""
        assert self.prefetch is not None
        suggestion = self._reading_reports(self.prefetch)
        self.prefetch = None
        return suggestion

    def prefetch_ready(self) -> Suggestion | None:
        """The suggestion computed ahead if it is there (taken: given once), else None."""
        if self.prefetch is None or not self.prefetch.done():
            return None
        return self.take_prefetch()

    def _reading_reports(self, future: Future[T]) -> T:
        # Read first: the reading says how long to wait (waiting a second first, a GP suggestion of
        # half a second went by unread while trials of 0.1 s steps trained on).
        while self.read_reports is not None:
            if wait_for([future], timeout=self.read_reports()).done:
                break
        return future.result()


def aside(name: str, call: Callable[[], T]) -> Future[T]:
    """``call`` in a daemon thread: one that hangs (a server that never answers) must not keep the
    process alive once the sweep has stopped, as an executor's worker does (Python joins those at
    exit: a stopped sweeper stayed up until its post gave up, minutes later)."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(call())
        except BaseException as exc:  # given to the loop, which raises it
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


__all__ = ["GRACE_S", "EngineAside", "aside"]
