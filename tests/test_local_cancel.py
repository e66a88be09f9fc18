"""``cancel_local_jobs`` (the sweeper's cancel on submitit_local, and ``hydra-sigopt kill``) returns
once the jobs it cancelled are gone, so the user's next ``ps`` does not show them still running, and
leaves none of the processes the app started running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
from conftest import SUBMITIT_LOCAL, running_job_ids, start_example
from small_apps import write_app

from hydra_sigopt.processes import _children, cancel_local_jobs, pid_running

_BIG_BYTES = 3 << 30  # a process this big takes a noticeable moment to die after SIGKILL


# Run by ``exec`` in the job: a builtin pickles by name, where a function of this test module would
# not load in the job (its module is not importable there).
_HOLD_BIG_MEMORY_AND_SLEEP = f"""
import time
block = bytearray({_BIG_BYTES})
for i in range(0, len(block), 4096):  # touch every page: freeing them is what takes the time
    block[i] = 1
time.sleep(600)
"""


def test_a_cancelled_local_job_and_its_task_are_gone_when_cancel_returns(tmp_path: Path) -> None:
    """Measured in CI: ``hydra-sigopt kill`` reported a job cancelled while its controller still ran
    (SIGKILL is delivered at once; the process is gone only after its memory is freed)."""
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    job = executor.submit(exec, _HOLD_BIG_MEMORY_AND_SLEEP)
    controller = int(job.job_id)
    deadline = time.time() + 60
    task = None
    while time.time() < deadline:
        children = _children(controller)
        if children and _rss_bytes(children[0]) > _BIG_BYTES // 2:
            task = children[0]
            break
        time.sleep(0.1)
    assert task is not None, "the task never allocated its memory"
    assert cancel_local_jobs([job.job_id], grace_s=0.0) == [job.job_id]
    assert not pid_running(task) and not pid_running(controller)


def _rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) * 1024


#: A trial that runs a simulator of its own and waits for it; the simulator writes its pid first.
SIMULATING_TASKS = {
    "popen": """\
sim = subprocess.Popen([sys.executable, "-c", SIMULATOR, os.path.join(HydraConfig.get().runtime.output_dir, "sim.pid")])
sim.wait()
return cfg.x
""",
    # os.system ignores SIGINT while its command runs: the task outlives the grace and is killed.
    "os.system": """\
pid_file = os.path.join(HydraConfig.get().runtime.output_dir, "sim.pid")
os.system(shlex.join([sys.executable, "-c", SIMULATOR, pid_file]))
return cfg.x
""",
    # Started from a worker thread (a pool): /proc lists it among that thread's children only.
    "thread": """\
pid_file = os.path.join(HydraConfig.get().runtime.output_dir, "sim.pid")
worker = threading.Thread(target=subprocess.run, args=([sys.executable, "-c", SIMULATOR, pid_file],))
worker.start()
worker.join()
return cfg.x
""",
    # A program whose name (cut at 15 bytes by the kernel) is not UTF-8: reading it as text raised
    # in the middle of the cancel, which left the jobs' controllers paused and the programs running.
    "non-utf8-name": """\
pid_file = os.path.join(HydraConfig.get().runtime.output_dir, "sim.pid")
subprocess.run([sys.executable, "-c", RENAMED + SIMULATOR, pid_file])
return cfg.x
""",
    # A program that ignores SIGINT and keeps starting others (a shell loop): those it started
    # during the cancel's grace were found by no one, and ran on.
    "spawner": """\
pid_file = os.path.join(HydraConfig.get().runtime.output_dir, "sim.pid")
loop = f"trap '' INT; echo $$ >> {pid_file}; while :; do sleep 600 & echo $! >> {pid_file}; sleep 0.2; done"
subprocess.run(["sh", "-c", loop])
return cfg.x
""",
}
SIMULATOR_HELPER = """\
import shlex
import subprocess
import threading

SIMULATOR = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"
RENAMED = "import ctypes; ctypes.CDLL(None).prctl(15, b'sim\\\\xe9ulation', 0, 0, 0); "  # PR_SET_NAME
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", list(SIMULATING_TASKS))
def test_kill_leaves_no_process_the_app_started_running(tmp_path: Path, how: str) -> None:
    """A trial that runs an external program (a simulator, a solver) and waits for it: the sweeper's
    cancel stopped the trial's task, and the program ran on, reparented to init, for ever."""
    app = write_app(tmp_path, SIMULATING_TASKS[how], helpers=SIMULATOR_HELPER)
    proc, sweep_dir = start_example(
        tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.observation_budget=2", "hydra.sweeper.parallel_bandwidth=2", app=app
    )
    running_job_ids(sweep_dir, 2)
    pid_files = [sweep_dir / str(n) / "sim.pid" for n in (0, 1)]
    deadline = time.time() + 60
    while time.time() < deadline and not all(f.exists() and f.read_text() for f in pid_files):
        time.sleep(0.1)
    try:
        assert all(pid_running(p) for p in _pids(pid_files))
        done = subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)
        assert done.returncode == 0, done.stderr
        proc.communicate(timeout=120)
        assert not [p for p in _pids(pid_files) if pid_running(p)]  # those started during the kill too
    finally:
        for pid in _pids(pid_files):  # a failing run must not leave them to the tests after it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pids(pid_files: list[Path]) -> list[int]:
    return [int(p) for f in pid_files if f.exists() for p in f.read_text().split()]
