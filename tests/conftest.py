"""Shared helpers: run the example app as a user would (a real Hydra multirun in a subprocess)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_APP = ROOT / "example_app" / "train.py"


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


SUBMITIT_LOCAL = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
