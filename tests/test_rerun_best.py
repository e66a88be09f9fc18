"""``python train.py $(hydra-sigopt best DIR)`` trains the best trial again, with the config it had.

An app laid out as the lightning-hydra-template is (config groups, ``experiment=example``, and an
``hparams_search`` config that sets ``hydra.mode: MULTIRUN`` and declares the space), run as its
README runs it: ``python train.py -m hparams_search=mnist_sigopt experiment=example``. Pasted after
``python train.py``, the best overrides left out ``experiment=example`` and ``hparams_search``: the
app trained with another seed, other epochs and no ``optimized_metric`` (returning None), and said
nothing. With them and without ``hydra.mode=RUN``, the command started a new sweep instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TRAIN_PY = """
import hydra

@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg):
    lr, bs = cfg.model.optimizer.lr, cfg.data.batch_size
    score = 1 - abs(lr - 0.01) - bs / 1000 - (cfg.model.dropout or 0) + len(cfg.model.net.act) / 100
    if cfg.get("optimized_metric") == "pareto":
        return {"acc": score, "loss": bs / 1000}
    return {"val/acc_best": score}.get(cfg.get("optimized_metric"))

if __name__ == "__main__":
    main()
"""

CONFIGS = {
    "train.yaml": """
defaults:
  - _self_
  - data: mnist
  - model: small
  - experiment: null
  - hparams_search: null
task_name: train
seed: null
trainer: {max_epochs: 3}
""",
    "train_long.yaml": "defaults:\n  - train\n  - _self_\ntask_name: long\n",
    "data/mnist.yaml": "batch_size: 128\nnum_workers: 0\n",
    "model/small.yaml": "optimizer: {lr: 0.001}\nnet: {width: 64, act: relu}\ndropout: null\n",
    "model/big.yaml": "optimizer: {lr: 0.001}\nnet: {width: 512, act: relu}\ndropout: null\n",
    "experiment/example.yaml": """
# @package _global_
defaults:
  - override /model: small
seed: 12345
trainer: {max_epochs: 10}
""",
    "hparams_search/mnist_sigopt.yaml": """
# @package _global_
defaults:
  - override /hydra/sweeper: sigopt
optimized_metric: "val/acc_best"
hydra:
  mode: "MULTIRUN"
  sweeper:
    observation_budget: 3
    seed: 0
    metrics: [{name: value, objective: maximize}]
    params:
      model: choice(small, big)
      model.optimizer.lr: tag(log, interval(0.0001, 0.1))
      data.batch_size: choice(32, 64, 128, 256)
      model.net.act: choice('leaky relu', "it's")
      model.dropout: [null, 0.1]
""",
}
CONFIGS["hparams_search/mnist_pareto.yaml"] = (
    CONFIGS["hparams_search/mnist_sigopt.yaml"]
    .replace('optimized_metric: "val/acc_best"', "optimized_metric: pareto")
    .replace(
        "[{name: value, objective: maximize}]", "[{name: acc, objective: maximize}, {name: loss, objective: minimize}]"
    )
    .replace("observation_budget: 3", "observation_budget: 4")
)


def write_template_app(root: Path) -> Path:
    for name, text in CONFIGS.items():
        path = root / "configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    (root / "train.py").write_text(TRAIN_PY.lstrip())
    return root / "train.py"


@pytest.mark.parametrize("flags", [[], ["-cn", "train_long"]], ids=["", "another-config-name"])
def test_the_best_pasted_after_python_train_py_trains_the_best_trial_s_config_again(
    tmp_path: Path, flags: list[str]
) -> None:
    """With ``-cn train_long`` the pasted command ran train.yaml, not train_long.yaml."""
    write_template_app(tmp_path)
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "train.py", *flags, "-m", "hparams_search=mnist_sigopt", "experiment=example"]
    run = subprocess.run([*sweep, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    best_trial = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_trial"]

    cli = [sys.executable, "-m", "hydra_sigopt.cli", "best", str(sweep_dir)]
    best = subprocess.run(cli, capture_output=True, text=True)
    assert best.returncode == 0, best.stderr
    # Seeded: the best trial has a group option, None and a string with a quote, each to paste back.
    assert all(part in best.stdout for part in ("model=big", "model.dropout=null", "it")), best.stdout
    rerun_dir = tmp_path / "rerun"
    # eval, as the README says for scripts: the values are quoted for the shell ('leaky relu').
    shell = f'eval "{sys.executable} train.py $({" ".join(cli)}) hydra.run.dir={rerun_dir}"'
    rerun = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not (tmp_path / "multirun").exists(), f"{best.stdout} started a new sweep"
    trained = yaml.safe_load((sweep_dir / str(best_trial) / ".hydra" / "config.yaml").read_text())
    again = yaml.safe_load((rerun_dir / ".hydra" / "config.yaml").read_text())
    assert again == trained, best.stdout
    # The log's last lines say the same, with the program to run it.
    again_line = next(line for line in (run.stdout + run.stderr).splitlines() if "Train it again: " in line)
    assert again_line.split("Train it again: ", 1)[1] == f"python train.py {best.stdout.strip()}"


def test_each_pareto_optimal_trial_pasted_after_python_train_py_trains_its_config_again(tmp_path: Path) -> None:
    """Two metrics: the log's Pareto lines gave each trial's swept values alone, as best did."""
    write_template_app(tmp_path)
    sweep_dir = tmp_path / "sweep"
    sweep = [sys.executable, "train.py", "-m", "hparams_search=mnist_pareto", "experiment=example"]
    run = subprocess.run([*sweep, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    solutions = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["solutions"]
    best = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "best", str(sweep_dir)], capture_output=True, text=True
    )
    lines = best.stdout.splitlines()
    assert len(lines) == len(solutions) >= 1, best.stdout
    again = [
        line.split("train it again: ", 1)[1]
        for line in (run.stdout + run.stderr).splitlines()
        if "train it again: " in line
    ]
    assert again == [f"python train.py {line}" for line in lines], again
    assert [s["command"] for s in solutions] == again
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir)], capture_output=True, text=True
    )
    count = f"{len(solutions)} trial{'s' if len(solutions) > 1 else ''}"  # it said "1 trials"
    assert f"Pareto set:  {count}: #{solutions[0]['trial']}" in status.stdout, status.stdout
    rerun_dir = tmp_path / "rerun"
    pasted = f"{sys.executable} train.py {lines[0]} hydra.run.dir={rerun_dir}"  # as pasted in a shell
    rerun = subprocess.run(["bash", "-c", pasted], cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trained = yaml.safe_load((sweep_dir / str(solutions[0]["trial"]) / ".hydra" / "config.yaml").read_text())
    assert yaml.safe_load((rerun_dir / ".hydra" / "config.yaml").read_text()) == trained
