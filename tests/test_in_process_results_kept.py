"""A sweeper killed mid-batch keeps the results of the batch's in-process trials that had returned.

With Hydra's basic launcher a batch of ``parallel_bandwidth`` trials runs one after the other in
the sweeper's own process, and their results came back together at the end of the batch: a
``kill -9`` (an OOM kill, a dead SSH session) in the middle lost the trials that had finished, and
the resumed sweep ran them again.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_apps import write_app

from hydra_sigopt.journal import Journal, Trial

#: Each run appends "<job number> <x>" to runs.log; trial #1's first run then kills the sweeper's
#: own process (the trials run in it), as the out-of-memory killer would.
KILLS_THE_SWEEPER_ON_TRIAL_1 = """\
with open({runs!r}, "a") as log:
    log.write(f"{{job_num()}} {{cfg.x!r}}\\n")
if job_num() == 1 and not os.path.exists({killed!r}):
    open({killed!r}, "w").close()
    os.kill(os.getpid(), 9)
return cfg.x
"""


def hydra_sigopt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hydra_sigopt.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def sweep_killed_on_trial_1(
    tmp_path: Path, budget: int = 3, task: str = KILLS_THE_SWEEPER_ON_TRIAL_1
) -> tuple[list[str], Path, list[str]]:
    """Start the sweep, killed by its trial #1; return the command, the sweep dir and the runs so far."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    task = task.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task, budget=budget)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    ran_before = runs.read_text().splitlines()
    assert [line.split()[0] for line in ran_before] == ["0", "1"], ran_before
    return cmd, sweep_dir, ran_before


def runs_of(tmp_path: Path, x: str) -> int:
    """How many times the app ran with this value of x (a suggestion run again keeps it)."""
    return [line.split()[1] for line in (tmp_path / "runs.log").read_text().splitlines()].count(x)


def journaled(sweep_dir: Path) -> dict[int, Trial]:
    with Journal.open(sweep_dir, readonly=True) as journal:
        return {t.number: t for t in journal.trials()}


def test_a_sweeper_killed_mid_batch_keeps_the_results_of_the_trials_that_had_returned(tmp_path: Path) -> None:
    _, sweep_dir, ran_before = sweep_killed_on_trial_1(tmp_path)
    x_of_trial_0 = ran_before[0].split()[1]

    status = hydra_sigopt("status", sweep_dir)
    assert "1 ended while no sweeper ran (recorded on resume)" in status.stdout, status.stdout
    assert "1 lost with the sweeper (run again on resume), 1 not started in its batch" in status.stdout

    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert (
        "Trial #0 had returned before the sweeper's process ended: its result is recorded"
        in resumed.stdout + resumed.stderr
    )
    assert runs_of(tmp_path, x_of_trial_0) == 1, (tmp_path / "runs.log").read_text()  # trial #0 was not run again
    trials = journaled(sweep_dir)
    assert trials[0].state == "completed" and trials[0].observed, trials[0]
    assert [v.value for v in trials[0].values] == [float(x_of_trial_0)]
    assert [t.state for t in trials.values()].count("completed") == 3, trials
    assert not [t for t in trials.values() if t.state in ("pending", "running")], trials

    status = hydra_sigopt("status", sweep_dir)
    assert "Trials:      3/3 done (3 completed, 0 failed), 0 running" in status.stdout, status.stdout


def test_a_sweeper_killed_mid_batch_names_the_trial_it_ended_in_not_those_waiting_after_it(tmp_path: Path) -> None:
    """Basic launcher at parallel_bandwidth 3, the process killed in trial #1: status and the resume
    said "One of trials #1, #2 was running in the sweeper's process when it ended", and status counted
    #2 "lost with the sweeper", though the batch runs its trials in order and #2 had not started: the
    user was left to guess which trial to look into, and read two trials' work as lost."""
    _, sweep_dir, _ = sweep_killed_on_trial_1(tmp_path)

    status = hydra_sigopt("status", sweep_dir).stdout
    assert "Ended:       Trial #1 was running in the sweeper's process when it ended\n" in status, status
    assert "1 lost with the sweeper (run again on resume), 1 not started in its batch (run on resume)" in status
    assert "  #1    job -          lost with the sweeper (run again on resume)\n" in status, status
    assert "  #2    job -          not started in its batch (run on resume)\n" in status, status

    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "Trial #1 was running in the sweeper's process when it ended" in resumed.stdout + resumed.stderr
    assert "One of trials" not in resumed.stdout + resumed.stderr
    rerun = (
        "Trial #2 is re-run under a new job number: it had not started in its batch when the sweeper's process ended"
    )
    assert rerun in resumed.stdout + resumed.stderr
    assert journaled(sweep_dir)[2].failure_reason == (
        "re-run after restart: it had not started in its batch when the sweeper's process ended"
    )
    # trials.csv showed the batch's start as #2's: it never started.
    rows = {row["number"]: row for row in csv.DictReader((sweep_dir / "trials.csv").open())}
    assert rows["2"]["started_at"] == "" and rows["1"]["started_at"] != "", (rows["1"], rows["2"])


def test_a_damaged_kept_value_is_never_taken_for_a_result(tmp_path: Path) -> None:
    """A kill while the value was being written leaves a temporary file, never read; a kept file
    damaged all the same (by hand, a broken disk) is said, and the trial run again."""
    _, sweep_dir, ran_before = sweep_killed_on_trial_1(tmp_path)
    folder = sweep_dir / ".hydra_sigopt" / "trials" / "0"
    whole = (folder / "returned.pkl").read_bytes()
    (folder / "returned.pkl").write_bytes(whole[:-1])  # cut short: without pickle's last byte, STOP
    (folder / ".returned.pkl.4242.tmp").write_bytes(whole[:10])
    status = hydra_sigopt("status", sweep_dir)
    assert "2 lost with the sweeper (run again on resume), 1 not started in its batch" in status.stdout, status.stdout
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "cannot be read" in resumed.stdout and "its trial is run again" in resumed.stdout
    assert runs_of(tmp_path, ran_before[0].split()[1]) == 2, (tmp_path / "runs.log").read_text()
    trials = journaled(sweep_dir)
    assert trials[0].state == "abandoned" and [t.state for t in trials.values()].count("completed") == 3, trials


def test_a_sweep_that_was_not_killed_records_each_result_once(tmp_path: Path) -> None:
    """The kept values of batches that ended are history: a resume with a larger budget runs new trials only."""
    (tmp_path / "killed").touch()  # trial #1 does not kill the sweeper
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    task = KILLS_THE_SWEEPER_ON_TRIAL_1.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task, budget=3)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    more = subprocess.run(
        [*cmd, "hydra.sweeper.observation_budget=6"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert more.returncode == 0, more.stderr[-3000:]
    assert "had returned before the sweeper's process ended" not in more.stdout + more.stderr
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["0", "1", "2", "3", "4", "5"]
    trials = journaled(sweep_dir)
    assert [(t.state, t.observed) for t in trials.values()] == [("completed", True)] * 6, trials
    status = hydra_sigopt("status", sweep_dir)
    assert "Trials:      6/6 done (6 completed, 0 failed), 0 running" in status.stdout, status.stdout


#: Trial #1 waits for the test's go-ahead (at most 5 minutes): the batch is then midway, #0 returned.
TRIAL_1_WAITS = """\
import time
if job_num() == 1:
    for _ in range(3000):
        if os.path.exists({release!r}):
            break
        time.sleep(0.1)
return cfg.x
"""


def test_status_of_a_running_batch_tells_its_trials_apart(tmp_path: Path) -> None:
    """Watched mid-batch, trial #0 (returned, its value kept) was shown as running, and the Trials line
    counted it so ("0/3 done ..., 3 running"), as if no trial of the batch had ended; then trial #2,
    not started yet, was still shown as running beside #1, which ran (the basic launcher runs one
    trial at a time)."""
    sweep_dir, release = tmp_path / "sweep", tmp_path / "release"
    app = write_app(tmp_path, TRIAL_1_WAITS.format(release=str(release)), budget=3)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    sweeper = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        trials = sweep_dir / ".hydra_sigopt" / "trials"
        for _ in range(3000):  # until #0 returned and #1 runs (or the sweeper ended: asserted below)
            if (trials / "0" / "returned.pkl").exists() and (trials / "1" / "output_dir").exists():
                break
            if sweeper.poll() is not None:
                break
            time.sleep(0.1)
        assert sweeper.poll() is None, sweeper.communicate()[0][-3000:]
        status = hydra_sigopt("status", sweep_dir)
    finally:
        release.touch()
        output = sweeper.communicate(timeout=300)[0]
    assert sweeper.returncode == 0, output[-3000:]
    assert "1 running, 1 waiting in the batch, 1 returned (recorded when its batch ends)" in status.stdout, (
        status.stdout
    )
    row_0 = next(line for line in status.stdout.splitlines() if line.startswith("  #0 "))
    assert "returned" in row_0 and "recorded when its batch ends" in row_0, status.stdout
    row_2 = next(line for line in status.stdout.splitlines() if line.startswith("  #2 "))
    assert "waiting in the batch (runs after #1)" in row_2, status.stdout


#: As KILLS_THE_SWEEPER_ON_TRIAL_1, returning a value of a class of the app's own module (scores.py
#: beside app.py): only a process that runs from the app's folder can unpickle it.
RETURNS_THE_APPS_OWN_CLASS = KILLS_THE_SWEEPER_ON_TRIAL_1.replace("return cfg.x", "return scores.Score(cfg.x)")


def test_status_and_kill_tell_a_returned_value_of_the_apps_own_class_from_a_lost_trial(tmp_path: Path) -> None:
    """``status`` and ``kill`` run from elsewhere (a login shell's home) unpickled the kept value to
    learn that the task had returned: a value of the app's own class could not be read there, so
    status said all 3 lost, and kill abandoned trial #0, whose result the resume would have recorded."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    task = RETURNS_THE_APPS_OWN_CLASS.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task, helpers="import scores", budget=3)
    (app.parent / "scores.py").write_text("class Score(float):\n    pass\n")
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]

    status = hydra_sigopt("status", sweep_dir)
    assert "1 ended while no sweeper ran (recorded on resume)" in status.stdout, status.stdout
    killed = hydra_sigopt("kill", sweep_dir)
    assert "trial #0 job -: finished in the sweeper's process, which ended" in killed.stdout, killed.stdout
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert journaled(sweep_dir)[0].state == "completed"
    assert [line.split()[0] for line in runs.read_text().splitlines()].count("0") == 1  # #0 ran once


def _batch_of_3_crashing_at(tmp_path: Path, crash_point: str) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One batch of 3 in-process trials whose sweeper meets ``crash_point`` (``HYDRA_SIGOPT_CRASH_AT``):
    the trials' log of runs, the sweep dir, and the sweeper's run."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    (tmp_path / "killed").touch()  # trial #1 does not kill the sweeper
    task = KILLS_THE_SWEEPER_ON_TRIAL_1.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task, budget=3)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    env = {**os.environ, "HYDRA_SIGOPT_CRASH_AT": crash_point}
    return runs, sweep_dir, subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_a_ctrl_c_while_a_returned_value_is_kept_records_its_trial(tmp_path: Path) -> None:
    """The value is kept (pickled, synced) after the task returns: a Ctrl-C landing then cancelled the
    trial as if it still ran, and the resume trained it again. A large value or an NFS sync makes it
    a window of seconds. The crash point sends the Ctrl-C there, as trial #0's value is kept."""
    runs, sweep_dir, stopped = _batch_of_3_crashing_at(tmp_path, "keeping_return:1:INT")
    assert "Interrupted" in stopped.stdout + stopped.stderr, (stopped.stdout + stopped.stderr)[-3000:]
    assert journaled(sweep_dir)[0].state == "completed", journaled(sweep_dir)
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert [line.split()[0] for line in runs.read_text().splitlines()].count("0") == 1  # #0 ran once
    assert [t.state for t in journaled(sweep_dir).values()].count("completed") == 3


def kept_files(sweep_dir: Path) -> list[str]:
    """The values and failures the sweep's trials kept beside them, left in its dir."""
    trials = sweep_dir / ".hydra_sigopt" / "trials"
    return sorted(
        str(p.relative_to(sweep_dir)) for name in ("returned.pkl", "raised.json") for p in trials.glob(f"*/{name}")
    )


def test_a_batch_recorded_in_the_journal_leaves_no_kept_value_behind(tmp_path: Path) -> None:
    """Each trial's value stayed in the sweep dir as returned.pkl for good, though only a resume after a
    kill mid-batch reads it: a pickle of whatever the app returned, once per trial, never read again."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    (tmp_path / "killed").touch()  # trial #1 does not kill the sweeper
    task = KILLS_THE_SWEEPER_ON_TRIAL_1.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task, budget=3)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(t.state, t.observed) for t in journaled(sweep_dir).values()] == [("completed", True)] * 3
    assert kept_files(sweep_dir) == []


#: A callback of the user's (an artifact upload, say) that runs after each trial's task has returned,
#: in the sweeper's process: before Hydra hands the value to the sweeper, even for a batch of one.
AFTER_THE_TASK = """\
import os

from hydra.experimental.callback import Callback


class KillsTheSweeperAfterTrial0(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        if config.hydra.job.num == 0 and not os.path.exists({killed!r}):
            open({killed!r}, "w").close()
            os.kill(os.getpid(), 9)
"""


def app_with_callback(tmp_path: Path, callback: str, bandwidth: int) -> tuple[list[str], Path]:
    """The app (each run appends "<job number> <x>" to runs.log) with one of AFTER_THE_TASK's callbacks."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    (tmp_path / "killed").touch()  # the task itself kills nothing
    app = write_app(
        tmp_path, KILLS_THE_SWEEPER_ON_TRIAL_1.format(runs=str(runs), killed=str(tmp_path / "killed")), budget=3
    )
    (app.parent / "callbacks.py").write_text(AFTER_THE_TASK.format(killed=str(tmp_path / "callback-killed")))
    cmd = [
        sys.executable,
        str(app),
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.parallel_bandwidth={bandwidth}",
        f"+hydra.callbacks.users._target_=callbacks.{callback}",
    ]
    return cmd, sweep_dir


def test_at_bandwidth_1_a_kill_after_the_task_returned_keeps_its_result(tmp_path: Path) -> None:
    """Why the value is kept at parallel_bandwidth 1 too: between the task's return and the journal,
    Hydra runs the user's on_job_end callbacks in the sweeper's process; a kill -9 there lost a trial
    that may have trained for hours."""
    cmd, sweep_dir = app_with_callback(tmp_path, "KillsTheSweeperAfterTrial0", bandwidth=1)
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    x_of_trial_0 = (tmp_path / "runs.log").read_text().split()[1]
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "Trial #0 had returned before the sweeper's process ended: its result is recorded" in resumed.stdout
    assert runs_of(tmp_path, x_of_trial_0) == 1, (tmp_path / "runs.log").read_text()
    assert [t.state for t in journaled(sweep_dir).values()] == ["completed"] * 3
    assert kept_files(sweep_dir) == []


#: Trial #1 leaves a file where Hydra then makes trial #2's folder: the launcher raises there.
BLOCKS_TRIAL_2S_FOLDER = """\
if job_num() == 1:
    with open(os.path.join("{sweep}", "2"), "w") as f:
        f.write("not a folder")
"""


def test_a_batch_the_launcher_lost_records_the_trials_that_had_returned(tmp_path: Path) -> None:
    """The basic launcher runs a batch's trials one after the other, and raises out of the whole batch
    where Hydra cannot set a trial up (here trial #2's folder cannot be made: trial #1 left a file in its place).
    All 3 trials were recorded as failed ("the launcher lost the batch"), #0 and #1 too, whose tasks
    had returned their values."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    (tmp_path / "killed").touch()  # trial #1 does not kill the sweeper
    task = BLOCKS_TRIAL_2S_FOLDER + KILLS_THE_SWEEPER_ON_TRIAL_1.format(runs=str(runs), killed=str(tmp_path / "killed"))
    app = write_app(tmp_path, task.replace("{sweep}", str(sweep_dir)), budget=3)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = dict(line.split() for line in runs.read_text().splitlines())
    assert list(ran) == ["0", "1"], ran  # #2 never started
    trials = journaled(sweep_dir)
    assert [t.state for t in trials.values()] == ["completed", "completed", "failed"], trials
    assert [v.value for v in trials[0].values] == [float(ran["0"])]
    assert [v.value for v in trials[1].values] == [float(ran["1"])]
    assert "the launcher lost the batch" in str(trials[2].failure_reason), trials[2]
    assert kept_files(sweep_dir) == []


#: Trial #0 raises; trial #1 then kills the sweeper's process (once).
RAISES_ON_TRIAL_0 = KILLS_THE_SWEEPER_ON_TRIAL_1.replace(
    "return cfg.x", "if job_num() == 0:\n    raise ValueError('the loss diverged')\nreturn cfg.x"
)


#: Trial #0's loss diverged: it returns NaN, which the sweep records as a failed trial.
RETURNS_NAN_ON_TRIAL_0 = KILLS_THE_SWEEPER_ON_TRIAL_1.replace(
    "return cfg.x", "if job_num() == 0:\n    return float('nan')\nreturn cfg.x"
)


def test_a_trial_that_raised_before_the_sweeper_was_killed_is_recorded_as_failed_on_resume(tmp_path: Path) -> None:
    """Only returned values were kept: trial #0, which had raised, was run again by the resumed sweep
    as if it had never ended, instead of being recorded as failed (as it is without the kill)."""
    runs = tmp_path / "runs.log"
    _, sweep_dir, ran_before = sweep_killed_on_trial_1(tmp_path, task=RAISES_ON_TRIAL_0)
    x_of_trial_0 = ran_before[0].split()[1]

    status = hydra_sigopt("status", sweep_dir)
    assert "1 ended while no sweeper ran (recorded on resume)" in status.stdout, status.stdout
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "Trial #0 had failed before the sweeper's process ended: it is recorded as failed" in resumed.stdout
    assert runs_of(tmp_path, x_of_trial_0) == 1, runs.read_text()  # not run again
    trials = journaled(sweep_dir)
    assert trials[0].state == "failed" and "ValueError: the loss diverged" in str(trials[0].failure_reason), trials
    assert [t.state for t in trials.values()].count("completed") == 2, trials  # #0 counts in the budget of 3
    assert kept_files(sweep_dir) == []


@pytest.mark.parametrize(
    ("task", "said", "state"),
    [
        (
            KILLS_THE_SWEEPER_ON_TRIAL_1,
            "finished in the sweeper's process, which ended; a resumed sweep records its result",
            "completed",
        ),
        (
            RAISES_ON_TRIAL_0,
            "failed in the sweeper's process, which ended; a resumed sweep records its failure",
            "failed",
        ),
        (
            RETURNS_NAN_ON_TRIAL_0,
            "failed in the sweeper's process, which ended; a resumed sweep records its failure",
            "failed",
        ),
    ],
    ids=["returned", "raised", "returned_nan"],
)
def test_kill_after_the_sweeper_died_leaves_a_trial_that_had_ended_for_the_resume(
    tmp_path: Path, task: str, said: str, state: str
) -> None:
    """``hydra-sigopt kill`` on the dead sweeper (to be sure nothing runs) does not throw away a trial
    that had ended; it said a trial whose task had raised "finished ...; a resumed sweep records its
    result": the user read a failure as a result to come."""
    _, sweep_dir, ran_before = sweep_killed_on_trial_1(tmp_path, task=task)
    killed = hydra_sigopt("kill", sweep_dir)
    assert killed.returncode == 0, killed.stderr
    assert f"trial #0 job -: {said}" in killed.stdout, killed.stdout
    # #2 waited behind #1 in the batch: it had not started (it had the batch's start time, and was
    # said to be "in the sweeper's process").
    assert "trial #2 job -: had not started in its batch: nothing to cancel" in killed.stdout, killed.stdout
    assert journaled(sweep_dir)[2].started_at is None and journaled(sweep_dir)[1].started_at is not None
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert runs_of(tmp_path, ran_before[0].split()[1]) == 1, (tmp_path / "runs.log").read_text()
    assert journaled(sweep_dir)[0].state == state


def test_a_long_failure_kept_through_the_kill_still_says_where_its_whole_traceback_is(tmp_path: Path) -> None:
    """The resumed sweep recorded the kept failure cut to 500 characters without saying where the
    rest was, which a failure recorded without the kill says (its failure_traceback.log)."""
    task = RAISES_ON_TRIAL_0.replace("'the loss diverged'", "'the loss diverged ' * 100")
    _, sweep_dir, _ = sweep_killed_on_trial_1(tmp_path, task=task)
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    reason = str(journaled(sweep_dir)[0].failure_reason)
    assert reason.startswith("ValueError: the loss diverged the loss diverged"), reason
    whole = reason.partition("; full traceback in ")[2].rstrip(")")
    assert whole.endswith("failure_traceback.log"), reason
    assert "the loss diverged " * 100 in Path(whole).read_text()


#: Trial #0 gets a Ctrl-C (SIGINT to the sweeper's process, where it runs) while it trains.
CTRL_C_IN_TRIAL_0 = """\
import signal
import time
with open({runs!r}, "a") as log:
    log.write(f"{{job_num()}} {{cfg.x!r}}\\n")
if job_num() == 0 and not os.path.exists({stopped!r}):
    open({stopped!r}, "w").close()
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
return cfg.x
"""


def test_a_ctrl_c_in_a_trial_is_not_kept_as_its_failure(tmp_path: Path) -> None:
    """A Ctrl-C stops the sweep; the trial it lands in is cancelled, not failed (nor kept as failed for a resume)."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    app = write_app(tmp_path, CTRL_C_IN_TRIAL_0.format(runs=str(runs), stopped=str(tmp_path / "stopped")), budget=2)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=2"]
    stopped = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "Interrupted" in stopped.stdout + stopped.stderr, (stopped.stdout + stopped.stderr)[-3000:]
    assert kept_files(sweep_dir) == []
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    trials = journaled(sweep_dir)
    assert trials[0].state == "abandoned", trials  # cancelled by the stop: not a failure of its point
    assert "failed" not in [t.state for t in trials.values()], trials
    assert [t.state for t in trials.values()].count("completed") == 2, trials


#: Trial #0 gets a Ctrl-C while it trains and swallows it, as Lightning's graceful shutdown does: it
#: then returns what it trained so far, or turns the Ctrl-C into its own error.
CTRL_C_SWALLOWED_IN_TRIAL_0 = """\
import signal
import time
with open({runs!r}, "a") as log:
    log.write(f"{{job_num()}} {{cfg.x!r}}\\n")
if job_num() == 0 and not os.path.exists({stopped!r}):
    open({stopped!r}, "w").close()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    except KeyboardInterrupt:
        if {raises!r}:
            raise RuntimeError("training was interrupted")
        return 999.0
return cfg.x
"""


@pytest.mark.parametrize("raises", [False, True], ids=["returns", "raises"])
def test_a_trial_that_swallowed_the_ctrl_c_is_run_again_after_a_kill_during_the_stop(
    tmp_path: Path, raises: bool
) -> None:
    """What the trial returned (or raised) after the sweep's Ctrl-C is no result of its point: the stop
    says so ("its result is not kept"). A sweeper killed during that stop (a second Ctrl-C's kill, the
    terminal closed) left it kept, and the resume recorded 999.0 as the trial's value (found by
    review-40; a failure was already not kept)."""
    runs, sweep_dir = tmp_path / "runs.log", tmp_path / "sweep"
    task = CTRL_C_SWALLOWED_IN_TRIAL_0.format(runs=str(runs), stopped=str(tmp_path / "stopped"), raises=raises)
    app = write_app(tmp_path, task, budget=2)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=2"]
    env = {**os.environ, "HYDRA_SIGOPT_CRASH_AT": "while_stopping:1"}
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == -signal.SIGKILL, (first.stdout + first.stderr)[-3000:]
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    trials = journaled(sweep_dir)
    assert trials[0].state not in ("completed", "failed"), trials  # run again or abandoned: never its value
    assert 999.0 not in [v.value for t in trials.values() for v in t.values], trials
    assert [t.state for t in trials.values()].count("completed") == 2, trials
    assert kept_files(sweep_dir) == []


def test_a_sweeper_killed_between_the_journal_and_the_removal_of_the_kept_value_records_it_once(
    tmp_path: Path,
) -> None:
    """The kept value is removed only once the journal has the result: a kill in between leaves the
    file, which the resumed sweep neither records again nor leaves behind."""
    runs, sweep_dir, first = _batch_of_3_crashing_at(tmp_path, "after_result:1")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert journaled(sweep_dir)[0].state == "completed"
    assert kept_files(sweep_dir) == [f".hydra_sigopt/trials/{n}/returned.pkl" for n in (0, 1, 2)]

    status = hydra_sigopt("status", sweep_dir)
    assert "Trials:      1/3 done (1 completed, 0 failed), 0 running, 2 ended while no sweeper ran" in status.stdout
    resumed = hydra_sigopt("continue", sweep_dir, "--run")
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "Trial #0 had returned" not in resumed.stdout + resumed.stderr
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["0", "1", "2"]  # none ran again
    trials = journaled(sweep_dir)
    assert [(t.state, t.observed) for t in trials.values()] == [("completed", True)] * 3, trials
    assert kept_files(sweep_dir) == []
