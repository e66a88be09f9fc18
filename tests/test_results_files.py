"""Results files are as readable as the journal: the umask decides, not a fixed 0600 (issue 12, item 18)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import run_example

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
