"""The journal: what a killed sweeper leaves behind must be complete and readable."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt.errors import JournalError
from hydra_sigopt.journal import JOURNAL_NAME, IllegalTransition, Journal, JournalFullError, JournalLostError, SweepLock
from hydra_sigopt.metrics import MetricValue

META = {
    "name": "t",
    "experiment_id": "-1",
    "backend": "lite",
    "identity": {"parameters": [], "metrics": []},
    "fingerprint": "abc",
}


def test_trial_lifecycle_round_trips(tmp_path: Path) -> None:
    with Journal.create(tmp_path, META) as j:
        j.add_trial(0, "s1", {"x": 0.5}, ["x=0.5"])
        assert j.trial(0).state == "pending"
        j.mark_running([0], ["1234"])
        j.record_result(0, values=[MetricValue("y", 1.5, 0.1)], started_at=10.0, ended_at=12.5, host="h")
        j.mark_observed(0, "obs-1")
        t = j.trial(0)
    assert (t.state, t.job_id, t.observation_id, t.host) == ("completed", "1234", "obs-1", "h")
    assert t.values == (MetricValue("y", 1.5, 0.1),) and t.duration == 2.5
    with Journal.open(tmp_path, readonly=True) as j:
        assert j.meta()["name"] == "t" and j.next_number() == 1


def test_failed_and_abandoned_trials(tmp_path: Path) -> None:
    with Journal.create(tmp_path, META) as j:
        j.add_trial(0, None, {"x": 1}, ["x=1"])
        j.record_result(0, failure_reason="ValueError: boom", failure_traceback="Traceback...")
        j.add_trial(1, None, {"x": 2}, ["x=2"])
        j.mark_abandoned(1, "re-run after restart")
        j.add_trial(2, None, {"x": 2}, ["x=2"], rerun_of=1)
        states = [(t.number, t.state, t.rerun_of) for t in j.trials()]
        assert [t.number for t in j.trials(["failed", "abandoned"])] == [0, 1]
    assert states == [(0, "failed", None), (1, "abandoned", None), (2, "pending", 1)]


def test_second_sweeper_is_refused_with_the_first_pid_and_host(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hydra_sigopt.journal import SweepLock; lock = SweepLock(sys.argv[1]);"
            " lock.acquire(); print('locked', flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lock = SweepLock(tmp_path)
        assert lock.holder() == (holder.pid, socket.gethostname())
        with pytest.raises(JournalError, match=rf"another sweeper \(pid {holder.pid} on {socket.gethostname()}\)"):
            lock.acquire()
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone (even killed), the lock is free again.
    lock = SweepLock(tmp_path)
    assert lock.holder() is None
    lock.acquire()
    lock.release()


def test_a_sweeper_starting_while_status_looks_at_the_lock_is_not_refused(tmp_path: Path) -> None:
    """``hydra-sigopt status`` (and ``kill``, polling) asks who holds the lock by taking it for an
    instant: a sweeper starting in that instant was refused, "another sweeper (pid N) is running
    this sweep", N being a sweeper long dead (measured: 2314 refusals in 20000 starts)."""
    probe = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hydra_sigopt.journal import SweepLock; lock = SweepLock(sys.argv[1]);"
            "lock.holder(); print('looking', flush=True)"
            "\nend = time.time() + 60\nwhile time.time() < end: lock.holder()",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ended = SweepLock(tmp_path)
        ended.acquire()  # the lock file names a sweeper, as it does after one ended
        ended.release()
        assert probe.stdout is not None and probe.stdout.readline().strip() == "looking"
        refused, tries, end = 0, 0, time.time() + 2
        while time.time() < end:
            lock = SweepLock(tmp_path)
            try:
                lock.acquire()
            except JournalError:
                refused += 1
            lock.release()
            tries += 1
    finally:
        probe.kill()
        probe.wait()
    assert refused == 0 and tries > 50, (refused, tries)


def test_not_a_sweep_dir_corrupt_and_newer_journals_are_refused_untouched(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is not a hydra-sigopt sweep dir"):
        Journal.open(tmp_path)
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / JOURNAL_NAME).write_bytes(b"this is not sqlite at all" * 100)
    before = (bad / JOURNAL_NAME).read_bytes()
    with pytest.raises(JournalError, match="not a readable journal"):
        Journal.open(bad)
    assert (bad / JOURNAL_NAME).read_bytes() == before
    newer = tmp_path / "newer"
    Journal.create(newer, META).close()
    db = sqlite3.connect(newer / JOURNAL_NAME)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (json.dumps(99),))
    db.commit()
    db.close()
    with pytest.raises(JournalError, match=r"newer journal format .99.*Upgrade"):
        Journal.open(newer)


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    Journal.create(tmp_path, META).close()
    with pytest.raises(JournalError, match="already exists"):
        Journal.create(tmp_path, META)


# ---------------------------------------------------------------------------- the trial state machine


def _journal_with(tmp_path: Path, *states: str) -> Journal:
    """A journal with one trial per state given (trial #i in states[i]), each reached legally."""
    j = Journal.create(tmp_path, {"name": "t"})
    for n, state in enumerate(states):
        j.add_trial(n, None, {"x": n}, [f"x={n}"])
        if state in ("running", "completed", "failed", "stopped"):
            j.mark_running([n], [f"job-{n}"])
        if state == "completed":
            j.record_result(n, values=[MetricValue("y", 1.0)])
        elif state == "failed":
            j.record_result(n, failure_reason="boom")
        elif state == "abandoned":
            j.mark_abandoned(n, "cancelled")
        elif state == "stopped":
            j.mark_stopped(n, [MetricValue("y", 5.0)])
    return j


@pytest.mark.parametrize(
    ("state", "write"),
    [
        ("completed", lambda j: j.mark_abandoned(0, "late kill")),
        ("completed", lambda j: j.mark_running([0])),
        ("completed", lambda j: j.record_result(0, failure_reason="again")),
        ("failed", lambda j: j.record_result(0, values=[MetricValue("y", 2.0)])),
        ("abandoned", lambda j: j.mark_running([0], ["job-9"])),
        ("abandoned", lambda j: j.record_result(0, values=[MetricValue("y", 2.0)])),
        ("abandoned", lambda j: j.mark_observed(0, "obs")),
        ("running", lambda j: j.mark_observed(0, "obs")),
    ],
)
def test_the_journal_refuses_an_illegal_transition_and_writes_nothing(tmp_path: Path, state: str, write: Any) -> None:
    with _journal_with(tmp_path, state) as j:
        before = j.trial(0)
        with pytest.raises(IllegalTransition, match=f"trial #0 is {state}"):
            write(j)
        assert j.trial(0) == before


def test_a_resume_completes_an_abandoned_trial_with_the_result_its_job_wrote_after_all(tmp_path: Path) -> None:
    with _journal_with(tmp_path, "abandoned") as j:
        j.recover_result(0, values=[MetricValue("y", 3.0)], ended_at=123.0, host="node1")
        trial = j.trial(0)
        assert (trial.state, trial.value("y"), trial.failure_reason, trial.host) == ("completed", 3.0, None, "node1")
        j.mark_observed(0, "obs")  # then posted as any result


@pytest.mark.parametrize(
    ("state", "rerun"),
    [("abandoned", True), ("running", False), ("completed", False), ("failed", False), ("pending", False)],
)
def test_only_an_abandoned_trial_nobody_reran_is_recovered(tmp_path: Path, state: str, rerun: bool) -> None:
    with _journal_with(tmp_path, state) as j:
        if rerun:  # its suggestion ran again: that trial is its result
            j.add_trial(1, None, {"x": 0}, ["x=0"], rerun_of=0)
        before = j.trial(0)
        with pytest.raises(IllegalTransition, match=f"trial #0 is {state}"):
            j.recover_result(0, values=[MetricValue("y", 3.0)])
        assert j.trial(0) == before


def test_a_stopped_trial_whose_job_trained_to_its_end_unaware_completes_with_its_result(tmp_path: Path) -> None:
    with _journal_with(tmp_path, "stopped", "stopped") as j:
        j.recover_result(0, values=[MetricValue("y", 3.0)])
        assert (j.trial(0).state, j.trial(0).value("y")) == ("completed", 3.0)
        j.mark_observed(1, "obs")  # its stopped observation is posted: it stays what the engine has
        with pytest.raises(IllegalTransition, match="trial #1 is stopped"):
            j.recover_result(1, values=[MetricValue("y", 3.0)])
        assert (j.trial(1).state, j.trial(1).value("y")) == ("stopped", 5.0)


def test_a_stopped_trial_s_duration_counts_from_its_job_s_start_like_a_completed_one_s(tmp_path: Path) -> None:
    """A stopped trial's start stayed its submission (queue wait and start-up included: 17.6 s in
    trials.csv for a job that ran 3.7 s), while a completed trial's is its job's own start."""
    with Journal.create(tmp_path, META) as j:
        for number in (0, 1):
            j.add_trial(number, f"s{number}", {"x": 0.5}, ["x=0.5"])
        j.mark_running([0, 1], ["10", "11"])  # submitted: started_at is the submission for now
        submitted = j.trial(0).started_at
        assert submitted is not None
        j.record_result(0, values=[MetricValue("y", 1.0)], started_at=submitted + 14, ended_at=submitted + 18)
        j.mark_stopped(1, [MetricValue("y", 2.0)])
        j.note_stopped_job_end(1, "node1", started_at=submitted + 14)
        assert j.trial(1).started_at == j.trial(0).started_at == submitted + 14


def test_a_trial_is_observed_once(tmp_path: Path) -> None:
    with _journal_with(tmp_path, "completed") as j:
        j.mark_observed(0, "obs-1")
        with pytest.raises(IllegalTransition):
            j.mark_observed(0, "obs-2")
        assert j.trial(0).observation_id == "obs-1"


def test_writes_to_a_trial_that_does_not_exist_are_refused(tmp_path: Path) -> None:
    with _journal_with(tmp_path, "running") as j:
        with pytest.raises(IllegalTransition, match="trial #7 does not exist"):
            j.mark_running([0, 7])
        assert j.trial(0).job_id == "job-0"  # the batch was refused whole
        with pytest.raises(IllegalTransition, match="does not exist"):
            j.record_result(7, values=[MetricValue("y", 1.0)])


def test_stopping_abandons_only_what_is_still_in_flight(tmp_path: Path) -> None:
    with _journal_with(tmp_path, "pending", "running", "completed", "abandoned") as j:
        assert j.abandon_in_flight([0, 1, 2, 3], "stopped") == [0, 1]
        assert [t.state for t in j.trials()] == ["abandoned", "abandoned", "completed", "abandoned"]
        assert j.trial(2).failure_reason is None


def test_a_stop_whose_cancel_failed_keeps_those_trials_running(tmp_path: Path) -> None:
    """Only the stop that abandoned a trial undoes it (its cancel failed); another process's abandon stands."""
    with _journal_with(tmp_path, "running", "running", "abandoned") as j:
        assert j.abandon_in_flight([0, 1], "cancelled: interrupted") == [0, 1]
        j.keep_running([1], "cancelled: interrupted")
        assert [t.state for t in j.trials()] == ["abandoned", "running", "abandoned"]
        assert (j.trial(1).failure_reason, j.trial(1).ended_at) == (None, None)
        with pytest.raises(IllegalTransition):
            j.keep_running([2], "cancelled: interrupted")  # abandoned for another reason
        with pytest.raises(IllegalTransition):
            j.mark_running([0])  # an ordinary write may not revive an abandoned trial
        assert j.trial(2).state == "abandoned"


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, *args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def close(self) -> None:
        self._db.close()


def test_a_full_disk_is_not_a_lost_journal(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, META)
    journal._db = _FullDisk(journal._db)  # type: ignore[assignment]
    # Said by SQLite's message alone too (its error code is an attribute from Python 3.11 on).
    with pytest.raises(JournalFullError, match="is full: the journal could not record"):
        journal.add_trial(0, None, {"x": 1}, ["x=1"])
    assert not journal.lost and not (tmp_path / (JOURNAL_NAME + ".recovered")).exists()
    journal.close()
    with Journal.open(tmp_path) as j:
        assert j.trials() == []


def test_a_format_1_journal_is_read_and_marked_format_2_once_written_to(tmp_path: Path) -> None:
    """Format 1 (before early stopping) is read; written to, it becomes format 2, which an older
    hydra-sigopt refuses by name instead of neither counting nor posting the stopped trials."""
    Journal.create(tmp_path, META).close()
    db = sqlite3.connect(tmp_path / JOURNAL_NAME)
    db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (json.dumps(1),))
    db.commit()
    db.close()
    with Journal.open(tmp_path, readonly=True) as journal:
        assert journal.meta()["format_version"] == 1  # a reader changes nothing
    with Journal.open(tmp_path) as journal:
        assert journal.meta()["format_version"] == 2


def test_a_journal_made_before_nonces_is_read_and_given_one_once_written_to(tmp_path: Path) -> None:
    """A journal with application id 0 (made before the lost-journal guard used it) is read as it
    is; opened to write, it gets its own nonce in the file's header, and an overwrite is noticed."""
    Journal.create(tmp_path, META).close()
    db = sqlite3.connect(tmp_path / JOURNAL_NAME)
    db.execute("PRAGMA application_id = 0")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = (tmp_path / JOURNAL_NAME).read_bytes()
    assert before[68:72] == bytes(4)
    with Journal.open(tmp_path, readonly=True) as journal:
        assert journal.meta()["name"] == "t"
    assert (tmp_path / JOURNAL_NAME).read_bytes() == before  # a reader changes nothing
    other = tmp_path / "other.sqlite"  # a valid database, larger than the journal
    db = sqlite3.connect(other)
    with db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES (?)", ("x" * 100_000,))
    db.close()
    with Journal.open(tmp_path) as journal:
        assert (tmp_path / JOURNAL_NAME).read_bytes()[68:72] != bytes(4)
        journal.add_trial(0, None, {"x": 1}, ["x=1"])
        shutil.copyfile(other, tmp_path / JOURNAL_NAME)  # in place: the journal keeps its inode
        with pytest.raises(JournalLostError, match="was overwritten with another database"):
            journal.add_trial(1, None, {"x": 2}, ["x=2"])
    assert (tmp_path / JOURNAL_NAME).read_bytes() == other.read_bytes()
    os.replace(tmp_path / (JOURNAL_NAME + ".recovered"), tmp_path / JOURNAL_NAME)
    with Journal.open(tmp_path, readonly=True) as journal:
        assert [t.number for t in journal.trials()] == [0]


def test_a_sweep_dir_removed_whole_gets_its_journal_back_at_the_next_write(tmp_path: Path) -> None:
    """A cleanup script's `rm -rf multirun/...` under a running sweep (submitit_local jobs, nothing
    making the folder again before the next write): the guard gave up ("its state could not be
    saved, so this sweep cannot be resumed") instead of putting the journal back."""
    sweep_dir = tmp_path / "multirun" / "12-00-00"
    journal = Journal.create(sweep_dir, META)
    journal.add_trial(0, None, {"x": 1}, ["x=1"])
    shutil.rmtree(tmp_path / "multirun")
    with pytest.raises(JournalLostError, match="restored from the sweeper's open copy") as lost:
        journal.add_trial(1, None, {"x": 2}, ["x=2"])
    assert lost.value.resumable
    with Journal.open(sweep_dir) as j:
        assert [t.number for t in j.trials()] == [0]


def test_a_sweep_dir_renamed_under_the_sweep_is_not_made_again_beside_its_new_name(tmp_path: Path) -> None:
    """`mv multirun/a multirun/renamed` under a running sweep: the guard took the journal for
    deleted, made `multirun/a` again with a restored journal, and the sweep then had two
    resumable journals of the same trials, neither refused as a copy (found by review)."""
    sweep_dir = tmp_path / "multirun" / "a"
    journal = Journal.create(sweep_dir, META)
    journal.add_trial(0, None, {"x": 1}, ["x=1"])
    renamed = tmp_path / "multirun" / "renamed"
    sweep_dir.rename(renamed)
    with pytest.raises(JournalLostError, match="moved") as lost:
        journal.add_trial(1, None, {"x": 2}, ["x=2"])
    assert str(renamed) in str(lost.value)
    assert lost.value.moved_to == renamed
    assert not sweep_dir.exists()
    with Journal.open(renamed) as j:
        assert [t.number for t in j.trials()] == [0]


def test_a_journal_whose_state_could_not_be_saved_is_not_said_to_be_resumable(tmp_path: Path) -> None:
    """Its stop said "this sweep cannot be resumed", then "Continue this sweep with: ..."."""
    sweep_dir = tmp_path / "sweep"
    journal = Journal.create(sweep_dir, META)
    shutil.rmtree(sweep_dir)
    sweep_dir.write_text("a file where the sweep dir was: nothing can be saved there")
    with pytest.raises(JournalLostError, match="cannot be resumed") as lost:
        journal.add_trial(0, None, {"x": 1}, ["x=1"])
    assert not lost.value.resumable
