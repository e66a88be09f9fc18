"""A trial's return value, kept in its job dir the moment the app returns (see TrialJob).

Between the app's return and submitit's result file, Hydra still ends the job (its ``on_job_end``
callbacks, the loggers' flush) and submitit pickles the result: a requeue landing there (``scontrol
requeue``, a preemption, a node failure) left no result, and the job Slurm started again trained
the whole trial a second time. The value kept here is what that job returns, without the app.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ValueKept:
    """The app's task function (the launcher's), its value kept for a run of the same job started
    again; that run returns the kept value instead of running the app. A class, not a closure, so
    that submitit pickles it into the job."""

    def __init__(self, task_function: Callable[[Any], Any]) -> None:
        self.task_function = task_function
        self.__name__ = getattr(task_function, "__name__", "task")

    def __call__(self, cfg: Any) -> Any:
        paths = _kept_value_paths()
        if paths is None:  # not in a submitit job, or no Hydra job config
            return self.task_function(cfg)
        path, every_rank = paths
        # Of a multi-task job (DDP) every rank runs the app again unless all kept their value: a rank
        # that returned at once would leave the others waiting for it in their process group.
        kept = _read(path) if all(p.exists() for p in every_rank) else None
        if kept is not None:
            from submitit.core.logger import get_logger

            get_logger().warning(
                "The trial returned %r in an earlier run of this job, before Slurm started it again "
                "(kept in %s): not running the app again",
                kept[0],
                path,
            )
            return kept[0]
        value = self.task_function(cfg)
        _write(path, value)
        return value


def with_value_kept(launcher: Any) -> Any:
    """A copy of the launcher whose task function keeps its value (see ValueKept); the launcher
    itself stays as it is (submitit's checkpoint pickles it again on a requeue)."""
    task_function = getattr(launcher, "task_function", None)
    if task_function is None or isinstance(task_function, ValueKept):
        return launcher  # not Hydra's launcher (a test's), or kept already
    kept = copy.copy(launcher)
    kept.task_function = ValueKept(task_function)
    return kept


def _kept_value_paths() -> tuple[Path, list[Path]] | None:
    """Where this job's task keeps the trial's value, and where each of the job's tasks does: in the
    trial's job dir, named by the job's id and the task's rank (a job id is the cluster's once: the
    sweep's other jobs ignore it)."""
    import submitit
    from hydra.core.hydra_config import HydraConfig

    try:
        env = submitit.JobEnvironment()
        job_id, rank, tasks = env.job_id, env.global_rank, env.num_tasks
        output_dir = HydraConfig.get().runtime.output_dir
    except (KeyError, RuntimeError, ValueError):  # not in a submitit job, or no Hydra job config
        return None
    every_rank = [Path(output_dir) / f".value_of_job_{job_id}_{r}.pkl" for r in range(tasks)]
    return every_rank[rank], every_rank


def _read(path: Path) -> tuple[Any] | None:
    """The kept value (in a 1-tuple: the value may be None), or None if none was kept."""
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except FileNotFoundError:
        return None
    return (value,)


def _write(path: Path, value: Any) -> None:
    """Keep the value atomically: a requeue may land while it is written, and a half-written file
    must not be read as the value (:func:`~hydra_sigopt.kept_returns.pickle_durably`). A value that
    cannot be kept is said in the job's log, never the trial's failure: only a requeue would miss it."""
    from hydra_sigopt.kept_returns import pickle_durably

    try:
        pickle_durably(path, value)
    except Exception as exc:
        from submitit.core.logger import get_logger

        get_logger().warning("The trial's value was not kept in %s (%s): a requeue now runs the app again", path, exc)
