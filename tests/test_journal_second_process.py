"""Another process opening the journal while a sweeper runs must not cost the sweeper its later commits.

A user looks into a running sweep with ``sqlite3 sweep/sigopt_journal.sqlite`` (or a script of
theirs): a read-write connection that reads and closes. The sweeper's guard read the journal's header
with open()/close() before each write, and on POSIX closing any descriptor of a file drops every
fcntl lock the process holds on it, SQLite's too. The other connection, closing, then took itself
for the journal's last one and removed the WAL the sweeper still wrote to: what the sweeper committed
after it was seen by no other process, and a ``kill -9`` of the sweeper lost it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import finish_example, start_example, trial_states
from small_apps import write_app

from hydra_sigopt.journal import JOURNAL_NAME

pytestmark = pytest.mark.slow

#: Trial #0 ends at once; each later trial says it started, then waits for its go file.
TASK = """
n = job_num()
folder = Path(os.environ["SIGNALS_DIR"])
(folder / f"started-{n}").touch()
while n > 0 and not (folder / f"go-{n}").exists():
    time.sleep(0.05)
return cfg.x
"""

#: What ``sqlite3 sweep/sigopt_journal.sqlite 'SELECT ...'`` does: open read-write, read, close.
READ_WRITE_LOOK = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1])\n"
    "print(db.execute('SELECT COUNT(*) FROM trials').fetchone()[0])\n"
    "db.close()\n"
)

SECOND_PROCESSES = ("a read-write sqlite3 connection", "hydra-sigopt status")


def second_process(which: str, sweep_dir: Path) -> list[str]:
    """The command of another process looking at the running sweep's journal."""
    if which == "hydra-sigopt status":  # read-only (mode=ro): it never did harm, measured
        return [str(Path(sys.executable).with_name("hydra-sigopt")), "status", str(sweep_dir)]
    return [sys.executable, "-c", READ_WRITE_LOOK, str(sweep_dir / JOURNAL_NAME)]


def wait_for(path: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("second", SECOND_PROCESSES)
def test_commits_after_another_process_looked_at_the_journal_are_seen_and_survive_a_kill_9(
    tmp_path: Path, second: str
) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    app = write_app(tmp_path, TASK, helpers="import time\nfrom pathlib import Path", budget=4)
    proc, sweep_dir = start_example(tmp_path, app=app, env={"SIGNALS_DIR": str(signals)})
    try:
        wait_for(signals / "started-1")  # trial #0 journaled complete, #1 running (the sweeper wrote through its guard)
        looked = subprocess.run(second_process(second, sweep_dir), capture_output=True, text=True, timeout=120)
        assert looked.returncode == 0, looked.stdout + looked.stderr
        (signals / "go-1").touch()
        wait_for(signals / "started-2")  # the sweeper committed #1's result and #2's start after the look
        seen_live = trial_states(sweep_dir)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        finish_example(proc, sweep_dir)
    after_kill = trial_states(sweep_dir)
    assert {n: state for n, (state, _, _) in seen_live.items()} == {0: "completed", 1: "completed", 2: "running"}
    assert seen_live[1][2], "trial #1's observation was not seen"
    assert after_kill == seen_live


#: A sweeper's journal use in one process, with a second journal of the same file opened and closed
#: in it meanwhile (a read of its own state): that close must not drop the first one's locks either.
SWEEPER_WITH_A_PEEK = """
import sys, time
from hydra_sigopt.journal import Journal
meta = {"experiment_id": "-1", "backend": "lite", "identity": {"parameters": [], "metrics": []}, "fingerprint": "f"}
journal = Journal.create(sys.argv[1], meta)
journal.add_trial(0, "1", {"x": 0.5}, ["x=0.5"])
journal.mark_running([0])
with Journal.open(sys.argv[1], readonly=True) as peek:
    peek.trials()
print("looked", flush=True)
sys.stdin.readline()
journal.mark_abandoned(0, "stopped")
print("committed", flush=True)
time.sleep(600)
"""


def test_a_second_journal_closed_in_the_sweepers_process_keeps_its_commits_safe(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweeper = subprocess.Popen(
        [sys.executable, "-c", SWEEPER_WITH_A_PEEK, str(sweep_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sweeper.stdout is not None and sweeper.stdin is not None
        assert sweeper.stdout.readline().strip() == "looked"
        looked = subprocess.run(second_process("a read-write sqlite3 connection", sweep_dir), capture_output=True)
        assert looked.returncode == 0, looked.stderr
        sweeper.stdin.write("\n")
        sweeper.stdin.flush()
        assert sweeper.stdout.readline().strip() == "committed"
        seen_live = trial_states(sweep_dir)
    finally:
        sweeper.kill()
        sweeper.communicate()
    assert seen_live[0][0] == "abandoned"
    assert trial_states(sweep_dir)[0][0] == "abandoned"
