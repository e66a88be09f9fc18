"""The async scheduler relies on hydra-submitit-launcher internals: fail loudly if they change."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf


def test_base_queue_keys_match_the_launcher() -> None:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from hydra_sigopt.runners import BASE_QUEUE_KEYS

    assert set(OmegaConf.structured(BaseQueueConf).keys()) == set(BASE_QUEUE_KEYS)


def test_launcher_call_signature_and_executor_names() -> None:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        BaseSubmititLauncher,
        LocalLauncher,
        SlurmLauncher,
    )

    params = list(inspect.signature(BaseSubmititLauncher.__call__).parameters)
    assert params == ["self", "sweep_overrides", "job_dir_key", "job_num", "job_id", "singleton_state"]
    assert LocalLauncher._EXECUTOR == "local" and SlurmLauncher._EXECUTOR == "slurm"
    source = inspect.getsource(BaseSubmititLauncher.launch)
    # The runner mirrors these steps of launch(); if launch() changes, revisit SubmititRunner.
    for fragment in (
        'init_params = {"folder": self.params["submitit_folder"]}',
        'specific_init_keys = {"max_num_timeout"}',
        "executor.update_parameters(**params)",
        '"hydra.sweep.dir"',
        'f"job_id_for_{idx}"',
        "Singleton.get_state()",
    ):
        assert fragment in source, fragment


def test_runner_recognises_submitit_launchers_only() -> None:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

    from hydra_sigopt.runners import is_submitit_launcher

    assert is_submitit_launcher(LocalLauncher(submitit_folder="x"))
    assert is_submitit_launcher(SlurmLauncher(submitit_folder="x"))
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    assert not is_submitit_launcher(BasicLauncher())


def test_submitit_job_internals_the_runner_uses() -> None:
    import submitit
    from submitit.core.core import Job

    # SubmititRunner waits out the late-result grace itself and then sets this to 0.
    assert Job._results_timeout_s == 15
    assert "force_check" in inspect.signature(Job.done).parameters
    assert submitit.LocalJob.__init__ and submitit.SlurmJob.__init__
    params = inspect.signature(submitit.SlurmJob.__init__).parameters
    assert list(params)[:4] == ["self", "folder", "job_id", "tasks"]
    # A multi-task job (DDP) keeps one sub-job per task; its tasks' result files are read one by one.
    assert [task.task_id for task in submitit.SlurmJob(folder="x", job_id="1", tasks=(0, 1))._sub_jobs] == [0, 1]
    assert submitit.SlurmJob(folder="x", job_id="1")._sub_jobs == []
    # How many tasks the executor's jobs have (to re-attach one with all of its tasks).
    slurm = submitit.SlurmExecutor(folder="x")
    slurm.update_parameters(ntasks_per_node=2, nodes=2)
    assert slurm._num_tasks() == 4


def test_submitit_result_file_is_complete_once_it_exists() -> None:
    """The runner reads a result as soon as its file exists, so submitit must write it atomically."""
    from submitit.core import submission
    from submitit.core.core import Job

    source = inspect.getsource(submission.process_job)
    assert "temporary_save_path(paths.result_pickle)" in source
    assert '("success", result)' in source and '("error", traceback.format_exc())' in source
    assert "_get_outcome_and_result" in dict(inspect.getmembers(Job))


def test_what_a_job_that_could_not_save_its_result_leaves(tmp_path: Path) -> None:
    """ended_job.tried_to_write_a_result blames the disk for a job without a result only where the job
    left submitit's temporary result file (``<result>.save_tmp``) or logged that it could not dump it."""
    from submitit.core import submission, utils

    from hydra_sigopt.runners.ended_job import _DUMP_FAILED

    with utils.temporary_save_path(tmp_path / "result.pkl") as aside:
        assert aside == tmp_path / "result.pkl.save_tmp"
        aside.write_bytes(b"x")
    assert f'logger.error(f"{_DUMP_FAILED}:' in inspect.getsource(submission.process_job)


def test_a_job_slurm_killed_at_its_time_limit_fails_as_a_timeout(tmp_path: Path) -> None:
    """The pre-timeout signal can be lost (it arrived while submitit logged another signal, seen on the
    real cluster): the job then ran to its limit without a result, and must still read as a time-out."""
    from types import SimpleNamespace

    from submitit.core.utils import UncompletedJobError

    from hydra_sigopt.runners.ended_job import death_reason as _death_reason

    job = SimpleNamespace(
        job_id="56",
        paths=SimpleNamespace(result_pickle=tmp_path / "56_0_result.pkl", stderr=tmp_path / "56_0_log.err"),
        watcher=SimpleNamespace(get_state=lambda job_id, mode: "TIMEOUT"),
    )
    reason = _death_reason(job, UncompletedJobError("Job 56 (task: 0) with path ... has not produced any output"))
    assert reason.startswith("TIMEOUT: time limit reached (hydra.launcher.timeout_min), job 56 ended without a result")


def test_submitit_gives_up_on_a_timed_out_job_from_its_signal_handler() -> None:
    """TimedTask carries this give-up through the app as a BaseException (logging swallows Exceptions
    raised inside it): it relies on the handler submitit installs for its time-out signal raising
    UncompletedJobError, and on that signal being the one ``_usr_sig`` names."""
    from submitit.core import job_environment

    handlers = inspect.getsource(job_environment.JobEnvironment._handle_signals)
    assert "signal.signal(self._usr_sig(), handler.checkpoint_and_try_requeue)" in handlers
    give_up = inspect.getsource(job_environment.SignalHandler.checkpoint_and_try_requeue)
    assert "raise utils.UncompletedJobError(message)" in give_up
    assert job_environment.JobEnvironment._usr_sig() == __import__("signal").SIGUSR2


def test_a_job_that_failed_outside_the_task_names_its_exception_not_the_message_s_last_line() -> None:
    """A code snapshot without configs/data (ignored by .gitignore): every trial failed with the
    reason "\\tprovider=schema, path=structured://", the last line of Hydra's multi-line message."""
    from types import SimpleNamespace

    from submitit.core.utils import FailedJobError

    from hydra_sigopt.runners.ended_job import death_reason

    trace = (
        "Traceback (most recent call last):\n"
        '  File "/x/submitit/core/submission.py", line 55, in process_job\n'
        "    result = delayed.result()\n"
        "hydra.errors.MissingConfigException: Could not find 'data/mnist'\n"
        "\n"
        "Available options in 'data':\n"
        "\tmnist_small\n"
        "Config search path:\n"
        "\tprovider=schema, path=structured://\n"
    )
    job = SimpleNamespace(job_id="9669")
    reason = death_reason(job, FailedJobError(f"Job (task=0) failed during processing with trace:\n{trace}"))
    assert reason == (
        "job 9669 failed outside the task: hydra.errors.MissingConfigException: Could not find 'data/mnist'"
    )


def test_the_launchers_checkpoint_requeues_its_call_unchanged() -> None:
    """TrialJob.checkpoint does what the launcher's does, for the TrialJob (the launcher's would requeue
    the bare launcher, which runs a trial again in a job Slurm requeued after it ended)."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

    source = inspect.getsource(BaseSubmititLauncher.checkpoint)
    assert "return submitit.helpers.DelayedSubmission(self, *args, **kwargs)" in source


def test_warm_jobs_count_against_array_parallelism(tmp_path: Path) -> None:
    """A warm job holds a Slurm allocation as a trial's does: with array_parallelism=1 and an
    explicit warm_jobs: 1 (which the README suggests where queueing is slow), two of the sweep's
    jobs held allocations at once (found by review). The warm pool gets what the cap leaves."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    from hydra_sigopt.runners import SubmititRunner, make_runner

    def warm_pool_size(cap: int, warm_jobs: int, bandwidth: int) -> int:
        launcher = SlurmLauncher(submitit_folder=str(tmp_path / "%j"), array_parallelism=cap, timeout_min=10)
        runner = make_runner(launcher, "async", warm_jobs, bandwidth)
        assert isinstance(runner, SubmititRunner)
        return runner.warm.size

    assert warm_pool_size(cap=1, warm_jobs=1, bandwidth=1) == 0
    assert warm_pool_size(cap=3, warm_jobs=2, bandwidth=2) == 1
    assert warm_pool_size(cap=256, warm_jobs=2, bandwidth=4) == 2  # the launcher's default: no cap meant


def test_a_forced_sacct_refresh_is_skipped_only_within_a_millisecond_of_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner forces one refresh of every job's state per 2 s; submitit skips a forced refresh that
    comes within 1 ms of real time of the last one. The fake clock of the Slurm command tests lets 2 ms
    of real time pass per sleep for this reason (tests/fake_slurm.py)."""
    from types import SimpleNamespace

    from submitit.core import core
    from submitit.slurm.slurm import SlurmInfoWatcher

    now = [1000.0]  # submitit's own clock, held still: a pause of this test must not pass for time
    monkeypatch.setattr(core, "_time", SimpleNamespace(time=lambda: now[0], sleep=lambda s: None))
    watcher = SlurmInfoWatcher()
    refreshes: list[float] = []
    watcher.update = lambda: (refreshes.append(now[0]), setattr(watcher, "_last_status_check", now[0]))  # type: ignore[method-assign]
    watcher.register_job("1")
    watcher.update_if_long_enough(mode="force")
    now[0] += 0.0009
    watcher.update_if_long_enough(mode="force")  # within 1 ms: skipped
    now[0] += 0.0011
    watcher.update_if_long_enough(mode="force")
    assert refreshes == pytest.approx([1000.0, 1000.002], abs=1e-9)
