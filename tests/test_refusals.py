"""Every refusal and every deliberate stop reads as one line, through a real Hydra multirun.

Hydra prints a compact exception as its message alone; the traceback only with HYDRA_FULL_ERROR=1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLE_APP, AppRun, run_example, running_job_ids
from sigopt_server import SigOptTestServer

from hydra_sigopt.cli import main as cli_main

HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
TOKEN = "tok-refusals-never-written-anywhere"


def error_lines(run: AppRun) -> list[str]:
    """What the run printed on stderr, without blank lines and Hydra's usual hint."""
    return [line for line in run.proc.stderr.splitlines() if line.strip() and line != HYDRA_HINT]


def assert_refused(run: AppRun, *needles: str, created: bool = False) -> str:
    """Non-zero exit, one line on stderr naming ``needles``, no traceback; no sweep dir unless ``created``."""
    assert run.proc.returncode != 0, run.output[-3000:]
    lines = error_lines(run)
    assert len(lines) == 1, run.proc.stderr[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.sweep_dir.exists() is created, run.output[-3000:]
    return lines[0]


def test_a_config_error_is_one_line_and_the_full_traceback_only_on_request(tmp_path: Path) -> None:
    run = run_example(tmp_path, "hydra.sweeper.scheduler=fast")
    assert_refused(run, "hydra.sweeper.scheduler: got 'fast'; valid values are")
    full = run_example(tmp_path, "hydra.sweeper.scheduler=fast", env={"HYDRA_FULL_ERROR": "1"})
    assert full.proc.returncode != 0
    assert "Traceback" in full.proc.stderr and "hydra_sigopt.errors.ConfigError" in full.proc.stderr


def test_a_broken_engine_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "sigoptlite").mkdir(parents=True)
    (fake / "sigoptlite" / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    run = run_example(tmp_path, env={"PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert_refused(run, "cannot be loaded", "broken on purpose", "hydra-sigopt install-engine")


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}) as s:
        yield s


def test_an_api_refusal_is_one_line(tmp_path: Path, server: SigOptTestServer) -> None:
    env = {"SIGOPT_API_TOKEN": "wrong-" + TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": ""}
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env=env)
    assert_refused(run, "HTTP 401", server.url)


def test_a_second_sweeper_on_the_same_dir_is_one_line(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    first = subprocess.Popen(
        [sys.executable, str(EXAMPLE_APP), "-m", f"hydra.sweep.dir={sweep_dir}", "sleep_s=60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_first_trial(sweep_dir)
        second = run_example(tmp_path, sweep_dir=sweep_dir)
        assert_refused(second, "another sweeper", f"pid {first.pid}", created=True)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)


def wait_for_first_trial(sweep_dir: Path, timeout: float = 120) -> None:
    """Wait until the in-process sweep in ``sweep_dir`` runs its first trial."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (sweep_dir / "0").exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"no trial ever ran in {sweep_dir}")


def test_a_stop_by_kill_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE_APP),
            "-m",
            f"hydra.sweep.dir={sweep_dir}",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "sleep_s=60",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running_job_ids(sweep_dir, 1)
    assert cli_main(["kill", str(sweep_dir)]) == 0
    out, err = proc.communicate(timeout=120)
    run = AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sweep_dir)
    assert_refused(run, "Interrupted", created=True)
