"""The progress line: what it counts, and its estimate of the time left (time injected)."""

from __future__ import annotations

import pytest

from hydra_sigopt.metrics import parse_metrics
from hydra_sigopt.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def metric() -> object:
    return parse_metrics([{"name": "val_loss", "objective": "minimize"}])[0]


def test_the_estimate_follows_the_trial_budget(clock: Clock) -> None:
    progress = Progress(budget=10, metric=metric(), clock=clock)  # type: ignore[arg-type]
    clock.now += 60
    for number in range(2):
        progress.trial_finished(number, 0.5, failed=False)
    assert progress.line().startswith("Progress: 2/10 trials done, 0 running, 0 failed")
    assert progress.line().endswith("elapsed 1m00s, ~4m00s left")  # 30 s a trial, 8 to go


def test_with_a_step_budget_the_line_counts_steps_and_estimates_from_them(clock: Clock) -> None:
    """Issue 17: with early_stopping.step_budget the README has the user set an observation_budget
    "large enough not to end the sweep first (say 500)". The line counted 500 trials and estimated
    the time to run them all (~25 min, measured, for a sweep that ended 10 s later)."""
    progress = Progress(budget=500, metric=metric(), clock=clock, step_budget=540)  # type: ignore[arg-type]
    progress.set_steps(0)
    clock.now += 60
    for number in range(10):
        progress.trial_finished(number, 0.5, failed=False, stopped=number > 2)
    progress.set_steps(270)  # half the steps in a minute: a minute left, not 49 min for 490 trials
    line = progress.line()
    assert "10/500 trials done" in line and "270/540 steps reported" in line, line
    assert line.endswith("~1m00s left"), line


def test_a_resumed_sweep_estimates_from_the_steps_reported_since_the_resume(clock: Clock) -> None:
    progress = Progress(budget=500, metric=metric(), clock=clock, step_budget=100)  # type: ignore[arg-type]
    progress.resume(done=0)
    progress.set_steps(80)  # reported before the resume: no rate to be had from them
    assert "left" not in progress.line()
    clock.now += 10
    progress.set_steps(90)
    assert progress.line().endswith("~10s left"), progress.line()


def test_a_resumed_sweep_estimates_from_the_trials_it_started_not_those_it_re_attached(clock: Clock) -> None:
    """The jobs a resumed sweep re-attached to had run for minutes before it: they ended seconds
    after the resume, and the line said "~0s left" for a sweep with most of its budget to go."""
    progress = Progress(budget=20, metric=metric(), clock=clock)  # type: ignore[arg-type]
    for number in range(4):
        progress.trial_finished(number, 0.5, failed=False)
    progress.resume(done=4, carried_over=[4, 5, 6, 7])
    clock.now += 5
    for number in (4, 5, 6, 7):
        progress.trial_finished(number, 0.5, failed=False)
    assert "8/20 trials done" in progress.line() and "left" not in progress.line(), progress.line()
    clock.now += 55
    progress.trial_finished(8, 0.5, failed=False)  # the first trial this sweeper started: a minute
    assert progress.line().endswith("~11m00s left"), progress.line()  # 11 to go


def test_once_the_step_budget_is_spent_no_estimate_is_given(clock: Clock) -> None:
    """The running trials stop at their next report: the trial budget's estimate would be wrong."""
    progress = Progress(budget=500, metric=metric(), clock=clock, step_budget=30)  # type: ignore[arg-type]
    progress.set_steps(0)
    clock.now += 30
    progress.trial_finished(0, 0.5, failed=False)
    progress.set_steps(31)
    line = progress.line()
    assert "31/30 steps reported" in line and "left" not in line, line
