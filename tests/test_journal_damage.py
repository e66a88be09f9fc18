"""A journal that SQLite reads but whose content is damaged, or that we may not write (issue 12,
items 13 and 14): one line, exit 2, nothing modified; healthy journals read without write access."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EPOCHS_APP, EXAMPLE_APP, AppRun, run_example

from hydra_sigopt.journal import JOURNAL_NAME

pytestmark = pytest.mark.slow

DAMAGE = {
    "identity_missing": "DELETE FROM meta WHERE key = 'identity'",
    "trials_dropped": "DROP TABLE trials",
    "bad_json": "UPDATE trials SET assignments = '{not json' WHERE number = 1",
    "assignments_not_a_dict": "UPDATE trials SET assignments = '[1]' WHERE number = 1",
    "overrides_not_strings": "UPDATE trials SET overrides = '[1]' WHERE number = 1",
    "unknown_state": "UPDATE trials SET state = 'bogus' WHERE number = 1",
    "metric_value_not_a_number": """UPDATE trials SET metric_values = '[{"name": "mse", "value": "low"}]'
                                    WHERE number = 1""",
}
#: Damage to the rows of intermediate reports (early stopping), on a sweep of the epoch-by-epoch example.
REPORT_DAMAGE = {
    "report_metrics_bad_json": "UPDATE reports SET metrics = '{not json' WHERE number = 1",
    "report_metrics_not_a_dict": "UPDATE reports SET metrics = '[1]' WHERE number = 1",
    "report_metric_not_a_number": """UPDATE reports SET metrics = '{"val_error": "low"}' WHERE number = 1""",
    "report_step_not_a_number": "UPDATE reports SET step = 'x' WHERE rowid = (SELECT MIN(rowid) FROM reports)",
}
COMMANDS = (["status"], ["status", "--all"], ["best"], ["plot"], ["continue"], ["kill"], ["delete", "--yes"])


def hydra_sigopt(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", *argv], capture_output=True, text=True)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    return run_example(tmp_path_factory.mktemp("damage"), "hydra.sweeper.observation_budget=2").assert_ok()


@pytest.fixture(scope="module")
def sweep_with_reports(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    workdir = tmp_path_factory.mktemp("damage_reports")
    return run_example(workdir, "hydra.sweeper.observation_budget=2", app=EPOCHS_APP).assert_ok()


@pytest.fixture(params=sorted(DAMAGE) + sorted(REPORT_DAMAGE))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """A damaged copy of a finished sweep, and the app that ran it."""
    damage: str = request.param
    if damage in REPORT_DAMAGE:
        sweep, sql, app = request.getfixturevalue("sweep_with_reports"), REPORT_DAMAGE[damage], EPOCHS_APP
    else:
        sweep, sql, app = request.getfixturevalue("finished_sweep"), DAMAGE[damage], EXAMPLE_APP
    copy = tmp_path / "sweep"
    shutil.copytree(sweep.sweep_dir, copy)
    db = sqlite3.connect(copy / JOURNAL_NAME)
    with db:
        db.execute(sql)
    db.close()
    return copy, app


def test_damaged_journal_is_one_line_exit_2_and_untouched(damaged: tuple[Path, Path]) -> None:
    sweep_dir, _ = damaged
    before = (sweep_dir / JOURNAL_NAME).read_bytes()
    for command in COMMANDS:
        done = hydra_sigopt(*command, str(sweep_dir))
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert f"{sweep_dir / JOURNAL_NAME} is damaged (" in done.stderr and "left untouched" in done.stderr
    assert (sweep_dir / JOURNAL_NAME).read_bytes() == before
    assert (sweep_dir / "trials.csv").is_file()  # delete removed nothing


def test_resuming_a_damaged_journal_runs_nothing(damaged: tuple[Path, Path], tmp_path: Path) -> None:
    sweep_dir, app = damaged
    before = {name: (sweep_dir / name).read_bytes() for name in (JOURNAL_NAME, "trials.csv")}
    resumed = run_example(tmp_path, "hydra.sweeper.observation_budget=3", sweep_dir=sweep_dir, app=app)
    assert resumed.proc.returncode != 0
    assert f"{sweep_dir / JOURNAL_NAME} is damaged (" in resumed.output
    assert not (sweep_dir / "2").exists()  # no trial ran
    assert {name: (sweep_dir / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 50], ids=["empty", "garbage"])
def test_resuming_on_a_journal_that_is_no_database_leaves_it_as_it_was(
    finished_sweep: AppRun, tmp_path: Path, content: bytes
) -> None:
    """A journal truncated to 0 bytes: the resume said "...is not a readable journal (no such table:
    meta); it was left untouched", and SQLite had written its 4096-byte header into it."""
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(finished_sweep.sweep_dir, sweep_dir)
    (sweep_dir / JOURNAL_NAME).write_bytes(content)
    resumed = run_example(tmp_path, "hydra.sweeper.observation_budget=3", sweep_dir=sweep_dir)
    assert resumed.proc.returncode != 0 and "left untouched" in resumed.output, resumed.output[-3000:]
    assert (sweep_dir / JOURNAL_NAME).read_bytes() == content
    assert not [p.name for p in sweep_dir.iterdir() if p.name.startswith(f"{JOURNAL_NAME}-")]


def test_status_and_best_read_a_journal_on_a_read_only_mount(finished_sweep: AppRun) -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("this test needs `unshare -m` (root, or user namespaces) to bind-mount the sweep read-only")
    sweep_dir = str(finished_sweep.sweep_dir)
    for command in ("status", "best"):
        script = (
            f"mount --bind -o ro {sweep_dir} {sweep_dir} && touch {sweep_dir}/probe 2>/dev/null; "
            f"test ! -e {sweep_dir}/probe && exec {sys.executable} -m hydra_sigopt.cli {command} {sweep_dir}"
        )
        done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert finished_sweep.results["best_overrides"] in done.stdout
