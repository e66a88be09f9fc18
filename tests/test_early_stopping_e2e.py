"""End to end: the epoch-by-epoch example app reports, and the sweeper stops trials early.

Real Hydra multiruns in subprocesses, with the basic (in-process) launcher and submitit_local.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    EPOCHS_APP,
    SUBMITIT_LOCAL,
    AppRun,
    finish_example,
    run_example,
    running_job_ids,
    start_example,
)
from small_apps import write_app

from hydra_sigopt.errors import JournalError
from hydra_sigopt.journal import Journal
from hydra_sigopt.report_files import REPORTS_NAME, trials_root

pytestmark = pytest.mark.slow

EPOCHS = 12


def journal_view(sweep_dir: Path) -> tuple[dict[int, tuple[str, bool]], dict[tuple[int, int], dict[str, float]]]:
    """(state, observed) by trial, and every journaled report by (trial, step)."""
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = {t.number: (t.state, t.observed) for t in journal.trials()}
        reports = {(r.number, r.step): dict(r.metrics) for r in journal.reports.all()}
    return trials, reports


def assert_each_trial_observed_once(run: AppRun, budget: int) -> None:
    trials, _ = journal_view(run.sweep_dir)
    counted = {n: s for n, s in trials.items() if s[0] != "abandoned"}
    assert len(counted) == budget
    assert all(observed for _, observed in counted.values()), counted
    assert run.results["engine_observations"] == budget  # the engine holds one observation per trial


def check_stopped_sweep(run: AppRun, budget: int) -> list[dict[str, str]]:
    """What a user sees of a sweep where some trials were stopped: returns the stopped rows."""
    run.assert_ok()
    rows = run.trials
    stopped = [t for t in rows if t["state"] == "stopped"]
    completed = [t for t in rows if t["state"] == "completed"]
    assert stopped, run.output[-3000:]
    assert len(stopped) + len(completed) == budget
    assert all(int(t["step"]) == EPOCHS for t in completed)
    assert all(1 <= int(t["step"]) < EPOCHS for t in stopped)
    assert all(t["value.val_error"] for t in stopped)  # observed with its last reported value
    assert all(t["host"] for t in rows), rows  # where it ran: a stopped trial's too (a bad node shows)
    assert run.results["trials"]["stopped"] == len(stopped)
    assert run.results["best_trial"] in {int(t["number"]) for t in completed}  # a partial value is never the best
    for t in stopped:
        # The log says where it stopped as trials.csv does (it said the step the rule judged, 1, and
        # trials.csv 14, when a job's reports of steps 1 to 14 were read at once).
        assert f"Trial #{t['number']} stopped early at step {t['step']} (val_error=" in run.output
    assert f"Progress: {budget}/{budget} trials done, 0 running, 0 failed, {len(stopped)} stopped early" in run.output
    assert_each_trial_observed_once(run, budget)
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(run.sweep_dir)], capture_output=True, text=True
    )
    assert f"{budget}/{budget} done ({len(completed)} completed, {len(stopped)} stopped early, 0 failed)" in (
        status.stdout
    )
    return stopped


def assert_plot_shows_the_stops(run: AppRun, stopped: int) -> None:
    """``hydra-sigopt plot`` draws the learning curves with where trials were stopped."""
    from hydra_sigopt.plot import plot_sweep

    with Journal.open(run.sweep_dir, readonly=True) as journal:
        titles = plot_sweep(journal.meta(), journal.trials(), run.sweep_dir / "p.png", journal.reports.all())
    assert titles[0].endswith(f"completed, {stopped} stopped early, 0 failed"), titles
    assert titles[1] == f"learning curves ({stopped} stopped early: x)", titles
    done = subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "plot", str(run.sweep_dir)], capture_output=True)
    assert done.returncode == 0 and (run.sweep_dir / "sweep.png").stat().st_size > 0, done.stderr


@pytest.mark.parametrize("rule", ["asha", "median"])
def test_basic_launcher_stops_trials_while_they_run(workdir: Path, rule: str) -> None:
    run = run_example(
        workdir,
        "hydra.sweeper.observation_budget=10",
        f"hydra.sweeper.early_stopping.rule={rule}",
        "hydra.sweeper.seed=2",  # unseeded, now and then no trial was worse than the median (CI)
        app=EPOCHS_APP,
    )
    stopped = check_stopped_sweep(run, 10)
    assert_plot_shows_the_stops(run, len(stopped))
    # In-process, the decision is taken inside report(): the trial stops at the step that condemned it.
    _, reports = journal_view(run.sweep_dir)
    for t in stopped:
        n, step = int(t["number"]), int(t["step"])
        assert max(s for (m, s) in reports if m == n) == step
        assert float(t["value.val_error"]) == reports[(n, step)]["val_error"]


@pytest.mark.parametrize("scheduler", ["async", "batch"])
def test_submitit_local_stops_trials_running_as_jobs(workdir: Path, scheduler: str) -> None:
    run = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        f"hydra.sweeper.scheduler={scheduler}",
        "hydra.sweeper.observation_budget=8",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.seed=2",  # as above: a draw with some trial to stop
        "epoch_sleep_s=0.4",
        app=EPOCHS_APP,
    )
    stopped = check_stopped_sweep(run, 8)
    assert all(t["job_id"] for t in stopped)  # each ran as a job of its own, stopped through the file system


def test_a_launcher_that_cannot_stop_trials_says_so_at_the_start(workdir: Path) -> None:
    """A tester: with hydra/launcher=joblib and early_stopping.rule: asha, every trial trained to its
    last epoch and nothing said why (the sweeper reads a joblib batch's reports once it has ended)."""
    run = run_example(
        workdir,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        app=EPOCHS_APP,
    ).assert_ok()
    said = [line for line in run.output.splitlines() if "no trial is stopped early" in line]
    assert len(said) == 1 and "early_stopping.rule=asha" in said[0] and "JoblibLauncher" in said[0], said
    assert "hydra/launcher=submitit_local" in said[0]
    assert [t["state"] for t in run.trials] == ["completed"] * 4  # reports journaled, no trial stopped


#: Jobs of 4 epochs of 2 s, rungs at 1, 2 and 4: most trials are stopped at a rung.
SHORT_ASHA = (
    "hydra.sweeper.observation_budget=6",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.early_stopping.reduction_factor=2",
    "hydra.sweeper.early_stopping.max_step=4",
    "epochs=4",
    "epoch_sleep_s=2",
    "hydra.sweeper.seed=0",
)


def assert_stopped_jobs_trained_no_further(run: AppRun) -> None:
    """Each stopped trial's job log (the app logs every epoch it trained) ends at its step."""
    stopped = [t for t in run.trials if t["state"] == "stopped"]
    assert stopped, run.output[-3000:]
    for t in stopped:
        job_log = (run.sweep_dir / t["number"] / "train_epochs.log").read_text()
        trained = [int(line.split("epoch ")[1].split(":")[0]) for line in job_log.splitlines() if "] - epoch " in line]
        assert trained == list(range(1, int(t["step"]) + 1)), f"trial #{t['number']} (step {t['step']}): {trained}"


def test_a_job_the_rule_stops_trains_no_step_past_the_one_it_was_stopped_at(workdir: Path) -> None:
    """Issue 17, the cost lever: a job read the sweeper's decision only at its next report, so each
    trial stopped at a rung trained one more epoch first (twice the cost of the lowest rung). The
    app logs each epoch it trained; a stopped trial's log now ends at the step it was stopped at."""
    run = run_example(workdir, *SUBMITIT_LOCAL, *SHORT_ASHA, app=EPOCHS_APP).assert_ok()
    assert_stopped_jobs_trained_no_further(run)


def test_a_trial_that_trains_to_max_step_completes_and_is_not_stopped_early(workdir: Path) -> None:
    """asha had a rung at max_step: a trial that had trained in full could still be "stopped early"
    there (seed 0: one of 8), which saves nothing and excludes it from the best trial."""
    run = run_example(
        workdir,
        "hydra.sweeper.observation_budget=8",
        "hydra.sweeper.early_stopping.reduction_factor=2",
        "hydra.sweeper.early_stopping.max_step=4",
        "epochs=4",
        "hydra.sweeper.seed=0",
        app=EPOCHS_APP,
    ).assert_ok()
    assert {t["state"] for t in run.trials if t["step"] == "4"} == {"completed"}, run.trials
    assert any(t["state"] == "stopped" for t in run.trials), run.trials  # stopped at the rungs below


def test_bad_early_stopping_settings_stop_the_run_before_anything_is_written(workdir: Path) -> None:
    run = run_example(workdir, "hydra.sweeper.early_stopping.rule=hyperband", app=EPOCHS_APP)
    assert run.proc.returncode != 0
    assert "hydra.sweeper.early_stopping.rule: got 'hyperband'; valid values are ['none', 'median', 'asha']" in (
        run.output
    )
    assert not run.sweep_dir.exists()


def test_a_malformed_report_fails_its_trial_with_the_message_and_the_sweep_goes_on(workdir: Path) -> None:
    run = run_example(
        workdir,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.early_stopping.rule=none",
        "bad_report=text",
        "bad_report_jobs=[1]",
        app=EPOCHS_APP,
    ).assert_ok()
    by_number = {int(t["number"]): t for t in run.trials}
    assert by_number[1]["state"] == "failed"
    assert by_number[1]["failure_reason"].startswith("ValueError: report(step=1): val_error must be a number, got '0.")
    assert [by_number[n]["state"] for n in (0, 2, 3)] == ["completed"] * 3
    _, reports = journal_view(run.sweep_dir)
    assert not [key for key in reports if key[0] == 1]  # nothing of the bad trial reached the journal

    nan = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=2",
        "bad_report=decreasing",
        "bad_report_jobs=[0]",
        sweep_dir=workdir / "decreasing",
        app=EPOCHS_APP,
    ).assert_ok()
    first = nan.trials[0]
    assert first["state"] == "failed"
    assert "report(step=1): steps must increase, and the previous report's step was 1" in first["failure_reason"]


@pytest.mark.parametrize("launcher", [pytest.param(SUBMITIT_LOCAL, id="submitit_local"), pytest.param((), id="basic")])
def test_a_step_too_large_to_keep_fails_its_trial_not_the_sweep(workdir: Path, launcher: tuple[str, ...]) -> None:
    """A step of 2**63 or more reached the journal's insert: on submitit_local the sweep stopped on
    OverflowError (and so did every resume, the line still in the file); in-process each trial
    failed with it."""
    run = run_example(
        workdir,
        *launcher,
        "hydra.sweeper.observation_budget=3",
        "bad_report=huge_step",
        "bad_report_jobs=[1]",
        app=EPOCHS_APP,
    ).assert_ok()
    assert "OverflowError" not in run.output
    by_number = {int(t["number"]): t for t in run.trials}
    assert by_number[1]["state"] == "failed"
    assert by_number[1]["failure_reason"].startswith(
        f"ValueError: report(step={2**63 + 1}): the step must be a whole number from 0 to {2**63 - 1}"
    ), by_number[1]["failure_reason"]
    assert [by_number[n]["state"] for n in (0, 2)] != ["failed", "failed"]


def test_report_outside_a_sweep_of_this_sweeper_does_nothing(workdir: Path) -> None:
    plain = subprocess.run(
        [sys.executable, str(EPOCHS_APP), "epochs=3", f"hydra.run.dir={workdir / 'run'}"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "val_error=" in plain.stdout + plain.stderr
    # Under Hydra's own sweeper, in-process: report() is a no-op there too.
    app = workdir / "other" / "app.py"
    app.parent.mkdir()
    app.write_text(
        "import hydra\n"
        "from hydra_sigopt import report, should_stop\n\n\n"
        '@hydra.main(version_base="1.3", config_path=None)\n'
        "def main(cfg):\n"
        "    report(1, loss=1.0)\n"
        "    report(1, loss=float('nan'))\n"
        "    assert not should_stop()\n"
        "    print('reported and went on')\n\n\n"
        "main()\n"
    )
    other = subprocess.run(
        [sys.executable, str(app), "-m", f"hydra.sweep.dir={workdir / 'sweep'}", "+x=1,2"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0, other.stderr[-3000:]
    assert other.stdout.count("reported and went on") == 2
    assert not list(workdir.rglob(".hydra_sigopt"))


def wait_for(condition, what: str, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except (JournalError, sqlite3.Error):
            pass
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def test_a_trial_whose_sweeper_is_gone_stops_waiting_for_verdicts(workdir: Path) -> None:
    """With the median rule each report from min_step on waits for the sweeper's verdict (at most as
    long as the step took). A sweeper gone (detached on Ctrl-C; killed with its Slurm jobs running
    on) answers none: every epoch of the trials it left took twice as long, to the end."""
    proc, sweep_dir = start_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=1",
        "hydra.sweeper.on_interrupt=detach",
        "hydra.sweeper.early_stopping.rule=median",
        "epochs=7",
        "epoch_sleep_s=2",
        app=EPOCHS_APP,
    )
    reports = trials_root(sweep_dir) / "0" / REPORTS_NAME
    wait_for(lambda: reports.exists() and reports.read_text().count("\n") >= 1, "the trial's first report")
    proc.send_signal(signal.SIGINT)  # detach: the trial's job trains on, with no sweeper
    proc.wait(timeout=120)  # not communicate(): the job it left holds its output open
    gone_at = time.time()
    wait_for(lambda: reports.read_text().count("\n") == 7, "the trial's last report", timeout=120)
    times = [json.loads(line)["time"] for line in reports.read_text().splitlines()]
    # The reports after the sweeper was gone, from the second on (the first may have waited for a
    # verdict that never came): an epoch apart (2 s), not an epoch and a wait as long.
    gaps = [round(b - a, 2) for a, b in itertools.pairwise([t for t in times if t > gone_at][1:])]
    assert len(gaps) >= 2 and max(gaps) < 3.0, gaps


def test_a_trial_whose_job_finished_after_its_sweeper_stopped_keeps_every_report(workdir: Path) -> None:
    """A sweeper stopping marks its trials abandoned, then cancels their jobs: one that finished in
    between was recorded on resume with its result, but its reports after the sweeper's last read
    were never journaled (trials.csv: step 3 for a trial that trained 9 epochs; the step budget
    counted 3)."""
    from hydra_sigopt.crashpoints import ENV_VAR

    overrides = (
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.early_stopping.rule=none",
        "hydra.sweeper.early_stopping.step_budget=1000",
        "epochs=6",
        "epoch_sleep_s=0.5",
    )
    proc, sweep_dir = start_example(workdir, *overrides, env={ENV_VAR: "before_cancel:1"}, app=EPOCHS_APP)
    try:
        wait_for(lambda: len(journal_view(sweep_dir)[1]) >= 2, "two reports journaled")
        proc.send_signal(signal.SIGTERM)  # the stop marks the trials abandoned, and is killed before it cancels
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["abandoned"] * 2
        jobs = [str(t.job_id) for t in journal.trials()]
    results = [sweep_dir / ".submitit" / job / f"{job}_0_result.pkl" for job in jobs]
    wait_for(lambda: all(r.exists() for r in results), "both jobs ended with their results")
    resumed = run_example(workdir, *overrides, app=EPOCHS_APP).assert_ok()
    assert [(t["state"], t["step"]) for t in resumed.trials] == [("completed", "6")] * 2, resumed.trials
    assert "was abandoned, but its job" in resumed.output


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param((*SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", "epoch_sleep_s=0.4"), id="submitit_local"),
        pytest.param(("epoch_sleep_s=0.15",), id="basic"),
    ],
)
def test_a_killed_sweeper_resumes_with_every_report_and_stop_decision(workdir: Path, launcher: tuple[str, ...]) -> None:
    overrides = (*launcher, "hydra.sweeper.observation_budget=8")
    proc, sweep_dir = start_example(workdir, *overrides, app=EPOCHS_APP)
    try:
        # Killed while trials report, once at least one stop was decided.
        wait_for(lambda: "stopped" in {s for s, _ in journal_view(sweep_dir)[0].values()}, "a trial stopped")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before_trials, before_reports = journal_view(sweep_dir)
    stopped_before = {n for n, (state, _) in before_trials.items() if state == "stopped"}
    assert before_reports and stopped_before

    resumed = finish_example(*start_example(workdir, *overrides, app=EPOCHS_APP))
    resumed.assert_ok()
    after_trials, after_reports = journal_view(sweep_dir)
    assert {key: after_reports.get(key) for key in before_reports} == before_reports  # every report kept
    assert {n for n in stopped_before if after_trials[n][0] == "stopped"} == stopped_before  # stops kept
    assert_each_trial_observed_once(resumed, 8)


def test_a_trial_whose_job_ended_as_the_sweep_was_interrupted_keeps_its_last_step(workdir: Path) -> None:
    """A trial whose job ended just before a Ctrl-C is recorded by the stop, and its last reports were
    not journaled: trials.csv showed an earlier step than it reached, or none. Here the sweeper is
    suspended (a laptop's lid closed) while both trials run on to their end, then interrupted."""
    overrides = (*SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", "hydra.sweeper.observation_budget=4")
    proc, sweep_dir = start_example(
        workdir, *overrides, "hydra.sweeper.warm_jobs=0", "epoch_sleep_s=0.2", app=EPOCHS_APP
    )
    try:
        running_job_ids(sweep_dir, 2)
        proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: len(list(sweep_dir.rglob("*_result.pkl"))) == 2, "both trials' jobs ended")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        stopped = finish_example(proc, sweep_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Trials [0, 1] had finished: their results are recorded" in stopped.output, stopped.output[-3000:]
    assert [(t["state"], t["step"]) for t in stopped.trials] == [("completed", str(EPOCHS))] * 2


@pytest.mark.parametrize(
    "launcher",
    [
        pytest.param(("hydra.sweeper.early_stopping.rule=none",), id="basic-no-rule"),
        pytest.param(
            (*SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", "epoch_sleep_s=0.4"), id="submitit_local-asha"
        ),
    ],
)
def test_a_step_budget_spends_at_most_that_many_steps(workdir: Path, launcher: tuple[str, ...]) -> None:
    """Issue 17: "spend at most the compute of N full trainings". Here 2.5 full trainings of 12
    epochs (30 steps) while observation_budget would allow 16 trials."""
    run = run_example(workdir, *launcher, "hydra.sweeper.early_stopping.step_budget=30", app=EPOCHS_APP).assert_ok()
    assert "early_stopping.step_budget=30 is spent" in run.output, run.output[-3000:]
    _, reports = journal_view(run.sweep_dir)
    steps = sum(max(s for n2, s in reports if n2 == n) for n in {n for n, _ in reports})
    # In process, the trial stops at the report that spends it. Jobs run on until the sweeper reads
    # their reports (every second; later on a loaded machine) and then to their next report.
    beyond = 0 if "submitit" not in launcher[0] else 2 * 4
    assert 30 <= steps <= 30 + beyond, steps
    rows = run.trials
    assert len(rows) < 16
    assert all(t["state"] in ("completed", "stopped") for t in rows), rows
    assert rows[-1]["state"] == "stopped" and int(rows[-1]["step"]) < EPOCHS
    assert_each_trial_observed_once(run, len(rows))
    # The progress line counts the budget that ends the sweep, and its last line what was spent.
    progress = [line for line in run.output.splitlines() if "Progress:" in line]
    assert progress and all("/30 steps reported" in line for line in progress), progress
    assert f"{steps}/30 steps reported" in progress[-1], progress[-1]


def test_a_trial_whose_last_report_spends_the_step_budget_completes(workdir: Path) -> None:
    """The README's "at most the compute of 3 full trainings" with no rule (max_step 12, budget 36):
    the third trial's 12th report spent the budget, and the trial was "stopped early" at step 12 of
    12, so its full training was left out of the best; with a budget of one training, the sweep
    ended with no result at all."""
    run = run_example(
        workdir,
        "hydra.sweeper.early_stopping.rule=none",
        f"hydra.sweeper.early_stopping.max_step={EPOCHS}",
        f"hydra.sweeper.early_stopping.step_budget={3 * EPOCHS}",
        app=EPOCHS_APP,
    ).assert_ok()
    assert [(t["state"], t["step"]) for t in run.trials] == [("completed", str(EPOCHS))] * 3, run.trials
    assert_each_trial_observed_once(run, 3)
    assert "stopped early" not in run.output, run.output[-3000:]


def test_status_says_a_spent_step_budget_ended_the_sweep(workdir: Path) -> None:
    """status told the user to resume a sweep the step budget had ended; doing so only said again
    that the budget was spent, and status kept giving the same advice."""
    run = run_example(workdir, "hydra.sweeper.early_stopping.step_budget=5", app=EPOCHS_APP).assert_ok()
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(run.sweep_dir)], capture_output=True, text=True
    )
    assert "Sweeper:     not running (early_stopping.step_budget=5 is spent)" in status.stdout, status.stdout
    assert "resume" not in status.stdout, status.stdout
    # The steps, as the progress line counts them (status showed trials only: "4/30 done", while
    # the step budget, the one the sweep ends on, was nearly spent).
    steps = sum(int(t["step"] or 0) for t in run.trials)
    assert f"Steps:       {steps}/5 reported (early_stopping.step_budget)" in status.stdout, status.stdout


def test_status_of_a_sweep_killed_as_its_step_budget_was_spent_says_to_resume(workdir: Path) -> None:
    """Killed (kill -9) right after the step budget stopped a trial, before the sweep's wrap-up: status
    said "not running (early_stopping.step_budget=30 is spent)", no resume advised, while a trial's
    result was unread and neither trials.csv nor optimization_results.yaml was written."""
    from hydra_sigopt.processes import pid_running

    overrides = (
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=4",
        "hydra.sweeper.early_stopping={rule: asha, min_step: 1, max_step: 9, reduction_factor: 3, step_budget: 30}",
        # Enough trials that the step budget ends the sweep, never the trial budget: each trial
        # reports a step at least, so 40 trials cannot all start within 30 steps. With the app's 16,
        # ASHA stopping most trials at step 1 let all 16 start first, once in six runs, and status
        # then rightly said "the budget is spent".
        "hydra.sweeper.observation_budget=40",
        "epochs=9",
        "epoch_sleep_s=0.4",
    )
    proc, sweep_dir = start_example(workdir, *overrides, app=EPOCHS_APP)
    try:
        assert proc.stdout is not None
        said = next((line for line in proc.stdout if "(early_stopping.step_budget=30 is spent)" in line), None)
        assert said is not None and "stopped early at step" in said
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Journal.open(sweep_dir, readonly=True) as journal:
        jobs = [str(t.job_id) for t in journal.trials() if t.job_id]
    wait_for(lambda: not any(pid_running(job) for job in jobs), "every job of the sweep ended")
    status = _status(sweep_dir)
    assert f"Sweeper:     not running — resume with: hydra-sigopt continue {sweep_dir} --run" in status, status
    assert not (sweep_dir / "trials.csv").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "continue", str(sweep_dir), "--run"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (sweep_dir / "trials.csv").exists() and (sweep_dir / "optimization_results.yaml").exists()
    status = _status(sweep_dir)
    assert "Sweeper:     not running (early_stopping.step_budget=30 is spent)" in status, status
    assert " 0 running" in status and "resume" not in status, status


def _status(sweep_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_last_progress_line_of_a_finished_sweep_estimates_no_time_left(workdir: Path) -> None:
    """The trial budget spent before the step budget: the sweep's last line said "3/3 trials done,
    36/1000 steps reported, 0 running, ..., ~1m33s left" (the steps' estimate)."""
    overrides = ("hydra.sweeper.observation_budget=3", "hydra.sweeper.early_stopping.rule=none")
    run = run_example(workdir, *overrides, "hydra.sweeper.early_stopping.step_budget=1000", app=EPOCHS_APP).assert_ok()
    last = [line for line in run.output.splitlines() if "Progress:" in line][-1]
    assert "3/3 trials done" in last and "0 running" in last, last
    assert " left" not in last, last


def test_a_step_budget_on_an_app_that_never_reports_is_said_once(workdir: Path) -> None:
    """The example app does not call report(): with a step budget (and observation_budget set high
    for it, as the README advises) the sweep ran every trial in full, without a word."""
    run = run_example(
        workdir, "hydra.sweeper.observation_budget=3", "+hydra.sweeper.early_stopping.step_budget=5"
    ).assert_ok()
    said = "completed without reporting a step, and early_stopping (step_budget 5) works on what trials report"
    assert run.output.count(said) == 1, run.output[-3000:]


def test_epochs_raised_past_max_step_are_said_once(workdir: Path) -> None:
    """The example app's epochs raised to 30, max_step left at 12: from step 12 on every trial counts
    as trained in full, so no rule judged it and the step budget could not stop it (40 steps
    allowed, 60 trained), without a word."""
    run = run_example(
        workdir,
        "epochs=30",
        "hydra.sweeper.observation_budget=3",
        "+hydra.sweeper.early_stopping.step_budget=40",
        app=EPOCHS_APP,
    ).assert_ok()
    said = "reported step 13, past early_stopping.max_step=12: from max_step on a trial counts as trained in full"
    assert run.output.count(said) == 1 and run.output.count("past early_stopping.max_step") == 1, run.output[-3000:]


def test_a_trial_that_fails_before_its_first_report_is_no_sign_the_app_does_not_report(workdir: Path) -> None:
    run = run_example(
        workdir,
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.max_failure_rate=1.0",
        "hydra.sweeper.early_stopping.step_budget=100",
        "bad_report=text",
        "bad_report_jobs=[0]",
        app=EPOCHS_APP,
    ).assert_ok()
    assert "Trial #0 failed" in run.output, run.output[-3000:]
    assert "without reporting a step" not in run.output, run.output[-3000:]


LATE_BLOOMERS_TESTED_AFTER_FIT = """\
import time
from hydra_sigopt import report

num, epochs = job_num(), cfg.get("epochs", 9)
folder = HydraConfig.get().runtime.output_dir
for epoch in range(1, epochs + 1):  # epochs of no time: read by the sweeper only once they are over
    loss = 1 / epoch + 0.1 * num if epoch < epochs else 1 / epoch - 0.1 * num  # later trials: best at the end
    report(epoch, loss=loss)
time.sleep(2)  # a test evaluation after fit, as the lightning-hydra-template runs: no report
with open(os.path.join(folder, "returned.txt"), "w") as f:
    f.write(repr(loss))
return loss
"""


@pytest.mark.parametrize("epochs", [9, 3], ids=["to_max_step", "a_cheaper_training"])
def test_a_trial_that_trained_to_its_end_before_its_reports_were_read_completes_with_its_result(
    tmp_path: Path, epochs: int
) -> None:
    """Epochs faster than the sweeper reads reports (or a sweeper busy, or resumed): a trial trained
    all its epochs before its reports were judged, and the rule then stopped it on them, "at step 9"
    (max_step, where no rule judges), or at the last epoch of a shorter training (a cheaper task).
    Its result was thrown away, and the best full training of the sweep was missing from best."""
    app = write_app(tmp_path, LATE_BLOOMERS_TESTED_AFTER_FIT, budget=4)
    es = ("rule=asha", "min_step=1", "max_step=9", "reduction_factor=3")
    run = run_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        f"+epochs={epochs}",
        "hydra.sweeper.parallel_bandwidth=1",
        "hydra.sweeper.metrics=[{name:loss,objective:minimize}]",
        *(f"hydra.sweeper.early_stopping.{setting}" for setting in es),
        app=app,
    ).assert_ok()
    # The sweeper reads reports once a second at first: it may still read a trial's first report
    # before its next ones (a few ms apart; more on a loaded machine), and rightly stop it there.
    # Never at its last epoch, whose training is done (the defect), and not more than one trial.
    completed = [t for t in run.trials if t["state"] == "completed"]
    read_early = [t for t in run.trials if t["state"] == "stopped" and int(t["step"]) < epochs]
    assert len(completed) >= 3 and len(completed) + len(read_early) == 4, run.output[-3000:]
    for t in completed:  # each with the value it returned
        assert float(t["value.loss"]) == float((run.sweep_dir / t["number"] / "returned.txt").read_text())
    best = min(float(t["value.loss"]) for t in completed)
    assert run.results["best_value"] == pytest.approx(best)
    if run.trials[3]["state"] == "completed":
        assert best == pytest.approx(1 / epochs - 0.3)  # the last trial's
    if epochs < 9:  # stopped at a rung on the reports read during its test: completed after all
        assert "had trained to its end before the reports it was stopped on were read" in run.output


NINE_EPOCHS = """\
from hydra_sigopt import report

for epoch in range(1, 10):
    report(epoch, loss=cfg.x + 1 / epoch)
return cfg.x + 1 / 9
"""


@pytest.mark.parametrize("max_step", [None, 9])
def test_a_rule_without_max_step_is_warned_about_at_start(tmp_path: Path, max_step: int | None) -> None:
    """asha's rungs 1, 3, 9 include a 9-epoch training's last report: without max_step, trials
    trained to their end were recorded stopped there (their test after fit never ran), unwarned."""
    app = write_app(tmp_path, NINE_EPOCHS, budget=2)
    given = [f"hydra.sweeper.early_stopping.max_step={max_step}"] if max_step else []
    es = ("hydra.sweeper.early_stopping.rule=asha", "hydra.sweeper.metrics=[{name:loss,objective:minimize}]")
    run = run_example(tmp_path, *es, *given, app=app).assert_ok()
    warned = run.output.count("early_stopping.max_step is not set: the rule judges a trial's last report too")
    assert warned == (1 if max_step is None else 0), run.output[-3000:]
