"""What a SigOpt server accepts in names and metadata (sigopt-server's ``Experiment`` limits).

A request past one of these is refused with HTTP 400 after the sweep has started; the sweeper
checks what the user chose (the experiment's name) before anything starts, and fits what it writes
itself (metadata) to the limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_NAME_CHARS = 100
MAX_METADATA_VALUE_CHARS = 500
MAX_METADATA_KEY_CHARS = 100
MAX_METADATA_KEYS = 100


def name_problem(name: str) -> str | None:
    """Why SigOpt would refuse this experiment name, or None: a server and sigoptlite take the same names."""
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long; SigOpt takes experiment names of at most {MAX_NAME_CHARS}"
    return None


def fit_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata a server accepts: no None values, long strings cut, long keys and extra keys dropped.

    Keys are the sweeper's own (short); values may be the user's (a command line, a failure reason),
    so a string too long keeps its beginning and says it was cut.
    """
    fitted: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None or len(str(key)) > MAX_METADATA_KEY_CHARS or len(fitted) == MAX_METADATA_KEYS:
            continue
        fitted[str(key)] = _fit_value(value)
    return fitted


def _fit_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        value = str(value)
    if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
        marker = " ... (cut)"
        return value[: MAX_METADATA_VALUE_CHARS - len(marker)] + marker
    return value
