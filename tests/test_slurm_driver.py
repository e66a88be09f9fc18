"""``hydra-sigopt submit``: the sweep's driver as a Slurm job, on the real cluster.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE_APP, running_job_ids
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

from hydra_sigopt.journal import Journal

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HYDRA_SIGOPT = [sys.executable, "-m", "hydra_sigopt.cli"]


def _submit(tmp_path: Path, *overrides: str, time_min: int = 30) -> tuple[str, Path]:
    sweep_dir = tmp_path / "sweep"
    done = subprocess.run(
        [
            *HYDRA_SIGOPT,
            "submit",
            "--partition=debug",
            f"--time={time_min}",
            "--mem-gb=1",
            "--",
            sys.executable,
            str(EXAMPLE_APP),
            "-m",
            *SLURM,
            "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep_dir}",
            *overrides,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("Submitted the sweep's driver as Slurm job ")
    assert f"hydra-sigopt kill {sweep_dir}" in done.stdout and "tail -f " in done.stdout
    return first.split()[-4].rstrip(";"), sweep_dir


def _cli(*args: str) -> str:
    done = subprocess.run([*HYDRA_SIGOPT, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _queued(job_id: str) -> bool:
    return bool(subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip())


def _wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(1)


def _completed(sweep_dir: Path) -> int:
    try:
        with Journal.open(sweep_dir, readonly=True) as journal:
            return sum(t.state == "completed" for t in journal.trials())
    except Exception:
        return 0


def test_a_submitted_driver_survives_a_requeue_and_observes_the_budget_exactly(tmp_path: Path) -> None:
    """Issue 14: the driver had to stay alive in a terminal on a login node. Submitted, it returns at
    once; requeued mid-sweep (as at a time limit or preemption), it resumes and re-attaches its trials."""
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=10"
    )
    assert f"Driver:      Slurm job {driver_job}" in _cli("status", str(sweep_dir))
    _wait_until(lambda: _completed(sweep_dir) >= 1 and len(running_job_ids(sweep_dir, 1)) >= 1, 240, "a trial")
    # Requeued and held in the queue: status said "Sweeper: not running — resume with: hydra-sigopt
    # continue ... --run", which would start a second sweeper beside the driver about to resume it.
    subprocess.run(["scontrol", "requeuehold", driver_job], check=True, capture_output=True)
    seen: list[str] = []
    pending = f"Sweeper:     not running: its driver, Slurm job {driver_job}, is pending"

    def shown_pending() -> bool:
        seen.append(_cli("status", str(sweep_dir)))
        return pending in seen[-1]

    _wait_until(shown_pending, 120, "the held driver shown as pending")
    assert not [status for status in seen if "hydra-sigopt continue" in status], seen  # nor while it completed
    subprocess.run(["scontrol", "release", driver_job], check=True, capture_output=True)
    _wait_until(lambda: (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job), 600, "end")
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["trials"] == {"total": 4, "completed": 4, "failed": 0, "stopped": 0, "running": 0}
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
        meta = journal.meta()
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 4  # none lost, none run twice
    assert meta["engine_observation_count"] == 4
    log = (sweep_dir / "sigopt_driver" / f"driver-{driver_job}.log").read_text()
    assert "Resuming the sweep" in log and "re-attached to job" in log
    assert f"Driver:      Slurm job {driver_job} (ended" in _cli("status", str(sweep_dir))


def test_a_submitted_driver_requeues_itself_at_its_time_limit_and_finishes_the_sweep(tmp_path: Path) -> None:
    """Issue 14: the driver survives its own time limit by requeueing itself. With --time=3 and the
    120 s lead, Slurm signals it within the first minute (it may signal up to 60 s early): the
    sweeper stops leaving its trials running (its 80 s trials outlast that minute), the job
    requeues itself and the sweep resumes."""
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=3", "hydra.sweeper.parallel_bandwidth=3", "sleep_s=80", time_min=3
    )
    log = sweep_dir / "sigopt_driver" / f"driver-{driver_job}.log"
    _wait_until(lambda: (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job), 900, "end")
    text = log.read_text()
    assert "hydra-sigopt driver: time limit near; requeued" in text, text[-3000:]
    assert "Resuming the sweep" in text
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    # The budget observed exactly: no trial lost with the stopped sweeper, none run twice.
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 3


def test_kill_stops_a_submitted_driver_and_its_trials(tmp_path: Path) -> None:
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=6", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=300"
    )
    trial_jobs = running_job_ids(sweep_dir, 2, timeout=240)
    out = _cli("kill", str(sweep_dir))
    assert f"Stopping the sweep's driver, Slurm job {driver_job}" in out
    assert not _queued(driver_job)
    _wait_until(lambda: not any(_queued(j) for j in trial_jobs.values()), 60, "the trials' jobs cancelled")
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert {t.state for t in journal.trials()} == {"abandoned"}


def test_delete_stops_a_submitted_driver_and_its_trials_before_deleting(tmp_path: Path) -> None:
    """Issue 14: ``delete`` stops the driver job too (else the driver would resume into a sweep
    whose files are gone)."""
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=300"
    )
    trial_jobs = running_job_ids(sweep_dir, 2, timeout=240)
    out = _cli("delete", "--yes", str(sweep_dir))
    assert f"Stopping the sweep's driver, Slurm job {driver_job}" in out, out
    assert not _queued(driver_job)
    _wait_until(lambda: not any(_queued(j) for j in trial_jobs.values()), 60, "the trials' jobs cancelled")
    assert not (sweep_dir / "sigopt_journal.sqlite").exists() and not (sweep_dir / "sigopt_driver").exists()


def test_kill_and_delete_on_a_copy_leave_the_live_driver_and_its_trials_running(tmp_path: Path) -> None:
    """Seen: ``delete`` on a ``cp -a`` backup of a submitted sweep printed "Stopping the sweep's driver,
    Slurm job 1370" and the live trials went CG; the live sweep then failed them."""
    from small_apps import write_app
    from test_sweep_copies import WAIT_FOR_GO

    go = tmp_path / "go"  # the trials wait for it: their jobs surely run while the copy is acted on
    app = write_app(tmp_path, WAIT_FOR_GO, budget=2)
    live = tmp_path / "sweep"
    command = [sys.executable, str(app), "-m", *SLURM, "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={live}"]
    command.append("hydra.sweeper.parallel_bandwidth=2")
    submitted = subprocess.run(
        [*HYDRA_SIGOPT, "submit", "--partition=debug", "--time=30", "--mem-gb=1", "--", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GO_FILE": str(go)},
    )
    assert submitted.returncode == 0, submitted.stderr
    driver_job = submitted.stdout.split()[7].rstrip(";")
    try:
        trial_jobs = running_job_ids(live, 2, timeout=240)
        backup = tmp_path / "backup"
        subprocess.run(["cp", "-a", str(live), str(backup)], check=True)
        for argv in (["delete", "--yes", str(backup)], ["kill", str(backup)]):
            done = subprocess.run([*HYDRA_SIGOPT, *argv], capture_output=True, text=True, timeout=300)
            assert "Stopping the sweep's driver" not in done.stdout, done.stdout
            assert _queued(driver_job) and all(_queued(j) for j in trial_jobs.values()), done.stdout
            assert done.returncode != 0 and f"is a copy of the sweep at {live.resolve()}" in done.stderr
        assert f"Driver:      the original's, Slurm job {driver_job}" in _cli("status", str(backup))
        _cli("delete", "--yes", "--local-only", str(backup))
        assert _queued(driver_job) and all(_queued(j) for j in trial_jobs.values())
    finally:
        go.touch()
    _wait_until(lambda: not _queued(driver_job), 240, "the live sweep's driver ends")
    with Journal.open(live, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["completed"] * 2
