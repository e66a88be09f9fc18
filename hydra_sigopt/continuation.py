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
    """How this sweep was started, for ``hydra-sigopt continue``: as a module (``python -m
    pkg.train``, whose relative imports fail when its file is run) or as a script."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name] if spec is not None and spec.name and sys.argv[:1] != ["-c"] else sys.argv[:1]
    return {"argv": [sys.executable, *program, *sys.argv[1:]], "cwd": os.getcwd(), "started_at": time.time()}


def continue_command(command: Mapping[str, Any], sweep_dir: Path, exec_: bool = False) -> str:
    """The shell command that resumes the sweep in ``sweep_dir``: the sweep's own, in multirun
    (``exec_``: the shell runs it in its own place).

    Hydra's argument parser takes its overrides in one run of words: ``-m`` goes before them (a
    config that sets ``hydra.mode: MULTIRUN`` was started without it), and the sweep dir after them
    (after a trailing ``-m`` argparse refused it: "unrecognized arguments").
    """
    argv = list(command.get("argv") or ["python", "<your_app.py>", "-m"])
    size = 3 if argv[1:2] == ["-m"] else 2  # the interpreter, and the script or ``-m module``
    program, args = argv[:size], argv[size:]
    overrides, flags = _split_arguments(args)
    kept = [o for o in overrides if not o.startswith(("hydra.sweep.dir=", "hydra.sweeper.resume="))]
    argv = [*program, "-m", *flags, *kept, format_override("hydra.sweep.dir", str(Path(sweep_dir).resolve()))]
    cmd = ("exec " if exec_ else "") + " ".join(shlex.quote(a) for a in argv)
    cwd = command.get("cwd")
    return f"cd {shlex.quote(cwd)} && {cmd}" if cwd else cmd


def _split_arguments(args: list[str]) -> tuple[list[str], list[str]]:
    """The overrides and the other options (``-cn grid``; not ``-m``), as Hydra's parser reads them."""
    from hydra._internal.utils import get_args_parser

    try:
        overrides = list(get_args_parser().parse_args(args).overrides)
    except SystemExit:  # a command Hydra did not start from: its words as they were
        return [a for a in args if not a.startswith("-")], [a for a in args if a.startswith("-") and a != "-m"]
    flags, left = [], list(overrides)
    for arg in args:
        if left and arg == left[0]:
            left.pop(0)
        elif arg not in ("-m", "--multirun"):
            flags.append(arg)
    return overrides, flags
