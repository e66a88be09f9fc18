"""Early stopping below the sweep loop: the user API, the report files, the journal, the decisions."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

import pytest

from hydra_sigopt import TrialStopped, early_stopping, report, reporting, should_stop
from hydra_sigopt.early_stopping import EarlyStopping
from hydra_sigopt.journal import IllegalTransition, Journal
from hydra_sigopt.journal_reports import Report
from hydra_sigopt.metrics import Metric, MetricValue
from hydra_sigopt.report_advice import report_call
from hydra_sigopt.report_files import (
    JUDGED_NAME,
    REPORTS_NAME,
    STOP_NAME,
    ReportLines,
    append_report,
    judged_step,
    trial_folder,
    write_stop,
)
from hydra_sigopt.reporting import reporting_to, set_in_process_hook
from hydra_sigopt.reports import results_document
from hydra_sigopt.stop_rules import StopRule
from hydra_sigopt.tasks import Task

META = {
    "name": "t",
    "experiment_id": "-1",
    "backend": "lite",
    "identity": {"parameters": [], "metrics": []},
    "fingerprint": "abc",
}
LOSS = (Metric("loss", "minimize"),)


def lines_of(folder: Path) -> list[dict[str, object]]:
    path = folder / REPORTS_NAME
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------------------------- the user API


def test_importing_the_package_stays_cheap() -> None:
    """report() is imported on first use: a plain ``import hydra_sigopt`` loads nothing of it."""
    import subprocess
    import sys

    code = "import sys, hydra_sigopt; print(sorted(m for m in sys.modules if m.startswith('hydra_sigopt')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['hydra_sigopt']"


def test_outside_a_sweep_report_and_should_stop_do_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report(1, loss=0.5)
    report(1, loss=0.4)  # not even checked: nothing is written anywhere
    assert should_stop() is False
    assert list(tmp_path.iterdir()) == []


def test_reports_are_appended_one_line_each(tmp_path: Path) -> None:
    with reporting_to(tmp_path, 3):
        report(1, loss=0.5, acc=0.7)
        report(2, loss=0.25)
    lines = lines_of(trial_folder(tmp_path, 3))
    assert [(line["step"], line["metrics"]) for line in lines] == [(1, {"loss": 0.5, "acc": 0.7}), (2, {"loss": 0.25})]


@pytest.mark.parametrize(
    ("step", "metrics", "says"),
    [
        pytest.param(1.5, {"loss": 1.0}, "report(step=1.5): the step must be a whole number", id="float-step"),
        pytest.param("3", {"loss": 1.0}, "report(step='3'): the step must be a whole number", id="text-step"),
        pytest.param(math.nan, {"loss": 1.0}, "report(step=nan): the step must be a whole number", id="nan-step"),
        pytest.param(math.inf, {"loss": 1.0}, "report(step=inf): the step must be a whole number", id="inf-step"),
        pytest.param(2.0, {"loss": 1.0}, "report(step=2): steps must increase", id="float-step-not-after"),
        pytest.param(True, {"loss": 1.0}, "the step must be a whole number", id="bool-step"),
        pytest.param(2**63, {"loss": 1.0}, f"report(step={2**63}): the step must be a whole number from 0", id="huge"),
        pytest.param(-1, {"loss": 1.0}, "report(step=-1): the step must be a whole number from 0 to", id="negative"),
        pytest.param(2, {"loss": 1.0}, "report(step=2): steps must increase, and the previous report's step was 2"),
        pytest.param(1, {"loss": 1.0}, "report(step=1): steps must increase, and the previous report's step was 2"),
        pytest.param(5, {"loss": "0.3"}, "report(step=5): loss must be a number, got '0.3'", id="text-value"),
        pytest.param(5, {"loss": None}, "report(step=5): loss must be a number, got None", id="none-value"),
        pytest.param(5, {"loss": 10**400}, "report(step=5): loss must be a number, got 1000", id="huge-int-value"),
        pytest.param(5, {"loss": math.nan}, "report(step=5): loss is nan; only finite numbers", id="nan"),
        pytest.param(5, {"loss": -math.inf}, "report(step=5): loss is -inf; only finite numbers", id="inf"),
        pytest.param(5, {}, "report(step=5) has no metric; pass them by name", id="no-metric"),
    ],
)
def test_a_malformed_report_is_a_clear_value_error_and_writes_nothing(
    tmp_path: Path, step: object, metrics: dict[str, object], says: str
) -> None:
    with reporting_to(tmp_path, 0):
        report(2, loss=1.0)
        with pytest.raises(ValueError) as info:
            report(step, **metrics)  # type: ignore[arg-type]
        report(3, loss=0.5)  # the trial can go on reporting
    assert says in str(info.value)
    assert "\n" not in str(info.value)
    assert [line["step"] for line in lines_of(trial_folder(tmp_path, 0))] == [2, 3]


def test_a_float_step_with_a_whole_value_is_reported_as_that_step(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with reporting_to(tmp_path, 0):
        report(1.0, loss=0.5)
        report(np.float32(2.0), loss=0.4)
    assert [line["step"] for line in lines_of(trial_folder(tmp_path, 0))] == [1, 2]


@pytest.mark.parametrize(
    ("environment", "written"),
    [
        pytest.param({"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, False, id="slurm-rank-1"),
        pytest.param({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, True, id="slurm-rank-0"),
        pytest.param({"RANK": "1", "SLURM_PROCID": "0", "WORLD_SIZE": "2"}, False, id="rank-before-slurm"),
        # Lightning's order: SLURM_PROCID may be set where Slurm did not start the ranks.
        pytest.param({"LOCAL_RANK": "0", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, True, id="local-rank-before-slurm"),
        pytest.param({"JSM_NAMESPACE_RANK": "2", "JSM_NAMESPACE_SIZE": "4"}, False, id="jsm"),
        # A process alone in its world is rank 0, as Lightning's single-device Trainer is.
        pytest.param({"SLURM_PROCID": "1"}, True, id="slurm-rank-1-no-ntasks"),
        pytest.param({"SLURM_PROCID": "1", "SLURM_NTASKS": "1"}, True, id="slurm-rank-1-of-one-task"),
        pytest.param({"LOCAL_RANK": "1", "WORLD_SIZE": "1"}, True, id="local-rank-1-world-of-one"),
    ],
)
def test_only_rank_0_writes_reports_and_every_rank_raises_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], written: bool
) -> None:
    for name in (*reporting.RANK_VARIABLES, *reporting.WORLD_SIZE_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with reporting_to(tmp_path, 0):
        report(1, loss=0.5)
        with pytest.raises(ValueError, match="steps must increase"):
            report(1, loss=0.5)  # the step is checked on every rank
        write_stop(trial_folder(tmp_path, 0), 1, "test")
        with pytest.raises(TrialStopped):
            report(2, loss=0.4)
        assert should_stop()
    assert [line["step"] for line in lines_of(trial_folder(tmp_path, 0))] == ([1] if written else [])


def test_numpy_numbers_are_reported_as_floats(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with reporting_to(tmp_path, 0):
        report(np.int64(1), loss=np.float32(0.5))
    assert lines_of(trial_folder(tmp_path, 0))[0]["metrics"] == {"loss": 0.5}


def test_a_one_element_numpy_array_is_reported_as_a_torch_one_is(tmp_path: Path) -> None:
    """``report(1, loss=np.array([v]))`` raised "loss must be a number" where ``torch.tensor([v])`` was one."""
    np = pytest.importorskip("numpy")
    with reporting_to(tmp_path, 0):
        report(1, loss=np.array([0.5]), acc=np.array([[0.25]]))
        with pytest.raises(ValueError, match="loss must be a number"):
            report(2, loss=np.array([0.5, 0.6]))
    assert lines_of(trial_folder(tmp_path, 0))[0]["metrics"] == {"loss": 0.5, "acc": 0.25}


def test_a_training_loss_tensor_is_reported_without_torch_s_warning(tmp_path: Path) -> None:
    """report(step, loss=loss) with the loss of the step (requires_grad) printed torch's "Converting
    a tensor with requires_grad=True to a scalar" warning, pointing into hydra_sigopt."""
    torch = pytest.importorskip("torch")
    loss = (torch.tensor([0.5], requires_grad=True) * 2).sum()
    with reporting_to(tmp_path, 0), warnings.catch_warnings():
        warnings.simplefilter("error")
        report(1, loss=loss)
    assert lines_of(trial_folder(tmp_path, 0))[0]["metrics"] == {"loss": 1.0}


def test_once_the_marker_is_written_report_raises_trial_stopped(tmp_path: Path) -> None:
    with reporting_to(tmp_path, 4):
        report(1, loss=0.5)
        assert not should_stop()
        write_stop(trial_folder(tmp_path, 4), 1, "test")
        assert should_stop()
        with pytest.raises(TrialStopped):
            report(2, loss=0.4)
    assert [line["step"] for line in lines_of(trial_folder(tmp_path, 4))] == [1]  # the stopped trial's last report
    assert not should_stop()  # the trial's task is over


def test_the_in_process_hook_decides_before_report_returns(tmp_path: Path) -> None:
    """The basic launcher's path: the sweeper's hook runs inside report and may stop the trial at once."""
    seen: list[int] = []

    def hook(number: int) -> None:
        seen.append(number)
        if len(seen) == 2:
            write_stop(trial_folder(tmp_path, number), 2, "test")

    set_in_process_hook(hook)
    try:
        with reporting_to(tmp_path, 7):
            report(1, loss=0.5)
            with pytest.raises(TrialStopped):
                report(2, loss=0.9)
    finally:
        set_in_process_hook(None)
    assert seen == [7, 7]


def test_the_reader_takes_complete_lines_only(tmp_path: Path) -> None:
    path = tmp_path / REPORTS_NAME
    path.write_bytes(b'{"step": 1, "metrics": {"loss": 1.0}}\n{"step": 2, "metr')
    reader = ReportLines(path)
    assert [line["step"] for line in reader.new_lines()] == [1]
    assert reader.new_lines() == []
    with open(path, "ab") as f:
        f.write(b'ics": {"loss": 0.5}}\n')
    assert reader.new_lines() == [{"step": 2, "metrics": {"loss": 0.5}}]


# ---------------------------------------------------------------------------------- the journal


def test_a_running_trial_may_stop_and_a_stopped_one_is_final(tmp_path: Path) -> None:
    with Journal.create(tmp_path, META) as j:
        j.add_trial(0, "s0", {"x": 1}, ["x=1"])
        with pytest.raises(IllegalTransition):
            j.mark_stopped(0, [MetricValue("loss", 1.0)])  # pending: its job never reported
        j.mark_running([0], ["11"])
        j.mark_stopped(0, [MetricValue("loss", 0.5)])
        for late in (
            lambda: j.record_result(0, values=[MetricValue("loss", 0.1)]),
            lambda: j.record_result(0, failure_reason="died"),
            lambda: j.mark_abandoned(0, "cancelled"),
            lambda: j.mark_running([0]),
        ):
            with pytest.raises(IllegalTransition):
                late()
        j.mark_observed(0, "obs")
        t = j.trial(0)
    assert (t.state, t.values, t.observed) == ("stopped", (MetricValue("loss", 0.5),), True)
    assert not t.observed_as_failed


def test_reports_are_journaled_once_per_trial_and_step(tmp_path: Path) -> None:
    with Journal.create(tmp_path, META) as j:
        assert j.reports.add([Report(0, 1, {"loss": 1.0}), Report(0, 2, {"loss": 0.5})]) == 2
        assert j.reports.add([Report(0, 2, {"loss": 9.0}), Report(1, 1, {"loss": 0.7})]) == 1
        assert [(r.number, r.step, dict(r.metrics)) for r in j.reports.all()] == [
            (0, 1, {"loss": 1.0}),
            (0, 2, {"loss": 0.5}),
            (1, 1, {"loss": 0.7}),
        ]
        assert j.reports.last_steps() == {0: 2, 1: 1}


# ---------------------------------------------------------------------------------- deciding


def running_trials(journal: Journal, count: int) -> None:
    for n in range(count):
        journal.add_trial(n, f"s{n}", {"x": n}, [f"x={n}"])
        journal.mark_running([n], [str(100 + n)])


def write_reports(root: Path, number: int, losses: list[float]) -> None:
    with reporting_to(root, number):
        for step, loss in enumerate(losses, start=1):
            report(step, loss=loss)


def test_a_stop_is_journaled_before_the_trial_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=9, reduction_factor=3)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 3)
        early = EarlyStopping(rule, journal, root, LOSS)  # not started: no in-process hook, as for jobs
        for n, loss in ((0, 0.2), (1, 0.1)):
            write_reports(root, n, [loss])
        early.poll([0, 1])
        states_when_told: list[str] = []
        real_write_stop = write_stop

        def spying_write_stop(folder: Path, step: int, reason: str) -> None:
            states_when_told.append(journal.trial(int(folder.name)).state)
            real_write_stop(folder, step, reason)

        monkeypatch.setattr("hydra_sigopt.early_stopping.write_stop", spying_write_stop)
        write_reports(root, 2, [0.9])
        early.poll([0, 1, 2])
        assert states_when_told == ["stopped"]
        assert (trial_folder(root, 2) / STOP_NAME).exists()
        assert [t.state for t in journal.trials()] == ["running", "running", "stopped"]
        assert journal.trial(2).values == (MetricValue("loss", 0.9),)


def test_a_stop_decided_on_an_earlier_report_than_the_last_read_says_both_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reports read together (epochs faster than the reading): the log said "stopped early at step 3
    (loss=0.9 at step 1 ...)", two steps with no word of how they relate. The reason a failed
    observation carries (status, the server's metadata) names the step it was stopped at too."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=9, reduction_factor=3)
    rule = dataclasses.replace(rule, observe_stopped="failed")
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 3)
        early = EarlyStopping(rule, journal, root, LOSS)
        for n, loss in ((0, 0.2), (1, 0.1)):
            write_reports(root, n, [loss])
        early.poll([0, 1])
        write_reports(root, 2, [0.9, 0.8, 0.7])
        with caplog.at_level("INFO", logger="hydra_sigopt"):
            early.poll([0, 1, 2])
        assert journal.trial(2).failure_reason == "stopped early at step 3 (early_stopping.observe_stopped: failed)"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Trial #2 stopped")]
    assert said == [
        "Trial #2 stopped early at step 3, its last report read; the rule judged its report of step 1"
        " (loss=0.9 at step 1, early_stopping.rule=asha); observed as failed: stopped early at step 3"
        " (early_stopping.observe_stopped: failed)"
    ], said


def test_the_verdict_file_is_written_where_the_trial_waits_for_it_only(tmp_path: Path) -> None:
    """A trial waits for the sweeper's verdict at an asha rung (hydra_sigopt.reporting); elsewhere no
    ``judged`` file is written for it (one atomic write per trial and poll, on a shared filesystem)."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=27, reduction_factor=3)  # rungs 1, 3, 9
    judged = trial_folder(root, 0) / JUDGED_NAME
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 1)
        early = EarlyStopping(rule, journal, root, LOSS)
        written = []
        with reporting_to(root, 0):
            for step in range(1, 11):
                report(step, loss=1.0 / step)
                early.poll([0])
                written.append(judged_step(trial_folder(root, 0)))
                judged.unlink(missing_ok=True)
    assert [step for step, seen in enumerate(written, start=1) if seen is not None] == [1, 3, 9]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cheaper_tasks_trial_at_its_last_step_is_answered_not_stopped(tmp_path: Path) -> None:
    """Rung 3 is a 3-epoch task's last step: its trial completes (and its job, waiting there for a
    verdict, is answered at once), while a full training as bad at step 3 is stopped."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=9, reduction_factor=3)
    tasks = (Task("short", 0.25, ("epochs=3",), max_step=3), Task("full", 1.0))
    with Journal.create(tmp_path, META) as journal:
        for n, task in enumerate(["full", "short", "full"]):
            journal.add_trial(n, f"s{n}", {"x": n}, [f"x={n}"], task=task)
            journal.mark_running([n], [str(100 + n)])
        early = EarlyStopping(rule, journal, root, LOSS, tasks=tasks)
        for n, losses in ((0, [0.5, 0.2, 0.1]), (1, [0.4, 0.8, 0.9]), (2, [0.4, 0.8, 0.9])):
            write_reports(root, n, losses)
            early.poll([n])
        assert [t.state for t in journal.trials()] == ["running", "running", "stopped"]
        assert judged_step(trial_folder(root, 1)) == 3


def test_a_full_training_is_judged_against_full_trainings_not_a_cheaper_task_s(tmp_path: Path) -> None:
    """A tester's sweep with tasks {short: 3 epochs, full} and a learning rate annealed over the run's
    own epochs ended with every full training stopped and no result: a short trial is ahead of a full
    one at any step (its schedule ends sooner), and the rule compared them. Each task's trials are
    judged against their own task's."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=9, reduction_factor=3)
    tasks = (Task("short", 0.2, ("epochs=3",), max_step=3), Task("full", 1.0))

    def annealed(epochs: int) -> list[float]:
        return [1 / (1 + 4 * epoch / epochs) for epoch in range(1, epochs + 1)]

    with Journal.create(tmp_path, META) as journal:
        for n, task in enumerate(["short", "short", "short", "full", "full", "short", "short"]):
            journal.add_trial(n, f"s{n}", {"x": n}, [f"x={n}"], task=task)
            journal.mark_running([n], [str(100 + n)])
        early = EarlyStopping(rule, journal, root, LOSS, tasks=tasks)
        for n in (0, 1, 2, 3, 4):
            write_reports(root, n, annealed(9)[:3] if n in (3, 4) else annealed(3))  # full ones: 3 epochs of 9 so far
            early.poll([n])
        write_reports(root, 5, [0.9])  # a short trial behind the other short ones: stopped
        write_reports(root, 6, annealed(3))
        early.poll([5, 6])
        states = {t.number: t.state for t in journal.trials()}
    assert states == {0: "running", 1: "running", 2: "running", 3: "running", 4: "running", 5: "stopped", 6: "running"}


def test_compare_tasks_together_judges_a_trial_against_every_task_s(tmp_path: Path) -> None:
    """For tasks that only cut the same training short (a step means the same in each): a short
    trial's reports then count at the full task's rungs, and a full training behind them is stopped."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, max_step=9, reduction_factor=3)
    rule = dataclasses.replace(rule, compare_tasks="together")
    tasks = (Task("short", 0.2, ("epochs=3",), max_step=3), Task("full", 1.0))
    with Journal.create(tmp_path, META) as journal:
        for n, task in enumerate(["short", "short", "full"]):
            journal.add_trial(n, f"s{n}", {"x": n}, [f"x={n}"], task=task)
            journal.mark_running([n], [str(100 + n)])
        early = EarlyStopping(rule, journal, root, LOSS, tasks=tasks)
        for n, losses in ((0, [0.3, 0.2, 0.1]), (1, [0.3, 0.2, 0.1]), (2, [0.9])):
            write_reports(root, n, losses)
            early.poll([n])
        assert [t.state for t in journal.trials()] == ["running", "running", "stopped"]


@pytest.mark.parametrize("earlier_attempt", [False, True])
def test_a_spawned_worker_counts_on_from_this_runs_reports_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier_attempt: bool
) -> None:
    """A second stage's spawned worker continues the trial's steps; the reports a requeued job's
    first attempt left (before this run of the task started) are not this run's: its worker starts
    over at step 1, as the job's own process does (report(1) raised "steps must increase")."""
    import json as json_module

    from hydra_sigopt import reporting
    from hydra_sigopt.report_files import append_report

    folder = trial_folder(tmp_path / "reports", 0)
    started = time.time()
    append_report(folder, 3, {"loss": 0.5}, at=started - 60 if earlier_attempt else started + 1, took=1.0)
    named = {"number": 0, "folder": str(folder), "rule": None, "in_process": False, "started": started}
    monkeypatch.setenv(reporting.TRIAL_ENV, json_module.dumps(named))
    monkeypatch.setattr(reporting, "_from_environment", None)
    assert reporting.last_reported_step() == (None if earlier_attempt else 3)
    report(1 if earlier_attempt else 4, loss=0.4)  # a new attempt starts over; a new stage counts on


@pytest.mark.parametrize("step_s", [0.5, 600.0])
def test_a_stopped_job_overstays_once_a_step_and_the_grace_have_passed(tmp_path: Path, step_s: float) -> None:
    """A job stopped mid-step reaches its next report a step later at most (the longest step it
    took, by its own clock: a queue wait is no step), then has stop_grace_s to save a checkpoint:
    only after both is it to be cancelled, once. Epochs of 10 minutes are not cut short by a
    grace of a minute."""
    root = tmp_path / "reports"
    rule = StopRule(step_budget=4, stop_grace_s=60.0)
    clock = FakeClock()
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        early = EarlyStopping(rule, journal, root, LOSS, clock=clock)
        clock.now += 7200.0  # both jobs queued for two hours
        for step in (1, 2, 3, 4):
            clock.now += step_s
            append_report(trial_folder(root, 0), step, {"loss": 1.0 / step}, 0.0, took=step_s / step)
            early.poll([0, 1])
        assert journal.trial(0).state == "stopped"  # the budget of 4 steps is spent at its 4th
        clock.now += step_s + 59.0
        assert early.overstaying([0, 1]) == []
        clock.now += 1.0
        assert early.overstaying([0, 1]) == [(0, step_s + 60.0)]
        clock.now += 3600.0
        assert early.overstaying([0, 1]) == []  # told once; trial 1 was never stopped
        early.retry_cancel_later([0])  # its cancel failed: a step and the grace from now, again
        clock.now += step_s + 60.0
        assert early.overstaying([0, 1]) == [(0, 2 * (step_s + 60.0) + 3600.0)]  # seconds since the stop


def test_report_lines_say_how_long_each_step_took(tmp_path: Path) -> None:
    with reporting_to(tmp_path, 0):
        time.sleep(0.2)
        report(1, loss=0.5)
        report(2, loss=0.4)
    first, second = lines_of(trial_folder(tmp_path, 0))
    assert 0.2 <= first["took"] < 5 and 0 <= second["took"] < 0.2  # type: ignore[operator]


def test_malformed_lines_never_reach_the_journal(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    folder = trial_folder(root, 0)
    folder.mkdir(parents=True)
    (folder / REPORTS_NAME).write_text(
        '{"step": 1, "metrics": {"loss": 1.0}}\n'
        "not json\n"
        '{"step": 2, "metrics": {"loss": NaN}}\n'
        '{"step": "3", "metrics": {"loss": 1.0}}\n'
        '{"step": 4, "metrics": {"loss": "x"}}\n'
        '{"step": 1, "metrics": {"loss": 0.1}}\n'
        '{"step": 9223372036854775808, "metrics": {"loss": 0.1}}\n'  # past SQLite's integers
        '{"step": 5, "metrics": {"loss": 0.5}}\n'
    )
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 1)
        early = EarlyStopping(StopRule(), journal, root, LOSS)
        early.poll([0])
        assert [(r.step, dict(r.metrics)) for r in journal.reports.all()] == [(1, {"loss": 1.0}), (5, {"loss": 0.5})]


@pytest.mark.parametrize("unread", [0, 4], ids=["all-read", "reported-after-the-last-read"])
def test_the_steps_of_trials_abandoned_at_a_resume_count_in_the_step_budget(tmp_path: Path, unread: int) -> None:
    """A sweeper killed while a trial had reported 2 steps: the resume abandons it (its suggestion
    runs again) and forgot its steps, so a budget of 30 steps trained 32. And those it reported
    after the sweeper's last read (a hung-up terminal, a Ctrl-C: 71/70 shown, 74 trained), which
    trials.csv left out too (the abandoned trial shown at step 2)."""
    root = tmp_path / "reports"
    rule = StopRule(step_budget=30)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        write_reports(root, 0, [0.5] * 12)
        write_reports(root, 1, [0.5, 0.4])
        EarlyStopping(rule, journal, root, LOSS).poll([0, 1])  # the sweeper's last read, then it went
        for step in range(3, 3 + unread):  # the trial trained on until it died too
            append_report(trial_folder(root, 1), step, {"loss": 0.3}, time.time(), 0.1)
        journal.record_result(0, values=[MetricValue("loss", 0.5)])
        journal.mark_abandoned(1, "the sweeper was killed")  # what the resume does with a lost trial
        resumed = EarlyStopping(rule, journal, root, LOSS)
        resumed.start()
        assert resumed.steps_spent == 14 + unread
        assert journal.reports.last_steps() == {0: 12, 1: 2 + unread}
        resumed.close()


def test_a_resumed_sweep_keeps_reports_and_tells_stopped_trials_again(tmp_path: Path) -> None:
    """Killed between journaling a stop and writing its marker: the next sweeper writes the marker."""
    root = tmp_path / "reports"
    rule = StopRule("median", "loss", minimize=True, min_step=1)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        write_reports(root, 0, [0.5, 0.4])
        EarlyStopping(rule, journal, root, LOSS).poll([0])
        journal.mark_stopped(1, [MetricValue("loss", 0.9)])  # no marker written: the kill
    with Journal.open(tmp_path) as journal:
        resumed = EarlyStopping(rule, journal, root, LOSS)
        resumed.start()
        resumed.close()
        resumed.poll([0])  # the file read again from its start: nothing new
        assert [(r.number, r.step) for r in journal.reports.all()] == [(0, 1), (0, 2)]
    assert (trial_folder(root, 1) / STOP_NAME).exists()
    assert not (trial_folder(root, 0) / STOP_NAME).exists()


def test_a_stopped_trial_that_never_reported_a_metric_is_a_failed_observation(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, reduction_factor=2)
    metrics = (*LOSS, Metric("seconds", "minimize", "store"))
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        write_reports(root, 0, [0.1])
        write_reports(root, 1, [0.9])
        early = EarlyStopping(rule, journal, root, metrics)
        early.poll([0, 1])
        t = journal.trial(1)
    assert t.state == "stopped" and t.observed_as_failed
    assert t.failure_reason == "stopped early at step 1 before reporting seconds"


def test_reports_read_when_a_trial_ended_do_not_stop_it(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    rule = StopRule("asha", "loss", minimize=True, min_step=1, reduction_factor=2)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        write_reports(root, 0, [0.1])
        write_reports(root, 1, [0.9])
        early = EarlyStopping(rule, journal, root, LOSS)
        early.poll([0])
        early.journal_last_reports([1])  # its job ended: its result is recorded next
        assert journal.trial(1).state == "running"
        assert journal.reports.last_steps() == {0: 1, 1: 1}


@pytest.mark.parametrize("objective", ["minimize", "maximize"])
def test_reports_of_another_metric_than_the_judged_one_are_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, objective: str
) -> None:
    """A Lightning app reports val_loss while the sweep optimizes the returned float ('value'):
    nothing could ever be stopped, and the user was not told (found with the Lightning callback).
    The hint's metric declaration takes the judged metric's direction: without one (the first
    hint) a metric is maximized, and the sweep maximized the loss."""
    root = tmp_path / "reports"
    rule = StopRule("median", "value", minimize=objective == "minimize", min_step=1)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 4)
        for n in range(4):
            write_reports(root, n, [1.0 + n, 0.5 + n])  # as loss=..., not value=...
        early = EarlyStopping(rule, journal, root, (Metric("value", objective),))
        early.poll(range(4))
        early.advise_on_completed(range(4))  # said as a trial ends: till then a report may still have it
    said = [r.getMessage() for r in caplog.records if "early_stopping judges" in r.getMessage()]
    assert said == [
        "Trial #0 reports ['loss'], but early_stopping judges 'value': no trial is stopped on these reports. "
        "Report 'value', or declare the metric you report, with its direction, in hydra.sweeper.metrics "
        f"(metrics: [{{name: loss, objective: {objective}}}]; a metric declared without one is maximized)"
    ]


def test_a_misnamed_metric_is_said_while_the_first_trials_run_not_once_one_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Said only as a trial ended, a misnamed metric waited for a training of hours (and went
    unsaid if trials failed or were cut by a time limit) while the rule stopped nothing (found by
    review). Five reports of a running trial without it, none of any trial with it, are said at once."""
    root = tmp_path / "reports"
    rule = StopRule("asha", "value", minimize=True, min_step=1, max_step=27)
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 2)
        write_reports(root, 0, [1.0, 0.9, 0.8, 0.7])
        early = EarlyStopping(rule, journal, root, (Metric("value", "minimize"),))
        early.poll([0, 1])
        assert "early_stopping judges" not in caplog.text  # four: maybe an app validating every few epochs
        append_report(trial_folder(root, 0), 5, {"loss": 0.6}, 0.0, took=1.0)
        early.poll([0, 1])
    said = [r.getMessage() for r in caplog.records if "early_stopping judges" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("Trial #0 reports ['loss'], but early_stopping judges 'value'")


@pytest.mark.parametrize(
    ("metric", "call"),
    [
        ("val_loss", "report(step, val_loss=...)"),
        ("val/loss", "report(step, **{'val/loss': ...})"),
        ("lambda", "report(step, **{'lambda': ...})"),
    ],
)
def test_the_report_call_a_warning_suggests_is_valid_python(metric: str, call: str) -> None:
    """The lightning-hydra-template's 'val/loss' was suggested as report(step, val/loss=...)."""
    assert report_call(metric) == call
    compile(call.replace("...", "0.5"), "<suggested>", "eval")


def test_a_task_pickled_by_an_older_sweeper_without_the_rule_still_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job queued before an upgrade unpickles a TimedTask without ``stop_rule``: it reports, unjudged."""
    from types import SimpleNamespace

    import cloudpickle  # as submitit pickles a job
    from hydra.core.hydra_config import HydraConfig

    from hydra_sigopt.runners import TimedTask

    def task(cfg: object) -> float:
        report(1, loss=0.5)
        return 0.5

    old = TimedTask(task, tmp_path / "reports", StopRule("asha", "loss"))
    del old.stop_rule  # the attribute an older version did not have
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: SimpleNamespace(job=SimpleNamespace(num=3))))
    result = cloudpickle.loads(cloudpickle.dumps(old))({})
    assert result == 0.5
    assert (trial_folder(tmp_path / "reports", 3) / "reports.jsonl").read_text().count("\n") == 1


def test_a_job_stopped_before_a_restart_is_watched_from_its_journaled_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed sweep forgot the jobs of trials stopped before the restart: one within its grace
    then (a driver requeued at once) was never cancelled, however long it ran on. Adopted, it
    overstays a step (its report file's longest) and stop_grace_s after the journaled stop."""
    root = tmp_path / "reports"
    rule = StopRule(step_budget=1, stop_grace_s=60.0)
    clock = FakeClock()
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 1)
        append_report(trial_folder(root, 0), 1, {"loss": 1.0}, 0.0, took=30.0)
        EarlyStopping(rule, journal, root, LOSS).poll([0])  # the killed sweeper stopped it
        stopped = journal.trial(0)
        assert stopped.state == "stopped" and stopped.ended_at is not None
        resumed = EarlyStopping(rule, journal, root, LOSS, clock=clock)
        # The wall clock held still (a pause of the test must not pass for time): the stop 50 s ago.
        from types import SimpleNamespace

        monkeypatch.setattr(early_stopping, "time", SimpleNamespace(time=lambda: 5000.0))
        resumed.adopt_stopped_jobs([dataclasses.replace(stopped, ended_at=4950.0)])
        clock.now += 39.0
        assert resumed.overstaying_adopted() == []  # the 30 s step and the 60 s grace are not over
        clock.now += 1.0
        assert [(n, job) for n, job, _ in resumed.overstaying_adopted()] == [(0, "100")]
        resumed.adopt_again([(0, "100")])  # its cancel failed
        clock.now += 89.0
        assert resumed.overstaying_adopted() == []
        clock.now += 1.0
        [(number, job, since)] = resumed.overstaying_adopted()
        assert (number, job, since) == (0, "100", pytest.approx(180.0, abs=1.0))  # its warning: 180 s ago
        assert resumed.overstaying_adopted() == []  # once


def test_the_engine_s_best_drops_a_stopped_trial_s_partial_value_not_a_full_training_of_the_same_point(
    tmp_path: Path,
) -> None:
    """In a small grid a stopped trial and a full training share assignments: matched on them
    alone, the server's best (the full training's value) was dropped with the stopped trial's."""
    meta = {**META, "identity": {"parameters": [], "metrics": [{"name": "loss", "objective": "minimize"}]}}
    with Journal.create(tmp_path, meta) as journal:
        running_trials(journal, 1)
        journal.add_trial(1, "s1", {"x": 0}, ["x=0"])
        journal.mark_running([1], ["101"])
        journal.record_result(0, values=[MetricValue("loss", 0.125)])  # trial 0: x=0, a full training
        journal.mark_stopped(1, [MetricValue("loss", 0.0625)])  # trial 1: x=0, its value at step 4
        full = {"assignments": {"x": 0}, "values": {"loss": 0.125}}
        partial = {"assignments": {"x": 0}, "values": {"loss": 0.0625}}
        journal.set_meta(engine_best=[full])
        assert results_document(journal.meta(), journal.trials())["engine_best"] == [full]
        journal.set_meta(engine_best=[partial])
        assert "engine_best" not in results_document(journal.meta(), journal.trials())


def test_trials_with_short_steps_are_read_within_the_verdict_wait_of_their_reports(tmp_path: Path) -> None:
    """A trial waits for the verdict on a rung's report as long as its last step took; read once a
    second, trials of 0.1 s steps ran several steps past the report that condemned them (43 steps
    of 540 in one benchmark sweep). The sweep reads again within half the shortest step, never more
    often than every 0.05 s (more rarely with many trials: each reading reads every report file),
    and once a second for long steps or before any report."""
    root = tmp_path / "reports"
    with Journal.create(tmp_path, META) as journal:
        running_trials(journal, 3)
        early = EarlyStopping(StopRule(rule="asha", min_step=1, max_step=27), journal, root, LOSS)
        assert early.read_interval([0, 1, 2]) == 1.0  # nothing reported yet
        append_report(trial_folder(root, 0), 1, {"loss": 1.0}, 0.0, took=600.0)
        append_report(trial_folder(root, 1), 1, {"loss": 1.0}, 0.0, took=0.3)
        early.poll([0, 1, 2])
        assert early.read_interval([0, 1, 2]) == pytest.approx(0.15)
        assert early.read_interval([0]) == 1.0  # epochs of ten minutes: once a second is plenty
        append_report(trial_folder(root, 1), 2, {"loss": 0.9}, 0.0, took=0.01)
        early.poll([0, 1, 2])
        assert early.read_interval([0, 1, 2]) == 0.05
        assert early.read_interval(range(1, 101)) == pytest.approx(0.2)  # 100 trials read: 2 ms each


def test_a_suggestion_awaited_has_the_running_trials_reports_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a free slot waits for the engine, the trials' reports were first read after a whole
    poll interval (a second): a GP suggestion of half a second went by with none read, while trials
    of 0.1 s steps trained on past their stop. They are read at once, then as the reading says."""
    import threading

    from hydra_sigopt import engine_aside

    monkeypatch.setattr(engine_aside, "POLL_INTERVAL_S", 60.0, raising=False)  # that first wait, made long
    read = threading.Event()

    class Engine:  # its suggestion comes once the reports have been read
        def suggest(self, pending: object) -> str:
            assert read.wait(timeout=30), "the reports were not read while the suggestion was awaited"
            return "suggestion"

    def read_reports() -> float:
        read.set()
        return 0.05

    aside = engine_aside.EngineAside(Engine(), read_reports)  # type: ignore[arg-type]
    aside.start_prefetch([])
    assert aside.take_prefetch() == "suggestion"
