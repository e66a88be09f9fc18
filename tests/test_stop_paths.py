"""What every way a sweep stops leaves behind in the process that ran it (a notebook, a script that
runs several sweeps): no thread of the sweep's still at work, no file of it still written."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import small_apps

from hydra_sigopt.sweeper_time import BEAT_S

pytestmark = pytest.mark.slow

# Trial #1 deletes the sweep's journal (a clean-up script run too early): the sweep stops on it.
DELETES_THE_JOURNAL = """\
if job_num() == 1:
    for name in ("sigopt_journal.sqlite", "sigopt_journal.sqlite-wal", "sigopt_journal.sqlite-shm"):
        path = os.path.join(HydraConfig.get().sweep.dir, name)
        if os.path.exists(path):
            os.remove(path)
return cfg.x
"""

#: A user's script: runs the sweep in its own process, then goes on with other work.
SCRIPT = """\
import runpy, sys, threading, time
from pathlib import Path

sys.argv = [{app!r}, "-m", "hydra.sweep.dir={sweep_dir}"]
try:
    runpy.run_path({app!r}, run_name="__main__")
except SystemExit as exc:
    print("sweep exit", exc.code)
mark = Path({sweep_dir!r}) / ".hydra_sigopt" / "sweeper_alive"
before = mark.read_text()
time.sleep({wait})
print("threads left:", sorted(t.name for t in threading.enumerate() if t.name.startswith("hydra-sigopt")))
print("mark written after the sweep ended:", mark.read_text() != before)
"""


@pytest.mark.parametrize("task", [DELETES_THE_JOURNAL, "return cfg.x"], ids=["journal-lost", "budget-spent"])
def test_the_alive_mark_stops_with_the_sweep_however_it_ends(tmp_path: Path, task: str) -> None:
    """A sweep whose journal failed (lost, its disk full) left its alive-mark thread running: it
    rewrote the mark of a sweep that had ended for as long as the process lived, and status counted
    that time as time a sweeper ran."""
    app = small_apps.write_app(tmp_path, task, budget=3)
    sweep_dir = tmp_path / "sweep"
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT.format(app=str(app), sweep_dir=str(sweep_dir), wait=3 * BEAT_S))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if task == DELETES_THE_JOURNAL:
        assert "was deleted while the sweep ran" in output, textwrap.shorten(output[-3000:], 3000)
    assert "threads left: []" in done.stdout, output[-3000:]
    assert "mark written after the sweep ended: False" in done.stdout, output[-3000:]
