"""The local engine owns its random state: an in-process app that seeds (or draws from) numpy's and
Python's global generators neither resets the engine nor is seeded by it (issue: the engine shared
numpy's global random state with in-process apps)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy
import pytest
from conftest import run_example

from hydra_sigopt.backends import create_backend
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space

# A training script in the style of lightning-hydra-template: it seeds every generator with a
# constant (what Lightning's seed_everything does), trains, and returns a loss. It also records
# what it saw, so the test can check the engine did not touch the app's generators.
SEEDING_APP = """
import json, random, sys
import hydra
import numpy as np

@hydra.main(version_base=None, config_path=".", config_name="config")
def train(cfg):
    if cfg.seed is not None:
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
    noise = float(np.random.random())  # the app's own draw: its generator is its own business
    with open(cfg.log, "a") as f:
        f.write(json.dumps({"x": cfg.x, "y": cfg.y, "noise": noise, "py": random.random()}) + "\\n")
    return (cfg.x - 0.3) ** 2 + (cfg.y - 0.6) ** 2

if __name__ == "__main__":
    train()
"""

CONFIG = """
defaults:
  - override hydra/sweeper: sigopt
  - _self_
x: 0.0
y: 0.0
seed: 42
log: trials.jsonl
hydra:
  sweeper:
    observation_budget: 10
    params:
      x: interval(0, 1)
      y: interval(0, 1)
"""


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(CONFIG)
    app = folder / "train.py"
    app.write_text(SEEDING_APP)
    return app


def sweep(workdir: Path, name: str, *overrides: str) -> list[dict[str, Any]]:
    """Run the seeding app as a real multirun in sweep dir ``name``; return what this run's trials saw."""
    app = write_app(workdir / "app")
    log = workdir / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    run_example(workdir, f"log={log}", *overrides, sweep_dir=workdir / name, app=app).assert_ok()
    return [json.loads(line) for line in log.read_text().splitlines()]


def points(seen: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [(t["x"], t["y"]) for t in seen]


@pytest.mark.slow
def test_an_app_that_seeds_numpy_in_process_gets_a_new_point_every_trial(workdir: Path) -> None:
    seen = points(sweep(workdir, "seeded"))
    assert len(seen) == 10
    assert len(set(seen)) == 10, f"repeated suggestions: {seen}"


@pytest.mark.slow
def test_the_same_sweeper_seed_gives_the_same_sweep_whatever_the_app_does(workdir: Path) -> None:
    same_seed = ("hydra.sweeper.seed=5", "hydra.sweeper.observation_budget=6")
    seeding = sweep(workdir, "seeding", *same_seed)
    not_seeding = sweep(workdir, "not_seeding", *same_seed, "seed=null")
    assert points(seeding) == points(not_seeding)
    again = sweep(workdir, "again", *same_seed, "seed=null")
    assert points(again) == points(not_seeding)
    # The sweeper's seed is not the app's: an app that does not seed draws differently each run.
    assert [t["noise"] for t in again] != [t["noise"] for t in not_seeding]
    assert [t["py"] for t in again] != [t["py"] for t in not_seeding]


@pytest.mark.slow
def test_a_seeded_sweep_that_is_extended_does_not_replay_its_first_points(workdir: Path) -> None:
    first = sweep(workdir, "extended", "hydra.sweeper.seed=3", "hydra.sweeper.observation_budget=2")
    both = sweep(workdir, "extended", "hydra.sweeper.seed=3", "hydra.sweeper.observation_budget=4")
    assert len(both) == 2  # the log of the second run only: trials #2 and #3
    assert not set(points(both)) & set(points(first)), (points(first), points(both))


# ---------------------------------------------------------------------------- the backend itself


def definition() -> ExperimentDefinition:
    space = build_space({"x": "interval(0, 1)", "n": "int(interval(1, 5))", "opt": "choice(sgd, adam)"})
    return ExperimentDefinition("t", space, parse_metrics([{"name": "y", "objective": "minimize"}]), 20, 2)


def test_the_engine_leaves_the_global_generators_exactly_as_it_found_them() -> None:
    numpy.random.seed(123)
    random.seed(123)
    expected_numpy, expected_random = numpy.random.random(3).tolist(), [random.random() for _ in range(3)]
    numpy.random.seed(123)
    random.seed(123)
    backend = create_backend("lite", seed=9)
    backend.start(definition())
    for i in range(8):  # random phase and model phase
        s = backend.suggest([{"x": 0.5, "n": 2, "opt": "sgd"}])
        backend.observe(s, [MetricValue("y", float(i))])
    assert numpy.random.random(3).tolist() == expected_numpy
    assert [random.random() for _ in range(3)] == expected_random


def test_reseeding_the_global_generators_between_suggestions_changes_nothing() -> None:
    def run(reseed: bool) -> list[dict[str, Any]]:
        backend = create_backend("lite", seed=4)
        backend.start(definition())
        out = []
        for i in range(8):
            if reseed:
                numpy.random.seed(0)
                random.seed(0)
            s = backend.suggest([])
            backend.observe(s, [MetricValue("y", float(i % 3))])
            out.append(dict(s.assignments))
        return out

    reseeded = run(reseed=True)
    assert reseeded == run(reseed=False)
    assert len({json.dumps(a, sort_keys=True) for a in reseeded}) == len(reseeded)
