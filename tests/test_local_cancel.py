"""``cancel_local_jobs`` (the sweeper's cancel on submitit_local, and ``hydra-sigopt kill``) returns
once the jobs it cancelled are gone, so the user's next ``ps`` does not show them still running."""

from __future__ import annotations

import time
from pathlib import Path

import submitit

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
