"""Multi-task trials (DDP: one task per device, ``hydra.launcher.tasks_per_node=2``) whose ranks end
apart, under a dead driver, with real submitit_local jobs: ``hydra-sigopt kill`` and the resume tell
the trial's end by every rank's result, not rank 0's alone.

(tests/test_slurm_multi_task_kill.py: a rank that still runs on Slurm.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import SUBMITIT_LOCAL, finish_example, running_job_ids, start_example, trial_states, wait_for_results
from small_apps import write_app

TWO_TASKS = (*SUBMITIT_LOCAL, "hydra.launcher.tasks_per_node=2", "hydra.sweeper.warm_jobs=0")

RANK = 'rank = int(os.environ["SUBMITIT_LOCAL_GLOBALID"])\n'


def _driver_killed_once_rank_0_returned(tmp_path: Path, task: str) -> tuple[Path, str, Path]:
    """Start a one-trial sweep, SIGKILL its driver once rank 0 wrote its result; (sweep dir, job id, app)."""
    app = write_app(tmp_path, RANK + task, helpers="import time", budget=1)
    proc, sweep_dir = start_example(tmp_path, *TWO_TASKS, app=app)
    try:
        job_id = running_job_ids(sweep_dir, 1)[0]
        wait_for_results(sweep_dir, {0: job_id})  # rank 0's
        proc.kill()  # SIGKILL: the driver is dead, its job runs on
        proc.wait()
    finally:
        proc.kill()
    return sweep_dir, job_id, app


def _kill(sweep_dir: Path) -> str:
    killed = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 0, killed.stderr
    return killed.stdout


def _resume(tmp_path: Path, app: Path) -> None:
    proc, _ = start_example(tmp_path, *TWO_TASKS, app=app)
    try:
        finish_example(proc, tmp_path / "sweep", timeout=300).assert_ok()
    finally:
        proc.kill()


def test_a_resume_waits_for_every_rank_of_a_re_attached_job(tmp_path: Path) -> None:
    """Rank 1 runs 8 s past rank 0. The re-attached job counted as ended once rank 0's result was
    there: a second later the trial was recorded as failed ("has not produced any output") while
    rank 1 still ran."""
    sweep_dir, job_id, app = _driver_killed_once_rank_0_returned(tmp_path, "time.sleep(8 * rank)\nreturn cfg.x")
    _resume(tmp_path, app)
    assert trial_states(sweep_dir)[0] == ("completed", job_id, True)


def test_kill_and_the_resume_agree_on_a_job_whose_other_rank_s_app_raised(tmp_path: Path) -> None:
    """Rank 0 returned, rank 1's app raised: the trial is rank 0's value, as Hydra's launcher takes a
    multi-task job's (its ``results()[0]``), and kill says so (it passed before this change too)."""
    task = "if rank == 1:\n    time.sleep(2)\n    raise RuntimeError('rank 1 failed')\nreturn cfg.x"
    sweep_dir, job_id, app = _driver_killed_once_rank_0_returned(tmp_path, task)
    rank_1 = sweep_dir / ".submitit" / job_id / f"{job_id}_1_result.pkl"
    deadline = time.time() + 60
    while not rank_1.exists():
        assert time.time() < deadline, "rank 1 never ended"
        time.sleep(0.1)
    out = _kill(sweep_dir)
    assert f"trial #0 job {job_id}: finished; a resumed sweep records its result" in out, out
    _resume(tmp_path, app)
    assert trial_states(sweep_dir)[0][0] == "completed"


def test_kill_leaves_an_ended_job_whose_other_rank_wrote_no_result_to_the_resume(tmp_path: Path) -> None:
    """Rank 1 died without a result (killed, as at a time limit), the job ended: kill took it for a
    running job, "cancelled" it and abandoned the trial, which the resume then ran again."""
    task = "if rank == 1:\n    time.sleep(2)\n    os._exit(3)\nreturn cfg.x"
    sweep_dir, job_id, app = _driver_killed_once_rank_0_returned(tmp_path, task)
    from hydra_sigopt.processes import local_job_running

    deadline = time.time() + 60
    while local_job_running(job_id):
        assert time.time() < deadline, "the job never ended"
        time.sleep(0.1)
    out = _kill(sweep_dir)
    assert f"trial #0 job {job_id}: failed; a resumed sweep records its failure" in out, out
    _resume(tmp_path, app)
    states = trial_states(sweep_dir)
    assert sorted(states) == [0] and states[0][0] == "failed", states


def test_jobs_of_a_sweeper_in_a_requeued_slurm_job_are_not_taken_for_requeued_ones(tmp_path: Path) -> None:
    """A sweeper run in a Slurm job that was requeued has SLURM_RESTART_COUNT; its jobs inherited it
    and each first run was taken for a rerun (trial_job.started_again): a late rank then left without
    its result. Here the app returns what its job sees."""
    app = write_app(tmp_path, 'return float(os.environ.get("SLURM_RESTART_COUNT", "0"))', budget=1)
    proc, sweep_dir = start_example(tmp_path, *TWO_TASKS, app=app, env={"SLURM_RESTART_COUNT": "1"})
    try:
        run = finish_example(proc, sweep_dir, timeout=300).assert_ok()
    finally:
        proc.kill()
    ((trial),) = run.trials
    assert trial["state"] == "completed" and float(trial["value"]) == 0.0, trial
