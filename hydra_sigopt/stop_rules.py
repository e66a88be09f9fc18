"""Early-stopping rules: whether a trial's latest report says it is not worth finishing.

Pure functions of the reports so far (no journal, file, clock or randomness), so that the same
reports always give the same decision and a resumed sweep decides as the stopped one would have.
:mod:`hydra_sigopt.early_stopping` feeds them the journaled reports and carries their decisions out.

* ``median``, after Optuna's ``MedianPruner``: at step ``s`` (from ``min_step`` on, below ``max_step``), stop a trial
  whose best value so far is worse than the median of the other trials' values at ``s``, once at
  least :data:`MIN_TRIALS_AT_STEP` other trials reported at ``s``.
* ``asha``, the stopping variant of asynchronous successive halving (Li et al.; Ray Tune's
  ``ASHAScheduler``): rungs at ``min_step * reduction_factor**k`` below ``max_step``. The first
  report at or past a rung records the trial's value there; the trial is stopped if that value is
  worse than the ``1 - 1/reduction_factor`` quantile of the values recorded at that rung before
  it (outside their top ``1/reduction_factor``). No rung waits for other trials: the first trial
  at a rung always passes it.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

RULES = ("none", "median", "asha")
#: What the engine learns from a stopped trial: its last reported values, or a failed observation.
STOPPED_OBSERVATIONS = ("last_value", "failed")
#: With tasks: a trial judged against its own task's trials only, or against every task's.
TASK_COMPARISONS = ("apart", "together")
#: ``median``: reports of at least this many other trials at a step before it judges there.
MIN_TRIALS_AT_STEP = 3

#: Reports of one metric: by trial number, that trial's value at each step it reported.
Curves = Mapping[int, Mapping[int, float]]


@dataclass(frozen=True)
class StopRule:
    """``hydra.sweeper.early_stopping``, checked (see :func:`hydra_sigopt.settings.parse_early_stopping`)."""

    rule: str = "none"
    metric: str = "value"
    minimize: bool = True
    min_step: int = 1
    max_step: int | None = None
    reduction_factor: float = 3.0
    #: The steps all trials may report together (None: no limit): once spent, no trial starts and
    #: running trials are stopped at their next report. Not a rule: it applies with rule none too.
    step_budget: int | None = None
    #: What the engine learns from a stopped trial (:data:`STOPPED_OBSERVATIONS`).
    observe_stopped: str = "last_value"
    #: Seconds a stopped trial's job may run on after its next report was due (to save a
    #: checkpoint) before the sweeper cancels it to free its slot.
    stop_grace_s: float = 60.0
    #: With tasks (:data:`TASK_COMPARISONS`): ``together`` when a cheaper task only cuts the same
    #: training short (a step means the same in every task), else ``apart``.
    compare_tasks: str = "apart"

    @property
    def active(self) -> bool:
        return self.rule != "none"

    @property
    def reads_reports(self) -> bool:
        """Whether the sweeper must read the trials' reports while they run (a rule, or a step budget)."""
        return self.active or self.step_budget is not None

    def worse(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly worse than ``b`` in this metric's direction."""
        return a > b if self.minimize else a < b


def open_ended_warning(rule: StopRule) -> str | None:
    """What a rule without ``max_step`` does to a trial's last report, if it applies: it judges it
    too (asha: when the last epoch is a rung, as 9 is of 1, 3, 9), so a trial trained to its end is
    recorded stopped there."""
    if not rule.active or rule.max_step is not None:
        return None
    return (
        "early_stopping.max_step is not set: the rule judges a trial's last report too, and a trial it stops there "
        "is recorded as stopped (its code after the training does not run, and it cannot be the best); set "
        "max_step to the steps of a full training (your epochs)"
    )


def unstoppable_warning(rule: StopRule, reads_reports_while_running: bool, launcher: str) -> str | None:
    """What a rule does on a launcher whose trials' reports are read only once their batch ended:
    nothing, and a sweep that trained every trial to its end said not why."""
    if not rule.active or reads_reports_while_running:
        return None
    return (
        f"early_stopping.rule={rule.rule}: {launcher} runs each batch to its end before the sweeper reads "
        "its trials' reports, so no trial is stopped early (the reports are journaled); to stop trials, "
        "use hydra/launcher=submitit_local or submitit_slurm, or the basic launcher"
    )


def should_stop(rule: StopRule, curves: Curves, trial: int, step: int) -> bool:
    """Whether ``trial``'s report at ``step`` (already in ``curves``) stops it under ``rule``."""
    if not _judged_at(rule, step) or step not in curves.get(trial, {}):
        return False
    if rule.rule == "median":
        return _median_says_stop(rule, curves, trial, step)
    return _asha_says_stop(rule, curves, trial, step)


def decides_at(rule: StopRule, previous: int | None, step: int) -> bool:
    """Whether a report at ``step`` (the trial's previous report at ``previous``) can stop the trial
    by ``rule``: from ``min_step`` on for ``median``; at a newly reached rung for ``asha``. The
    trial waits a moment for the verdict there (see :mod:`hydra_sigopt.reporting`), nowhere else."""
    if not _judged_at(rule, step):
        return False
    if rule.rule == "median":
        return True
    reached_before = set(rungs(rule, previous)) if previous is not None else set()
    return any(r not in reached_before for r in rungs(rule, step))


def _judged_at(rule: StopRule, step: int) -> bool:
    """Whether any report at ``step`` may be judged: from ``min_step`` on, and below ``max_step`` (a
    trial there has trained in full: stopping it saves nothing and keeps it from the best trial)."""
    return rule.active and rule.min_step <= step and (rule.max_step is None or step < rule.max_step)


# ---------------------------------------------------------------------------------- median


def _median_says_stop(rule: StopRule, curves: Curves, trial: int, step: int) -> bool:
    others = [curve[step] for number, curve in curves.items() if number != trial and step in curve]
    if len(others) < MIN_TRIALS_AT_STEP:
        return False
    so_far = [v for s, v in curves[trial].items() if s <= step]
    best = min(so_far) if rule.minimize else max(so_far)
    return rule.worse(best, statistics.median(others))


# ---------------------------------------------------------------------------------- asha


def rungs(rule: StopRule, up_to: int) -> list[int]:
    """The rung steps ``min_step * reduction_factor**k`` below ``max_step`` and not past ``up_to``,
    ascending. None at ``max_step``: a trial there has trained in full and there is nothing left to
    save by stopping it (Ray Tune's milestones are below ``max_t`` too); it completes."""
    top = up_to if rule.max_step is None else min(up_to, rule.max_step - 1)
    return list(_rungs_to(rule.min_step, rule.reduction_factor, top))


@functools.lru_cache(maxsize=1024)
def _rungs_to(min_step: int, factor: float, top: int) -> tuple[int, ...]:
    """The distinct rungs up to ``top``. Each step to the next rung skips the powers that round to
    the same step: a factor near 1 (1.0001) has tens of thousands of them per step, and looping
    over them, for every other trial at every report, took the sweeper's CPU for minutes."""
    found: list[int] = []
    k = 0
    while (rung := math.ceil(min_step * factor**k - 1e-9)) <= top:
        if not found or rung > found[-1]:
            found.append(rung)
        # The first power past this rung (a hair early against rounding: one too early only repeats it).
        k = max(k + 1, math.floor(math.log(rung / min_step) / math.log(factor) - 1e-9) + 1)
    return tuple(found)


def rung_of(rule: StopRule, curve: Mapping[int, float], step: int) -> int | None:
    """The rung ``step`` records its trial at: the highest rung reached at ``step`` and not before
    it (by an earlier report of the same trial), as in Ray Tune; None if it records at none."""
    earlier = [s for s in curve if s < step]
    reached_before = set(rungs(rule, max(earlier))) if earlier else set()
    new = [r for r in rungs(rule, step) if r not in reached_before]
    return new[-1] if new else None


def _asha_says_stop(rule: StopRule, curves: Curves, trial: int, step: int) -> bool:
    curve = curves[trial]
    rung = rung_of(rule, curve, step)
    if rung is None:
        return False
    others = [v for n, c in curves.items() if n != trial for v in _recorded_value(rule, c, rung)]
    if not others:
        return False
    return rule.worse(curve[step], _cutoff(rule, others))


def _recorded_value(rule: StopRule, curve: Mapping[int, float], rung: int) -> list[float]:
    """The value a trial's curve recorded at ``rung``, if any: only its first report at or past the
    rung can record there (a report that jumps past several rungs records at the highest)."""
    first = min((s for s in curve if s >= rung), default=None)
    if first is None or rung_of(rule, curve, first) != rung:
        return []
    return [curve[first]]


def _cutoff(rule: StopRule, values: list[float]) -> float:
    """The value a trial must match to be in the top ``1/reduction_factor`` of ``values``."""
    top_fraction = 1.0 / rule.reduction_factor
    quantile = top_fraction if rule.minimize else 1.0 - top_fraction
    return _percentile(sorted(values), quantile)


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default percentile)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
