"""The runner's Slurm side against fake ``sacct``/``squeue``/``scancel`` and a fake clock (tests/fake_slurm.py):
how fast a dead job is noticed, that a late result is still waited for, and what a cancel really did.
The same code runs against the real cluster in tests/test_slurm.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cloudpickle
import pytest
from fake_slurm import UNREACHABLE, FakeClock, FakeSlurm

from hydra_sigopt import driver
from hydra_sigopt.runners import SubmititRunner
from hydra_sigopt.runners.cancel import cancel_jobs, cancel_running
from hydra_sigopt.runners.slurm import is_transient_refusal, slurm_jobs_not_ended, slurm_knows_job


class _SlurmLauncherParams:
    """What SubmititRunner reads of hydra-submitit-launcher's Slurm launcher."""

    _EXECUTOR = "slurm"

    def __init__(self, folder: Path) -> None:
        self.params = {"submitit_folder": f"{folder}/%j", "partition": "debug", "timeout_min": 5}


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    from submitit.slurm.slurm import SlurmJob

    fake = FakeSlurm(tmp_path / "fake-slurm")
    monkeypatch.setenv("PATH", fake.path_env())
    SlurmJob.watcher.clear()  # submitit's watcher is shared by every SlurmJob of the process
    yield fake
    SlurmJob.watcher.clear()


def _runner(tmp_path: Path, clock: FakeClock) -> SubmititRunner:
    return SubmititRunner(_SlurmLauncherParams(tmp_path / "submitit"), clock=clock, sleep=clock.sleep)


def _write_result(tmp_path: Path, job_id: str, value: float) -> None:
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(status=JobStatus.COMPLETED, _return_value=value)
    folder = tmp_path / "submitit" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{job_id}_0_result.pkl", "wb") as f:
        cloudpickle.dump(("success", ret), f)


@pytest.mark.parametrize("state", ["CANCELLED by 0", "FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT"])
def test_a_job_slurm_reports_dead_is_noticed_within_three_seconds(slurm: FakeSlurm, tmp_path: Path, state: str) -> None:
    """Issue 14: 16-17 s passed between scancel/os._exit and the sweeper noticing (a fixed 15 s wait
    for a result file that a killed job never writes)."""
    clock = FakeClock()
    slurm.set_state("123", "RUNNING")
    runner = _runner(tmp_path, clock)
    assert runner.reattach(0, "123")
    assert runner.wait(timeout=5) == []
    slurm.set_state("123", state)
    slurm.set_exit_code("123", "0:9" if state.startswith("CANCELLED") else "3:0")
    died_at = clock()
    outcomes = runner.wait(timeout=60)
    assert [(o.number, o.ok) for o in outcomes] == [(0, False)]
    assert clock() - died_at <= 3 + runner.poll_interval
    # One complete line: Slurm's state and exit code, and where the job's log is.
    reason = outcomes[0].reason or ""
    exit_code = "0:9" if state.startswith("CANCELLED") else "3:0"
    assert f"job 123 ended without a result (state {state.split()[0]} {exit_code}); its log: " in reason
    assert reason.endswith("123_0_log.err") and "\n" not in reason


def test_a_completed_job_whose_result_file_lags_is_waited_for(slurm: FakeSlurm, tmp_path: Path) -> None:
    """A job Slurm reports COMPLETED wrote its result; a shared file system may show it seconds later."""
    clock = FakeClock()
    slurm.set_state("124", "RUNNING")
    runner = _runner(tmp_path, clock)
    assert runner.reattach(3, "124")
    slurm.set_state("124", "COMPLETED")
    clock.on_sleep.append((clock() + 8.0, lambda: _write_result(tmp_path, "124", 0.25)))
    outcomes = runner.wait(timeout=60)
    assert [(o.number, o.ok, o.value) for o in outcomes] == [(3, True, 0.25)]


def test_one_sacct_call_per_state_check_for_all_jobs(slurm: FakeSlurm, tmp_path: Path) -> None:
    """Noticing dead jobs quickly must not mean one accounting query per job and poll."""
    clock = FakeClock()
    runner = _runner(tmp_path, clock)
    for n in range(6):
        slurm.set_state(str(200 + n), "RUNNING")
        assert runner.reattach(n, str(200 + n))
    before = len(slurm.calls("sacct"))
    assert runner.wait(timeout=20) == []
    checks = len(slurm.calls("sacct")) - before
    assert checks <= 20 / runner.state_check_interval + 1


def test_a_cancel_the_controller_refused_is_reported_as_not_done(slurm: FakeSlurm) -> None:
    """Issue 14: "Running trials were cancelled" was printed although every scancel failed."""
    slurm.set_state("300", "RUNNING")
    slurm.set_state("301", "RUNNING")
    slurm.controller_down()
    done = cancel_jobs("slurm", ["300", "301"])
    assert done.cancelled == ()
    assert set(done.failed) == {"300", "301"}
    assert UNREACHABLE in done.failed["300"]
    assert done.describe("300").startswith("cancel failed, still running")
    assert slurm.state("300") == "RUNNING"


def test_a_cancel_slurm_took_is_reported_as_done(slurm: FakeSlurm) -> None:
    slurm.set_state("302", "RUNNING")
    done = cancel_jobs("slurm", ["302"])
    assert (done.cancelled, done.failed) == (("302",), {})
    assert slurm.state("302") == "CANCELLED by 0"


def test_slurm_unreachable_is_no_reason_to_run_a_trial_twice(slurm: FakeSlurm, tmp_path: Path) -> None:
    from submitit.slurm.slurm import SlurmJob

    slurm.controller_down()
    assert slurm_knows_job(SlurmJob(folder=tmp_path, job_id="400"))
    slurm.controller_down(False)
    SlurmJob.watcher.clear()
    assert not slurm_knows_job(SlurmJob(folder=tmp_path, job_id="401"))


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", True),
        ("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying", True),
        ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", True),
        ("sbatch: error: invalid partition specified: gpu-big", False),
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination", False),
    ],
)
def test_transient_refusals_are_told_from_permanent_ones(message: str, transient: bool) -> None:
    assert is_transient_refusal(message) is transient


class _CallableLauncher(_SlurmLauncherParams):
    """Stands for the launcher submitit pickles into each job (never run here: sbatch is fake)."""

    def __call__(self, *args: object) -> None:
        raise AssertionError("the fake cluster runs nothing")


def _submitting_runner(tmp_path: Path, clock: FakeClock) -> SubmititRunner:
    return SubmititRunner(_CallableLauncher(tmp_path / "submitit"), clock=clock, sleep=clock.sleep)


def test_a_refused_submission_is_tried_again_while_the_other_trials_are_collected(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    """Issue 14: a slot freed while slurmctld was down made sbatch fail, and the sweep cancelled
    every running trial and exited 1."""
    clock = FakeClock()
    runner = _submitting_runner(tmp_path, clock)
    assert runner.start(0, ["x=0"]) == "1000"
    slurm.controller_down()
    assert runner.start(1, ["x=1"]) is None  # refused for now, not an error
    assert runner.start(2, ["x=2"]) is None  # queued behind it, without another sbatch
    assert len(slurm.calls("sbatch")) == 2
    assert runner.running() == [0, 1, 2]
    _write_result(tmp_path, "1000", 0.5)
    outcomes = runner.wait(timeout=5)  # the running trial's result is collected meanwhile
    assert [(o.number, o.ok) for o in outcomes] == [(0, True)]
    assert runner.wait(timeout=20) == [] and runner.started_late() == []
    slurm.controller_down(False)
    clock.sleep(60)
    runner.wait(timeout=5)
    assert runner.started_late() == [(1, "1001"), (2, "1002")]
    assert runner.running() == [1, 2]


def test_a_job_that_died_at_its_launch_is_submitted_again_not_counted_as_the_trials_failure(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    """On the real cluster (Slurm 22.05), a job started within milliseconds of its sbatch: its
    folder did not exist yet ("Could not open stdout file"), it failed with no log at all, and the
    trial was recorded failed "its log: .../59_0_log.err", a log that never existed, against the
    budget and max_failure_rate. A job the user cancelled stays a failure."""
    clock = FakeClock()
    runner = _submitting_runner(tmp_path, clock)
    assert runner.start(0, ["x=0"]) == "1000"
    assert runner.start(1, ["x=1"]) == "1001"
    slurm.set_state("1000", "FAILED")
    slurm.set_exit_code("1000", "0:53")
    slurm.set_state("1001", "CANCELLED by 0")  # scancel of a pending job: no log either
    outcomes = runner.wait(timeout=30)
    assert [(o.number, o.ok) for o in outcomes] == [(1, False)]
    assert runner.started_late() == [(0, "1002")] and runner.running() == [0]
    slurm.set_state("1002", "FAILED")  # a launch that keeps failing is a failure in the end
    assert runner.wait(timeout=30) == [] and runner.started_late() == [(0, "1003")]
    slurm.set_state("1003", "FAILED")
    outcomes = runner.wait(timeout=30)
    assert [(o.number, o.ok) for o in outcomes] == [(0, False)] and len(slurm.calls("sbatch")) == 4
    assert "job 1003 ended without a result (state FAILED" in (outcomes[0].reason or "")


def test_a_job_submitted_after_the_controller_came_back_is_submitted_again_if_it_dies_at_its_launch(
    slurm: FakeSlurm, tmp_path: Path
) -> None:
    """A job submitted late (sbatch refused while slurmctld restarted) forgot the trial's overrides:
    when it died at its launch, the trial was recorded failed instead of being submitted again."""
    clock = FakeClock()
    runner = _submitting_runner(tmp_path, clock)
    slurm.controller_down()
    assert runner.start(0, ["x=0"]) is None
    slurm.controller_down(False)
    clock.sleep(60)
    assert runner.wait(timeout=5) == [] and runner.started_late() == [(0, "1000")]
    slurm.set_state("1000", "FAILED")
    assert runner.wait(timeout=30) == [] and runner.started_late() == [(0, "1001")]
    slurm.set_state("1001", "FAILED")  # and the limit of two submissions again holds for it too
    assert runner.wait(timeout=30) == [] and runner.started_late() == [(0, "1002")]
    slurm.set_state("1002", "FAILED")
    outcomes = runner.wait(timeout=30)
    assert [(o.number, o.ok) for o in outcomes] == [(0, False)] and len(slurm.calls("sbatch")) == 4


def test_a_job_that_died_at_its_launch_while_the_sweep_stops_is_a_failure(slurm: FakeSlurm, tmp_path: Path) -> None:
    """Submitted again while the sweep stops, its new job would run unknown to the journal (a
    detached sweep's resume then re-attached the dead job, and the new one held a slot unseen)."""
    clock = FakeClock()
    runner = _submitting_runner(tmp_path, clock)
    assert runner.start(0, ["x=0"]) == "1000"
    slurm.set_state("1000", "FAILED")
    runner.stop_starting()
    outcomes = runner.wait(timeout=30)
    assert [(o.number, o.ok) for o in outcomes] == [(0, False)] and len(slurm.calls("sbatch")) == 1
    assert runner.started_late() == []


def test_a_permanent_refusal_stops_at_once(slurm: FakeSlurm, tmp_path: Path) -> None:
    from submitit.core.utils import FailedJobError

    slurm.refuse("sbatch: error: invalid partition specified: gpu-big")
    with pytest.raises(FailedJobError, match="invalid partition"):
        _submitting_runner(tmp_path, FakeClock()).start(0, ["x=0"])


def test_refusals_are_given_up_after_the_limit(slurm: FakeSlurm, tmp_path: Path) -> None:
    from submitit.core.utils import FailedJobError

    from hydra_sigopt.runners.refused import LIMIT_S as SUBMIT_RETRY_LIMIT_S
    from hydra_sigopt.runners.refused import MAX_PAUSE_S as SUBMIT_RETRY_MAX_S

    clock = FakeClock()
    runner = _submitting_runner(tmp_path, clock)
    slurm.controller_down()
    assert runner.start(0, ["x=0"]) is None
    started = clock()
    with pytest.raises(FailedJobError, match="Unable to contact slurm controller"):
        while True:
            runner.wait(timeout=5)
    assert SUBMIT_RETRY_LIMIT_S <= clock() - started <= SUBMIT_RETRY_LIMIT_S + SUBMIT_RETRY_MAX_S + 5
    tries = len(slurm.calls("sbatch"))
    assert 10 <= tries <= 40  # backoff: neither hammering the controller nor waiting idly


def test_the_job_of_a_trial_journaled_without_its_job_id_is_found(slurm: FakeSlurm, tmp_path: Path) -> None:
    """Issue 14: a sweeper killed between sbatch and journaling the job id left a job running
    unobserved, and the resumed sweep ran the same trial again."""
    runner = _submitting_runner(tmp_path, FakeClock())
    assert runner.start(3, ["x=3"]) == "1000"
    assert runner.start(4, ["x=4"]) == "1001"
    fresh = _submitting_runner(tmp_path, FakeClock())  # the resumed sweeper
    assert fresh.find_job(4, ["x=4"], known_job_ids={"1000"}) == "1001"
    assert fresh.find_job(4, ["x=5"], known_job_ids={"1000"}) is None  # another trial's overrides
    assert fresh.find_job(4, ["x=4"], known_job_ids={"1000", "1001"}) is None  # that job is another trial's


def test_the_log_says_what_a_job_waits_for_without_a_line_per_short_wait(
    slurm: FakeSlurm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14: requeue, hold and pending states were never logged; a user could not tell a job
    waiting in the queue from a hang. A few seconds in the queue is normal and not worth a line."""
    clock = FakeClock()
    runner = _runner(tmp_path, clock)
    slurm.set_state("500", "PENDING")
    slurm.set_state("501", "PENDING")
    slurm.set_reason("501", "Resources")
    assert runner.reattach(0, "500") and runner.reattach(1, "501")
    caplog.set_level("INFO", logger="hydra_sigopt")
    runner.wait(timeout=5)
    slurm.set_state("500", "RUNNING")  # a short wait: nothing to say
    runner.wait(timeout=40)  # trial 1 waits on
    assert runner.waiting() == [1]
    slurm.set_state("501", "RUNNING")
    runner.wait(timeout=5)
    slurm.set_state("500", "PENDING")  # requeued
    slurm.set_reason("500", "BeginTime")
    runner.wait(timeout=3)
    slurm.set_reason("500", "JobHeldAdmin")  # then held (scontrol hold): still PENDING, another reason
    runner.wait(timeout=12)
    runner.wait(timeout=12)  # nothing new: no second line
    slurm.set_state("502", "REQUEUED")  # it ran and was requeued between two looks at accounting
    assert runner.reattach(2, "502")
    runner.wait(timeout=3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Trial #")]
    assert lines == [
        "Trial #1: job 501 pending for 30 s (Resources)",
        "Trial #1: job 501 running",
        "Trial #0: job 500 requeued, pending (BeginTime)",
        "Trial #0: job 500 pending for 2 s (JobHeldAdmin)",  # the next state check
        "Trial #2: job 502 requeued",
    ]


@pytest.mark.parametrize(("timeout_min", "delay_s", "warned"), [(3, 120, True), (4, 120, False), (10, 500, True)])
def test_a_time_limit_that_leaves_little_before_the_pre_timeout_signal_is_warned_of(
    timeout_min: int, delay_s: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14: with timeout_min=3 and the default signal_delay_s=120, Slurm (which may signal up to
    60 s early) can signal as a job starts; only timeout_min <= 2 was refused, with no word below that."""
    from types import SimpleNamespace

    from hydra_sigopt.runners.executor import check_time_limits

    caplog.set_level("WARNING", logger="hydra_sigopt")
    check_time_limits(SimpleNamespace(params={"timeout_min": timeout_min, "signal_delay_s": delay_s}))
    lines = [r.getMessage() for r in caplog.records]
    assert bool(lines) is warned, lines
    if warned:
        assert f"as little as {timeout_min * 60 - delay_s - 60} s" in lines[0]
        assert "hydra.launcher.signal_delay_s" in lines[0]


def test_a_resume_cancel_with_the_controller_down_is_a_failed_cancel_not_an_ended_job(slurm: FakeSlurm) -> None:
    """cancel_running (a resumed sweep's cancel of jobs it does not track) took an squeue that could
    not be asked for an empty queue: every job counted as ended, and none was cancelled or said."""
    slurm.set_state("310", "RUNNING")
    slurm.set_state("311", "COMPLETED")
    slurm.controller_down()
    done = cancel_running("slurm", ["310"])
    assert done.already_gone == () and set(done.failed) == {"310"}
    slurm.controller_down(False)
    done = cancel_running("slurm", ["310", "311"])
    assert (done.cancelled, done.already_gone) == (("310",), ("311",))
    assert slurm.state("310") == "CANCELLED by 0"


def test_held_slots_count_slurm_jobs_until_they_are_over_and_while_slurm_cannot_say(slurm: FakeSlurm) -> None:
    """A resumed sweep holds the slots of jobs stopped before its restart until they are gone: one
    squeue call for all of them; a job squeue still lists as over (CANCELLED, for MinJobAge) or
    has forgotten frees its slot; one it cannot be asked about keeps it (not knowing is no sign
    that a job ended)."""
    slurm.set_state("320", "RUNNING")
    slurm.set_state("321", "COMPLETING")
    slurm.set_state("322", "CANCELLED")
    assert slurm_jobs_not_ended(["320", "321", "322", "323"]) == ["320", "321"]
    assert len(slurm.calls("squeue")) == 1
    assert slurm_jobs_not_ended(["323"]) == []  # forgotten: "Invalid job id specified"
    slurm.controller_down()
    assert slurm_jobs_not_ended(["320", "322"]) == ["320", "322"]


@pytest.mark.parametrize("cluster", [None, "gpu"], ids=["one-cluster", "multi-cluster"])
def test_the_driver_job_s_id_is_read_from_sbatch_parsable_answer(slurm: FakeSlurm, cluster: str | None) -> None:
    """The driver is submitted with ``sbatch --parsable``, which prints the bare id, or ``N;cluster``
    on a multi-cluster setup. The fake printed ``Submitted batch job N`` whatever the flags (real
    sbatch's answer without ``--parsable``), so a test through it would have taken that line for the id."""
    slurm.on_cluster(cluster)
    job_id = driver._sbatch("#!/bin/sh\ntrue\n", os.environ)
    assert job_id == "1000" and slurm.state(job_id) == "PENDING"
    plain = subprocess.run(["sbatch"], input="#!/bin/sh\ntrue\n", capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == "Submitted batch job 1001" + ("" if cluster is None else f" on cluster {cluster}")
