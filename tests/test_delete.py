"""``hydra-sigopt delete``: only what the sweep wrote goes; the user's files stay (issue 12, item 1)."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, AppRun, run_example

from hydra_sigopt.journal import JOURNAL_NAME

pytestmark = pytest.mark.slow

HYDRA_SIGOPT = [sys.executable, "-m", "hydra_sigopt.cli"]
USER_FILES = {"src/model.py": "def model():\n    return 1\n", "data/x.csv": "a,b\n1,2\n", "notes.txt": "my notes\n"}


def hydra_sigopt(*argv: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HYDRA_SIGOPT, *argv], capture_output=True, text=True, timeout=120, stdin=stdin)


def project_with_a_sweep(tmp_path: Path, *overrides: str) -> AppRun:
    """A user's project folder used as hydra.sweep.dir, after a real sweep in it."""
    project = tmp_path / "project"
    for name, text in USER_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return run_example(tmp_path, "hydra.sweeper.observation_budget=2", *overrides, sweep_dir=project).assert_ok()


def assert_user_files_intact(project: Path) -> None:
    for name, text in USER_FILES.items():
        assert (project / name).read_text() == text, name
    left = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    assert left == ["data", "data/x.csv", "notes.txt", "src", "src/model.py"]


def test_delete_removes_only_what_the_sweep_wrote(tmp_path: Path) -> None:
    run = project_with_a_sweep(tmp_path, *SUBMITIT_LOCAL)
    project = run.sweep_dir
    assert {"0", "1", ".submitit", "multirun.yaml", JOURNAL_NAME} <= {p.name for p in project.iterdir()}
    done = hydra_sigopt("delete", "--yes", str(project))
    assert done.returncode == 0, done.stderr
    assert_user_files_intact(project)
    assert "Kept" in done.stdout and "data, notes.txt, src" in done.stdout


@pytest.mark.parametrize(
    "users", [{"0/train.csv": "fold 0\n", "1/train.csv": "fold 1\n"}, {"sweep.png": "my figure\n"}], ids=["0-1", "png"]
)
def test_a_new_sweep_refuses_a_folder_holding_names_it_would_write(tmp_path: Path, users: dict[str, str]) -> None:
    """A user's folder with folds 0/ 1/ 2/ and a sweep.png of theirs: the sweep wrote trial 0 into
    their 0/, and hydra-sigopt delete then deleted 0/ and 1/ with their train.csv, and their
    sweep.png, as files the sweep had written."""
    project = tmp_path / "project"
    for name, text in users.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2", sweep_dir=project)
    assert run.proc.returncode != 0 and "Traceback" not in run.output, run.output[-3000:]
    clash = "0, 1" if "0/train.csv" in users else "sweep.png"
    assert f"holds {clash}, which a sweep writes" in run.output, run.output[-3000:]
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    for name, text in users.items():
        assert (project / name).read_text() == text


def test_delete_removes_the_folder_when_only_the_sweep_was_in_it(tmp_path: Path) -> None:
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    done = hydra_sigopt("delete", "--yes", str(run.sweep_dir))
    assert done.returncode == 0, done.stderr
    assert not run.sweep_dir.exists()


def test_delete_through_a_symlink_deletes_the_sweep_behind_it(tmp_path: Path) -> None:
    run = project_with_a_sweep(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run.sweep_dir)
    done = hydra_sigopt("delete", "--yes", str(link))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert_user_files_intact(run.sweep_dir)
    assert link.is_symlink()  # its target still holds the user's files


@pytest.mark.parametrize("subdir", ["t${hydra.job.num}_${hydra.job.override_dirname}", "runs/${hydra.job.num}"])
def test_delete_removes_trial_folders_named_by_a_custom_subdir(tmp_path: Path, subdir: str) -> None:
    """Issue 12's leftover: trial folders named by ``hydra.sweep.subdir`` were kept as the user's. A copy of
    one the user keeps elsewhere in the folder (Hydra's record names another output dir) stays."""
    run = project_with_a_sweep(tmp_path, f"hydra.sweep.subdir={subdir}")
    project = run.sweep_dir
    made = sorted(p.parent.parent for p in project.rglob(".hydra/hydra.yaml") if ".submitit" not in str(p))
    assert len(made) == 2 and all(f.name not in ("0", "1") or f.parent.name == "runs" for f in made), made
    (project / "keep").mkdir()
    shutil.copytree(made[0], project / "keep" / "copy")
    done = hydra_sigopt("delete", "--yes", str(project))
    assert done.returncode == 0, done.stderr
    assert not any(f.exists() for f in made), done.stdout
    assert (project / "keep" / "copy" / ".hydra" / "hydra.yaml").is_file()
    shutil.rmtree(project / "keep")
    assert_user_files_intact(project)  # and no empty runs/ left behind


def test_delete_removes_trial_folders_without_hydras_record(tmp_path: Path) -> None:
    """With ``hydra.output_subdir=null`` a trial folder holds no ``.hydra``: delete said "Kept DIR and
    what the sweep did not write: trial_0, trial_1", and a second sweep then wrote into the old
    ``trial_0/`` beside the first one's checkpoint."""
    run = project_with_a_sweep(tmp_path, "hydra.sweep.subdir=trial_${hydra.job.num}", "hydra.output_subdir=null")
    project = run.sweep_dir
    made = [project / "trial_0", project / "trial_1"]
    assert all(f.is_dir() and not (f / ".hydra").exists() for f in made)
    (made[0] / "last.ckpt").write_text("the first sweep's checkpoint")
    done = hydra_sigopt("delete", "--yes", str(project))
    assert done.returncode == 0, done.stderr
    assert "trial_0" not in done.stdout.partition("Kept")[2], done.stdout
    assert not any(f.exists() for f in made), done.stdout
    assert_user_files_intact(project)


def test_the_prompt_says_what_goes_and_what_stays(tmp_path: Path) -> None:
    run = project_with_a_sweep(tmp_path)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"n\n")
        done = hydra_sigopt("delete", str(run.sweep_dir), stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 1 and "Nothing deleted." in done.stdout
    assert "trial folders 0-1 (2)" in done.stdout and JOURNAL_NAME in done.stdout
    assert "These stay: data, notes.txt, src" in done.stdout
    assert (run.sweep_dir / JOURNAL_NAME).is_file()


def test_delete_keeps_the_hydra_record_of_a_plain_run_in_the_same_folder(tmp_path: Path) -> None:
    """``hydra.run.dir`` and ``hydra.sweep.dir`` both ``outputs/${exp_name}`` (a common pattern): a
    plain ``python train.py`` wrote its ``.hydra`` there, then a sweep; delete removed that record of
    the plain run (config.yaml, hydra.yaml, overrides.yaml), which the sweep never wrote."""
    from conftest import EXAMPLE_APP

    folder = tmp_path / "outputs" / "exp1"
    plain = [sys.executable, str(EXAMPLE_APP), f"hydra.run.dir={folder}"]
    subprocess.run(plain, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    record = {p.name: p.read_bytes() for p in (folder / ".hydra").iterdir()}
    assert "config.yaml" in record
    run_example(tmp_path, "hydra.sweeper.observation_budget=2", sweep_dir=folder).assert_ok()
    done = hydra_sigopt("delete", "--yes", str(folder))
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (folder / ".hydra").iterdir()} == record
    assert not (folder / JOURNAL_NAME).exists() and not (folder / "0").exists()
