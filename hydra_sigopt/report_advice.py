"""What the sweep tells the user, once each, about how the app reports: a metric the rule does not
judge, steps past ``max_step``, no report at all (each makes early stopping do nothing, silently)."""

from __future__ import annotations

import keyword
import logging
from collections.abc import Iterable, Sequence

from hydra_sigopt.journal_reports import Report
from hydra_sigopt.stop_rules import StopRule

log = logging.getLogger("hydra_sigopt")


class ReportAdvice:
    """Each warning said once per sweeper run."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self._told: set[str] = set()

    def if_past_max_step(self, number: int, step: int) -> None:
        """Once: a report past ``max_step`` (the app's epochs raised, max_step not). From max_step on
        a trial counts as trained in full: no rule judges it, and the step budget cannot stop it."""
        if "past_max_step" in self._told or self.rule.max_step is None or step <= self.rule.max_step:
            return
        self._told.add("past_max_step")
        log.warning(
            "Trial #%d reported step %d, past early_stopping.max_step=%d: from max_step on a trial counts as"
            " trained in full, so no rule judges it and the step budget cannot stop it. Set max_step to the"
            " steps of a full training",
            number,
            step,
            self.rule.max_step,
        )

    def if_the_metric_is_missing(self, number: int, reports: Sequence[Report]) -> None:
        """Once: reports without the metric the rule judges can stop nothing (a name that differs)."""
        if "metric_missing" in self._told or any(self.rule.metric in r.metrics for r in reports):
            return
        self._told.add("metric_missing")
        reported = sorted({name for r in reports for name in r.metrics})
        log.warning(
            "Trial #%d reports %s, but early_stopping judges %r: no trial is stopped on these reports."
            " Report %r, or declare the metric you report, with its direction, in hydra.sweeper.metrics"
            " (metrics: [{name: %s, objective: %s}]; a metric declared without one is maximized)",
            number,
            reported,
            self.rule.metric,
            self.rule.metric,
            reported[0],
            "minimize" if self.rule.minimize else "maximize",  # the judged metric's: the likeliest
        )

    def if_nothing_was_reported(self, completed: Iterable[int], steps_spent: int) -> None:
        """Once: a trial completed while no trial has reported yet, where a rule or step budget works
        on reports. An app that never calls report() is never stopped, and its step budget never runs
        out (a sweep of observation_budget 500, set high for the step budget, ran 500 full trainings).
        A trial that failed before its first report says nothing of the app's reports."""
        if "nothing_reported" in self._told or not self.rule.reads_reports or steps_spent:
            return
        number = min(completed, default=None)
        if number is None:
            return
        self._told.add("nothing_reported")
        log.warning(
            "Trial #%d completed without reporting a step, and early_stopping (%s) works on what trials report:"
            " call `from hydra_sigopt import report` and %s after each epoch (with Lightning: the callback"
            " hydra_sigopt.lightning.SigOptReport), or no trial is stopped and the step budget never runs out",
            number,
            f"rule {self.rule.rule}" if self.rule.active else f"step_budget {self.rule.step_budget}",
            report_call(self.rule.metric),
        )


def report_call(metric: str) -> str:
    """The call that reports ``metric``, as valid Python (``val/loss`` is no keyword argument)."""
    keyword_argument = metric.isidentifier() and not keyword.iskeyword(metric)
    return f"report(step, {metric}=...)" if keyword_argument else f"report(step, **{{{metric!r}: ...}})"


__all__ = ["ReportAdvice", "report_call"]
