"""Benchmark objectives (all minimized), their search spaces and known optima.

Pure Python (no numpy) so that a trial's process starts fast; ``elasticnet`` imports
scikit-learn lazily through example_app/train.py's ``cross_validated_mse``.

The ``mixed`` problem (defined here):

    f(x1, x2, n, c) = q(x1 - u_c, x2 - v_c) + o_c + 0.05 * (n - 7)**2
    q(a, b)         = a**2 + a*b + b**2
    x1, x2 in [-5, 5] (doubles), n in {1..10} (int), c in {a, b, c} (categorical)
    centres (u, v): a -> (2, -1), b -> (1, -2), c -> (-3, 3); offsets o: a 0.3, b 0.0, c 0.6

Proof of the optimum: q is the quadratic form of [[1, .5], [.5, 1]], positive definite
(eigenvalues 0.5 and 1.5), so q >= 0 with equality only at the origin; every centre lies inside
[-5, 5]^2, so for a fixed c the minimum over (x1, x2) is o_c, reached at the centre; the n-term is
>= 0 with equality at n = 7 (inside 1..10). Hence f >= min_c o_c = 0, with equality exactly at
(x1, x2, n, c) = (1, -2, 7, b): the global minimum is 0.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Any

EXAMPLE_APP = Path(__file__).resolve().parents[2] / "example_app"

# ------------------------------------------------------------------ objectives


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H_A = (
    (10, 3, 17, 3.5, 1.7, 8),
    (0.05, 10, 17, 0.1, 8, 14),
    (3, 3.5, 1.7, 10, 17, 8),
    (17, 8, 0.05, 10, 0.1, 14),
)
_H_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def hartmann6(*x: float) -> float:
    total = 0.0
    for alpha, a_row, p_row in zip(_H_ALPHA, _H_A, _H_P):
        total += alpha * math.exp(-sum(a * (xj - p) ** 2 for a, xj, p in zip(a_row, x, p_row)))
    return -total


MIXED_CENTRES = {"a": (2.0, -1.0), "b": (1.0, -2.0), "c": (-3.0, 3.0)}
MIXED_OFFSETS = {"a": 0.3, "b": 0.0, "c": 0.6}


def mixed(x1: float, x2: float, n: int, c: str) -> float:
    u, v = MIXED_CENTRES[str(c)]
    a, b = x1 - u, x2 - v
    return a * a + a * b + b * b + MIXED_OFFSETS[str(c)] + 0.05 * (int(n) - 7) ** 2


def elasticnet(alpha: float, l1_ratio: float) -> float:
    if str(EXAMPLE_APP) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_APP))
    from train import cross_validated_mse  # example_app/train.py

    return cross_validated_mse(float(alpha), float(l1_ratio), 5, 10000)


# ------------------------------------------------------------------ spaces and optima

# The search spaces live in conf/space/<problem>.yaml (selected with +space=<problem>), in Hydra
# sweep grammar that the SigOpt and the Optuna sweeper read alike. Doubles are written with a
# decimal point: Optuna reads interval(-5, 10) as an *integer* interval.

# Known optima; elasticnet's is the best of a 40x40 grid, computed by sample_efficiency.py.
OPTIMA: dict[str, float | None] = {
    "branin": 0.397887,
    "hartmann6": -3.32237,
    "mixed": 0.0,
    "elasticnet": None,
    "zero": 0.0,
}


def evaluate(problem: str, cfg: Any) -> float:
    if problem == "branin":
        return branin(float(cfg.x1), float(cfg.x2))
    if problem == "hartmann6":
        return hartmann6(*(float(cfg[f"x{i}"]) for i in range(1, 7)))
    if problem == "mixed":
        return mixed(float(cfg.x1), float(cfg.x2), int(cfg.n), str(cfg.c))
    if problem == "elasticnet":
        return elasticnet(float(cfg.alpha), float(cfg.l1_ratio))
    if problem == "zero":
        return 0.0
    raise ValueError(f"unknown problem {problem!r}; valid: {sorted(OPTIMA)}")


def delay_for(job_num: int, median: float, sigma: float, seed: int) -> float:
    """The sleep of job ``job_num``: lognormal(median, sigma), the same for every contender."""
    if median <= 0:
        return 0.0
    return random.Random(f"delay-{seed}-{job_num}").lognormvariate(math.log(median), sigma)


def elasticnet_grid(n: int = 40) -> list[tuple[float, float, float]]:
    """(alpha, l1_ratio, mse) over an n x n grid: alpha log-spaced in [1e-4, 10], l1_ratio in [0, 1]."""
    out = []
    for i in range(n):
        alpha = 10 ** (-4 + 5 * i / (n - 1))
        for j in range(n):
            l1 = j / (n - 1)
            out.append((alpha, l1, elasticnet(alpha, l1)))
    return out
