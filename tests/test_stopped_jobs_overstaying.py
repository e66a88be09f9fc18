"""A stopped trial's job that does not end (issue 17: early stopping must free the slot).

A stopped trial learns of its stop at its next report, where ``report`` raises ``TrialStopped``.
Research code often wraps a training step in a catch-all ``except Exception`` (a flaky logger, a
metric that may fail): it swallows ``TrialStopped`` and trains on. A rank of a multi-process trial
that missed the stop waits in its next collective for ever. Either way the sweeper waited for the
job to end, so the trial held its slot (a GPU) to the end of its training or its time limit, and
early stopping saved nothing. Real Hydra multiruns of such an app (on Slurm: test_slurm_early_stopping).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, finish_example, run_example, start_example
from small_apps import write_app

from hydra_sigopt.errors import JournalError
from hydra_sigopt.journal import Journal, SweepLock

pytestmark = pytest.mark.slow

EPOCHS = 80

SWALLOWING_TASK = f"""\
import time
from hydra_sigopt import report

trained = os.path.join(HydraConfig.get().runtime.output_dir, "epochs.txt")
for epoch in range(1, {EPOCHS} + 1):
    time.sleep(0.5)
    try:
        report(epoch, value=cfg.x + 1 / epoch)
    except Exception as exc:  # a catch-all, as research code has one: it swallows TrialStopped too
        print(f"epoch {{epoch}}: ignored {{type(exc).__name__}}", flush=True)
    with open(trained, "a") as f:
        f.write(f"{{epoch}}\\n")
return cfg.x
"""

#: Two trials of 80 epochs of 0.5 s; 8 steps in all may be reported, so both are stopped at about
#: their 4th epoch, and each has 2 s after its next report to end.
OVERRIDES = (
    "hydra.sweeper.observation_budget=2",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.early_stopping.step_budget=8",
    "hydra.sweeper.early_stopping.stop_grace_s=2",
)


def check_jobs_cancelled_soon_after_their_stop(run_dir: Path, output: str, trials: list[dict[str, str]]) -> None:
    assert [t["state"] for t in trials] == ["stopped", "stopped"], output[-3000:]
    for t in trials:
        trained = [int(e) for e in (run_dir / t["number"] / "epochs.txt").read_text().split()]
        # Stopped at its step; told at the next report; cancelled a step and 2 s later: a few epochs
        # past the stop (Slurm kills a cancelled job KillWait s after its SIGTERM), not the 80 of a
        # whole training.
        assert max(trained) <= int(t["step"]) + 30, (t, trained)
        assert f"Trial #{t['number']} was stopped early" in output and "cancelled, to free its slot" in output


def test_a_stopped_trial_whose_app_swallows_the_stop_is_cancelled_on_submitit_local(tmp_path: Path) -> None:
    app = write_app(tmp_path, SWALLOWING_TASK)
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *OVERRIDES, app=app).assert_ok()
    check_jobs_cancelled_soon_after_their_stop(run.sweep_dir, run.output, run.trials)
    assert run.results["trials"]["failed"] == 0  # the cancel is the sweeper's doing, not the app's failure
    assert "its app failed" not in run.output, run.output[-3000:]


def test_a_job_a_killed_sweeper_left_running_after_its_stop_is_cancelled_when_the_sweep_resumes(
    tmp_path: Path,
) -> None:
    """The cancel is the sweeper's: killed after the stop (an SSH session lost, a preempted driver),
    it left the stopped trial's job training on to its end, and the resumed sweep, which forgot it,
    started new trials beside it, past parallel_bandwidth."""
    app = write_app(tmp_path, SWALLOWING_TASK)
    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, *OVERRIDES, app=app)
    try:
        stopped = wait_for_stopped_trial(sweep_dir)
        proc.send_signal(signal.SIGKILL)  # before its own cancel, 2 s and a step after the stop
        proc.wait(timeout=60)  # not communicate(): the jobs it left hold its output open
        epochs = sweep_dir / str(stopped) / "epochs.txt"
        time.sleep(3)  # the stop's grace runs out with no sweeper
        assert len(epochs.read_text().split()) < EPOCHS  # the job still trains
        resumed = run_example(tmp_path, *SUBMITIT_LOCAL, *OVERRIDES, app=app).assert_ok()
        assert f"Trial #{stopped} was stopped early" in resumed.output
        assert "before this restart, and its job" in resumed.output and "cancelled, to free its slot" in resumed.output
        trained = len(epochs.read_text().split())
        time.sleep(2)
        assert len(epochs.read_text().split()) == trained < EPOCHS  # the job is gone
    finally:
        subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)


def wait_for_stopped_trial(sweep_dir: Path, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(JournalError, sqlite3.Error), Journal.open(sweep_dir, readonly=True) as journal:
            stopped = journal.trials(["stopped"])
            if stopped:
                return stopped[0].number
        time.sleep(0.1)
    raise AssertionError("no trial was stopped")


SHORT_SWALLOWING_TASK = SWALLOWING_TASK.replace(f"range(1, {EPOCHS} + 1)", "range(1, 101)").replace("0.5", "0.3")


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_resumed_sweep_keeps_the_slot_of_a_stopped_job_still_running_until_it_is_gone(tmp_path: Path) -> None:
    """Killed after a stop, within the stop's grace: the resumed sweep started a new trial at once,
    beside the stopped trial's job still running (saving its checkpoint, or swallowing the stop
    until cancelled): two jobs at parallel_bandwidth 1, one GPU shared. (Held, with nothing of its
    own running, the first fix's sweeper then spun on a whole core until the job was gone.)"""
    # 30 s of training: the stopped job trains on well past the stop's grace (15 s) and its cancel.
    assert "range(1, 101)" in SHORT_SWALLOWING_TASK and "sleep(0.3)" in SHORT_SWALLOWING_TASK
    app = write_app(tmp_path, SHORT_SWALLOWING_TASK)
    settings = (
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=1",
        "hydra.sweeper.early_stopping.stop_grace_s=15",  # the slot stays held well past the CPU's measure
    )
    proc, sweep_dir = start_example(
        tmp_path, *SUBMITIT_LOCAL, *settings, "hydra.sweeper.early_stopping.step_budget=4", app=app
    )
    try:
        stopped = wait_for_stopped_trial(sweep_dir)
        proc.send_signal(signal.SIGKILL)  # within the stop's grace: its job trains on
        proc.wait(timeout=60)
        # Resumed at once, with room for one more trial (the step budget raised).
        proc, _ = start_example(
            tmp_path, *SUBMITIT_LOCAL, *settings, "hydra.sweeper.early_stopping.step_budget=1000", app=app
        )
        while SweepLock(sweep_dir).holder() is None:  # started: the slot is held from here on
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            time.sleep(0.1)
        time.sleep(1.5)  # past the resume's own work (journal, engine), which a loaded machine slows
        before = cpu_seconds(proc.pid)
        time.sleep(3)
        used = cpu_seconds(proc.pid) - before
        resumed = finish_example(proc, sweep_dir).assert_ok()
    finally:
        subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)
    lines = resumed.output.splitlines()
    cancelled = next(i for i, line in enumerate(lines) if f"Trial #{stopped} was stopped early" in line)
    assert "before this restart, and its job" in lines[cancelled] and "cancelled" in lines[cancelled]
    started = next(i for i, line in enumerate(lines) if "\t#1 : x=" in line)
    assert started > cancelled, resumed.output[-3000:]  # the new trial waited for the slot
    assert [t["state"] for t in resumed.trials] == ["stopped", "completed"]
    assert used < 0.6, f"the sweeper used {used:.2f} s of CPU in 3 s while it waited for the slot"


CHECKPOINT_SAVE_FAILS = """\
import time
from hydra_sigopt import TrialStopped, report

try:
    for epoch in range(1, 41):
        time.sleep(0.2)
        report(epoch, value=cfg.x + 1 / epoch)
except TrialStopped:
    with open("/no/such/dir/last.ckpt", "w") as f:  # the app saves a checkpoint where it cannot
        f.write("weights")
    raise
return cfg.x
"""


@pytest.mark.parametrize("launcher", [(), SUBMITIT_LOCAL], ids=["basic", "submitit_local"])
def test_a_stopped_trial_whose_checkpoint_save_fails_says_so_in_the_sweepers_log(
    tmp_path: Path, launcher: tuple[str, ...]
) -> None:
    """The app catches TrialStopped to save a checkpoint, and the save fails: the user learned of it
    only from a failure_traceback.log in the trial's job dir, though the checkpoint they count on
    for that trial is missing."""
    app = write_app(tmp_path, CHECKPOINT_SAVE_FAILS, budget=1)
    run = run_example(tmp_path, *launcher, "hydra.sweeper.early_stopping.step_budget=3", app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["stopped"], run.output[-3000:]
    said = "Trial #0 was stopped early, and then its app failed: FileNotFoundError: [Errno 2] No such file"
    assert said in run.output, run.output[-3000:]
    assert f"(full traceback in {run.sweep_dir / '0' / 'failure_traceback.log'})" in run.output
    assert run.results["trials"]["failed"] == 0  # still stopped, not failed: its reports stand
