"""``hydra.sweeper.tasks`` (SigOpt multitask): what is accepted, and every refusal naming its key.

The rules are SigOpt's own (sigoptlite's validators, sigopt-server's multitask tests): at least two
tasks, distinct names and costs in (0, 1], one costing 1, one optimized metric and no constraint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.reports import log_results, no_best
from hydra_sigopt.settings import parse_settings
from hydra_sigopt.tasks import Task

BASE: dict[str, Any] = {"params": {"lr": "interval(0,1)", "opt.lr": "interval(0,1)"}}
SHORT = {"name": "short", "cost": 0.25, "overrides": {"trainer.max_epochs": 5}}
FULL = {"name": "full", "cost": 1}


def test_tasks_become_overrides_and_the_engine_s_tasks() -> None:
    _, definition = parse_settings({**BASE, "tasks": [SHORT, FULL]})
    assert definition.tasks == (Task("short", 0.25, ("trainer.max_epochs=5",)), Task("full", 1.0))
    assert definition.to_sigopt()["tasks"] == [{"name": "short", "cost": 0.25}, {"name": "full", "cost": 1.0}]
    assert definition.identity()["tasks"][0]["overrides"] == ["trainer.max_epochs=5"]  # a change is refused on resume


def test_without_tasks_nothing_changes() -> None:
    _, definition = parse_settings({**BASE, "tasks": []})
    assert definition.tasks == () and "tasks" not in definition.to_sigopt() and "tasks" not in definition.identity()


@pytest.mark.parametrize(
    "tasks, key, says",
    [
        pytest.param([FULL], "tasks", "expected a list of at least 2 tasks", id="one-task"),
        pytest.param("short", "tasks", "expected a list of at least 2 tasks", id="text"),
        pytest.param([SHORT, "full"], "tasks[1]", "expected a dict such as {name: short, cost: 0.1}", id="not-dict"),
        pytest.param([SHORT, {"name": "full", "cost": 1, "epochs": 3}], "tasks[1].epochs", "unknown setting", id="key"),
        pytest.param([SHORT, {"cost": 1}], "tasks[1].name", "expected a non-empty name", id="no-name"),
        pytest.param([SHORT, {"name": "full"}], "tasks[1].cost", "expected a number in (0, 1]", id="no-cost"),
        pytest.param([{**SHORT, "cost": 0}, FULL], "tasks[0].cost", "expected a number in (0, 1]", id="cost-0"),
        pytest.param([{**SHORT, "cost": 2}, FULL], "tasks[0].cost", "got 2", id="cost-2"),
        pytest.param([{**SHORT, "cost": True}, FULL], "tasks[0].cost", "got True", id="cost-bool"),
        pytest.param([SHORT, {**SHORT, "cost": 1}], "tasks", "task names must differ", id="same-name"),
        pytest.param([SHORT, {**FULL, "cost": 0.25}], "tasks", "task costs must differ", id="same-cost"),
        pytest.param([SHORT, {**FULL, "cost": 0.5}], "tasks", "exactly one task must cost 1", id="no-full"),
        pytest.param([{**SHORT, "overrides": ["epochs=5"]}, FULL], "tasks[0].overrides", "expected a dict", id="list"),
        pytest.param([{**SHORT, "overrides": {"lr": 0.1}}, FULL], "tasks[0].overrides.lr", "is swept", id="swept"),
        pytest.param(
            [{**SHORT, "overrides": {"opt": {"lr": 0.9, "epochs": 2}}}, FULL],
            "tasks[0].overrides.opt",
            "is swept or set on the command line (opt.lr is under it); a task cannot set it too",
            id="parent-of-swept",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"hydra.launcher.timeout_min": 1}}, FULL],
            "tasks[0].overrides.hydra.launcher.timeout_min",
            "is Hydra's launcher or sweeper config, shared by every trial; a task cannot change it",
            id="hydra-key",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"~opt": None}}, FULL],
            "tasks[0].overrides.~opt",
            "is swept or set on the command line (opt.lr is under it); a task cannot set it too",
            id="deletes-parent-of-swept",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"opt": None}}, FULL],
            "tasks[0].overrides.opt",
            "is swept or set on the command line (opt.lr is under it); a task cannot set it too",
            id="nulls-parent-of-swept",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"opt": 3}}, FULL],
            "tasks[0].overrides.opt",
            "(opt.lr is under it)",
            id="number-replaces-parent-of-swept",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"opt": "${fast_opt}"}}, FULL],
            "tasks[0].overrides.opt",
            "(opt.lr is under it)",
            id="interpolation-replaces-parent-of-swept",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"epochs": 3, "hydra.sweep.subdir": "short"}}, FULL],
            "tasks[0].overrides.hydra.sweep.subdir",
            "is where the sweep writes its trials (hydra.sweep); a task's trials would share a folder or leave"
            " the sweep dir; a task cannot change it",
            id="subdir",
        ),
        pytest.param(
            [{**SHORT, "overrides": {"hydra.sweep": {"dir": "/elsewhere"}}}, FULL],
            "tasks[0].overrides.hydra.sweep",
            "is where the sweep writes its trials",
            id="sweep-as-a-dict",
        ),
        pytest.param(
            [{**SHORT, "name": "s" * 101}, FULL],
            "tasks[0].name",
            "101 characters long; SigOpt allows at most 100",
            id="long",
        ),
    ],
)
def test_bad_tasks_name_the_key(tasks: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, "tasks": tasks})
    assert info.value.key == key
    assert says in str(info.value), str(info.value)


def test_tasks_with_two_optimized_metrics_are_refused() -> None:
    metrics = [{"name": "a", "objective": "minimize"}, {"name": "b", "objective": "minimize"}]
    with pytest.raises(ConfigError, match="one optimized metric and no constraint metric"):
        parse_settings({**BASE, "metrics": metrics, "tasks": [SHORT, FULL]})


def test_a_task_may_choose_options_of_a_config_group_holding_a_swept_key() -> None:
    """``cb: [early, ckpt]`` (a group of several options) or ``opt: sgd``: Hydra applies the options
    before the values set under them, so a swept ``cb.patience`` still reaches the trial."""
    swept = {"params": {"cb.patience": "int(interval(1, 5))", "opt.lr": "interval(0, 1)"}}
    tasks = [{**SHORT, "overrides": {"cb": ["early", "ckpt"], "opt": "sgd"}}, FULL]
    _, definition = parse_settings({**swept, "tasks": tasks})
    assert definition.tasks[0].overrides == ("cb=[early,ckpt]", "opt=sgd")


def test_a_task_cannot_set_a_key_the_command_line_sets() -> None:
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.overrides\.trainer\.max_epochs: is swept or set on the"):
        parse_settings({**BASE, "tasks": [SHORT, FULL]}, arguments=["trainer.max_epochs=20"])


def test_a_task_cannot_replace_a_command_line_override_through_its_parent_node() -> None:
    """``opt.name=mine`` on the command line, and a task ``{opt: {epochs: 2, name: task}}``: the
    task's trials ran ``name: task``, silently."""
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.overrides\.opt: is swept or set on the command line \(opt"):
        parse_settings(
            {**BASE, "tasks": [{**SHORT, "overrides": {"opt": {"epochs": 2, "name": "task"}}}, FULL]},
            arguments=["opt.name=mine"],
        )


def test_a_sweep_where_only_cheaper_tasks_completed_says_so(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """It said "No trial completed" beside a trials.csv with completed trials (of a cheaper task)."""
    doc = {"trials": {"total": 2, "completed": 1, "failed": 1, "by_task": {"short": 1, "full": 1}}}
    with caplog.at_level(logging.INFO, logger="hydra_sigopt"):
        log_results(tmp_path, doc)
    assert "No trial of the full task completed (1 of cheaper tasks did; those are never the best)" in caplog.text
    assert no_best({"trials": {"completed": 0, "by_task": {"full": 2}}}) == "No trial completed"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"opt": "subset", "epochs": 1}, id="config-group-option-over-a-swept-key"),
        pytest.param({"+hydra.job.env_set.EPOCHS": "short"}, id="per-job-hydra-setting"),
    ],
)
def test_a_task_may_pick_a_config_group_option_or_a_per_job_hydra_setting(overrides: dict[str, Any]) -> None:
    """Both took effect before the parent-node and Hydra-key refusals, which refused them too:
    Hydra applies a group's option before the values under it (``opt=subset opt.lr=0.1``), and
    ``hydra.job.env_set`` is each job's own."""
    _, definition = parse_settings({**BASE, "tasks": [{**SHORT, "overrides": overrides}, FULL]})
    assert definition.tasks[0].overrides == tuple(f"{k}={v}" for k, v in overrides.items())
