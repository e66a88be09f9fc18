"""What a sweep optimizes: the space, the metrics and the budget, as one validated definition."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from hydra_sigopt.metrics import Metric
from hydra_sigopt.space import SearchSpace
from hydra_sigopt.tasks import Task


@dataclass(frozen=True)
class ExperimentDefinition:
    name: str
    space: SearchSpace
    metrics: tuple[Metric, ...]
    #: Trials, or with tasks their costs (then it may be a fraction: the compute of 4.5 full trainings).
    observation_budget: float
    parallel_bandwidth: int
    # SigOpt experiment type: "offline" (Bayesian) or "random" (the original tool's dev run).
    type: str = "offline"
    #: SigOpt multitask (``hydra.sweeper.tasks``); empty: every trial is a full training.
    tasks: tuple[Task, ...] = ()

    def to_sigopt(self) -> dict[str, Any]:
        """The body of SigOpt's experiment-create call."""
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "metrics": [m.to_sigopt() for m in self.metrics],
            "observation_budget": self.engine_budget,
            "parallel_bandwidth": self.parallel_bandwidth,
        }
        body.update(self.space.to_sigopt())
        if self.tasks:
            body["tasks"] = [t.to_sigopt() for t in self.tasks]
        return body

    def identity(self) -> dict[str, Any]:
        """What must not change when a sweep is resumed: parameters, metrics, fixed overrides.

        The budget and bandwidth may change between runs (continuing with a larger budget is the
        usual way to extend a sweep); the name is cosmetic.
        """
        space = self.space.to_sigopt()
        identity = {
            "parameters": space["parameters"],
            "conditionals": space.get("conditionals", []),
            "linear_constraints": space.get("linear_constraints", []),
            "metrics": [m.to_sigopt() for m in self.metrics],
            "fixed_overrides": list(self.space.fixed_overrides),
            "type": self.type,
        }
        if self.tasks:  # only then: the fingerprints of sweeps without tasks stay what they were
            identity["tasks"] = [{**t.to_sigopt(), "overrides": list(t.overrides)} for t in self.tasks]
        return identity

    def fingerprint(self) -> str:
        """A stable hash of :meth:`identity`."""
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def engine_budget(self) -> int:
        """The budget as the engine takes it: both engines want a whole number (a SigOpt server and
        sigoptlite refuse 4.5). Rounded up, so that the engine plans for all the compute the sweep may
        spend; the sweep itself stops at the fraction."""
        return math.ceil(self.observation_budget)

    @property
    def optimized_metrics(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.strategy == "optimize")


#: What an identity key stands for, where its name alone does not say it.
_IDENTITY_NAMES = {"fixed_overrides": "the overrides every trial gets (fixed_overrides)"}


def describe_identity_change(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two :meth:`ExperimentDefinition.identity` dicts."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key == "parameters":
            old_p = {p["name"]: p for p in old.get(key, [])}
            new_p = {p["name"]: p for p in new.get(key, [])}
            for name in sorted(set(old_p) | set(new_p)):
                if name not in new_p:
                    out.append(f"parameter {name!r} was removed")
                elif name not in old_p:
                    out.append(f"parameter {name!r} was added")
                elif old_p[name] != new_p[name]:
                    out.append(f"parameter {name!r} changed from {old_p[name]} to {new_p[name]}")
        elif old.get(key) != new.get(key):
            out.append(f"{_IDENTITY_NAMES.get(key, key)} changed from {old.get(key)} to {new.get(key)}")
    return out
