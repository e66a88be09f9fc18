"""What a trial can do wrong is that trial's failure: sys.exit, results that cannot be read, huge errors."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, run_example, start_example
from small_apps import write_app

from hydra_sigopt.runners import JobOutcome, failure_in_one_line

LAUNCHERS = {"basic": (), "submitit_local": SUBMITIT_LOCAL}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("code", [0, 3])
def test_sys_exit_in_the_task_is_one_failed_trial_and_the_sweep_goes_on(
    tmp_path: Path, launcher: str, code: int
) -> None:
    app = write_app(
        tmp_path,
        f"""
        if job_num() in (1, 3):
            sys.exit({code})
        return cfg.x
        """,
        budget=5,
    )
    run = run_example(tmp_path, *LAUNCHERS[launcher], app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "failed", "completed", "failed", "completed"]
    for t in (run.trials[1], run.trials[3]):
        assert f"the task called sys.exit({code})" in t["failure_reason"]
    assert f"Trial #1 failed: TaskExit: the task called sys.exit({code})" in run.output
    assert run.results["trials"]["completed"] == 3


EXPLODING_RESULTS = """
class DeviceError(RuntimeError):
    pass


class BrokenTensor:
    '''A CUDA tensor after a device error: reading its number raises.'''

    ndim = 0

    def item(self):
        raise DeviceError("CUDA error: an illegal memory access was encountered")


class BrokenNumber:
    def __float__(self):
        raise DeviceError("CUDA error: device-side assert triggered")
"""


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_result_whose_number_cannot_be_read_is_that_trials_failure(tmp_path: Path, launcher: str) -> None:
    app = write_app(
        tmp_path,
        """
        if job_num() == 1:
            return BrokenTensor()
        if job_num() == 2:
            return {"value": BrokenNumber()}
        return cfg.x
        """,
        helpers=EXPLODING_RESULTS,
    )
    run = run_example(tmp_path, *LAUNCHERS[launcher], app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "failed", "failed", "completed"]
    assert "DeviceError: CUDA error: an illegal memory access was encountered" in run.trials[1]["failure_reason"]
    assert "DeviceError: CUDA error: device-side assert triggered" in run.trials[2]["failure_reason"]
    # The journal holds the outcome: a resume has nothing to re-run and does not crash.
    resumed = run_example(tmp_path, *LAUNCHERS[launcher], app=app).assert_ok()
    assert [t["state"] for t in resumed.trials] == ["completed", "failed", "failed", "completed"]


UNPICKLABLE_RESULTS = """
import threading


def _refuse_to_load():
    raise RuntimeError("this result cannot be unpickled")


class Unloadable:
    def __float__(self):
        return 1.0

    def __reduce__(self):
        return (_refuse_to_load, ())
"""


@pytest.mark.slow
def test_a_submitit_result_that_cannot_be_pickled_or_unpickled_is_that_trials_failure(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        if job_num() == 1:
            return {"value": 1.0, "lock": threading.Lock()}
        if job_num() == 2:
            return Unloadable()
        return cfg.x
        """,
        helpers=UNPICKLABLE_RESULTS,
    )
    run = run_example(tmp_path, *SUBMITIT_LOCAL, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "failed", "failed", "completed"]
    assert "cannot pickle '_thread.lock' object" in run.trials[1]["failure_reason"]
    assert "this result cannot be unpickled" in run.trials[2]["failure_reason"]


HUGE = 2_000_000


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_a_huge_exception_message_is_cut_in_the_journal_and_kept_whole_in_the_trials_own_log(
    tmp_path: Path, launcher: str
) -> None:
    app = write_app(
        tmp_path,
        f"""
        if job_num() in (0, 2):
            raise ValueError("loss diverged: " + "x" * {HUGE})
        return cfg.x
        """,
    )
    run = run_example(tmp_path, *LAUNCHERS[launcher], app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["failed", "completed", "failed", "completed"]
    reason = run.trials[0]["failure_reason"]
    assert reason.startswith("ValueError: loss diverged: xxx") and len(reason) < 1000
    full_log = run.sweep_dir / "0" / "failure_traceback.log"
    assert f"characters cut; full traceback in {full_log}" in reason
    assert "loss diverged: " + "x" * HUGE in full_log.read_text()
    # Neither the journal nor trials.csv nor the console carries the message (2 trials x 2 MB).
    assert (run.sweep_dir / "sigopt_journal.sqlite").stat().st_size < 200_000
    assert (run.sweep_dir / "trials.csv").stat().st_size < 10_000
    assert len(run.output) < 50_000


UNPRINTABLE_ERROR = """
class UnprintableError(RuntimeError):
    def __str__(self):
        raise ValueError("str() of this error fails too")
"""


@pytest.mark.slow
def test_an_exception_that_cannot_be_printed_is_still_one_failed_trial(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        """
        if job_num() == 1:
            raise UnprintableError()
        return cfg.x
        """,
        helpers=UNPRINTABLE_ERROR,
        budget=3,
    )
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "failed", "completed"]
    assert run.trials[1]["failure_reason"].startswith("UnprintableError: <str() raised ValueError")


def test_the_task_wrapper_lets_keyboard_interrupt_through_and_names_sys_exit() -> None:
    from hydra_sigopt.runners import TaskExit, TimedTask

    def interrupted(cfg: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        TimedTask(interrupted)({})
    for code, says in ((None, r"sys\.exit\(\)"), ("bye", r"sys\.exit\('bye'\)"), (2, r"sys\.exit\(2\)")):

        def exits(cfg: object, code: object = code) -> None:
            raise SystemExit(code)

        with pytest.raises(TaskExit, match=f"the task called {says}"):
            TimedTask(exits)({})


def test_submitits_own_exit_to_requeue_a_job_is_not_taken_for_the_tasks() -> None:
    """submitit's time-out/preemption handler ends a requeued job with sys.exit(-1) inside the task."""
    import logging
    from types import SimpleNamespace

    from submitit.core.job_environment import SignalHandler

    from hydra_sigopt.runners import TimedTask

    def requeued(cfg: object) -> None:
        SignalHandler._exit(SimpleNamespace(_logger=logging.getLogger("submitit")))  # type: ignore[arg-type]

    with pytest.raises(SystemExit) as info:
        TimedTask(requeued)({})
    assert type(info.value) is SystemExit and info.value.code == -1


PEAK_RSS_OF_A_SWEEP = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], capture_output=True, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_memory_stays_flat_when_every_trial_raises_a_huge_error(tmp_path: Path) -> None:
    """Each failed in-process trial's 10 MB error (and every local of its task) must not stay in memory."""
    import subprocess
    import sys

    app = write_app(tmp_path, 'raise ValueError("loss diverged: " + "x" * 10_000_000)', budget=20)
    sweep = [sys.executable, str(app), "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    measured = subprocess.run([sys.executable, "-c", PEAK_RSS_OF_A_SWEEP, *sweep], capture_output=True, text=True)
    assert measured.returncode == 0, measured.stderr[-3000:]
    # About 200 MB here (the engine, Hydra, a few 10 MB strings at a time); 490 MB when each error stayed.
    assert int(measured.stdout) < 300


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        pytest.param(
            JobOutcome(3, False, reason="ValueError: bad\nsecond line", traceback="Traceback ...", full_log="/j/3/log"),
            "ValueError: bad ... (its job's log in /j/3/log)",
            id="died-job-log",
        ),
        pytest.param(
            JobOutcome(3, False, reason="reading the returned value raised X", traceback="Traceback ..."),
            "reading the returned value raised X (its traceback is in trials.csv)",
            id="no-file",
        ),
        pytest.param(JobOutcome(3, False, reason="metric 'mse' is nan"), "metric 'mse' is nan", id="no-traceback"),
    ],
)
def test_a_failure_rate_stop_names_the_last_failure_in_one_line(outcome: JobOutcome, said: str) -> None:
    """Issue 11: the stop printed the whole traceback; it says one line, and where the rest is."""
    assert failure_in_one_line(outcome) == said


def test_a_batch_the_launcher_lost_leaves_no_value_of_its_trials_behind() -> None:
    """Values of in-process trials are kept until their batch's launch() returns (for a Ctrl-C);
    a launch() that raised left them for good, for a later sweep's trials of the same numbers.
    Those that had returned are the batch's outcomes (test_in_process_results_kept runs it)."""
    from hydra_sigopt.runners.batch import BatchRunner
    from hydra_sigopt.runners.outcome import JobOutcome
    from hydra_sigopt.runners.task import _ended_here, take_ended_here

    class LosingLauncher:
        def launch(self, job_overrides: object, initial_job_idx: int) -> list[object]:
            _ended_here[initial_job_idx] = JobOutcome(
                initial_job_idx, True, 0.5
            )  # the batch's first trial returned here
            raise RuntimeError("the launcher lost the batch")

    runner = BatchRunner(LosingLauncher())
    runner.start(7, ["x=1"])
    runner.start(8, ["x=2"])
    outcomes = runner.wait(timeout=0)
    assert [(o.number, o.ok) for o in outcomes] == [(7, True), (8, False)]
    assert take_ended_here([7, 8]) == []


EXITS_THE_PROCESS = """\
if job_num() == 1:
    os._exit(0)  # an app that ends its process when done (a habit of scripts, some MPI/TPU launchers)
return cfg.x
"""
ENDED_IN_THE_SWEEPERS_PROCESS = (
    "Trial #1 was running in the sweeper's process when it ended (the app called os._exit or the process was killed,"
)


def test_a_trial_that_ended_the_sweepers_process_is_named_by_status_and_the_resume(tmp_path: Path) -> None:
    """Basic launcher: os._exit(0) in trial #1 ended the sweep with exit status 0 and no word; status
    then said only "lost with the sweeper (run again on resume)", and the resume nothing at all."""
    app = write_app(tmp_path, EXITS_THE_PROCESS, budget=3)
    first = run_example(tmp_path, app=app)
    assert first.proc.returncode == 0  # os._exit(0) ended the sweep at trial #1: nothing of ours can run then
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(first.sweep_dir)], capture_output=True, text=True
    )
    assert "Ended:       Trial #1 was running in the sweeper's process when it ended\n" in status.stdout, status.stdout
    assert "(the app called os._exit or the process was killed," in status.stdout, status.stdout
    assert "hydra/launcher=submitit_local" in status.stdout, status.stdout
    resumed = run_example(tmp_path, app=app, sweep_dir=first.sweep_dir).assert_ok()
    assert ENDED_IN_THE_SWEEPERS_PROCESS in resumed.output, resumed.output[-3000:]
    assert "hydra/launcher=submitit_local" in resumed.output
    assert sorted(t["state"] for t in resumed.trials) == ["abandoned", "completed", "completed", "completed"]


WAITS_FOR_GO = """\
import pathlib
import time
pathlib.Path(os.environ["GO_FILE"]).with_name("in-the-app").touch()
while not pathlib.Path(os.environ["GO_FILE"]).exists():
    time.sleep(0.2)
return cfg.x
"""


@pytest.mark.slow
def test_status_after_a_killed_in_process_sweep_says_which_trial_it_ended_with_in_short_lines(tmp_path: Path) -> None:
    """Basic launcher, the sweeper killed inside trial #0: status's ``Ended:`` line was about 450
    characters, the cause and the advice in one run-on sentence."""
    go = tmp_path / "go"
    proc, sweep_dir = start_example(tmp_path, app=write_app(tmp_path, WAITS_FOR_GO, budget=2), env={"GO_FILE": str(go)})
    try:
        deadline = time.time() + 120
        while not (tmp_path / "in-the-app").exists():
            assert time.time() < deadline and proc.poll() is None, "trial #0 never started"
            time.sleep(0.2)
        proc.kill()  # SIGKILL: the sweeper and trial #0, which ran in its process
        proc.communicate(timeout=60)
    finally:
        go.touch()
        proc.kill()
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    )
    lines = status.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Ended:"))
    detail = list(itertools.takewhile(lambda line: line.startswith(" " * 13), lines[at + 1 :]))
    assert max(len(line) for line in [lines[at], *detail]) <= 120, lines[at : at + 1 + len(detail)]
    assert "Trial #0 was running in the sweeper's process when it ended" in lines[at], status.stdout
    assert "hydra/launcher=submitit_local" in " ".join(detail), status.stdout
