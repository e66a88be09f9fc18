"""Every search-space form users bring (Hydra's grammar, the Optuna/Ax/Nevergrad sweepers' forms),
through a real sweep: the SigOpt parameter it became, the override each trial got from Hydra, and
the value the app received."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import AppRun, run_example
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_sigopt.journal import Journal

pytestmark = pytest.mark.slow

APP = """
import json
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg):
    seen = OmegaConf.to_container(cfg, resolve=True)
    seen["has_drop_me"] = "drop_me" in cfg
    seen["job_num"] = HydraConfig.get().job.num
    with open(cfg.out, "a") as f:
        f.write(json.dumps(seen) + "\\n")
    return float(sum(map(ord, json.dumps(seen, sort_keys=True))) % 1000)

if __name__ == "__main__":
    main()
"""


def numbers(*allowed: Any) -> Any:
    """The app got exactly one of these values, with its type (1 is not 1.0)."""
    return lambda v: any(type(v) is type(a) and v == a for a in allowed)


def within(kind: type, low: float, high: float) -> Any:
    return lambda v: type(v) is kind and low <= v <= high


def one_of(*texts: str) -> str:
    """The override values a trial may get, written exactly (``4``, not ``4.0``)."""
    return "(" + "|".join(re.escape(t) for t in texts) + ")"


# A continuous value as the sweeper writes it (repr: 0.25, 1e-05, 3.5e-05); an int has no point.
FLOAT = r"-?(\d+\.\d+(e-\d+)?|\d+e-\d+)"
INT = r"-?\d+"
HALF_STEPS = [-5.5 + 0.5 * i for i in range(22)]  # Hydra's range excludes its stop: 5.0 is the last value
EVEN = list(range(0, 100000, 2))


# key, expression in hydra.sweeper.params, the SigOpt parameter (without name), what the app may get,
# and the override's value as each trial got it (a regex matched in full after "key=")
FORMS: list[tuple[str, Any, dict[str, Any], Any, str]] = [
    (
        "f_interval",
        "interval(0, 1)",
        {"type": "double", "bounds": {"min": 0.0, "max": 1.0}},
        within(float, 0, 1),
        FLOAT,
    ),
    (
        "f_log",
        "tag(log, interval(1e-5, 1e-1))",
        {"type": "double", "bounds": {"min": 1e-5, "max": 0.1}, "transformation": "log"},
        within(float, 1e-5, 0.1),
        FLOAT,
    ),
    ("f_int", "int(interval(1, 8))", {"type": "int", "bounds": {"min": 1, "max": 8}}, within(int, 1, 8), INT),
    (
        "f_log_int",
        "tag(log, int(interval(1, 1024)))",
        {"type": "double", "bounds": {"min": 1.0, "max": 1024.0}, "transformation": "log"},
        within(int, 1, 1024),
        INT,
    ),
    (
        "f_int_grid",
        "choice(16, 32, 64)",
        {"type": "int", "grid": [16, 32, 64]},
        numbers(16, 32, 64),
        one_of("16", "32", "64"),
    ),
    ("f_mixed_numbers", "choice(1, 2.5)", {"type": "double", "grid": [1.0, 2.5]}, numbers(1, 2.5), one_of("1", "2.5")),
    (
        "f_log_int_grid",
        "tag(log, choice(2, 4, 8, 32))",
        {"type": "double", "grid": [2.0, 4.0, 8.0, 32.0], "transformation": "log"},
        numbers(2, 4, 8, 32),
        one_of("2", "4", "8", "32"),
    ),
    (
        "f_log_int_grid_tight",  # written exactly as in the issue
        "tag(log, choice(2,4,8))",
        {"type": "double", "grid": [2.0, 4.0, 8.0], "transformation": "log"},
        numbers(2, 4, 8),
        one_of("2", "4", "8"),
    ),
    (
        "f_log_grid",
        "tag(log, choice(0.001, 0.003, 0.01))",
        {"type": "double", "grid": [0.001, 0.003, 0.01], "transformation": "log"},
        numbers(0.001, 0.003, 0.01),
        one_of("0.001", "0.003", "0.01"),
    ),
    (
        "f_categorical",
        "choice(adam, sgd)",
        {"type": "categorical", "categorical_values": [{"name": "adam"}, {"name": "sgd"}]},
        numbers("adam", "sgd"),
        one_of("adam", "sgd"),
    ),
    (
        "f_mixed",
        "choice(1, a, true)",
        {"type": "categorical", "categorical_values": [{"name": "1"}, {"name": "a"}, {"name": "true"}]},
        numbers(1, "a", True),
        one_of("1", "a", "true"),
    ),
    (
        "f_range",
        "range(1, 5)",
        {"type": "int", "bounds": {"min": 1, "max": 4}},
        within(int, 1, 4),
        one_of("1", "2", "3", "4"),
    ),
    (
        "f_big_range",
        "range(0, 100000)",
        {"type": "int", "bounds": {"min": 0, "max": 99999}},
        within(int, 0, 99999),
        INT,
    ),
    (
        "f_big_stepped_range",  # a 50k-value grid: built in linear time (quadratic took 21.8 s for 40k values)
        "range(0, 100000, 2)",
        {"type": "int", "grid": EVEN},
        lambda v: type(v) is int and 0 <= v < 100000 and v % 2 == 0,
        r"\d*[02468]",
    ),
    (
        "f_float_range",
        "range(0, 1, 0.25)",
        {"type": "double", "grid": [0.0, 0.25, 0.5, 0.75]},
        numbers(0.0, 0.25, 0.5, 0.75),
        one_of("0.0", "0.25", "0.5", "0.75"),
    ),
    (
        "f_optuna_range",  # Optuna's flagship; Optuna's range includes 5.5, Hydra's and ours stop at 5.0
        "range(-5.5, 5.5, step=0.5)",
        {"type": "double", "grid": HALF_STEPS},
        numbers(*HALF_STEPS),
        one_of(*(repr(v) for v in HALF_STEPS)),
    ),
    (
        "f_lists",
        "choice([1,2], [3,4])",
        {"type": "categorical", "categorical_values": [{"name": "[1,2]"}, {"name": "[3,4]"}]},
        numbers([1, 2], [3, 4]),
        one_of("[1,2]", "[3,4]"),
    ),
    (
        "f_dicts",
        "choice({a:1}, {a:2})",
        {"type": "categorical", "categorical_values": [{"name": "{a:1}"}, {"name": "{a:2}"}]},
        numbers({"a": 1}, {"a": 2}),
        one_of("{a:1}", "{a:2}"),
    ),
    (
        "f_repeated",
        "choice(adam, adam, sgd)",
        {"type": "categorical", "categorical_values": [{"name": "adam"}, {"name": "sgd"}]},
        numbers("adam", "sgd"),
        one_of("adam", "sgd"),
    ),
    (
        "f_ordered",
        "tag(ordered, choice(1, 2, 3))",
        {"type": "int", "grid": [1, 2, 3]},
        numbers(1, 2, 3),
        one_of("1", "2", "3"),
    ),
    ("f_int_tag", "tag(int, interval(1, 9))", {"type": "int", "bounds": {"min": 1, "max": 9}}, within(int, 1, 9), INT),
    (
        "f_ax_range",
        {"type": "range", "bounds": [0.001, 0.1], "log_scale": True},
        {"type": "double", "bounds": {"min": 0.001, "max": 0.1}, "transformation": "log"},
        within(float, 0.001, 0.1),
        FLOAT,
    ),
    (
        "f_ax_int",  # value_type: int makes float bounds an int range
        {"type": "range", "bounds": [1.0, 64.0], "value_type": "int"},
        {"type": "int", "bounds": {"min": 1, "max": 64}},
        within(int, 1, 64),
        INT,
    ),
    (
        "f_ax_choice",
        {"type": "choice", "values": [8, 16]},
        {"type": "int", "grid": [8, 16]},
        numbers(8, 16),
        one_of("8", "16"),
    ),
    (
        "f_nevergrad",
        {"lower": 1, "upper": 5, "integer": True},
        {"type": "int", "bounds": {"min": 1, "max": 5}},
        within(int, 1, 5),
        INT,
    ),
    (
        "f_nevergrad_log",
        {"lower": 0.001, "upper": 1.0, "log": True},
        {"type": "double", "bounds": {"min": 0.001, "max": 1.0}, "transformation": "log"},
        within(float, 0.001, 1.0),
        FLOAT,
    ),
    (
        "f_list",
        ["relu", "gelu"],
        {"type": "categorical", "categorical_values": [{"name": "relu"}, {"name": "gelu"}]},
        numbers("relu", "gelu"),
        one_of("relu", "gelu"),
    ),
    (
        "f_optuna_step",
        {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5},
        {"type": "double", "grid": [0.0, 0.5, 1.0]},
        numbers(0.0, 0.5, 1.0),
        one_of("0.0", "0.5", "1.0"),
    ),
    (
        "f_optuna_log",
        {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        {"type": "double", "bounds": {"min": 1e-5, "max": 0.1}, "transformation": "log"},
        within(float, 1e-5, 0.1),
        FLOAT,
    ),
    (
        "f_optuna_categorical",
        {"type": "categorical", "choices": ["x", "y"]},
        {"type": "categorical", "categorical_values": [{"name": "x"}, {"name": "y"}]},
        numbers("x", "y"),
        one_of("x", "y"),
    ),
]
FIXED = {"f_one_choice": ("choice(solo)", "solo"), "f_ax_fixed": ({"type": "fixed", "value": 3}, 3)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]], Path]:
    """One real sweep over every form at once; what the app saw in each trial, with the overrides
    Hydra gave that trial (its job folder's .hydra/overrides.yaml) under "overrides"."""
    workdir = tmp_path_factory.mktemp("grammar")
    params = {key: expression for key, expression, _, _, _ in FORMS}
    params.update({key: expression for key, (expression, _) in FIXED.items()})
    params["+f_new_key"] = "interval(0, 1)"
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        **{key: None for key in params if not key.startswith("+")},
        "drop_me": 1,
        "f_cli": None,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {"sweeper": {"observation_budget": 5, "params": params}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "app.py").write_text(APP)
    run = run_example(workdir, "~drop_me", "f_cli=choice(a,b)", app=workdir / "app.py").assert_ok()
    seen = [json.loads(line) for line in (workdir / "seen.jsonl").read_text().splitlines()]
    for trial in seen:
        job_dir = run.sweep_dir / str(trial["job_num"])
        trial["overrides"] = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    return run, seen, run.sweep_dir


def override_of(trial: dict[str, Any], key: str) -> str:
    """The one override of ``key`` (``key=...``, ``+key=...``) the trial got."""
    mine = [o for o in trial["overrides"] if o.split("=", 1)[0].lstrip("+~") == key.lstrip("+")]
    assert len(mine) == 1, trial["overrides"]
    return str(mine[0])


def run_app_with(workdir: Path, config: dict[str, Any]) -> AppRun:
    """The recording app (APP) swept with ``config`` as its config.yaml; it finished."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "app.py").write_text(APP)
    return run_example(workdir, app=workdir / "app.py").assert_ok()


def declared_parameters(run: AppRun) -> dict[str, Any]:
    """The parameters as the journal declares them to the engine, by name."""
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        return {p["name"]: p for p in journal.meta()["identity"]["parameters"]}


def test_every_trial_ran_and_completed(sweep: Any) -> None:
    run, seen, _ = sweep
    assert len(seen) == 5
    assert [t["state"] for t in run.trials] == ["completed"] * 5
    assert sorted(t["job_num"] for t in seen) == list(range(5))


@pytest.mark.parametrize(("key", "expression", "parameter", "accepts", "override"), FORMS, ids=[f[0] for f in FORMS])
def test_the_form_becomes_its_sigopt_parameter_its_override_and_the_apps_value(
    sweep: Any, key: str, expression: Any, parameter: dict[str, Any], accepts: Any, override: str
) -> None:
    _, seen, sweep_dir = sweep
    with Journal.open(sweep_dir, readonly=True) as journal:
        declared = {p["name"]: p for p in journal.meta()["identity"]["parameters"]}
    assert json.dumps(declared[key], sort_keys=True) == json.dumps({"name": key, **parameter}, sort_keys=True)
    got = [trial[key] for trial in seen]
    assert all(accepts(v) for v in got), got
    texts = [override_of(trial, key) for trial in seen]
    assert all(re.fullmatch(f"{re.escape(key)}={override}", t) for t in texts), texts
    # The override is what the app got: Hydra's parser reads it back as that value, with its type.
    parser = OverridesParser.create()
    back = [parser.parse_override(t).value() for t in texts]
    assert [json.dumps(v) for v in back] == [json.dumps(v) for v in got], (texts, got)


def test_one_value_choices_and_fixed_forms_are_fixed_overrides(sweep: Any) -> None:
    _, seen, _ = sweep
    for key, (_, value) in FIXED.items():
        assert {json.dumps(t[key]) for t in seen} == {json.dumps(value)}
    assert {override_of(t, "f_one_choice") for t in seen} == {"f_one_choice=solo"}
    assert {override_of(t, "f_ax_fixed") for t in seen} == {"f_ax_fixed=3"}


def test_a_deletion_on_the_command_line_reaches_every_trial(sweep: Any) -> None:
    _, seen, _ = sweep
    assert [t["has_drop_me"] for t in seen] == [False] * 5
    assert {t["f_cli"] for t in seen} <= {"a", "b"}
    assert all("~drop_me" in t["overrides"] for t in seen)
    assert {override_of(t, "f_cli") for t in seen} <= {"f_cli=a", "f_cli=b"}


def test_best_params_keep_the_plus_of_a_new_key(sweep: Any) -> None:
    run, _, _ = sweep
    assert "+f_new_key" in run.results["best_params"]
    assert run.results["best_overrides"].count("+f_new_key=") == 1


def test_a_new_key_keeps_its_plus_in_every_trials_override(sweep: Any) -> None:
    _, seen, _ = sweep
    texts = [override_of(t, "+f_new_key") for t in seen]
    assert all(re.fullmatch(rf"\+f_new_key={FLOAT}", t) for t in texts), texts
    assert [float(t.split("=")[1]) for t in texts] == [t["f_new_key"] for t in seen]


def test_the_log_says_what_each_expression_became(sweep: Any) -> None:
    run, _, _ = sweep
    assert "f_log_int_grid: tag(log, choice(2, 4, 8, 32)) -> double grid of 4 values [2, 4, 8, 32], log scale" in (
        run.output
    )
    assert "f_range: range(1, 5) -> int in [1, 4]" in run.output
    assert "read Ax's type: range as tag(log, interval(0.001, 0.1))" in run.output
    # Optuna's range includes its stop, ours (Hydra's) does not: the log shows the grid ends at 5.0.
    assert (
        "f_optuna_range: range(-5.5, 5.5, step=0.5) -> double grid of 22 values [-5.5, -5.0, -4.5, ..., 4.5, 5.0]"
        in (run.output)
    )
    assert "f_big_stepped_range: range(0, 100000, 2) -> int grid of 50000 values [0, 2, 4, ..., 99996, 99998]" in (
        run.output
    )
    assert "read Nevergrad's lower/upper as tag(log, interval(0.001, 1.0))" in run.output
    assert "read Optuna's type: float as tag(log, interval(1e-05, 0.1))" in run.output


NATIVE_FEATURES = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

momentum: 0.9
a: 0.1
b: 0.1
beta2: 0.99
optimizer: sgd

hydra:
  sweeper:
    observation_budget: 2
    dev_run: true
    params:
      momentum: {type: double, bounds: {min: 0, max: 1}, prior: {name: normal, mean: 0.9, scale: 0.05}}
      a: interval(0, 1)
      b: interval(0, 1)
      beta2: {type: double, bounds: {min: 0.9, max: 0.9999}, conditions: {optimizer: [adam]}}
    conditionals:
      - {name: optimizer, values: [sgd, adam]}
    linear_constraints:
      - {type: less_than, threshold: 1, terms: [{name: a, weight: 1}, {name: b, weight: 1}]}
"""


def test_the_log_shows_priors_conditions_conditionals_and_linear_constraints(tmp_path: Path) -> None:
    """The start log showed each parameter's type and bounds only: a prior, the conditional that
    switches a parameter on, and the linear constraints the engine was given were not shown, so a
    typo there (a prior read on the wrong parameter, a condition on the wrong value) went unseen."""
    from small_apps import write_app

    app = write_app(tmp_path, "return cfg.a + cfg.b")
    (app.parent / "conf" / "config.yaml").write_text(NATIVE_FEATURES)
    run = run_example(tmp_path, app=app).assert_ok()
    assert "optimizer: conditional ['sgd', 'adam']" in run.output, run.output[-3000:]
    assert "momentum: double in [0.0, 1.0], prior {'name': 'normal', 'mean': 0.9, 'scale': 0.05}" in run.output
    assert "beta2: double in [0.9, 0.9999], only when optimizer in ['adam']" in run.output
    assert "linear constraint: 1*a + 1*b <= 1" in run.output


@pytest.mark.parametrize(
    "grid", ["tag(log, choice(2, 4, 8, 32))", "tag(log, choice(0.001, 0.003, 0.01, 0.03))", "choice(16, 32, 64)"]
)
def test_a_grid_sweep_runs_to_its_budget_with_the_declared_values(workdir: Path, grid: str) -> None:
    """Log grids came back as 32.00000000000001: the app got that, the engine refused the observation.
    A budget larger than the grid ran out of untried points: the engine failed with an IndexError."""
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        "x": None,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {"sweeper": {"observation_budget": 12, "params": {"x": grid}}},
    }
    run = run_app_with(workdir, config)
    declared = [json.loads(v) for v in grid.split("choice(")[1].rstrip(")").split(",")]
    got = [json.loads(line)["x"] for line in (workdir / "seen.jsonl").read_text().splitlines()]
    assert len(got) == 12
    assert all(any(type(v) is type(d) and v == d for d in declared) for v in got), got
    assert [t["state"] for t in run.trials] == ["completed"] * 12
    assert all(math.isfinite(float(t["value"])) for t in run.trials)


TYPED_CONDITIONALS = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

use_dropout: false
nl: 1
p: 0.0
q: 0.0
x: 1.0
out: {out}

hydra:
  sweeper:
    observation_budget: 6
    seed: 3
    params:
      p: {{type: double, bounds: {{min: 0, max: 0.5}}, conditions: {{use_dropout: [true]}}}}
      q: {{type: double, bounds: {{min: 0, max: 1}}, conditions: {{nl: [2]}}}}
      x: interval(0.5, 2)
    conditionals:
      - {{name: use_dropout, values: [false, true]}}
      - {{name: nl, values: [1, 2]}}
"""

TYPED_CONDITIONALS_APP = """
import json
import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base=None, config_path=".", config_name="config")
def main(cfg):
    print("DROPOUT", "ON" if cfg.use_dropout else "off")
    seen = {"use_dropout": cfg.use_dropout, "nl": cfg.nl, "overrides": list(HydraConfig.get().overrides.task)}
    print("SEEN", json.dumps(seen))
    with open(cfg.out, "a") as f:
        f.write(json.dumps(seen) + "\\n")
    return cfg.x

if __name__ == "__main__":
    main()
"""


def test_conditional_values_reach_the_app_files_and_pasted_best_with_their_declared_types(workdir: Path) -> None:
    """``conditionals: [{name: use_dropout, values: [false, true]}]`` gave the app the string
    'False' (truthy: dropout ON), and ``values: [1, 2]`` the string '2'; best_params held 'True' and
    ``hydra-sigopt best`` printed ``use_dropout='True'``, a string again when pasted. Conditions on
    those values (``{use_dropout: [true]}``, ``{nl: [2]}``) switch their parameters on."""
    import subprocess
    import sys

    (workdir / "config.yaml").write_text(TYPED_CONDITIONALS.format(out=workdir / "seen.jsonl"))
    (workdir / "app.py").write_text(TYPED_CONDITIONALS_APP)
    run = run_example(workdir, app=workdir / "app.py").assert_ok()
    seen = [json.loads(line) for line in (workdir / "seen.jsonl").read_text().splitlines()]
    assert len(seen) == 6
    assert all(type(t["use_dropout"]) is bool and type(t["nl"]) is int for t in seen), seen
    # Both values of each conditional ran (seeded), so both sides of each condition are checked.
    assert {t["use_dropout"] for t in seen} == {False, True} and {t["nl"] for t in seen} == {1, 2}, seen
    for t in seen:  # the condition matched the typed value: p only with dropout on, q only with nl=2
        keys = {o.split("=", 1)[0] for o in t["overrides"]}
        assert ("p" in keys) == t["use_dropout"] and ("q" in keys) == (t["nl"] == 2), t
    assert "use_dropout: conditional [false, true]" in run.output
    assert "nl: conditional [1, 2]" in run.output
    for row in run.trials:
        assert row["param.use_dropout"] in ("false", "true") and row["param.nl"] in ("1", "2"), row
    best = run.results["best_params"]
    assert type(best["use_dropout"]) is bool and type(best["nl"]) is int, best
    best_cli = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "best", str(run.sweep_dir)], capture_output=True, text=True
    )
    assert best_cli.returncode == 0, best_cli.stderr
    for text in (best_cli.stdout.strip(), run.results["best_overrides"]):
        shell = subprocess.run(
            ["bash", "-c", f"{sys.executable} app.py {text}"], cwd=workdir, capture_output=True, text=True
        )
        assert shell.returncode == 0, (text, shell.stderr[-1500:])
        pasted = json.loads(next(line for line in shell.stdout.splitlines() if line.startswith("SEEN "))[5:])
        assert (pasted["use_dropout"], pasted["nl"]) == (best["use_dropout"], best["nl"]), text
        assert f"DROPOUT {'ON' if best['use_dropout'] else 'off'}" in shell.stdout


def test_a_resumed_sweep_replays_typed_conditionals_and_keeps_their_types(workdir: Path) -> None:
    """Resuming replays the journal's trials into the engine (whose conditional values are the
    strings 'False'/'True'); the trials of the second run get the declared booleans and ints too."""
    (workdir / "config.yaml").write_text(TYPED_CONDITIONALS.format(out=workdir / "seen.jsonl"))
    (workdir / "app.py").write_text(TYPED_CONDITIONALS_APP)
    run_example(workdir, "hydra.sweeper.observation_budget=3", app=workdir / "app.py").assert_ok()
    second = run_example(workdir, "hydra.sweeper.observation_budget=6", app=workdir / "app.py").assert_ok()
    assert "#3 : " in second.output and "#0 : " not in second.output, second.output[-3000:]
    seen = [json.loads(line) for line in (workdir / "seen.jsonl").read_text().splitlines()]
    assert len(seen) == 6
    assert all(type(t["use_dropout"]) is bool and type(t["nl"]) is int for t in seen), seen
    assert [t["state"] for t in second.trials] == ["completed"] * 6
    assert {t["param.use_dropout"] for t in second.trials} <= {"false", "true"}


def test_trials_csv_shows_the_rounded_int_a_log_int_trial_ran_with(workdir: Path) -> None:
    """``w: tag(log, int(interval(1, 1024)))`` is a log-scaled double the override rounds: the
    trial ran with ``w=167`` while trials.csv's ``param.w`` said 167.024..., the engine's double."""
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        "w": 1,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {"sweeper": {"observation_budget": 4, "params": {"w": "tag(log, int(interval(1, 1024)))"}}},
    }
    run = run_app_with(workdir, config)
    ran = {t["job_num"]: t["w"] for t in map(json.loads, (workdir / "seen.jsonl").read_text().splitlines())}
    assert all(type(w) is int for w in ran.values()), ran
    assert {int(t["number"]): t["param.w"] for t in run.trials} == {n: str(w) for n, w in ran.items()}
    assert all(t["overrides"] == f"w={t['param.w']}" for t in run.trials), run.trials


def test_an_optuna_entry_with_log_and_step_is_log_scaled_as_under_optuna(workdir: Path) -> None:
    """``{type: float, low: 1e-5, high: 1e-1, log: true, step: 1e-5}`` became a linear grid of
    10,000 values (trials got d = 0.06005, 0.0394, 0.08605) and a start-up log line of 88,988
    characters. Hydra's Optuna sweeper reads ``log`` first and ignores ``step``: a log-uniform
    float, and for ints a log-uniform int."""
    params = {
        "a": {"type": "int", "low": 16, "high": 1024, "log": True, "step": 16},
        "d": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True, "step": 1.0e-5},
    }
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        "a": 16,
        "d": 0.001,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {"sweeper": {"observation_budget": 3, "params": params}},
    }
    run = run_app_with(workdir, config)
    declared = declared_parameters(run)
    assert declared["a"] == {
        "name": "a",
        "type": "double",
        "bounds": {"min": 16.0, "max": 1024.0},
        "transformation": "log",
    }
    assert declared["d"] == {
        "name": "d",
        "type": "double",
        "bounds": {"min": 1e-5, "max": 0.1},
        "transformation": "log",
    }
    seen = [json.loads(line) for line in (workdir / "seen.jsonl").read_text().splitlines()]
    assert all(type(t["a"]) is int and 16 <= t["a"] <= 1024 for t in seen), seen
    assert all(type(t["d"]) is float and 1e-5 <= t["d"] <= 0.1 for t in seen), seen
    assert "a: tag(log, int(interval(16, 1024))) -> double in [16.0, 1024.0], log scale, rounded to int" in run.output
    assert "d: tag(log, interval(1e-05, 0.1)) -> double in [1e-05, 0.1], log scale" in run.output
    assert (
        "params.a: read Optuna's type: int (its step 16 is ignored with log: true, as in Optuna's sweeper) "
        "as tag(log, int(interval(16, 1024)))" in run.output
    )
    assert "params.d: read Optuna's type: float (its step 1e-05 is ignored with log: true" in run.output
    assert max(map(len, run.output.splitlines())) < 300


def test_the_start_up_lines_of_a_long_grid_are_summarised(workdir: Path) -> None:
    """An Optuna stepped entry of 10,001 values was logged whole, twice (as translated and as the
    parameter's line), 88,988 characters each; the lines now give the first values, the last and
    how many."""
    params = {"d": {"type": "float", "low": 0.0, "high": 0.1, "step": 1.0e-5}}
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        "d": 0.001,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {"sweeper": {"observation_budget": 2, "params": params}},
    }
    run = run_app_with(workdir, config)
    lines = [line for line in run.output.splitlines() if "HYDRA" in line and "d:" in line]
    assert len(lines) == 2, lines
    assert max(map(len, run.output.splitlines())) < 300, lines
    assert "as choice(0.0, 1e-05, 2e-05, ..., 0.09999, 0.1) (10,001 values)" in lines[0]
    assert "d: choice(0.0, 1e-05, 2e-05, ..., 0.09999, 0.1) (10,001 values) -> double grid of 10001 values" in lines[1]


def test_an_ax_choice_with_is_ordered_false_is_categorical_and_keeps_its_numbers(workdir: Path) -> None:
    """``{type: choice, values: [8, 16, 32], is_ordered: false}`` became an ordered int grid, the
    flag ignored; Ax's sweeper hands it to Ax as an unordered choice parameter, which is SigOpt's
    categorical. The app still gets the ints."""
    config = {
        "defaults": [{"override hydra/sweeper": "sigopt"}, "_self_"],
        "n": 8,
        "out": str(workdir / "seen.jsonl"),
        "hydra": {
            "sweeper": {
                "observation_budget": 4,
                "params": {"n": {"type": "choice", "values": [8, 16, 32], "is_ordered": False}},
            }
        },
    }
    run = run_app_with(workdir, config)
    declared = declared_parameters(run)
    assert declared["n"] == {
        "name": "n",
        "type": "categorical",
        "categorical_values": [{"name": "8"}, {"name": "16"}, {"name": "32"}],
    }
    seen = [json.loads(line) for line in (workdir / "seen.jsonl").read_text().splitlines()]
    assert all(type(t["n"]) is int and t["n"] in (8, 16, 32) for t in seen), seen
    assert {t["param.n"] for t in run.trials} <= {"8", "16", "32"}
    assert "params.n: read Ax's type: choice as {type:categorical,categorical_values:[8,16,32]}" in run.output
