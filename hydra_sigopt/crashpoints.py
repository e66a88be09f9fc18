"""Named points where the crash tests kill the sweeper (SIGKILL), to prove the journal's ordering.

Inert unless HYDRA_SIGOPT_CRASH_AT is set to ``<point>:<n>`` (die at the n-th pass, from 1), or
``<point>:<n>:TERM`` to be sent SIGTERM there instead (what Slurm or ``hydra-sigopt kill`` sends),
``<point>:<n>:INT`` for SIGINT (a Ctrl-C), ``<point>:<n>:STOP`` to freeze there (a sweeper hung on a
file system or a slow cluster command); several, comma-separated, for signals that come in bursts.
Both the points in the code and those asked for must be in :data:`POINTS`: a misspelled point
would otherwise never fire, and a crash test would pass without crashing anything.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "HYDRA_SIGOPT_CRASH_AT"
#: The points every trial passes, in order (the crash matrix kills the sweeper at each); a trial re-run
#: after a restart reuses its suggestion and starts at ``after_record_trial``.
TRIAL_POINTS = ("after_suggest", "after_record_trial", "after_submit", "in_task", "after_result", "after_observe")
#: Passed by every sweep as it starts: once it holds the sweep dir's lock, and as it writes Hydra's
#: files there (before the sweep's own stop takes over the signals).
START_POINTS = ("before_launcher", "after_lock", "writing_sweep_dir")
#: Passed only by a sweep that stops before its budget is spent (for a second signal there; before it
#: cancels the trials it has just marked abandoned), and by
#: every sweep once its wrap-up is done and the signals are given back (an impatient user's next Ctrl-C).
#: And ``keeping_return``: as an in-process trial's value is kept (a Ctrl-C landing there).
POINTS = (*START_POINTS, *TRIAL_POINTS, "while_stopping", "before_cancel", "after_wrap_up", "keeping_return")
SIGNALS = {"": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT, "STOP": signal.SIGSTOP}

_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL (or SIGTERM, SIGINT) this process if HYDRA_SIGOPT_CRASH_AT names this point and pass."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; known points are {list(POINTS)}")
    targets = [_parse(target) for target in os.environ.get(ENV_VAR, "").split(",") if target]
    wanted = [(count, signal_name) for point, count, signal_name in targets if point == name]
    if not wanted:
        return
    _passes[name] = _passes.get(name, 0) + 1
    for count, signal_name in wanted:
        if _passes[name] == count:
            os.kill(os.getpid(), SIGNALS[signal_name])


def _parse(target: str) -> tuple[str, int, str]:
    point, _, rest = target.partition(":")
    count, _, signal_name = rest.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV_VAR}={target!r} names an unknown crash point; known points are {list(POINTS)}")
    if signal_name not in SIGNALS:
        raise ValueError(f"{ENV_VAR}={target!r} names an unknown signal; known signals are {list(SIGNALS)}")
    return point, int(count or 1), signal_name
