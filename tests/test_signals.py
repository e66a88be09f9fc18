"""After a stop by signal, the rest of the burst is absorbed for a grace, then Ctrl-C works as usual."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from hydra_sigopt import signals
from hydra_sigopt.signals import Interrupts


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary


def test_a_ctrl_c_after_a_stop_by_signal_is_absorbed_within_the_grace() -> None:
    before = signal.getsignal(signal.SIGINT)
    interrupts = Interrupts()
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            _sigint()
        interrupts.stopping()
        interrupts.restore()
        _sigint()  # absorbed: no KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, before)


def test_after_the_grace_ctrl_c_goes_to_the_handler_there_before_for_good(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def previous(signum: int, frame: Any) -> None:
        seen.append(signum)

    before = signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(signals, "AFTER_STOP_GRACE_S", 0.0)
    interrupts = Interrupts()
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            _sigint()
        interrupts.restore()
        _sigint()
        assert seen == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is previous  # given back, not wrapped any more
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sweep_not_stopped_by_a_signal_gives_the_handlers_straight_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    interrupts = Interrupts()
    interrupts.install()
    interrupts.stopping()  # every sweep's wrap-up says so
    interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is before
