"""The best overrides are "ready to paste after ``python train.py``": pasted in a shell, the app
gets the best trial's values, whatever they are (the values users sweep: strings with ``$``,
quotes, commas, ``=``, spaces or unicode; strings that read as booleans or numbers; dict choices).

Unquoted for the shell, ``label=$HOME`` gave the app the home dir, ``label='true'`` a boolean, a
dict choice ``opt={a:3,b:4}`` two overrides (brace expansion), and ``it\\'s`` a shell syntax error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_example, write_app

# Each parameter's two options are both hostile, so that whichever trial is best pastes them.
SWEEPER = """
observation_budget: 4
parallel_bandwidth: 1
seed: 0
params:
  swept.a: choice('$HOME', "it's")
  swept.b: choice('true', '1')
  swept.c: choice('x,y', 'k=v')
  swept.d: choice('a b', 'üñ ©')
  swept.e: choice({p:3,q:4}, {p:1,q:2})
"""
DEFAULTS = "swept: {a: '', b: '', c: '', d: '', e: {p: 0, q: 0}}\n"
BODY = (
    "import json; from omegaconf import OmegaConf; "
    "print('PASTED', json.dumps(OmegaConf.to_container(cfg)['swept'])); "
    "return len(str(cfg.swept.a)) + len(str(cfg.swept.d))"
)


def test_the_best_overrides_pasted_in_a_shell_give_the_app_the_best_trial_s_values(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER, body=BODY)
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\n" + DEFAULTS))
    run = run_example(workdir, app=app).assert_ok()
    # trials.csv holds the strings as the app got them, not in the overrides' shell-safe quoting
    # ('a b' in quotes broke a reader grouping rows by value).
    options = {"a": {"$HOME", "it's"}, "b": {"true", "1"}, "c": {"x,y", "k=v"}, "d": {"a b", "üñ ©"}}
    for row in run.trials:
        assert all(row[f"param.swept.{k}"] in allowed for k, allowed in options.items()), row
    best = run.results["best_params"]
    expected = {key.split(".", 1)[1]: value for key, value in best.items()}
    log_line = next(line for line in run.output.splitlines() if "Best overrides: " in line)
    best_cli = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "best", str(run.sweep_dir)], capture_output=True, text=True
    )
    pasted = {
        "optimization_results.yaml": run.results["best_overrides"],
        "the log": log_line.split("Best overrides: ", 1)[1],
        "hydra-sigopt best": best_cli.stdout.strip(),
    }
    for where, text in pasted.items():
        shell = subprocess.run(
            ["bash", "-c", f"{sys.executable} app.py {text}"], cwd=app.parent, capture_output=True, text=True
        )
        assert shell.returncode == 0, (where, text, shell.stderr[-1500:])
        seen = json.loads(next(line for line in shell.stdout.splitlines() if line.startswith("PASTED "))[7:])
        assert seen == expected, (where, text)


FIXED_IN_PARAMS = """
observation_budget: 3
parallel_bandwidth: 1
params:
  layers: 5
  opt.name: choice(sgd)
  opt.lr: tag(log, interval(1e-4, 1e-1))
"""


def test_the_best_overrides_carry_the_fixed_values_declared_in_params(workdir: Path) -> None:
    """``layers: 5`` and ``opt.name: choice(sgd)`` in hydra.sweeper.params are fixed overrides for
    every trial, set by the sweeper only: the best overrides left them out, and pasted after a plain
    ``python train.py`` they ran layers=2 with adam, another configuration, another value. A
    command-line override the user typed stays out (they paste after their own command)."""
    body = "print('PASTED', cfg.layers, cfg.opt.name, cfg.opt.lr, cfg.x); return cfg.layers * cfg.opt.lr"
    app = write_app(workdir, FIXED_IN_PARAMS, body=body)
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\nlayers: 2\nopt: {name: adam, lr: 0.5}\n"))
    run = run_example(workdir, "x=0.25", app=app).assert_ok()
    best = run.results["best_overrides"]
    assert "layers=5" in best and "opt.name=sgd" in best and "x=0.25" not in best, best
    lr = best.split()[-1].removeprefix("opt.lr=")
    trial = next(line for line in run.output.splitlines() if line.startswith("PASTED ") and lr in line)
    shell = subprocess.run(
        ["bash", "-c", f"{sys.executable} app.py x=0.25 {best}"], cwd=app.parent, capture_output=True, text=True
    )
    assert shell.returncode == 0, shell.stderr[-1500:]
    assert next(line for line in shell.stdout.splitlines() if line.startswith("PASTED ")) == trial


TWO_METRICS = """
observation_budget: 6
parallel_bandwidth: 1
seed: 3
metrics:
  - {name: loss, objective: minimize}
  - {name: xval, objective: maximize}
params:
  x: interval(-5, 5)
"""


def test_each_pareto_optimal_line_of_best_pastes_in_a_command_substitution(workdir: Path) -> None:
    """With two metrics, ``hydra-sigopt best`` printed each Pareto-optimal trial as ``x=1.3    #
    trial #2: loss=0.09 xval=1.3``: in ``python train.py $(hydra-sigopt best DIR | head -1)`` the
    comment's words reached Hydra as overrides, and there was no way to ask for one trial's line.
    Each line is the overrides only now (the trial and its values go to stderr), and ``--trial N``
    prints one trial's overrides."""
    body = "print('PASTED', cfg.x); return (cfg.x - 1) ** 2, cfg.x"
    app = write_app(workdir, TWO_METRICS, body=body)
    run = run_example(workdir, app=app).assert_ok()
    solutions = run.results["solutions"]
    assert len(solutions) >= 2, solutions  # x above 1 trades loss for xval: a Pareto set
    command = f"{sys.executable} -m hydra_sigopt.cli best {run.sweep_dir}"
    for line, solution in enumerate(solutions, 1):
        for pick in (f"$({command} 2>/dev/null | sed -n {line}p)", f"$({command} --trial {solution['trial']})"):
            shell = subprocess.run(
                ["bash", "-c", f"{sys.executable} app.py {pick}"], cwd=app.parent, capture_output=True, text=True
            )
            assert shell.returncode == 0, (pick, shell.stderr[-1500:])
            pasted = next(line for line in shell.stdout.splitlines() if line.startswith("PASTED "))
            assert float(pasted.split()[1]) == solution["params"]["x"], (pick, pasted)
    shown = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert f"# trial #{solutions[0]['trial']}: loss=" in shown.stderr
    missing = subprocess.run(["bash", "-c", f"{command} --trial 99"], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == "hydra-sigopt: --trial 99: the sweep has no trial #99 (its trials: #0 to #5)"
