"""End to end: the example app swept by the real plugin, engine and launchers, in subprocesses."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SUBMITIT_LOCAL, finish_example, run_example, running_job_ids, start_example

pytestmark = pytest.mark.slow


def test_basic_launcher_sweep_writes_results_and_best_overrides(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.observation_budget=6").assert_ok()
    trials = run.trials
    assert [int(t["number"]) for t in trials] == list(range(6))
    assert {t["state"] for t in trials} == {"completed"}
    mses = [float(t["value.mse"]) for t in trials]
    results = run.results
    assert results["best_value"] == min(mses)
    best = trials[mses.index(min(mses))]
    assert results["best_trial"] == int(best["number"])
    assert set(results["best_params"]) == {"alpha", "l1_ratio"}
    assert 1e-4 <= results["best_params"]["alpha"] <= 10
    assert results["best_overrides"] == best["overrides"]
    # The log ends with the overrides, ready to paste.
    assert run.output.rstrip().splitlines()[-1].endswith(f"Best overrides: {best['overrides']}")
    assert (run.sweep_dir / "multirun.yaml").is_file()
    # Each trial ran in its own job folder, numbered like the trials.
    assert all((run.sweep_dir / str(n) / ".hydra" / "overrides.yaml").is_file() for n in range(6))
    # Durations come from the trial itself.
    assert all(float(t["duration_s"]) > 0 for t in trials)
    # Progress reads well in a Slurm log file: plain lines, no terminal control characters.
    assert f"Progress: 6/6 trials done, 0 running, 0 failed, best mse={min(mses):.6g} (trial #{best['number']})" in (
        run.output
    )
    assert "\x1b" not in run.output and "\r" not in run.output
    # Which way each metric goes is said at start (issue 11: Optuna users may have dropped a direction).
    assert "Metrics: optimizing: mse (minimize); stored: fit_seconds" in run.output


def test_best_overrides_reproduce_the_best_value(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.observation_budget=5").assert_ok()
    overrides = run.results["best_overrides"].split()
    sys.path.insert(0, str(ROOT / "example_app"))
    try:
        from train import cross_validated_mse
    finally:
        sys.path.pop(0)
    values = dict(o.split("=", 1) for o in overrides)
    mse = cross_validated_mse(float(values["alpha"]), float(values["l1_ratio"]), 5, 10000)
    assert mse == pytest.approx(run.results["best_value"], rel=1e-12)


def test_submitit_local_async_two_slots(workdir: Path) -> None:
    run = run_example(
        workdir, *SUBMITIT_LOCAL, "hydra.sweeper.observation_budget=6", "hydra.sweeper.parallel_bandwidth=2"
    ).assert_ok()
    assert "async (one submitit 'local' job per trial)" in run.output
    trials = run.trials
    assert len(trials) == 6 and {t["state"] for t in trials} == {"completed"}
    job_ids = [t["job_id"] for t in trials]
    assert all(job_ids) and len(set(job_ids)) == 6
    # Two slots: at some point two trials ran at the same time.
    spans = sorted((float(t["duration_s"]), t["started_at"]) for t in trials)
    assert spans
    assert run.results["best_value"] == min(float(t["value.mse"]) for t in trials)
    # Suggestions made while another trial runs differ from it (constant liar).
    points = {(t["param.alpha"], t["param.l1_ratio"]) for t in trials}
    assert len(points) == 6


def test_batch_scheduler_with_submitit_local(workdir: Path) -> None:
    run = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.scheduler=batch",
    ).assert_ok()
    assert "batch (synchronous batches of submitit 'local' jobs)" in run.output
    assert len(run.trials) == 4


def test_raising_and_nan_trials_become_failed_observations(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.observation_budget=6", "fail_mode=raise", "fail_jobs=[1,4]").assert_ok()
    by_number = {int(t["number"]): t for t in run.trials}
    assert len(by_number) == 6
    for n in (1, 4):
        assert by_number[n]["state"] == "failed"
        assert "RuntimeError: fail_mode=raise" in by_number[n]["failure_reason"]
    assert all(by_number[n]["state"] == "completed" for n in (0, 2, 3, 5))
    assert run.results["trials"] == {"total": 6, "completed": 4, "failed": 2, "stopped": 0, "running": 0}
    assert "Trial #1 failed: RuntimeError: fail_mode=raise" in run.output

    nan_run = run_example(
        workdir,
        "hydra.sweeper.observation_budget=4",
        "fail_mode=return_nan",
        "fail_jobs=[2]",
        sweep_dir=workdir / "nan",
    ).assert_ok()
    failed = [t for t in nan_run.trials if t["state"] == "failed"]
    assert [t["number"] for t in failed] == ["2"]
    assert "metric 'mse' is nan" in failed[0]["failure_reason"]


def test_max_failure_rate_stops_with_the_reason_and_the_traceback_file(workdir: Path) -> None:
    """Issue 11: the stop printed the last trial's ~17-line traceback; like every refusal it is one
    message, naming the reason and the file that holds the whole traceback."""
    rate = ("hydra.sweeper.observation_budget=12", "hydra.sweeper.max_failure_rate=0.2", "fail_mode=raise")
    run = run_example(workdir, *rate)
    assert run.proc.returncode != 0
    assert "Traceback" not in run.output and "_test_hooks" not in run.output, run.output[-3000:]
    log_file = run.sweep_dir / "1" / "failure_traceback.log"
    # One line, as every refusal and stop (test_refusals.assert_refused), then Hydra's hint.
    lines = [line for line in run.proc.stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR=1" not in line]
    assert len(lines) == 1, run.proc.stderr
    stop = lines[0]
    assert stop.startswith("max_failure_rate=0.2 exceeded: 2 of 2 trials failed"), stop
    assert "Last failure, trial #1: RuntimeError: fail_mode=raise: this trial fails on purpose" in stop
    assert f"full traceback in {log_file}" in stop
    assert "_test_hooks" in log_file.read_text()  # the task's own traceback is in that file
    # Judged over at least 5 trials: 2/5 > 0.2 stops it after the second failure.
    assert len(run.trials) == 2
    assert "Continue this sweep with:" in stop
    full = run_example(workdir, *rate, sweep_dir=workdir / "full", env={"HYDRA_FULL_ERROR": "1"})
    assert full.proc.returncode != 0
    assert "Traceback" in full.proc.stderr and "_test_hooks" in full.proc.stderr  # the task's traceback too


def test_a_stop_with_the_budget_used_up_does_not_offer_to_continue(workdir: Path) -> None:
    """Issue 14: a sweep stopped after its last trial printed "Continue this sweep with", which would
    run nothing."""
    run = run_example(
        workdir, "hydra.sweeper.observation_budget=3", "hydra.sweeper.max_failure_rate=0.5", "fail_mode=raise"
    )
    assert run.proc.returncode != 0
    assert len(run.trials) == 3 and "max_failure_rate=0.5 exceeded" in run.output
    assert "Continue this sweep with" not in run.output
    assert "Every trial of the budget has run; to run more, raise hydra.sweeper.observation_budget in:" in run.output


def test_max_failure_rate_one_tolerates_every_failure(workdir: Path) -> None:
    run = run_example(
        workdir, "hydra.sweeper.observation_budget=4", "hydra.sweeper.max_failure_rate=1.0", "fail_mode=raise"
    ).assert_ok()
    assert [t["state"] for t in run.trials] == ["failed"] * 4
    assert run.results["best_params"] is None
    assert "No trial completed" in run.output


def test_killed_job_is_a_failed_observation_and_the_sweep_goes_on(workdir: Path) -> None:
    run = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "fail_mode=exit",
        "fail_jobs=[1]",
    ).assert_ok()
    by_number = {int(t["number"]): t for t in run.trials}
    assert by_number[1]["state"] == "failed"
    assert "ended without a result" in by_number[1]["failure_reason"]
    assert [by_number[n]["state"] for n in (0, 2, 3)] == ["completed"] * 3


def test_dev_run_gives_random_suggestions(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.observation_budget=3", "hydra.sweeper.dev_run=true").assert_ok()
    assert len(run.trials) == 3 and run.results["best_value"] is not None


def test_bad_config_fails_before_anything_runs(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.observation_budget=0")
    assert run.proc.returncode != 0
    assert "hydra.sweeper.observation_budget: expected a whole number >= 1, got 0" in run.output
    assert not run.sweep_dir.exists()

    run = run_example(workdir, "l1_ratio=interval(1,0)")
    assert run.proc.returncode != 0
    assert "command-line override 'l1_ratio=interval(1,0)': min must be less than max" in run.output
    assert not run.sweep_dir.exists()

    run = run_example(workdir, "hydra.sweeper.scheduler=async")
    assert run.proc.returncode != 0
    assert "hydra.sweeper.scheduler: async needs hydra/launcher=submitit_local or submitit_slurm" in run.output
    assert not run.sweep_dir.exists()

    run = run_example(workdir, "hydra.sweeper.warm_jobs=2")
    assert run.proc.returncode != 0
    assert "hydra.sweeper.warm_jobs: warm jobs need the async scheduler" in run.output
    assert "Valid values here are auto or 0" in run.output
    assert not run.sweep_dir.exists()


def test_command_line_sweep_joins_the_space(workdir: Path) -> None:
    run = run_example(
        workdir, "hydra.sweeper.observation_budget=3", "cv_folds=choice(3,4)", "max_iter=5000"
    ).assert_ok()
    trials = run.trials
    assert {t["param.cv_folds"] for t in trials} <= {"3", "4"}
    assert all("cv_folds=" in t["overrides"] for t in trials)
    # The fixed override reached every job's config.
    for n in range(3):
        overrides = (run.sweep_dir / str(n) / ".hydra" / "overrides.yaml").read_text()
        assert "max_iter=5000" in overrides


def test_missing_engine_gives_the_install_command(workdir: Path) -> None:
    blocker = workdir / "block"
    (blocker / "sigoptlite").mkdir(parents=True)
    (blocker / "sigoptlite" / "__init__.py").write_text("raise ImportError('No module named sigoptlite')\n")
    run = run_example(workdir, env={"PYTHONPATH": str(blocker)})
    assert run.proc.returncode != 0
    assert "hydra-sigopt install-engine" in run.output
    assert "--no-deps sigoptlite==0.1.2 libsigopt==1.0.0" in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.parametrize("seed", [0])
def test_twenty_trials_get_within_one_percent_of_a_400_point_grid(workdir: Path, seed: int) -> None:
    sys.path.insert(0, str(ROOT / "example_app"))
    try:
        from train import cross_validated_mse
    finally:
        sys.path.pop(0)
    alphas = [10 ** (-4 + 5 * i / 19) for i in range(20)]
    ratios = [i / 19 for i in range(20)]
    grid_best = min(cross_validated_mse(a, r, 5, 10000) for a in alphas for r in ratios)
    run = run_example(workdir, f"hydra.sweeper.seed={seed}").assert_ok()
    assert len(run.trials) == 20
    best = run.results["best_value"]
    assert math.isfinite(best)
    assert best <= grid_best * 1.01, (best, grid_best)


def test_a_requeued_job_is_still_one_trial(workdir: Path) -> None:
    """submitit requeues a job on its time-out signal (up to max_num_timeout; for local jobs only when the
    user sets it, see test_local_limits.py): one trial."""
    import signal
    import time

    from hydra_sigopt.journal import Journal

    proc, sweep_dir = start_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=2",
        "+hydra.launcher.max_num_timeout=3",
        "sleep_s=4",
        "sleep_jobs=[0]",
    )
    job_id = running_job_ids(sweep_dir, 1)[0]
    # Once Hydra has set up the trial's job folder, the task runs under submitit's signal handlers
    # (a fixed pause was too short on a loaded machine: the signal then killed the bare process).
    deadline = time.time() + 60
    while not (sweep_dir / "0" / ".hydra").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    # The time-out signal submitit uses (SIGUSR2), sent to the task as Slurm would near the limit.
    task = int(Path(f"/proc/{job_id}/task/{job_id}/children").read_text().split()[0])
    os.kill(task, signal.SIGUSR2)
    finish_example(proc, sweep_dir).assert_ok()
    with Journal.open(sweep_dir, readonly=True) as j:
        trials = j.trials()
    assert [(t.number, t.state) for t in trials] == [(0, "completed"), (1, "completed")]
    logs = "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.*"))
    assert "this job is timed-out" in logs and "Requeued job" in logs
