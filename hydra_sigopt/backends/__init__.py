"""SigOpt engines behind one seam (:class:`~hydra_sigopt.backends.base.Backend`) and their factory."""

from __future__ import annotations

from typing import Any

from hydra_sigopt.backends.base import Backend, PastObservation, Suggestion
from hydra_sigopt.errors import ConfigError

BACKENDS = ("lite", "api")

__all__ = ["BACKENDS", "Backend", "PastObservation", "Suggestion", "create_backend"]


def create_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name`` (``hydra.sweeper.backend``), built with its options."""
    if name == "lite":
        from hydra_sigopt.backends.lite import LiteBackend

        return LiteBackend(**options)
    if name == "api":
        from hydra_sigopt.backends.api import ApiBackend  # type: ignore[import-not-found,unused-ignore]

        return ApiBackend(**options)  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError("backend", f"unknown backend {name!r}; valid backends are {list(BACKENDS)}")
