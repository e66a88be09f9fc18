"""The command ``hydra-sigopt submit`` runs as the sweep's driver job (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

from hydra_sigopt.driver import driver_command


def test_a_command_whose_config_turns_the_sweep_on_is_run_as_a_multirun(tmp_path: Path) -> None:
    """lightning-hydra-template style: ``hparams_search=...`` sets ``hydra.mode: MULTIRUN``, so the
    command has no ``-m``; submit refused it ("the command after -- must be a multirun")."""
    argv = driver_command(["python", "train.py", "hparams_search=sigopt"], tmp_path / "sweep")
    assert argv[:3] == ["python", "train.py", "hparams_search=sigopt"] and argv.count("-m") == 1
    assert f"hydra.sweep.dir={tmp_path / 'sweep'}" in argv


def test_a_command_with_its_own_multirun_flag_keeps_it(tmp_path: Path) -> None:
    for flag in ("-m", "--multirun"):
        argv = driver_command(["python", "train.py", flag, "lr=0.1"], tmp_path)
        assert argv[:4] == ["python", "train.py", flag, "lr=0.1"] and argv.count("-m") == (flag == "-m")
