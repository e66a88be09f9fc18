"""Running trials through Hydra's launchers: synchronous batches, or one submitit job per trial.

:class:`BatchRunner` works with any launcher through ``Launcher.launch`` (which blocks until the
whole batch is done). :class:`SubmititRunner` drives hydra-submitit-launcher's machinery itself,
submitting one job per trial without blocking, so a freed slot is refilled at once.
:func:`make_runner` picks one for ``hydra.sweeper.scheduler`` and the configured launcher.
"""

from __future__ import annotations

from typing import Any

from hydra_sigopt.runners.base import CancelReport, TrialRunner
from hydra_sigopt.runners.batch import BatchRunner
from hydra_sigopt.runners.executor import (
    BASE_QUEUE_KEYS,
    bandwidth_within_array_parallelism,
    check_time_limits,
    is_submitit_launcher,
    warm_jobs_within_array_parallelism,
)
from hydra_sigopt.runners.outcome import (
    FULL_TRACEBACK_FILE,
    MAX_REASON_CHARS,
    MAX_TRACEBACK_CHARS,
    JobOutcome,
    TrialResult,
    describe_error,
    failure_in_one_line,
    shorten,
)
from hydra_sigopt.runners.submitit_runner import SubmititBatchRunner, SubmititRunner
from hydra_sigopt.runners.task import TaskExit, TimedTask

__all__ = [
    "BASE_QUEUE_KEYS",
    "FULL_TRACEBACK_FILE",
    "MAX_REASON_CHARS",
    "MAX_TRACEBACK_CHARS",
    "BatchRunner",
    "CancelReport",
    "JobOutcome",
    "SubmititBatchRunner",
    "SubmititRunner",
    "TaskExit",
    "TimedTask",
    "TrialResult",
    "TrialRunner",
    "bandwidth_within_array_parallelism",
    "describe_error",
    "failure_in_one_line",
    "is_submitit_launcher",
    "make_runner",
    "shorten",
]


def make_runner(
    launcher: Any, scheduler: str, warm_jobs: int | str = "auto", parallel_bandwidth: int = 1
) -> TrialRunner:
    """The runner for ``hydra.sweeper.scheduler`` / ``warm_jobs`` and the configured launcher."""
    # Imported here, not above: every trial's job imports this package (for TimedTask), and the
    # settings bring the engine's modules (~50 ms a job start).
    from hydra_sigopt.errors import ConfigError
    from hydra_sigopt.settings import SCHEDULERS

    if scheduler not in SCHEDULERS:
        raise ConfigError("scheduler", f"got {scheduler!r}; valid values are {list(SCHEDULERS)}")
    submitit_ok = is_submitit_launcher(launcher)
    if scheduler == "async" and not submitit_ok:
        raise ConfigError(
            "scheduler",
            f"async needs hydra/launcher=submitit_local or submitit_slurm, but the launcher is "
            f"{type(launcher).__name__}; use scheduler: batch (or auto) with this launcher",
        )
    asynchronous = submitit_ok and scheduler in ("auto", "async")
    if warm_jobs != "auto" and int(warm_jobs) > 0 and not asynchronous:
        raise ConfigError(
            "warm_jobs",
            f"warm jobs need the async scheduler (hydra/launcher=submitit_local or submitit_slurm, scheduler "
            f"auto or async); here the launcher is {type(launcher).__name__} and the scheduler {scheduler}. "
            "Valid values here are auto or 0",
        )
    if submitit_ok:
        check_time_limits(launcher)
    if asynchronous:
        if warm_jobs == "auto":
            # Locally a waiting job costs an idle process (two cover trials ending close together);
            # on Slurm it would hold an allocation idle.
            warm_jobs = min(2, parallel_bandwidth) if launcher._EXECUTOR == "local" else 0
        return SubmititRunner(
            launcher, warm_jobs=warm_jobs_within_array_parallelism(launcher, int(warm_jobs), parallel_bandwidth)
        )
    if submitit_ok:
        return SubmititBatchRunner(launcher)
    return BatchRunner(launcher)
