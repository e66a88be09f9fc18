"""How a sweep was started, and the shell command that continues it (``hydra-sigopt continue``)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra_sigopt.overrides import format_override


def current_command() -> dict[str, Any]:
    """How this sweep was started, for ``hydra-sigopt continue``."""
    return {"argv": [sys.executable, *sys.argv], "cwd": os.getcwd(), "started_at": time.time()}


def continue_command(command: Mapping[str, Any], sweep_dir: Path) -> str:
    """The shell command that resumes the sweep in ``sweep_dir``."""
    argv = list(command.get("argv") or ["python", "<your_app.py>", "-m"])
    argv = [a for a in argv if not a.startswith(("hydra.sweep.dir=", "hydra.sweeper.resume="))]
    if "-m" not in argv and "--multirun" not in argv:
        argv.append("-m")
    argv.append(format_override("hydra.sweep.dir", str(Path(sweep_dir).resolve())))
    cmd = " ".join(shlex.quote(a) for a in argv)
    cwd = command.get("cwd")
    return f"cd {shlex.quote(cwd)} && {cmd}" if cwd else cmd
