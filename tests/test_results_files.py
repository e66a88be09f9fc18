"""Results files are as readable as the journal: the umask decides, not a fixed 0600 (issue 12, item 18)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AppRun, run_example, write_app

from hydra_sigopt.journal import JOURNAL_NAME

pytestmark = pytest.mark.slow

RESULTS = ("trials.csv", "optimization_results.yaml")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_results_files_follow_the_umask_like_the_journal(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)  # inherited by the sweep's process
    try:
        run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    results = {name: stat.S_IMODE((run.sweep_dir / name).stat().st_mode) for name in RESULTS}
    assert results == dict.fromkeys(RESULTS, expected), {k: oct(v) for k, v in results.items()}
    # Whoever may read the journal may read the results (SQLite makes its files 0644 at most).
    journal = stat.S_IMODE((run.sweep_dir / JOURNAL_NAME).stat().st_mode)
    assert journal & 0o444 == expected & 0o444


def _hydra_sigopt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", *args], capture_output=True, text=True)


def run_without_a_best(tmp_path: Path, app: Path, trials: int, said: str) -> AppRun:
    """The sweep of ``app``: every trial completed, and the log's last word that there is no best, why."""
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * trials
    assert f"{said}; see {run.sweep_dir / 'trials.csv'}" in run.output, run.output[-3000:]
    return run


def test_no_trial_within_the_thresholds_of_two_metrics_is_said_not_shown_as_pareto_optimal(tmp_path: Path) -> None:
    """The unfiltered front was shown as "Pareto-optimal trials (1)", as ``solutions`` and by ``best``
    when no trial met the thresholds; SigOpt (sigoptlite's BestAssignmentsLogger) has no best then."""
    app = write_app(
        tmp_path,
        "observation_budget: 4\nmetrics:\n"
        "  - {name: loss, objective: minimize, threshold: 0.0001}\n"
        "  - {name: acc, objective: maximize, threshold: 0.999}\n"
        "params:\n  x: interval(0, 1)",
        body='return {"loss": 0.5 + cfg.x, "acc": 0.5 - cfg.x / 4}',
    )
    said = "4 completed, none within loss <= 0.0001, acc >= 0.999"
    run = run_without_a_best(tmp_path, app, 4, said)
    assert "Pareto-optimal" not in run.output
    assert "Pareto front ignoring the thresholds (not within them, so no answer):" in run.output
    results = run.results
    assert results["solutions"] == [] and results["no_best"] == said
    front = [s["trial"] for s in results["front_ignoring_thresholds"]]
    assert front == [min(range(4), key=lambda n: float(run.trials[n]["param.x"]))]  # lowest loss, highest acc
    best = _hydra_sigopt("best", str(run.sweep_dir))
    assert (best.returncode, best.stdout) == (1, "")
    assert best.stderr.splitlines()[0] == f"{said}.", best.stderr
    assert "front_ignoring_thresholds in optimization_results.yaml" in best.stderr
    status = _hydra_sigopt("status", str(run.sweep_dir))
    assert f"Best:        {said}\n" in status.stdout and "Pareto set" not in status.stdout, status.stdout


def test_completed_trials_outside_a_constraint_are_not_called_none_completed(tmp_path: Path) -> None:
    """Five completed trials, all with mem > 0.62: the log said "No trial completed", ``best``
    "No trial completed." and ``status`` "Best: no completed trial", beside ``trials.completed: 5``."""
    app = write_app(
        tmp_path,
        "observation_budget: 5\nmetrics:\n"
        "  - {name: loss, objective: minimize}\n"
        "  - {name: mem, objective: minimize, strategy: constraint, threshold: 0.62}\n"
        "params:\n  x: interval(0, 1)",
        body='return {"loss": (cfg.x - 0.5) ** 2, "mem": 0.7 + cfg.x}',
    )
    said = "5 completed, none within mem <= 0.62"
    run = run_without_a_best(tmp_path, app, 5, said)
    assert "No trial completed" not in run.output
    assert run.results["trials"]["completed"] == 5 and run.results["no_best"] == said
    best = _hydra_sigopt("best", str(run.sweep_dir))
    assert (best.returncode, best.stdout, best.stderr) == (1, "", f"{said}.\n")
    status = _hydra_sigopt("status", str(run.sweep_dir))
    assert f"Best:        {said}\n" in status.stdout, status.stdout


def test_the_default_metrics_column_in_trials_csv_is_named_once(tmp_path: Path) -> None:
    """An app that returns a float has the default metric ``value``: its column read ``value.value``."""
    app = write_app(tmp_path, "observation_budget: 2\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app).assert_ok()
    header = (run.sweep_dir / "trials.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["number", "state", "step", "job_id", "value", "param.x"], header
    assert all(float(t["value"]) == (float(t["param.x"]) - 1) ** 2 for t in run.trials)
