"""Cluster faults on the real Slurm cluster: the controller stopped and started again
(scripts/slurm-controller.sh) as a restart or failover does (jobs keep running, Slurm's commands
fail), a sweeper killed right after sbatch, a requeued and held job, a job that died.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (CI).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OutputReader, finish_example, running_job_ids, start_example, start_requeued_job_now
from small_apps import write_app
from test_cli import SAVES_A_CHECKPOINT_WHEN_STOPPED, SAVING_OVERRIDES
from test_slurm import SLURM, _slurm_problem, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)
from test_stopped_jobs_overstaying import EPOCHS, OVERRIDES, SWALLOWING_TASK, wait_for_stopped_trial

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CONTROLLER = Path(__file__).resolve().parents[1] / "scripts" / "slurm-controller.sh"


def _controller(action: str, daemon: str = "slurmctld") -> None:
    subprocess.run(["bash", str(CONTROLLER), action, daemon], check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture
def controller() -> Iterator[None]:
    """Stop and start slurmctld or slurmdbd in a test; both run again after the test, whatever happened."""
    yield
    _controller("start", "slurmdbd")
    _controller("start")
    # Until the node is usable again (jobs that ended during the outage are still "completing"),
    # the next Slurm test would be skipped or would wait.
    deadline = time.time() + 120
    while _slurm_problem() is not None and time.time() < deadline:
        time.sleep(1)


def _wait_for_tasks(sweep_dir: Path, numbers: list[int], timeout: float = 180) -> None:
    """Wait until these trials' tasks run (Hydra made their job dirs)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all((sweep_dir / str(n) / ".hydra").is_dir() for n in numbers):
            return
        time.sleep(0.2)
    raise AssertionError(f"the tasks of trials {numbers} did not start within {timeout} s")


def _wait_for_results(sweep_dir: Path, numbers: list[int], timeout: float = 120) -> None:
    """Wait until these trials' jobs wrote their result files (they run on while slurmctld is down)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(_result_of(sweep_dir, n) for n in numbers):
            return
        time.sleep(0.5)
    raise AssertionError(f"trials {numbers} wrote no result within {timeout} s")


def _result_of(sweep_dir: Path, number: int) -> bool:
    from hydra_sigopt.journal import Journal

    with Journal.open(sweep_dir, readonly=True) as journal:
        job_id = next(t.job_id for t in journal.trials() if t.number == number)
    return bool(job_id) and (sweep_dir / ".submitit" / str(job_id) / f"{job_id}_0_result.pkl").exists()


def test_a_30_second_controller_outage_during_refills_loses_cancels_and_repeats_nothing(
    tmp_path: Path, controller: None
) -> None:
    """Issue 14: a slot freed while slurmctld was down made sbatch fail after 11-18 s; the sweeper
    cancelled every running trial and exited 1."""
    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=6",
        "hydra.sweeper.parallel_bandwidth=3",
        "sleep_s=10",
    )
    try:
        output = OutputReader(proc)
        first = running_job_ids(sweep_dir, 3, timeout=180)
        _wait_for_tasks(sweep_dir, sorted(first))  # srun needs the controller to start a task
        _controller("stop")
        outage_started = time.time()
        _wait_for_results(sweep_dir, sorted(first))  # the slots free while the controller is down
        output.wait_for("refuses jobs for now")  # a refill's sbatch gave up (after 11-18 s)
        time.sleep(max(0.0, 30 - (time.time() - outage_started)))
        _controller("start")
        run = output.finish(sweep_dir, timeout=600)
    finally:
        proc.kill()
    run.assert_ok()
    trials = {int(t["number"]): t for t in run.trials}
    # Every trial ran once, to its end: none lost, cancelled, abandoned or re-run.
    assert sorted(trials) == list(range(6))
    assert [trials[n]["state"] for n in range(6)] == ["completed"] * 6
    assert len({t["job_id"] for t in trials.values()}) == 6
    assert run.results["trials"] == {"total": 6, "completed": 6, "failed": 0, "stopped": 0, "running": 0}
    assert "refuses jobs for now" in run.output and "Unable to contact slurm controller" in run.output
    assert "submitted after" in run.output


def test_status_during_an_outage_shows_a_trial_whose_sbatch_has_not_gone_through_as_waiting_to_be_submitted(
    tmp_path: Path, controller: None
) -> None:
    """A tester: while slurmctld was down, hydra-sigopt status counted the trial the sweeper could not
    submit yet (sbatch refused for now, tried again) as running, though no job of it existed."""
    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=1",
        "hydra.sweeper.progress_interval=1",
        "sleep_s=5",
    )
    try:
        output = OutputReader(proc)
        first = running_job_ids(sweep_dir, 1, timeout=180)
        _wait_for_tasks(sweep_dir, sorted(first))
        _controller("stop")
        _wait_for_results(sweep_dir, sorted(first))  # its slot frees while the controller is down
        _wait_for_a_trial_without_a_job(sweep_dir, 1)  # the sweeper took trial #1; its sbatch cannot pass
        # sbatch fails after 11-18 s: the trial waits for the next try, with a progress line
        output.wait_for("refuses jobs for now")
        output.wait_for("1/2 trials done, 0 running, 1 waiting to be submitted")
        status = subprocess.run(
            [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
        ).stdout
        _controller("start")
        run = output.finish(sweep_dir, timeout=600)
    finally:
        proc.kill()
    run.assert_ok()
    assert "0 running, 1 waiting to be submitted" in status, status
    line = next(line for line in status.splitlines() if line.strip().startswith("#1 "))
    assert "waiting to be submitted" in line and "pending" not in line, line
    # The sweeper's progress line says so too (it said "0 running, 1 queued", as for a job in Slurm's queue).
    assert "1/2 trials done, 0 running, 1 waiting to be submitted" in run.output, run.output[-3000:]
    assert [t["state"] for t in run.trials] == ["completed", "completed"]


def _wait_for_a_trial_without_a_job(sweep_dir: Path, number: int, timeout: float = 120) -> None:
    """Wait until the journal has trial ``number``, unfinished, with no job id yet."""
    from hydra_sigopt.journal import Journal

    deadline = time.time() + timeout
    while time.time() < deadline:
        with Journal.open(sweep_dir, readonly=True) as journal:
            if any(t.number == number and t.state == "pending" and not t.job_id for t in journal.trials()):
                return
        time.sleep(0.5)
    raise AssertionError(f"trial #{number} was not waiting for its job within {timeout} s")


def test_a_sweeper_killed_between_sbatch_and_the_journal_reattaches_that_job(tmp_path: Path) -> None:
    """Issue 14: after a crash between sbatch and journaling the job id, the resumed sweep said "its
    job never started" while the job ran: it ran unobserved and the same trial ran again."""
    import signal

    from conftest import run_example

    from hydra_sigopt.crashpoints import ENV_VAR
    from hydra_sigopt.journal import Journal

    overrides = (
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=15",
        "sleep_jobs=[0,1]",  # the jobs of the crash run on while the sweep resumes; trial 2 need not wait
    )
    first = run_example(tmp_path, *overrides, env={ENV_VAR: "after_submit:2"})
    assert first.proc.returncode == -signal.SIGKILL, first.output[-3000:]
    with Journal.open(first.sweep_dir, readonly=True) as journal:
        assert [(t.number, t.state, bool(t.job_id)) for t in journal.trials()] == [
            (0, "running", True),
            (1, "pending", False),
        ]
    second = run_example(tmp_path, *overrides).assert_ok()
    assert "Trial #1: found its job" in second.output
    with Journal.open(second.sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    # Each trial ran once, in its own job: nothing abandoned, nothing re-run.
    assert [(t.number, t.state, t.rerun_of) for t in trials] == [(n, "completed", None) for n in range(3)]
    assert len({t.job_id for t in trials}) == 3


def test_a_requeued_job_is_logged_and_counted_as_queued_not_running(tmp_path: Path) -> None:
    """Issue 14: requeue, hold and pending states were never logged and pending jobs counted as
    running, so a user could not tell a job waiting in the queue from a hang."""
    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=1",
        "hydra.sweeper.progress_interval=1",
        "sleep_s=20",
    )
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        _wait_for_tasks(sweep_dir, [0])
        subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
        subprocess.run(["scontrol", "hold", job_id], check=True, capture_output=True)
        time.sleep(8)  # held: it waits in the queue, whatever its task did before
        status = subprocess.run(
            [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
        )
        subprocess.run(["scontrol", "release", job_id], check=True, capture_output=True)
        start_requeued_job_now(job_id)
        run = finish_example(proc, sweep_dir, timeout=600)
    finally:
        proc.kill()
    run.assert_ok()
    # Accounting shows RUNNING -> REQUEUED -> PENDING, or (when the run was short) PENDING -> REQUEUED.
    assert f"Trial #0: job {job_id} requeued" in run.output, run.output[-3000:]
    assert f"Trial #0: job {job_id} pending" in run.output and "(JobHeldAdmin)" in run.output  # the hold
    assert "0 running, 1 queued" in run.output
    # hydra-sigopt status tells the waiting job from a running one, and says why it waits.
    assert "0 running, 1 queued" in status.stdout, status.stdout
    assert f"job {job_id}" in status.stdout and "(Slurm: pending, JobHeldAdmin)" in status.stdout, status.stdout
    line = next(line for line in status.stdout.splitlines() if f"job {job_id}" in line)
    assert " queued   for " in line and "running" not in line, line  # it said "running for 9s (Slurm: pending"
    assert f"Trial #0: job {job_id} running" in run.output  # released and started again
    assert [t["state"] for t in run.trials] == ["completed"]


def test_a_job_that_died_fails_with_slurms_state_and_exit_code_in_one_line(tmp_path: Path) -> None:
    """Issue 14: reasons were cut mid-sentence (submitit's multi-line message) and lacked the exit
    code Slurm recorded (FAILED 3:0)."""
    from conftest import run_example

    run = run_example(
        tmp_path, *SLURM, "hydra.launcher.timeout_min=10", "hydra.sweeper.observation_budget=1", "fail_mode=exit"
    ).assert_ok()
    (trial,) = run.trials
    job_id = trial["job_id"]
    assert trial["state"] == "failed"
    assert trial["failure_reason"] == (
        f"job {job_id} ended without a result (state FAILED 3:0); its log: "
        f"{run.sweep_dir}/.submitit/{job_id}/{job_id}_0_log.err"
    )
    # Where it ran, from Slurm's accounting (issue 15: failed observations lacked their host).
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout.strip()
    assert trial["host"] == node


def test_a_failing_sacct_is_reported_once_per_call_and_the_sweep_goes_on(tmp_path: Path, controller: None) -> None:
    """Issue 14: submitit's sacct warnings appeared three times per call (its own stdout and stderr
    handlers, and Hydra's console through the root logger)."""
    import re

    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=15",
    )
    try:
        first = running_job_ids(sweep_dir, 2, timeout=180)
        _wait_for_tasks(sweep_dir, sorted(first))
        _controller("stop", "slurmdbd")  # sacct fails while slurmdbd is down
        time.sleep(6)
        _controller("start", "slurmdbd")
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
    run.assert_ok()
    calls = re.findall(r"Call #(\d+) - Bypassing sacct error", run.output)
    assert calls, run.output[-3000:]
    assert len(calls) == len(set(calls)), f"each failed sacct call printed {len(calls) / len(set(calls)):.0f} times"
    assert [t["state"] for t in run.trials] == ["completed", "completed"]


def test_ctrl_c_while_the_controller_is_down_says_the_cancel_failed_and_keeps_the_trials(
    tmp_path: Path, controller: None
) -> None:
    """Issue 14: Ctrl-C with slurmctld down printed "Running trials were cancelled: [0, 1, 2]" although
    every scancel failed; the jobs ran on, the rerun did not re-attach them, and results were lost."""
    import signal

    from hydra_sigopt.cli import main as cli_main
    from hydra_sigopt.journal import Journal

    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=300",
    )
    try:
        jobs = running_job_ids(sweep_dir, 2, timeout=180)
        _wait_for_tasks(sweep_dir, sorted(jobs))
        _controller("stop")
        proc.send_signal(signal.SIGINT)
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
    assert run.proc.returncode != 0
    assert "The cancel of trials [0, 1] failed" in run.output and "Unable to contact slurm controller" in run.output
    assert "Running trials were cancelled" not in run.output
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [(t.number, t.state) for t in journal.trials()] == [(0, "running"), (1, "running")]
    _controller("start")
    assert cli_main(["kill", str(sweep_dir)]) == 0  # the cancel, tried again, goes through now
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["abandoned", "abandoned"]
    deadline = time.time() + 90  # cancelled jobs leave the queue once completing
    while any(_queued(j) for j in jobs.values()) and time.time() < deadline:
        time.sleep(1)
    assert not any(_queued(j) for j in jobs.values())


def test_ctrl_c_with_the_controller_down_and_a_stopped_trial_saving_keeps_it_stopped(
    tmp_path: Path, controller: None
) -> None:
    """Ctrl-C while trial #0, stopped early, saved its checkpoint and slurmctld was down: the failed
    cancel of its job was undone as that of a running trial, which it is not (stopped trials hold
    their slots until their jobs end), and the sweep's stop ended in an error instead of its line."""
    import signal

    from hydra_sigopt.journal import Journal
    from hydra_sigopt.report_files import stop_seen, trial_folder, trials_root

    app = write_app(tmp_path, SAVES_A_CHECKPOINT_WHEN_STOPPED, budget=2)
    proc, sweep_dir = start_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", *SAVING_OVERRIDES, app=app)
    try:
        deadline = time.time() + 300
        while not stop_seen(trial_folder(trials_root(sweep_dir), 0)):
            assert time.time() < deadline and proc.poll() is None, "trial #0 never learnt of its stop"
            time.sleep(0.1)
        _controller("stop")
        proc.send_signal(signal.SIGINT)
        run = finish_example(proc, sweep_dir, timeout=300)
    finally:
        proc.kill()
    assert "Traceback" not in run.output and "IllegalTransition" not in run.output, run.output[-3000:]
    assert "The cancel of trials [0, 1] failed" in run.output, run.output[-3000:]
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [(t.number, t.state) for t in journal.trials()] == [(0, "stopped"), (1, "running")]
    _controller("start")
    assert run.proc.returncode != 0


def _queued(job_id: str) -> bool:
    return bool(subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip())


def test_a_failed_cancel_of_a_stopped_job_that_trains_on_is_tried_again(tmp_path: Path, controller: None) -> None:
    """The cancel of a stopped trial's job that runs on (test_stopped_jobs_overstaying) was tried
    once: with slurmctld out of reach at that moment, the job held its slot to the end of its
    training."""
    app = write_app(tmp_path, SWALLOWING_TASK)
    proc, sweep_dir = start_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", *OVERRIDES, app=app)
    stopped = wait_for_stopped_trial(sweep_dir)
    _controller("stop")
    time.sleep(15)  # the cancel, a step and 2 s after the stop, fails meanwhile (scancel waits ~10 s)
    _controller("start")
    run = finish_example(proc, sweep_dir, timeout=600).assert_ok()
    for t in run.trials:  # cancelled once the controller was back, not trained to the end
        assert len((sweep_dir / t["number"] / "epochs.txt").read_text().split()) < EPOCHS, run.output[-3000:]
    assert f"Trial #{stopped} was stopped early" in run.output
    assert "could not cancel it" in run.output and "it is tried again later" in run.output


@pytest.mark.parametrize("on_interrupt", ["detach", "cancel"])
def test_a_job_sbatch_refuses_is_never_submitted_not_left_running_nor_cancelled(
    tmp_path: Path, on_interrupt: str
) -> None:
    """A tester: with a partition Slurm refuses, the sweep stopped saying "Trials [0] were left
    running" (detach) or "Running trials were cancelled" (cancel), though no job ever existed, and
    hydra-sigopt status showed the trial as running. A resumed sweep, the partition fixed, runs it."""
    from conftest import run_example

    budget = ("hydra.sweeper.observation_budget=1", f"hydra.sweeper.on_interrupt={on_interrupt}")
    refused = run_example(tmp_path, *SLURM[:1], "hydra.launcher.partition=no_such_partition", *budget)
    assert refused.proc.returncode != 0
    stop = [line for line in refused.proc.stderr.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line][-1]
    assert "Invalid partition name specified. Trial #0 was never submitted; a resumed sweep submits it" in stop, stop
    assert "left running" not in stop and "cancelled" not in stop and "Traceback" not in refused.output
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(refused.sweep_dir)], capture_output=True, text=True
    ).stdout
    assert "0 running, 1 never submitted (submitted on resume)" in status, status
    assert "Running:" not in status and "Invalid partition name specified); submitted on resume" in status, status
    # The results file counts it as status does: never submitted, not running.
    assert refused.results["trials"] == {
        "total": 1,
        "completed": 0,
        "failed": 0,
        "stopped": 0,
        "running": 0,
        "never_submitted": 1,
    }

    resumed = run_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", *budget).assert_ok()
    assert "Trial #0 is re-run under a new job number: its job was never submitted" in resumed.output
    trials = {int(t["number"]): t for t in resumed.trials}
    assert trials[1]["state"] == "completed" and trials[1]["overrides"] == trials[0]["overrides"]
