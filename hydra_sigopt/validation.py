"""What SigOpt's engine would refuse (or fail on later), checked on the built space before anything exists.

The engine checks these only when the experiment is created, or at the first suggestion, and
then raises a raw ``SigOptException``; here each becomes a :class:`ConfigError` naming the key.
Limits were measured on sigoptlite 0.1.2 (tests/test_validation.py creates the experiment).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from hydra_sigopt.backends.server_limits import name_problem
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.metrics import is_finite_number
from hydra_sigopt.overrides import format_value
from hydra_sigopt.space import Parameter, SearchSpace, conditional_value, shown_conditional_value

#: SigOpt names (parameters, conditionals) are 1 to 100 characters.
MAX_NAME_LENGTH = 100
#: Largest bound magnitude of a double: the engine's GP squares distances, and from about 1e155 on
#: they overflow ("array must not contain infs or NaNs"; at 1e308 even random points fail).
MAX_DOUBLE_MAGNITUDE = 1e150
#: Largest bound magnitude of an int: beyond 2**63 the engine fails; past 2**53 floats lose integers.
MAX_INT_MAGNITUDE = 2**53
PRIOR_FIELDS = {"normal": ("mean", "scale"), "beta": ("shape_a", "shape_b")}


def check_space(space: SearchSpace) -> None:
    """Raise :class:`ConfigError` for anything in ``space`` the engine would refuse."""
    for c in space.conditionals:
        _check_name(f"conditionals.{c['name']}", str(c["name"]))
    _check_conditional_values(space)
    by_name = {p.name: p for p in space.parameters}
    for p in space.parameters:
        where = f"params.{p.name}"
        _check_name(where, p.name)
        if p.name.startswith(("hydra/", "hydra.")):
            raise ConfigError(where, "sweeps Hydra's own config; trials cannot change it (only the app's config)")
        _check_magnitudes(where, p)
        if p.prior is not None:
            _check_prior(f"{where}.prior", p)
    for i, constraint in enumerate(space.linear_constraints):
        _check_constraint(f"linear_constraints[{i}]", constraint, by_name)


def check_experiment_name(name: str) -> None:
    """SigOpt's limit on experiment names, on both backends (the default name is the app's job name)."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError("name", f"{name[:20]!r}... {problem}; set hydra.sweeper.name to a shorter name")


def _check_name(where: str, name: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(where, f"the name is {len(name)} characters long; SigOpt allows at most {MAX_NAME_LENGTH}")


def _check_conditional_values(space: SearchSpace) -> None:
    """Every combination of conditional values switches on some parameter: sigoptlite's rule
    (``check_all_conditional_values_satisfied_for_experiment``), which refused the experiment with a
    traceback. A parameter without a condition on a conditional is on for all its values."""
    if not space.conditionals:
        return
    satisfied: set[tuple[str, ...]] = set()
    for p in space.parameters:
        conditions = p.conditions or {}
        choices = [conditions.get(c["name"], c["values"]) for c in space.conditionals]
        satisfied.update(itertools.product(*(tuple(str(v) for v in vs) for vs in choices)))
    every = itertools.product(*(tuple(str(v) for v in c["values"]) for c in space.conditionals))
    unused = [combination for combination in every if combination not in satisfied]
    if unused:
        _refuse_unused(space.conditionals, unused)


def _refuse_unused(conditionals: Sequence[Mapping[str, Any]], unused: Sequence[tuple[str, ...]]) -> None:
    """Name a conditional's values that switch on no parameter whatever the others are, else the
    combinations (with several conditionals, each value may be used and a combination not)."""
    unused_set = set(unused)
    for i, c in enumerate(conditionals):
        others = [tuple(str(v) for v in o["values"]) for j, o in enumerate(conditionals) if j != i]
        values = [
            str(v)
            for v in c["values"]
            if all((*rest[:i], str(v), *rest[i:]) in unused_set for rest in itertools.product(*others))
        ]
        if values:
            raise ConfigError(
                f"conditionals[{i}].values",
                f"no parameter is switched on by {', '.join(shown_conditional_value(c, v) for v in values)}; "
                "SigOpt needs one for each value: "
                f"name it in some parameter's conditions: {{{c['name']}: [...]}}, or remove it",
            )
    shown = [_combination(conditionals, combination) for combination in unused[:3]]
    more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
    raise ConfigError(
        "conditionals",
        f"no parameter is switched on by {', '.join(shown)}{more}; SigOpt needs one for every combination of values",
    )


def _combination(conditionals: Sequence[Mapping[str, Any]], engine_values: Sequence[str]) -> str:
    """``(o=sgd, dropout=false)``: one value of each conditional, as declared."""
    pairs = (f"{c['name']}={format_value(conditional_value(c, v))}" for c, v in zip(conditionals, engine_values))
    return "(" + ", ".join(pairs) + ")"


def _check_magnitudes(where: str, p: Parameter) -> None:
    """Bounds and grid values within what the engine computes with."""
    limit = MAX_INT_MAGNITUDE if p.type == "int" else MAX_DOUBLE_MAGNITUDE
    values = list(p.bounds or ()) + list(p.grid or ())
    if any(abs(v) > limit for v in values):
        label = "2**53" if p.type == "int" else f"{limit:g}"
        raise ConfigError(
            where, f"values up to {max(abs(v) for v in values):g} in magnitude; the engine handles at most {label}"
        )


def _check_prior(where: str, p: Parameter) -> None:
    """A normal prior (mean inside the bounds, scale > 0) or a beta prior (shapes > 0) on a double."""
    assert p.prior is not None
    name = p.prior.get("name")
    if name not in PRIOR_FIELDS:
        raise ConfigError(f"{where}.name", f"got {name!r}; valid priors are {list(PRIOR_FIELDS)}")
    if p.type != "double" or p.grid is not None or p.log:
        raise ConfigError(where, "priors apply to double parameters with bounds, without grid or log transformation")
    for field in PRIOR_FIELDS[str(name)]:
        _check_prior_number(f"{where}.{field}", p.prior.get(field), positive=field != "mean")
    mean = p.prior["mean"] if name == "normal" else None
    if mean is not None and p.bounds is not None and not p.bounds[0] <= mean <= p.bounds[1]:
        raise ConfigError(f"{where}.mean", f"{mean} lies outside the bounds [{p.bounds[0]}, {p.bounds[1]}]")


def _check_prior_number(where: str, value: Any, positive: bool) -> None:
    if not is_finite_number(value):
        raise ConfigError(where, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(where, f"expected a number > 0, got {value!r}")


def _check_constraint(where: str, constraint: Mapping[str, Any], parameters: Mapping[str, Parameter]) -> None:
    """Terms over two or more distinct plain parameters of one numeric type, satisfiable in the bounds."""
    terms = constraint["terms"]
    for j, term in enumerate(terms):
        weight = term.get("weight")
        if not is_finite_number(weight):
            raise ConfigError(f"{where}.terms[{j}].weight", f"expected a finite number, got {weight!r}")
        _check_constrained_parameter(f"{where}.terms[{j}]", parameters[term["name"]])
    if all(term["weight"] == 0 for term in terms):
        # The engine scales the constraint by its weights: it divided by zero (a warning) and went on.
        raise ConfigError(f"{where}.terms", "every weight is 0, so the constraint constrains nothing; give a weight")
    names = [t["name"] for t in terms]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ConfigError(f"{where}.terms", f"expected two or more distinct parameters, got {names}")
    types = {parameters[n].type for n in names}
    if len(types) > 1:
        raise ConfigError(f"{where}.terms", f"mixes int and double parameters {names}; use one type only")
    _check_feasible(where, constraint, parameters)


def _check_constrained_parameter(where: str, p: Parameter) -> None:
    if p.type not in ("double", "int") or p.rounds_to_int:
        raise ConfigError(where, f"{p.name!r} is {p.type}; linear constraints take double or int parameters")
    if p.grid is not None or p.log or p.conditions:
        raise ConfigError(
            where, f"{p.name!r} has a grid, a log scale or conditions; linear constraints take plain bounds"
        )


def _check_feasible(where: str, constraint: Mapping[str, Any], parameters: Mapping[str, Parameter]) -> None:
    """Some point strictly inside the bounds box must satisfy the constraint (the engine needs one)."""
    low = high = 0.0
    for term in constraint["terms"]:
        bounds = parameters[term["name"]].bounds
        assert bounds is not None
        ends = (term["weight"] * bounds[0], term["weight"] * bounds[1])
        low, high = low + min(ends), high + max(ends)
    threshold = constraint["threshold"]
    if constraint["type"] == "less_than" and not low < threshold:
        raise ConfigError(
            f"{where}.threshold", f"less_than {threshold:g} cannot hold inside the bounds (the sum is at least {low:g})"
        )
    if constraint["type"] == "greater_than" and not high > threshold:
        raise ConfigError(
            f"{where}.threshold",
            f"greater_than {threshold:g} cannot hold inside the bounds (the sum is at most {high:g})",
        )
