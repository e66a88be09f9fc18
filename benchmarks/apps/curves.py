"""Multi-fidelity problems for the early-stopping benchmark: a value after every step, all minimized.

``digits_mlp``
    scikit-learn's MLPClassifier trained epoch by epoch (``partial_fit``) on the digits data that
    scikit-learn ships (70/30 split, standardized); the value is the validation log-loss after each
    epoch. Five hyperparameters. Deterministic (fixed weight initialisation and split), so a
    configuration has one learning curve; its optimum is not known: regret is taken against the best
    full-training value any contender found in the run.
``hartmann6_fidelity``
    The augmented Hartmann-6 of the multi-fidelity literature (BoTorch's ``AugmentedHartmann``, after
    Wu et al. 2019, "Practical Multi-fidelity Bayesian Optimization for Hyperparameter Tuning"): the
    fidelity s in [0, 1] lowers the first alpha to 1 - 0.1 (1 - s); step k of MAX_STEP is fidelity
    k / MAX_STEP. Every curve falls with s; the optimum is -3.32237 at full fidelity.

Each step costs one unit of resource (an epoch). MAX_STEP = 27 = 3**3 gives successive halving
with a reduction factor of 3 the rungs 1, 3, 9, 27.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from problems import _H_A, _H_ALPHA, _H_P

MAX_STEP = 27
PROBLEMS = ("digits_mlp", "hartmann6_fidelity")

#: Each problem's space: name -> (kind, low, high, log scale), kind "double" or "int".
SPACES: dict[str, dict[str, tuple[str, float, float, bool]]] = {
    "digits_mlp": {
        "learning_rate": ("double", 1e-4, 1e-1, True),
        "l2": ("double", 1e-6, 1e-1, True),
        "hidden": ("int", 8, 128, True),
        "batch_size": ("int", 16, 256, True),
        "beta_1": ("double", 0.5, 0.99, False),
    },
    "hartmann6_fidelity": {f"x{i}": ("double", 0.0, 1.0, False) for i in range(1, 7)},
}
#: Known optima at full fidelity (None: taken from the run, see the module's docstring).
OPTIMA: dict[str, float | None] = {"digits_mlp": None, "hartmann6_fidelity": -3.32237}


def sweeper_params(problem: str) -> list[str]:
    """The space as this sweeper's ``hydra.sweeper.params`` overrides."""
    out = []
    for name, (kind, low, high, log) in SPACES[problem].items():
        bounds = f"int(interval({int(low)},{int(high)}))" if kind == "int" else f"interval({low},{high})"
        out.append(f"+hydra.sweeper.params.{name}='{f'tag(log,{bounds})' if log else bounds}'")
    return out


def curve(problem: str, params: Mapping[str, Any]) -> Iterator[float]:
    """The configuration's value after steps 1, 2, ..., MAX_STEP (computed lazily: stop early for less)."""
    if problem == "hartmann6_fidelity":
        x = [float(params[f"x{i}"]) for i in range(1, 7)]
        return (hartmann6_at(x, step / MAX_STEP) for step in range(1, MAX_STEP + 1))
    if problem == "digits_mlp":
        return _digits_curve(params)
    raise ValueError(f"unknown problem {problem!r}; known: {PROBLEMS}")


def hartmann6_at(x: list[float], fidelity: float) -> float:
    alphas = (_H_ALPHA[0] - 0.1 * (1 - fidelity), *_H_ALPHA[1:])
    total = 0.0
    for alpha, a_row, p_row in zip(alphas, _H_A, _H_P):
        total += alpha * math.exp(-sum(a * (xj - p) ** 2 for a, xj, p in zip(a_row, x, p_row)))
    return -total


def _digits_curve(params: Mapping[str, Any]) -> Iterator[float]:
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x_train, x_valid, y_train, y_valid = _digits_split()
    model = MLPClassifier(
        hidden_layer_sizes=(int(params["hidden"]),),
        learning_rate_init=float(params["learning_rate"]),
        alpha=float(params["l2"]),
        batch_size=int(params["batch_size"]),
        beta_1=float(params["beta_1"]),
        random_state=0,
    )
    classes = np.arange(10)
    for _ in range(MAX_STEP):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        yield float(log_loss(y_valid, model.predict_proba(x_valid), labels=classes))


_SPLIT: tuple[Any, ...] | None = None


def _digits_split() -> tuple[Any, ...]:
    global _SPLIT
    if _SPLIT is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        _SPLIT = (scaler.transform(x_train), scaler.transform(x_valid), y_train, y_valid)
    return _SPLIT
