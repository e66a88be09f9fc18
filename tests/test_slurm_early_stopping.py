"""Early stopping on the real Slurm cluster: trials running as Slurm jobs are stopped through the
file system (issue 17: "works the same with the basic launcher, submitit_local and Slurm").

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (CI).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_example
from small_apps import write_app
from test_cli import kill_while_a_stopped_trial_saves
from test_early_stopping_e2e import (
    EPOCHS,
    EPOCHS_APP,
    SHORT_ASHA,
    assert_stopped_jobs_trained_no_further,
    check_stopped_sweep,
    journal_view,
)
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)
from test_stopped_jobs_overstaying import OVERRIDES, SWALLOWING_TASK, check_jobs_cancelled_soon_after_their_stop

from hydra_sigopt.report_files import REPORTS_NAME, trials_root

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_trials_running_as_slurm_jobs_are_stopped_early_and_their_jobs_end(tmp_path: Path) -> None:
    run = run_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=6",
        "hydra.sweeper.parallel_bandwidth=2",
        "epoch_sleep_s=1",
        app=EPOCHS_APP,
        timeout=900,
    )
    stopped = check_stopped_sweep(run, 6)
    _, reports = journal_view(run.sweep_dir)
    for t in stopped:
        reached = max(s for n, s in reports if n == int(t["number"]))
        assert int(t["step"]) <= reached < EPOCHS  # its job went no further than the next report
    # Each stopped trial's job ended (it did not run its remaining epochs holding the slot).
    jobs = ",".join(t["job_id"] for t in stopped)
    acct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", jobs], capture_output=True, text=True)
    states = dict(line.split("|")[:2] for line in acct.stdout.splitlines() if line.strip())
    assert set(states) == {t["job_id"] for t in stopped} and not {"RUNNING", "PENDING"} & set(states.values()), states


def test_a_slurm_job_the_rule_stops_trains_no_step_past_the_one_it_was_stopped_at(tmp_path: Path) -> None:
    """As on submitit_local: at a rung, the job waits for the verdict instead of training on."""
    run = run_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", *SHORT_ASHA, app=EPOCHS_APP, timeout=900)
    run.assert_ok()
    assert_stopped_jobs_trained_no_further(run)


def test_a_stopped_trial_whose_app_swallows_the_stop_is_cancelled(tmp_path: Path) -> None:
    """The job of a stopped trial that trains on is cancelled with scancel (see test_stopped_jobs_overstaying)."""
    app = write_app(tmp_path, SWALLOWING_TASK)
    run = run_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", *OVERRIDES, app=app, timeout=900)
    run.assert_ok()
    check_jobs_cancelled_soon_after_their_stop(run.sweep_dir, run.output, run.trials)


def test_kill_says_what_the_job_of_a_stopped_trial_still_saving_its_checkpoint_was_doing(tmp_path: Path) -> None:
    """Listed as "stopped early, its job ran on to its next report: cancelled": it had learnt of its
    stop, and the sweeper's stop had cancelled it while it saved its checkpoint."""
    out, jobs, _ = kill_while_a_stopped_trial_saves(tmp_path, (*SLURM, "hydra.launcher.timeout_min=10"))
    saving = "stopped early; its job was still running after TrialStopped (saving a checkpoint, or training on)"
    assert f"trial #0 job {jobs[0]}: {saving}: cancelled by the sweeper" in out, out
    assert f"trial #1 job {jobs[1]}: cancelled by the sweeper" in out, out
    assert "2 trials were running; each is listed above." in out, out


EVERY_RANK_REPORTS = """\
rank = int(os.environ["SLURM_PROCID"])  # one Slurm task per device: every rank runs the task
try:
    for epoch in range(1, 31):
        time.sleep(0.3)
        report(epoch, value=cfg.x + 10 * rank)  # rank 1's values are far worse: whose were written shows
except TrialStopped:
    print(f"rank {rank}: stopped", flush=True)
return cfg.x + 10 * rank
"""


def test_only_rank_0_of_a_multi_task_trial_reports_and_every_rank_learns_of_its_stop(tmp_path: Path) -> None:
    """``tasks_per_node=2`` with a loop that calls report() on every rank: each step was written
    twice, rank 1's line first, and rank 1's value was judged and observed as the trial's."""
    app = write_app(
        tmp_path, EVERY_RANK_REPORTS, helpers="import time\n\nfrom hydra_sigopt import TrialStopped, report\n", budget=1
    )
    run = run_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.early_stopping.step_budget=3",  # spent at the third report: the trial is stopped
        app=app,
        timeout=900,
    ).assert_ok()
    (trial,) = run.trials
    assert trial["state"] == "stopped", run.output[-3000:]
    lines = [json.loads(line) for line in (trials_root(run.sweep_dir) / "0" / REPORTS_NAME).read_text().splitlines()]
    steps = [line["step"] for line in lines]
    assert steps == list(range(1, len(steps) + 1)), steps  # each step once
    assert all(line["metrics"]["value"] < 1 for line in lines), lines  # rank 0's values only
    assert float(trial["value"]) < 1, trial
    logs = sorted((run.sweep_dir / ".submitit" / trial["job_id"]).glob("*_log.out"))
    said = sorted(line for log in logs for line in log.read_text().splitlines() if line.endswith(": stopped"))
    assert said == ["rank 0: stopped", "rank 1: stopped"], said  # both ranks left the loop on TrialStopped
