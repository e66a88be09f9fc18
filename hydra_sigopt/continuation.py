"""How a sweep was started, and the shell command that continues it (``hydra-sigopt continue``)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt.overrides import format_override


def current_command(config_sets_multirun: bool = False) -> dict[str, Any]:
    """How this sweep was started, for ``hydra-sigopt continue``: as a module (``python -m
    pkg.train``, whose relative imports fail when its file is run) or as a script.
    ``config_sets_multirun``: the app's config turned the sweep on (``hydra.mode: MULTIRUN``), so
    that a plain run of the same overrides needs ``hydra.mode=RUN``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name] if spec is not None and spec.name and sys.argv[:1] != ["-c"] else sys.argv[:1]
    return {
        "argv": [sys.executable, *program, *sys.argv[1:]],
        "cwd": os.getcwd(),
        "started_at": time.time(),
        "config_sets_multirun": config_sets_multirun,
    }


def config_sets_multirun(hydra_overrides: list[str]) -> bool:
    """Whether the app's config itself set ``hydra.mode: MULTIRUN`` (the lightning-hydra-template's
    ``hparams_search`` configs do). Hydra adds ``hydra.mode=MULTIRUN`` to its own overrides for a
    ``-m`` run only when the config left the mode unset (or set it to RUN), so its absence there
    means the config set it, with or without ``-m``."""
    return "hydra.mode=MULTIRUN" not in hydra_overrides


def program_size(argv: Sequence[str]) -> int:
    """How many words of a command run the app: the interpreter, and the script or ``-m module``."""
    return 3 if list(argv[1:2]) == ["-m"] else 2


def rerun_program(command: Mapping[str, Any]) -> str:
    """``python train.py`` (or ``python -m pkg.train``): how the sweep's app is run by hand."""
    argv = list(command.get("argv") or ["python", "<your_app.py>"])
    size = program_size(argv)
    return " ".join(["python", *(shlex.quote(a) for a in argv[1:size])])


def rerun_flags(command: Mapping[str, Any]) -> list[str]:
    """The options of the sweep's command (``-cn train_long``, ``-cp conf``) but ``-m``: a plain run
    without them composes another config. They go before the overrides, as Hydra's parser needs."""
    argv = list(command.get("argv") or [])
    size = program_size(argv)
    return _split_arguments(argv[size:])[1] if len(argv) > size else []


def needs_run_mode(command: Mapping[str, Any]) -> bool:
    """Whether a plain run of the sweep's overrides needs ``hydra.mode=RUN`` (else it sweeps again).
    A journal from before the flag was recorded: a sweep started without ``-m`` had it in its config."""
    if "config_sets_multirun" in command:
        return bool(command["config_sets_multirun"])
    argv = list(command.get("argv") or [])
    return bool(argv) and not ({"-m", "--multirun"} & set(argv[2:]))


def continue_command(command: Mapping[str, Any], sweep_dir: Path, exec_: bool = False) -> str:
    """The shell command that resumes the sweep in ``sweep_dir``: the sweep's own, in multirun
    (``exec_``: the shell runs it in its own place).

    Hydra's argument parser takes its overrides in one run of words: ``-m`` goes before them (a
    config that sets ``hydra.mode: MULTIRUN`` was started without it), and the sweep dir after them
    (after a trailing ``-m`` argparse refused it: "unrecognized arguments").
    """
    argv = list(command.get("argv") or ["python", "<your_app.py>", "-m"])
    size = program_size(argv)
    program, args = argv[:size], argv[size:]
    overrides, flags = _split_arguments(args)
    kept = [o for o in overrides if not o.startswith(("hydra.sweep.dir=", "hydra.sweeper.resume="))]
    argv = [*program, "-m", *flags, *kept, format_override("hydra.sweep.dir", str(Path(sweep_dir).resolve()))]
    cmd = ("exec " if exec_ else "") + " ".join(shlex.quote(a) for a in argv)
    cwd = command.get("cwd")
    return f"cd {shlex.quote(cwd)} && {cmd}" if cwd else cmd


#: Overrides that may differ between runs of one sweep: where it is, and its budget (raised on resume).
_RUN_ONLY = ("hydra.sweep.dir=", "hydra.sweeper.resume=", "hydra.sweeper.observation_budget=")


def same_command_line(started: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """Whether two runs got the same program, options and overrides (but for the sweep dir and the
    budget): what differs between them then is in the app's config files."""

    def words(command: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
        argv = list(command.get("argv") or [])
        size = program_size(argv)
        overrides, flags = _split_arguments(argv[size:])
        return argv[1:size], flags, [o for o in overrides if not o.startswith(_RUN_ONLY)]

    return bool(started.get("argv")) and words(started) == words(now)


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
