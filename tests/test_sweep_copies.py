"""A copy of a sweep dir (``cp -a`` of a live sweep, an rsync'ed backup) names the original's jobs
and driver in its journal: ``hydra-sigopt kill`` / ``delete`` run on the copy must not cancel them,
and ``status`` on it must not present them as the copy's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, finish_example, run_example, running_job_ids, start_example
from small_apps import write_app
from test_delete import hydra_sigopt

from hydra_sigopt.copies import LOCATION
from hydra_sigopt.journal import JOURNAL_NAME, Journal
from hydra_sigopt.processes import local_job_running

pytestmark = pytest.mark.slow

# Each trial runs until the test creates the file GO_FILE names: its job is surely running meanwhile.
WAIT_FOR_GO = """\
import pathlib
import time
go = pathlib.Path(os.environ["GO_FILE"])
while not go.exists():
    time.sleep(0.2)
return cfg.x
"""


def _start_and_copy(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, dict[int, str], Path, Path]:
    """A live sweep of 3 trials on 2 local slots, both running (they wait for the go file), and a
    ``cp -a`` copy of its dir: (the sweep's process, its dir, its running jobs, the copy, the go file).
    The go file is created if this fails, so that the sweep ends."""
    go = tmp_path / "go"
    app = write_app(tmp_path, WAIT_FOR_GO, budget=3)
    proc, live = start_example(
        tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", app=app, env={"GO_FILE": str(go)}
    )
    try:
        jobs = running_job_ids(live, 2)
        backup = tmp_path / "backup"
        subprocess.run(["cp", "-a", str(live), str(backup)], check=True)
    except BaseException:
        go.touch()
        raise
    return proc, live, jobs, backup, go


def test_kill_and_delete_on_a_copy_of_a_live_sweep_leave_its_jobs_running(tmp_path: Path) -> None:
    """Seen: delete on a backup said "Stopping the sweep's driver" and cancelled the live trials;
    the live sweep then failed them ("job ... ended without a result")."""
    proc, live, jobs, backup, go = _start_and_copy(tmp_path)
    try:
        killed = hydra_sigopt("kill", str(backup))
        assert all(local_job_running(j) for j in jobs.values()), killed.stdout + killed.stderr
        assert killed.returncode != 0
        assert f"is a copy of the sweep at {live.resolve()}" in killed.stderr
        assert "nothing was cancelled" in killed.stderr and "--local-only" in killed.stderr

        status = hydra_sigopt("status", str(backup))
        assert status.returncode == 0, status.stderr
        assert f"Copy of:     {live.resolve()}" in status.stdout
        assert "(the original's trials, as copied; their jobs are its)" in status.stdout
        assert f"the original at {live.resolve()} runs" in status.stdout  # not "resume with: continue backup"

        refused = hydra_sigopt("delete", str(backup), "--yes")
        assert all(local_job_running(j) for j in jobs.values()), refused.stdout + refused.stderr
        assert refused.returncode != 0 and "nothing was cancelled or deleted" in refused.stderr
        assert (backup / JOURNAL_NAME).exists()

        deleted = hydra_sigopt("delete", str(backup), "--yes", "--local-only")
        assert deleted.returncode == 0, deleted.stderr
        assert all(local_job_running(j) for j in jobs.values()), deleted.stdout
        assert "left as they are" in deleted.stdout and not backup.exists()
    finally:
        go.touch()
    run = finish_example(proc, live, timeout=300).assert_ok()
    assert "without a result" not in run.output and "3/3 trials done, 0 running, 0 failed" in run.output
    assert [t["state"] for t in run.trials] == ["completed"] * 3


def test_a_copy_resumes_once_its_original_has_ended_not_while_it_runs(tmp_path: Path) -> None:
    """A backup is for resuming after the original is lost: refused while the original runs (it would
    re-attach, then cancel, the original's jobs), accepted after it ended."""
    proc, live, jobs, backup, go = _start_and_copy(tmp_path)
    try:
        resumed = subprocess.run(
            ["/bin/sh", "-c", hydra_sigopt("continue", str(backup)).stdout.strip()],
            capture_output=True,
            text=True,
            timeout=120,  # a copy re-attached to the original's jobs waited for results that never came
            env={**os.environ, "GO_FILE": str(go)},
        )
        assert all(local_job_running(j) for j in jobs.values()), resumed.stdout + resumed.stderr
        assert resumed.returncode != 0
        assert f"is a copy of the sweep at {live.resolve()}, which still runs" in resumed.stderr + resumed.stdout
    finally:
        go.touch()
    finish_example(proc, live, timeout=300).assert_ok()
    shutil.rmtree(live)  # the original lost: the backup is all there is
    resumed = run_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=2",
        sweep_dir=backup,
        app=tmp_path / "app" / "app.py",  # the app _start_and_copy wrote
        env={"GO_FILE": str(go)},
    ).assert_ok()
    assert sum(t["state"] == "completed" for t in resumed.trials) == 3
    assert "Copy of" not in hydra_sigopt("status", str(backup)).stdout  # it is the sweep's dir now


def test_a_moved_sweep_dir_is_the_sweep_and_a_journal_without_the_record_is_taken_as_it_was(tmp_path: Path) -> None:
    """A ``mv`` keeps the sweep's identity (the inode); a copy made before the record existed (an
    older journal) cannot be told from its original, and is shown as it was."""
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    moved = tmp_path / "moved"
    run.sweep_dir.rename(moved)
    assert "Copy of" not in hydra_sigopt("status", str(moved)).stdout
    assert hydra_sigopt("kill", str(moved)).stdout.strip() == "No running trials."

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(moved), str(copy)], check=True)
    # Named where the sweep last ran: each run notes its place.
    assert f"Copy of:     {run.sweep_dir.resolve()}" in hydra_sigopt("status", str(copy)).stdout
    # It names no job, driver or server experiment: nothing a kill would act on but its own files.
    assert hydra_sigopt("kill", str(copy)).stdout.strip() == "No running trials."
    with Journal.open(copy) as journal:
        journal.set_meta(**{LOCATION: None})  # as a journal written before the record
    assert "Copy of" not in hydra_sigopt("status", str(copy)).stdout
