"""The benchmarks' Hydra app: one objective per ``problem`` (see problems.py), all minimized.

    python benchmarks/apps/objective.py problem=branin x1=1 x2=2
    python benchmarks/apps/objective.py -m hydra/sweeper=sigopt problem=branin \
        "hydra.sweeper.params.x1='interval(-5.0,10.0)'" "hydra.sweeper.params.x2='interval(0.0,15.0)'"

In a multirun each trial appends ``{job_num, value, ...}`` to ``<sweep dir>/bench_trials.jsonl``
(``log_trials``), which is how the benchmarks read every contender's per-trial values alike.
``delay`` > 0 sleeps a per-job-number lognormal duration first (same for every contender).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig
from problems import delay_for, evaluate


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds, 10 ms resolution), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    num = int(hc.job.num) if multirun else 0
    started = time.time()
    slept = delay_for(num, float(cfg.delay), float(cfg.delay_sigma), int(cfg.delay_seed))
    if slept:
        time.sleep(slept)
    value = evaluate(str(cfg.problem), cfg)
    ended = time.time()
    if multirun and cfg.log_trials:
        record = {
            "job_num": num,
            "value": value,
            "delay": slept,
            "started": started,
            "ended": ended,
            "pid": os.getpid(),
            # for the async benchmark's diagnosis: when this process and its parent (submitit's
            # local controller, or the sweeper itself with the basic launcher) started
            "process_started": process_started_at(os.getpid()),
            "parent_started": process_started_at(os.getppid()),
        }
        with open(Path(hc.sweep.dir) / "bench_trials.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
    return value


if __name__ == "__main__":
    main()
