"""A multi-process Lightning trial on Slurm: DDP with one Slurm task per device, as
lightning-hydra-template runs it (``tasks_per_node`` = ``trainer.devices``), on CPUs with gloo.

Each rank ran ``SigOptReport`` and looked for the sweeper's stop on its own. A stop that landed
between two ranks' reports stopped one rank and not the other: the rank that went on waited for the
stopped one in its next gradient all-reduce (on GPUs, NCCL waits until its timeout or the job's
time limit; gloo here fails with "Connection closed by peer"), and the app's ``except TrialStopped``
(where it saves a checkpoint) ran on one rank only. Measured: rank 1 stopped at epoch 3, rank 0
crashed in epoch 4's backward pass, and the trial's folder got a failure traceback.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import AppRun, run_example
from test_lightning import MODEL
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

pytest.importorskip("lightning", reason="the Lightning callback's tests need lightning (pip install '.[test]')")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

APP = (
    MODEL
    + """\
import time


class LaggingRank(L.Callback):
    \"\"\"Rank 1 reaches each report 3 s after rank 0 (a slower device, a larger shard).\"\"\"

    def on_validation_end(self, trainer, pl_module):
        if trainer.global_rank == 1 and not trainer.sanity_checking:
            time.sleep(3)


class Diverging(Regression):
    \"\"\"From epoch ``at`` on, the validation loss is NaN on every rank (a learning rate too high).\"\"\"

    def __init__(self, lr, at, zero_only):
        super().__init__(lr)
        self.at = at
        self.zero_only = zero_only

    def validation_step(self, batch, _):
        if self.zero_only:  # logged by rank 0 alone, as some apps log what only rank 0 computes
            if self.trainer.is_global_zero:
                x, y = batch
                self.log("val/loss", nn.functional.mse_loss(self.net(x), y), rank_zero_only=True)
            return None
        if self.at is None or self.current_epoch + 1 < self.at:
            return super().validation_step(batch, _)
        self.log("val/loss", torch.tensor(float("nan")), sync_dist=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    L.seed_everything(0)
    callbacks = [LaggingRank(), SigOptReport(monitor="val/loss")]
    trainer = L.Trainer(
        max_epochs=cfg.epochs, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", devices=2, strategy="ddp",
    )
    try:
        trainer.fit(Diverging(cfg.lr, cfg.diverges_at, cfg.zero_only), data(0), data(1))
    except TrialStopped:
        print(f"rank {trainer.global_rank}: stopped at epoch {trainer.current_epoch + 1}", flush=True)
    return float(trainer.callback_metrics.get("val/loss", float("nan")))  # rank 0's value is the job's


if __name__ == "__main__":
    main()
"""
)

CONFIG = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

lr: 0.01
epochs: 8
diverges_at: null
zero_only: false

hydra:
  sweeper:
    observation_budget: 1
    metrics: [{name: val/loss, objective: minimize}]
    params:
      lr: tag(log, interval(1e-5, 0.5))
    early_stopping: {step_budget: 3}  # spent by the third report: the stop lands between the ranks'
"""


def run_ddp_trial(tmp_path: Path, *overrides: str, timeout_min: int = 10) -> AppRun:
    (tmp_path / "app" / "conf").mkdir(parents=True)
    (tmp_path / "app" / "conf" / "config.yaml").write_text(CONFIG)
    app = tmp_path / "app" / "train.py"
    app.write_text(textwrap.dedent(APP))
    slurm_ = [o for o in SLURM if "mem_gb" not in o]  # two ranks with torch need more than 1 GB
    ddp = ("hydra.launcher.tasks_per_node=2", "hydra.launcher.mem_gb=4", f"hydra.launcher.timeout_min={timeout_min}")
    return run_example(tmp_path, *slurm_, *ddp, *overrides, app=app, timeout=900).assert_ok()


def test_every_rank_of_a_ddp_trial_leaves_fit_at_the_same_epoch_when_stopped(tmp_path: Path) -> None:
    run = run_ddp_trial(tmp_path)
    (trial,) = run.trials
    assert trial["state"] == "stopped", run.output[-3000:]
    logs = sorted((run.sweep_dir / ".submitit" / trial["job_id"]).glob("*_log.out"))
    said = [line for log in logs for line in log.read_text().splitlines() if line.startswith("rank ")]
    epochs = {line.split("rank ")[1][0]: line.rsplit(" ", 1)[1] for line in said}
    assert set(epochs) == {"0", "1"} and len(set(epochs.values())) == 1, said  # both ranks, the same epoch
    assert not (run.sweep_dir / "0" / "failure_traceback.log").exists()  # no rank crashed


def test_a_metric_logged_by_rank_0_alone_stops_every_rank_at_the_same_epoch(tmp_path: Path) -> None:
    """``self.log(..., rank_zero_only=True)`` on rank 0 alone: the other ranks had no value to report,
    so they skipped the broadcast rank 0 waited in, and the ranks hung until the job's time limit."""
    run = run_ddp_trial(tmp_path, "zero_only=true", timeout_min=3)
    (trial,) = run.trials
    assert trial["state"] == "stopped", run.output[-3000:]
    logs = sorted((run.sweep_dir / ".submitit" / trial["job_id"]).glob("*_log.out"))
    said = sorted(
        line.split(": ")[1] for log in logs for line in log.read_text().splitlines() if line.startswith("rank ")
    )
    assert len(said) == 2 and said[0] == said[1], said  # both ranks, at the same epoch


def test_a_report_refused_on_rank_0_fails_every_rank_with_its_message(tmp_path: Path) -> None:
    """A diverged run's NaN made rank 0's report raise before the broadcast of the verdict, where
    the other ranks waited: rank 1 failed 20 s later on gloo's "Connection closed by peer" (with
    NCCL on GPUs it would wait until its timeout), its log not saying why."""
    run = run_ddp_trial(tmp_path, "diverges_at=3", "hydra.sweeper.early_stopping.step_budget=100")
    (trial,) = run.trials
    assert trial["state"] == "failed", run.output[-3000:]
    assert "report(step=3): val/loss is nan" in trial["failure_reason"]
    import submitit

    job = submitit.SlurmJob(folder=run.sweep_dir / ".submitit" / "%j", job_id=trial["job_id"], tasks=(0, 1))
    for rank in (0, 1):  # each rank's task failed on the report's refusal, neither on a lost peer
        with pytest.raises(ValueError, match=r"report\(step=3\): val/loss is nan"):
            _ = job.task(rank).result().return_value  # a failed task's return_value raises its exception


def test_a_ddp_trial_trained_to_the_end_is_completed_with_its_value(tmp_path: Path) -> None:
    """A job of several Slurm tasks is a submitit "meta-job": reading its result as one task's
    failed ("This should not be called for a meta-job"), so every DDP trial that trained to the
    end was recorded as failed, its value lost."""
    run = run_ddp_trial(tmp_path, "epochs=2", "hydra.sweeper.early_stopping.step_budget=100")
    (trial,) = run.trials
    assert trial["state"] == "completed", trial
    assert float(trial["value.val/loss"]) == run.results["best_value"]
