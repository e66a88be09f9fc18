"""The best overrides are "ready to paste after ``python train.py``": pasted in a shell, the app
gets the best trial's values, whatever they are (the values users sweep: strings with ``$``,
quotes, commas, ``=``, spaces or unicode; strings that read as booleans or numbers; dict choices).

Unquoted for the shell, ``label=$HOME`` gave the app the home dir, ``label='true'`` a boolean, a
dict choice ``opt={a:3,b:4}`` two overrides (brace expansion), and ``it\\'s`` a shell syntax error.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
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


README = Path(__file__).resolve().parents[1] / "README.md"
HOSTILE = """
observation_budget: 2
parallel_bandwidth: 1
params:
  label: choice("it's a test", 'say "hi" to $HOME')
"""


def readme_rerun_commands() -> list[str]:
    """Every command the README gives to train the best trial again from ``hydra-sigopt best DIR``
    (in its code blocks and in its inline code), its line breaks read as spaces."""
    text = README.read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`\n]*(?:\n[^`\n]*)*)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    found = [line for block in blocks for line in block.splitlines()] + [" ".join(s.split()) for s in spans]
    return [c for c in found if "train.py" in c and "hydra-sigopt best DIR" in c]


def test_every_way_the_readme_gives_to_rerun_the_best_trial_gives_the_app_its_exact_value(workdir: Path) -> None:
    """``python train.py $(hydra-sigopt best DIR)``, as the README showed it first, gave the app
    ``label=''it's`` and three more arguments (the shell splits a command substitution at spaces and
    keeps its quotes): Hydra refused them. The README shows only forms that work now, and
    ``--lines`` gives one argument a line for ``mapfile`` without ``eval``."""
    body = "print('LABEL', repr(cfg.label)); return len(cfg.label)"
    app = write_app(workdir, HOSTILE, body=body)
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\nlabel: default\n"))
    (app.parent / "train.py").write_text(app.read_text())
    run = run_example(workdir, app=app).assert_ok()
    best = run.results["best_params"]["label"]
    commands = readme_rerun_commands()
    bin_dir = str(Path(sys.executable).parent)  # `python` and `hydra-sigopt` of this environment
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for command in commands:
        script = command.replace("hydra-sigopt best DIR", f"hydra-sigopt best {shlex.quote(str(run.sweep_dir))}")
        shell = subprocess.run(["bash", "-c", script], cwd=app.parent, capture_output=True, text=True, env=env)
        assert shell.returncode == 0, (command, shell.stderr[-1500:])
        assert f"LABEL {best!r}" in shell.stdout.splitlines(), (command, shell.stdout[-1500:])
    assert any("eval" in c for c in commands) and any("--lines" in c for c in commands), commands


ALL_FAIL = """
observation_budget: 2
parallel_bandwidth: 1
params:
  x: interval(0, 1)
"""


def test_no_way_the_readme_gives_to_rerun_the_best_trial_trains_with_the_defaults_when_there_is_none(
    workdir: Path,
) -> None:
    """``eval "python train.py $(hydra-sigopt best DIR)"`` and ``mapfile -t best < <(hydra-sigopt
    best DIR --lines) && python train.py "${best[@]}"``, the README's forms for a script, ran
    ``python train.py`` with nothing after it when ``best`` had no best to give (every trial failed, a
    mistyped DIR): the app trained with its defaults, as if that were the best trial (``best``'s exit
    status is lost inside a command substitution in a string, and in a process substitution). The
    README's forms stop on ``best``'s refusal now."""
    app = write_app(workdir, ALL_FAIL, body="print('TRAINED', cfg.x); raise RuntimeError('diverged')")
    (app.parent / "train.py").write_text(app.read_text())
    run = run_example(workdir, app=app)
    assert run.proc.returncode == 0 and "No trial completed" in run.results["no_best"], run.output[-3000:]
    commands = readme_rerun_commands()
    assert len(commands) >= 2, commands
    bin_dir = str(Path(sys.executable).parent)  # `python` and `hydra-sigopt` of this environment
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for sweep_dir in (run.sweep_dir, workdir / "no-such-sweep"):
        for command in commands:
            script = command.replace("hydra-sigopt best DIR", f"hydra-sigopt best {shlex.quote(str(sweep_dir))}")
            shell = subprocess.run(["bash", "-c", script], cwd=app.parent, capture_output=True, text=True, env=env)
            assert "TRAINED" not in shell.stdout, (sweep_dir.name, command, shell.stdout[-1500:])
            assert shell.returncode != 0, (sweep_dir.name, command)


LONG_NAMES = """
observation_budget: 2
parallel_bandwidth: 1
params:
  model.optimizer.learning_rate: tag(log, interval(1e-5, 1e-1))
  data.loader.batch_size: choice(32, 64, 128, 256)
  model.net.hidden_layer_width: int(interval(16, 512))
"""


@pytest.mark.parametrize(
    "label",
    [
        "+run_label=a_long_label_that_the_sweep_s_own_command_line_gives",
        # ": " made YAML quote the whole command, its own quotes doubled: no shell takes that line.
        "+run_label='a long label: the sweep s own command line gives it'",
    ],
)
def test_the_rerun_lines_of_optimization_results_yaml_paste_whole(workdir: Path, label: str) -> None:
    """``best_command`` and ``best_overrides`` in optimization_results.yaml are to copy into a shell,
    as the README says; YAML folded those longer than 80 characters onto a second line, so a user who
    copied the ``best_command:`` line ran the app without the last values (another configuration,
    trained with their defaults) and the shell then said ``data.loader.batch_size=64: command not
    found``. Each is one line now."""
    body = "print('PASTED', cfg.model.optimizer.learning_rate, cfg.data.loader.batch_size, "
    body += "cfg.model.net.hidden_layer_width)"
    app = write_app(workdir, LONG_NAMES, body=body + "; return cfg.model.optimizer.learning_rate")
    config = app.parent / "conf" / "config.yaml"
    defaults = (
        "model: {optimizer: {learning_rate: 0.5}, net: {hidden_layer_width: 8}}\ndata: {loader: {batch_size: 1}}\n"
    )
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\n" + defaults))
    run = run_example(workdir, label, app=app).assert_ok()
    best = run.results["best_params"]
    expected = (
        f"PASTED {best['model.optimizer.learning_rate']!r} {best['data.loader.batch_size']} "
        f"{best['model.net.hidden_layer_width']}"
    )
    assert len(run.results["best_command"]) > 120, run.results["best_command"]
    lines = (run.sweep_dir / "optimization_results.yaml").read_text().splitlines()
    for key, prefix in (("best_command", ""), ("best_overrides", f"{sys.executable} app.py ")):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{key}: "))
        copied = lines[at].removeprefix(f"{key}: ")
        if copied == "|-":  # a literal block: the line below, as it is
            copied = lines[at + 1].strip()
        script = prefix + (f"{sys.executable} {copied.removeprefix('python ')}" if key == "best_command" else copied)
        shell = subprocess.run(["bash", "-c", script], cwd=app.parent, capture_output=True, text=True)
        assert shell.returncode == 0, (key, copied, shell.stderr[-1500:])
        assert expected in shell.stdout.splitlines(), (key, copied, shell.stdout[-1500:])
