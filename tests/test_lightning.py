"""The PyTorch Lightning callback (issue 17), with real Lightning on the CPU and a tiny model.

A Hydra app whose Trainer has ``SigOptReport``: swept with early stopping, some trials are stopped
by the sweeper through the callback; run alone, the callback does nothing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, run_example

from hydra_sigopt.journal import Journal

pytest.importorskip("lightning", reason="the Lightning callback's tests need lightning (pip install '.[test]')")
pytestmark = pytest.mark.slow
EPOCHS = 8

#: A tiny regression model and its data, for the apps of these tests (test_slurm_lightning_ddp too).
MODEL = """\
import hydra
import lightning as L
import torch
from torch import nn

from hydra_sigopt import TrialStopped
from hydra_sigopt.lightning import SigOptReport


class Regression(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.net = nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.net(x), y), sync_dist=True)  # synced across DDP ranks

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


"""

APP = (
    MODEL
    + """\
@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    L.seed_everything(0)  # as a Lightning template does
    reporting = SigOptReport(monitor="val/loss")
    trainer = L.Trainer(
        max_epochs=cfg.epochs, callbacks=[reporting], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )
    model = Regression(cfg.lr)
    try:
        trainer.fit(model, data(0), data(1))
    except TrialStopped:
        print(f"stopped at epoch {trainer.current_epoch + 1}")  # an app may save a checkpoint here
    if cfg.validate_after_fit:  # the final validation many apps run (lightning-hydra-template tests instead)
        trainer.validate(model, data(1), verbose=False)
    if cfg.fine_tune_epochs:  # a second stage with a Trainer (and a callback) of its own, epochs from 1 again
        trainer = L.Trainer(
            max_epochs=cfg.fine_tune_epochs, logger=False,
            callbacks=[reporting if cfg.same_callback else SigOptReport(monitor="val/loss")],
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        )
        trainer.fit(model, data(0), data(1))
    return float(trainer.callback_metrics["val/loss"])


if __name__ == "__main__":
    main()
"""
)

CONFIG = f"""\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

lr: 0.01
epochs: {EPOCHS}
validate_after_fit: false
fine_tune_epochs: 0
same_callback: false

hydra:
  sweeper:
    observation_budget: 6
    seed: 1  # unseeded it was flaky: seeds 0 and 3 draw no trial worse than the median of those before it
    metrics: [{{name: val/loss, objective: minimize}}]  # as lightning-hydra-template logs it
    params:
      lr: tag(log, interval(1e-5, 0.5))
    early_stopping: {{rule: median, min_step: 1}}
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app" / "conf").mkdir(parents=True)
    (tmp_path / "app" / "conf" / "config.yaml").write_text(CONFIG)
    path = tmp_path / "app" / "train.py"
    path.write_text(textwrap.dedent(APP))
    return path


@pytest.mark.parametrize("validate_after_fit", [False, True], ids=["fit", "fit-then-validate"])
def test_the_callback_reports_every_epoch_and_the_sweeper_stops_lagging_trials(
    tmp_path: Path, app: Path, validate_after_fit: bool
) -> None:
    """With ``trainer.validate()`` after ``fit``, the callback reported that validation as one more
    epoch (past max_step, in the step budget) and raised TrialStopped from it in a stopped trial."""
    run = run_example(tmp_path, f"validate_after_fit={validate_after_fit}", app=app, timeout=900).assert_ok()
    rows = {int(t["number"]): t for t in run.trials}
    stopped = [t for t in rows.values() if t["state"] == "stopped"]
    assert stopped, run.output[-3000:]
    assert all(t["state"] in ("completed", "stopped") for t in rows.values())
    assert all(int(t["step"]) == EPOCHS for t in rows.values() if t["state"] == "completed")
    for t in stopped:
        assert f"stopped at epoch {t['step']}" in run.output  # TrialStopped left trainer.fit there
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        steps = {(r.number, r.step) for r in journal.reports.all()}
    for number, t in rows.items():  # one report per epoch, from 1, the sanity check left out
        assert {s for n, s in steps if n == number} == set(range(1, int(t["step"]) + 1))


def test_outside_a_sweep_the_callback_does_nothing(tmp_path: Path, app: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(app), f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped at epoch" not in done.stdout and not list(tmp_path.rglob(".hydra_sigopt"))


@pytest.mark.parametrize("launcher", [(), SUBMITIT_LOCAL], ids=["basic", "submitit_local"])
def test_a_monitor_never_logged_is_said_once_with_the_names_logged(
    tmp_path: Path, app: Path, launcher: tuple[str, ...]
) -> None:
    """``SigOptReport(monitor="val/loss_typo")``, a name the app never logs: the sweep said "trial #0
    completed without reporting a step ... (with Lightning: the callback SigOptReport)", which the app
    uses already. It says, once, in the sweep's output, that the monitor was never logged, and which
    metrics were (a job's own log is not where a user looks)."""
    app.write_text(
        app.read_text().replace('SigOptReport(monitor="val/loss")', 'SigOptReport(monitor="val/loss_typo")', 1)
    )
    budget = ("epochs=2", "hydra.sweeper.observation_budget=2")
    run = run_example(tmp_path, *launcher, *budget, app=app, timeout=900).assert_ok()
    said = [line for line in run.output.splitlines() if "val/loss_typo" in line]
    assert len(said) == 1, run.output[-3000:]
    assert "SigOptReport(monitor='val/loss_typo')" in said[0] and "never logged" in said[0], said[0]
    assert "'val/loss'" in said[0]  # what the app logged, to pick the name from
    assert "with Lightning: the callback" not in run.output


def test_without_early_stopping_a_monitor_never_logged_is_said_once_too(tmp_path: Path, app: Path) -> None:
    """No rule and no step budget: a SigOptReport whose monitor the app never logs (a typo) reported
    nothing, and the sweep ran on without a word (the note was said only where early stopping reads
    reports). It says so once, naming the monitor and the metrics that were logged."""
    app.write_text(
        app.read_text().replace('SigOptReport(monitor="val/loss")', 'SigOptReport(monitor="val/loss_typo")', 1)
    )
    overrides = ("epochs=2", "hydra.sweeper.observation_budget=2", "hydra.sweeper.early_stopping.rule=none")
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *overrides, app=app, timeout=900).assert_ok()
    said = [line for line in run.output.splitlines() if "val/loss_typo" in line]
    assert len(said) == 1, run.output[-3000:]
    assert "SigOptReport(monitor='val/loss_typo')" in said[0] and "never logged" in said[0], said[0]
    assert "'val/loss'" in said[0] and "early_stopping" not in said[0], said[0]


@pytest.mark.parametrize("same_callback", [False, True], ids=["new-callback", "same-callback"])
def test_a_second_trainer_in_the_same_trial_counts_its_epochs_on(
    tmp_path: Path, app: Path, same_callback: bool
) -> None:
    """Fine-tuning after a frozen stage, with a Trainer of its own: its callback reported epoch 1
    again, which report() refuses (steps must increase), and every such trial failed."""
    stages = ("epochs=3", "fine_tune_epochs=2", f"same_callback={same_callback}", "hydra.sweeper.observation_budget=2")
    run = run_example(tmp_path, *stages, "hydra.sweeper.early_stopping.min_step=100", app=app, timeout=900).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        steps = sorted((r.number, r.step) for r in journal.reports.all())
    assert steps == [(n, s) for n in (0, 1) for s in range(1, 6)]


VALIDATIONS_SEEN = """\
class ValidationsSeen(L.Callback):
    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            from hydra.core.hydra_config import HydraConfig

            with open(f"{HydraConfig.get().runtime.output_dir}/validations.txt", "a") as seen:
                seen.write(f"{trainer.current_epoch + 1} {float(trainer.callback_metrics['val/loss'])!r}\\n")


"""


def test_an_epoch_validated_twice_reports_its_last_validation(tmp_path: Path, app: Path) -> None:
    """``val_check_interval: 0.5`` (a big dataset validated twice an epoch): the callback reported
    each epoch's first validation, after half of its training, and skipped the one at its end; the
    curve and the stop decisions lagged half an epoch behind the trainings."""
    validating = app.read_text().replace("\n\n@hydra.main", "\n\n" + VALIDATIONS_SEEN + "@hydra.main", 1)
    validating = validating.replace(
        "callbacks=[reporting]", "callbacks=[reporting, ValidationsSeen()], val_check_interval=0.5", 1
    )
    assert "val_check_interval=0.5" in validating and "class ValidationsSeen" in validating
    app.write_text(validating)
    overrides = ("epochs=3", "hydra.sweeper.observation_budget=1", "hydra.sweeper.early_stopping.min_step=100")
    run = run_example(tmp_path, *overrides, app=app, timeout=900).assert_ok()
    seen = [line.split() for line in (run.sweep_dir / "0" / "validations.txt").read_text().splitlines()]
    assert [int(epoch) for epoch, _ in seen] == [1, 1, 2, 2, 3, 3], seen
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        reported = {r.step: r.metrics["val/loss"] for r in journal.reports.all()}
    assert reported == {int(epoch): float(value) for epoch, value in seen[1::2]}, (reported, seen)


SLOW_EPOCHS = """\
class SlowEpochs(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        import time

        time.sleep(1)


"""


def test_with_ddp_spawn_trial_stopped_leaves_fit_in_the_trial_s_process(tmp_path: Path, app: Path) -> None:
    """Lightning's ddp_spawn runs the ranks in spawned processes: their TrialStopped reached
    trainer.fit's caller as torch's ProcessRaisedException, so the app's ``except TrialStopped``
    (where it saves its checkpoint) never ran, and the stopped trial was left a
    failure_traceback.log as if it had failed."""
    # The spawned ranks unpickle the model: its class must be importable, not the script's own.
    (app.parent / "tiny_model.py").write_text(MODEL.replace("import hydra\n", "") + SLOW_EPOCHS)
    imports = (
        "import hydra\nimport lightning as L\n\nfrom hydra_sigopt import TrialStopped\n"
        "from hydra_sigopt.lightning import SigOptReport\nfrom tiny_model import Regression, SlowEpochs, data\n\n\n"
    )
    spawning = app.read_text().replace(MODEL, imports, 1)
    spawning = spawning.replace(
        'accelerator="cpu",\n    )', 'accelerator="cpu", strategy="ddp_spawn", devices=2,\n    )', 1
    )
    # Epochs of a second, not hundredths: the sweeper reads reports about every second, and the stop
    # must reach a training that is still going.
    spawning = spawning.replace("callbacks=[reporting]", "callbacks=[reporting, SlowEpochs()]", 1)
    spawning = spawning.replace(
        'print(f"stopped at epoch {trainer.current_epoch + 1}")',
        'open("caught_trial_stopped", "w").close()  # the app saves its checkpoint here\n        return None',
    )
    assert spawning.count("ddp_spawn") == 1 and "caught_trial_stopped" in spawning and "SlowEpochs()" in spawning
    app.write_text(spawning)
    run = run_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.early_stopping.rule=none",
        f"+hydra.sweeper.early_stopping.step_budget={EPOCHS + 2}",  # the second trial is stopped at its 2nd epoch
        "hydra.job.chdir=true",
        app=app,
        timeout=900,
        env={"PYTHONPATH": str(app.parent)},  # where the job and its ranks import the model from
    ).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "stopped"], run.output[-3000:]
    stopped_dir = run.sweep_dir / "1"
    assert (stopped_dir / "caught_trial_stopped").exists(), sorted(p.name for p in stopped_dir.iterdir())
    assert not (stopped_dir / "failure_traceback.log").exists()
