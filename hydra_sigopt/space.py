"""The search space: Hydra override grammar and SigOpt-native dicts in, SigOpt parameters out.

Going the other way, :meth:`SearchSpace.overrides_for` turns a SigOpt suggestion back into
Hydra override strings that Hydra's parser reads back to exactly the suggested values.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.grids import check_grid_length, hydra_range_length
from hydra_sigopt.overrides import bare_key, format_override, format_value, overrides_parser
from hydra_sigopt.space_dialects import translate_peer_spec

logger = logging.getLogger("hydra_sigopt")

PARAMETER_TYPES = ("double", "int", "categorical")
NATIVE_KEYS = ("type", "bounds", "transformation", "grid", "prior", "categorical_values", "conditions")
TRANSFORMATIONS = ("none", "log")
SUPPORTED_TAGS = ("log", "int", "ordered")
# Relative slack when checking a suggested double against its bounds: engines round-trip through
# their own transforms (log/exp), so the last bit may differ.
_BOUNDS_SLACK = 1e-9
#: The longest expression the start-up log repeats as written; a longer choice is summarised.
MAX_SOURCE_SHOWN = 160


@dataclass(frozen=True)
class Parameter:
    """One SigOpt parameter and how its assignments map back to a Hydra override."""

    name: str
    type: str
    # The override's key as the user wrote it, with any ``+``/``++`` prefix and ``@package``.
    override_key: str
    bounds: tuple[float, float] | None = None
    log: bool = False
    grid: tuple[Any, ...] | None = None
    # SigOpt categorical names, and the Hydra value each stands for (``choice(1, a, true)``
    # mixes types; SigOpt categories are strings).
    categories: tuple[str, ...] | None = None
    category_values: Mapping[str, Any] = field(default_factory=dict)
    prior: Mapping[str, Any] | None = None
    conditions: Mapping[str, Any] | None = None
    # An integer interval on a log scale: SigOpt only log-transforms doubles, so the engine
    # searches a log-scaled double and the override carries it rounded to the nearest int.
    rounds_to_int: bool = False
    # The values the user declared for the grid, in the grid's order, where they are not simply
    # the grid's numbers: ``choice(1, 2.5)`` keeps the int 1, ``tag(log, choice(2, 4))`` its ints.
    declared: tuple[Any, ...] | None = None
    # What the user wrote, for the start-up line that says what each expression became.
    source: str = field(default="", compare=False)

    def to_sigopt(self) -> dict[str, Any]:
        """The SigOpt ``parameters`` entry."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.bounds is not None:
            out["bounds"] = {"min": self.bounds[0], "max": self.bounds[1]}
        if self.log:
            out["transformation"] = "log"
        if self.grid is not None:
            out["grid"] = list(self.grid)
        if self.categories is not None:
            out["categorical_values"] = [{"name": c} for c in self.categories]
        if self.prior is not None:
            out["prior"] = dict(self.prior)
        if self.conditions:
            out["conditions"] = {k: list(v) for k, v in self.conditions.items()}
        return out

    def to_value(self, assignment: Any) -> Any:
        """The Hydra value an engine assignment stands for (a grid value as the user declared it)."""
        if self.type == "categorical":
            return self.category_values.get(str(assignment), assignment)
        if self.grid is not None:
            index = self._grid_index(assignment)
            return self.declared[index] if self.declared is not None else self.snap(assignment)
        if self.rounds_to_int:
            return round(float(assignment))
        if self.type == "int":
            return int(assignment)
        return float(assignment)

    def snap(self, assignment: Any) -> Any:
        """The engine's assignment as the exact grid value (engines return a log grid's
        ``32`` as ``32.00000000000001`` and then refuse it in the observation)."""
        if self.grid is None or isinstance(assignment, bool) or not isinstance(assignment, (int, float)):
            return assignment
        return self.grid[self._grid_index(assignment)]

    def _grid_index(self, assignment: float) -> int:
        """The index of the grid value nearest to ``assignment`` (the grid is sorted)."""
        assert self.grid is not None
        i = bisect.bisect_left(self.grid, assignment)
        candidates = [k for k in (i - 1, i) if 0 <= k < len(self.grid)]
        return min(candidates, key=lambda k: abs(self.grid[k] - assignment))  # type: ignore[index]

    def describe(self) -> str:
        """One line: what the user wrote and the SigOpt parameter it became."""
        names = list(self.categories or ())
        if self.type == "categorical" and len(names) > 8:  # thousands of names would make one huge line
            shape = f"categorical of {len(names)} values {_abbreviated(names)}"
        elif self.type == "categorical":
            shape = f"categorical {names}"
        elif self.grid is not None:
            shape = f"{self.type} grid of {len(self.grid)} values {_abbreviated(self.declared or self.grid)}"
        else:
            low, high = self.bounds or (None, None)
            shape = f"{self.type} in [{low}, {high}]"
        shape += ", log scale" if self.log else ""
        shape += ", rounded to int" if self.rounds_to_int else ""
        if self.prior is not None:  # what the engine believes before any trial: worth seeing it read right
            shape += f", prior {dict(self.prior)}"
        if self.conditions:
            shape += ", only when " + " and ".join(f"{k} in {list(v)}" for k, v in self.conditions.items())
        source = f"{self.source} -> " if self.source else ""
        return f"{self.override_key}: {source}{shape}"

    def check(self, assignment: Any) -> None:
        """Raise ValueError if an engine's assignment lies outside this parameter's space."""
        if self.type == "categorical":
            if self.categories is not None and str(assignment) not in self.categories:
                raise ValueError(f"{self.name}={assignment!r} is not one of {list(self.categories)}")
            return
        if isinstance(assignment, bool) or not isinstance(assignment, (int, float)):
            raise ValueError(f"{self.name}={assignment!r} is not a number")
        if self.type == "int" and not float(assignment).is_integer():
            raise ValueError(f"{self.name}={assignment!r} is not an integer")
        if self.grid is not None:
            if not math.isclose(assignment, self.snap(assignment), rel_tol=_BOUNDS_SLACK):
                raise ValueError(f"{self.name}={assignment!r} is not one of the grid values {list(self.grid)}")
            return
        if self.bounds is not None:
            low, high = self.bounds
            slack = _BOUNDS_SLACK * max(abs(low), abs(high), 1.0)
            if not (low - slack <= assignment <= high + slack):
                raise ValueError(f"{self.name}={assignment!r} is outside the bounds [{low}, {high}]")


@dataclass(frozen=True)
class SearchSpace:
    """Parameters to tune, plus the overrides every trial gets unchanged."""

    parameters: tuple[Parameter, ...]
    fixed_overrides: tuple[str, ...] = ()
    conditionals: tuple[Mapping[str, Any], ...] = ()
    linear_constraints: tuple[Mapping[str, Any], ...] = ()
    #: Those fixed overrides declared in ``hydra.sweeper.params`` (not on the command line): only the
    #: sweep sets them, so the best overrides to paste after a plain ``python train.py`` carry them.
    declared_fixed: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def to_sigopt(self) -> dict[str, Any]:
        """The experiment-create fields that describe the space."""
        out: dict[str, Any] = {"parameters": [p.to_sigopt() for p in self.parameters]}
        if self.conditionals:
            out["conditionals"] = [
                {"name": c["name"], "values": [str(v) for v in c["values"]]} for c in self.conditionals
            ]
        if self.linear_constraints:
            out["linear_constraints"] = [dict(c) for c in self.linear_constraints]
        return out

    def check(self, assignments: Mapping[str, Any]) -> None:
        """Raise ValueError unless the assignments fit the declared space exactly."""
        known = set(self.names) | {c["name"] for c in self.conditionals}
        unknown = sorted(set(assignments) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; the space has {sorted(known)}")
        for c in self.conditionals:
            if c["name"] in assignments and str(assignments[c["name"]]) not in {str(v) for v in c["values"]}:
                raise ValueError(f"conditional {c['name']}={assignments[c['name']]!r} is not one of {c['values']}")
        for p in self.parameters:
            if p.name in assignments:
                p.check(assignments[p.name])
            elif _is_active(p, assignments):
                raise ValueError(f"parameter {p.name} is missing from the assignments")

    def snap(self, assignments: Mapping[str, Any]) -> dict[str, Any]:
        """The assignments with every grid value exactly as declared to the engine (see :meth:`Parameter.snap`)."""
        by_name = {p.name: p for p in self.parameters}
        return {k: by_name[k].snap(v) if k in by_name else v for k, v in assignments.items()}

    def describe(self) -> list[str]:
        """One line per parameter, conditional and linear constraint: what each expression became
        (logged when a sweep starts)."""
        conditionals = [f"{c['name']}: conditional {_declared_values(c)}" for c in self.conditionals]
        constraints = [f"linear constraint: {_linear_constraint(c)}" for c in self.linear_constraints]
        return [*conditionals, *(p.describe() for p in self.parameters), *constraints]

    def overrides_for(self, assignments: Mapping[str, Any]) -> list[str]:
        """Hydra override strings for one suggestion (inactive conditional parameters left out)."""
        out = list(self.fixed_overrides)
        for c in self.conditionals:
            if c["name"] in assignments:
                value = conditional_value(c, assignments[c["name"]])
                out.append(format_override(c.get("override_key", c["name"]), value))
        for p in self.parameters:
            if p.name in assignments:
                out.append(format_override(p.override_key, p.to_value(assignments[p.name])))
        return out


def conditional_value(conditional: Mapping[str, Any], assignment: Any) -> Any:
    """The value the user declared for a conditional's engine value: SigOpt's conditional values
    are strings, so ``values: [false, true]`` is ``'False'``/``'True'`` to the engine and must be
    the boolean again for the app (a string ``'False'`` is truthy)."""
    return conditional.get("declared", {}).get(str(assignment), assignment)


def shown_conditional_value(conditional: Mapping[str, Any], engine_value: str) -> str:
    """A conditional's value as the user declared it, for messages: a name quoted (``'adam'``), a
    boolean or number in Hydra's spelling (``false``, not the engine's ``'False'``)."""
    value = conditional_value(conditional, engine_value)
    return repr(value) if isinstance(value, str) else format_value(value)


def _declared_values(conditional: Mapping[str, Any]) -> str:
    """A conditional's values as the user declared them: ``['sgd', 'adam']``, ``[false, true]``."""
    return "[" + ", ".join(shown_conditional_value(conditional, v) for v in conditional["values"]) + "]"


def _summarised_choice(values: Sequence[Any], tags: set[str]) -> str:
    """A long choice as its first and last values and their count, for the start-up log: a grid
    of 10,000 values written out made a line of 88,988 characters."""
    text = f"choice({_abbreviated(values)[1:-1]})"
    if tags:
        text = f"tag({', '.join(sorted(tags))}, {text})"
    return f"{text} ({len(values):,} values)"


def _abbreviated(values: Sequence[Any]) -> str:
    """A long list as its first and last values."""
    shown = [format_value(v) for v in (values if len(values) <= 8 else [*values[:3], *values[-2:]])]
    return "[" + ", ".join([*shown[:3], "...", *shown[3:]] if len(values) > 8 else shown) + "]"


def _linear_constraint(constraint: Mapping[str, Any]) -> str:
    """``1*a + 1*b <= 1`` for SigOpt's ``{type: less_than, threshold: 1, terms: [...]}``."""
    terms = " + ".join(f"{t.get('weight')}*{t.get('name')}" for t in constraint.get("terms", ()))
    relation = {"less_than": "<=", "greater_than": ">="}.get(str(constraint.get("type")), str(constraint.get("type")))
    return f"{terms} {relation} {constraint.get('threshold')}"


def _is_active(parameter: Parameter, assignments: Mapping[str, Any]) -> bool:
    """Whether a conditional parameter is switched on by the conditionals' assignments."""
    if not parameter.conditions:
        return True
    return all(str(assignments.get(k)) in {str(v) for v in vals} for k, vals in parameter.conditions.items())


# --------------------------------------------------------------------------------------------
# Parsing the space
# --------------------------------------------------------------------------------------------


def _empty_space(replaced: Sequence[str]) -> ConfigError:
    """The refusal of a space left empty: none declared, or every parameter given a value on the
    command line, as when best overrides are pasted after a command whose config turns the sweep on
    (``hparams_search=...`` sets ``hydra.mode: MULTIRUN``): "declare at least one" misled there."""
    if replaced:
        return ConfigError(
            "params",
            f"every parameter of the search space is given a value on the command line ({', '.join(replaced)}), "
            "so there is nothing to search; to run one training with these values, add hydra.mode=RUN "
            "(a config such as hparams_search=... turns the sweep on)",
        )
    return ConfigError(
        "params",
        "the search space is empty; declare at least one parameter, e.g. "
        "params: {lr: 'tag(log, interval(1e-4, 1e-1))'} or a command-line sweep such as lr='interval(0,1)'",
    )


def build_space(
    params: Mapping[str, Any] | None,
    arguments: Sequence[str] = (),
    conditionals: Sequence[Mapping[str, Any]] | None = None,
    linear_constraints: Sequence[Mapping[str, Any]] | None = None,
) -> SearchSpace:
    """Build the space from ``hydra.sweeper.params`` and the command line's overrides.

    Command-line sweeps join the space and replace a ``params`` entry of the same key (as in
    Hydra's Optuna sweeper); command-line overrides that are not sweeps (deletions ``~key``
    included) apply to every trial.
    """
    by_key: dict[str, Parameter | str] = {}
    swept = set()  # the keys params declares as parameters
    for key, spec in (params or {}).items():
        where = f"params.{key}"
        if not isinstance(key, str) or not key:
            raise ConfigError("params", f"parameter names must be non-empty strings, got {key!r}")
        if bare_key(key) in by_key:
            raise ConfigError(where, f"the parameter {bare_key(key)!r} is declared twice (as {key!r} too)")
        by_key[bare_key(key)] = _parse_entry(key, spec, where)
        if isinstance(by_key[bare_key(key)], Parameter):
            swept.add(bare_key(key))
    typed: dict[str, str] = {}  # the command line's keys, and the override that gave each
    for argument in arguments:
        parsed = parse_override(argument, f"command-line override '{argument}'", deletes_allowed=True)
        key = bare_key(parsed if isinstance(parsed, str) else parsed.override_key)
        if key in typed:
            _refuse_a_search_given_twice(key, typed[key], argument, parsed, by_key[key])
        elif key in by_key:
            _say_the_command_line_replaces(key, argument, by_key[key], parsed)
        typed[key] = argument
        by_key[key] = parsed

    parameters = tuple(p for p in by_key.values() if isinstance(p, Parameter))
    fixed = tuple(p for p in by_key.values() if isinstance(p, str))
    if not parameters:
        raise _empty_space(sorted(swept & set(typed)))
    conds = _parse_conditionals(conditionals or [], {p.name for p in parameters})
    for p in parameters:
        _check_conditions(p, conds)
    constraints = _parse_linear_constraints(linear_constraints or [], {p.name: p for p in parameters})
    declared = tuple(p for k, p in by_key.items() if isinstance(p, str) and k not in typed)
    return SearchSpace(parameters, fixed, tuple(conds), tuple(constraints), declared)


def _refuse_a_search_given_twice(
    key: str, first: str, second: str, parsed: Parameter | str, earlier: Parameter | str
) -> None:
    """A key given twice on the command line where either is a search: Hydra's last-wins (kept for
    plain values, ``epochs=1 epochs=3``) silently searched only the last of ``y=choice(16,32)
    y=choice(64,128)``, so a space the user typed was not the one searched."""
    if isinstance(parsed, Parameter) or isinstance(earlier, Parameter):
        raise ConfigError(
            "command line",
            f"{key!r} is given twice, as {first} and as {second}; give it once "
            "(one search, or one value for every trial)",
        )


def _say_the_command_line_replaces(key: str, argument: str, declared: Parameter | str, parsed: Parameter | str) -> None:
    """The command line replaces a ``params`` entry of the same key (as in Hydra's Optuna sweeper);
    said, since ``lr=0.1`` beside ``params: {lr: ...}`` otherwise took lr out of the space unseen."""
    was = declared.source if isinstance(declared, Parameter) else declared.split("=", 1)[-1]
    outcome = f"; {key} is not searched" if isinstance(declared, Parameter) and isinstance(parsed, str) else ""
    logger.info("hydra.sweeper.params.%s: %s on the command line replaces %s%s", key, argument, was, outcome)


def _parse_entry(key: str, spec: Any, where: str) -> Parameter | str:
    """One ``params`` entry: Hydra grammar, a SigOpt-native dict, or another sweeper's form."""
    translated = translate_peer_spec(spec, where)
    if translated is None:
        return _parse_own_entry(key, spec, where)
    parsed = _parse_own_entry(key, translated.grammar, where)
    if isinstance(parsed, Parameter) and not parsed.source:  # a native dict: shown as written for Hydra
        parsed = replace(parsed, source=format_value(translated.grammar))
    # Logged once parsed: a stepped grid's grammar lists thousands of values, its source summarises them.
    shown = parsed.source if isinstance(parsed, Parameter) else parsed
    logger.info("hydra.sweeper.%s: read %s as %s", where, translated.dialect, shown)
    return parsed


def _parse_own_entry(key: str, spec: Any, where: str) -> Parameter | str:
    """One entry in this sweeper's forms: Hydra grammar, a fixed value or a SigOpt-native dict."""
    if isinstance(spec, Mapping):
        return parse_native(key, spec, where)
    if spec is None or isinstance(spec, (str, int, float, bool)):
        text = spec if isinstance(spec, str) else format_value(spec)
        return parse_override(f"{key}={text}", where)
    raise ConfigError(
        where,
        f"got {type(spec).__name__} {spec!r}; expected a Hydra sweep such as 'interval(0, 1)', "
        "'tag(log, interval(1e-4, 1))', 'int(interval(1, 8))', 'choice(a, b)', 'range(1, 10)', "
        f"a list of options, a fixed value, or a SigOpt parameter dict with keys {list(NATIVE_KEYS)}",
    )


def _check_conditions(p: Parameter, conds: Sequence[Mapping[str, Any]]) -> None:
    """Every condition of ``p`` names a declared conditional and some of its values."""
    for cname, values in (p.conditions or {}).items():
        declared = next((c for c in conds if c["name"] == cname), None)
        if declared is None:
            raise ConfigError(
                f"params.{p.name}.conditions",
                f"names the unknown conditional {cname!r}; declared conditionals are "
                f"{[c['name'] for c in conds] or 'none (add them under hydra.sweeper.conditionals)'}",
            )
        bad = [v for v in values if str(v) not in {str(x) for x in declared["values"]}]
        if bad:
            raise ConfigError(
                f"params.{p.name}.conditions.{cname}",
                f"values {bad} are not values of conditional {cname!r}; valid values are {_declared_values(declared)}",
            )


def parse_override(text: str, where: str, deletes_allowed: bool = False) -> Parameter | str:
    """One override string: a :class:`Parameter` if it is a sweep, else the fixed override itself.

    ``deletes_allowed``: a deletion (``~key``) is a fixed override every trial gets (the command
    line); in ``params`` it is refused, since a search space can only set values.
    """
    try:
        override = overrides_parser().parse_override(text)
    except HydraException as exc:
        raise ConfigError(
            where,
            f"cannot parse {text!r} as a Hydra override: {exc}; valid forms are e.g. 'interval(0, 1)', "
            "'tag(log, interval(1e-4, 1))', 'int(interval(1, 8))', 'choice(a, b)', 'range(1, 10)' or a fixed value",
        ) from None
    if override.is_delete() and not deletes_allowed:
        raise ConfigError(where, f"{text!r} deletes a key; a search space can only set values")
    if not override.is_sweep_override():
        return text
    if override.key_or_group.startswith("hydra."):
        raise ConfigError(where, f"{text!r} sweeps a hydra.* setting; only the app's own config can be tuned")
    if override.is_delete():
        raise ConfigError(where, f"{text!r} deletes a key; a search space can only set values")
    return _parameter_from_sweep(override, text, where)


def _parameter_from_sweep(override: Override, text: str, where: str) -> Parameter | str:
    """Map a Hydra sweep (interval, choice, range) to a SigOpt parameter (or a one-value choice to a fixed value)."""
    key = override.get_key_element()
    name = bare_key(key)
    sweep = override.value()
    source = text.split("=", 1)[1] if "=" in text else text
    tags = set(getattr(sweep, "tags", set()) or set())
    unknown_tags = tags - set(SUPPORTED_TAGS)
    if unknown_tags:
        raise ConfigError(
            where,
            f"unknown tag(s) {sorted(unknown_tags)}; valid tags are {list(SUPPORTED_TAGS)} "
            "(log: a log scale; int: integer values; ordered: accepted and ignored, numeric choices are ordered grids)",
        )
    log = "log" in tags
    if isinstance(sweep, IntervalSweep):
        assert sweep.start is not None and sweep.end is not None
        return _interval_parameter(name, key, sweep.start, sweep.end, log, "int" in tags, where, source)
    if isinstance(sweep, RangeSweep):
        return _range_parameter(name, key, sweep, log, where, source)
    if isinstance(sweep, ChoiceSweep):
        parameter = _choice_parameter(name, key, list(sweep.list), log, where, source)
        if isinstance(parameter, Parameter) and len(source) > MAX_SOURCE_SHOWN:
            return replace(parameter, source=_summarised_choice(list(sweep.list), tags))
        return parameter
    if isinstance(sweep, Glob):
        raise ConfigError(where, "glob() is not supported; list the options explicitly with choice(a, b, ...)")
    raise ConfigError(where, f"unsupported sweep {sweep!r}; valid sweeps are interval, choice, range")


def _interval_parameter(
    name: str, key: str, low: float, high: float, log: bool, as_int: bool, where: str, source: str
) -> Parameter:
    """An interval: int bounds where both ends are ints (or ``tag(int, ...)``), else double bounds."""
    is_int = isinstance(low, int) and isinstance(high, int)
    if as_int and not is_int:
        low, high = _whole(low, where, "min"), _whole(high, where, "max")
        is_int = True
    _check_bounds(where, low, high, log)
    if is_int and log:
        return Parameter(
            name, "double", key, bounds=(float(low), float(high)), log=True, rounds_to_int=True, source=source
        )
    bounds = (int(low), int(high)) if is_int else (float(low), float(high))
    return Parameter(name, "int" if is_int else "double", key, bounds=bounds, log=log, source=source)


def _whole(value: float, where: str, label: str) -> int:
    if not float(value).is_integer():
        raise ConfigError(where, f"tag(int, ...) needs whole-number bounds, got {label}={value}")
    return int(value)


def _check_bounds(where: str, low: float, high: float, log: bool) -> None:
    """Reject empty, inverted, non-finite or non-positive log bounds."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(where, f"bounds must be finite numbers, got min={low}, max={high}")
    if low >= high:
        raise ConfigError(where, f"min must be less than max, got min={low}, max={high}")
    if log and low <= 0:
        raise ConfigError(where, f"a log scale needs min > 0, got min={low}")


def _range_parameter(name: str, key: str, sweep: RangeSweep, log: bool, where: str, source: str) -> Parameter | str:
    """``range(start, stop, step)``, stop excluded as in Hydra: a step-1 integer range is an int
    parameter (any length, no grid to build); other ranges list their values as a grid."""
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None
    if step == 0 or (stop - start) / step <= 0:
        raise ConfigError(where, f"range({start}, {stop}, {step}) is empty; it needs start < stop for step > 0")
    if all(isinstance(v, int) for v in (start, stop, step)) and abs(step) == 1 and abs(stop - start) > 1 and not log:
        low, high = (start, stop - 1) if step > 0 else (stop + 1, start)
        return Parameter(name, "int", key, bounds=(low, high), source=source)
    # Counted before listing: range(0, 10, 1e-10) would list 1e11 values, for minutes, in gigabytes.
    written = f"range({format_value(start)}, {format_value(stop)}, {format_value(step)})"
    count = hydra_range_length(start, stop, step)
    check_grid_length(count, where, written, _interval_for(start, stop, step, count, log))
    return _choice_parameter(name, key, list(sweep.range()), log, where, source)


def _interval_for(start: float, stop: float, step: float, count: int, log: bool) -> str:
    """The interval that covers a range's values: what to search in place of a grid too long.
    An int range's last value is its own (the stop is excluded); a float range's, about its stop."""
    whole = all(isinstance(v, int) for v in (start, stop, step))
    end = start + (count - 1) * step if whole else stop
    text = f"interval({format_value(min(start, end))}, {format_value(max(start, end))})"
    text = f"int({text})" if whole else text
    return f"tag(log, {text})" if log else text


def _choice_parameter(name: str, key: str, values: list[Any], log: bool, where: str, source: str) -> Parameter | str:
    """A choice: repeated options count once; a single option is a fixed value, not a search."""
    if not values:
        raise ConfigError(where, "choice() is empty; give at least two options, e.g. choice(a, b)")
    values = _distinct(values)
    if len(values) == 1:
        fixed = format_override(key, values[0])
        logger.info("hydra.sweeper.%s: a choice of one value is the fixed override %s", where, fixed)
        return fixed
    return _parameter_from_values(name, key, values, log, where, source)


def _distinct(values: list[Any]) -> list[Any]:
    """The values without exact repeats (same type and value), in order, in linear time."""
    seen: set[tuple[str, str]] = set()
    out = []
    for v in values:
        identity = (type(v).__name__, format_value(v) if isinstance(v, (list, dict)) else repr(v))
        if identity not in seen:
            seen.add(identity)
            out.append(v)
    return out


def _parameter_from_values(
    name: str, key: str, values: list[Any], log: bool, where: str, source: str = ""
) -> Parameter:
    """Distinct options: a numeric grid where all are numbers, else categorical."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric:
        return _grid_parameter(name, key, values, log, where, source)
    if log:
        raise ConfigError(where, "tag(log, ...) needs numbers; categorical choices have no scale")
    categories = tuple(_category_name(v, where) for v in values)
    if len(set(categories)) != len(categories):
        raise ConfigError(where, f"the options {values} are not distinct once written as text")
    return Parameter(
        name, "categorical", key, categories=categories, category_values=dict(zip(categories, values)), source=source
    )


def _grid_parameter(name: str, key: str, values: list[Any], log: bool, where: str, source: str) -> Parameter:
    """Numbers: an int grid where all are ints (and no log scale), else a double grid that keeps
    each value's declared type for the override."""
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(where, f"grid values must be finite numbers, got {_abbreviated(values)}")
    if log and min(values) <= 0:
        raise ConfigError(where, f"a log scale needs positive values, got min={min(values)}")
    ordered = sorted(values)
    grid = tuple(float(v) for v in ordered)
    if len(set(grid)) != len(grid):
        raise ConfigError(
            where, f"the values {_abbreviated(values)} repeat a number; grid values must be distinct numbers"
        )
    if all(isinstance(v, int) for v in values) and not log:
        return Parameter(name, "int", key, grid=tuple(ordered), source=source)
    declared = None if all(isinstance(v, float) for v in ordered) else tuple(ordered)
    return Parameter(name, "double", key, grid=grid, log=log, declared=declared, source=source)


def _category_name(value: Any, where: str) -> str:
    """SigOpt category names are strings; other options keep their Hydra spelling (``[1,2]``, ``{a:1}``)."""
    if isinstance(value, str):
        return value
    try:
        return format_value(value)
    except TypeError:
        raise ConfigError(
            where,
            f"the option {value!r} cannot be written as a Hydra value; options must be strings, numbers, "
            "booleans, null, lists or dicts",
        ) from None


def _could_be_an_entry(value: Any) -> bool:
    """Whether ``value`` reads as a params entry (``interval(...)``, a list, a dict, null): a dict of
    such is the app's nesting; one of numbers (``{min: 0.001, max: 0.1}``) is a native dict gone wrong."""
    return value is None or isinstance(value, (str, Mapping, Sequence))


def _nested_entry_problem(key: str, spec: Mapping[str, Any]) -> str:
    """A dict without one parameter key is the app's config nesting (``model: {lr: ...}``), which params
    does not read: say how to write it, with its own first entry."""
    inner, value = next(iter(spec.items()))
    try:  # in Hydra's words (null, not None)
        shown = value if isinstance(value, str) else format_value(value)
    except TypeError:
        shown = repr(value)
    return (
        f"a nested dict is not a parameter; write each key with dots, as the app's override: "
        f"{key}.{inner}: {shown} (a SigOpt parameter dict has the keys {list(NATIVE_KEYS)})"
    )


def parse_native(key: str, spec: Mapping[str, Any], where: str) -> Parameter:
    """A SigOpt-native parameter dict (``type``, ``bounds``, ``transformation``, ``grid``, ...)."""
    unknown = sorted(set(spec) - set(NATIVE_KEYS))
    if unknown and len(unknown) == len(spec) and all(_could_be_an_entry(v) for v in spec.values()):
        raise ConfigError(where, _nested_entry_problem(key, spec))
    if unknown:
        raise ConfigError(where, f"unknown key(s) {unknown}; valid keys are {list(NATIVE_KEYS)}")
    ptype = spec.get("type")
    if ptype not in PARAMETER_TYPES:
        raise ConfigError(f"{where}.type", f"got {ptype!r}; valid types are {list(PARAMETER_TYPES)}")
    name = bare_key(key)
    transformation = spec.get("transformation") or "none"
    if transformation not in TRANSFORMATIONS:
        raise ConfigError(
            f"{where}.transformation", f"got {transformation!r}; valid values are {list(TRANSFORMATIONS)}"
        )
    log = transformation == "log"
    conditions = _parse_conditions(spec.get("conditions"), f"{where}.conditions")
    prior = spec.get("prior")
    if prior is not None and not isinstance(prior, Mapping):
        raise ConfigError(f"{where}.prior", "expected a dict such as {name: normal, mean: 0.5, scale: 0.1}")

    if ptype == "categorical":
        raw = spec.get("categorical_values")
        if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) < 2:
            raise ConfigError(f"{where}.categorical_values", "expected a list of at least two names, e.g. [adam, sgd]")
        names = [
            str(v["name"]) if isinstance(v, Mapping) else _category_name(v, f"{where}.categorical_values") for v in raw
        ]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.categorical_values", f"names must be distinct, got {names}")
        if any("${" in n for n in names):
            # Hydra hands '${...}' to OmegaConf as an interpolation: the app would not get the name.
            raise ConfigError(
                f"{where}.categorical_values",
                f"names must not contain '${{' (Hydra reads it as an interpolation), got {names}",
            )
        # Names written as numbers or booleans give the app those values, as in choice(16, 32).
        typed = {n: v for n, v in zip(names, raw) if not isinstance(v, (Mapping, str))}
        if log or prior or spec.get("bounds") is not None or spec.get("grid") is not None:
            raise ConfigError(where, "a categorical parameter takes only categorical_values and conditions")
        return Parameter(
            name, "categorical", key, categories=tuple(names), category_values=typed, conditions=conditions
        )

    if log and ptype != "double":
        raise ConfigError(f"{where}.transformation", "the log transformation applies to type double only")
    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, Sequence) or isinstance(grid, str) or len(grid) < 2:
            raise ConfigError(f"{where}.grid", "expected a list of at least two numbers")
        p = _parameter_from_values(name, key, list(grid), log, f"{where}.grid")
        if ptype == "int" and p.type != "int":
            raise ConfigError(f"{where}.grid", f"type int needs integer grid values, got {list(grid)}")
        grid_values = tuple(float(v) for v in p.grid or ()) if ptype == "double" else p.grid
        return Parameter(name, ptype, key, grid=grid_values, log=log, conditions=conditions)
    bounds = spec.get("bounds")
    if not isinstance(bounds, Mapping) or "min" not in bounds or "max" not in bounds:
        raise ConfigError(f"{where}.bounds", "expected {min: <number>, max: <number>} (or give a grid)")
    low, high = bounds["min"], bounds["max"]
    for label, v in (("min", low), ("max", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}.bounds.{label}", f"expected a number, got {v!r}")
        if ptype == "int" and float(v) != int(v):
            raise ConfigError(f"{where}.bounds.{label}", f"type int needs integer bounds, got {v!r}")
    _check_bounds(f"{where}.bounds", low, high, log)
    typed_bounds: tuple[float, float] = (int(low), int(high)) if ptype == "int" else (float(low), float(high))
    return Parameter(name, ptype, key, bounds=typed_bounds, log=log, prior=prior, conditions=conditions)


def _parse_conditions(raw: Any, where: str) -> Mapping[str, tuple[str, ...]] | None:
    """``conditions: {conditional_name: [values]}``; a single value may be given bare."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "expected a dict {conditional_name: [values...]}")
    out: dict[str, tuple[str, ...]] = {}
    for cname, values in raw.items():
        if isinstance(values, (str, int, float, bool)):
            values = [values]
        out[str(cname)] = tuple(str(v) for v in values)
    return out


def _parse_conditionals(raw: Sequence[Mapping[str, Any]], parameter_names: set[str]) -> list[dict[str, Any]]:
    """Experiment-level conditionals: ``[{name: optimizer, values: [sgd, adam]}]``."""
    out: list[dict[str, Any]] = []
    for i, c in enumerate(raw):
        where = f"conditionals[{i}]"
        if not isinstance(c, Mapping) or "name" not in c or "values" not in c:
            raise ConfigError(where, "expected {name: <conditional name>, values: [<at least two values>]}")
        name = str(c["name"])
        if not isinstance(c["values"], Sequence) or isinstance(c["values"], str):
            raise ConfigError(f"{where}.values", f"expected a list of at least two values, got {c['values']!r}")
        # The engine's values are strings; each keeps the value it stands for, with its type.
        declared = {str(v): v for v in c["values"]}
        values = list(declared)
        if len(values) < 2 or len(values) != len(c["values"]):
            raise ConfigError(f"{where}.values", f"expected at least two distinct values, got {list(c['values'])}")
        if name in parameter_names or any(o["name"] == name for o in out):
            raise ConfigError(f"{where}.name", f"{name!r} is already the name of a parameter or conditional")
        out.append({"name": name, "values": values, "declared": declared})
    return out


def _parse_linear_constraints(
    raw: Sequence[Mapping[str, Any]], parameters: Mapping[str, Parameter]
) -> list[dict[str, Any]]:
    """``[{type: greater_than|less_than, threshold: x, terms: [{name, weight}]}]`` over double parameters."""
    out: list[dict[str, Any]] = []
    for i, c in enumerate(raw):
        where = f"linear_constraints[{i}]"
        if not isinstance(c, Mapping) or c.get("type") not in ("greater_than", "less_than"):
            raise ConfigError(f"{where}.type", "valid types are ['greater_than', 'less_than']")
        terms = c.get("terms")
        if not isinstance(terms, Sequence) or not terms:
            raise ConfigError(f"{where}.terms", "expected a list of {name: <parameter>, weight: <number>}")
        for t in terms:
            tname = t.get("name") if isinstance(t, Mapping) else None
            if tname not in parameters:
                raise ConfigError(
                    f"{where}.terms", f"names the unknown parameter {tname!r}; known: {sorted(parameters)}"
                )
        threshold = c.get("threshold", 0.0)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ConfigError(f"{where}.threshold", f"expected a finite number, got {threshold!r}")
        out.append({"type": c["type"], "threshold": float(threshold), "terms": [dict(t) for t in terms]})
    return out
