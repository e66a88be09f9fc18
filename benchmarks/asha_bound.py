#!/usr/bin/env python
"""How early can successive halving reach full trainings' final regret? A bound, in simulated time.

Issue 17 asks that early stopping reach the full-fidelity sweep's final median regret with at most
35 % of its epochs; ``multi_fidelity.py`` measured 46 % (Hartmann-6) and 49 % (digits) with this
sweeper's ASHA. This script asks whether any setting of the rule could do better, without the
engine: random configurations on 4 slots in simulated time (one unit a step, no overhead), stopped
by this sweeper's own rule (``hydra_sigopt.stop_rules.should_stop``), for several rung schedules,
each against the same seeds' random search training every trial to the end. Regret is counted as
``multi_fidelity.py`` counts it: the best configuration *trained to the end* within the first r steps.

Two further rows separate what limits it:

* ``oracle ranking``: every step's value replaced by the configuration's final one, so the rule
  never stops a configuration for a misleading early value. What remains is the lag of the asynchronous
  rule itself: a configuration it keeps still trains to the end while the other slots spend steps.
* the lag's floor: a configuration started at once ends after ``MAX_STEP`` steps, while the 4 slots spend
  4 x ``MAX_STEP``: no configuration is trained to the end before that share of R.

    python benchmarks/asha_bound.py --target 2.04   # 40 seeds, R = 20 full trainings; 2.04: the full
                                                    # sweep's final median in multi_fidelity.py's table
    python benchmarks/asha_bound.py --quick         # 3 seeds, 2 schedules

hartmann6_fidelity only: its curves cost nothing, where digits_mlp trains an MLP per configuration.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import common

sys.path.insert(0, str(common.APPS))
import curves
from multi_fidelity import incumbents, steps_to_reach

from hydra_sigopt.stop_rules import StopRule, should_stop

NAME = "asha_bound"
PROBLEM = "hartmann6_fidelity"
SLOTS = 4
FULL = 20  # the resource R, in full trainings (multi_fidelity.py's default)
#: Rung schedules: (reduction_factor, min_step). multi_fidelity.py's sweeper runs use (3, 1).
SCHEDULES = ((2.0, 1), (3.0, 1), (4.0, 1), (9.0, 1), (3.0, 2), (3.0, 3))
QUICK_SCHEDULES = ((3.0, 1), (3.0, 3))


@dataclass
class _Running:
    number: int
    values: Iterator[float]
    step: int = 0


def random_config(rng: random.Random) -> dict[str, float]:
    return {name: rng.random() for name in curves.SPACES[PROBLEM]}


def simulate(seed: int, resource: int, rule: StopRule | None, oracle: bool = False) -> list[dict[str, Any]]:
    """One sweep in simulated time: every report as ``{time, step, value}``, in the order made.

    Each time unit, every slot's trial makes one step (one unit of resource); the rule judges each
    report against all reports made before it. A stopped or finished trial's slot takes a new
    random configuration at once. No trial starts once ``resource`` steps are spent.
    """
    rng = random.Random(seed)
    reported: dict[int, dict[int, float]] = {}
    reports: list[dict[str, Any]] = []
    slots: list[_Running | None] = [None] * SLOTS
    started = 0
    while len(reports) < resource:
        for i, running in enumerate(slots):
            if running is None:
                running = slots[i] = _start(rng, started, oracle)
                reported[started] = {}
                started += 1
            running.step += 1
            value = next(running.values)
            reported[running.number][running.step] = value
            reports.append({"time": len(reports), "step": running.step, "value": value})
            ended = running.step == curves.MAX_STEP
            if ended or (rule is not None and should_stop(rule, reported, running.number, running.step)):
                slots[i] = None
            if len(reports) >= resource:
                break
    return reports


def _start(rng: random.Random, number: int, oracle: bool) -> _Running:
    values = list(curves.curve(PROBLEM, random_config(rng)))
    return _Running(number, iter([values[-1]] * len(values) if oracle else values))


def asha(factor: float, min_step: int) -> StopRule:
    return StopRule(rule="asha", min_step=min_step, max_step=curves.MAX_STEP, reduction_factor=factor)


def median_regret_curve(seeds: list[int], resource: int, rule: StopRule | None, oracle: bool = False) -> list[float]:
    """The median over seeds of the regret of the best configuration trained to the end, step by step."""
    optimum = curves.OPTIMA[PROBLEM]
    assert optimum is not None
    runs = (simulate(seed, resource, rule, oracle) for seed in seeds)
    per_seed = [[v - optimum for v in incumbents(reports, resource)] for reports in runs]
    return [common.median(c[i] for c in per_seed) for i in range(resource)]


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[1], _options)
    seeds = list(range(args.seeds or (3 if args.quick else 40)))
    resource = (args.full or FULL) * curves.MAX_STEP
    started = time.time()
    full_curve = median_regret_curve(seeds, resource, None)
    target = full_curve[-1]
    targets = [target] + ([args.target] if args.target is not None else [])
    rows = [["random, every trial to the end", common.fmt(target), *(_share(full_curve, t, resource) for t in targets)]]
    for factor, min_step in QUICK_SCHEDULES if args.quick else SCHEDULES:
        rule = asha(factor, min_step)
        for oracle in (False, True):
            curve = median_regret_curve(seeds, resource, rule, oracle)
            label = f"random + ASHA, reduction_factor {factor:g}, min_step {min_step}"
            shares = [_share(curve, t, resource) for t in targets]
            rows.append([label + (", oracle ranking" if oracle else ""), common.fmt(curve[-1]), *shares])
    headers = ["contender", "median regret at R", "share of R to reach full trainings' final median"]
    headers += [f"share of R to reach {args.target:g}"] if args.target is not None else []
    floor = SLOTS * curves.MAX_STEP / resource
    text = "\n".join(
        [
            f"{NAME}: {PROBLEM}, R = {resource} steps ({resource // curves.MAX_STEP} full trainings of "
            f"{curves.MAX_STEP}), {SLOTS} slots, simulated time, {len(seeds)} seeds ({time.time() - started:.0f} s)",
            common.text_table(headers, rows),
            f"No configuration is trained to the end before {floor:.0%} of R "
            f"({SLOTS} slots x {curves.MAX_STEP} steps).",
        ]
    )
    print(text)
    common.publish(f"{NAME}_{len(seeds)}seeds_{resource // curves.MAX_STEP}full", None, text, args.quick)
    return 0


def _share(curve: list[float], target: float, resource: int) -> str:
    reached = steps_to_reach(curve, target)
    return "not reached" if reached is None else f"{reached / resource:.0%}"


def _options(parser: Any) -> None:
    parser.add_argument("--seeds", type=int, help="seeds (default 40; quick 3)")
    parser.add_argument("--full", type=int, help="the resource, in full trainings (default 20)")
    parser.add_argument("--target", type=float, help="also the share of R to reach this median regret")


if __name__ == "__main__":
    sys.exit(main())
