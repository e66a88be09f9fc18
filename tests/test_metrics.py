"""Metrics as declared under hydra.sweeper.metrics, and reading a task's return value as an observation."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.metrics import InvalidResult, Metric, MetricValue, describe_metrics, parse_metrics, parse_result

# --------------------------------------------------------------------------------------------
# parse_metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param([{"name": "loss"}], (Metric("loss", "maximize", "optimize", None),), id="defaults"),
        pytest.param(
            {"name": "loss", "objective": "minimize"}, (Metric("loss", "minimize", "optimize"),), id="single-dict"
        ),
        pytest.param("accuracy", (Metric("accuracy", "maximize", "optimize"),), id="bare-name"),
        pytest.param(["accuracy"], (Metric("accuracy"),), id="list-of-names"),
        pytest.param(
            [{"name": "loss", "objective": None, "strategy": None}], (Metric("loss"),), id="nulls-are-defaults"
        ),
        pytest.param(
            [{"name": "acc"}, {"name": "loss", "objective": "minimize"}],
            (Metric("acc"), Metric("loss", "minimize")),
            id="two-optimized",
        ),
        pytest.param(
            [
                {"name": "acc"},
                {"name": "latency_ms", "objective": "minimize", "strategy": "constraint", "threshold": 100},
                {"name": "fit_seconds", "strategy": "store"},
            ],
            (
                Metric("acc"),
                Metric("latency_ms", "minimize", "constraint", 100.0),
                Metric("fit_seconds", "maximize", "store"),
            ),
            id="constraint-and-store",
        ),
        pytest.param(
            [{"name": "acc", "threshold": 0.8}, {"name": "f1", "threshold": 1}],
            (Metric("acc", threshold=0.8), Metric("f1", threshold=1.0)),
            id="optimized-thresholds",
        ),
    ],
)
def test_parse_metrics(raw: Any, expected: tuple[Metric, ...]) -> None:
    metrics = parse_metrics(raw)
    assert metrics == expected
    for m in metrics:
        assert m.threshold is None or type(m.threshold) is float


def test_metric_to_sigopt() -> None:
    optimized, constraint = parse_metrics(
        [{"name": "acc"}, {"name": "ms", "objective": "minimize", "strategy": "constraint", "threshold": 5}]
    )
    assert optimized.to_sigopt() == {"name": "acc", "objective": "maximize", "strategy": "optimize"}
    assert constraint.to_sigopt() == {"name": "ms", "objective": "minimize", "strategy": "constraint", "threshold": 5.0}


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        pytest.param([], "hydra.sweeper.metrics", "expected a non-empty list", id="empty-list"),
        pytest.param(None, "hydra.sweeper.metrics", "expected a non-empty list", id="none"),
        pytest.param(5, "hydra.sweeper.metrics", "expected a non-empty list", id="number"),
        pytest.param(["loss", "loss"], "hydra.sweeper.metrics[1].name", "'loss' is used twice", id="duplicate"),
        pytest.param(
            [{"name": "acc", "objective": "max"}],
            "hydra.sweeper.metrics[0].objective",
            "valid values are ['maximize', 'minimize']",
            id="unknown-objective",
        ),
        pytest.param(
            [{"name": "acc", "strategy": "optimise"}],
            "hydra.sweeper.metrics[0].strategy",
            "valid values are ['optimize', 'constraint', 'store']",
            id="unknown-strategy",
        ),
        pytest.param(
            ["acc", {"name": "ms", "strategy": "constraint"}],
            "hydra.sweeper.metrics[1].threshold",
            "a constraint metric needs a threshold",
            id="constraint-without-threshold",
        ),
        pytest.param(
            [{"name": "acc", "threshold": "0.9"}],
            "hydra.sweeper.metrics[0].threshold",
            "expected a finite number",
            id="text-threshold",
        ),
        pytest.param(
            [{"name": "acc", "threshold": True}],
            "hydra.sweeper.metrics[0].threshold",
            "expected a finite number",
            id="bool-threshold",
        ),
        pytest.param(
            [{"name": "acc", "threshold": math.nan}],
            "hydra.sweeper.metrics[0].threshold",
            "expected a finite number",
            id="nan-threshold",
        ),
        pytest.param(
            ["a", "b", "c"],
            "hydra.sweeper.metrics",
            "3 have strategy 'optimize' (['a', 'b', 'c']); keep two and mark the others strategy: store or constraint",
            id="three-optimized",
        ),
        pytest.param(
            [{"name": "a", "strategy": "store"}, {"name": "b", "strategy": "store"}],
            "hydra.sweeper.metrics",
            "no metric is optimized, and SigOpt optimizes one or two; give one or two of ['a', 'b'] strategy: "
            "optimize (the default strategy)",
            id="none-optimized",
        ),
        pytest.param(
            [{"name": "acc", "goal": "maximize"}],
            "hydra.sweeper.metrics[0]",
            "valid keys are ['name', 'objective', 'strategy', 'threshold']",
            id="unknown-key",
        ),
        pytest.param([{"objective": "minimize"}], "hydra.sweeper.metrics[0].name", "non-empty name", id="no-name"),
        pytest.param([""], "hydra.sweeper.metrics[0].name", "non-empty name", id="empty-name"),
        pytest.param([3], "hydra.sweeper.metrics[0]", "expected a dict with keys", id="entry-not-a-dict"),
    ],
)
def test_bad_metrics(raw: Any, key: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_metrics(raw)
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert says in message, message


# --------------------------------------------------------------------------------------------
# parse_result
# --------------------------------------------------------------------------------------------

LOSS = (Metric("loss", "minimize"),)
VALUE = (Metric("value", "minimize"),)  # the metric a sweep gets when it declares none
TWO = (Metric("acc"), Metric("loss", "minimize"))


@pytest.mark.parametrize(
    ("result", "metrics", "expected"),
    [
        pytest.param(0.25, LOSS, [("loss", 0.25, None)], id="float"),
        pytest.param(3, LOSS, [("loss", 3.0, None)], id="int"),
        pytest.param(-0.5, LOSS, [("loss", -0.5, None)], id="negative"),
        pytest.param(np.float64(0.125), LOSS, [("loss", 0.125, None)], id="numpy-float64"),
        pytest.param(np.float32(0.5), LOSS, [("loss", 0.5, None)], id="numpy-float32"),
        pytest.param(np.int64(7), LOSS, [("loss", 7.0, None)], id="numpy-int64"),
        pytest.param(np.array(1.5), LOSS, [("loss", 1.5, None)], id="numpy-0d-array"),
        pytest.param({"loss": 0.1}, LOSS, [("loss", 0.1, None)], id="dict-by-name"),
        pytest.param({"loss": 0.1, "epochs": 3, "note": "x"}, LOSS, [("loss", 0.1, None)], id="extra-keys-ignored"),
        pytest.param({"loss": {"value": 0.3, "value_stddev": 0.05}}, LOSS, [("loss", 0.3, 0.05)], id="stddev-by-name"),
        pytest.param({"value": 0.3, "value_stddev": 0.05}, LOSS, [("loss", 0.3, 0.05)], id="stddev-top-level"),
        pytest.param({"loss": {"value": 0.3}}, LOSS, [("loss", 0.3, None)], id="value-dict-without-stddev"),
        pytest.param({"value": 0.3, "value_stddev": 0}, LOSS, [("loss", 0.3, 0.0)], id="zero-stddev"),
        pytest.param(
            {"value": np.float64(0.3), "value_stddev": np.float32(0.5)}, LOSS, [("loss", 0.3, 0.5)], id="numpy-stddev"
        ),
        pytest.param(
            {"value": 0.3, "value_stddev": 0.05}, VALUE, [("value", 0.3, 0.05)], id="metric-named-value-keeps-stddev"
        ),
        pytest.param(
            {"value": {"value": 0.3, "value_stddev": 0.05}}, VALUE, [("value", 0.3, 0.05)], id="metric-named-value"
        ),
        pytest.param({"value": 0.3}, VALUE, [("value", 0.3, None)], id="metric-named-value-plain"),
        pytest.param({"value": (0.3, 0.1)}, VALUE, [("value", 0.3, 0.1)], id="metric-named-value-pair"),
        pytest.param({"value": 0.3, "stddev": 0.1}, VALUE, [("value", 0.3, None)], id="metric-named-value-extra-key"),
        pytest.param(np.array([0.5]), LOSS, [("loss", 0.5, None)], id="numpy-one-element"),
        pytest.param(np.array([[0.5]], dtype=np.float32), LOSS, [("loss", 0.5, None)], id="numpy-one-element-2d"),
        pytest.param({"loss": (np.array([0.5]), 0.1)}, LOSS, [("loss", 0.5, 0.1)], id="numpy-one-element-pair"),
        pytest.param(
            {"loss": 0.1, "acc": 0.9, "epochs": 3}, TWO, [("acc", 0.9, None), ("loss", 0.1, None)], id="two-by-name"
        ),
        pytest.param((0.3, 0.02), LOSS, [("loss", 0.3, 0.02)], id="ax-mean-sem"),
        pytest.param([np.float64(0.3), 0], LOSS, [("loss", 0.3, 0.0)], id="ax-mean-sem-list"),
        pytest.param((0.9, 0.1), TWO, [("acc", 0.9, None), ("loss", 0.1, None)], id="optuna-tuple"),
        pytest.param([0.9, np.float32(0.5)], TWO, [("acc", 0.9, None), ("loss", 0.5, None)], id="optuna-list"),
        pytest.param(
            ((0.9, 0.01), {"value": 0.1, "value_stddev": 0.02}),
            TWO,
            [("acc", 0.9, 0.01), ("loss", 0.1, 0.02)],
            id="tuple-of-pairs",
        ),
        pytest.param(
            {"acc": (0.9, 0.01), "loss": 0.1}, TWO, [("acc", 0.9, 0.01), ("loss", 0.1, None)], id="pair-by-name"
        ),
        pytest.param(
            {"acc": {"value": 0.9, "value_stddev": 0.01}, "loss": np.float64(0.1)},
            TWO,
            [("acc", 0.9, 0.01), ("loss", 0.1, None)],
            id="two-mixed-forms",
        ),
    ],
)
def test_parse_result(
    result: Any, metrics: tuple[Metric, ...], expected: list[tuple[str, float, float | None]]
) -> None:
    values = parse_result(result, metrics)
    assert values == tuple(MetricValue(*e) for e in expected)
    for v in values:
        assert type(v.value) is float
        assert v.value_stddev is None or type(v.value_stddev) is float


def test_metric_value_to_sigopt() -> None:
    (with_stddev,) = parse_result({"value": 0.3, "value_stddev": 0.05}, LOSS)
    (plain,) = parse_result(0.3, LOSS)
    assert with_stddev.to_sigopt() == {"name": "loss", "value": 0.3, "value_stddev": 0.05}
    assert plain.to_sigopt() == {"name": "loss", "value": 0.3}


@pytest.mark.parametrize(
    ("result", "metrics", "says"),
    [
        pytest.param(math.nan, LOSS, "metric 'loss' is nan", id="nan"),
        pytest.param(math.inf, LOSS, "metric 'loss' is inf", id="inf"),
        pytest.param(-math.inf, LOSS, "metric 'loss' is -inf", id="-inf"),
        pytest.param(np.float64("nan"), LOSS, "metric 'loss' is nan", id="numpy-nan"),
        pytest.param(np.array(np.inf), LOSS, "metric 'loss' is inf", id="numpy-0d-inf"),
        pytest.param(None, LOSS, "the task returned None, not metric 'loss': does the task function end", id="none"),
        pytest.param("0.5", LOSS, "metric 'loss' is str '0.5', not a number", id="string"),
        pytest.param(b"0.5", LOSS, "metric 'loss' is bytes", id="bytes"),
        pytest.param(True, LOSS, "metric 'loss' is bool True, not a number", id="bool"),
        pytest.param(np.bool_(True), LOSS, "metric 'loss' is bool True, not a number", id="numpy-bool"),
        pytest.param([0.5], LOSS, "metric 'loss' is list [0.5], not a number", id="list"),
        pytest.param(np.array([0.5, 0.6]), LOSS, "metric 'loss' is ndarray", id="numpy-vector"),
        pytest.param(1j, LOSS, "metric 'loss' is complex", id="complex"),
        pytest.param(10**400, LOSS, "metric 'loss' is int 1000", id="int-too-large-for-float"),
        pytest.param({"loss": math.nan}, LOSS, "metric 'loss' is nan", id="nan-by-name"),
        pytest.param({"acc": 0.9}, LOSS, "lacks metric(s) ['loss'] (it has keys ['acc'])", id="missing-metric"),
        pytest.param(
            {"value": 123.0, "train_seconds": 12.0},
            LOSS,
            "lacks metric(s) ['loss'] (it has keys ['train_seconds', 'value'])",
            id="missing-metric-beside-value",
        ),
        pytest.param({"value": 0.3}, LOSS, "lacks metric(s) ['loss'] (it has keys ['value'])", id="value-is-no-name"),
        pytest.param(
            {"value": 0.3, "value_stddev": 0.1, "acc": 0.9},
            LOSS,
            "lacks metric(s) ['loss'] (it has keys ['acc', 'value', 'value_stddev'])",
            id="noise-form-with-more-keys",
        ),
        pytest.param(np.array([True]), LOSS, "metric 'loss' is bool True, not a number", id="numpy-one-bool"),
        pytest.param({"loss": {"mean": 0.3}}, LOSS, "metric 'loss': a dict value needs a 'value' key", id="no-value"),
        pytest.param(
            {"value": 0.3, "value_stddev": -0.1}, LOSS, "metric 'loss': value_stddev must be >= 0", id="neg-stddev"
        ),
        pytest.param(
            {"loss": {"value": 0.3, "value_stddev": math.nan}}, LOSS, "metric 'loss.value_stddev' is nan", id="nan-sd"
        ),
        pytest.param(
            {"value": 0.3, "value_stddev": "small"}, LOSS, "metric 'loss.value_stddev' is str", id="text-stddev"
        ),
        pytest.param(
            0.9,
            TWO,
            "returned float 0.9; with 2 metrics the task must return a dict with keys ['acc', 'loss']",
            id="2-float",
        ),
        pytest.param(
            (0.9, 0.1, 0.2), TWO, "returned tuple (0.9, 0.1, 0.2) (3 values); expected 2, one per", id="2-tuple-of-3"
        ),
        pytest.param([0.9], TWO, "returned list [0.9] (1 values); expected 2", id="2-list-of-1"),
        pytest.param(
            (0.9, 0.1),
            (Metric("acc"), Metric("seconds", strategy="store")),
            "with constraint or store metrics ['seconds'] a tuple is ambiguous: return a dict",
            id="tuple-with-a-store-metric",
        ),
        pytest.param((0.3, 0.1, 0.2), LOSS, "metric 'loss' is tuple (0.3, 0.1, 0.2), not a number", id="1-triple"),
        pytest.param((0.3, -0.1), LOSS, "metric 'loss': value_stddev must be >= 0", id="1-pair-neg-stddev"),
        pytest.param(((0.9, -1), 0.1), TWO, "metric 'acc': value_stddev must be >= 0", id="2-pair-neg-stddev"),
        pytest.param(None, TWO, "the task returned None, not metrics ['acc', 'loss']", id="2-none"),
        pytest.param({"acc": 0.9}, TWO, "lacks metric(s) ['loss'] (it has keys ['acc'])", id="2-missing"),
        pytest.param({"value": 0.9, "value_stddev": 0.1}, TWO, "lacks metric(s) ['acc', 'loss']", id="2-value-dict"),
        pytest.param({"acc": "high", "loss": 0.1}, TWO, "metric 'acc' is str 'high', not a number", id="2-text"),
        pytest.param({"acc": 0.9, "loss": math.inf}, TWO, "metric 'loss' is inf", id="2-inf"),
    ],
)
def test_bad_result(result: Any, metrics: tuple[Metric, ...], says: str) -> None:
    with pytest.raises(InvalidResult, match=re.escape(says)):
        parse_result(result, metrics)


def test_long_result_is_shortened_in_the_reason() -> None:
    with pytest.raises(InvalidResult) as info:
        parse_result("x" * 1000, LOSS)
    assert len(str(info.value)) < 120
    assert "metric 'loss'" in str(info.value)


def test_one_feasibility_rule_a_missing_constraint_value_is_not_a_pass() -> None:
    from hydra_sigopt.metrics import meets_constraints

    metrics = parse_metrics(
        [{"name": "acc"}, {"name": "ms", "objective": "minimize", "strategy": "constraint", "threshold": 5}]
    )
    assert meets_constraints([MetricValue("acc", 1.0), MetricValue("ms", 4.0)], metrics)
    assert not meets_constraints([MetricValue("acc", 1.0), MetricValue("ms", 6.0)], metrics)
    assert not meets_constraints([MetricValue("acc", 1.0)], metrics)


def test_the_start_log_says_which_way_each_metric_goes() -> None:
    """Issue 11: a user coming from Optuna who dropped ``direction: maximize`` must see the direction."""
    metrics = parse_metrics(
        [
            {"name": "acc", "objective": "maximize"},
            {"name": "loss", "objective": "minimize", "threshold": 0.5},
            {"name": "size", "objective": "minimize", "strategy": "constraint", "threshold": 100},
            {"name": "seconds", "strategy": "store"},
        ]
    )
    assert describe_metrics(metrics) == (
        "optimizing: acc (maximize), loss (minimize, threshold 0.5); constraint: size <= 100; stored: seconds"
    )


def test_torch_values_of_one_element_are_numbers() -> None:
    torch = pytest.importorskip("torch")
    assert parse_result(torch.tensor([[0.5]]), LOSS) == (MetricValue("loss", 0.5),)
    with pytest.raises(InvalidResult, match=re.escape("metric 'loss' is Tensor")):
        parse_result(torch.tensor([0.5, 0.6]), LOSS)


@pytest.mark.parametrize(
    ("result", "metrics", "unread"),
    [
        pytest.param({"value": 0.3, "stddev": 0.1}, VALUE, ["stddev"], id="misspelled-top-level"),
        pytest.param({"loss": 0.3, "loss_std": 0.1, "epochs": 3}, LOSS, ["loss_std"], id="beside-a-named-metric"),
        pytest.param({"loss": {"value": 0.3, "sem": 0.1}}, LOSS, ["loss.sem"], id="inside-a-value-dict"),
        pytest.param({"loss": 0.3, "lossStd": 0.1}, LOSS, ["lossStd"], id="camel-case"),
        pytest.param({"value": 0.3, "value_stddev": 0.1}, LOSS, [], id="the-noise-form"),
        pytest.param({"loss": 0.3, "system_load": 0.1, "standard": 1}, LOSS, [], id="unrelated-keys"),
        pytest.param(0.3, LOSS, [], id="a-number"),
    ],
)
def test_keys_named_like_noise_that_are_not_read(result: Any, metrics: tuple[Metric, ...], unread: list[str]) -> None:
    from hydra_sigopt.metrics import unread_noise_keys

    assert unread_noise_keys(result, metrics) == unread


@pytest.mark.parametrize(
    ("raw", "unset"),
    [
        pytest.param(["loss"], ["loss"], id="bare-name"),
        pytest.param("loss", ["loss"], id="one-name"),
        pytest.param([{"name": "loss"}], ["loss"], id="dict-without-objective"),
        pytest.param([{"name": "loss", "objective": None}], ["loss"], id="null-objective"),
        pytest.param(
            [{"name": "acc", "objective": "maximize"}, {"name": "mem", "strategy": "constraint", "threshold": 1}],
            ["mem"],
            id="constraint-without-objective",
        ),
        pytest.param([{"name": "loss", "objective": "minimize"}, {"name": "s", "strategy": "store"}], [], id="given"),
        pytest.param(None, [], id="the-default-metric"),
    ],
)
def test_metrics_without_an_objective_are_warned_of(raw: Any, unset: list[str]) -> None:
    from hydra_sigopt.metrics import default_objective_warning

    warning = default_objective_warning(raw)
    if not unset:
        assert warning is None
        return
    assert warning is not None
    assert warning.startswith(f"hydra.sweeper.metrics: no objective given for {unset}, so SigOpt's default is used")
    assert f"set {{name: {unset[0]}, objective: minimize}}" in warning
