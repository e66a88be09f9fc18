"""Core library of hydra-sigopt-sweeper: search space, engines, journal, scheduling, reports.

Nothing here imports ``hydra_plugins``; the Hydra plugin is a thin shell around this package.
"""

__version__ = "0.1.0"
