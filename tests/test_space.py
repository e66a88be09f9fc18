"""The search space: Hydra grammar and SigOpt-native dicts in, SigOpt parameters and Hydra overrides out."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import RangeSweep
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.grids import hydra_range_length
from hydra_sigopt.space import build_space, format_override

PARSER = OverridesParser.create()


def parsed(override: str) -> Any:
    """What Hydra's parser reads from an override string."""
    return PARSER.parse_override(override).value()


def same(a: Any, b: Any) -> bool:
    """Equal with the same type; floats bit for bit (so -0.0 != 0.0 and nan == nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()
    return a == b


def typed_json(value: Any) -> str:
    """JSON keeps 1 and 1.0 apart, so comparing dumps also compares int/float types."""
    return json.dumps(value, sort_keys=True)


# --------------------------------------------------------------------------------------------
# Hydra grammar -> SigOpt parameter
# --------------------------------------------------------------------------------------------

GRAMMAR = [
    pytest.param(
        "lr",
        "interval(1,10)",
        {"type": "double", "bounds": {"min": 1.0, "max": 10.0}},
        {3.5: 3.5, 10.0: 10.0},
        id="interval-double",
    ),
    pytest.param(
        "layers",
        "int(interval(1,10))",
        {"type": "int", "bounds": {"min": 1, "max": 10}},
        {7: 7},
        id="int-interval",
    ),
    pytest.param(
        "lr",
        "tag(log, interval(1e-4,1))",
        {"type": "double", "bounds": {"min": 0.0001, "max": 1.0}, "transformation": "log"},
        {0.001: 0.001},
        id="log-interval",
    ),
    pytest.param(
        "width",
        "tag(log, int(interval(1,1000)))",
        {"type": "double", "bounds": {"min": 1.0, "max": 1000.0}, "transformation": "log"},
        {31.6: 32, 1.0: 1, 999.7: 1000, 2.4: 2},
        id="log-int-interval-rounds",
    ),
    pytest.param(
        "arch",
        "choice(resnet,vit)",
        {"type": "categorical", "categorical_values": [{"name": "resnet"}, {"name": "vit"}]},
        {"vit": "vit", "resnet": "resnet"},
        id="choice-categorical",
    ),
    pytest.param(
        "batch_size",
        "choice(16,32,64)",
        {"type": "int", "grid": [16, 32, 64]},
        {32: 32},
        id="choice-int-grid",
    ),
    pytest.param(
        "dropout",
        "choice(0.1,0.5)",
        {"type": "double", "grid": [0.1, 0.5]},
        {0.5: 0.5},
        id="choice-double-grid",
    ),
    pytest.param(
        "lr",
        "tag(log, choice(0.001,0.01,0.1))",
        {"type": "double", "transformation": "log", "grid": [0.001, 0.01, 0.1]},
        {0.01: 0.01},
        id="log-choice",
    ),
    pytest.param(
        "mixed",
        "choice(1, a, true)",
        {"type": "categorical", "categorical_values": [{"name": "1"}, {"name": "a"}, {"name": "true"}]},
        {"1": 1, "a": "a", "true": True},
        id="choice-mixed-types",
    ),
    pytest.param(
        "n",
        "range(1,5)",
        {"type": "int", "bounds": {"min": 1, "max": 4}},
        {4: 4, 1: 1},
        id="range-int-stop-exclusive",
    ),
    pytest.param(
        "n",
        "range(1,10,3)",
        {"type": "int", "grid": [1, 4, 7]},
        {7: 7},
        id="range-int-step",
    ),
    pytest.param(
        "frac",
        "range(0,1,0.25)",
        {"type": "double", "grid": [0.0, 0.25, 0.5, 0.75]},
        {0.25: 0.25},
        id="range-double",
    ),
    pytest.param(
        "k",
        "1,2,3",
        {"type": "int", "grid": [1, 2, 3]},
        {2: 2},
        id="simple-sweep-form",
    ),
    pytest.param(
        "model",
        "choice(resnet,vit)",
        {"type": "categorical", "categorical_values": [{"name": "resnet"}, {"name": "vit"}]},
        {"vit": "vit"},
        id="config-group",
    ),
    pytest.param(
        "opt",
        "choice('a b', \"c,d\", 'it\\'s')",
        {"type": "categorical", "categorical_values": [{"name": "a b"}, {"name": "c,d"}, {"name": "it's"}]},
        {"a b": "a b", "c,d": "c,d", "it's": "it's"},
        id="choice-quoted-strings",
    ),
]


@pytest.mark.parametrize(("key", "text", "expected", "samples"), GRAMMAR)
def test_grammar_to_sigopt(key: str, text: str, expected: dict[str, Any], samples: dict[Any, Any]) -> None:
    space = build_space({key: text})
    assert len(space.parameters) == 1
    assert typed_json(space.parameters[0].to_sigopt()) == typed_json({"name": key, **expected})
    for assignment, hydra_value in samples.items():
        space.check({key: assignment})
        [override] = space.overrides_for({key: assignment})
        assert override.startswith(f"{key}=")
        assert same(parsed(override), hydra_value), (override, hydra_value)


def test_log_int_interval_overrides_are_ints_within_bounds() -> None:
    space = build_space({"width": "tag(log, int(interval(1,1000)))"})
    assert space.parameters[0].rounds_to_int
    for assignment in (1.0, 1.49, 1.5, 10.0**1.5, 999.5, 1000.0):
        value = parsed(space.overrides_for({"width": assignment})[0])
        assert type(value) is int and 1 <= value <= 1000


def test_float_range_lists_values_as_hydra_does() -> None:
    """range(0,1,0.1) gives 0.3, not 0.30000000000000004, like Hydra's basic sweeper."""
    grid = build_space({"x": "range(0,1,0.1)"}).parameters[0].grid
    assert grid is not None
    assert list(grid) == list(PARSER.parse_override("x=range(0,1,0.1)").sweep_iterator())
    assert 0.3 in grid and len(grid) == 10


def test_descending_step_one_range_is_an_int_parameter() -> None:
    assert build_space({"x": "range(5,1,-1)"}).parameters[0].bounds == (2, 5)
    assert build_space({"x": "range(9,1,-3)"}).parameters[0].grid == (3, 6, 9)


@pytest.mark.parametrize(
    ("key", "assignment", "override"),
    [
        pytest.param("+new_key", 0.5, "+new_key=0.5", id="plus-prefix-kept"),
        pytest.param("++forced", 0.5, "++forced=0.5", id="double-plus-kept"),
        pytest.param("db@backup", "b", "db@backup=b", id="package-kept"),
    ],
)
def test_override_key_keeps_prefix_and_package(key: str, assignment: Any, override: str) -> None:
    text = "interval(0,1)" if isinstance(assignment, float) else "choice(a,b)"
    space = build_space({key: text})
    name = space.parameters[0].name
    assert name == key.lstrip("+")
    assert space.overrides_for({name: assignment}) == [override]


# --------------------------------------------------------------------------------------------
# SigOpt-native dicts
# --------------------------------------------------------------------------------------------

NATIVE = [
    pytest.param(
        {"type": "double", "bounds": {"min": 0, "max": 1}},
        {"type": "double", "bounds": {"min": 0.0, "max": 1.0}},
        id="double",
    ),
    pytest.param(
        {"type": "double", "bounds": {"min": 1e-5, "max": 1}, "transformation": "log"},
        {"type": "double", "bounds": {"min": 1e-5, "max": 1.0}, "transformation": "log"},
        id="log",
    ),
    pytest.param(
        {"type": "double", "bounds": {"min": 0, "max": 1}, "transformation": "none"},
        {"type": "double", "bounds": {"min": 0.0, "max": 1.0}},
        id="transformation-none",
    ),
    pytest.param(
        {"type": "int", "bounds": {"min": 1, "max": 8}},
        {"type": "int", "bounds": {"min": 1, "max": 8}},
        id="int",
    ),
    pytest.param(
        {"type": "int", "bounds": {"min": 1.0, "max": 8.0}},
        {"type": "int", "bounds": {"min": 1, "max": 8}},
        id="int-whole-float-bounds",
    ),
    pytest.param(
        {"type": "int", "grid": [4, 1, 2]},
        {"type": "int", "grid": [1, 2, 4]},
        id="int-grid",
    ),
    pytest.param(
        {"type": "double", "grid": [0.1, 1, 10]},
        {"type": "double", "grid": [0.1, 1.0, 10.0]},
        id="double-grid",
    ),
    pytest.param(
        {"type": "double", "bounds": {"min": 0, "max": 1}, "prior": {"name": "normal", "mean": 0.5, "scale": 0.1}},
        {
            "type": "double",
            "bounds": {"min": 0.0, "max": 1.0},
            "prior": {"name": "normal", "mean": 0.5, "scale": 0.1},
        },
        id="prior",
    ),
    pytest.param(
        {"type": "categorical", "categorical_values": ["adam", "sgd"]},
        {"type": "categorical", "categorical_values": [{"name": "adam"}, {"name": "sgd"}]},
        id="categorical-strings",
    ),
    pytest.param(
        {"type": "categorical", "categorical_values": [{"name": "adam"}, {"name": "sgd"}]},
        {"type": "categorical", "categorical_values": [{"name": "adam"}, {"name": "sgd"}]},
        id="categorical-name-dicts",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), NATIVE)
def test_native_dict_to_sigopt(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    space = build_space({"p": spec})
    assert typed_json(space.parameters[0].to_sigopt()) == typed_json({"name": "p", **expected})


@pytest.mark.parametrize(
    ("values", "assignment", "hydra_value"),
    [
        pytest.param(["adam", "sgd"], "sgd", "sgd", id="strings"),
        pytest.param([{"name": "adam"}, {"name": "16"}], "16", "16", id="name-dict-stays-text"),
        pytest.param([16, 32, 64], "32", 32, id="ints-stay-ints"),
        pytest.param([0.5, 1.5], "1.5", 1.5, id="floats-stay-floats"),
        pytest.param([True, False], "false", False, id="bools-stay-bools"),
        pytest.param(["1", "true"], "1", "1", id="numeric-looking-strings-stay-strings"),
    ],
)
def test_native_categorical_override_value(values: list[Any], assignment: str, hydra_value: Any) -> None:
    space = build_space({"opt": {"type": "categorical", "categorical_values": values}})
    space.check({"opt": assignment})
    [override] = space.overrides_for({"opt": assignment})
    assert same(parsed(override), hydra_value)


def test_conditionals_and_linear_constraints_pass_through() -> None:
    space = build_space(
        {
            "optimizer": "choice(sgd,adam)",
            "momentum": {"type": "double", "bounds": {"min": 0, "max": 0.99}, "conditions": {"solver": ["sgd"]}},
            "beta": {"type": "double", "bounds": {"min": 0.5, "max": 0.999}, "conditions": {"solver": "adam"}},
            "x": "interval(0,1)",
            "y": "interval(0,1)",
        },
        conditionals=[{"name": "solver", "values": ["sgd", "adam"]}],
        linear_constraints=[
            {"type": "less_than", "threshold": 1, "terms": [{"name": "x", "weight": 1}, {"name": "y", "weight": 2}]}
        ],
    )
    out = space.to_sigopt()
    assert out["conditionals"] == [{"name": "solver", "values": ["sgd", "adam"]}]
    assert out["linear_constraints"] == [
        {"type": "less_than", "threshold": 1.0, "terms": [{"name": "x", "weight": 1}, {"name": "y", "weight": 2}]}
    ]
    by_name = {p["name"]: p for p in out["parameters"]}
    assert by_name["momentum"]["conditions"] == {"solver": ["sgd"]}
    assert by_name["beta"]["conditions"] == {"solver": ["adam"]}
    assert set(by_name) == {"optimizer", "momentum", "beta", "x", "y"}


# --------------------------------------------------------------------------------------------
# Fixed values
# --------------------------------------------------------------------------------------------


def test_fixed_params_and_command_line_values_apply_to_every_trial() -> None:
    space = build_space({"lr": "interval(0,1)", "batch_size": 32}, ["seed=3"])
    assert space.names == ["lr"]
    assert space.fixed_overrides == ("batch_size=32", "seed=3")
    assert space.overrides_for({"lr": 0.5}) == ["batch_size=32", "seed=3", "lr=0.5"]
    assert space.overrides_for({"lr": 0.25})[:2] == ["batch_size=32", "seed=3"]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(0.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param(-7, id="negative-int"),
        pytest.param("abc", id="text"),
    ],
)
def test_fixed_param_value_reaches_the_trial_unchanged(value: Any) -> None:
    space = build_space({"lr": "interval(0,1)", "fixed": value})
    [fixed] = space.fixed_overrides
    assert same(parsed(fixed), value)


def test_command_line_sweep_replaces_params_entry() -> None:
    space = build_space({"lr": "interval(0,1)", "+wd": "interval(0,1)"}, ["lr=choice(0.1,0.2)", "wd=choice(0,1)"])
    assert space.names == ["lr", "wd"]
    lr, wd = space.parameters
    assert lr.to_sigopt() == {"name": "lr", "type": "double", "grid": [0.1, 0.2]}
    assert wd.to_sigopt() == {"name": "wd", "type": "int", "grid": [0, 1]}
    assert wd.override_key == "wd"


def test_command_line_fixed_value_pins_a_params_entry() -> None:
    space = build_space({"lr": "interval(0,1)", "wd": "interval(0,1)"}, ["lr=0.5"])
    assert space.names == ["wd"]
    assert space.fixed_overrides == ("lr=0.5",)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

OPTIMIZER = [{"name": "optimizer", "values": ["sgd", "adam"]}]
MOMENTUM = {"type": "double", "bounds": {"min": 0, "max": 1}}

BAD = [
    # (params, arguments, extra build_space kwargs, key in message, what the message must say)
    pytest.param({}, [], {}, "hydra.sweeper.params", "declare at least one parameter", id="empty"),
    pytest.param(None, ["seed=3"], {}, "hydra.sweeper.params", "declare at least one parameter", id="only-fixed"),
    pytest.param(
        {"lr": {"type": "float", "bounds": {"min": 0, "max": 1}}},
        [],
        {},
        "hydra.sweeper.params.lr.type",
        "valid types are ['double', 'int', 'categorical']",
        id="dict-unknown-type",
    ),
    pytest.param(
        {"lr": {"bounds": {"min": 0, "max": 1}}},
        [],
        {},
        "hydra.sweeper.params.lr.type",
        "valid types are",
        id="dict-missing-type",
    ),
    pytest.param({"lr": "interval(5,1)"}, [], {}, "hydra.sweeper.params.lr", "min must be less than max", id="min>max"),
    pytest.param({"lr": "interval(1,1)"}, [], {}, "hydra.sweeper.params.lr", "min must be less than max", id="min=max"),
    pytest.param(
        {"lr": {"type": "double", "bounds": {"min": 1, "max": 1}}},
        [],
        {},
        "hydra.sweeper.params.lr.bounds",
        "min must be less than max",
        id="dict-min=max",
    ),
    pytest.param({"lr": "interval(0, inf)"}, [], {}, "hydra.sweeper.params.lr", "finite", id="infinite-bound"),
    pytest.param(
        {"lr": "tag(log, interval(0,1))"}, [], {}, "hydra.sweeper.params.lr", "needs min > 0", id="log-min-zero"
    ),
    pytest.param(
        {"lr": "tag(log, int(interval(-1,10)))"}, [], {}, "hydra.sweeper.params.lr", "needs min > 0", id="log-int-neg"
    ),
    pytest.param(
        {"lr": {"type": "double", "bounds": {"min": 0, "max": 1}, "transformation": "log"}},
        [],
        {},
        "hydra.sweeper.params.lr.bounds",
        "needs min > 0",
        id="dict-log-min-zero",
    ),
    pytest.param(
        {"lr": "tag(log, choice(0, 1))"}, [], {}, "hydra.sweeper.params.lr", "positive values", id="log-choice-zero"
    ),
    pytest.param(
        {"lr": "tag(log, choice(a, b))"}, [], {}, "hydra.sweeper.params.lr", "needs numbers", id="log-categorical"
    ),
    pytest.param(
        {"lr": {"type": "int", "bounds": {"min": 1, "max": 8}, "transformation": "log"}},
        [],
        {},
        "hydra.sweeper.params.lr.transformation",
        "type double only",
        id="dict-log-int",
    ),
    pytest.param(
        {"lr": {"type": "double", "bounds": {"min": 0, "max": 1}, "transformation": "exp"}},
        [],
        {},
        "hydra.sweeper.params.lr.transformation",
        "valid values are ['none', 'log']",
        id="dict-unknown-transformation",
    ),
    # Hydra's parser itself refuses choice() ("empty choice is not legal").
    pytest.param({"lr": "choice()"}, [], {}, "hydra.sweeper.params.lr", "valid forms are", id="empty-choice"),
    pytest.param({}, ["lr=choice()"], {}, "command-line override 'lr=choice()'", "valid forms", id="empty-choice-cli"),
    pytest.param(
        {"lr": "interval(0,1)", "+lr": "interval(0,1)"},
        [],
        {},
        "hydra.sweeper.params.+lr",
        "'lr' is declared twice",
        id="duplicate-name",
    ),
    pytest.param(
        {"lr": "choice(1, 1.0)"}, [], {}, "hydra.sweeper.params.lr", "distinct numbers", id="duplicate-number"
    ),
    pytest.param(
        {"lr": {"type": "double", "grid": [1, 1.0, 2]}},
        [],
        {},
        "hydra.sweeper.params.lr.grid",
        "distinct numbers",
        id="dict-duplicate-grid",
    ),
    pytest.param(
        {"lr": "choice(1, '1')"}, [], {}, "hydra.sweeper.params.lr", "not distinct once written", id="same-text"
    ),
    pytest.param(
        {"lr": "tag(foo, interval(0,1))"},
        [],
        {},
        "hydra.sweeper.params.lr",
        "valid tags are ['log', 'int', 'ordered']",
        id="unknown-tag",
    ),
    pytest.param({"lr": {1, 2}}, [], {}, "hydra.sweeper.params.lr", "expected a Hydra sweep such as", id="set-entry"),
    pytest.param({"lr": "interval(0,"}, [], {}, "hydra.sweeper.params.lr", "valid forms are", id="unparsable"),
    pytest.param({"lr": "glob(*)"}, [], {}, "hydra.sweeper.params.lr", "choice(a, b", id="glob"),
    pytest.param({"lr": "range(5,1)"}, [], {}, "hydra.sweeper.params.lr", "is empty", id="empty-range"),
    pytest.param({"~lr": "interval(0,1)"}, [], {}, "hydra.sweeper.params.~lr", "deletes a key", id="delete"),
    pytest.param({}, ["~lr=choice(a,b)"], {}, "command-line override '~lr=choice(a,b)'", "deletes", id="delete-cli"),
    pytest.param(
        {"hydra.job.name": "choice(a,b)"},
        [],
        {},
        "hydra.sweeper.params.hydra.job.name",
        "only the app's own config",
        id="hydra-key",
    ),
    pytest.param(
        {},
        ["hydra.launcher.n_jobs=choice(1,2)"],
        {},
        "command-line override 'hydra.launcher.n_jobs=choice(1,2)'",
        "only the app's own config",
        id="hydra-key-cli",
    ),
    pytest.param(
        {}, ["lr=interval(1,0)"], {}, "command-line override 'lr=interval(1,0)'", "min must be", id="cli-bounds"
    ),
    pytest.param(
        {"momentum": {**MOMENTUM, "conditions": {"optimiser": ["sgd"]}}},
        [],
        {"conditionals": OPTIMIZER},
        "hydra.sweeper.params.momentum.conditions",
        "declared conditionals are ['optimizer']",
        id="unknown-conditional",
    ),
    pytest.param(
        {"momentum": {**MOMENTUM, "conditions": {"optimizer": ["sgd"]}}},
        [],
        {},
        "hydra.sweeper.params.momentum.conditions",
        "add them under hydra.sweeper.conditionals",
        id="no-conditionals-declared",
    ),
    pytest.param(
        {"momentum": {**MOMENTUM, "conditions": {"optimizer": ["rmsprop"]}}},
        [],
        {"conditionals": OPTIMIZER},
        "hydra.sweeper.params.momentum.conditions.optimizer",
        "valid values are ['sgd', 'adam']",
        id="condition-value-unknown",
    ),
    pytest.param(
        {"lr": "interval(0,1)"},
        [],
        {"conditionals": [{"name": "optimizer", "values": "sgd"}]},
        "hydra.sweeper.conditionals[0].values",
        "list of at least two values",
        id="conditional-values-text",
    ),
    pytest.param(
        {"lr": "interval(0,1)"},
        [],
        {"conditionals": [{"name": "optimizer", "values": ["sgd"]}]},
        "hydra.sweeper.conditionals[0].values",
        "at least two distinct values",
        id="conditional-one-value",
    ),
    pytest.param(
        {"lr": "interval(0,1)"},
        [],
        {"conditionals": [{"name": "lr", "values": ["a", "b"]}]},
        "hydra.sweeper.conditionals[0].name",
        "already the name of a parameter",
        id="conditional-shadows-parameter",
    ),
    pytest.param(
        {"x": "interval(0,1)", "y": "interval(0,1)"},
        [],
        {"linear_constraints": [{"type": "less_than", "threshold": 1, "terms": [{"name": "z", "weight": 1}]}]},
        "hydra.sweeper.linear_constraints[0].terms",
        "known: ['x', 'y']",
        id="constraint-unknown-parameter",
    ),
    pytest.param(
        {"x": "interval(0,1)"},
        [],
        {"linear_constraints": [{"type": "equal", "threshold": 1, "terms": [{"name": "x", "weight": 1}]}]},
        "hydra.sweeper.linear_constraints[0].type",
        "['greater_than', 'less_than']",
        id="constraint-unknown-type",
    ),
    pytest.param(
        {"x": "interval(0,1)"},
        [],
        {"linear_constraints": [{"type": "less_than", "threshold": "one", "terms": [{"name": "x", "weight": 1}]}]},
        "hydra.sweeper.linear_constraints[0].threshold",
        "finite number",
        id="constraint-threshold-text",
    ),
    pytest.param(
        {"lr": {"type": "double", "bounds": {"min": 0, "max": 1}, "scale": "log"}},
        [],
        {},
        "hydra.sweeper.params.lr",
        "valid keys are ['type', 'bounds', 'transformation', 'grid', 'prior', 'categorical_values', 'conditions']",
        id="dict-unknown-key",
    ),
    pytest.param(
        {"lr": {"type": "double"}}, [], {}, "hydra.sweeper.params.lr.bounds", "{min: <number>", id="dict-no-bounds"
    ),
    pytest.param(
        {"lr": {"type": "double", "bounds": {"min": "0", "max": 1}}},
        [],
        {},
        "hydra.sweeper.params.lr.bounds.min",
        "expected a number",
        id="dict-text-bound",
    ),
    pytest.param(
        {"n": {"type": "int", "bounds": {"min": 1, "max": 8.5}}},
        [],
        {},
        "hydra.sweeper.params.n.bounds.max",
        "integer bounds",
        id="int-fractional-bound",
    ),
    pytest.param(
        {"n": {"type": "int", "grid": [1, 2.5]}}, [], {}, "hydra.sweeper.params.n.grid", "integer grid", id="int-grid"
    ),
    pytest.param(
        {"opt": {"type": "categorical", "categorical_values": ["adam"]}},
        [],
        {},
        "hydra.sweeper.params.opt.categorical_values",
        "at least two names",
        id="categorical-one-value",
    ),
    pytest.param(
        {"opt": {"type": "categorical", "categorical_values": ["adam", "adam"]}},
        [],
        {},
        "hydra.sweeper.params.opt.categorical_values",
        "must be distinct",
        id="categorical-duplicate",
    ),
    pytest.param(
        {"opt": {"type": "categorical", "categorical_values": ["adam", "sgd"], "bounds": {"min": 0, "max": 1}}},
        [],
        {},
        "hydra.sweeper.params.opt",
        "takes only categorical_values and conditions",
        id="categorical-with-bounds",
    ),
    pytest.param(
        {"opt": {"type": "categorical", "categorical_values": ["${model}", "sgd"]}},
        [],
        {},
        "hydra.sweeper.params.opt.categorical_values",
        "interpolation",
        id="categorical-interpolation",
    ),
]


@pytest.mark.parametrize(("params", "arguments", "kwargs", "key", "says"), BAD)
def test_bad_space_is_a_config_error(
    params: Any, arguments: list[str], kwargs: dict[str, Any], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_space(params, arguments, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert says in message, message


# --------------------------------------------------------------------------------------------
# SearchSpace.check
# --------------------------------------------------------------------------------------------

CHECKED = build_space(
    {
        "lr": "interval(0,1)",
        "n": "int(interval(1,10))",
        "width": "tag(log, int(interval(1,1000)))",
        "bs": "choice(16,32)",
        "drop": "choice(0.1,0.5)",
        "opt": "choice(adam,sgd)",
    }
)
VALID = {"lr": 0.5, "n": 3, "width": 31.62, "bs": 16, "drop": 0.5, "opt": "adam"}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({}, id="typical"),
        pytest.param({"lr": 0.0, "n": 1, "width": 1.0}, id="lower-bounds"),
        pytest.param({"lr": 1.0, "n": 10, "width": 1000.0}, id="upper-bounds"),
        pytest.param({"n": 3.0, "bs": 32.0}, id="whole-floats-for-ints"),
        pytest.param({"opt": "sgd", "drop": 0.1}, id="other-choices"),
    ],
)
def test_check_accepts(change: dict[str, Any]) -> None:
    CHECKED.check({**VALID, **change})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param({"lr": 1.5}, "outside the bounds", id="double-above"),
        pytest.param({"lr": -0.1}, "outside the bounds", id="double-below"),
        pytest.param({"lr": math.nan}, "outside the bounds", id="double-nan"),
        pytest.param({"lr": "0.5"}, "not a number", id="double-text"),
        pytest.param({"width": 1001.0}, "outside the bounds", id="log-int-above"),
        pytest.param({"n": 2.5}, "not an integer", id="int-fraction"),
        pytest.param({"n": math.inf}, "not an integer", id="int-inf"),
        pytest.param({"n": math.nan}, "not an integer", id="int-nan"),
        pytest.param({"n": True}, "not a number", id="int-bool"),
        pytest.param({"n": 11}, "outside the bounds", id="int-above"),
        pytest.param({"opt": "rmsprop"}, "is not one of ['adam', 'sgd']", id="unknown-category"),
        pytest.param({"bs": 24}, "grid values", id="not-in-int-grid"),
        pytest.param({"drop": 0.3}, "grid values", id="not-in-double-grid"),
        pytest.param({"momentum": 0.9}, "unknown parameter(s) ['momentum']", id="unknown-name"),
        pytest.param({"lr": None}, "not a number", id="none"),
    ],
)
def test_check_rejects(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        CHECKED.check({**VALID, **change})


def test_check_rejects_missing_parameter() -> None:
    assignments = dict(VALID)
    del assignments["lr"]
    with pytest.raises(ValueError, match="parameter lr is missing"):
        CHECKED.check(assignments)


@pytest.fixture(scope="module")
def conditional_space() -> Any:
    return build_space(
        {
            "lr": "interval(0,1)",
            "momentum": {"type": "double", "bounds": {"min": 0, "max": 1}, "conditions": {"optimizer": "sgd"}},
        },
        conditionals=[{"name": "optimizer", "values": ["sgd", "adam"]}],
    )


def test_inactive_conditional_parameter_may_be_absent(conditional_space: Any) -> None:
    assignments = {"optimizer": "adam", "lr": 0.1}
    conditional_space.check(assignments)
    assert conditional_space.overrides_for(assignments) == ["optimizer=adam", "lr=0.1"]


def test_active_conditional_parameter_is_required_and_overridden(conditional_space: Any) -> None:
    with pytest.raises(ValueError, match="momentum is missing"):
        conditional_space.check({"optimizer": "sgd", "lr": 0.1})
    assignments = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}
    conditional_space.check(assignments)
    assert conditional_space.overrides_for(assignments) == ["optimizer=sgd", "lr=0.1", "momentum=0.9"]


def test_conditional_value_must_be_declared(conditional_space: Any) -> None:
    with pytest.raises(ValueError, match="conditional optimizer='rmsprop' is not one of"):
        conditional_space.check({"optimizer": "rmsprop", "lr": 0.1})


def test_conditional_values_keep_their_declared_types_for_the_app() -> None:
    """The engine's conditional values are strings ('False', '2'); the override gives the app the
    boolean or int declared (a string 'False' is truthy), and a condition on ``[true]`` or ``[2]``
    switches its parameter on for that value."""
    space = build_space(
        {
            "x": "interval(0,1)",
            "p": {"type": "double", "bounds": {"min": 0, "max": 0.5}, "conditions": {"use_dropout": [True]}},
            "q": {"type": "double", "bounds": {"min": 0, "max": 1}, "conditions": {"nl": 2}},
        },
        conditionals=[{"name": "use_dropout", "values": [False, True]}, {"name": "nl", "values": [1, 2]}],
    )
    assert space.to_sigopt()["conditionals"] == [
        {"name": "use_dropout", "values": ["False", "True"]},
        {"name": "nl", "values": ["1", "2"]},
    ]
    off = {"use_dropout": "False", "nl": "1", "x": 0.5}
    space.check(off)
    assert space.overrides_for(off) == ["use_dropout=false", "nl=1", "x=0.5"]
    on = {"use_dropout": "True", "nl": "2", "x": 0.5, "p": 0.25, "q": 0.5}
    space.check(on)
    assert [parsed(o) for o in space.overrides_for(on)] == [True, 2, 0.5, 0.25, 0.5]
    assert space.describe()[:2] == ["use_dropout: conditional [false, true]", "nl: conditional [1, 2]"]


# --------------------------------------------------------------------------------------------
# Round trips: every value written as an override reads back as exactly that value
# --------------------------------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "  padded  ",
    "a b",
    "a,b",
    "a=b",
    "a:b",
    "[1, 2]",
    "{a: 1}",
    "(x)",
    "f(x, y)",
    "interval(0,1)",
    "choice(a,b)",
    "'",
    '"',
    "it's",
    'say "hi"',
    "\\",
    "a\\",
    "a\\\\",
    "\\'",
    "a\\'b",
    "\\\\'",
    "'\\",
    '\\"',
    "1",
    "-1",
    "+1",
    "1.5",
    "1e3",
    "1_000",
    "0x10",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "-0",
    "true",
    "False",
    "TRUE",
    "null",
    "None",
    "~",
    "~x",
    "+x",
    "#x",
    "$x",
    "${x}",
    "a${x}b",
    "${",
    "\t",
    "x\n",
    "é",
    "日本",
    "🙂",
]
SPECIAL_CHARS = list(" ,'\"\\=[](){}:$@#~+-.*?!%^&|<>/\t\naeE019")
text_values = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(),
    st.text(alphabet=st.sampled_from(SPECIAL_CHARS)),
    st.builds(
        lambda head, body, tail: head + body + tail,
        st.sampled_from(["", " ", "  ", "\\", "'", '"', "\t"]),
        st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=6)),
        st.sampled_from(["", " ", "\\", "\\\\", "'", '"', "\\'", "\n"]),
    ),
)
override_values = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(),
    st.sampled_from([math.inf, -math.inf, math.nan, -0.0, 0.0, 5e-324, 1.7976931348623157e308]),
    st.booleans(),
    st.none(),
    text_values,
)


@settings(max_examples=300, deadline=None)
@given(override_values)
def test_format_override_round_trips_through_hydra(value: Any) -> None:
    override = format_override("key", value)
    parsed_override = PARSER.parse_override(override)
    assert not parsed_override.is_sweep_override()
    assert parsed_override.key_or_group == "key"
    assert same(parsed_override.value(), value), (value, override)


@pytest.mark.parametrize("value", TRICKY_TEXT, ids=repr)
def test_format_override_round_trips_tricky_text(value: str) -> None:
    assert same(parsed(format_override("key", value)), value)


category_names = text_values.filter(lambda s: "${" not in s)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(category_names, category_names.map(lambda s: {"name": s})),
        min_size=2,
        max_size=5,
        unique_by=lambda v: v["name"] if isinstance(v, dict) else v,
    )
)
def test_native_categorical_names_round_trip(values: list[Any]) -> None:
    space = build_space({"opt": {"type": "categorical", "categorical_values": values}})
    names = [v["name"] if isinstance(v, dict) else v for v in values]
    assert space.to_sigopt()["parameters"][0]["categorical_values"] == [{"name": n} for n in names]
    for name in names:
        space.check({"opt": name})
        [override] = space.overrides_for({"opt": name})
        assert same(parsed(override), name), (name, override)


@settings(max_examples=300, deadline=None)
@given(st.builds(lambda a, b: a + "${" + b, text_values, text_values), category_names, st.booleans())
def test_native_categorical_name_with_interpolation_is_refused(bad: str, other: str, as_dict: bool) -> None:
    """Hydra hands '${...}' to OmegaConf as an interpolation, so the app would never see such a name."""
    values: list[Any] = [other, {"name": bad} if as_dict else bad]
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.params\.opt\.categorical_values: .*interpolation"):
        build_space({"opt": {"type": "categorical", "categorical_values": values}})


@pytest.fixture(scope="module")
def double_space() -> Any:
    return build_space({"x": "interval(-1e308, 1e308)", "y": "tag(log, interval(1e-300, 1e300))"})


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-1e308, max_value=1e308, allow_nan=False),
    st.floats(min_value=1e-300, max_value=1e300, allow_nan=False),
)
def test_double_assignments_round_trip_bit_for_bit(double_space: Any, x: float, y: float) -> None:
    assignments = {"x": x, "y": y}
    double_space.check(assignments)
    for override, sent in zip(double_space.overrides_for(assignments), (x, y), strict=True):
        got = parsed(override)
        assert type(got) is float and got.hex() == sent.hex(), (override, sent)


# --------------------------------------------------------------------------------------------
# What the app finally sees (Hydra composes the job's config from the overrides)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("conf")
    (folder / "config.yaml").write_text("opt: null\nlr: 0.0\nother: 5\n")
    return folder


@pytest.mark.parametrize(
    ("params", "assignments", "expected"),
    [
        pytest.param(
            {"opt": {"type": "categorical", "categorical_values": ['it\'s "x"', "a,b \\"]}},
            {"opt": 'it\'s "x"'},
            {"opt": 'it\'s "x"'},
            id="quotes",
        ),
        pytest.param(
            {"opt": {"type": "categorical", "categorical_values": ["a,b \\", "c"]}},
            {"opt": "a,b \\"},
            {"opt": "a,b \\"},
            id="trailing-backslash",
        ),
        pytest.param(
            {"opt": {"type": "categorical", "categorical_values": ["true", "1", " null "]}},
            {"opt": "1"},
            {"opt": "1"},
            id="number-like-text",
        ),
        pytest.param(
            {"opt": {"type": "categorical", "categorical_values": [16, 32]}},
            {"opt": "32"},
            {"opt": 32},
            id="native-int-category",
        ),
        pytest.param({"opt": "choice(1, a, true)"}, {"opt": "true"}, {"opt": True}, id="mixed-choice"),
        pytest.param(
            {"lr": "tag(log, interval(1e-8, 1))"},
            {"lr": 0.1 + 0.2},
            {"lr": 0.30000000000000004},
            id="double-exact",
        ),
    ],
)
def test_app_config_gets_the_values(
    config_dir: Path, params: dict[str, Any], assignments: dict[str, Any], expected: dict[str, Any]
) -> None:
    overrides = build_space(params).overrides_for(assignments)
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose("config", overrides=overrides)
    for key, value in expected.items():
        assert same(cfg[key], value), (overrides, key, cfg[key])


@pytest.mark.parametrize(
    ("start", "stop", "step"),
    [(0, 10, 3), (10, 0, -3), (0, 1, 0.1), (0, 1, 0.25), (-5.5, 5.5, 0.5), (1, 0, -0.3), (0, 0.3, 0.1), (0, 1, 2)],
)
def test_a_range_is_counted_as_hydra_lists_it(start: float, stop: float, step: float) -> None:
    """The count that refuses a grid too long, made without listing it, is the length Hydra lists."""
    listed = list(RangeSweep(start=start, stop=stop, step=step).range())
    assert hydra_range_length(start, stop, step) == len(listed)


def test_a_stepped_grid_of_100000_values_is_taken_and_one_more_refused() -> None:
    assert len(build_space({"x": "range(0, 1, 0.00001)"}).parameters[0].grid or ()) == 100_000
    with pytest.raises(ConfigError, match=r"params\.x: range\(1, 100002, 1\) is a grid of 100,001 values"):
        build_space({"x": "tag(log, range(1, 100002))"})
    with pytest.raises(ConfigError, match=r"params\.x\.step: .* is a grid of 100,002 values"):
        build_space({"x": {"type": "int", "low": 0, "high": 200002, "step": 2}})


def test_a_long_choice_is_summarised_in_its_start_up_line() -> None:
    """A choice of thousands of values (typed, or an Optuna stepped entry translated) was repeated
    whole in the start-up line; the line gives the first values, the last and the count."""
    numbers = ", ".join(str(i) for i in range(3, 3003, 3))
    names = ", ".join(f"n{i}" for i in range(2000))
    space = build_space({"a": f"tag(log, choice({numbers}))", "b": f"choice({names})", "c": "choice(x, y)"})
    a, b, c = space.describe()
    assert a == (
        "a: tag(log, choice(3, 6, 9, ..., 2997, 3000)) (1,000 values) -> double grid of 1000 values "
        "[3, 6, 9, ..., 2997, 3000], log scale"
    )
    assert b == "b: choice(n0, n1, n2, ..., n1998, n1999) (2,000 values) -> categorical of 2000 values " + (
        "[n0, n1, n2, ..., n1998, n1999]"
    )
    assert c == "c: choice(x, y) -> categorical ['x', 'y']"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            [8, 16, 8, 32], {"type": "categorical", "categorical_values": [{"name": n} for n in ["8", "16", "32"]]}
        ),
        pytest.param([0.5, 1], {"type": "categorical", "categorical_values": [{"name": "0.5"}, {"name": "1"}]}),
        pytest.param([4, 4], None, id="one-value-is-fixed"),
        pytest.param(["a", "b"], {"type": "categorical", "categorical_values": [{"name": "a"}, {"name": "b"}]}),
    ],
)
def test_ax_unordered_choice_is_categorical(values: list[Any], expected: dict[str, Any] | None) -> None:
    space = build_space({"n": {"type": "choice", "values": values, "is_ordered": False}, "x": "interval(0,1)"})
    if expected is None:
        assert space.fixed_overrides == ("n=4",)
        return
    assert {k: v for k, v in space.to_sigopt()["parameters"][0].items() if k != "name"} == expected
    first = expected["categorical_values"][0]["name"]
    assert same(parsed(space.overrides_for({"n": first, "x": 0.5})[0]), values[0])


def test_messages_about_typed_conditionals_show_the_values_as_declared() -> None:
    """Refusals named the engine's strings ('False', ['1', '2']), not what the user wrote."""
    from hydra_sigopt.validation import check_space

    p_on = {"type": "double", "bounds": {"min": 0, "max": 1}, "conditions": {"use_dropout": [True]}}
    with pytest.raises(ConfigError, match=r"no parameter is switched on by false; SigOpt needs one"):
        check_space(build_space({"p": p_on}, conditionals=[{"name": "use_dropout", "values": [False, True]}]))
    q_on = {"type": "double", "bounds": {"min": 0, "max": 1}, "conditions": {"nl": [3]}}
    with pytest.raises(
        ConfigError, match=r"values \['3'\] are not values of conditional 'nl'; valid values are \[1, 2\]"
    ):
        build_space({"q": q_on}, conditionals=[{"name": "nl", "values": [1, 2]}])
