"""The command ``hydra-sigopt submit`` runs as the sweep's driver job (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydra_sigopt.driver import SubmitError, driver_command


def test_a_command_without_the_multirun_flag_is_refused_with_what_to_add(tmp_path: Path) -> None:
    """lightning-hydra-template style: ``hparams_search=...`` sets ``hydra.mode: MULTIRUN``, so the
    command has no ``-m``; submit refused it without saying that -m is needed there too."""
    with pytest.raises(SubmitError, match=r"add -m to it .* also where a config turns the sweep on"):
        driver_command(["python", "train.py", "hparams_search=sigopt"], tmp_path / "sweep")


def test_python_s_own_module_flag_is_not_the_multirun_flag(tmp_path: Path) -> None:
    with pytest.raises(SubmitError, match="add -m"):
        driver_command(["python", "-m", "pkg.train", "lr=0.1"], tmp_path)
    argv = driver_command(["python", "-m", "pkg.train", "-m", "lr=0.1"], tmp_path)
    assert argv[:5] == ["python", "-m", "pkg.train", "-m", "lr=0.1"]
    assert driver_command(["./train.py", "-m", "lr=0.1"], tmp_path)[:3] == ["./train.py", "-m", "lr=0.1"]


def test_a_command_with_its_own_multirun_flag_keeps_it(tmp_path: Path) -> None:
    for flag in ("-m", "--multirun"):
        argv = driver_command(["python", "train.py", flag, "lr=0.1"], tmp_path)
        assert argv[:4] == ["python", "train.py", flag, "lr=0.1"] and argv.count("-m") == (flag == "-m")
        assert f"hydra.sweep.dir={tmp_path}" in argv
