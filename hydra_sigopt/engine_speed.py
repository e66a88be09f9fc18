"""Said at the start of a sweep: what in its space or settings makes the local engine slow, or keeps
it from learning, and what helps.

The lite engine's Gaussian process (``compute_mode: default``) costs seconds per suggestion where
the space is wide or the data large; ``compute_mode: kde_only`` stays well under a second
(README, "Benchmarks"). Nothing is refused: a slow engine is a choice, but a known one.

The engine also suggests at random until enough trials have completed; with early stopping and
``observe_stopped: failed`` a stopped trial does not count, which can keep it random for the whole
sweep (README, "Benchmarks": identical to random search on Hartmann-6).
"""

from __future__ import annotations

from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.settings import SweepSettings

#: The GP encodes a categorical as one dimension per value: a 1000-way categorical took 17-25 s per
#: GP suggestion on 2 cores (issue 16). 100 values is a round number well below that, not a
#: measured limit.
WIDE_CATEGORICAL = 100
#: The GP's fit grows with the cube of the observations: seconds per suggestion at 200 on 2 cores,
#: single suggestions of 15-30 s seen there (README, "Benchmarks"); sigoptlite itself gives up the
#: GP for its KDE beyond 600 observations.
MANY_OBSERVATIONS = 300

KDE_ONLY = "hydra.sweeper.compute_mode=kde_only"


def slow_engine_warnings(settings: SweepSettings, definition: ExperimentDefinition) -> list[str]:
    """One line per reason the lite engine's GP will be slow for this sweep (none for other engines)."""
    if settings.backend != "lite" or settings.dev_run or settings.compute_mode != "default":
        return []
    warnings = [_wide_categorical(name, width) for name, width in _categorical_widths(definition)]
    # With tasks the budget counts costs: the cheapest task's trials make the most observations.
    cheapest = min((t.cost for t in definition.tasks), default=1.0)
    observations = round(definition.observation_budget / cheapest)
    if observations >= MANY_OBSERVATIONS:
        cheap = f" with tasks costing down to {cheapest:g} (up to {observations} observations)" if cheapest < 1 else ""
        warnings.append(
            f"observation_budget is {definition.observation_budget}{cheap}: the local engine's Gaussian process "
            f"takes seconds per suggestion from about 200 observations on; {KDE_ONLY} keeps it under a second"
        )
    return warnings


def _categorical_widths(definition: ExperimentDefinition) -> list[tuple[str, int]]:
    return [
        (p.name, len(p.categories))
        for p in definition.space.parameters
        if p.categories is not None and len(p.categories) >= WIDE_CATEGORICAL
    ]


def _wide_categorical(name: str, width: int) -> str:
    return (
        f"params.{name} is a categorical of {width} values: the local engine's Gaussian process takes "
        f"one dimension per value and can spend tens of seconds per suggestion; {KDE_ONLY} is much "
        "faster (or sweep an int range instead, if the values are ordered)"
    )


def stopped_as_failed_warning(settings: SweepSettings, definition: ExperimentDefinition) -> str | None:
    """What ``early_stopping.observe_stopped: failed`` costs the local engine, if it applies."""
    rule = settings.early_stopping
    if settings.backend != "lite" or settings.dev_run or not rule.active or rule.observe_stopped != "failed":
        return None
    completed = random_start_length(len(definition.space.to_sigopt()["parameters"]))
    return (
        f"early_stopping.observe_stopped=failed: the local engine suggests at random until {completed} trials have "
        "completed, and a stopped trial is a failed observation, so with early stopping it may stay random for most "
        "of the sweep; observe_stopped=last_value (the default) lets it learn from stopped trials"
    )


def random_start_length(dimension: int) -> int:
    """Completed trials after which sigoptlite stops suggesting at random: more than max(2 x dimension, 4)
    (``Broker.is_initialization_phase``, pinned by tests/test_engine_speed.py)."""
    return max(2 * dimension, 4) + 1
