"""The peers' return conventions, through real sweeps: Optuna's tuple per objective, Ax's (mean, sem)."""

from __future__ import annotations

from pathlib import Path

from conftest import run_example, write_app

from hydra_sigopt.journal import Journal


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
    run = run_example(tmp_path, app=app).assert_ok()
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    assert [t.state for t in trials] == ["completed"] * 3
    for t in trials:
        (value,) = t.values
        assert value.value == (t.assignments["x"] - 1) ** 2 and value.value_stddev == 0.25


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
