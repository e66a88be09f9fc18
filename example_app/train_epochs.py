"""An app that trains epoch by epoch and reports each epoch, so the sweeper can stop it early.

    python example_app/train_epochs.py -m                        # 16 trials, asha stops the weak ones
    python example_app/train_epochs.py alpha=1e-4 eta0=0.01      # one run (report() does nothing)

scikit-learn's SGDClassifier (logistic regression by SGD) on the bundled digits data, one
``partial_fit`` pass per epoch, validation error after each. ``report`` raises ``TrialStopped`` when
the sweeper stops the trial; the app lets it propagate (it could catch it to save a checkpoint).
"""

import logging
import time

import hydra
from omegaconf import DictConfig

from hydra_sigopt import report

log = logging.getLogger(__name__)


def digits_split() -> tuple:
    """The digits data, standardized, split 75/25 in a fixed order."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    cut = len(X) * 3 // 4
    scaler = StandardScaler().fit(X[:cut])
    return scaler.transform(X[:cut]), y[:cut], scaler.transform(X[cut:]), y[cut:]


def _bad_report(cfg: DictConfig, epoch: int, error: float) -> None:
    """Test hook (inert by default): one malformed report for the jobs numbered in bad_report_jobs."""
    from hydra.core.hydra_config import HydraConfig

    jobs = cfg.bad_report_jobs
    if cfg.bad_report == "none" or (jobs is not None and HydraConfig.get().job.num not in jobs):
        return
    if cfg.bad_report == "nan":
        report(epoch, val_error=float("nan"))
    if cfg.bad_report == "text":
        report(epoch, val_error=f"{error:.3f}")
    if cfg.bad_report == "decreasing" and epoch == 2:
        report(1, val_error=error)
    if cfg.bad_report == "huge_step":  # past what a 64-bit integer holds
        report(2**63 + epoch, val_error=error)


@hydra.main(version_base="1.3", config_path="conf", config_name="epochs")
def main(cfg: DictConfig) -> float:
    from sklearn.linear_model import SGDClassifier

    X_train, y_train, X_val, y_val = digits_split()
    model = SGDClassifier(loss="log_loss", alpha=cfg.alpha, learning_rate="constant", eta0=cfg.eta0, random_state=0)
    classes = sorted(set(y_train))
    error = 1.0
    for epoch in range(1, cfg.epochs + 1):
        model.partial_fit(X_train, y_train, classes=classes)
        error = 1.0 - float(model.score(X_val, y_val))
        time.sleep(cfg.epoch_sleep_s)
        log.info("epoch %d: val_error=%.4f", epoch, error)
        _bad_report(cfg, epoch, error)
        report(epoch, val_error=error)  # raises TrialStopped once the sweeper stops this trial
    log.info("alpha=%.3g eta0=%.3g -> val_error=%.4f after %d epochs", cfg.alpha, cfg.eta0, error, cfg.epochs)
    return error


if __name__ == "__main__":
    main()
