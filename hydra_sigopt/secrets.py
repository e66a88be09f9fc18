"""SigOpt tokens: read from the environment or files only, and kept out of everything written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra_sigopt.errors import ConfigError

_TOKEN_WORDS = ("token", "secret", "password", "api_key", "apikey")
TOKEN_HELP = (
    "SigOpt tokens are never read from the Hydra config, because Hydra writes every job's config to "
    "disk (.hydra/config.yaml, multirun.yaml). Set SIGOPT_API_TOKEN in the environment, or point "
    "SIGOPT_ENV_FILE at a file with SIGOPT_TOKEN=... (and SIGOPT_DEV_TOKEN=... for dev_run)."
)


def refuse_tokens_in_config(raw: Mapping[str, Any], where: str = "") -> None:
    """Raise ConfigError if any key under hydra.sweeper looks like a credential."""
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if any(word in str(key).lower() for word in _TOKEN_WORDS):
            raise ConfigError(path, f"looks like a credential and is refused. {TOKEN_HELP}")
        if isinstance(value, Mapping) and key != "params":
            refuse_tokens_in_config(value, path)
