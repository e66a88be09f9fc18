"""The example app: ElasticNet on scikit-learn's bundled diabetes data, tuned by the SigOpt sweeper.

    python example_app/train.py -m                       # 20-trial sweep, local engine
    python example_app/train.py alpha=0.01 l1_ratio=0.5  # one run

It is the dummy model of the tool this project replaces (Sigopt-Hyperopt's ElasticNet demo), as a
plain Hydra app: the sweeper needs nothing from it but a return value.
"""

import logging
import os
import time

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def cross_validated_mse(alpha: float, l1_ratio: float, folds: int, max_iter: int) -> float:
    """Mean squared error of ElasticNet over k-fold cross-validation (deterministic folds)."""
    import warnings

    from sklearn.datasets import load_diabetes
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import KFold, cross_val_score

    X, y = load_diabetes(return_X_y=True)
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(model, X, y, cv=KFold(n_splits=folds), scoring="neg_mean_squared_error")
    return float(-scores.mean())


def _hook_applies(jobs: list | None) -> bool:
    """Whether a test hook targets this job (``null`` means every job)."""
    from hydra.core.hydra_config import HydraConfig

    return jobs is None or HydraConfig.get().job.num in jobs


def _test_hooks(cfg: DictConfig) -> None:
    """Failure and timing hooks for the project's own tests; inert unless set."""
    if cfg.sleep_s and _hook_applies(cfg.sleep_jobs):
        time.sleep(float(cfg.sleep_s))
    if cfg.fail_mode == "none" or not _hook_applies(cfg.fail_jobs):
        return
    if cfg.fail_mode == "raise":
        raise RuntimeError("fail_mode=raise: this trial fails on purpose")
    if cfg.fail_mode == "exit":
        os._exit(3)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    _test_hooks(cfg)
    if cfg.fail_mode == "return_nan" and _hook_applies(cfg.fail_jobs):
        return {"mse": float("nan"), "fit_seconds": 0.0}

    started = time.perf_counter()
    mse = cross_validated_mse(cfg.alpha, cfg.l1_ratio, cfg.cv_folds, cfg.max_iter)
    fit_seconds = time.perf_counter() - started
    log.info("alpha=%.6g l1_ratio=%.4f -> mse=%.2f (%.2fs)", cfg.alpha, cfg.l1_ratio, mse, fit_seconds)
    return {"mse": mse, "fit_seconds": fit_seconds}


if __name__ == "__main__":
    main()
