"""Crash points are checked against their list: a misspelled one must not silently never fire."""

from __future__ import annotations

import pytest

from hydra_sigopt import crashpoints


def test_a_misspelled_point_in_the_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown crash point 'after_submitt'"):
        crashpoints.crash_point("after_submitt")


def test_a_misspelled_point_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crashpoints.ENV_VAR, "after_observ:1")
    with pytest.raises(ValueError, match="names an unknown crash point"):
        crashpoints.crash_point("after_observe")


def test_every_point_the_sweeper_passes_is_listed() -> None:
    import pathlib
    import re

    source = "".join(p.read_text() for p in pathlib.Path(crashpoints.__file__).parent.rglob("*.py"))
    used = set(re.findall(r'crash_point\("([a-z_]+)"\)', source))
    assert used == set(crashpoints.POINTS)
