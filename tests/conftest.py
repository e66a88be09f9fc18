"""Shared helpers: run the example app as a user would (a real Hydra multirun in a subprocess)."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

# The processes the tests start get Ctrl-C as a terminal gives it. Started in the background by a
# script (bash's `cmd &` without job control), the tests ignore SIGINT, and so did every process
# they started: a sweep stopped "by Ctrl-C" before it took the signal itself, or a hydra-sigopt
# command, went on as if nothing had come. A process with a Python handler starts its children
# with the default, which Python turns into KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_APP = ROOT / "example_app" / "train.py"
#: The example app that trains epoch by epoch and reports (early stopping, tasks).
EPOCHS_APP = ROOT / "example_app" / "train_epochs.py"


@dataclass
class AppRun:
    proc: subprocess.CompletedProcess[str]
    sweep_dir: Path

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr

    @property
    def results(self) -> dict[str, Any]:
        return yaml.safe_load((self.sweep_dir / "optimization_results.yaml").read_text())

    @property
    def trials(self) -> list[dict[str, str]]:
        with open(self.sweep_dir / "trials.csv", newline="") as f:
            return list(csv.DictReader(f))

    def assert_ok(self) -> AppRun:
        assert self.proc.returncode == 0, self.output[-4000:]
        return self


def run_example(
    workdir: Path,
    *overrides: str,
    sweep_dir: Path | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    app: Path = EXAMPLE_APP,
) -> AppRun:
    """``python example_app/train.py -m <overrides>`` with its sweep dir under ``workdir``."""
    sweep_dir = sweep_dir or workdir / "sweep"
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env)
    return AppRun(proc, sweep_dir)


def start_example(
    workdir: Path,
    *overrides: str,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    app: Path = EXAMPLE_APP,
) -> tuple[subprocess.Popen[str], Path]:
    """Start the example app's sweep in the background (output captured); return it and its sweep dir.

    ``new_session``: the sweeper leads its own process group, as a terminal's foreground job does.
    """
    sweep_dir = workdir / "sweep"
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        start_new_session=new_session,
    )
    return proc, sweep_dir


def finish_example(proc: subprocess.Popen[str], sweep_dir: Path, timeout: float = 600) -> AppRun:
    """Wait for a sweep started by :func:`start_example`."""
    out, _ = proc.communicate(timeout=timeout)
    return AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), sweep_dir)


class OutputReader:
    """Reads the output of a sweep started by :func:`start_example` as it comes, so that a test can
    act on what the sweeper has said (not on a sleep that a loaded machine overruns)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in list(self.lines)):
            assert time.time() < deadline, f"the sweeper did not say {text!r} within {timeout} s"
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            time.sleep(0.2)

    def finish(self, sweep_dir: Path, timeout: float = 600) -> AppRun:
        """Wait for the sweep to end (as finish_example)."""
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=60)
        out = "".join(self.lines)
        return AppRun(subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, ""), sweep_dir)


def running_job_ids(sweep_dir: Path, count: int, timeout: float = 120) -> dict[int, str]:
    """Wait until ``count`` trials run as jobs (per the journal); return their job ids by trial number."""
    from hydra_sigopt.errors import JournalError
    from hydra_sigopt.journal import Journal

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with Journal.open(sweep_dir, readonly=True) as journal:
                found = {t.number: t.job_id for t in journal.trials(["running"]) if t.job_id}
        except (JournalError, sqlite3.Error):
            found = {}
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} trials never ran in {sweep_dir}")


def wait_for_results(sweep_dir: Path, job_ids: dict[int, str], timeout: float = 120) -> None:
    """Wait until each job wrote its result file (submitit's, in the job's folder)."""
    files = [sweep_dir / ".submitit" / j / f"{j}_0_result.pkl" for j in job_ids.values()]
    deadline = time.time() + timeout
    while not all(f.exists() for f in files):
        assert time.time() < deadline, f"the jobs {job_ids} wrote no result"
        time.sleep(0.2)


def waits_for_its_begin_time(job_id: str) -> bool:
    """Whether the job is pending, not held, with a begin time more than a few seconds away: Slurm
    sets one about two minutes after a requeue (the lifetime of the job's old credential)."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%S"], capture_output=True, text=True).stdout
    state, reason, start = [*out.strip().split("|"), "", "", ""][:3]
    if state != "PENDING" or "held" in reason.lower() or not start[:1].isdigit():
        return False
    return datetime.fromisoformat(start) > datetime.now() + timedelta(seconds=5)


def start_requeued_job_now(job_id: str, timeout: float = 60) -> None:
    """Let a requeued (and released) job start again at once, as an admin can (``scontrol update
    StartTime=now``): Slurm delays it about two minutes, which only lengthens a test. What a test
    asserts of the requeue happens before; the job's run after it is the same, only sooner."""
    deadline = time.time() + timeout
    while not waits_for_its_begin_time(job_id):
        assert time.time() < deadline, f"job {job_id} was not waiting for its begin time within {timeout} s"
        time.sleep(0.5)
    start_now(job_id)


def start_now(job_id: str) -> None:
    """Move a requeued job's begin time to now. slurmd refuses a start in the second of the requeue
    ("Job credential revoked": its credentials are compared in whole seconds, measured), which
    Slurm's own delay avoids: the job then FAILED. Hence the 2 s."""
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, capture_output=True)


def trial_states(sweep_dir: Path) -> dict[int, tuple[str, str | None, bool]]:
    """(state, job id, observed) by trial number."""
    from hydra_sigopt.journal import Journal

    with Journal.open(sweep_dir, readonly=True) as journal:
        return {t.number: (t.state, t.job_id, t.observed) for t in journal.trials()}


def write_app(root: Path, sweeper_yaml: str, body: str = "return (cfg.x - 1) ** 2", defaults: str = "") -> Path:
    """A small Hydra app in ``root`` whose ``hydra.sweeper`` is ``sweeper_yaml`` (indented under it)."""
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(
        "import hydra\n\n\n"
        '@hydra.main(version_base="1.3", config_path="conf", config_name="config")\n'
        f"def main(cfg):\n    {body}\n\n\n"
        'if __name__ == "__main__":\n    main()\n'
    )
    indented = "".join(f"    {line}\n" for line in sweeper_yaml.strip().splitlines())
    (root / "conf" / "config.yaml").write_text(
        f"defaults:\n{defaults}  - override hydra/sweeper: sigopt\n  - _self_\n\nx: 0.0\ny: 0.0\n\n"
        f"hydra:\n  sweeper:\n{indented}"
    )
    return root / "app.py"


SUBMITIT_LOCAL = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
