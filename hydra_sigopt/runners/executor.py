"""The submitit executor for hydra-submitit-launcher's launchers, built as the launcher builds it.

Mirrors ``BaseSubmititLauncher.launch`` of hydra-submitit-launcher 1.2.0 (pinned in setup.py);
tests/test_launcher_internals.py checks it against the real class, so an upgrade that changes
the launcher's internals fails there and not in a user's sweep.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

log = logging.getLogger(__name__)

SUBMITIT_LAUNCHER_CLASSES = ("LocalLauncher", "SlurmLauncher")
# Fields of hydra-submitit-launcher 1.2.0's BaseQueueConf: passed to submitit under their own
# name; the launcher's other fields get the cluster prefix (``slurm_partition``).
BASE_QUEUE_KEYS = frozenset(
    {
        "submitit_folder",
        "timeout_min",
        "cpus_per_task",
        "gpus_per_node",
        "tasks_per_node",
        "mem_gb",
        "nodes",
        "name",
        "stderr_to_stdout",
    }
)
# Launcher fields that go to the executor's constructor, not to update_parameters.
_INIT_KEYS = frozenset({"max_num_timeout", "submitit_folder"})


def is_submitit_launcher(launcher: Any) -> bool:
    """Whether ``launcher`` is hydra-submitit-launcher's local or Slurm launcher."""
    cls = type(launcher)
    return cls.__module__.startswith("hydra_plugins.hydra_submitit_launcher") and any(
        c.__name__ in SUBMITIT_LAUNCHER_CLASSES for c in cls.__mro__
    )


def make_executor(launcher: Any) -> Any:
    """A ``submitit.AutoExecutor`` with the launcher's parameters, as its ``launch()`` would make it."""
    import submitit

    cluster = launcher._EXECUTOR
    params = dict(launcher.params)
    init_params: dict[str, Any] = {"folder": params["submitit_folder"]}
    if "max_num_timeout" in params:
        init_params[f"{cluster}_max_num_timeout"] = params["max_num_timeout"]
    elif cluster == "local":
        # The local launcher has no such field, and submitit's local executor then restarts a timed-out
        # task from the start up to 3 times: an hour-long trial over timeout_min=60 held its slot 4
        # hours before failing. No restarts, as on Slurm (the launcher's default there is 0); a
        # user who wants them sets +hydra.launcher.max_num_timeout.
        init_params["local_max_num_timeout"] = 0
    executor = submitit.AutoExecutor(cluster=cluster, **init_params)
    executor.update_parameters(
        **{(k if k in BASE_QUEUE_KEYS else f"{cluster}_{k}"): v for k, v in params.items() if k not in _INIT_KEYS}
    )
    if cluster == "local":
        # submitit spaces submissions 0.2 s apart to spare a cluster's scheduler; starting a local
        # process needs no such care, and the pause would delay refilling a second freed slot.
        executor._executor._throttling = 0.0  # type: ignore[attr-defined]
    return executor


@contextmanager
def starting_jobs(launcher: Any) -> Iterator[None]:
    """Where the executor submits jobs: local jobs start with SIGINT blocked, so that a terminal's
    Ctrl-C does not reach submitit's controller, and SIGHUP too when the sweep detaches from its
    jobs (see processes.interrupts_kept_from_children).

    And without the sweeper's ``SLURM_RESTART_COUNT``: a sweeper run in a Slurm job that was
    requeued has it, its jobs would inherit it (submitit_local copies the environment, sbatch
    exports it, and Slurm sets it only in a job it started again), and each of their first runs
    would be taken for a rerun (trial_job.started_again).
    """
    from hydra_sigopt.processes import interrupts_kept_from_children

    kept = os.environ.pop(RESTART_COUNT, None)
    try:
        local = launcher._EXECUTOR == "local"
        with interrupts_kept_from_children(hangups_too=detaches(launcher)) if local else nullcontext():
            yield
    finally:
        if kept is not None:
            os.environ[RESTART_COUNT] = kept


#: How many times Slurm started the job again (set in a requeued job only).
RESTART_COUNT = "SLURM_RESTART_COUNT"


def detaches(launcher: Any) -> bool:
    """Whether the sweep leaves its jobs running when it stops (``on_interrupt: detach``), as the
    task the launcher runs (hydra_sigopt.runners.task.TimedTask, set by the launcher's setup()) says."""
    return bool(getattr(getattr(launcher, "task_function", None), "detached", False))


def run_jobs_from(executor: Any, job_python: Any) -> None:
    """Have the executor's jobs start with ``job_python(python)`` as their Python command.

    submitit starts each job (a local task, or the Slurm step) as ``<python> -u -m
    submitit.core._submit <folder>``, reading the executor's ``python`` at each submission
    (tests/test_code_snapshot.py checks that); a code snapshot wraps it to run from its folder.
    """
    inner = executor._executor
    inner.python = job_python(inner.python)


#: hydra-submitit-launcher's default ``array_parallelism``: no cap the user asked for.
DEFAULT_ARRAY_PARALLELISM = 256


def bandwidth_within_array_parallelism(launcher: Any, parallel_bandwidth: int) -> int:
    """``parallel_bandwidth``, capped by the launcher's ``array_parallelism`` (logged when it is).

    hydra-submitit-launcher submits a batch as one Slurm job array and lets at most
    ``array_parallelism`` of its jobs run at once: users set it to keep to their share of a
    cluster. This sweeper submits one job per trial, not an array, so Slurm never applies it:
    the sweeper holds at most that many trials in flight instead.
    """
    cap = dict(getattr(launcher, "params", {})).get("array_parallelism")
    if cap is None or int(cap) == DEFAULT_ARRAY_PARALLELISM or int(cap) >= parallel_bandwidth:
        return parallel_bandwidth
    if int(cap) < 1:
        from hydra_sigopt.errors import ConfigError

        raise ConfigError("hydra.launcher.array_parallelism", f"got {cap}; valid values are integers of 1 or more")
    log.info(
        "hydra.launcher.array_parallelism=%d caps the trials running at once: %d, not parallel_bandwidth %d",
        int(cap),
        int(cap),
        parallel_bandwidth,
    )
    return int(cap)


def warm_jobs_within_array_parallelism(launcher: Any, warm_jobs: int, parallel_bandwidth: int) -> int:
    """``warm_jobs``, within what the launcher's ``array_parallelism`` leaves beside the trials
    (``parallel_bandwidth``, already capped by it): a warm job holds its allocation too."""
    cap = dict(getattr(launcher, "params", {})).get("array_parallelism")
    if cap is None or int(cap) == DEFAULT_ARRAY_PARALLELISM:
        return warm_jobs
    return min(warm_jobs, max(0, int(cap) - parallel_bandwidth))


def check_time_limits(launcher: Any) -> None:
    """Refuse a Slurm time limit that leaves no time before submitit's pre-timeout signal.

    Slurm sends the signal ``signal_delay_s`` before the limit (the launcher's default is 120 s):
    with ``timeout_min`` 2 or less it comes as the job starts, and every trial ends as timed out.
    """
    from hydra_sigopt.errors import ConfigError

    params = dict(launcher.params)
    if "signal_delay_s" not in params or not params.get("timeout_min"):
        return  # the local launcher: no pre-timeout signal
    limit_s = float(params["timeout_min"]) * 60
    delay_s = float(params["signal_delay_s"])
    if delay_s >= limit_s:
        raise ConfigError(
            "hydra.launcher.signal_delay_s",
            f"{params['signal_delay_s']} s is not shorter than the time limit hydra.launcher.timeout_min="
            f"{params['timeout_min']} ({limit_s:.0f} s): Slurm would send the pre-timeout signal as each job "
            f"starts and every trial would end as timed out. Set signal_delay_s well below {limit_s:.0f} "
            f"(for example {max(1, int(limit_s // 4))}), or a longer timeout_min",
        )
    # Slurm handles its timers about once a minute and may send the signal up to 60 s early (sbatch's
    # --signal): with timeout_min=3 and the default delay, a trial may get no time at all.
    if limit_s - delay_s < 120:
        log.warning(
            "Trials may get as little as %.0f s before Slurm's pre-timeout signal (hydra.launcher.timeout_min=%s, "
            "signal_delay_s=%s; Slurm may send it up to 60 s early): a trial still running then ends as timed out. "
            "Lower hydra.launcher.signal_delay_s or raise timeout_min",
            max(0.0, limit_s - delay_s - 60),
            params["timeout_min"],
            params["signal_delay_s"],
        )


def pre_timeout_reason(launcher: Any, reason: str) -> str:
    """The reason of a trial submitit ended on the pre-timeout signal with no requeue left, saying so."""
    params = dict(launcher.params)
    if launcher._EXECUTOR == "local":
        # submitit's local controller sends it signal_delay_s (30 s unless set) before the limit.
        return (
            f"TIMEOUT: time limit reached: submitit_local signals a task {params.get('signal_delay_s', 30)} s before "
            f"its limit hydra.launcher.timeout_min={params.get('timeout_min')}, and no restart was left "
            f"(max_num_timeout={params.get('max_num_timeout', 0)}): {reason}"
        )
    return (
        f"TIMEOUT: time limit reached: Slurm sent its pre-timeout signal (due signal_delay_s="
        f"{params['signal_delay_s']} s before the limit hydra.launcher.timeout_min={params.get('timeout_min')}; "
        "Slurm may send it up to 60 s earlier) and no requeue was left "
        f"(max_num_timeout={params.get('max_num_timeout', 0)}): {reason}"
    )


def log_submitit_once() -> None:
    """Let submitit's log records in the sweeper reach Hydra's handlers only.

    submitit gives its logger two handlers of its own (stdout for all, stderr for warnings), and its
    records also propagate to the root logger Hydra configures: every warning (a failed sacct call)
    was printed three times. Its jobs keep their handlers: they run in their own processes.
    """
    logger = logging.getLogger("submitit")
    for handler in list(logger.handlers):
        if handler.name in ("submitit_out", "submitit_err"):
            logger.removeHandler(handler)
