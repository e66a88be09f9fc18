"""The command that continues a sweep (printed on Ctrl-C and by ``hydra-sigopt continue``) must run:
Hydra's own argument parser reads it as the sweep's command, in multirun, in the sweep's dir."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hydra_sigopt.continuation import continue_command, current_command

SWEEP = Path("/runs/sweep")


def parsed(command: str) -> tuple[list[str], dict[str, object]]:
    """The program part of the command, and what Hydra's parser reads from the rest."""
    from hydra._internal.utils import get_args_parser

    argv = shlex.split(command.split(" && ", 1)[-1])
    program = argv[:3] if argv[1] == "-m" else argv[:2]
    return program, vars(get_args_parser().parse_args(argv[len(program) :]))


@pytest.mark.parametrize(
    ("args", "overrides", "config_name"),
    [
        # lightning-hydra-template: hparams_search sets hydra.mode MULTIRUN, so no -m was typed
        (
            ["hparams_search=mnist_sigopt", "experiment=example"],
            ["hparams_search=mnist_sigopt", "experiment=example"],
            None,
        ),
        (["a=1", "-m"], ["a=1"], None),  # -m last: the sweep dir after it failed argparse
        (["-m", "a=1"], ["a=1"], None),
        (["a=1", "-cn", "grid"], ["a=1"], "grid"),
        (["--multirun", "-cn", "grid", "a=1", "hydra.sweep.dir=old"], ["a=1"], "grid"),
    ],
)
def test_the_continue_command_parses_as_the_sweep_s_command_in_multirun(
    args: list[str], overrides: list[str], config_name: str | None
) -> None:
    command = continue_command({"argv": ["/venv/bin/python", "src/train.py", *args], "cwd": "/proj"}, SWEEP)
    program, seen = parsed(command)
    assert program == ["/venv/bin/python", "src/train.py"]
    assert seen["multirun"] is True and seen["config_name"] == config_name
    assert seen["overrides"] == [*overrides, f"hydra.sweep.dir={SWEEP}"]


def test_a_sweep_started_as_a_module_continues_as_one(tmp_path: Path) -> None:
    """``python -m mypkg.train -m``: the printed command ran the file's path, and its relative imports failed."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    main = "import json\nfrom hydra_sigopt.continuation import current_command\nprint(json.dumps(current_command()))\n"
    (package / "train.py").write_text(main)
    out = subprocess.run(
        [sys.executable, "-m", "mypkg.train", "-m", "a=1"], cwd=tmp_path, capture_output=True, text=True
    )
    import json

    command = continue_command(json.loads(out.stdout), SWEEP)
    program, seen = parsed(command)
    assert program == [sys.executable, "-m", "mypkg.train"]
    assert seen["multirun"] is True and seen["overrides"] == ["a=1", f"hydra.sweep.dir={SWEEP}"]
    assert current_command()["argv"][0] == sys.executable
