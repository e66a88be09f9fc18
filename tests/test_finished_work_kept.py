"""Stopping keeps finished work (issue 14, defect 2), with real multiruns and submitit_local jobs.

A trial whose job wrote its result is not thrown away: a stopping sweeper records and posts it,
``hydra-sigopt kill`` on a dead driver leaves it for the resume, and a resume finds the result of
a trial that was abandoned while its job went on to finish.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import (
    SUBMITIT_LOCAL,
    finish_example,
    run_example,
    running_job_ids,
    start_example,
    trial_states,
    wait_for_results,
)

from hydra_sigopt.journal import Journal
from hydra_sigopt.processes import cancel_local_jobs, local_job_running

SWEEP = (
    *SUBMITIT_LOCAL,
    "hydra.sweeper.observation_budget=4",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.warm_jobs=0",
    "sleep_s=3",
)


def hydra_sigopt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hydra_sigopt.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_stop_records_and_posts_the_trials_whose_jobs_finished_meanwhile(workdir: Path) -> None:
    """The sweeper is busy (here: frozen) while two jobs write their results; then it is told to stop."""
    proc, sweep_dir = start_example(workdir, *SWEEP)
    try:
        ids = running_job_ids(sweep_dir, 2)
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for_results(sweep_dir, ids)
        os.kill(proc.pid, signal.SIGTERM)  # what hydra-sigopt kill sends; handled like Ctrl-C
        os.kill(proc.pid, signal.SIGCONT)
        run = finish_example(proc, sweep_dir, timeout=120)
    finally:
        proc.kill()
    assert run.proc.returncode != 0 and "Continue this sweep with" in run.output
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}, run.output[-3000:]
    assert "Running trials were cancelled: [0, 1]" not in run.output
    assert "Trials [0, 1] had finished: their results are recorded" in run.output


def driver_killed_under_jobs_that_finish(workdir: Path, *overrides: str) -> tuple[Path, dict[int, str]]:
    """The sweep dir and the job ids of trials #0 and #1, whose jobs finished after the driver was killed."""
    proc, sweep_dir = start_example(workdir, *overrides)
    try:
        ids = running_job_ids(sweep_dir, 2)
        proc.kill()  # SIGKILL: the driver is dead, its jobs run on and finish
        proc.communicate()
        wait_for_results(sweep_dir, ids)
    finally:
        proc.kill()
    return sweep_dir, ids


def test_kill_on_a_dead_driver_leaves_finished_trials_for_the_resume(workdir: Path) -> None:
    sweep_dir, ids = driver_killed_under_jobs_that_finish(workdir, *SWEEP)
    killed = hydra_sigopt("kill", sweep_dir)
    assert killed.returncode == 0, killed.stderr
    for number, job_id in ids.items():
        assert f"trial #{number} job {job_id}: finished; a resumed sweep records its result" in killed.stdout
    assert {n: trial_states(sweep_dir)[n][0] for n in ids} == {n: "running" for n in ids}
    run_example(workdir, *SWEEP, sweep_dir=sweep_dir).assert_ok()
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}
    # The budget counts them: two new trials, not four.
    assert sorted(found) == [0, 1, 2, 3] and {s for s, _, _ in found.values()} == {"completed"}


@pytest.mark.parametrize("fail_mode", ["raise", "return_nan"])
def test_kill_on_a_dead_driver_says_which_finished_trial_failed(workdir: Path, fail_mode: str) -> None:
    """A job that wrote a failure, or returned a loss gone NaN (which the resume records as a failed
    trial), was reported "finished; a resumed sweep records its result": a failure read as a result
    still to come."""
    sweep = (*SWEEP, f"fail_mode={fail_mode}", "fail_jobs=[0]")
    sweep_dir, ids = driver_killed_under_jobs_that_finish(workdir, *sweep)
    killed = hydra_sigopt("kill", sweep_dir)
    assert killed.returncode == 0, killed.stderr
    assert f"trial #0 job {ids[0]}: failed; a resumed sweep records its failure" in killed.stdout, killed.stdout
    assert f"trial #1 job {ids[1]}: finished; a resumed sweep records its result" in killed.stdout, killed.stdout
    run_example(workdir, *sweep, sweep_dir=sweep_dir).assert_ok()
    assert {n: trial_states(sweep_dir)[n][0] for n in ids} == {0: "failed", 1: "completed"}


def test_kill_cancels_a_running_job_whose_id_an_older_job_left_a_result_under(workdir: Path) -> None:
    """A local job's id is its process id, which the system reuses. A result an older process of the
    same id left in the sweep's submitit folder made kill say "finished; a resumed sweep records its
    result" and leave the running job alone (status already skipped a result older than its trial)."""
    from hydra.core.utils import JobReturn, JobStatus

    proc, sweep_dir = start_example(workdir, *SWEEP, "sleep_s=300")
    try:
        ids = running_job_ids(sweep_dir, 2)
        proc.kill()
        proc.wait()  # not communicate(): the jobs hold the driver's output pipes open while they run
        older = sweep_dir / ".submitit" / ids[0] / f"{ids[0]}_0_result.pkl"
        older.write_bytes(pickle.dumps(("success", JobReturn(status=JobStatus.COMPLETED, _return_value={"mse": 1.0}))))
        long_ago = time.time() - 3600
        os.utime(older, (long_ago, long_ago))
        killed = hydra_sigopt("kill", sweep_dir)
    finally:
        proc.kill()
    try:
        assert killed.returncode == 0, killed.stderr
        assert f"trial #0 job {ids[0]}: cancelled" in killed.stdout, killed.stdout
        assert trial_states(sweep_dir)[0][0] == "abandoned"
        deadline = time.time() + 30
        while local_job_running(ids[0]):
            assert time.time() < deadline, f"job {ids[0]} still runs after kill"
            time.sleep(0.2)
    finally:  # a failed check must not leave the jobs sleeping their 300 s
        cancel_local_jobs([j for j in ids.values() if local_job_running(j)])


def test_a_resume_uses_the_result_an_abandoned_trials_job_wrote_after_all(workdir: Path) -> None:
    """A trial abandoned while its job went on (a cancel that did not reach the job, an older
    hydra-sigopt kill): its job's result is found and used, not thrown away."""
    proc, sweep_dir = start_example(workdir, *SWEEP)
    try:
        ids = running_job_ids(sweep_dir, 2)
        proc.kill()
        proc.communicate()
        with Journal.open(sweep_dir) as journal:
            journal.abandon_in_flight(sorted(ids), "cancelled by hydra-sigopt kill (scancel failed)")
        wait_for_results(sweep_dir, ids)
    finally:
        proc.kill()
    run = run_example(workdir, *SWEEP, sweep_dir=sweep_dir).assert_ok()
    found = trial_states(sweep_dir)
    assert {n: found[n] for n in ids} == {n: ("completed", j, True) for n, j in ids.items()}
    assert sorted(found) == [0, 1, 2, 3] and {s for s, _, _ in found.values()} == {"completed"}
    for number, job_id in ids.items():
        assert f"Trial #{number} was abandoned, but its job {job_id} finished with a result" in run.output


def test_a_stop_on_failures_tells_the_failed_trials_it_kept_from_the_finished_ones(workdir: Path) -> None:
    """Trials #0 and #1 fail at once and stop the sweep (max_failure_rate); the sweeper is frozen as it
    records #1 while #2 fails and #3 finishes. Its message said "Trials [2, 3] had finished", which
    read as two successes."""
    proc, sweep_dir = start_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=4",
        "hydra.sweeper.warm_jobs=0",
        "hydra.sweeper.max_failure_rate=0.2",
        "fail_mode=raise",
        "fail_jobs=[0,1,2]",
        "sleep_s=15",
        "sleep_jobs=[2,3]",
        env={"HYDRA_SIGOPT_CRASH_AT": "after_result:2:STOP"},  # frozen as it records the second failure
    )
    try:
        ids = running_job_ids(sweep_dir, 4)
        deadline = time.time() + 120
        while not (proc.poll() is not None or _stopped(proc.pid)):
            assert time.time() < deadline, "the sweeper never froze as it recorded its second result"
            time.sleep(0.2)
        assert {n: s for n, (s, _, _) in trial_states(sweep_dir).items() if n in (2, 3)} == {2: "running", 3: "running"}
        wait_for_results(sweep_dir, {n: ids[n] for n in (2, 3)})
        os.kill(proc.pid, signal.SIGCONT)
        run = finish_example(proc, sweep_dir, timeout=120)
    finally:
        proc.kill()
    assert "max_failure_rate=0.2 exceeded" in run.output, run.output[-3000:]
    assert "Trials #2 failed; #3 finished: their results are recorded." in run.output, run.output[-3000:]
    assert {n: s for n, (s, _, _) in trial_states(sweep_dir).items()} == {
        0: "failed",
        1: "failed",
        2: "failed",
        3: "completed",
    }


def _stopped(pid: int) -> bool:
    """Whether the process is frozen (SIGSTOP): state T in /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_kill_tells_a_failure_whose_exception_or_value_the_app_defines(tmp_path: Path) -> None:
    """kill read a job's whole result to tell a failure: an exception class of the app's own module
    (not importable by the command) made it say "finished; ... records its result" again, and any
    value it read ran the app's unpickling code. It reads the outcome from the pickle's opcodes now,
    unpickling nothing."""
    import cloudpickle
    from hydra.core.utils import JobReturn, JobStatus, setup_globals
    from omegaconf import OmegaConf

    from hydra_sigopt.cli import _wrote_failure

    app_module = types.ModuleType("a_users_train_module")
    diverged = type("DivergedError", (RuntimeError,), {"__module__": app_module.__name__})
    model = type("Model", (), {"__module__": app_module.__name__})
    app_module.DivergedError, app_module.Model = diverged, model  # type: ignore[attr-defined]
    sys.modules[app_module.__name__] = app_module
    try:
        # As Hydra's JobReturn has it: its ${now:} resolved once, kept in the config's resolver cache.
        setup_globals()  # Hydra's resolvers, ${now:} among them
        cfg = OmegaConf.create({"model": {"lr": 0.1}, "run": "${now:%H-%M-%S}"})
        assert cfg.run
        results = {
            "11": ("success", JobReturn(cfg=cfg, status=JobStatus.FAILED, _return_value=diverged("loss is nan"))),
            "12": ("success", JobReturn(cfg=cfg, status=JobStatus.COMPLETED, _return_value=model())),
            "13": ("error", "Traceback (most recent call last): ..."),
        }
        for job_id, result in results.items():
            (tmp_path / f"{job_id}_0_result.pkl").write_bytes(pickle.dumps(result))
        # As submitit saves it (cloudpickle): an exception class of the app's train.py, pickled by value.
        in_train_py = type("LossIsNan", (RuntimeError,), {"__module__": "__main__"})
        failed = ("success", JobReturn(cfg=cfg, status=JobStatus.FAILED, _return_value=in_train_py("nan")))
        (tmp_path / "14_0_result.pkl").write_bytes(cloudpickle.dumps(failed))
        results["14"] = failed
        # A config over 64 KB whose pickle frame ends between JobStatus's module and name, and a
        # JobStatus in the config before the job's own (a review's cases: both read as finished).
        long = JobReturn(overrides=["y" * 65407], cfg=cfg, status=JobStatus.FAILED)
        (tmp_path / "15_0_result.pkl").write_bytes(cloudpickle.dumps(("success", long), protocol=5))
        with_status = OmegaConf.create({"last_status": JobStatus.COMPLETED})
        failed_too = JobReturn(cfg=with_status, status=JobStatus.FAILED)
        (tmp_path / "16_0_result.pkl").write_bytes(cloudpickle.dumps(("success", failed_too)))
        results.update({"15": ("success", long), "16": ("success", failed_too)})
        # Completed, with a value the resume records as a failure (a loss gone NaN, in a dict as the
        # example's or alone; no return at all) or as a result (a number; a value of a class: unread).
        returned = {"17": {"mse": float("nan"), "fit_seconds": 0.5}, "18": float("inf"), "19": None}
        returned.update({"20": {"mse": 0.25, "fit_seconds": 0.5}, "21": 0.25, "22": model()})
        for job_id, value in returned.items():
            completed = JobReturn(cfg=cfg, status=JobStatus.COMPLETED, _return_value=value)
            (tmp_path / f"{job_id}_0_result.pkl").write_bytes(cloudpickle.dumps(("success", completed)))
            results[job_id] = ("success", completed)
    finally:
        del sys.modules[app_module.__name__]
    identity = {"metrics": [{"name": "mse", "objective": "minimize"}]}
    meta = {"launcher": "local", "submitit_folder": str(tmp_path), "identity": identity}
    said_failed = {job_id: _wrote_failure(meta, job_id) for job_id in results}
    assert said_failed == {
        **{"11": True, "12": False, "13": True, "14": True, "15": True, "16": True},
        **{"17": True, "18": True, "19": True, "20": False, "21": False, "22": False},
    }
