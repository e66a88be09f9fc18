"""Dead-job notice: how long after a trial's Slurm job is killed the sweep knows it ended.

On the real cluster (scripts/slurm-up.sh): one trial whose task sleeps 300 s; once the task runs
its job is ``scancel``ed, and the clock starts. Contenders, one at a time, interleaved per repeat:

* ``sigopt``: this sweeper's async scheduler (hydra/launcher=submitit_slurm). Noticed = when the
  trial's failure was journaled (its ``ended_at``); also the time until the multirun exited.
* ``basic``: Hydra's BasicSweeper with the same launcher (``launch()`` then waits in submitit's
  ``Job.result()``, as the Optuna sweeper does). Only its exit is observable.

Target: the sweeper notices a dead job within 3 s plus its Slurm poll interval (0.5 s); median
over the repeats.

    python benchmarks/dead_job_notice.py           # full: 5 repeats
    python benchmarks/dead_job_notice.py --quick   # CI smoke: 1 repeat
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common

NAME = "dead_job_notice"
TARGET_S = 3.0 + 0.5
SLURM = (
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=10",
)
TASK = ("problem=zero", "log_trials=false", "delay=300", "delay_sigma=0")
CONTENDERS = {
    "sigopt": (
        "hydra/sweeper=sigopt",
        "+space=zero",
        "hydra.sweeper.observation_budget=1",
        "hydra.sweeper.dev_run=true",
    ),
    "basic": ("hydra/sweeper=basic", "x1=0.5"),
}


def slurm_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "no Slurm here (start one with: sudo bash scripts/slurm-up.sh)"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not any(s.startswith(("idle", "mix")) for s in out.stdout.split()):
        return f"no usable Slurm node ({out.stdout.strip() or out.stderr.strip()})"
    return None


def kill_when_running(sweep_dir: Path, killed: dict[str, Any], stop: threading.Event) -> None:
    """scancel the trial's job once its task runs (Hydra made its job dir); note when."""
    while not stop.is_set():
        jobs = [p.name for p in (sweep_dir / ".submitit").glob("*") if p.name.isdigit()]
        if jobs and (sweep_dir / "0" / ".hydra").is_dir():
            time.sleep(1.0)  # well inside the task's sleep
            subprocess.run(["scancel", jobs[0]], check=True)
            killed["at"], killed["job_id"] = time.time(), jobs[0]
            return
        stop.wait(0.2)


def run_once(contender: str, sweep_dir: Path) -> dict[str, Any]:
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)  # before the killer looks: an earlier run's job dirs would fool it
    killed: dict[str, Any] = {}
    stop = threading.Event()
    killer = threading.Thread(target=kill_when_running, args=(sweep_dir, killed, stop), daemon=True)
    killer.start()
    overrides = [*CONTENDERS[contender], *SLURM, *TASK]
    run = common.run_app(contender, sweep_dir, overrides, timeout=900)
    stop.set()
    killer.join()
    if "at" not in killed:
        raise RuntimeError(f"{contender}: the trial's job never ran:\n{run.output[-2000:]}")
    exited_at = run.extra["started_epoch"] + run.wall_s
    row = {"contender": contender, "job_id": killed["job_id"], "exit_s": exited_at - killed["at"]}
    if contender == "sigopt":
        row["noticed_s"] = journaled_end(sweep_dir) - killed["at"]
    return row


def journaled_end(sweep_dir: Path) -> float:
    from hydra_sigopt.journal import Journal

    with Journal.open(sweep_dir, readonly=True) as journal:
        trial = journal.trials()[0]
    if trial.state != "failed" or trial.ended_at is None:
        raise RuntimeError(f"the cancelled trial was journaled as {trial.state}")
    return float(trial.ended_at)


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    problem = slurm_problem()
    if problem:
        print(f"{NAME}: skipped: {problem}")
        return 1 if args.strict else 0
    repeats = 1 if args.quick else 5
    out = common.results_dir(NAME)
    started = time.perf_counter()
    print(f"{NAME}: a 300 s trial's Slurm job scancelled once its task runs; {repeats} repeat(s)", flush=True)
    rows = []
    for r in range(repeats):
        for contender in CONTENDERS:
            row = run_once(contender, out / "runs" / f"{contender}-{r}")
            rows.append(row)
            print(f"  {contender}#{r}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.endswith("_s")))
    noticed = common.median(r["noticed_s"] for r in rows if r["contender"] == "sigopt")
    exits = {c: common.median(r["exit_s"] for r in rows if r["contender"] == c) for c in CONTENDERS}
    ok = noticed <= TARGET_S
    headers = ["contender", "noticed (s, median)", "multirun exited (s, median)"]
    table_rows = [["sigopt (async)", noticed, exits["sigopt"]], ["basic + submitit_slurm", None, exits["basic"]]]
    target = f"Target: sigopt notices a dead job within {TARGET_S} s: {noticed:.2f} s -> {common.verdict(ok)}"
    print(common.text_table(headers, table_rows))
    print(target)
    print(f"Wall time of this benchmark: {time.perf_counter() - started:.0f} s")
    common.write_json(out / f"{NAME}.json", {"rows": rows, "machine": common.machine_facts(), "target": ok})
    facts = common.machine_facts()
    md = "\n\n".join(
        [
            f"### Dead-job notice\n\nA 300 s trial's Slurm job scancelled once its task runs; {repeats} repeats.",
            common.markdown_table(headers, table_rows),
            f"**{target}**",
            f"Machine: {facts['nproc']} x {facts['cpu_model']}, Python {facts['python']}, single-node Slurm.",
        ]
    )
    common.publish(NAME, None, md, args.quick)
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
