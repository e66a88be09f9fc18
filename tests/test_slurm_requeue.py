"""A trial's job that Slurm requeues after the trial wrote its result, on the real Slurm cluster.

Slurm requeues a job whatever its task did (``scontrol requeue``, a preemption with requeue, a node
failure): one that lands between the result file and the job's exit (an app's exit handler
uploading its logs, say) starts the job again. It must not train a second time: the trial's
result, checkpoints and logs stay as they are. The other side: a job submitit requeues before its
trial ended (its preemption signal) runs the trial again, to its end.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (CI).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import AppRun, finish_example, running_job_ids, start_example, start_requeued_job_now
from small_apps import write_app
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Each start of the task is a line in starts.txt of its job dir, and it writes a "checkpoint". Trial
# 0's first run then holds its job at exit (after submitit wrote the result), as an exit handler
# flushing to a tracking server does, until the test releases it or Slurm ends the job. Trial 1
# runs until the test releases it.
HOLDING_TASK = """
out = HydraConfig.get().runtime.output_dir
starts = os.path.join(out, "starts.txt")
first = not os.path.exists(starts)
restart = os.environ.get("SLURM_RESTART_COUNT", "0")
with open(starts, "a") as f:
    f.write(f"started (Slurm restart {restart})\\n")
with open(os.path.join(out, "model.ckpt"), "w") as f:
    f.write(f"weights trained with x={cfg.x} (Slurm restart {restart})\\n")
if first and job_num() == {held}:
    atexit.register(hold, out)
if job_num() == 1:
    wait_for(os.path.join(os.path.dirname(out), "release_trial_1"))
return cfg.x
"""
HOLDING_HELPERS = """
import atexit
import time


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.2)


def hold(out):
    open(os.path.join(out, "holding"), "w").close()
    wait_for(os.path.join(out, "release"))
"""


def _start_holding_sweep(
    tmp_path: Path, budget: int, held: int = 0, *overrides: str
) -> tuple[subprocess.Popen[str], Path]:
    """A sweep of ``budget`` trials one at a time whose trial ``held`` holds its job after its result."""
    app = write_app(tmp_path, HOLDING_TASK.replace("{held}", str(held)), HOLDING_HELPERS, budget=budget)
    sweep_dir = tmp_path / "sweep"
    proc, _ = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.parallel_bandwidth=1",
        *overrides,
        app=app,
    )
    return proc, sweep_dir


def _wait_for(path: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


def _requeue_now(job_id: str) -> None:
    """``scontrol requeue`` the job, and let it start again at once."""
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True, text=True)
    start_requeued_job_now(job_id)


def _runs_of(job_id: str) -> list[str]:
    """The states of each run of the job, oldest first, as Slurm's accounting has them."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-j", job_id, "-o", "State", "--parsable2"], capture_output=True, text=True
    ).stdout
    return [line.split(" ")[0] for line in out.split()]


def _wait_for_the_second_run_to_end(job_id: str, timeout: float = 300) -> list[str]:
    deadline = time.time() + timeout
    while True:
        runs = _runs_of(job_id)
        if len(runs) >= 2 and runs[-1] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
            return runs
        assert time.time() < deadline, f"the requeued job {job_id} did not end within {timeout} s: {runs}"
        time.sleep(1)


def _trial_files(job_dir: Path, result: Path) -> dict[str, bytes]:
    return {
        "starts.txt": (job_dir / "starts.txt").read_bytes(),
        "model.ckpt": (job_dir / "model.ckpt").read_bytes(),
        "result": result.read_bytes(),
    }


def _check_not_run_again(
    job_id: str, job_dir: Path, before: dict[str, bytes], runs: list[str], number: int = 0
) -> None:
    result = job_dir.parent / ".submitit" / job_id / f"{job_id}_0_result.pkl"
    after = _trial_files(job_dir, result)
    assert after["starts.txt"].decode() == "started (Slurm restart 0)\n", "the app ran again in the requeued job"
    assert after == before  # its checkpoint and the result the sweep read are the first run's
    # The requeued run ended successfully, saying why it did nothing.
    assert runs[-1] == "COMPLETED", runs
    log = (job_dir.parent / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert f"Trial #{number} ended in job {job_id} before Slurm started it again" in log, log[-3000:]
    assert "Loading pickle" in log.partition("started again")[0]  # the first run's log is kept


def test_a_job_requeued_after_its_trial_wrote_its_result_does_not_train_again_after_the_sweep(
    tmp_path: Path,
) -> None:
    """Seen once: a job requeued as it ended, after the sweep, ran the whole training again for
    nothing on the user's allocation and overwrote the trial's checkpoint."""
    proc, sweep_dir = _start_holding_sweep(tmp_path, budget=1)
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        job_dir = sweep_dir / "0"
        _wait_for(job_dir / "holding")  # its result is written; the job has not exited
        run = finish_example(proc, sweep_dir, timeout=300).assert_ok()
        (trial,) = run.trials
        result = sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl"
        before = _trial_files(job_dir, result)
        _requeue_now(job_id)
        runs = _wait_for_the_second_run_to_end(job_id)
    finally:
        proc.kill()
        (tmp_path / "sweep" / "0" / "release").touch()
    _check_not_run_again(job_id, job_dir, before, runs)
    assert run.trials == [trial] and trial["state"] == "completed"


def test_a_job_requeued_after_its_trial_wrote_its_result_while_the_sweep_runs_changes_nothing(
    tmp_path: Path,
) -> None:
    """A requeue while the sweep still runs: the trial's result stands, it is neither failed nor
    re-run nor cancelled, and its job does not train again."""
    proc, sweep_dir = _start_holding_sweep(tmp_path, budget=2)
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        job_dir = sweep_dir / "0"
        _wait_for(job_dir / "holding")
        _wait_for(sweep_dir / "1" / ".hydra")  # trial 0 observed; trial 1 runs until released
        result = sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl"
        before = _trial_files(job_dir, result)
        _requeue_now(job_id)
        runs = _wait_for_the_second_run_to_end(job_id)
        (sweep_dir / "release_trial_1").touch()
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
        (tmp_path / "sweep" / "0" / "release").touch()
        (tmp_path / "sweep" / "release_trial_1").touch()
    run.assert_ok()
    _check_not_run_again(job_id, job_dir, before, runs)
    trials = {int(t["number"]): t for t in run.trials}
    assert [(n, t["state"], t["job_id"] == job_id) for n, t in sorted(trials.items())] == [
        (0, "completed", True),
        (1, "completed", False),
    ]
    assert run.results["trials"]["completed"] == 2
    assert f"job {job_id} requeued" not in run.output and "cancel" not in run.output.lower(), run.output[-3000:]


def test_a_warm_job_requeued_after_its_trial_wrote_its_result_does_not_train_again(tmp_path: Path) -> None:
    """The same for a trial that ran in a warm job (started before its trial, which it reads from a
    claim file still there when Slurm starts it again)."""
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "release_trial_1").touch()  # trial 1 does not wait here
    proc, sweep_dir = _start_holding_sweep(tmp_path, 2, 1, "hydra.sweeper.warm_jobs=1")
    try:
        job_dir = sweep_dir / "1"
        _wait_for(job_dir / "holding")
        run = finish_example(proc, sweep_dir, timeout=300).assert_ok()
        trial = {int(t["number"]): t for t in run.trials}[1]
        job_id = trial["job_id"]
        claims = (sweep_dir / ".submitit" / "warm").glob("*.json")
        assert any('"number": 1' in c.read_text() for c in claims)  # it ran in a warm job
        before = _trial_files(job_dir, sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl")
        _requeue_now(job_id)
        runs = _wait_for_the_second_run_to_end(job_id)
    finally:
        proc.kill()
        (tmp_path / "sweep" / "1" / "release").touch()
    _check_not_run_again(job_id, job_dir, before, runs, number=1)
    assert trial["state"] == "completed"


# Trial 0's first run trains until it is preempted; run again, it ends at once.
PREEMPTED_TASK = """
out = HydraConfig.get().runtime.output_dir
starts = os.path.join(out, "starts.txt")
first = not os.path.exists(starts)
with open(starts, "a") as f:
    f.write(f"started (Slurm restart {os.environ.get('SLURM_RESTART_COUNT', '0')})\\n")
while first:
    time.sleep(0.2)
return cfg.x
"""


def test_a_trial_preempted_before_its_result_is_requeued_by_submitit_and_runs_again(tmp_path: Path) -> None:
    """The other side: a job requeued before its trial ended (submitit's own requeue on the
    preemption signal, through the trial's job function) runs the trial again to its end."""
    app = write_app(tmp_path, PREEMPTED_TASK, "import time", budget=1)
    # submitit takes the signal for a time-out once 80 % of the limit (at most the limit less 10 min) passed.
    proc, sweep_dir = start_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=60", app=app)
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        _wait_for(sweep_dir / "0" / "starts.txt")
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, capture_output=True)
        start_requeued_job_now(job_id)  # submitit's handler checkpointed the call and requeued the job
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
    run.assert_ok()
    assert (sweep_dir / "0" / "starts.txt").read_text() == "started (Slurm restart 0)\nstarted (Slurm restart 1)\n"
    (trial,) = run.trials
    assert trial["state"] == "completed" and trial["job_id"] == job_id


def test_a_preempted_trial_whose_requeue_command_slurm_terminates_is_not_failed_and_runs_again(
    tmp_path: Path,
) -> None:
    """Seen in 1 of 6 runs of the test above: Slurm ends the job it requeues, ``scontrol requeue``
    (submitit's, run inside the job) with it. Killed by that SIGTERM before it exited, the requeue
    raised CalledProcessError in the task: the trial failed ("Command '['scontrol', 'requeue', ...]'
    died with <Signals.SIGTERM: 15>") although Slurm had requeued its job."""
    app = write_app(tmp_path, PREEMPTED_TASK, "import time", budget=1)
    env = _slow_scontrol_env(tmp_path)
    proc, sweep_dir = start_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=60", app=app, env=env)
    try:
        run, _ = _preempt_once_started(proc, sweep_dir, "starts.txt")
    finally:
        proc.kill()
    run.assert_ok()
    (trial,) = run.trials
    assert (trial["state"], trial["failure_reason"]) == ("completed", ""), trial
    assert (sweep_dir / "0" / "starts.txt").read_text() == "started (Slurm restart 0)\nstarted (Slurm restart 1)\n"


# Hydra callbacks that hold the trial's job, on its first run only, at the job's end (after the app
# returned, before submitit wrote the result) or at its start (before the app started), as a slow
# exit handler (uploading logs) or a slow set-up (a callback, an import) does, until the test
# releases it or Slurm ends the job. Each training appends a line to trained.txt.
SLOW_CALLBACKS = """
import logging
import os
import time

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback


def _hold_once(out, marker):
    if os.path.exists(os.path.join(out, marker)):
        return
    open(os.path.join(out, marker), "w").close()
    while not os.path.exists(os.path.join(out, "release")):
        time.sleep(0.2)


class SlowJobEnd(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        _hold_once(config.hydra.runtime.output_dir, "ending")


class SlowJobStart(Callback):
    def on_job_start(self, config, **kwargs):
        _hold_once(config.hydra.runtime.output_dir, "starting")


# A job logging handler slow to set up (one that connects to a log server, say).
class SlowLogHandler(logging.StreamHandler):
    def __init__(self):
        super().__init__()
        _hold_once(HydraConfig.get().runtime.output_dir, "starting")
"""
TRAINING_TASK = """
out = HydraConfig.get().runtime.output_dir
with open(os.path.join(out, "trained.txt"), "a") as f:
    f.write(f"trained with x={cfg.x} (Slurm restart {os.environ.get('SLURM_RESTART_COUNT', '0')})\\n")
return cfg.x
"""


#: Where a job's set-up holds: a Hydra callback's on_job_start, or the job's logging set-up.
SLOW_SET_UPS = {
    "callback": ("+hydra.callbacks.slow._target_=slow_callbacks.SlowJobStart",),
    "logging": (
        "+hydra.job_logging.handlers.slow.class=slow_callbacks.SlowLogHandler",
        "hydra.job_logging.root.handlers=[console,file,slow]",
    ),
}


def _start_with_a_slow_callback(
    tmp_path: Path, callback: str, env: dict[str, str] | None = None, *overrides: str
) -> tuple[subprocess.Popen[str], Path]:
    """A sweep of one trial whose job runs the Hydra callback ``callback`` (of SLOW_CALLBACKS)."""
    app = write_app(tmp_path, TRAINING_TASK, budget=1)
    (app.parent / "slow_callbacks.py").write_text(SLOW_CALLBACKS)
    env = {**(env or {}), "PYTHONPATH": f"{app.parent}:{os.environ.get('PYTHONPATH', '')}"}  # the job imports it
    return start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=60",  # the preemption signal is not taken for a time-out
        *([f"+hydra.callbacks.slow._target_=slow_callbacks.{callback}"] if callback else []),
        *overrides,
        app=app,
        env=env,
    )


def test_a_job_requeued_between_the_apps_return_and_its_result_does_not_train_again(tmp_path: Path) -> None:
    """A requeue (``scontrol requeue``, a preemption, a node failure) that landed while Hydra ended
    the job (its ``on_job_end`` callbacks, after the app returned, before submitit wrote the
    result) left no result: the job Slurm started again trained the whole trial a second time."""
    proc, sweep_dir = _start_with_a_slow_callback(tmp_path, "SlowJobEnd")
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        _wait_for(sweep_dir / "0" / "ending")  # the app returned; no result yet
        assert not (sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl").exists()
        _requeue_now(job_id)
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
        (sweep_dir / "0" / "release").touch()
    run.assert_ok()
    trained = (sweep_dir / "0" / "trained.txt").read_text().splitlines()
    assert len(trained) == 1 and trained[0].endswith("(Slurm restart 0)"), trained
    (trial,) = run.trials
    assert trial["state"] == "completed" and trial["job_id"] == job_id, trial
    assert float(trial["value"]) == float(trial["param.x"]) == float(trained[0].split("x=")[1].split()[0])
    assert _runs_of(job_id)[-1] == "COMPLETED"  # the second run returned the first one's value


def _preempt_once_started(proc: subprocess.Popen[str], sweep_dir: Path, started: str) -> tuple[AppRun, str]:
    """Preempt the sweep's one trial as Slurm does (submitit's USR2) once its job wrote ``started`` in
    the trial's folder, let Slurm start it again at once, and finish the sweep: (its run, the job id)."""
    job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
    _wait_for(sweep_dir / "0" / started)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, capture_output=True)
    start_requeued_job_now(job_id)
    return finish_example(proc, sweep_dir, timeout=300), job_id


def _slow_scontrol_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a sweep whose jobs' ``scontrol`` is slow to exit after its answer (a busy
    controller): Slurm's SIGTERM of a requeued job always finds submitit's ``scontrol requeue``
    still running. sbatch hands the sweeper's environment to its jobs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = subprocess.run(["which", "scontrol"], capture_output=True, text=True, check=True).stdout.strip()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\n{real} "$@" || exit $?\nsleep 30\n')
    (bin_dir / "scontrol").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("set_up", sorted(SLOW_SET_UPS))
def test_a_trial_preempted_while_hydra_sets_its_job_up_is_not_failed_and_runs_again(
    tmp_path: Path, set_up: str
) -> None:
    """A preemption signal that landed before the app started (a slow ``on_job_start`` callback,
    config composition, a slow import) reached submitit's own handler, whose ``scontrol requeue``
    Slurm's SIGTERM ends: CalledProcessError, raised in Hydra's set-up, failed the trial although
    Slurm had requeued its job. (An scontrol slow to exit makes that race certain, as in
    test_a_preempted_trial_whose_requeue_command_slurm_terminates_is_not_failed_and_runs_again.)"""
    env = _slow_scontrol_env(tmp_path)
    proc, sweep_dir = _start_with_a_slow_callback(tmp_path, "", env, *SLOW_SET_UPS[set_up])
    try:
        run, job_id = _preempt_once_started(proc, sweep_dir, "starting")
    finally:
        proc.kill()
        (sweep_dir / "0" / "release").touch()
    run.assert_ok()
    (trial,) = run.trials
    assert (trial["state"], trial["failure_reason"]) == ("completed", ""), trial
    assert (sweep_dir / "0" / "trained.txt").read_text() == f"trained with x={trial['param.x']} (Slurm restart 1)\n"
    log = (sweep_dir / ".submitit" / job_id / f"{job_id}_0_log.err").read_text()
    assert "CalledProcessError" not in log, log[-3000:]
