"""Code snapshots on the real Slurm cluster (issue 18): trials run the code the sweep started with.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (see
tests/test_slurm.py). The app and its helpers are tests/test_code_snapshot.py's.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from test_code_snapshot import finish, helper_source, offsets, start, wait_for_done, write_git_app
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_slurm_trials_cold_and_warm_run_the_snapshot(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=4)
    sweep_dir = tmp_path / "sweep"
    overrides = ("hydra.sweeper.code_snapshot=git", "hydra.sweeper.parallel_bandwidth=2", "hydra.sweeper.warm_jobs=1")
    proc = start(app, sweep_dir, *overrides, launcher=(*SLURM, "hydra.launcher.timeout_min=10"))
    wait_for_done(sweep_dir, 1, timeout=300)
    (app / "helper.py").write_text(helper_source(1000))
    run = finish(proc, sweep_dir, timeout=600).assert_ok()

    assert [t["state"] for t in run.trials] == ["completed"] * 4
    assert offsets(run) == [0] * 4, offsets(run)
    assert "scheduler async (one submitit 'slurm' job per trial)" in run.output
    logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").rglob("*_log.out"))
    assert "Warm job runs trial" in logs
    assert all((sweep_dir / str(n) / ".hydra").is_dir() for n in range(4))


def test_slurm_without_a_snapshot_names_the_changed_file(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=3)
    sweep_dir = tmp_path / "sweep"
    proc = start(app, sweep_dir, launcher=(*SLURM, "hydra.launcher.timeout_min=10"))
    wait_for_done(sweep_dir, 1, timeout=300)
    (app / "helper.py").write_text(helper_source(1000))
    run = finish(proc, sweep_dir, timeout=600).assert_ok()

    assert offsets(run)[0] == 0 and offsets(run)[-1] == 1000, offsets(run)  # the sweep mixed two programs
    assert run.output.count(f"The app's code changed while the sweep runs: {app / 'helper.py'}.") == 1


def test_slurm_resume_after_sigkill_runs_from_the_same_snapshot(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=3)
    sweep_dir = tmp_path / "sweep"
    launcher = (*SLURM, "hydra.launcher.timeout_min=10")
    proc = start(app, sweep_dir, "hydra.sweeper.code_snapshot=git", launcher=launcher)
    wait_for_done(sweep_dir, 1, timeout=300)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its Slurm jobs run on
    proc.communicate(timeout=30)
    (app / "helper.py").write_text(helper_source(1000))

    run = finish(start(app, sweep_dir, launcher=launcher), sweep_dir, timeout=600).assert_ok()
    assert f"Resumed sweep runs from its code snapshot {sweep_dir / 'sigopt_code'}" in run.output
    assert offsets(run) == [0] * 3, offsets(run)
