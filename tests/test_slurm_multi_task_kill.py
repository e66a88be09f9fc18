"""``hydra-sigopt kill`` on a dead driver whose multi-task trial (DDP: one Slurm task per device)
has a rank that returned and a rank that still runs, on the real Slurm cluster.

Only rank 0's result file was looked at: kill said "finished; a resumed sweep records its result"
and left the job holding its allocation while the other rank hung (a collective that never
completes is how DDP ranks hang), until its time limit; the resume then waited that long for it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import running_job_ids, start_example, wait_for_results
from small_apps import write_app
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

from hydra_sigopt.journal import Journal

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RANK_1_HANGS = """\
import time
if int(os.environ["SLURM_PROCID"]) == 1:
    time.sleep(600)  # stuck after rank 0 returned
return cfg.x
"""


def _in_queue(job_id: str) -> bool:
    queue = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    return bool(queue.stdout.strip())


def test_kill_cancels_a_multi_task_job_whose_rank_0_returned_while_another_rank_runs(tmp_path: Path) -> None:
    app = write_app(tmp_path, RANK_1_HANGS, budget=1)
    proc, sweep_dir = start_example(
        tmp_path, *SLURM, "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=15", app=app
    )
    try:
        job_id = running_job_ids(sweep_dir, 1)[0]
        wait_for_results(sweep_dir, {0: job_id}, timeout=180)  # rank 0's
        proc.kill()  # SIGKILL: the driver is dead; the job runs on
        proc.wait()
    finally:
        proc.kill()
    assert _in_queue(job_id), "the job ended before kill: nothing to test"
    killed = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 0, killed.stderr
    assert f"trial #0 job {job_id}: cancelled" in killed.stdout, killed.stdout
    assert "1 trial was running; it is listed above." in killed.stdout, killed.stdout
    deadline = time.time() + 60
    while _in_queue(job_id):
        assert time.time() < deadline, f"job {job_id} still in the queue after kill"
        time.sleep(1)
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert journal.trial(0).state == "abandoned"
