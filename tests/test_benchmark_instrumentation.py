"""The benchmarks time the sweeper's own functions by name: a rename must fail here, not in CI's bench run."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

# What scale_driver.py calls the classes it wraps, and where they live.
CLASSES = {
    "Sweep": ("hydra_sigopt.sweep", "Sweep"),
    "Results": ("hydra_sigopt.results", "Results"),
    "SubmititRunner": ("hydra_sigopt.runners", "SubmititRunner"),
    "lite.LiteBackend": ("hydra_sigopt.backends.lite", "LiteBackend"),
    "WarmPool": ("hydra_sigopt.runners.warm_pool", "WarmPool"),
}
OWNERS = "|".join(o.replace(".", r"\.") for o in CLASSES)


def _wrapped_attributes() -> list[tuple[str, str]]:
    source = (BENCH / "scale_driver.py").read_text()
    found = re.findall(rf"^\s*({OWNERS})\.(\w+) = ", source, re.MULTILINE)
    found += re.findall(rf"= ({OWNERS})\.(\w+)$", source, re.MULTILINE)
    return sorted(set(found))


def test_the_scale_driver_wraps_something() -> None:
    assert len(_wrapped_attributes()) >= 5


@pytest.mark.parametrize(("owner", "attribute"), _wrapped_attributes())
def test_each_function_the_scale_driver_wraps_exists(owner: str, attribute: str) -> None:
    module, name = CLASSES[owner]
    cls = getattr(importlib.import_module(module), name)
    assert callable(getattr(cls, attribute, None)), f"benchmarks/scale_driver.py wraps {owner}.{attribute}, gone"


def test_each_function_the_overhead_profile_names_exists() -> None:
    source = (BENCH / "overhead.py").read_text()
    missing = [
        f"{path}:{function}"
        for path, function in re.findall(r'"(hydra_sigopt/[\w/]+\.py)", "(\w+)"', source)
        if not re.search(rf"^\s*def {function}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert re.findall(r'"hydra_sigopt/', source), "the overhead profile names no sweeper function"
    assert missing == []
