"""What a task function calls to report progress and be stopped early: ``report``, ``should_stop``.

::

    from hydra_sigopt import TrialStopped, report

    for epoch in range(1, cfg.epochs + 1):
        train_one_epoch()
        report(epoch, val_loss=evaluate())   # raises TrialStopped once the sweeper stops this trial

Inside a trial of this sweeper, each report is appended to the trial's report file (see
:mod:`hydra_sigopt.report_files`), which the sweeper journals and judges by the configured rule.
Anywhere else (a plain ``python train.py``, another sweeper) both functions do nothing.

Where the trial runs inside the sweeper's own process and thread (Hydra's basic launcher), the
sweeper cannot look at the file while the trial runs; it registers a hook instead, which ``report``
calls after writing: the sweeper reads, journals and decides right then, through the same path.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.report_files import append_report, stop_requested, trial_folder


class TrialStopped(Exception):
    """The sweeper stopped this trial early; the task may catch it (to save a checkpoint) and return."""


@dataclass
class _Trial:
    number: int
    folder: Path
    last_step: int | None = None


_active: _Trial | None = None
#: Set by a sweeper whose trials run in its own process: called with the trial's number after each report.
_in_process_hook: Callable[[int], None] | None = None


def report(step: int, **metrics: float) -> None:
    """Report the trial's metrics at ``step`` (an epoch, an iteration: whole numbers, increasing).

    Raises :class:`TrialStopped` once the sweeper has decided to stop this trial, and ValueError
    for a malformed report (nothing of it is written). Does nothing outside a sweep of this sweeper.
    """
    trial = _active
    if trial is None:
        return
    if stop_requested(trial.folder):
        raise TrialStopped(f"trial #{trial.number} was stopped early by the sweeper")
    checked_step = _checked_step(step, trial.last_step)
    values = {name: _checked_value(checked_step, name, value) for name, value in metrics.items()}
    if not values:
        raise ValueError(f"report(step={checked_step}) has no metric; pass them by name: report(step, val_loss=0.31)")
    append_report(trial.folder, checked_step, values, time.time())
    trial.last_step = checked_step
    hook = _in_process_hook
    if hook is not None:
        hook(trial.number)
    if stop_requested(trial.folder):
        raise TrialStopped(f"trial #{trial.number} was stopped early by the sweeper at step {checked_step}")


def should_stop() -> bool:
    """Whether the sweeper has decided to stop this trial (False outside a sweep of this sweeper)."""
    trial = _active
    return trial is not None and stop_requested(trial.folder)


def _checked_step(step: Any, last: int | None) -> int:
    try:
        if isinstance(step, bool):
            raise TypeError
        whole = operator.index(step)  # ints and numpy integers; not floats or strings
    except TypeError:
        raise ValueError(f"report(step={step!r}): the step must be a whole number (an epoch or iteration)") from None
    if last is not None and whole <= last:
        raise ValueError(f"report(step={whole}): steps must increase, and the previous report's step was {last}")
    return whole


def _checked_value(step: int, name: str, value: Any) -> float:
    number: float | None = None
    if not isinstance(value, (bool, str, bytes)):
        try:
            number = float(value)  # Python, numpy and one-element torch numbers
        except (TypeError, ValueError):
            number = None
    if number is None:
        raise ValueError(f"report(step={step}): {name} must be a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"report(step={step}): {name} is {number}; only finite numbers can be reported")
    return number


# ---------------------------------------------------------------------------------- the sweeper's side


@contextmanager
def reporting_to(root: Path, number: int) -> Iterator[None]:
    """Make :func:`report` write to trial ``number``'s folder under ``root`` meanwhile (the trial's task runs)."""
    global _active
    previous, _active = _active, _Trial(number, trial_folder(root, number))
    try:
        yield
    finally:
        _active = previous


def set_in_process_hook(hook: Callable[[int], None] | None) -> None:
    """Have :func:`report` call ``hook(trial number)`` after each report made in this process (None: stop)."""
    global _in_process_hook
    _in_process_hook = hook
