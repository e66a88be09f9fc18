"""What the engine refuses is refused up front, naming the key; each case is checked against sigoptlite itself."""

from __future__ import annotations

from typing import Any

import pytest

from hydra_sigopt.backends.lite import load_local_driver
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import Metric
from hydra_sigopt.settings import parse_settings
from hydra_sigopt.sigopt_client import import_sigopt
from hydra_sigopt.space import build_space

AB = {"a": "interval(0, 1)", "b": "interval(0, 1)"}


def constraint(*names: str, threshold: float = 1, kind: str = "less_than", weight: Any = 1) -> list[dict[str, Any]]:
    return [{"type": kind, "threshold": threshold, "terms": [{"name": n, "weight": weight} for n in names]}]


def double(low: float = 0, high: float = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "double", "bounds": {"min": low, "max": high}, **extra}


OPTIMIZERS = [{"name": "o", "values": ["sgd", "adam", "rms"]}]
SCHEDULES = {"name": "s", "values": ["cos", "step"]}

CASES = [
    pytest.param({"params": {"a" * 101: "interval(0, 1)"}}, "params." + "a" * 101, "at most 100", id="long-name"),
    pytest.param(
        {"params": {**AB, "c": "choice(x, y)"}, "linear_constraints": constraint("a", "c")},
        "linear_constraints[0].terms[1]",
        "'c' is categorical",
        id="constraint-categorical",
    ),
    pytest.param(
        {"params": {**AB, "i": "int(interval(0, 10))"}, "linear_constraints": constraint("a", "i")},
        "linear_constraints[0].terms",
        "mixes int and double",
        id="constraint-mixed",
    ),
    pytest.param(
        {"params": AB, "linear_constraints": constraint("a", "b", weight="1")},
        "linear_constraints[0].terms[0].weight",
        "expected a finite number, got '1'",
        id="weight-text",
    ),
    pytest.param(
        {"params": AB, "linear_constraints": constraint("a")},
        "linear_constraints[0].terms",
        "two or more distinct parameters",
        id="constraint-one-term",
    ),
    pytest.param(
        {"params": {"a": double(1, 2), "b": double(1, 2)}, "linear_constraints": constraint("a", "b", threshold=0)},
        "linear_constraints[0].threshold",
        "less_than 0 cannot hold inside the bounds (the sum is at least 2)",
        id="infeasible",
    ),
    pytest.param(
        {"params": AB, "linear_constraints": constraint("a", "b", threshold=2, kind="greater_than")},
        "linear_constraints[0].threshold",
        "greater_than 2 cannot hold inside the bounds (the sum is at most 2)",
        id="infeasible-on-the-edge",
    ),
    pytest.param(
        {"params": {"a": double(prior={"name": "uniform"})}},
        "params.a.prior.name",
        "valid priors are ['normal', 'beta']",
        id="prior-unknown",
    ),
    pytest.param(
        {"params": {"a": double(prior={"name": "normal", "mean": 2, "scale": 1})}},
        "params.a.prior.mean",
        "2 lies outside the bounds [0.0, 1.0]",
        id="prior-mean-outside",
    ),
    pytest.param(
        {"params": {"a": double(prior={"name": "normal", "mean": 0.5, "scale": 0})}},
        "params.a.prior.scale",
        "expected a number > 0, got 0",
        id="prior-scale-0",
    ),
    pytest.param(
        {"params": {"a": double(prior={"name": "beta", "shape_a": 0, "shape_b": 1})}},
        "params.a.prior.shape_a",
        "expected a number > 0, got 0",
        id="beta-shape-0",
    ),
    pytest.param(
        {"params": {"a": double(prior={"name": "beta", "shape_a": 2})}},
        "params.a.prior.shape_b",
        "expected a finite number, got None",
        id="beta-shape-missing",
    ),
    pytest.param(
        {"params": {"i": {"type": "int", "bounds": {"min": 0, "max": 3}, "prior": {"name": "normal"}}}},
        "params.i.prior",
        "priors apply to double parameters",
        id="prior-on-int",
    ),
    pytest.param(
        {"params": {"a": double(-1e308, 1e308)}},
        "params.a",
        "values up to 1e+308 in magnitude; the engine handles at most 1e+150",
        id="bounds-1e308",
    ),
    pytest.param(
        {"params": {"i": {"type": "int", "bounds": {"min": 0, "max": 2**63}}}},
        "params.i",
        "the engine handles at most 2**53",
        id="int-bounds-2**63",
    ),
    pytest.param({"params": AB, "metrics": [{"name": "m" * 101}]}, "metrics[0].name", "at most 100", id="metric-name"),
    pytest.param({"params": AB, "name": "n" * 101}, "name", "is 101 characters long", id="experiment-name"),
    pytest.param(
        {"params": AB, "metrics": [{"name": "y", "threshold": 0.5}]},
        "metrics[0].threshold",
        "only when two metrics are optimized",
        id="threshold-on-one-optimized",
    ),
    pytest.param(
        {"params": {"a": double(conditions={"o": "sgd"})}, "conditionals": OPTIMIZERS},
        "conditionals[0].values",
        "no parameter is switched on by 'adam', 'rms'",
        id="conditional-values-unused",
    ),
    pytest.param(
        {
            "params": {"a": double(conditions={"o": "sgd", "s": "cos"}), "b": double(conditions={"o": "adam"})},
            "conditionals": [{"name": "o", "values": ["sgd", "adam"]}, SCHEDULES],
        },
        "conditionals",
        "no parameter is switched on by (o=sgd, s=step)",
        id="conditional-combination-unused",
    ),
]


def engine_refusal(raw: dict[str, Any]) -> str | None:
    """What sigoptlite says about the space (creating it, then one suggestion), unvalidated by us."""
    space = build_space(
        raw["params"], conditionals=raw.get("conditionals"), linear_constraints=raw.get("linear_constraints")
    )
    metrics = tuple(Metric(**m) for m in raw.get("metrics", [{"name": "y"}]))  # unchecked: the engine judges
    definition = ExperimentDefinition(raw.get("name", "t"), space, metrics, 10, 1)
    driver = load_local_driver()()
    connection = import_sigopt().Connection(driver=lambda: driver)
    try:
        experiment = connection.experiments().create(**definition.to_sigopt())
        connection.experiments(experiment.id).suggestions().create()
    except Exception as exc:  # SigOptException (the engine's own refusal)
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize(("raw", "key", "says"), CASES)
def test_what_the_engine_refuses_is_a_config_error_naming_the_key(raw: dict[str, Any], key: str, says: str) -> None:
    assert engine_refusal(raw) is not None
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    assert info.value.key == key
    assert str(info.value).startswith(f"hydra.sweeper.{key}: "), str(info.value)
    assert says in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"params": AB, "linear_constraints": constraint("a", "b", threshold=1.5)}, id="double-constraint"),
        pytest.param(
            {
                "params": {"i": "int(interval(0, 10))", "j": "int(interval(0, 10))"},
                "linear_constraints": constraint("i", "j", threshold=5),
            },
            id="int-constraint",
        ),
        pytest.param({"params": {"a": double(prior={"name": "beta", "shape_a": 2, "shape_b": 5})}}, id="beta-prior"),
        pytest.param({"params": {"a": double(-1e150, 1e150)}}, id="bounds-at-the-limit"),
        pytest.param({"params": {"a" * 100: "interval(0, 1)"}}, id="name-of-100"),
        pytest.param({"params": AB, "metrics": [{"name": "m" * 100}], "name": "n" * 100}, id="names-of-100"),
        pytest.param(
            {"params": AB, "metrics": [{"name": "y", "threshold": 0.5}, {"name": "z", "threshold": 1}]},
            id="thresholds-on-two-optimized",
        ),
        pytest.param(  # an unconditioned parameter is on for every value
            {"params": {"a": double(conditions={"o": "sgd"}), "b": double()}, "conditionals": OPTIMIZERS},
            id="conditional-values-used-by-an-unconditioned-parameter",
        ),
        pytest.param(  # each value of o is used, whatever s is
            {
                "params": {"a": double(conditions={"o": "sgd"}), "b": double(conditions={"o": "adam"})},
                "conditionals": [{"name": "o", "values": ["sgd", "adam"]}, SCHEDULES],
            },
            id="every-combination-used",
        ),
    ],
)
def test_what_the_engine_accepts_passes(raw: dict[str, Any]) -> None:
    assert engine_refusal(raw) is None
    parse_settings(raw)
