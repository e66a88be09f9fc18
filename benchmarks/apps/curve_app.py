"""The early-stopping benchmark's Hydra app: trains one configuration of a curves.py problem step
by step and reports after every step; the sweeper may stop it (``report`` raises TrialStopped).

    python benchmarks/apps/curve_app.py problem=hartmann6_fidelity x1=0.2

Every step appends ``{job_num, step, value, time}`` to ``<sweep dir>/bench_reports.jsonl`` first,
so the benchmark counts each contender's resource (steps summed over trials) alike; each trial
appends ``{job_num, start, end}`` to ``bench_spans.jsonl`` as it ends (stopped or not): the time
its slot was busy with it, for the benchmark's slot use.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import hydra
from curves import curve
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="curves")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    log = Path(hc.sweep.dir) / "bench_reports.jsonl" if hc.mode == RunMode.MULTIRUN else None
    num = int(hc.job.num) if log else 0
    started = time.time()
    try:
        return train(cfg, log, num)
    finally:
        if log is not None:
            with open(log.with_name("bench_spans.jsonl"), "a") as f:
                f.write(json.dumps({"job_num": num, "start": started, "end": time.time()}) + "\n")


def train(cfg: DictConfig, log: Path | None, num: int) -> float:
    from hydra_sigopt import report

    value = float("nan")
    for step, value in enumerate(curve(str(cfg.problem), cfg), start=1):
        if step > int(cfg.steps):  # a cheaper task (SigOpt multitask) trains fewer steps
            break
        time.sleep(float(cfg.step_seconds))  # an analytic problem's steps take no time; real epochs do
        if log is not None:
            with open(log, "a") as f:
                f.write(json.dumps({"job_num": num, "step": step, "value": value, "time": time.time()}) + "\n")
        report(step, value=value)
    return value


if __name__ == "__main__":
    main()
