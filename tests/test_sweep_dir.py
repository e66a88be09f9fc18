"""The sweep dir: resume asks for a sweep that exists; a new sweep never overwrites an earlier one's
results; two new sweeps at once make one experiment (issue 12, items 2 and 19)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EPOCHS_APP, run_example

from hydra_sigopt.journal import JOURNAL_NAME, LOCK_NAME

pytestmark = pytest.mark.slow


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_of_a_missing_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    typo = tmp_path / "multirun" / "2026-11-28" / "01-48-4"
    run = run_example(tmp_path, f"hydra.sweeper.resume={typo}", "hydra.sweeper.observation_budget=2")
    assert run.proc.returncode != 0
    assert f"hydra.sweeper.resume: there is no folder {typo}; nothing to resume" in run.output
    assert not typo.exists() and not (tmp_path / "multirun").exists()


def test_resume_of_a_folder_that_is_not_a_sweep_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine\n")
    run = run_example(tmp_path, f"hydra.sweeper.resume={project}", "hydra.sweeper.observation_budget=2")
    assert run.proc.returncode != 0
    assert f"hydra.sweeper.resume: {project} is not a hydra-sigopt sweep dir (no {JOURNAL_NAME} in it)" in run.output
    assert listing(project) == {"notes.txt": b"mine\n"}


def test_earlier_results_without_a_journal_are_not_overwritten(tmp_path: Path) -> None:
    first = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    for name in (JOURNAL_NAME, LOCK_NAME):
        (first.sweep_dir / name).unlink()
    before = listing(first.sweep_dir)
    again = run_example(tmp_path, "hydra.sweeper.observation_budget=2")
    assert again.proc.returncode != 0
    held = "trials.csv, optimization_results.yaml, trial folders 0-1 (2), .hydra_sigopt/trials: the files"
    assert f"holds an earlier sweep's results ({held} (reports, run records) of trials 0-1 (2))" in again.output
    assert "use another hydra.sweep.dir, or move those files away first" in again.output
    assert listing(first.sweep_dir) == before  # nothing written, not even a lock file


def test_a_new_sweep_may_use_a_folder_of_other_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine\n")
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2", sweep_dir=project).assert_ok()
    assert len(run.trials) == 2 and (project / "notes.txt").read_text() == "mine\n"


def test_reports_of_an_earlier_sweep_left_in_its_hidden_folder_are_not_taken_for_the_new_ones(
    tmp_path: Path,
) -> None:
    """``rm -rf <sweep dir>/*`` leaves ``.hydra_sigopt/`` behind: a new sweep there read the earlier
    trials' reports and stop files as its own (trials stopped at their first report, observed with
    the earlier sweep's values)."""
    budget = ("hydra.sweeper.observation_budget=6", "hydra.sweeper.seed=3")
    first = run_example(tmp_path, *budget, app=EPOCHS_APP).assert_ok()
    for entry in first.sweep_dir.iterdir():  # what the shell's * matches: every entry but the dot ones
        if not entry.name.startswith("."):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    before = listing(first.sweep_dir)
    again = run_example(tmp_path, *budget, app=EPOCHS_APP)
    assert again.proc.returncode != 0
    assert (
        "holds an earlier sweep's results (.hydra_sigopt/trials: the files (reports, run records) of trials 0-5 (6))"
        in again.output
    )
    assert "Trial #" not in again.output
    assert listing(first.sweep_dir) == before


def test_an_earlier_sweeps_trial_folders_named_by_its_subdir_are_not_overwritten(tmp_path: Path) -> None:
    """``hydra.sweep.subdir: trial_${hydra.job.num}``: a grid sweep with Hydra's basic sweeper left
    trial_0 and trial_1 there; a sigopt sweep started in the same dir wrote its trial_1 over the
    earlier one's files (only folders named by a bare number were recognised)."""
    from small_apps import write_app

    app = write_app(
        tmp_path,
        """\
with open(os.path.join(HydraConfig.get().runtime.output_dir, "model.txt"), "w") as f:
    f.write(str(cfg.x))
return cfg.x
""",
        budget=2,
    )
    (app.parent / "conf" / "grid.yaml").write_text("x: 0.0\n")  # Hydra's basic sweeper, as the project had
    sweep = tmp_path / "sweep"
    subdir = "hydra.sweep.subdir=trial_${hydra.job.num}"
    grid = [sys.executable, str(app), "-cn", "grid", "-m", "x=0.1,0.9", f"hydra.sweep.dir={sweep}", subdir]
    subprocess.run(grid, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    before = listing(sweep)
    assert before["trial_1/model.txt"] == b"0.9"
    again = run_example(tmp_path, subdir, app=app)
    assert again.proc.returncode != 0
    assert "holds an earlier sweep's results (trial_0, trial_1)" in again.output, again.output[-2000:]
    assert listing(sweep) == before
