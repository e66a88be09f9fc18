"""How long a grid written as a range may be: counted before any value is listed.

A stepped range (``range(0, 100000000, 3)``, Optuna's ``{type: int, low, high, step}``) names its
grid in a few characters; listing a hundred million values took gigabytes and minutes before
anything was said. Each form counts its values arithmetically and is refused above the limit.
"""

from __future__ import annotations

import decimal
import math

from hydra_sigopt.errors import ConfigError

#: The longest grid taken. sigoptlite's schema sets no limit, but its time per suggestion grows
#: with the grid (measured on sigoptlite 0.1.2, 8 suggestions: 2.6 s for 50,000 values, 3.2 s for
#: 100,000, 4.9 s for 200,000, 23 s for 1,000,000), and the journal keeps the whole grid in the
#: sweep's definition. 100,000 keeps a margin over the 50,000-value grid the tests run; a longer
#: grid is better searched as an interval, which the engine models at no cost per value.
MAX_GRID_VALUES = 100_000


def hydra_range_length(start: float, stop: float, step: float) -> int:
    """How many values Hydra's ``range(start, stop, step)`` lists (stop excluded), without listing them.

    Hydra steps a float range in exact decimals of the floats it was given (``FloatRange``): the
    count is the ceiling of the distance over the step, in those decimals.
    """
    if all(isinstance(v, int) for v in (start, stop, step)):
        return len(range(int(start), int(stop), int(step)))
    distance = decimal.Decimal(stop) - decimal.Decimal(start)
    return max(0, math.ceil(distance / decimal.Decimal(step)))


def check_grid_length(count: int, where: str, written: str, instead: str) -> None:
    """Refuse a grid of more than :data:`MAX_GRID_VALUES` values, saying what to write ``instead``."""
    if count > MAX_GRID_VALUES:
        raise ConfigError(
            where,
            f"{written} is a grid of {count:,} values, over the {MAX_GRID_VALUES:,} taken; search {instead} instead",
        )
