"""Core library of hydra-sigopt-sweeper: search space, engines, journal, scheduling, reports.

Nothing here imports ``hydra_plugins``; the Hydra plugin is a thin shell around this package.
A task function uses :func:`report`, :func:`should_stop` and :class:`TrialStopped` (early stopping,
:mod:`hydra_sigopt.reporting`); they are imported on first use, so ``import hydra_sigopt`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TrialStopped", "report", "should_stop"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hydra_sigopt import reporting

        return getattr(reporting, name)
    raise AttributeError(f"module 'hydra_sigopt' has no attribute {name!r}")
