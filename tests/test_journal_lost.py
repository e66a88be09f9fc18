"""A journal deleted, replaced, truncated or overwritten under a running sweep stops it at the next write, with a
clear message, resumable where its state could be saved (issue 12, item 3)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import finish_example, run_example, start_example

from hydra_sigopt.journal import JOURNAL_NAME

pytestmark = pytest.mark.slow

OVERRIDES = ("hydra.sweeper.observation_budget=4", "sleep_s=2")


def wait_for_a_running_trial(sweep_dir: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            db = sqlite3.connect(f"{(sweep_dir / JOURNAL_NAME).as_uri()}?mode=ro", uri=True)
            try:
                if db.execute("SELECT COUNT(*) FROM trials WHERE state = 'running'").fetchone()[0]:
                    return
            finally:
                db.close()
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise AssertionError("no trial ever ran")


def start_and_wait(tmp_path: Path):  # type: ignore[no-untyped-def]
    proc, sweep_dir = start_example(tmp_path, *OVERRIDES)
    wait_for_a_running_trial(sweep_dir)
    return proc, sweep_dir


def test_deleted_journal_stops_the_sweep_and_is_restored_for_the_resume(tmp_path: Path) -> None:
    proc, sweep_dir = start_and_wait(tmp_path)
    for name in (JOURNAL_NAME, JOURNAL_NAME + "-wal", JOURNAL_NAME + "-shm"):
        (sweep_dir / name).unlink(missing_ok=True)
    stopped = finish_example(proc, sweep_dir)
    assert stopped.proc.returncode != 0
    assert f"the journal {sweep_dir / JOURNAL_NAME} was deleted while the sweep ran" in stopped.output
    assert "it was restored from the sweeper's open copy" in stopped.output
    assert "Continue this sweep with:" in stopped.output
    resumed = run_example(tmp_path, *OVERRIDES).assert_ok()
    assert "Resuming the sweep" in resumed.output
    assert sum(t["state"] == "completed" for t in resumed.trials) == 4


def test_replaced_journal_stops_the_sweep_and_the_replacement_is_kept(tmp_path: Path) -> None:
    proc, sweep_dir = start_and_wait(tmp_path)
    other = sweep_dir / "other.txt"
    other.write_text("someone else's file\n")
    os.replace(other, sweep_dir / JOURNAL_NAME)
    stopped = finish_example(proc, sweep_dir)
    assert stopped.proc.returncode != 0
    assert f"the journal {sweep_dir / JOURNAL_NAME} was replaced by another file while the sweep ran" in (
        stopped.output
    )
    assert (sweep_dir / JOURNAL_NAME).read_text() == "someone else's file\n"
    saved = sweep_dir / (JOURNAL_NAME + ".recovered")
    assert f"saved in {saved}" in stopped.output
    os.replace(saved, sweep_dir / JOURNAL_NAME)  # as the message says
    run_example(tmp_path, *OVERRIDES).assert_ok()


def test_truncated_journal_stops_the_sweep(tmp_path: Path) -> None:
    proc, sweep_dir = start_and_wait(tmp_path)
    with open(sweep_dir / JOURNAL_NAME, "r+b") as f:
        f.truncate(0)
    stopped = finish_example(proc, sweep_dir)
    assert stopped.proc.returncode != 0
    assert f"the journal {sweep_dir / JOURNAL_NAME} was truncated or overwritten while the sweep ran" in (
        stopped.output
    )
    assert "it was restored from the sweeper's open copy" in stopped.output
    resumed = run_example(tmp_path, *OVERRIDES).assert_ok()
    assert sum(t["state"] == "completed" for t in resumed.trials) == 4


def test_journal_overwritten_in_place_with_another_database_stops_the_sweep_and_it_is_kept(tmp_path: Path) -> None:
    proc, sweep_dir = start_and_wait(tmp_path)
    other = tmp_path / "other.sqlite"  # a valid database, larger than the journal: only its nonce tells
    db = sqlite3.connect(other)
    with db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.executemany("INSERT INTO notes VALUES (?)", [("someone else's data " * 50,)] * 500)
    db.close()
    shutil.copyfile(other, sweep_dir / JOURNAL_NAME)  # in place: the journal keeps its inode
    stopped = finish_example(proc, sweep_dir)
    assert stopped.proc.returncode != 0
    assert f"the journal {sweep_dir / JOURNAL_NAME} was overwritten with another database while the sweep ran" in (
        stopped.output
    )
    assert (sweep_dir / JOURNAL_NAME).read_bytes() == other.read_bytes()
    kept = sqlite3.connect(sweep_dir / JOURNAL_NAME)  # no WAL of the sweep's is replayed into it
    assert kept.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 500
    kept.close()
    saved = sweep_dir / (JOURNAL_NAME + ".recovered")
    assert f"saved in {saved}" in stopped.output
    os.replace(saved, sweep_dir / JOURNAL_NAME)  # as the message says
    resumed = run_example(tmp_path, *OVERRIDES).assert_ok()
    assert sum(t["state"] == "completed" for t in resumed.trials) == 4
