"""A PyTorch Lightning callback that reports each validation to the sweeper, for early stopping.

::

    from hydra_sigopt.lightning import SigOptReport

    trainer = Trainer(callbacks=[SigOptReport(monitor="val/loss")])  # the metric your LightningModule logs

As each epoch of ``trainer.fit`` ends, it reports the monitored metric of the epoch's last validation
(the sanity check left out; ``val_check_interval: 0.5`` validates twice an epoch) at step ``epoch + 1``
(``step="global_step"`` to report each validation at the optimizer step instead). When the sweeper
stops the trial, :class:`~hydra_sigopt.TrialStopped` leaves ``trainer.fit`` (Lightning runs its
``on_exception`` hooks and tears down first; with ``ddp_spawn``, in the ranks' processes), like
Optuna's pruning callback's ``TrialPruned``: let it propagate, or catch it around ``fit``. In a
multi-process trial (DDP with one Slurm task per device) global rank 0 reports, and the strategy's
broadcast tells the other ranks (as Optuna's pruning callback did), so every rank leaves ``fit`` at
the same step. A second Trainer in the same trial (fine-tuning after a frozen stage) counts its
steps on from the first one's. Outside a sweep of this sweeper it does nothing, so the callback can
stay in the app's config.

Import this module only where Lightning is installed (``lightning`` or the older
``pytorch_lightning``; the callback subclasses the one found, as the Trainer it goes to must).
"""

from __future__ import annotations

import logging
from typing import Any

from hydra_sigopt.reporting import TrialStopped, last_reported_step, note_monitor_never_logged, report, should_stop

try:  # the unified package since Lightning 2.0 ...
    from lightning.pytorch import Callback
except ImportError:  # ... and the older one, which lightning-hydra-template's early versions use
    from pytorch_lightning import Callback  # type: ignore[assignment]

log = logging.getLogger("hydra_sigopt")

STEPS = ("epoch", "global_step")


class SigOptReport(Callback):  # type: ignore[misc]
    """Report ``monitor`` (a key of ``trainer.callback_metrics``) after each validation."""

    def __init__(self, monitor: str = "val_loss", step: str = "epoch") -> None:
        if step not in STEPS:
            raise ValueError(f"SigOptReport(step={step!r}): valid values are {list(STEPS)}")
        self.monitor = monitor
        self.step = step
        self._last_step: int | None = None
        self._missing_said = False
        #: Whether a validation of fit had the monitored metric, and the names validations had.
        self._monitor_seen = False
        self._validated = False
        self._logged: set[str] = set()
        #: The value of the epoch's last validation (step="epoch"), reported as the epoch ends.
        self._epoch_value: Any = None
        #: Whether fit validated in this epoch (on every rank alike, whether or not it has the value).
        self._epoch_validated = False
        #: Added to each step: the steps a Trainer before this one reported in the same trial.
        self._offset: int | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # The same callback in a second Trainer's fit counts on from what was reported before it.
        self._offset = None
        self._last_step = None
        self._epoch_value, self._epoch_validated = None, False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # Only fit's validations are epochs of the training: a trainer.validate() after fit is not
        # one more (it would be reported past max_step, and raise TrialStopped in a stopped trial).
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        # A rank without the value still takes part in the broadcast of the verdict (a metric logged
        # by rank 0 alone, rank_zero_only=True): rank 0 would wait in it for the others forever.
        value = trainer.callback_metrics.get(self.monitor)
        self._validated = True
        self._monitor_seen = self._monitor_seen or value is not None
        self._logged.update(trainer.callback_metrics)
        if value is None and trainer.is_global_zero and self._monitor_seen:
            self._say_missing(trainer)  # logged before, not now: a name never logged is said at fit's end
        if self.step == "epoch":
            # An epoch validated several times is its last validation's value, not its first's
            # (after half its training): reported as the epoch ends.
            self._epoch_value, self._epoch_validated = value, True
        else:
            self._report_step(trainer, self._continued(trainer.global_step), value)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # Lightning validates at an epoch's end before this hook (an epoch without a validation,
        # check_val_every_n_epoch > 1, has nothing to report: every rank alike).
        value, self._epoch_value = self._epoch_value, None
        validated, self._epoch_validated = self._epoch_validated, False
        if validated:
            self._report_step(trainer, self._continued(trainer.current_epoch + 1), value)

    def _report_step(self, trainer: Any, step: int, value: Any) -> None:
        """Report ``value`` at ``step`` (once a step); raise TrialStopped on every rank once stopped."""
        if step == self._last_step:
            return  # two validations at one optimizer step (at an epoch's end, and by val_check_interval)
        self._last_step = step
        # Every process of a multi-process trial (DDP: one per GPU, each a Slurm task) leaves fit at
        # the same step: one that went on would wait in its next collective for the others until
        # the job's time limit. Global rank 0 reports and learns of the stop; the others hear it
        # from rank 0 (a single-process Trainer's broadcast returns what it is given).
        # A report that fails on rank 0 (a diverged run's NaN) fails every rank the same way: one
        # raising before the broadcast would leave the others waiting in it.
        failure: Exception | None = None
        try:
            stopped = self._report(trainer, step, value)
        except Exception as error:
            failure, stopped = error, False
        verdict = trainer.strategy.broadcast((stopped, None if failure is None else str(failure)), src=0)
        if failure is not None:
            raise failure
        if verdict[1] is not None:
            raise ValueError(f"{verdict[1]} (on global rank 0)")
        if verdict[0]:
            raise TrialStopped(f"the sweeper stopped this trial early at step {step}")

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        # A monitor no validation had (a typo): nothing was reported. In a sweep the trial notes it,
        # and the sweeper says it, once, in the sweep's output (not the job's log), with what was logged.
        if not self._validated or self._monitor_seen or not trainer.is_global_zero:
            return
        logged = sorted(self._logged | set(trainer.callback_metrics))
        if not note_monitor_never_logged(self.monitor, logged):
            self._say_missing(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        # ddp_spawn runs the ranks in spawned processes: their TrialStopped reaches the trial's own
        # process as torch's ProcessRaisedException, which the app's ``except TrialStopped`` around
        # fit misses (and the trial would end as a failure). Raised here it leaves fit as itself.
        # What Lightning does after this hook in this process is skipped (the on_exception hooks
        # of callbacks after this one, the loggers' finalize, the Trainer's teardown): here the
        # ranks ran all of that in their own processes already, and this process trained nothing.
        if type(exception).__name__ == "ProcessRaisedException" and should_stop():
            raise TrialStopped("the sweeper stopped this trial early (in a spawned rank)") from exception

    def _continued(self, step: int) -> int:
        """``step`` counted on from what an earlier Trainer of the trial reported (a second stage, such
        as fine-tuning after a frozen backbone, starts again at epoch 1): the steps must increase."""
        if self._offset is None:
            last = last_reported_step()
            self._offset = last if last is not None and step <= last else 0
        return step + self._offset

    def _report(self, trainer: Any, step: int, value: Any) -> bool:
        """Rank 0 reports (one line per step; DDP ranks hold the same synced value); True once stopped.
        Without a value on rank 0 (said once) nothing is reported."""
        if value is None or not trainer.is_global_zero:
            return False
        try:
            report(step, **{self.monitor: value})
        except TrialStopped:
            return True
        return False

    def _say_missing(self, trainer: Any) -> None:
        if not self._missing_said:
            self._missing_said = True
            logged = sorted(trainer.callback_metrics)
            log.warning("SigOptReport: no metric %r was logged (logged: %s); nothing is reported", self.monitor, logged)
