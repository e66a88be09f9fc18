"""Hydra override text: values written so that Hydra's own parser reads them back exactly, and read back.

Every override a trial gets goes through :func:`format_override`; ``tests/test_space.py`` checks
the round trip with Hydra's parser (floats bit for bit, strings with quotes, commas, ``=``, or
that look like numbers or booleans, lists and dicts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hydra._internal.grammar.utils import escape_special_characters
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.errors import HydraException

_parser: OverridesParser | None = None


def overrides_parser() -> OverridesParser:
    """Hydra's override parser, built once (building it costs a few milliseconds)."""
    global _parser
    if _parser is None:
        _parser = OverridesParser.create()
    return _parser


def format_value(value: Any) -> str:
    """A Hydra override value string that Hydra's parser reads back as exactly ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_format_key(k)}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a Hydra override value")


def _format_float(value: float) -> str:
    # repr is the shortest string that round-trips; Hydra spells the specials in lower case.
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _format_string(value: str) -> str:
    """Bare where Hydra reads the bare form back unchanged, else single-quoted by Hydra's rules."""
    bare = escape_special_characters(value)
    if bare and bare == value and _parses_back(bare, value):
        return bare
    return QuotedString(text=value, quote=Quote.single).with_quotes()


def _format_key(key: Any) -> str:
    """A dict key: Hydra's grammar takes bare identifiers-like keys (quoted keys are not allowed)."""
    text = str(key)
    if not _parses_back(f"{{{text}:0}}", {text: 0}):
        raise TypeError(f"the dict key {key!r} cannot be written in a Hydra override")
    return text


def _parses_back(text: str, value: Any) -> bool:
    """Whether ``key=text`` parses to exactly ``value`` (type included)."""
    try:
        parsed = overrides_parser().parse_override(f"k={text}")
    except HydraException:
        return False
    if parsed.is_sweep_override():
        return False
    got = parsed.value()
    return type(got) is type(value) and got == value


def format_override(key: str, value: Any) -> str:
    """``key=value`` with the value written by :func:`format_value`."""
    return f"{key}={format_value(value)}"


def read_override(text: str) -> tuple[str, Any]:
    """The key as written (with any ``+`` prefix, as Hydra's other sweepers report it) and the value."""
    parsed = overrides_parser().parse_override(text)
    return parsed.get_key_element(), parsed.value()


def bare_key(override_key: str) -> str:
    """The config key without ``+``/``++``/``~`` prefix (two spellings of one key collide)."""
    key = override_key.lstrip("+~")
    if "=" in key:
        key = key.split("=", 1)[0]
    return key
