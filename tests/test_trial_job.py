"""The job side of a trial's submitit job (hydra_sigopt.runners.trial_job), in a job's environment.

The real requeues are in tests/test_slurm_requeue.py; these are the cases a cluster does not make
on demand: a stale result of an earlier job with the same id, and a multi-task job.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hydra_sigopt.runners.trial_job import TrialJob


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def __call__(self, *args: object) -> str:
        self.calls.append(args)
        return "ran"


@pytest.fixture
def slurm_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of task 0 of two of Slurm job 42 (submitit folder ``tmp_path/42``), submitted."""
    folder = tmp_path / "42"
    folder.mkdir()
    env = {"SUBMITIT_FOLDER": str(tmp_path / "%j"), "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "42"}
    env |= {"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)  # a first run
    (folder / "42_submitted.pkl").write_bytes(b"")
    return folder


def test_a_job_whose_trial_wrote_no_result_runs_it(slurm_job: Path) -> None:
    launcher = RecordingLauncher()
    assert TrialJob(launcher)(["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {}) == "ran"
    assert len(launcher.calls) == 1


def test_a_job_started_again_after_another_task_of_it_wrote_its_result_ends_at_once(
    slurm_job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # Slurm started it again
    (slurm_job / "42_1_result.pkl").write_bytes(b"")  # task 1's: task 0 alone would wait for it forever
    launcher = RecordingLauncher()
    with pytest.raises(SystemExit) as ended:
        TrialJob(launcher)(["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    assert ended.value.code == 0 and not launcher.calls


def test_a_first_run_s_rank_that_starts_after_another_rank_ended_runs_the_trial(slurm_job: Path) -> None:
    """A loaded node starts rank 0 after rank 1 returned (seen with submitit_local): rank 1's result
    is of this run, not of an earlier one. Before, rank 0 left at once without a result, and the
    trial failed."""
    (slurm_job / "42_1_result.pkl").write_bytes(b"")
    launcher = RecordingLauncher()
    assert TrialJob(launcher)(["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {}) == "ran"
    assert len(launcher.calls) == 1


def test_a_result_older_than_the_jobs_submission_is_another_jobs_and_the_trial_runs(slurm_job: Path) -> None:
    stale = slurm_job / "42_0_result.pkl"
    stale.write_bytes(b"")
    submitted = (slurm_job / "42_submitted.pkl").stat().st_mtime
    os.utime(stale, (submitted - 3600, submitted - 3600))  # a job of a wiped cluster with the same id
    launcher = RecordingLauncher()
    assert TrialJob(launcher)(["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {}) == "ran"


def test_outside_a_job_the_launcher_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUBMITIT_FOLDER", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    launcher = RecordingLauncher()
    assert TrialJob(launcher)(["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {}) == "ran"


def test_a_requeue_signalled_after_the_result_was_written_does_not_run_the_trial_again(slurm_job: Path) -> None:
    """The time-limit or preemption signal can come while the app's exit handlers run, after the
    result is written: submitit then asks TrialJob.checkpoint for the call to requeue and rewrites
    the submitted pickle with it, so the job that Slurm starts again finds its result older than
    its submission. Found by review (a local job, SIGUSR2 from an atexit handler: result 51.303,
    pickle 51.316); that job must still not train again."""
    import pickle

    (slurm_job / "42_0_result.pkl").write_bytes(b"")  # this run's result, then the signal
    launcher = RecordingLauncher()
    args = (["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    requeued = pickle.loads(pickle.dumps(TrialJob(launcher).checkpoint(*args)))  # as submitit dumps it
    submitted = slurm_job / "42_submitted.pkl"
    later = (slurm_job / "42_0_result.pkl").stat().st_mtime + 1
    os.utime(submitted, (later, later))  # rewritten after the result
    with pytest.raises(SystemExit) as ended:
        requeued.function(*requeued.args, **requeued.kwargs)
    assert ended.value.code == 0 and not requeued.function.launcher.calls


def test_a_requeue_signalled_while_rank_0_trains_after_rank_1_returned_runs_the_trial_again(slurm_job: Path) -> None:
    """Only rank 0 is asked for the call to requeue; another rank's result made it say the trial had
    ended, and every rank of the requeued job then left, rank 0 without its result: a failed trial."""
    (slurm_job / "42_1_result.pkl").write_bytes(b"")  # rank 1 returned; rank 0 (this task) trains on
    args = (["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    requeued = TrialJob(RecordingLauncher()).checkpoint(*args)
    assert requeued.function.ended is False


@pytest.fixture
def trial_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trial's Hydra output dir, as HydraConfig gives it in the job."""
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig

    out = tmp_path / "trial_3"
    out.mkdir()
    config = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(out)))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: config))
    return out


def _keep(path: Path, value: object) -> None:
    import cloudpickle

    path.write_bytes(cloudpickle.dumps(value))


def test_a_multi_task_job_requeued_after_rank_0_kept_its_value_but_not_rank_1_runs_the_app_again(
    slurm_job: Path, trial_output_dir: Path
) -> None:
    """A requeue landed after rank 0 kept its value, before rank 1 did: started again, rank 0 returned
    the kept value at once while rank 1 ran the app and waited for rank 0 to join its process group,
    until the job's time limit (found by review). Every rank runs again unless all kept theirs."""
    from hydra_sigopt.runners.returned import ValueKept

    _keep(trial_output_dir / ".value_of_job_42_0.pkl", 0.5)
    calls: list[object] = []
    assert ValueKept(lambda cfg: calls.append(cfg) or 0.25)("cfg") == 0.25
    assert calls == ["cfg"]


def test_a_multi_task_job_requeued_after_every_rank_kept_its_value_does_not_run_the_app(
    slurm_job: Path, trial_output_dir: Path
) -> None:
    from hydra_sigopt.runners.returned import ValueKept

    _keep(trial_output_dir / ".value_of_job_42_0.pkl", 0.5)
    _keep(trial_output_dir / ".value_of_job_42_1.pkl", 0.5)
    calls: list[object] = []
    assert ValueKept(lambda cfg: calls.append(cfg) or 0.25)("cfg") == 0.5
    assert calls == []
