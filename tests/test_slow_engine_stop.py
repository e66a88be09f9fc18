"""A Ctrl-C while the local engine (sigoptlite, in the sweeper's process) takes long over a suggestion:
the stop says what is true of an in-process engine, not that it is out of reach."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import (
    SUBMITIT_LOCAL,
    finish_example,
    run_example,
    running_job_ids,
    start_example,
    trial_states,
    wait_for_results,
)
from small_apps import write_app

pytestmark = pytest.mark.slow

# The engine is made slow from the sweep's third suggestion on (the first two start the first
# trials; SLOW_FROM=n: from the n+1th on): it holds the engine while it computes, as a GP on many
# results is slow, so a result's post waits for it too. SLOW_MARK is created when it starts; each
# trial waits for GO_FILE.
SLOW_ENGINE = """\
import threading
import time
from pathlib import Path

from hydra_sigopt.backends import lite

_suggest = lite.LiteBackend.suggest


def _slow_suggest(self, pending):
    slow = int(self._next_id) > int(os.environ.get("SLOW_FROM", "2"))
    if slow and threading.current_thread().name == "sigopt-suggest":
        with self._lock:
            Path(os.environ["SLOW_MARK"]).touch()
            time.sleep(40)
    return _suggest(self, pending)


lite.LiteBackend.suggest = _slow_suggest
"""
# The first trial ends at once, as the engine turns slow; the others run until GO_FILE exists.
FIRST_ENDS_AT_ONCE = """\
import pathlib
import time
while job_num() > 0 and not pathlib.Path(os.environ["GO_FILE"]).exists():
    time.sleep(0.2)
return cfg.x
"""


def test_ctrl_c_while_the_local_engine_computes_a_suggestion_says_nothing_is_lost(tmp_path: Path) -> None:
    """The stop said "Trials [0] are not posted yet (the engine is out of reach)": the local engine
    runs in the sweeper's process, it was only busy, and the journal keeps every result for a resume."""
    go, mark = tmp_path / "go", tmp_path / "slow"
    app = write_app(tmp_path, FIRST_ENDS_AT_ONCE, helpers=SLOW_ENGINE, budget=4)
    env = {"GO_FILE": str(go), "SLOW_MARK": str(mark)}
    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", app=app, env=env)
    try:
        jobs = running_job_ids(sweep_dir, 2)
        deadline = time.time() + 120
        while not mark.exists():  # the third suggestion is being computed
            assert time.time() < deadline and proc.poll() is None, "the engine's slow suggestion never started"
            time.sleep(0.2)
        wait_for_results(sweep_dir, {0: jobs[0]})  # its result waits for the engine; trial #1 runs on
        while not _recorded(sweep_dir, {0}):  # journaled, not yet given to the busy engine
            assert time.time() < deadline and proc.poll() is None, "trial #0's result was never journaled"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stopped = finish_example(proc, sweep_dir, timeout=120)
    finally:
        go.touch()
        proc.kill()
    assert stopped.proc.returncode != 0 and "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    assert "out of reach" not in stopped.output, stopped.output[-3000:]
    said = [line for line in stopped.output.splitlines() if "not given to the engine yet" in line]
    assert len(said) == 1 and "nothing is lost" in said[0], stopped.output[-3000:]


# Each trial returns once the engine is busy over the suggestion computed ahead (SLOW_MARK exists).
ENDS_WHILE_THE_ENGINE_COMPUTES = """\
import pathlib
import time
while not pathlib.Path(os.environ["SLOW_MARK"]).exists():
    time.sleep(0.2)
return cfg.x
"""


def _recorded(sweep_dir: Path, numbers: set[int]) -> bool:
    """Whether these trials' results are in the journal (whether or not the engine has them)."""
    try:
        states = trial_states(sweep_dir)
    except Exception:  # the journal not written yet
        return False
    return all(states.get(n, ("",))[0] == "completed" for n in numbers)


def test_ctrl_c_with_no_trial_running_says_what_the_local_engine_was_not_given(tmp_path: Path) -> None:
    """Every slot free (the trials ended, their results recorded), the local engine busy over the
    next suggestion: the same Ctrl-C with a trial running says which results the engine was not
    given yet and that nothing is lost; this one said nothing of them."""
    mark = tmp_path / "slow"
    app = write_app(tmp_path, ENDS_WHILE_THE_ENGINE_COMPUTES, helpers=SLOW_ENGINE, budget=4)
    env = {"SLOW_MARK": str(mark)}
    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", app=app, env=env)
    try:
        deadline = time.time() + 120
        while not (mark.exists() and _recorded(sweep_dir, {0, 1})):  # both ended while the engine computes
            assert time.time() < deadline and proc.poll() is None, "the trials never ended as the engine computed"
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stopped = finish_example(proc, sweep_dir, timeout=120)
    finally:
        proc.kill()
    assert stopped.proc.returncode != 0 and "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    # Not "Running trials were cancelled": none ran.
    assert "Interrupted. No trial was running." in stopped.output, stopped.output[-3000:]
    assert "out of reach" not in stopped.output and "did not answer" not in stopped.output, stopped.output[-3000:]
    said = [line for line in stopped.output.splitlines() if "not given to the engine yet" in line]
    assert len(said) == 1 and "nothing is lost" in said[0], stopped.output[-3000:]
    unobserved = {
        n for n, (state, _, observed) in trial_states(sweep_dir).items() if state == "completed" and not observed
    }
    assert unobserved and all(f"{n}" in said[0] for n in unobserved), (unobserved, said)


# Each trial fails once the engine is busy over the suggestion computed ahead (SLOW_MARK exists).
FAILS_WHILE_THE_ENGINE_COMPUTES = """\
import pathlib
import time
while not pathlib.Path(os.environ["SLOW_MARK"]).exists():
    time.sleep(0.2)
raise RuntimeError("diverged")
"""


def test_a_stop_for_too_many_failures_says_what_is_true_of_the_local_engine(tmp_path: Path) -> None:
    """The failure-rate stop said "Trials [..] are not posted: the engine did not answer", a server's
    wording: the local engine, in the sweeper's process, was only busy computing a suggestion."""
    mark = tmp_path / "slow"
    app = write_app(tmp_path, FAILS_WHILE_THE_ENGINE_COMPUTES, helpers=SLOW_ENGINE, budget=10)
    env = {"SLOW_MARK": str(mark), "SLOW_FROM": "5"}  # the 6th suggestion, computed while 5 trials run
    overrides = ("hydra.sweeper.parallel_bandwidth=5", "hydra.sweeper.max_failure_rate=0.1")
    stopped = run_example(tmp_path, *SUBMITIT_LOCAL, *overrides, app=app, env=env, timeout=300)
    assert stopped.proc.returncode != 0 and "max_failure_rate=0.1 exceeded" in stopped.output, stopped.output[-3000:]
    assert "did not answer" not in stopped.output and "out of reach" not in stopped.output, stopped.output[-3000:]
    said = [line for line in stopped.output.splitlines() if "not given to the engine yet" in line]
    assert len(said) == 1 and "nothing is lost" in said[0], stopped.output[-3000:]  # said in the stop's message
    # Waited for once: the stop waited its 5 s grace over again, and said so twice.
    assert stopped.output.count("The local engine is still computing a suggestion") == 1, stopped.output[-3000:]
