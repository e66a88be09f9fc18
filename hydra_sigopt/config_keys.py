"""A search-space key the app's config lacks, said in one line that names where it was declared
and the keys it may have meant (``lr`` for ``model.optimizer.lr``).

Hydra's own message (``Could not override 'lr'. To append to your config use +lr=1e-05``, then
OmegaConf's ``Key 'lr' is not in struct`` and its details) named neither ``hydra.sweeper.params``
nor the nested key, and offered a ``+`` that adds a key the app never reads.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.overrides import bare_key

_NOT_OVERRIDDEN = re.compile(r"Could not override '([^']+)'\.")


def unknown_key_error(
    exc: Exception, config: DictConfig, params: Any, arguments: Sequence[str], choices: Sequence[str] = ()
) -> ConfigError | None:
    """The one-line refusal of Hydra's "Could not override" for a missing key, or None for any other
    composition error (a config group option that does not exist, a value of the wrong type...).

    ``choices``: the categorical overrides of the trial config that failed (``model=resnet``): a key
    of one config group option only (``model.patch`` of ``vit``) is missing from the others'."""
    found = _NOT_OVERRIDDEN.match(str(exc))
    if found is None or not isinstance(exc.__cause__, (ConfigKeyError, ConfigAttributeError)):
        return None
    key = found.group(1)
    where = _where_declared(key, params, arguments)
    if where is None:  # a task's override: Hydra's message names it well enough
        return None
    meant = _keys_it_may_mean(key, config)
    hint = f"; did you mean {' or '.join(meant)}?" if meant else ""
    composed = f" composed with {' '.join(choices)}" if choices else ""
    return ConfigError(
        where,
        f"Could not override '{key}': the app's config{composed} has no such key{hint} "
        f"(a key the app does not have yet is added with a +: +{key}=...)",
    )


def missing_option_error(exc: Exception, params: Any, arguments: Sequence[str]) -> ConfigError | None:
    """The one-line refusal of a config group option that does not exist (``model=choice(resnet,
    vitt)``): Hydra's message took ten lines, its config search path included."""
    if not isinstance(exc, MissingConfigException) or not exc.options or not exc.missing_cfg_file:
        return None
    group, _, option = exc.missing_cfg_file.rpartition("/")
    where = _where_declared(group, params, arguments) if group else None
    if where is None:
        return None
    return ConfigError(
        where,
        f"Could not find '{exc.missing_cfg_file}': valid options of {group!r} are {list(exc.options)}, not {option!r}",
    )


def _where_declared(key: str, params: Any, arguments: Sequence[str]) -> str | None:
    for argument in arguments:  # the command line's entry replaces params' (space.build_space)
        if bare_key(argument) == key:
            return f"command-line override '{argument}'"
    for declared in params if isinstance(params, Mapping) else {}:
        if isinstance(declared, str) and bare_key(declared) == key:
            return f"params.{declared}"
    return None


def _keys_it_may_mean(key: str, config: DictConfig) -> list[str]:
    """Keys of the app's config ending like ``key`` (``model.optimizer.lr`` for ``lr``), else close
    in spelling (``momentum`` for ``momentun``)."""
    app = {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}  # type: ignore[union-attr]
    paths = list(_leaf_paths(app))
    last = key.rsplit(".", 1)[-1]
    same_name = [p for p in paths if p.rsplit(".", 1)[-1] == last and p != key]
    # Close in spelling among its siblings only: on whole paths, model.optimizer.lr was "close" to
    # model.optimizer.momentum for the shared prefix, and anywhere, batch to model.patch.
    parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
    siblings = [p for p in paths if p.startswith(parent) and "." not in p[len(parent) :]]
    close = [p for p in siblings if difflib.SequenceMatcher(None, last, p[len(parent) :]).ratio() >= 0.75]
    return (same_name or close)[:3]


def _leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaf_paths(v, f"{prefix}{k}.")
    elif prefix:
        yield prefix[:-1]


def floats_for_int_keys(space: Any, config: DictConfig) -> list[str]:
    """Warnings for intervals of doubles over keys whose value in the app's config is an int
    (``batch=interval(16,128)`` over ``batch: 32``): the grammar's interval is floats, so the app
    got a batch size of 44.56875742297689; int(...) was likely meant. Not refused: a float may be."""
    out = []
    for p in space.parameters:
        if p.type != "double" or p.grid is not None or p.rounds_to_int:
            continue
        key = bare_key(p.override_key)
        current = OmegaConf.select(config, key, default=None, throw_on_missing=False)
        if isinstance(current, int) and not isinstance(current, bool):
            out.append(
                f"{key}: {p.source or 'its interval'} gives the app floats, where its config has {key}: {current}"
            )
            if "interval(" in p.source:  # tag(log, interval(a, b)) -> tag(log, int(interval(a, b)))
                whole = p.source.replace("interval(", "int(interval(", 1) + ")"
                out[-1] += f"; for whole numbers, write {whole}"
    return out
