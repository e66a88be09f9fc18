"""Results posted to the engine aside, one at a time and in order, while the sweep loop goes on.

A SigOpt server may take seconds to record a result, and retries it for up to
``api.max_unreachable_s`` while it is out of reach: the loop meanwhile records the trials that end
(a crash loses none of them, and ``hydra-sigopt status`` does not show them running) and refills
their slots from suggestions computed already. No suggestion is asked for until every result is
posted (the scheduler's :class:`~hydra_sigopt.scheduler.Posted`). Each observation's id is journaled
by the loop's thread, as it learns that its post ended.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any

from hydra_sigopt.early_stopping import POLL_INTERVAL_S
from hydra_sigopt.engine_aside import aside
from hydra_sigopt.errors import BackendUnavailableError
from hydra_sigopt.results import Results

log = logging.getLogger("hydra_sigopt")

#: How long a stopping sweep waits for the post under way before it goes on (the stop then posts
#: nothing more: a resumed sweep posts what is not posted, and finds this one there if it landed;
#: a stop must not wait on a server out of reach: Slurm kills a job 30 s after its SIGTERM).
POST_GRACE_S = 5.0
#: What a stop says of a suggestion a SigOpt server has not answered within the grace.
UNANSWERED_SUGGESTION = "The engine has not answered the suggestion's request"


class PostsAside:
    """The results to post, in order, and the post under way (in a thread of its own)."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self._queue: deque[int] = deque()
        self._under_way: tuple[int, Future[str | None]] | None = None

    @property
    def under_way(self) -> Future[str | None] | None:
        """The post under way, if any (the loop's waits end when it does)."""
        return None if self._under_way is None else self._under_way[1]

    def add(self, numbers: Iterable[int]) -> None:
        """Post these journaled results after those given before."""
        self._queue.extend(numbers)
        self._start_next()

    def collect(self) -> list[int]:
        """The results posted since the last call, journaled as posted; the next post is started.

        A post that failed raises its error: the sweep stops, and what is not posted stays in
        :attr:`Results.unposted` for the stop, or a resumed sweep, to post."""
        posted: list[int] = []
        while self._under_way is not None and self._under_way[1].done():
            number, future = self._under_way
            # Journaled before it is let go: a Ctrl-C in between finds it again in settle (once).
            self.results.posted(number, future.result())
            self._under_way = None
            posted.append(number)
            self._start_next()
        return posted

    def wait_all(self, meanwhile: Callable[[], float] | None = None) -> list[int]:
        """Wait until every result given is posted (calling ``meanwhile`` between looks, which says
        how long to wait before the next); those posted."""
        posted = self.collect()
        while self._under_way is not None:
            interval = meanwhile() if meanwhile is not None else POLL_INTERVAL_S  # read first, as the loop does
            wait_for([self._under_way[1]], timeout=interval)
            posted += self.collect()
        return posted

    def settle(self, grace_s: float = POST_GRACE_S) -> bool:
        """Before the sweep stops: post nothing more aside, and journal the post under way if it
        ends within ``grace_s``. False if the engine did not answer it (slow, or out of reach): the
        stop must then post nothing more either, but leave it to a resumed sweep."""
        self._queue.clear()
        if self._under_way is None:
            return True
        number, future = self._under_way
        if not future.done():
            log.info("Waiting up to %.0f s for the result being posted to the engine", grace_s)
            wait_for([future], timeout=grace_s)
        if not future.done():
            return False
        try:
            observation_id = future.result()
        except BackendUnavailableError:
            return False
        except Exception:  # not posted: the stop posts it again, as any other
            return True
        self.results.posted(number, observation_id)
        self._under_way = None
        return True

    def _start_next(self) -> None:
        if self._under_way is None and self._queue:
            number = self._queue.popleft()
            self._under_way = (number, aside("sigopt-post", self.results.observation_call(number)))


def settle_engine_calls(
    posts: PostsAside, prefetch: Future[Any] | None, grace_s: float = POST_GRACE_S, in_process: bool = False
) -> bool:
    """Before the sweep stops: whether the engine's calls under way (the post, the suggestion
    computed ahead) ended within ``grace_s``, both counted together. False if either is left
    unanswered or gave up on the engine: the stop then calls the engine no more (each call would
    retry for up to ``api.max_unreachable_s``, and a Ctrl-C must end the sweep within seconds); a
    resumed sweep posts what is not posted and deletes the suggestions no trial uses. ``in_process``:
    the local engine, which is only busy (never out of reach) and whose suggestion ends with the sweep."""
    deadline = time.monotonic() + grace_s
    posted = posts.settle(grace_s)
    if prefetch is not None and not prefetch.done():
        log.info("Waiting up to %.0f s for the suggestion being computed", grace_s)
        wait_for([prefetch], timeout=max(0.0, deadline - time.monotonic()))
    if prefetch is not None and not prefetch.done():
        # The local engine is only busy (it runs in this process): what it computes ends with the sweep.
        busy = "The local engine is still computing a suggestion"
        log.warning("%s: the stop calls the engine no more", busy if in_process else UNANSWERED_SUGGESTION)
        return False
    return posted and not (prefetch is not None and _unreachable(prefetch))


def _unreachable(future: Future[Any]) -> bool:
    """Whether a call that ended gave up on the engine (out of reach for ``api.max_unreachable_s``)."""
    return isinstance(future.exception(), BackendUnavailableError)


__all__ = ["POST_GRACE_S", "PostsAside", "settle_engine_calls"]
