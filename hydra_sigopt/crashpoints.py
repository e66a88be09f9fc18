"""Named points where the crash tests kill the sweeper (SIGKILL), to prove the journal's ordering.

Inert unless HYDRA_SIGOPT_CRASH_AT is set to ``<point>:<n>`` (die at the n-th pass, from 1).
Both the points in the code and the one asked for must be in :data:`POINTS`: a misspelled point
would otherwise never fire, and a crash test would pass without crashing anything.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "HYDRA_SIGOPT_CRASH_AT"
POINTS = ("after_record_trial", "after_submit", "in_task", "after_result", "after_observe")

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if HYDRA_SIGOPT_CRASH_AT names this point and pass."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known points are {list(POINTS)}")
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    point, _, count = target.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV_VAR}={target!r} names an unknown crash point; known points are {list(POINTS)}")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
