"""Waits for another process measured on the wall clock: an NTP step forward ended them at once
(``hydra-sigopt kill`` took a sweeper still writing its results for hung and SIGKILLed it; a cancel
SIGKILLed a trial's processes without the grace they get after SIGINT), a step back made them last
as long as the step. Here the wall clock steps an hour forward at every reading."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt import cli, driver, processes


class _SteppingWallClock:
    """time.time() as NTP corrections would make it: an hour later at each reading."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 3600.0
        return self.now


@pytest.fixture(autouse=True)
def stepping_wall_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(time, "time", _SteppingWallClock())
    yield


def _answers(*values: Any) -> Any:
    """A function that returns ``values`` one after the other, then the last one for ever."""
    left = list(values)
    return lambda *args, **kwargs: left.pop(0) if len(left) > 1 else left[0]


class _Lock:
    """A sweep lock whose sweeper lets it go after a few looks (it is writing its results)."""

    path = Path("/nonexistent/sigopt_journal.lock")

    def __init__(self, *holders: tuple[int, str] | None) -> None:
        self.holder = _answers(*holders)


def test_kill_waits_for_a_stopping_sweeper_to_let_the_sweep_go_not_for_the_wall_clock() -> None:
    assert cli._released_within(_Lock((4242, ""), (4242, ""), None), 10.0)  # type: ignore[arg-type]


def test_kill_waits_for_the_lock_file_to_name_its_sweeper_not_for_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "_names_its_holder", _answers(False, False, True))
    assert cli._named_holder(_Lock((4242, "")), wait_s=2.0) == (4242, "")  # type: ignore[arg-type]


def test_a_cancel_gives_the_processes_it_signalled_their_time_whatever_the_wall_clock_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looks: list[int] = []
    answers = _answers(True, True, False)

    def pid_running(pid: int) -> bool:
        looks.append(pid)
        return bool(answers())

    monkeypatch.setattr(processes, "pid_running", pid_running)
    processes._wait_gone([4242], 10.0)
    assert looks == [4242] * 3  # looked until the process was gone


def test_stopping_the_driver_job_waits_for_slurm_to_drop_it_not_for_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver.subprocess, "run", lambda *args, **kwargs: None)
    monkeypatch.setattr(driver, "driver_state", _answers("COMPLETING", "COMPLETING", None))
    monkeypatch.setattr(driver.time, "sleep", lambda s: None)
    assert driver.stop_driver("4242", wait_s=90.0)
