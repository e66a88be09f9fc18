"""What a trial's submitit job runs: the launcher's call, never again once the trial has ended.

Slurm requeues a job whatever its task did: ``scontrol requeue``, a preemption with requeue or a
node failure that lands after submitit wrote the trial's result (the app's exit handlers still
flushing logs, the job's processes still exiting) starts the job again, and submitit's job start
runs its call again without looking for that result. The trial's whole task ran a second time for
nothing, on the user's allocation, over the checkpoints and logs of its job dir, and its result
file was replaced behind the sweep that had read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn


class TrialJob:
    """The launcher's call for one trial (what ``launch()`` would submit), skipped in a job that
    Slurm started again after the trial ended in it (see :func:`leave_if_it_ended_before`)."""

    def __init__(self, launcher: Any, ended: bool = False) -> None:
        self.launcher = launcher
        #: The trial ended in an earlier run of this job (its result was written when the requeue was asked).
        self.ended = ended

    def __call__(self, *args: Any) -> Any:
        number = args[2]  # the launcher's call: (overrides, job dir key, job number, job id, state)
        if self.ended:
            _leave(f"Trial #{number} ended before its job was requeued (the signal came after its result was written)")
        leave_if_it_ended_before(lambda: f"Trial #{number}")
        return run_trial(self.launcher, args)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's requeue on preemption or time-out: the same call, through this class again
        (the launcher's own checkpoint would requeue the bare launcher).

        The signal may come after the trial's result is written (the app's exit handlers still
        running): submitit then rewrites the submitted pickle with this call, so the job started
        again would find that result older than its submission. The call carries it instead."""
        import submitit

        # Its own rank's result only: another rank's (rank 1 returned while rank 0 trained on) would
        # make every rank leave the requeued job, rank 0 without its result.
        ended = self.ended or _result_of_an_earlier_run(own_task_only=True) is not None
        return submitit.helpers.DelayedSubmission(TrialJob(self.launcher, ended), *args, **kwargs)


def run_trial(launcher: Any, args: Sequence[Any]) -> Any:
    """The launcher's call for a trial, in its job: the app's value is kept as it returns (a
    requeue between the app's return and submitit's result file then does not run the app again:
    see returned.ValueKept), and submitit's preemption signal is taken as in the task from the
    job's start on (in Hydra's set-up, before the task, Slurm's SIGTERM that ends submitit's
    ``scontrol requeue`` failed the trial with CalledProcessError: see task.submitits_signal_carried)."""
    from hydra_sigopt.runners.returned import with_value_kept
    from hydra_sigopt.runners.task import submitits_signal_carried

    with submitits_signal_carried():
        return with_value_kept(launcher)(*args)


def submit_trial(executor: Any, launcher: Any, number: int, overrides: Sequence[str]) -> Any:
    """Submit trial ``number``'s job: the launcher's call ``launch()`` would submit for it, as a TrialJob."""
    from hydra.core.singleton import Singleton

    args = (list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state())
    return executor.submit(TrialJob(launcher), *args)


def leave_if_it_ended_before(what: Callable[[], str]) -> None:
    """End this job successfully, touching nothing, if it ended before and Slurm started it again.

    It ended if one of its tasks wrote a result after the job was submitted (a result older than
    its submission is another job's that had the same id). One task is enough: the others of a
    multi-task job would otherwise wait for it forever. A ``SystemExit`` passes submitit's job
    start, which then writes no result: the first run's stays, and the job ends with status 0.
    ``what``: which trial it ran, for the job's log.

    Only in a job Slurm started again: in a first run, a rank that starts after another rank of its
    job ended (a loaded node, seen with submitit_local) finds that rank's result, of this run.
    """
    earlier = _result_of_an_earlier_run() if started_again() else None
    if earlier is None:
        return
    job_id, result = earlier
    _leave(f"{what()} ended in job {job_id} before Slurm started it again (its result: {result})")


def started_again() -> bool:
    """Whether Slurm started this job again (requeued: ``scontrol requeue``, a preemption, a node
    failure), as Slurm says it in the job (the sweeper's own is kept from its jobs: see
    executor.starting_jobs); never outside Slurm, whose local restarts follow a time-out."""
    return os.environ.get("SLURM_RESTART_COUNT", "0").strip() not in ("", "0")


def _leave(why: str) -> NoReturn:
    """End this job with status 0, writing no result (the first run's stays), saying why in its log."""
    from submitit.core.logger import get_logger

    get_logger().warning("%s: not running it again", why)
    raise SystemExit(0)


def _result_of_an_earlier_run(own_task_only: bool = False) -> tuple[str, Path] | None:
    """This job's id and the result file one of its tasks (or this task) wrote after its submission,
    if one did (None outside a submitit job)."""
    import submitit
    from submitit.core.utils import JobPaths

    try:
        env = submitit.JobEnvironment()
        paths = env.paths
        job_id, tasks = env.job_id, [env.global_rank] if own_task_only else range(env.num_tasks)
    except (KeyError, RuntimeError):  # not in a submitit job (a test calling the job's function)
        return None
    try:
        submitted = paths.submitted_pickle.stat().st_mtime
    except OSError:
        return None  # submitit itself refuses to run without it
    for task in tasks:
        result = JobPaths(paths.folder, job_id=job_id, task_id=task).result_pickle
        try:
            if result.stat().st_mtime >= submitted:
                return job_id, result
        except OSError:
            continue  # no result from this task
    return None
