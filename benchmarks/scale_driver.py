"""Run the benchmark app's multirun in this process, with timers around the sweep loop's steps.

    python benchmarks/scale_driver.py TIMINGS.json -- <hydra overrides>   (cwd: benchmarks/apps)

Instrumentation, not a mock: the real Hydra app, sweeper, engine and launcher run; the wrappers only
time ``Results.record`` + ``Results.observe`` (a trial's finishing work), starting a trial
(``Sweep._start_trial``: journal, then submit) and topping up warm jobs (the scheduler's ``KeepWarm``
command) and, inside them, submitting jobs (``SubmititRunner.start`` and its warm jobs), posting the
observation (``Backend.observe``) and the engine's own ``Backend.suggest`` (run in the prefetch thread
for the async scheduler). Used by scale.py.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parent / "apps"


def main() -> None:
    out = Path(sys.argv[1])
    assert sys.argv[2] == "--"
    overrides = sys.argv[3:]
    sys.path.insert(0, str(APPS))

    from hydra_sigopt import sweep as sweep_module
    from hydra_sigopt.backends import lite
    from hydra_sigopt.results import Results
    from hydra_sigopt.runners import SubmititRunner
    from hydra_sigopt.runners.warm_pool import WarmPool

    Sweep = sweep_module.Sweep
    local = threading.local()
    records: dict[str, Any] = {"finish": [], "fill": [], "suggest_compute": []}

    def nested(name: str, fn: Any) -> Any:
        """Time ``fn`` and add its duration to the enclosing timed step's ``name`` bucket."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                frame = getattr(local, "frame", None)
                if frame is not None:
                    frame[name] = frame.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    from hydra_sigopt.scheduler import KeepWarm, StartTrial

    original_record = Results.record
    original_observe = Results.observe
    original_carry_out = Sweep._carry_out
    finished: dict[int, dict[str, Any]] = {}

    # A trial's finishing work: journaling its result (Results.record), then posting it
    # (Results.observe, which the loop runs after refilling the slot).
    def timed_record(self: Any, outcome: Any, *args: Any, **kwargs: Any) -> Any:
        local.frame = {}
        t0 = time.perf_counter()
        try:
            return original_record(self, outcome, *args, **kwargs)
        finally:
            frame, local.frame = local.frame, None
            finished[outcome.number] = {"trial": outcome.number, "t": time.perf_counter() - t0, **frame}
            records["finish"].append(finished[outcome.number])

    def timed_observe(self: Any, number: int, *args: Any, **kwargs: Any) -> Any:
        local.frame = {}
        t0 = time.perf_counter()
        try:
            return original_observe(self, number, *args, **kwargs)
        finally:
            frame, local.frame = local.frame, None
            record = finished.get(number)
            if record is not None:
                record["t"] += time.perf_counter() - t0
                for key, value in frame.items():
                    record[key] = record.get(key, 0.0) + value

    # Filling a slot: starting a trial (journal + submit) or topping up warm jobs (no trial started).
    def timed_carry_out(self: Any, command: Any) -> Any:
        if not isinstance(command, (StartTrial, KeepWarm)):
            return original_carry_out(self, command)
        local.frame = {}
        t0 = time.perf_counter()
        try:
            return original_carry_out(self, command)
        finally:
            frame, local.frame = local.frame, None
            started = [command.number] if isinstance(command, StartTrial) else []
            records["fill"].append({"trials": started, "t": time.perf_counter() - t0, "at": time.time(), **frame})

    Results.record = timed_record  # type: ignore[method-assign]
    Results.observe = timed_observe  # type: ignore[method-assign]
    Sweep._carry_out = timed_carry_out  # type: ignore[method-assign]
    SubmititRunner.start = nested("submit", SubmititRunner.start)  # type: ignore[method-assign]
    WarmPool._submit = nested("submit", WarmPool._submit)  # type: ignore[method-assign]
    lite.LiteBackend.observe = nested("observe", lite.LiteBackend.observe)  # type: ignore[method-assign]

    original_suggest = lite.LiteBackend.suggest

    def timed_suggest(self: Any, pending: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_suggest(self, pending)
        finally:
            records["suggest_compute"].append({"t": time.perf_counter() - t0, "pending": len(pending)})

    lite.LiteBackend.suggest = timed_suggest  # type: ignore[method-assign]

    import runpy

    # The app runs as it does from the command line (as __main__, so Hydra finds conf/ beside it).
    sys.argv = [str(APPS / "objective.py"), "-m", *overrides]
    started = time.perf_counter()
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        records["wall_s"] = time.perf_counter() - started
        out.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
