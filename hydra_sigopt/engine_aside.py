"""The engine's calls the sweep loop makes in worker threads, reading the running trials' reports meanwhile.

A GP suggestion takes seconds, a SigOpt server may take seconds to record a result (and retries
for up to ``api.max_unreachable_s``), and an epoch may take less: a trial the early-stopping rule
condemns must not train on while the loop waits for the engine (issue 17; in the multi-fidelity
benchmark, trials condemned at step 1 ran all 27 steps so). The next suggestion is computed ahead
(one at a time) so that a freed slot is refilled at once; a result is posted aside, and the loop
goes on only once the engine has it (the order of effects stays the loop's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any, TypeVar

from hydra_sigopt.backends import Backend, Suggestion
from hydra_sigopt.early_stopping import POLL_INTERVAL_S

#: How long a stopping sweep waits for an engine call under way: a suggestion request, so that its
#: suggestion is not left open; a post, so that the result is not posted twice over.
GRACE_S = 30.0

T = TypeVar("T")


class EngineAside:
    """The suggestion computed ahead and the post under way, each in its own worker thread."""

    def __init__(self, backend: Backend, read_reports: Callable[[], None] | None = None) -> None:
        self.backend = backend
        #: Reads and judges the running trials' reports while an engine call runs (None: no rule to apply).
        self.read_reports = read_reports
        #: The suggestion being computed, or computed and not taken yet.
        self.prefetch: Future[Suggestion] | None = None
        self._suggesting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigopt-suggest")
        self._posting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigopt-post")

    def start_prefetch(self, pending: Sequence[Mapping[str, Any]]) -> None:
        """Compute the next suggestion while jobs run."""
        self.prefetch = self._suggesting.submit(self.backend.suggest, list(pending))

    def take_prefetch(self) -> Suggestion:
        """The suggestion being computed, once it is there; reports are read meanwhile."""
        assert self.prefetch is not None
        future, self.prefetch = self.prefetch, None
        return self._reading_reports(future)

    def prefetch_ready(self) -> Suggestion | None:
        """The suggestion computed ahead if it is there (taken: given once), else None."""
        if self.prefetch is None or not self.prefetch.done():
            return None
        return self.take_prefetch()

    def post(self, call: Callable[[], str | None]) -> str | None:
        """Make the engine's call that records a result aside; its observation's id.

        Interrupted (Ctrl-C), it waits for the call under way: the stop then posts what is not
        posted yet, and must find this one done rather than send it a second time."""
        future = self._posting.submit(call)
        try:
            return self._reading_reports(future)
        except BaseException:
            wait_for([future], timeout=GRACE_S)
            raise

    def _reading_reports(self, future: Future[T]) -> T:
        while self.read_reports is not None and not wait_for([future], timeout=POLL_INTERVAL_S).done:
            self.read_reports()
        return future.result()

    def close(self) -> None:
        """Let the threads go (a call under way ends on its own; the stop does not wait for it)."""
        for pool in (self._suggesting, self._posting):
            pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["GRACE_S", "EngineAside"]
