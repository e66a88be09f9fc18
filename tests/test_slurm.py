"""On a real Slurm cluster (scripts/slurm-up.sh): async slots, failures, scancel, time limits.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (set by
.ci/run), in which case a missing cluster is a failure.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLE_APP,
    AppRun,
    finish_example,
    running_job_ids,
    start_example,
    trial_states,
    wait_for_results,
)
from small_apps import write_app

from hydra_sigopt.journal import Journal, Trial
from hydra_sigopt.runners import SubmititRunner

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _slurm_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not installed (start a cluster with: sudo bash scripts/slurm-up.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if out.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split()):
        return f"no usable Slurm node (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    problem = _slurm_problem()
    # A node whose last jobs are still "completing" (their cleanup, seconds after they ended: seen
    # in CI right after the early-stopping module, whose stopped jobs end as its sweep does) is
    # usable once that is over. So is an idle node the backfill scheduler marked "planned" for a job
    # of 2 CPUs (seen in a fresh-clone run right after the early-stopping module's multi-task test,
    # failing every test of the next 3 modules): it clears by the next backfill cycle (30 s).
    deadline = time.time() + 120
    while problem and ("completing" in problem or "planned" in problem) and time.time() < deadline:
        time.sleep(1)
        problem = _slurm_problem()
    if problem:
        if os.environ.get("HYDRA_SIGOPT_REQUIRE_SLURM") == "1":
            pytest.fail(f"HYDRA_SIGOPT_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def no_jobs_left_behind(tmp_path: Path) -> Iterator[None]:
    """A test that fails midway must not leave its jobs holding the node for the tests after it:
    cancel the jobs submitted from its folder (every sweep here runs there)."""
    yield
    try:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, timeout=60)
        jobs = [line.partition(" ") for line in queue.stdout.splitlines()]
        left = [job for job, _, cwd in jobs if cwd.startswith(str(tmp_path))]
        if left:
            subprocess.run(["scancel", *left], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no cluster to clean up (the test was skipped, or its controller is down)


SLURM = (
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
)


def _start(workdir: Path, *overrides: str) -> tuple[subprocess.Popen[str], Path]:
    return start_example(workdir, *SLURM, *overrides)


def _sweep(workdir: Path, *overrides: str) -> tuple[Any, list[Trial]]:
    """A whole sweep of the example app on Slurm that ends well: its run and its journal's trials."""
    proc, sweep_dir = _start(workdir, *overrides)
    try:
        run = finish_example(proc, sweep_dir)
    finally:
        proc.kill()
    run.assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        return run, journal.trials()


def _job_id_of(sweep_dir: Path, number: int, timeout: float = 120) -> str:
    """Wait until trial ``number`` is running on Slurm; return its Slurm job id."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job_id = running_job_ids(sweep_dir, 1, timeout=timeout).get(number)
        if job_id:
            state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
            if state.stdout.strip() == "RUNNING":
                return job_id
        time.sleep(0.5)
    raise AssertionError(f"trial {number} never ran on Slurm")


def test_eight_trials_three_slots_with_a_raise_and_an_scancel(tmp_path: Path) -> None:
    proc, sweep_dir = _start(
        tmp_path,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=8",
        "hydra.sweeper.parallel_bandwidth=3",
        "fail_mode=raise",
        "fail_jobs=[2]",
        "sleep_s=300",
        "sleep_jobs=[1]",
    )
    try:
        job_id = _job_id_of(sweep_dir, 1)
        subprocess.run(["scancel", job_id], check=True)
        run = finish_example(proc, sweep_dir)
    finally:
        proc.kill()
    run.assert_ok()
    assert "async (one submitit 'slurm' job per trial)" in run.output
    trials = {int(t["number"]): t for t in run.trials}
    assert sorted(trials) == list(range(8))
    assert trials[1]["state"] == "failed" and trials[1]["job_id"] == job_id
    assert "CANCELLED" in trials[1]["failure_reason"]
    assert trials[2]["state"] == "failed" and "RuntimeError: fail_mode=raise" in trials[2]["failure_reason"]
    assert all(trials[n]["state"] == "completed" for n in (0, 3, 4, 5, 6, 7))
    # Every trial ran as its own Slurm job, recorded with its id.
    ids = [t["job_id"] for t in trials.values()]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == 8
    # The slots were kept busy: while trial 1 hung, the other trials went through the other two slots.
    assert run.results["trials"] == {"total": 8, "completed": 6, "failed": 2, "stopped": 0, "running": 0}


#: Trial #0 runs until the test lets it end (the go file); the other trials end at once.
FIRST_TRIAL_WAITS_FOR_GO = """\
import pathlib
import time
go = pathlib.Path(os.environ["GO_FILE"])
while job_num() == 0 and not go.exists():
    time.sleep(0.2)
return cfg.x
"""


def test_a_long_trial_does_not_hold_up_the_other_slots(tmp_path: Path) -> None:
    """No batch barrier on Slurm: while trial 0 runs long, the two other slots keep taking trials.
    Trial 0 runs until trials 1-6 have ended (or a deadline passed), not for a fixed time that must
    outlast them on a loaded machine."""
    go = tmp_path / "go"
    app = write_app(tmp_path, FIRST_TRIAL_WAITS_FOR_GO, budget=7)
    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.parallel_bandwidth=3",
        app=app,
        env={"GO_FILE": str(go)},
    )
    try:
        _wait_for_the_others_to_end(sweep_dir, first=0, others=6, timeout=300)
        go.touch()
        run = finish_example(proc, sweep_dir)
    finally:
        go.touch()
        proc.kill()
    run.assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    assert [t.state for t in trials] == ["completed"] * 7
    # Trials 1-6 started and ended while trial 0 ran (batches of 3 would have held 3-5 back until it ended).
    assert all(t.started_at and t.ended_at and t.ended_at < trials[0].ended_at for t in trials[1:]), [
        (t.number, t.started_at, t.ended_at) for t in trials
    ]


def _wait_for_the_others_to_end(sweep_dir: Path, first: int, others: int, timeout: float) -> None:
    """Wait until ``others`` trials besides ``first`` completed, or ``timeout`` passed (a batch
    barrier holds them back: the assertions after the sweep then say so)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            states = trial_states(sweep_dir)
        except Exception:
            states = {}  # no journal yet
        if sum(state == "completed" for n, (state, _, _) in states.items() if n != first) >= others:
            return
        time.sleep(0.5)


def test_a_trial_over_its_time_limit_is_one_failed_observation(tmp_path: Path) -> None:
    # Slurm signals the job signal_delay_s before its limit; with no requeue left (max_num_timeout=0,
    # the launcher's default) submitit gives up and the trial is one failed observation.
    proc, sweep_dir = _start(
        tmp_path,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=20",
        "hydra.launcher.max_num_timeout=0",
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=3",
        "sleep_s=600",
        "sleep_jobs=[0]",
    )
    run = finish_example(proc, sweep_dir)
    run.assert_ok()
    trials = {int(t["number"]): t for t in run.trials}
    assert sorted(trials) == [0, 1, 2]
    assert trials[0]["state"] == "failed"
    assert trials[0]["failure_reason"].startswith(
        "TIMEOUT: time limit reached: Slurm sent its pre-timeout signal (due signal_delay_s=20 s before the "
        "limit hydra.launcher.timeout_min=1; Slurm may send it up to 60 s earlier)"
    )
    assert trials[1]["state"] == trials[2]["state"] == "completed"
    log = (sweep_dir / ".submitit" / trials[0]["job_id"] / f"{trials[0]['job_id']}_0_log.err").read_text()
    assert "this job is timed-out" in log


LOGGING_TO_A_SLOW_STREAM = """
if job_num() != 0:
    return (cfg.x - 1) ** 2
import logging, time

class SlowStream:  # a log on a slow shared file system: most of the job's time is spent writing it
    def write(self, text):
        time.sleep(0.2)

    def flush(self):
        pass

log = logging.getLogger("training")
log.addHandler(logging.StreamHandler(SlowStream()))
log.setLevel(logging.INFO)
for step in range(10_000):
    log.info("step %d", step)
"""


def test_a_trial_logging_when_its_time_limit_comes_still_ends_at_the_pre_timeout_signal(tmp_path: Path) -> None:
    # Slurm's pre-timeout signal lands while the app is inside logging (as it did once in this
    # suite while submitit logged the SIGCONT Slurm sends with it): submitit's give-up used to be
    # an Exception raised there, which logging swallows ("--- Logging error ---"); the job then ran
    # on to Slurm's hard kill at the limit and its reason was the generic one.
    app = write_app(tmp_path, LOGGING_TO_A_SLOW_STREAM, budget=3)
    proc, sweep_dir = start_example(
        tmp_path,
        *SLURM,
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=25",
        "hydra.launcher.max_num_timeout=0",
        "hydra.sweeper.parallel_bandwidth=3",
        app=app,
    )
    run = finish_example(proc, sweep_dir)
    run.assert_ok()
    trials = {int(t["number"]): t for t in run.trials}
    assert trials[0]["state"] == "failed"
    pre_timeout = "TIMEOUT: time limit reached: Slurm sent its pre-timeout signal (due signal_delay_s=25 s"
    assert trials[0]["failure_reason"].startswith(pre_timeout)
    assert trials[1]["state"] == trials[2]["state"] == "completed"
    log = (sweep_dir / ".submitit" / trials[0]["job_id"] / f"{trials[0]['job_id']}_0_log.err").read_text()
    assert "--- Logging error ---" not in log


def test_example_cluster_config_runs_its_setup_lines_in_each_job(tmp_path: Path) -> None:
    # The README's launcher config (example_app/conf/hydra/launcher/cluster.yaml), adapted to this
    # cluster: no GPUs or accounts here, and a setup line we can see instead of `module load`.
    sweep_dir = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(EXAMPLE_APP),
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra/launcher=cluster",
        "hydra.launcher.partition=debug",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.account=null",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.setup=[echo setup-line-ran]",
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=2",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    run = AppRun(proc, sweep_dir)
    for t in run.trials:
        assert t["state"] == "completed"
        job = sweep_dir / ".submitit" / t["job_id"]
        script = (job / f"{t['job_id']}_submission.sh").read_text()
        assert "#SBATCH --partition=debug" in script and "#SBATCH --mail-type=FAIL" in script
        assert "setup-line-ran" in (job / f"{t['job_id']}_0_log.out").read_text()


def test_sweeper_killed_while_slurm_jobs_run_reattaches_to_them(tmp_path: Path) -> None:
    overrides = (
        "hydra.launcher.timeout_min=5",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=8",
        "sleep_jobs=[0,1]",
    )
    proc, sweep_dir = _start(tmp_path, *overrides)
    ids = {n: _job_id_of(sweep_dir, n) for n in (0, 1)}
    proc.kill()  # SIGKILL: no clean-up at all
    proc.communicate()
    # The Slurm jobs outlive their sweeper.
    for job_id in ids.values():
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
        assert state.stdout.strip() in ("RUNNING", "COMPLETING", "")
    proc2, _ = _start(tmp_path, *overrides)
    run = finish_example(proc2, sweep_dir).assert_ok()
    for number, job_id in ids.items():
        assert f"Trial #{number}: re-attached to job {job_id}" in run.output
    trials = {int(t["number"]): t for t in run.trials}
    assert sorted(trials) == [0, 1, 2, 3]
    assert all(t["state"] == "completed" for t in trials.values())
    assert trials[0]["job_id"] == ids[0] and trials[1]["job_id"] == ids[1]


def test_sbatch_refusing_a_job_stops_the_sweep_with_the_way_to_continue(tmp_path: Path) -> None:
    proc, sweep_dir = start_example(
        tmp_path, *SLURM[:1], "hydra.launcher.partition=no_such_partition", "hydra.sweeper.observation_budget=2"
    )
    run = finish_example(proc, sweep_dir, timeout=120)
    assert run.proc.returncode != 0
    assert "the sweep stopped on FailedJobError" in run.output and "no_such_partition" in run.output.lower()
    assert "Continue this sweep with:" in run.output
    # No job of it ever existed: it was never submitted (not cancelled), and a resume submits it.
    assert "was never submitted" in run.output and "cancelled" not in run.output, run.output[-3000:]
    with Journal.open(sweep_dir, readonly=True) as j:
        assert {t.state for t in j.trials()} == {"pending"}


def test_warm_jobs_on_slurm_take_trials_and_are_retired(tmp_path: Path) -> None:
    """Opt-in warm jobs on Slurm: queued ahead of their trial, claimed through the shared folder."""
    proc, sweep_dir = _start(
        tmp_path,
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=5",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.warm_jobs=1",
        "sleep_s=4",
    )
    try:
        run = finish_example(proc, sweep_dir)
    finally:
        proc.kill()
    run.assert_ok()
    trials = run.trials
    assert [t["state"] for t in trials] == ["completed"] * 5
    logs = {
        t["job_id"]: "".join(p.read_text() for p in (sweep_dir / ".submitit" / t["job_id"]).glob("*_log.*"))
        for t in trials
    }
    warm = [t["number"] for t in trials if f"Warm job runs trial #{t['number']}" in logs[t["job_id"]]]
    assert warm, "no trial ran in a warm job"
    # No job of this sweep is left in the queue: unused warm jobs were told to end.
    deadline = time.time() + 30
    while time.time() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %o"], capture_output=True, text=True).stdout
        if str(sweep_dir) not in queue:
            break
        time.sleep(1)
    assert str(sweep_dir) not in queue, queue


def test_a_journaled_job_unknown_to_slurm_is_rerun_not_waited_for(tmp_path: Path) -> None:
    """After a restart, a trial whose Slurm job is gone from accounting and queue is re-run."""
    overrides = (
        "hydra.launcher.timeout_min=5",
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=1",
        "sleep_s=60",
        "sleep_jobs=[0]",
    )
    proc, sweep_dir = _start(tmp_path, *overrides)
    job_id = _job_id_of(sweep_dir, 0)
    proc.kill()
    proc.communicate()
    subprocess.run(["scancel", job_id], check=True)
    # As if Slurm's accounting had been purged: the journal names a job Slurm never heard of.
    import sqlite3

    db = sqlite3.connect(sweep_dir / "sigopt_journal.sqlite")
    with db:
        db.execute("UPDATE trials SET job_id = '99999999' WHERE number = 0")
    db.close()
    proc2, _ = _start(tmp_path, *overrides)
    run = finish_example(proc2, sweep_dir, timeout=300).assert_ok()
    assert "Trial #0 is re-run under a new job number: its job 99999999 is gone without a result" in run.output
    trials = {int(t["number"]): t for t in run.trials}
    assert trials[0]["state"] == "abandoned"
    assert [t["state"] for n, t in sorted(trials.items()) if n > 0] == ["completed"] * 3


def test_queued_warm_jobs_are_scancelled_on_ctrl_c_not_left_to_start(tmp_path: Path) -> None:
    """Warm jobs queued behind a full allocation are cancelled with the trials, before they start."""
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout.split()[0])
    half_the_node = (*(o for o in SLURM if "cpus_per_task" not in o), f"hydra.launcher.cpus_per_task={cpus // 2}")
    proc, sweep_dir = start_example(
        tmp_path,
        *half_the_node,  # two trials fill the node: the warm jobs wait in the queue
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.observation_budget=6",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.warm_jobs=2",
        "sleep_s=60",
    )
    try:
        trial_jobs = set(running_job_ids(sweep_dir, 2).values())
        deadline = time.time() + 60
        # Job folders only: submitit's temporary pickles beside them have hex names, often starting with a digit.
        while len(warm := {p.name for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()} - trial_jobs) < 2:
            assert time.time() < deadline, "no warm jobs were queued"
            time.sleep(0.5)
        queued = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(warm)], capture_output=True, text=True)
        assert sorted(queued.stdout.split()[1::2]) == ["PENDING", "PENDING"], queued.stdout
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "Continue this sweep with" in out
    deadline = time.time() + 60
    while True:
        acct = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(warm)], capture_output=True, text=True
        )
        states = dict(line.split("|")[:2] for line in acct.stdout.splitlines() if line.strip())
        if (len(states) == 2 and all(s.startswith("CANCELLED") for s in states.values())) or time.time() > deadline:
            break
        time.sleep(1)
    assert {s.split()[0] for s in states.values()} == {"CANCELLED"}, states
    assert not [p for w in warm for p in (sweep_dir / ".submitit" / w).glob("*_log.*")], "a warm job started"


# Issue 14, defect 2: stopping threw away finished work (results written 12-16 s before the stop).
FINISHING = (
    "hydra.launcher.timeout_min=5",
    "hydra.sweeper.observation_budget=4",
    "hydra.sweeper.parallel_bandwidth=2",
    "sleep_s=5",
    "sleep_jobs=[0,1]",
)


def test_a_stop_records_the_trials_whose_slurm_jobs_finished_meanwhile(tmp_path: Path) -> None:
    """The sweeper is busy (here: frozen, as while sbatch hangs) while its jobs write their results; then
    it is told to stop: those trials are recorded and posted, not reported as cancelled."""
    proc, sweep_dir = _start(tmp_path, *FINISHING)
    try:
        ids = {n: _job_id_of(sweep_dir, n) for n in (0, 1)}
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for_results(sweep_dir, ids)
        os.kill(proc.pid, signal.SIGTERM)  # what hydra-sigopt kill sends
        os.kill(proc.pid, signal.SIGCONT)
        run = finish_example(proc, sweep_dir, timeout=180)
    finally:
        proc.kill()
    assert run.proc.returncode != 0 and "Continue this sweep with" in run.output
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}, run.output[-3000:]
    assert "Trials [0, 1] had finished: their results are recorded" in run.output


def _file_server_behind(sweep_dir: Path, ids: dict[int, str], seconds: float) -> None:
    """Stamp the jobs' result files as a file server whose clock runs ``seconds`` behind the sweeper
    host's would have (a result file's time is the server's; the journal's times are the host's)."""
    for job_id in ids.values():
        result = sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl"
        at = result.stat().st_mtime - seconds
        os.utime(result, (at, at))


# An hour: NTP-less nodes drift that far; a minute behind is already longer than these trials.
CLOCKS = pytest.mark.parametrize(
    "file_server_behind_s", [0, 3600, -3600], ids=["same_clock", "file_server_behind", "file_server_ahead"]
)


@CLOCKS
def test_kill_on_a_dead_driver_leaves_finished_slurm_jobs_to_the_resume(
    tmp_path: Path, file_server_behind_s: float
) -> None:
    proc, sweep_dir = _start(tmp_path, *FINISHING)
    try:
        ids = {n: _job_id_of(sweep_dir, n) for n in (0, 1)}
        proc.kill()  # SIGKILL: the driver is dead; its Slurm jobs run on and finish
        proc.communicate()
        wait_for_results(sweep_dir, ids)
    finally:
        proc.kill()
    _file_server_behind(sweep_dir, ids, file_server_behind_s)
    killed = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 0, killed.stderr
    for number, job_id in ids.items():
        assert f"trial #{number} job {job_id}: finished; a resumed sweep records its result" in killed.stdout
    cli = [sys.executable, "-m", "hydra_sigopt.cli"]
    status = subprocess.run([*cli, "status", str(sweep_dir)], capture_output=True, text=True, timeout=120)
    for number, job_id in ids.items():
        assert re.search(rf"#{number} +job {job_id} +ended \d", status.stdout), status.stdout  # never "ended -59m ago"
    proc2, _ = _start(tmp_path, *FINISHING)
    run = finish_example(proc2, sweep_dir, timeout=300).assert_ok()
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}, run.output[-3000:]
    assert sorted(found) == [0, 1, 2, 3], "the budget counts the two results the kill left to the resume"


@CLOCKS
def test_a_resume_uses_the_result_of_an_abandoned_trials_slurm_job(tmp_path: Path, file_server_behind_s: float) -> None:
    """A trial abandoned while its Slurm job ran on (a stop whose scancel did not reach the controller):
    the job's result, written later, is found by the resume and used."""
    proc, sweep_dir = _start(tmp_path, *FINISHING)
    try:
        ids = {n: _job_id_of(sweep_dir, n) for n in (0, 1)}
        proc.kill()
        proc.communicate()
        with Journal.open(sweep_dir) as journal:
            journal.abandon_in_flight(sorted(ids), "cancelled: the sweeper was interrupted")
        wait_for_results(sweep_dir, ids)
    finally:
        proc.kill()
    _file_server_behind(sweep_dir, ids, file_server_behind_s)
    proc2, _ = _start(tmp_path, *FINISHING)
    run = finish_example(proc2, sweep_dir, timeout=300).assert_ok()
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}, run.output[-3000:]
    assert sorted(found) == [0, 1, 2, 3]


class _SlurmLauncherParams:
    """What SubmititRunner reads of hydra-submitit-launcher's Slurm launcher (no Hydra app needed here)."""

    _EXECUTOR = "slurm"

    def __init__(self, folder: Path) -> None:
        self.params = {"submitit_folder": f"{folder}/%j", "partition": "debug", "timeout_min": 5}


def test_a_reattached_job_that_slurm_forgets_ends_as_a_failure_instead_of_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squeue failing while a sweep re-attaches: the job is waited for, and Slurm asked again later."""
    marker = tmp_path / "squeue-failed-once"
    fake = tmp_path / "bin" / "squeue"
    fake.parent.mkdir()
    fake.write_text(
        f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}\n"
        "  echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1\nfi\n"
        f'exec {shutil.which("squeue")} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    runner = SubmititRunner(_SlurmLauncherParams(tmp_path / "submitit"))
    # Not knowing is no reason to run a trial twice: wait for it.
    assert runner.reattach(0, "99999999")
    assert marker.exists()
    assert runner.wait(timeout=1) == []
    runner.unknown_recheck_s = 0  # the next check asks Slurm again, which now answers
    outcomes = runner.wait(timeout=60)
    assert [(o.number, o.ok) for o in outcomes] == [(0, False)]
    assert "neither Slurm's queue nor its accounting knows this job" in (outcomes[0].reason or "")


def test_array_parallelism_caps_the_trials_running_at_once(tmp_path: Path) -> None:
    # The launcher's cap on how many of a sweep's jobs run at once: users set it to keep to their
    # share of a cluster. The sweeper submits one job per trial (no array), so it must apply it.
    run, trials = _sweep(
        tmp_path,
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.array_parallelism=1",
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=3",
        "sleep_s=4",
    )
    assert [t.state for t in trials] == ["completed"] * 3
    # One at a time: each trial started after the one before it ended.
    spans = [(t.number, t.started_at, t.ended_at) for t in trials]
    assert all(b[1] >= a[2] for a, b in itertools.pairwise(spans)), spans
    assert "hydra.launcher.array_parallelism=1 caps the trials running at once: 1, not parallel_bandwidth 3" in (
        run.output
    )
