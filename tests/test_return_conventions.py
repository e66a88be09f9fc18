"""The peers' return conventions, through real sweeps: Optuna's tuple per objective, Ax's (mean, sem)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, AppRun, run_example, write_app

from hydra_sigopt.journal import Journal


def values_with_noise(run: AppRun, trials: int) -> list[tuple[float, float, float | None]]:
    """Each trial's x, value and noise, as journaled; every trial completed."""
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        found = journal.trials()
    assert [t.state for t in found] == ["completed"] * trials, [t.failure_reason for t in found]
    assert all(len(t.values) == 1 for t in found), [t.values for t in found]
    return [(t.assignments["x"], t.values[0].value, t.values[0].value_stddev) for t in found]


def test_a_tuple_gives_the_optimized_metrics_in_order(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "observation_budget: 3\n"
        "metrics:\n  - {name: loss, objective: minimize}\n  - {name: xval, objective: maximize}\n"
        "params:\n  x: interval(-5, 5)",
        body="return (cfg.x - 1) ** 2, cfg.x",
    )
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3
    for t in run.trials:
        x = float(t["param.x"])
        assert float(t["value.loss"]) == (x - 1) ** 2 and float(t["value.xval"]) == x


def test_a_mean_and_sem_pair_gives_the_value_and_its_noise(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "observation_budget: 3\nparams:\n  x: interval(-5, 5)",
        body="return (cfg.x - 1) ** 2, 0.25",
    )
    for x, value, stddev in values_with_noise(run_example(tmp_path, app=app).assert_ok(), 3):
        assert (value, stddev) == ((x - 1) ** 2, 0.25)


def test_an_ambiguous_tuple_fails_the_trial_with_the_reason(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "observation_budget: 2\nmax_failure_rate: 1\n"
        "metrics:\n  - {name: loss, objective: minimize}\n  - {name: seconds, strategy: store}\n"
        "params:\n  x: interval(-5, 5)",
        body="return (cfg.x - 1) ** 2, 1.0",
    )
    run = run_example(tmp_path, app=app)
    assert [t["state"] for t in run.trials] == ["failed"] * 2
    assert "with constraint or store metrics ['seconds'] a tuple is ambiguous" in run.trials[0]["failure_reason"]


CALLBACK = '''\
import json
from pathlib import Path

from hydra.experimental.callback import Callback


class RecordReturn(Callback):
    """What a user's callback does with the task's return value (a W&B summary, a results table)."""

    def on_job_end(self, config, job_return, **kwargs):
        out = Path(config.hydra.runtime.output_dir)
        value = job_return.return_value
        (out / "callback.json").write_text(json.dumps({"repr": repr(value), "float": float(value)}))
'''


@pytest.mark.parametrize("launcher", [(), SUBMITIT_LOCAL], ids=["basic", "submitit_local"])
def test_hydra_callbacks_see_the_value_the_task_returned(tmp_path: Path, launcher: tuple[str, ...]) -> None:
    (tmp_path / "record_return.py").write_text(CALLBACK)
    app = write_app(tmp_path, "observation_budget: 3\nparams:\n  x: interval(-5, 5)")
    with (tmp_path / "conf" / "config.yaml").open("a") as config:
        config.write(
            "  callbacks:\n"
            "    record: {_target_: record_return.RecordReturn}\n"
            "    log_return: {_target_: hydra.experimental.callbacks.LogJobReturnCallback}\n"
        )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = run_example(tmp_path, *launcher, app=app, env=env).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3
    for t in run.trials:
        seen = json.loads((run.sweep_dir / t["number"] / "callback.json").read_text())
        assert seen["float"] == float(t["value"]) == (float(t["param.x"]) - 1) ** 2
        assert "TrialResult" not in seen["repr"]
        assert t["started_at"] and t["host"] and float(t["duration_s"]) >= 0  # still recorded beside it
    assert "TrialResult" not in run.output


def test_a_job_started_before_the_upgrade_is_read_with_where_and_when_it_ran() -> None:
    """Such a job's task returned a TrialResult: a sweep resumed after the upgrade still reads it whole."""
    from hydra.core.utils import JobReturn, JobStatus

    from hydra_sigopt.runners.outcome import TrialResult, outcome_from_job_return

    ret = JobReturn(status=JobStatus.COMPLETED, _return_value=TrialResult(0.5, 1.0, 2.0, "node7", stop_learnt=False))
    outcome = outcome_from_job_return(3, ret, job_id="42")
    assert (outcome.ok, outcome.value, outcome.started_at, outcome.ended_at, outcome.host) == (
        True,
        0.5,
        1.0,
        2.0,
        "node7",
    )
    assert outcome.stop_learnt is False


@pytest.mark.parametrize(
    "text", ["", "{", "3", '{"started_at": 1}', '{"started_at": "x", "ended_at": 2, "host": "h", "stop_learnt": false}']
)
def test_a_damaged_record_of_a_trials_run_is_no_record(tmp_path: Path, text: str) -> None:
    """A trial killed mid-write (or a full disk) leaves the sweeper its own view of the trial, not a crash."""
    from hydra_sigopt.report_files import RAN_NAME, RunRecord, run_record, write_run_record

    (tmp_path / RAN_NAME).write_text(text)
    assert run_record(tmp_path) is None
    write_run_record(tmp_path, RunRecord(1.0, 2.5, "node7", True))
    assert run_record(tmp_path) == RunRecord(1.0, 2.5, "node7", True)


def _hydra_sigopt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("declared", ["command-line", "yaml"])
def test_a_dict_lacking_the_declared_metric_fails_though_it_has_a_value_key(tmp_path: Path, declared: str) -> None:
    """It was scored on its ``value`` key, silently: ``best val_loss=123`` from an app that never
    returned a val_loss (maximizing ``accuracy``, the sweep maximized the loss returned as ``value``)."""
    metrics = "[{name: val_loss, objective: minimize}]"
    in_yaml = f"metrics: {metrics}\n" if declared == "yaml" else ""
    app = write_app(
        tmp_path,
        f"observation_budget: 2\nmax_failure_rate: 1\n{in_yaml}params:\n  x: interval(-5, 5)",
        body='return {"value": 123.0, "train_seconds": 12.0}',
    )
    on_the_command_line = [f"+hydra.sweeper.metrics={metrics}"] if declared == "command-line" else []
    run = run_example(tmp_path, *on_the_command_line, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["failed"] * 2
    for t in run.trials:
        assert t["failure_reason"] == (
            "the returned dict lacks metric(s) ['val_loss'] (it has keys ['train_seconds', 'value'])"
        )
    assert "best val_loss=123" not in run.output
    best = _hydra_sigopt("best", str(run.sweep_dir))
    assert (best.returncode, best.stdout) == (1, ""), best.stdout


def test_the_default_metric_returned_by_name_with_its_noise(tmp_path: Path) -> None:
    """``{"value": (v, 0.1)}`` failed every trial (metric 'value' is tuple (..., 0.1), not a number),
    though ``{"val_loss": (0.31, 0.02)}`` works for a named metric as the README shows."""
    app = write_app(
        tmp_path,
        "observation_budget: 3\nparams:\n  x: interval(-5, 5)",
        body='return {"value": ((cfg.x - 1) ** 2, 0.1)}',
    )
    for x, value, stddev in values_with_noise(run_example(tmp_path, app=app).assert_ok(), 3):
        assert (value, stddev) == ((x - 1) ** 2, 0.1)


def test_a_misspelled_noise_key_is_warned_of_once(tmp_path: Path) -> None:
    """``{"value": v, "stddev": s}`` lost its noise without a word: extra keys are ignored, so the
    sweep says once that this one, named like a stddev, is not read as the noise."""
    app = write_app(
        tmp_path,
        "observation_budget: 3\nparams:\n  x: interval(-5, 5)",
        body='return {"value": (cfg.x - 1) ** 2, "stddev": 0.1}',
    )
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3
    assert run.output.count("returned ['stddev'] beside its metrics: extra keys are ignored") == 1, run.output[-3000:]


def test_the_noise_warning_names_the_metric_the_key_was_meant_for(tmp_path: Path) -> None:
    """A reviewer: ``acc_std`` beside two metrics was answered with how to give ``loss`` its noise."""
    app = write_app(
        tmp_path,
        "observation_budget: 2\nmetrics:\n  - {name: loss, objective: minimize}\n"
        "  - {name: acc, objective: maximize}\nparams:\n  x: interval(-5, 5)",
        body='return {"loss": (cfg.x - 1) ** 2, "acc": cfg.x, "acc_std": 0.1}',
    )
    run = run_example(tmp_path, app=app).assert_ok()
    assert "returned ['acc_std'] beside its metrics" in run.output, run.output[-3000:]
    assert "give a value with its noise as {'acc': (v, s)}" in run.output, run.output[-3000:]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("return np.array([(cfg.x - 1) ** 2])", id="numpy"),
        pytest.param("return torch.tensor([(cfg.x - 1) ** 2], dtype=torch.float64)", id="torch"),
        pytest.param("report(1, value=np.array([(cfg.x - 1) ** 2]))\n    return (cfg.x - 1) ** 2", id="numpy-report"),
        pytest.param(
            "report(1, value=torch.tensor([(cfg.x - 1) ** 2]))\n    return (cfg.x - 1) ** 2", id="torch-report"
        ),
    ],
)
def test_a_one_element_array_is_a_number_from_numpy_as_from_torch(tmp_path: Path, body: str) -> None:
    """``np.array([v])`` failed the trial (and raised in ``report()``) where ``torch.tensor([v])`` was a number."""
    app = write_app(tmp_path, "observation_budget: 2\nparams:\n  x: interval(-5, 5)", body=body)
    source = app.read_text()
    app.write_text("import numpy as np\nimport torch\n\nfrom hydra_sigopt import report\n" + source)
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, [t["failure_reason"] for t in run.trials]
    for t in run.trials:
        assert float(t["value"]) == pytest.approx((float(t["param.x"]) - 1) ** 2, rel=1e-6)


def test_a_task_that_returns_none_is_told_it_returned_nothing(tmp_path: Path) -> None:
    """A task function without its ``return`` (or the lightning-hydra-template's, which returns None
    where ``optimized_metric`` is unset) failed every trial with "metric 'value' is NoneType None,
    not a number": about the metric's type, not about the task returning nothing."""
    app = write_app(tmp_path, "observation_budget: 2\nparams:\n  x: interval(0, 1)", body="loss = (cfg.x - 1) ** 2")
    run = run_example(tmp_path, "hydra.sweeper.max_failure_rate=1", app=app).assert_ok()
    said = (
        "the task returned None, not metric 'value': does the task function end with a return? "
        "(the lightning-hydra-template's returns None without optimized_metric)"
    )
    assert [t["failure_reason"] for t in run.trials] == [said] * 2
    assert f"Trial #0 failed: {said}" in run.output
