"""Values under ``hydra.sweeper`` that cannot be used: an interpolation that does not resolve
(``${oc.env:N_TRIALS}`` with N_TRIALS unset) or a value marked as one to give (``???``) and not given.

Hydra resolves the whole sweeper node as it builds the sweeper, before any of the sweeper's code
runs: an interpolation that failed printed a traceback of some 140 lines from inside OmegaConf's
grammar, naming no key; a ``???`` went through as the key's default. Each is found here first, as
Hydra starts resolving the node (from a resolver in the node that Hydra resolves before the settings:
hydra_plugins.hydra_sigopt_sweeper.config), and said in one line naming the key and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, OmegaConfBaseException

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.secrets import looks_like_credential, redact

#: Keys of the sweeper node that are not settings: Hydra's, and the node the check runs from.
NOT_SETTINGS = ("_target_", "_check_target_")

_UNSET_VARIABLE = re.compile(r"Environment variable '([^']+)' not found")
_MISSING_KEY = re.compile(r"Missing mandatory value: (\S+)")
_HYDRA_RESOLVER = re.compile(r"\$\{hydra:")


def first_unusable_value(
    sweeper: DictConfig, default_of: Callable[[str], str | None], valid_of: Callable[[str], str | None]
) -> ConfigError | None:
    """The refusal of the first value of ``sweeper`` that cannot be used, in the order Hydra resolves
    them, or None.

    ``default_of(key)``: the default declared for ``key`` (``early_stopping.max_step``), in Hydra's
    words (``20``, ``null``), or None where none is declared; ``valid_of(key)``: what the key takes
    (``a whole number >= 1``), or None.
    """
    for key, container, child in _values(sweeper, ""):
        if OmegaConf.is_missing(container, child):
            return ConfigError(key, _missing_problem(key, default_of(key), valid_of(key)))
        if OmegaConf.is_interpolation(container, child):
            try:
                container[child]  # resolved here as Hydra would next
            except OmegaConfBaseException as exc:
                # A credential's value is never said, even half of it (api.token: tok-${oops}).
                written = "its value" if looks_like_credential(key) else str(container._get_node(child)._value())
                # A URL's password is masked, as in every message (api.api_url: https://u:pw${oops}@host).
                return ConfigError(key, redact(_unresolved_problem(written, exc, default_of(key))))
    return None


def _values(container: DictConfig | ListConfig, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """Each value under ``container`` as (its key from the sweeper node, its container, its key there),
    depth first in the node's order; an interpolation's target is not entered (it is checked whole)."""
    children: list[Any] = list(range(len(container))) if isinstance(container, ListConfig) else list(container.keys())
    for child in children:
        if not prefix and child in NOT_SETTINGS:
            continue
        key = f"{prefix}[{child}]" if isinstance(child, int) else f"{prefix}.{child}" if prefix else str(child)
        yield key, container, child
        node = container._get_node(child)
        if isinstance(node, (DictConfig, ListConfig)) and not (node._is_missing() or node._is_interpolation()):
            yield from _values(node, key)


def _missing_problem(key: str, default: str | None, valid: str | None) -> str:
    """``parallel_bandwidth: ???``: what to give, and where."""
    takes = f", {valid}" if valid else ""
    example = default if default not in (None, "null") else "..."
    if "[" in key:  # an item of a list (metrics[0].name): given where the list is written
        return f"needs a value{takes} (??? asks for one); give it in the config"
    return f"needs a value{takes} (??? asks for one); give it, e.g. on the command line: hydra.sweeper.{key}={example}"


def _unresolved_problem(written: str, exc: OmegaConfBaseException, default: str | None) -> str:
    """Why ``written`` (the value as the config has it) does not resolve, and what to write instead."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    unset = _UNSET_VARIABLE.search(message)
    if unset:
        variable = unset.group(1)
        fallback = "<default>" if default is None else default
        with_default = f"${{oc.env:{variable},{fallback}}}"
        return f"environment variable {variable!r} is not set; export it or give a default: {with_default}"
    if "HydraConfig was not set" in message:
        # Hydra gives its ${hydra:...} resolver the config only as each trial runs; the sweeper's node
        # sits in that same config, where the key is reached by a plain interpolation.
        plain = _HYDRA_RESOLVER.sub("${hydra.", written)
        return (
            f"{written} cannot be resolved while the sweeper is set up (Hydra's hydra: resolver works in "
            f"trials only); refer to the key itself: {plain}"
        )
    missing = _MISSING_KEY.search(message)
    if isinstance(exc, InterpolationToMissingValueError) and missing:
        referred = missing.group(1)
        return f"{written} refers to {referred}, which needs a value (??? asks for one); give it, e.g. {referred}=..."
    return f"{written} cannot be resolved: {message}"
