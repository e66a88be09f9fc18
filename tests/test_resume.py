"""Crash safety: SIGKILL the sweeper at every point of a sweep, run the same command again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import SUBMITIT_LOCAL, run_example, running_job_ids, start_example

from hydra_sigopt.crashpoints import ENV_VAR
from hydra_sigopt.journal import Journal, Trial
from hydra_sigopt.processes import local_job_running

pytestmark = pytest.mark.slow

BUDGET = 6
#: A sweep run as ``hydra-sigopt submit`` runs it: trials left running when it is stopped.
DRIVER_LIKE = (
    *SUBMITIT_LOCAL,
    "hydra.sweeper.observation_budget=4",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.on_interrupt=detach",
    "hydra.sweeper.warm_jobs=0",
)


def assert_sweep_is_whole(sweep_dir: Path, budget: int, in_flight: int) -> list:
    """The invariants a resumed sweep must hold, read from its journal and job folders."""
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
        meta = journal.meta()
    finished = [t for t in trials if t.state in ("completed", "failed")]
    # Exactly the budget was observed, each trial once, and the engine holds exactly those.
    assert len(finished) == budget
    assert all(t.observed for t in finished)
    assert meta["engine_observation_count"] == budget
    assert {t.state for t in trials} <= {"completed", "failed", "abandoned"}
    # No job folder was reused: each holds the overrides of the trial with its number.
    for t in trials:
        overrides_file = sweep_dir / str(t.number) / ".hydra" / "overrides.yaml"
        if overrides_file.exists():
            assert yaml.safe_load(overrides_file.read_text()) == t.overrides
    # Completed work was never re-run: only abandoned trials have re-runs.
    by_number = {t.number: t for t in trials}
    assert all(by_number[t.rerun_of].state == "abandoned" for t in trials if t.rerun_of is not None)
    completed_points = [tuple(sorted(t.assignments.items())) for t in trials if t.state == "completed"]
    assert len(completed_points) == len(set(completed_points))
    # At most the trials in flight when the sweeper died were run twice.
    assert len(trials) <= budget + in_flight
    return trials


@pytest.mark.parametrize(
    "crash_at",
    ["after_record_trial:3", "after_submit:3", "in_task:3", "after_result:3", "after_observe:3"],
)
def test_killed_at_any_point_resumes_without_loss_or_duplicates(tmp_path: Path, crash_at: str) -> None:
    overrides = (f"hydra.sweeper.observation_budget={BUDGET}", "hydra.sweeper.parallel_bandwidth=2")
    first = run_example(tmp_path, *overrides, env={ENV_VAR: crash_at})
    assert first.proc.returncode == -signal.SIGKILL, first.output[-3000:]
    second = run_example(tmp_path, *overrides).assert_ok()
    assert "Resuming the sweep" in second.output
    assert_sweep_is_whole(second.sweep_dir, BUDGET, in_flight=2)
    assert len(second.trials) >= BUDGET


def test_resume_option_continues_a_sweep_and_a_larger_budget_extends_it(tmp_path: Path) -> None:
    first = run_example(tmp_path, "hydra.sweeper.observation_budget=3").assert_ok()
    # A fresh command line pointing at the old sweep dir with hydra.sweeper.resume.
    second = run_example(
        tmp_path,
        "hydra.sweeper.observation_budget=5",
        f"hydra.sweeper.resume={first.sweep_dir}",
        sweep_dir=tmp_path / "elsewhere",
    ).assert_ok()
    assert not (tmp_path / "elsewhere").exists()
    trials = assert_sweep_is_whole(first.sweep_dir, 5, in_flight=0)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    # The budget already spent counts: the second run only ran trials 3 and 4.
    assert "#3 : " in second.output and "#0 : " not in second.output


def test_a_sweep_named_with_the_time_keeps_its_name_when_its_command_is_run_again(tmp_path: Path) -> None:
    """``hydra.sweeper.name=sweep-${now:...}`` in the command the interrupted sweep printed: run again,
    it named the resumed sweep with the new time, while ``hydra-sigopt status`` and the results kept
    the first one."""
    named = "hydra.sweeper.name=sweep-${now:%H-%M-%S-%f}"
    first = run_example(tmp_path, named, "hydra.sweeper.observation_budget=2").assert_ok()
    started_as = re.search(r"SigOpt sweep '(sweep-[0-9-]+)'", first.output)
    assert started_as is not None, first.output[-2000:]
    second = run_example(tmp_path, named, "hydra.sweeper.observation_budget=3", sweep_dir=first.sweep_dir).assert_ok()
    assert "Resuming the sweep" in second.output
    assert f"SigOpt sweep '{started_as[1]}'" in second.output, second.output[-2000:]
    assert "the sweep keeps the name it started with" in second.output
    results = yaml.safe_load((first.sweep_dir / "optimization_results.yaml").read_text())
    assert results["experiment"] == started_as[1]


def test_a_budget_below_the_trials_done_is_refused_naming_the_key_and_the_count(tmp_path: Path) -> None:
    """A tester: resumed with observation_budget=2 after 4 trials were done, the sweep logged
    "4/2 trials done" and hydra-sigopt status said "4/2 done"."""
    first = run_example(tmp_path, "hydra.sweeper.observation_budget=4").assert_ok()
    lower = run_example(tmp_path, "hydra.sweeper.observation_budget=2")
    assert lower.proc.returncode != 0
    assert "4/2" not in lower.output, lower.output[-2000:]
    assert "hydra.sweeper.observation_budget: 2 is below the 4 trials this sweep has done already" in lower.output, (
        lower.output[-2000:]
    )
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(first.sweep_dir)], capture_output=True, text=True
    ).stdout
    assert "4/4 done" in status, status  # the refused run changed nothing


def test_changed_definition_is_refused_with_what_differs(tmp_path: Path) -> None:
    run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    changed = run_example(
        tmp_path, "hydra.sweeper.observation_budget=3", "hydra.sweeper.params.l1_ratio='interval(0.1,0.9)'"
    )
    assert changed.proc.returncode != 0
    assert "different experiment definition" in changed.output
    assert "parameter 'l1_ratio' changed" in changed.output
    assert "use another hydra.sweep.dir" in changed.output


def test_a_changed_fixed_override_is_refused_naming_it_not_the_search_space(tmp_path: Path) -> None:
    """Resumed with ``sleep_s=0.1`` where it ran with ``sleep_s=0``, the refusal said to run it "with its
    original search space and metrics", which had not changed."""
    first = run_example(tmp_path, "hydra.sweeper.observation_budget=2", "sleep_s=0").assert_ok()
    changed = run_example(tmp_path, "hydra.sweeper.observation_budget=3", "sleep_s=0.1")
    assert changed.proc.returncode != 0
    assert "the overrides every trial gets (fixed_overrides) changed from ['sleep_s=0'] to ['sleep_s=0.1']" in (
        changed.output
    ), changed.output[-2000:]
    assert "search space" not in changed.output
    assert f"hydra-sigopt continue {first.sweep_dir} prints it" in changed.output


@pytest.mark.parametrize("scheduler", ["async", "batch"])
def test_submitit_local_jobs_outlive_the_sweeper_and_are_reattached(tmp_path: Path, scheduler: str) -> None:
    sweep_dir = tmp_path / "sweep"
    overrides = [
        *SUBMITIT_LOCAL,
        f"hydra.sweeper.scheduler={scheduler}",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=6",
        "sleep_jobs=[0,1]",
    ]
    proc, _ = start_example(tmp_path, *overrides)
    running = running_job_ids(sweep_dir, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The jobs (local processes) are still running without their sweeper.
    for job_id in running.values():
        os.kill(int(job_id), 0)
    second = run_example(tmp_path, *overrides).assert_ok()
    for number, job_id in running.items():
        assert f"Trial #{number}: re-attached to job {job_id}" in second.output
    trials = assert_sweep_is_whole(sweep_dir, 4, in_flight=2)
    by_number = {t.number: t for t in trials}
    # Re-attached, not re-run: the same jobs delivered their results.
    assert all(by_number[n].job_id == j and by_number[n].state == "completed" for n, j in running.items())
    assert not any(t.state == "abandoned" for t in trials)


def test_after_a_resume_progress_counts_finished_jobs_and_not_the_time_no_sweeper_ran(tmp_path: Path) -> None:
    """Issue 14: after a resume the first progress line showed re-attached jobs that had finished
    meanwhile as running, and the elapsed time restarted from 0 (it counts the earlier runs' time:
    test_elapsed_counts_the_time_sweepers_ran_and_status_agrees_with_the_progress_line)."""
    overrides = [
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.progress_interval=1",
        "sleep_s=3",
        "sleep_jobs=[0,1]",
    ]
    proc, sweep_dir = start_example(tmp_path, *overrides)
    running_job_ids(sweep_dir, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(30)  # both jobs end while no sweeper runs
    second = run_example(tmp_path, *overrides).assert_ok()
    first = next(line for line in second.output.splitlines() if "Progress:" in line)
    assert "2/4 trials done" in first, first
    # The 30 s no sweeper ran are not the sweep's elapsed time (the runs' own seconds are: a loaded
    # machine may take several to start each, hence the long pause).
    assert _seconds(re.search(r"elapsed (\S+)", first)) < 30, first


def _seconds(found: re.Match[str] | None) -> int:
    """A duration as format_duration writes it (``42s``, ``1m05s``), in seconds."""
    assert found is not None
    minutes, _, seconds = found.group(1).rstrip(",").rpartition("m")
    return int(minutes or 0) * 60 + int(seconds.rstrip("s"))


def test_elapsed_counts_the_time_sweepers_ran_and_status_agrees_with_the_progress_line(tmp_path: Path) -> None:
    """A tester: after a kill and a resume, status's Elapsed counted the time no sweeper ran, and
    disagreed with the sweeper's last progress line (status stopped at the last trial's end)."""
    overrides = [
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.progress_interval=1",
        "sleep_s=2",
    ]
    began = time.time()
    proc, sweep_dir = start_example(tmp_path, *overrides)
    running_job_ids(sweep_dir, 1)
    time.sleep(6)  # the first run runs a while
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(15)  # the sweep is down: no sweeper runs
    second = run_example(tmp_path, *overrides).assert_ok()
    wall = time.time() - began
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    ).stdout
    line = next(line for line in status.splitlines() if line.startswith("Elapsed:"))
    shown = _seconds(re.search(r"Elapsed:\s+(\S+)", line))
    logged = [line for line in second.output.splitlines() if "Progress:" in line]
    # status and the sweeper's last line give the same figure (each rounded to the second; the
    # last note in the journal may follow the last line by a moment on a loaded machine)
    assert abs(shown - _seconds(re.search(r"elapsed (\S+)", logged[-1]))) <= 3, (line, logged[-1])
    # it counts both runs (the first one's 6 s, less the seconds since its last note in the journal,
    # and the second's), not the 15 s between them, and says so
    assert 6 <= shown <= wall - 15, (line, wall)
    assert "s with a sweeper running, not counting " in line and "s between runs (started" in line, line
    # the resumed sweeper's first line counts the first run's time already
    assert _seconds(re.search(r"elapsed (\S+)", logged[0])) >= 2, logged[0]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["ssh-lost", "killed"])
def test_local_jobs_killed_with_the_sweepers_process_group_are_rerun(tmp_path: Path, signum: int) -> None:
    # A lost SSH session hangs up the terminal's whole process group (SIGHUP): the local jobs die
    # with it, without results (the sweeper leaves them running, as every hung-up sweeper does). The
    # rerun must re-run them, not count them as failures.
    overrides = [
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=30",
        "sleep_jobs=[0,1]",
    ]
    proc, sweep_dir = start_example(tmp_path, *overrides, new_session=True)
    running = running_job_ids(sweep_dir, 2)
    os.killpg(proc.pid, signum)
    first, _ = proc.communicate()
    if signum == signal.SIGHUP:  # the jobs got the hang-up too: not said to be re-attached only
        assert "re-attaches to those still running and runs again any the hang-up ended" in first, first[-3000:]
    resumed = run_example(tmp_path, *overrides).assert_ok()
    for number in running:
        assert f"Trial #{number} is re-run under a new job number" in resumed.output
    trials = assert_sweep_is_whole(sweep_dir, 3, in_flight=2)
    assert not any(t.state == "failed" for t in trials)
    assert sorted(t.rerun_of for t in trials if t.rerun_of is not None) == [0, 1]


def test_a_reused_pid_is_not_taken_for_a_local_job(tmp_path: Path) -> None:
    from hydra_sigopt.processes import cancel_local_jobs, local_job_running

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        assert not local_job_running(stranger.pid)
        assert cancel_local_jobs([stranger.pid]) == []
        assert stranger.poll() is None  # left alone
    finally:
        stranger.kill()
        stranger.wait()


def test_a_signal_repeated_while_the_sweeper_stops_leaves_a_clean_stop(tmp_path: Path) -> None:
    """Slurm ending or requeueing a submitted driver SIGTERMs every process of the job, and the driver
    script forwards the same SIGTERM to the sweeper: two, milliseconds apart. The second one landed in
    the first one's handling (CI, test_slurm_driver): a traceback, and a sweeper dead halfway through
    stopping. Here the two come exactly so: one as a trial is submitted, one as the stop begins."""
    overrides = [*DRIVER_LIKE, "sleep_s=2"]
    env = {ENV_VAR: "after_submit:3:TERM,while_stopping:1:TERM"}
    stopped = run_example(tmp_path, *overrides, env=env)
    assert stopped.proc.returncode != 0 and "Traceback" not in stopped.output, stopped.output[-3000:]
    # Trial #2, being submitted, and whichever of #0 and #1 had not ended yet. They start together
    # and end within milliseconds: on a loaded machine both may have ended when #2 is submitted.
    left = re.search(r"Trials \[((?:[01], )?2)\] were left running \(on_interrupt: detach\)", stopped.output)
    assert left, stopped.output[-3000:]
    running = len(left.group(1).split(", "))
    assert stopped.results["trials"]["running"] == running  # the results files were written to the end
    resumed = run_example(tmp_path, *overrides).assert_ok()
    trials = assert_sweep_is_whole(resumed.sweep_dir, 4, in_flight=running)
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 4, resumed.output[-3000:]


@pytest.mark.parametrize("point", ["after_record_trial", "after_submit"])
def test_a_stop_signal_while_a_trial_is_submitted_neither_loses_nor_reruns_it(tmp_path: Path, point: str) -> None:
    """The requeue of a submitted driver came as its third trial was being submitted (CI, test_slurm_driver):
    the trial was journaled, its job started, and the stop left it without a job id; the requeued
    driver re-ran it under a new number while its job ran on. A stop signal waits for the submission."""
    overrides = [*DRIVER_LIKE, "sleep_s=2"]
    stopped = run_example(tmp_path, *overrides, env={ENV_VAR: f"{point}:3:TERM"})
    assert stopped.proc.returncode != 0 and "Traceback" not in stopped.output, stopped.output[-3000:]
    assert "were left running (on_interrupt: detach)" in stopped.output, stopped.output[-3000:]
    resumed = run_example(tmp_path, *overrides).assert_ok()
    trials = assert_sweep_is_whole(resumed.sweep_dir, 4, in_flight=2)
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 4, resumed.output[-3000:]


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hang-up"])
def test_detached_local_jobs_outlive_a_ctrl_c_or_hang_up_of_the_terminal(tmp_path: Path, sent: int) -> None:
    """on_interrupt: detach, submitit_local: a terminal's Ctrl-C (SIGINT to its whole foreground
    process group) killed the jobs too, while the sweeper said they were left running; the resumed
    sweep found them gone and ran them again. A hang-up (a lost SSH session) must leave them running
    as well, and trackable: their task alone out of the group ran on as an orphan nothing could cancel."""
    from conftest import EPOCHS_APP

    overrides = [*SUBMITIT_LOCAL, "hydra.sweeper.on_interrupt=detach", "hydra.sweeper.parallel_bandwidth=2"]
    overrides += ["hydra.sweeper.observation_budget=3", "hydra.sweeper.early_stopping.rule=none", "epoch_sleep_s=0.5"]
    proc, sweep_dir = start_example(tmp_path, *overrides, new_session=True, app=EPOCHS_APP)
    try:
        jobs = running_job_ids(sweep_dir, 2)
        time.sleep(1.0)  # their tasks run
        os.killpg(proc.pid, sent)  # to the terminal's foreground process group
        proc.wait(timeout=60)  # not its output's end: the jobs hold the pipe, as they would hold the terminal
        assert all(local_job_running(job) for job in jobs.values())  # running, and a cancel can reach them
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    if sent == signal.SIGINT:
        assert f"Trials {sorted(jobs)} were left running (on_interrupt: detach)" in out, out[-3000:]
    resumed = run_example(tmp_path, *overrides, app=EPOCHS_APP).assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    assert [(t.state, t.job_id) for t in trials[:2]] == [("completed", jobs[0]), ("completed", jobs[1])], (
        resumed.output[-3000:]
    )
    assert [t.state for t in trials] == ["completed"] * 3, resumed.output[-3000:]


@pytest.mark.parametrize("policy", ["cancel", "detach"])
def test_a_hang_up_of_the_sweeper_stops_it_cleanly_and_leaves_its_trials_running(tmp_path: Path, policy: str) -> None:
    """A lost SSH session's SIGHUP killed the sweeper outright: no trials.csv nor
    optimization_results.yaml until a resume, the running trials not said to be left running, and
    the stop not journaled (status: "ended while no sweeper ran"). Handled as a Ctrl-C, it cancelled
    the running trials with on_interrupt: cancel, the default: hours of Slurm training lost to a
    dropped connection the user never meant as a stop. Hung up, the sweeper stops and leaves them
    running whatever on_interrupt says; the resumed sweep re-attaches to them."""
    overrides = [*SUBMITIT_LOCAL, f"hydra.sweeper.on_interrupt={policy}", "hydra.sweeper.parallel_bandwidth=2"]
    overrides += ["hydra.sweeper.observation_budget=4", "sleep_s=10"]
    proc, sweep_dir = start_example(tmp_path, *overrides)
    try:
        jobs = running_job_ids(sweep_dir, 2)
        os.kill(proc.pid, signal.SIGHUP)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    ).stdout
    assert "Sweeper:     not running" in status, status
    states = [line.split(",")[:2] for line in (sweep_dir / "trials.csv").read_text().splitlines()[1:]]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    said = f"Interrupted. Trials {sorted(jobs)} were left running (the sweeper's terminal hung up: SIGHUP)"
    assert said in out and "Continue this sweep with: " in out, out[-3000:]
    # (status says "running", or "ended while no sweeper ran" once their sleep is over: never abandoned)
    assert "abandoned" not in status, status
    assert states == [["0", "running"], ["1", "running"]] and results["trials"]["running"] == 2
    resumed = run_example(tmp_path, *overrides).assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        completed = [(t.number, t.job_id) for t in journal.trials(["completed"])]
    assert len(completed) == 4, resumed.output[-3000:]
    assert completed[:2] == [(0, jobs[0]), (1, jobs[1])], resumed.output[-3000:]  # re-attached, not run again


def test_a_resume_with_another_launcher_leaves_the_running_jobs_to_the_sweeps_own(tmp_path: Path) -> None:
    """The README's hydra.sweeper.resume=<dir>, with the launcher override forgotten: the resumed
    sweep said the jobs' trials "ran inside the stopped sweeper process", re-ran them in-process while
    their jobs ran on, and recorded the jobs' results nowhere, in that resume nor in the next."""
    from conftest import EPOCHS_APP

    sweep = ["hydra.sweeper.parallel_bandwidth=2", "hydra.sweeper.observation_budget=3", "epochs=4"]
    sweep += ["hydra.sweeper.early_stopping.rule=none", "epoch_sleep_s=1"]
    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, *sweep, app=EPOCHS_APP)
    try:
        jobs = running_job_ids(sweep_dir, 2)
    finally:
        proc.kill()  # the SSH session died with the sweeper
        proc.communicate(timeout=60)
    before = (sweep_dir / "multirun.yaml").read_text()
    forgot = run_example(tmp_path, *sweep, f"hydra.sweeper.resume={sweep_dir}", app=EPOCHS_APP)
    assert (sweep_dir / "multirun.yaml").read_text() == before  # nothing written: not the wrong launcher's config
    assert forgot.proc.returncode != 0 and "Traceback" not in forgot.output, forgot.output[-3000:]
    assert f"trials [0, 1] run as local jobs {[jobs[0], jobs[1]]}, which this run's launcher" in forgot.output
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [(t.state, t.job_id) for t in journal.trials()] == [("running", jobs[0]), ("running", jobs[1])]
    resumed = run_example(tmp_path, *SUBMITIT_LOCAL, *sweep, app=EPOCHS_APP).assert_ok()
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    assert [(t.state, t.job_id) for t in trials[:2]] == [("completed", jobs[0]), ("completed", jobs[1])], (
        resumed.output[-3000:]
    )
    assert [t.state for t in trials] == ["completed"] * 3


def ctrl_c_once_it_runs(cmd: list[str], cwd: Path, marker: str, settle_s: float) -> tuple[str, float]:
    """Run the sweep ``cmd``; once a trial wrote ``cwd/marker`` (and ``settle_s`` later), Ctrl-C
    the sweeper (SIGINT to its pid); its output, and when the Ctrl-C came."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (cwd / marker).exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(settle_s)
        interrupted_at = time.time()
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return out, interrupted_at


THIRD_OF_A_BATCH_TRAINS_LONG = """\
import pathlib, sys, time
if job_num() == 2:
    pathlib.Path("trial-2-runs").write_text("")
    try:
        time.sleep(120)
    except KeyboardInterrupt:
        if cfg.get("after_ctrl_c") == "return":  # a loop that breaks and returns its value so far
            return cfg.x
        if cfg.get("after_ctrl_c") == "exit":  # Lightning 2's graceful shutdown, then sys.exit(1)
            sys.exit(1)
        raise
return cfg.x
"""


@pytest.mark.parametrize(
    ("launcher", "after_ctrl_c"),
    [
        ((), "raise"),
        ((), "return"),
        ((), "exit"),
        ((*SUBMITIT_LOCAL, "hydra.sweeper.scheduler=batch"), "raise"),
    ],
    ids=["basic", "basic-swallowed-return", "basic-swallowed-exit", "submitit"],
)
def test_a_ctrl_c_during_a_batch_keeps_the_trials_of_the_batch_that_had_finished(
    tmp_path: Path, launcher: tuple[str, ...], after_ctrl_c: str
) -> None:
    """The README's first config (parallel_bandwidth: 4, the basic launcher): a Ctrl-C as the third
    trial of a batch ran recorded the two that had finished as cancelled with it, and a resumed
    sweep ran new suggestions in their place: their trainings were lost. Also when the app swallows
    the Ctrl-C (Lightning does), as the batch's last trial."""
    stopped, resumed = ctrl_c_a_batch_then_resume(tmp_path, THIRD_OF_A_BATCH_TRAINS_LONG, launcher, after_ctrl_c)
    assert [t.state for t in stopped] == ["completed", "completed", "abandoned"]
    assert resumed == ["completed", "completed", "abandoned", "completed", "completed"]


def ctrl_c_a_batch_then_resume(
    tmp_path: Path,
    task: str,
    launcher: tuple[str, ...],
    after_ctrl_c: str = "raise",
    kept_said: str = "Trials [0, 1] had finished: their results are recorded",
) -> tuple[list[Trial], list[str]]:
    """Ctrl-C a batch of 3 (budget 4) as its third trial runs (it writes ``trial-2-runs``), then
    resume it: the trials after the stop, and their states after the resume. The stop must have said
    ``kept_said`` of trials 0 and 1."""
    from small_apps import write_app

    app = write_app(tmp_path, task, budget=4)
    cmd = [
        sys.executable,
        str(app),
        "-m",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.parallel_bandwidth=3",
    ]
    cmd += [f"+after_ctrl_c={after_ctrl_c}", *launcher]
    out, _ = ctrl_c_once_it_runs(cmd, tmp_path, "trial-2-runs", 1.0)  # the first two have ended
    assert "Interrupted" in out and kept_said in out, out[-3000:]
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        stopped = journal.trials()
    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        states = [t.state for t in journal.trials()]
    assert len(states) == 5, resumed.stderr[-3000:]
    return stopped, states


FIRST_FAILS_THIRD_TRAINS_LONG = """\
import pathlib, time
if job_num() == 0:
    raise FloatingPointError("the loss diverged")
if job_num() == 2:
    pathlib.Path("trial-2-runs").write_text("")
    time.sleep(120)
return cfg.x
"""


@pytest.mark.parametrize(
    "launcher", [(), (*SUBMITIT_LOCAL, "hydra.sweeper.scheduler=batch")], ids=["basic", "submitit"]
)
def test_a_ctrl_c_during_a_batch_keeps_the_trials_of_the_batch_that_had_failed(
    tmp_path: Path, launcher: tuple[str, ...]
) -> None:
    """A failed trial is finished work too: with the basic launcher, a Ctrl-C during the batch's
    third trial recorded the failed first as cancelled, and a resumed sweep ran a new suggestion in
    its place, whose failure the engine could have learnt from already."""
    said = "Trials #0 failed; #1 finished: their results are recorded"  # the failed one told apart
    stopped, resumed = ctrl_c_a_batch_then_resume(tmp_path, FIRST_FAILS_THIRD_TRAINS_LONG, launcher, kept_said=said)
    assert [t.state for t in stopped] == ["failed", "completed", "abandoned"]
    assert "FloatingPointError: the loss diverged" in (stopped[0].failure_reason or "")
    assert resumed == ["failed", "completed", "abandoned", "completed", "completed"]


THIRD_SWALLOWS_FOURTH_TRAINS = """\
import pathlib, time
if job_num() == 2:
    pathlib.Path("trial-2-runs").write_text("")
    try:
        time.sleep(120)
    except KeyboardInterrupt:
        print("Detected KeyboardInterrupt, attempting graceful shutdown...")  # as Lightning's Trainer does
if job_num() == 3:
    pathlib.Path("trial-3-ran").write_text("")
    time.sleep(30)  # a whole training, after the user asked the sweep to stop
return cfg.x
"""


def test_a_ctrl_c_an_in_process_trial_swallows_starts_no_later_trial_of_its_batch(tmp_path: Path) -> None:
    """The basic launcher runs a batch's trials one after the other: after a trial swallowed the
    Ctrl-C, the batch's next trials ran to their end, each a whole training the user had asked not
    to wait for (and then thrown away, as ended after the interrupt)."""
    from small_apps import write_app

    app = write_app(tmp_path, THIRD_SWALLOWS_FOURTH_TRAINS, budget=5)
    cmd = [
        sys.executable,
        str(app),
        "-m",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.parallel_bandwidth=4",
    ]
    out, interrupted_at = ctrl_c_once_it_runs(cmd, tmp_path, "trial-2-runs", 0.5)
    assert "graceful shutdown" in out and "Interrupted" in out, out[-3000:]
    assert not (tmp_path / "trial-3-ran").exists() and time.time() - interrupted_at < 20, out[-3000:]
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        trials = journal.trials()
    assert [t.state for t in trials] == ["completed", "completed", "abandoned", "abandoned"], out[-3000:]


SWALLOWING_TASK = """\
import pathlib, sys, time
trained = 0
if job_num() == 1:
    try:
        pathlib.Path("trial-1-runs").write_text("")
        for trained in range(1, 601):
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("Detected KeyboardInterrupt, attempting graceful shutdown...")  # as Lightning's Trainer does
        if cfg.get("after_ctrl_c") == "exit":
            sys.exit(1)  # as Lightning 2's Trainer.fit does next
return cfg.x + 1 / (1 + trained)  # after a Ctrl-C: the value of a training cut short
"""


@pytest.mark.parametrize("after_ctrl_c", ["return", "exit"])
def test_a_ctrl_c_that_an_in_process_trial_swallows_still_stops_the_sweep(tmp_path: Path, after_ctrl_c: str) -> None:
    """With the basic launcher a trial runs in the sweeper's process: Ctrl-C lands in the app, and a
    trainer that shuts down gracefully swallows it. The user pressed Ctrl-C to stop the sweep; the
    trial, cut short, was recorded completed with a few steps' value (posted to the engine as a
    result), or failed on Lightning's sys.exit(1), instead of being run again on resume."""
    from small_apps import write_app

    app = write_app(tmp_path, SWALLOWING_TASK, budget=4)
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", f"+after_ctrl_c={after_ctrl_c}"]
    out, _ = ctrl_c_once_it_runs(cmd, tmp_path, "trial-1-runs", 0.5)
    assert "graceful shutdown" in out and "Interrupted" in out, out[-3000:]
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        trials = journal.trials()
    assert [t.state for t in trials] == ["completed", "abandoned"], out[-3000:]  # none started after it
    (tmp_path / "trial-1-runs").unlink()
    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    with Journal.open(tmp_path / "sweep", readonly=True) as journal:
        trials = journal.trials()
    # Its suggestion is run again (or replaced), never observed with the value of a training cut short.
    assert [t.state for t in trials] == ["completed", "abandoned", *["completed"] * 3], resumed.stderr[-3000:]


def test_a_resume_does_not_repeat_the_points_of_the_trials_a_kill_abandoned(tmp_path: Path) -> None:
    """A tester's kill-and-resume loops ran the same point twice, side by side: a resume numbered its
    suggestions from those observed or in flight, so the abandoned trials' numbers were given again,
    and with them the engine's random streams (each suggestion has its own): the new trials were the
    abandoned ones' points. Random suggestions (dev_run) make that exact."""
    from conftest import SUBMITIT_LOCAL, running_job_ids
    from small_apps import write_app

    from hydra_sigopt.cli import main as hydra_sigopt

    hold = tmp_path / "hold"
    hold.touch()
    app = write_app(tmp_path, f"import time\nwhile os.path.exists({str(hold)!r}):\n    time.sleep(0.1)\nreturn cfg.x")
    overrides = (*SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", "hydra.sweeper.seed=7")
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    running_job_ids(sweep_dir, 2)
    assert hydra_sigopt(["kill", str(sweep_dir)]) == 0
    proc.communicate(timeout=120)
    hold.unlink()
    resumed = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    abandoned = {t.assignments["x"] for t in trials if t.state == "abandoned"}
    assert len(abandoned) == 2, trials
    repeated = [t.number for t in trials if t.state != "abandoned" and t.assignments["x"] in abandoned]
    assert not repeated, trials
    assert len({t.suggestion_id for t in trials}) == len(trials), [t.suggestion_id for t in trials]


def test_elapsed_counts_the_in_process_trial_a_killed_sweeper_was_running(tmp_path: Path) -> None:
    """The basic launcher runs a trial in the sweeper's own process, which notes that it still runs
    only between trials: killed (kill -9, a lost login node) several seconds into its first trial,
    status said "Elapsed: 0s", and a resumed sweep counted from there."""
    proc, sweep_dir = start_example(tmp_path, "hydra.sweeper.observation_budget=2", "sleep_s=60")
    deadline = time.time() + 60
    while not (sweep_dir / "0" / ".hydra").is_dir() and time.time() < deadline:  # its first trial runs
        time.sleep(0.1)
    trial_started = time.time()
    time.sleep(8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ran = time.time() - trial_started
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    ).stdout
    shown = _seconds(re.search(r"Elapsed:\s+(\S+)", status))
    # The sweeper says it runs every 2 s: the last 2 s before the kill may be missed.
    assert shown >= ran - 3, (shown, ran, status)


def test_a_plain_copy_of_an_ended_sweep_shows_the_time_its_sweepers_ran(tmp_path: Path) -> None:
    """``cp -r`` (not ``cp -a``) gives each copied file the copy's time. The sweeper's alive mark
    said when it last ran by its file's time: status on such a copy counted the time between the
    sweep's end and the copy as time a sweeper ran (and a resumed copy kept it in its elapsed)."""
    run_example(tmp_path, "hydra.sweeper.observation_budget=1").assert_ok()
    sweep_dir, copy = tmp_path / "sweep", tmp_path / "copy"

    def elapsed(folder: Path) -> str:
        status = subprocess.run(
            [sys.executable, "-m", "hydra_sigopt.cli", "status", str(folder)], capture_output=True, text=True
        ).stdout
        found = re.search(r"Elapsed:\s+(.*) \(started", status)
        assert found is not None, status
        return found.group(1)

    ran = elapsed(sweep_dir)
    time.sleep(5)  # the user copies the ended sweep some time later
    subprocess.run(["cp", "-r", str(sweep_dir), str(copy)], check=True)
    assert elapsed(copy) == ran
