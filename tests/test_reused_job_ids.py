"""A local job whose id (its process id) an earlier job of the same sweep had, with real submitit_local jobs.

A submitit_local job's id is the pid of its controller, and its folder is ``.submitit/<id>``. The
system reuses pids (``pid_max`` is 32768 here), so a long sweep can give a new trial's job the id,
and then the folder, of an earlier trial's job, whose result file is still there. The sweeper must
record the new trial's own value, and keep the earlier result.

The reuse is made real, not simulated: just before the sweeper starts trial #1's job controller, a
hook in the sweeper's process writes ``/proc/sys/kernel/ns_last_pid`` so that the kernel hands out
trial #0's (ended) controller's pid again, as it does on its own when pids wrap.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE_APP, SUBMITIT_LOCAL, run_example

NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

#: Loaded in the sweeper's process only (the variable is gone from the environment its jobs get).
HOOK = """
import os
import subprocess

if os.environ.pop("TEST_REUSE_THE_FIRST_JOBS_PID", None):
    _controllers = []
    _popen_init = subprocess.Popen.__init__

    def _init(self, args, *rest, **kwargs):
        command = args if isinstance(args, str) else " ".join(map(str, args))
        controller = "submitit.local._local" in command
        first = _controllers[0] if _controllers else None
        if controller and first is not None and not _controllers[1:] and first.poll() is not None:
            # The first job's controller has ended and is reaped: its pid is free for the next process.
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(first.pid - 1))
            _controllers.append(None)
        _popen_init(self, args, *rest, **kwargs)
        if controller and not _controllers:
            _controllers.append(self)

    subprocess.Popen.__init__ = _init
"""

needs_root = pytest.mark.skipif(
    not os.access(NS_LAST_PID, os.W_OK), reason="needs root to choose the next pid (/proc/sys/kernel/ns_last_pid)"
)


def cross_validated_mse(alpha: float, l1_ratio: float) -> float:
    """What the example app returns for these values (its defaults otherwise)."""
    spec = importlib.util.spec_from_file_location("example_train", EXAMPLE_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return float(module.cross_validated_mse(alpha, l1_ratio, folds=5, max_iter=10000))


@needs_root
@pytest.mark.parametrize("warm_jobs", [0, 1], ids=["cold_job", "warm_job"])
def test_a_trial_whose_job_gets_an_earlier_jobs_id_records_its_own_value(workdir: Path, warm_jobs: int) -> None:
    """One at a time: the first job started after trial #0's ended (a trial's own job, or a warm job
    that a trial is then given) gets trial #0's job's id."""
    hook_dir = workdir / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    path = os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH")) if p)
    for attempt in range(3):  # another process of the machine may take the pid first: try again
        (workdir / f"try{attempt}").mkdir()
        run = run_example(
            workdir / f"try{attempt}",
            *SUBMITIT_LOCAL,
            "hydra.sweeper.observation_budget=4",
            "hydra.sweeper.parallel_bandwidth=1",
            f"hydra.sweeper.warm_jobs={warm_jobs}",
            env={"TEST_REUSE_THE_FIRST_JOBS_PID": "1", "PYTHONPATH": path},
        ).assert_ok()
        first, *later = run.trials
        if any(t["job_id"] == first["job_id"] for t in later):
            break
    else:
        pytest.fail(f"no later trial's job got trial #0's pid: {[t['job_id'] for t in run.trials]}")
    for trial in run.trials:
        own = cross_validated_mse(float(trial["param.alpha"]), float(trial["param.l1_ratio"]))
        assert float(trial["value.mse"]) == pytest.approx(own), (trial, run.trials, run.output[-3000:])
    kept = list((run.sweep_dir / ".submitit" / first["job_id"]).glob(f"{first['job_id']}_0_result.pkl*"))
    assert len(kept) == 2, f"the earlier job's result is kept beside the new one's: {kept}"


def test_only_an_earlier_jobs_files_are_set_aside_each_task_s_and_none_deleted(tmp_path: Path) -> None:
    """Without root: a two-task job's folder holding an earlier job's results (and a half-written one),
    and a result of the job's own that is newer than its submission."""
    import submitit

    from hydra_sigopt.runners.ended_job import results_written, set_aside_an_earlier_jobs_results

    job = submitit.LocalJob(folder=tmp_path / "%j", job_id="4242", tasks=(0, 1))
    folder = tmp_path / "4242"
    folder.mkdir()
    hour_ago = time.time() - 3600
    earlier = [folder / "4242_0_result.pkl", folder / "4242_1_result.pkl", folder / "4242_1_result.pkl.save_tmp"]
    for path in earlier:
        path.write_bytes(f"earlier job's {path.name}".encode())
        os.utime(path, (hour_ago, hour_ago))
    job.paths.submitted_pickle.write_bytes(b"this job's call")
    set_aside_an_earlier_jobs_results(job)
    assert not any(path.exists() for path in earlier) and not results_written(job)
    kept = sorted(p.read_text() for p in folder.glob("*.earlier-job-*"))
    assert kept == sorted(f"earlier job's {path.name}" for path in earlier)

    own = folder / "4242_0_result.pkl"  # the job's own, newer than its submitted pickle: left alone
    own.write_bytes(b"its own")
    later = job.paths.submitted_pickle.stat().st_mtime + 1
    os.utime(own, (later, later))
    set_aside_an_earlier_jobs_results(job)
    assert own.read_bytes() == b"its own"
