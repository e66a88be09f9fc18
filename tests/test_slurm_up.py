"""scripts/slurm-up.sh's smoke job, against fake sbatch and sacct (the real ones are in test_slurm*).

A CI run once failed before any test ran: the controller had died before saving its state, so it
gave the smoke job the id of a job a killed test run had submitted and cancelled, and sacct answered
with that older job before the smoke job reached the accounting database.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-up.sh"

FAKE_SBATCH = """#!/usr/bin/env bash
# Writes the job's output where -o says, as the job would, and prints its id.
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then echo ok > "${2//%j/569}"; fi
  shift
done
echo 569
"""

# sacct as slurmdbd answers it: the cancelled job of the same id is on record; the smoke job shows up
# from the second call on. Without -D only the newest record of an id is printed.
FAKE_SACCT = """#!/usr/bin/env bash
calls=$(( $(cat "$FAKE_DIR/calls" 2>/dev/null || echo 0) + 1 ))
echo "$calls" > "$FAKE_DIR/calls"
records=("2026-01-01T00:00:00|CANCELLED by 0")
if [ "$calls" -ge 2 ]; then records+=("$(date +%Y-%m-%dT%H:%M:%S)|COMPLETED"); fi
case " $* " in *" -D "*) ;; *) records=("${records[-1]}") ;; esac
for record in "${records[@]}"; do
  case " $* " in
    *Submit,State*) echo "$record" ;;
    *) state=${record#*|}; echo "${state%% *}" ;;
  esac
done
"""


def _fake_commands(folder: Path) -> None:
    for name, text in {"sbatch": FAKE_SBATCH, "sacct": FAKE_SACCT}.items():
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_smoke_job_is_not_mistaken_for_an_earlier_job_of_the_same_id(tmp_path: Path) -> None:
    _fake_commands(tmp_path)
    (tmp_path / "run" / "jobs").mkdir(parents=True)
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "FAKE_DIR": str(tmp_path),
        "SLURM_RUN_DIR": str(tmp_path / "run"),
    }
    done = subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && smoke_job"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "smoke job 569 COMPLETED" in done.stderr
    assert "CANCELLED" not in done.stderr


def test_sourcing_the_script_starts_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", f"source {SCRIPT} && type smoke_job >/dev/null && echo defined"],
        env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin", "SLURM_RUN_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "defined"
    assert done.stderr == ""
    assert not (tmp_path / "run").exists()
