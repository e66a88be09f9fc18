"""Named points where the crash tests kill the sweeper (SIGKILL), to prove the journal's ordering.

Inert unless HYDRA_SIGOPT_CRASH_AT is set to ``<point>:<n>`` (die at the n-th pass, from 1).
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "HYDRA_SIGOPT_CRASH_AT"
POINTS = ("after_record_trial", "after_submit", "in_task", "after_result", "after_observe")

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process if HYDRA_SIGOPT_CRASH_AT names this point and pass."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    point, _, count = target.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
