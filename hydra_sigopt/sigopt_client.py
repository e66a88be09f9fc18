"""Importing the official ``sigopt`` client safely."""

from __future__ import annotations

import os
from types import ModuleType


def import_sigopt() -> ModuleType:
    """``import sigopt`` from any working directory.

    At import the client derives a default project name from the current directory and raises
    ValueError where that name is not valid (in ``/``, for one), unless SIGOPT_PROJECT is set.
    The sweeper names its project explicitly, so a placeholder is set for the import only.
    """
    if "SIGOPT_PROJECT" in os.environ:
        import sigopt

        module: ModuleType = sigopt
        return module
    os.environ["SIGOPT_PROJECT"] = "hydra-sigopt"
    try:
        import sigopt
    finally:
        del os.environ["SIGOPT_PROJECT"]
    module = sigopt
    return module


def plain(value: object) -> object:
    """A JSON-friendly Python value from an engine's value (numpy scalars included)."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return value
