"""A Lightning trial as a Slurm job, with Lightning's own handling of Slurm's signals.

Inside a Slurm job Lightning installs a SIGTERM handler ("SLURM auto-requeueing enabled. Setting
signal handlers."): on the SIGTERM Slurm sends before it requeues (``scontrol requeue``, a
preemption) the fit loop raises ``SIGTERMException``, a ``SystemExit``. The task took it for the
app's own ``sys.exit()``: the trial was recorded failed at once ("TaskExit: the task called
sys.exit()"), and the requeued job trained the whole trial again after the sweep had ended,
its result read by no one.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import finish_example, running_job_ids, start_example, start_requeued_job_now
from test_lightning import MODEL
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

pytest.importorskip("lightning", reason="the Lightning callback's tests need lightning (pip install '.[test]')")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

APP = (
    MODEL
    + """\
import time


class SlowEpochs(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(1)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    L.seed_everything(0)
    trainer = L.Trainer(
        max_epochs=cfg.epochs, callbacks=[SlowEpochs(), SigOptReport(monitor="val/loss")], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(Regression(cfg.lr), data(0), data(1))
    return float(trainer.callback_metrics["val/loss"])


if __name__ == "__main__":
    main()
"""
)

CONFIG = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

lr: 0.01
epochs: 12

hydra:
  sweeper:
    observation_budget: 1
    metrics: [{name: val/loss, objective: minimize}]
    params:
      lr: tag(log, interval(1e-5, 0.5))
    early_stopping: {rule: asha, max_step: 12}
"""


def _queued(job_id: str) -> bool:
    return bool(subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip())


def test_a_lightning_trial_requeued_mid_fit_runs_again_and_completes(tmp_path: Path) -> None:
    (tmp_path / "app" / "conf").mkdir(parents=True)
    (tmp_path / "app" / "conf" / "config.yaml").write_text(CONFIG)
    app = tmp_path / "app" / "train.py"
    app.write_text(textwrap.dedent(APP))
    proc, sweep_dir = start_example(tmp_path, *SLURM, "hydra.launcher.timeout_min=10", app=app)
    try:
        job_id = running_job_ids(sweep_dir, 1, timeout=180)[0]
        reports = sweep_dir / ".hydra_sigopt" / "trials" / "0" / "reports.jsonl"
        deadline = time.time() + 180
        while not (reports.exists() and len(reports.read_text().splitlines()) >= 2):  # in the middle of fit
            assert time.time() < deadline, "the trial reported no two epochs"
            time.sleep(0.5)
        subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
        start_requeued_job_now(job_id)
        run = finish_example(proc, sweep_dir, timeout=600)
    finally:
        proc.kill()
    run.assert_ok()
    assert f"Trial #0: job {job_id} requeued" in run.output, run.output[-3000:]
    (trial,) = run.trials
    assert trial["state"] == "completed", (trial, run.output[-3000:])  # it was "failed: TaskExit"
    assert float(trial["value.val/loss"]) == run.results["best_value"]
    deadline = time.time() + 60  # a job that just ended is listed a moment longer (completing)
    while _queued(job_id) and time.time() < deadline:
        time.sleep(1)
    assert not _queued(job_id)  # no attempt of it left to train after the sweep
