"""submitit_local jobs at their time limit and after their trial: nothing restarted or left running unsaid.

Real multiruns of small apps on hydra-submitit-launcher's local launcher.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import finish_example, running_job_ids, start_example
from small_apps import write_app

from hydra_sigopt.journal import Journal
from hydra_sigopt.processes import pid_running
from hydra_sigopt.runners.local_jobs import LocalJobWatch

LOCAL = ("hydra/launcher=submitit_local", "hydra.sweeper.parallel_bandwidth=1")

OVER_ITS_LIMIT = """
import time
if job_num() == 0:
    time.sleep(150)
return cfg.x
"""


def test_a_local_trial_over_its_time_limit_fails_once_instead_of_restarting(tmp_path: Path) -> None:
    # submitit's local executor restarted a timed-out task from the start up to 3 times (its own
    # default: the local launcher has no max_num_timeout), said only in the job's log; with the
    # launcher's timeout_min=60 an hour-long training held its slot 4 hours before failing.
    app = write_app(tmp_path, OVER_ITS_LIMIT, budget=2)
    proc, sweep_dir = start_example(tmp_path, *LOCAL, "hydra.launcher.timeout_min=1", app=app)
    run = finish_example(proc, sweep_dir)
    run.assert_ok()
    trials = {int(t["number"]): t for t in run.trials}
    job_log = "".join(p.read_text() for p in (sweep_dir / ".submitit" / trials[0]["job_id"]).glob("*_log.*"))
    assert "Requeued job" not in job_log
    assert trials[0]["state"] == "failed"
    assert trials[0]["failure_reason"].startswith(
        "TIMEOUT: time limit reached: submitit_local signals a task 30 s before its limit "
        "hydra.launcher.timeout_min=1, and no restart was left (max_num_timeout=0)"
    ), trials[0]["failure_reason"]
    assert trials[1]["state"] == "completed"


LEAVES_A_CHILD = """
import subprocess, sys
# A server the app forgot to stop, given a password on its command line, which no log may show.
server = "import time; time.sleep(600)"
child = subprocess.Popen([sys.executable, "-c", server, "--db=postgres://u:hunter2@db/x"])
with open(f"{os.environ['CHILD_PIDS']}/{job_num()}", "w") as f:
    f.write(str(child.pid))
return cfg.x
"""


def test_processes_a_local_trial_left_running_are_stopped_and_said(tmp_path: Path) -> None:
    pids_dir = tmp_path / "children"
    pids_dir.mkdir()
    app = write_app(tmp_path, LEAVES_A_CHILD, budget=3)
    proc, sweep_dir = start_example(
        tmp_path, *LOCAL, "hydra.launcher.timeout_min=10", app=app, env={"CHILD_PIDS": str(pids_dir)}
    )
    try:
        run = finish_example(proc, sweep_dir)
        children = {int(p.name): int(p.read_text()) for p in pids_dir.iterdir()}
        left = [pid for pid in children.values() if pid_running(pid)]
    finally:
        for p in pids_dir.iterdir():  # a failing run must not leave them either
            try:
                os.kill(int(p.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    run.assert_ok()
    assert sorted(children) == [0, 1, 2]
    assert left == [], f"left running after the sweep ended: {left}"
    name = Path(sys.executable).name[:15]  # the process's name, as the kernel keeps it: the app's interpreter
    for number, pid in children.items():
        assert f"Trial #{number} ended and left 1 process running; stopped: pid {pid} ({name})" in run.output
    assert "hunter2" not in run.output


REQUEUED_ONCE = """
import time
if job_num() == 0:
    time.sleep(4)
return cfg.x
"""


def test_a_restart_the_user_asked_for_is_said_and_the_trial_counts_from_its_first_attempt(tmp_path: Path) -> None:
    """With +hydra.launcher.max_num_timeout=N submitit_local restarts a timed-out task from the start."""
    app = write_app(tmp_path, REQUEUED_ONCE, budget=2)
    proc, sweep_dir = start_example(
        tmp_path, *LOCAL, "hydra.launcher.timeout_min=10", "+hydra.launcher.max_num_timeout=2", app=app
    )
    job_id = running_job_ids(sweep_dir, 1)[0]
    # Once Hydra has set up the trial's job folder, the task runs under submitit's signal handlers.
    deadline = time.time() + 60
    while not (sweep_dir / "0" / ".hydra").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    # The time-out signal submitit's controller sends near the limit (SIGUSR2), sent now.
    task = int(Path(f"/proc/{job_id}/task/{job_id}/children").read_text().split()[0])
    signalled_at = time.time()
    os.kill(task, signal.SIGUSR2)
    run = finish_example(proc, sweep_dir)
    run.assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    assert [(t.number, t.state) for t in trials] == [(0, "completed"), (1, "completed")]
    assert (
        f"Trial #0: job {job_id} reached its time limit (hydra.launcher.timeout_min=10) and submitit_local "
        "restarted its task from the start (restart 1 of hydra.launcher.max_num_timeout=2" in run.output
    )
    # Its record covers the slot it held since its first attempt, not the last attempt alone.
    assert trials[0].started_at is not None and trials[0].started_at < signalled_at


def test_a_restart_whose_attempt_ends_before_the_next_look_is_still_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The watch reads the jobs' logs every few seconds; an attempt resumed from a checkpoint near
    its end (what restarts are for) can end before that. Its restart was left unsaid and the trial's
    record started at its last attempt (found by review): the log is read once more at the end."""
    log = tmp_path / "7_0_log.err"
    log.write_text("submitit WARNING (...) - Requeued job 7 (2 remaining timeouts)\n")
    job = SimpleNamespace(job_id="7", paths=SimpleNamespace(stdout=log))
    watch = LocalJobWatch({"timeout_min": 60, "max_num_timeout": 2}, str(tmp_path), enabled=True)
    watch.started(0, job)
    with caplog.at_level(logging.WARNING):
        assert watch.ended(0) == 1
    assert "Trial #0: job 7 reached its time limit" in caplog.text
