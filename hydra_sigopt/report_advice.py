"""What the sweep tells the user, once each, about how the app reports: a metric the rule does not
judge, steps past ``max_step``, no report at all (each makes early stopping do nothing, silently)."""

from __future__ import annotations

import keyword
import logging
from collections.abc import Callable, Iterable, Sequence

from hydra_sigopt.journal_reports import Report
from hydra_sigopt.report_files import MonitorNeverLogged
from hydra_sigopt.stop_rules import StopRule

log = logging.getLogger("hydra_sigopt")

#: The steps a warning names, at most (reports without the rule's metric).
MAX_STEPS_NAMED = 5
#: A trial's reports without the rule's metric, none of any trial having it, after which the sweep
#: says so while the trial runs: a misnamed metric must not wait for a training of hours to end
#: (nor go unsaid when trials fail or are cut). Fewer may be an app that reports the metric every
#: few epochs (Lightning's check_val_every_n_epoch), said as the trial ends.
LACKING_SAID_AT_ONCE = 5


class ReportAdvice:
    """Each warning said once per sweeper run."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self._told: set[str] = set()
        #: Whether any report read had the rule's metric; the first reports without it, by trial.
        self._metric_seen = False
        self._lacking: dict[int, list[Report]] = {}

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
        """Note the reports without the metric the rule judges: they are not judged. What to say
        shows when a trial that had such reports ends (:meth:`if_reports_lacked_the_metric`)."""
        if "metric_missing" in self._told:
            return
        lacking = [r for r in reports if self.rule.metric not in r.metrics]
        self._metric_seen = self._metric_seen or len(lacking) < len(reports)
        if lacking:
            kept = self._lacking.setdefault(number, [])  # one past those named: "..." says there are more
            kept.extend(lacking[: max(0, max(MAX_STEPS_NAMED, LACKING_SAID_AT_ONCE) + 1 - len(kept))])
        if not self._metric_seen and len(self._lacking.get(number, ())) >= LACKING_SAID_AT_ONCE:
            self.if_reports_lacked_the_metric([number])

    def if_reports_lacked_the_metric(self, ended: Iterable[int]) -> None:
        """Once, as the first trial with reports lacking the rule's metric ends: if some reports had
        it, which reports were not judged (the app reports it at some steps only); if none had it,
        that no trial can be stopped (a name that differs)."""
        lacking = [n for n in ended if n in self._lacking]
        if "metric_missing" in self._told or not lacking:
            return
        self._told.add("metric_missing")
        number = min(lacking)
        if self._metric_seen:
            self._say_some_lack_it(number)
            return
        reported = sorted({name for r in self._lacking[number] for name in r.metrics})
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

    def _say_some_lack_it(self, number: int) -> None:
        lacking = self._lacking[number]
        steps = ", ".join(str(r.step) for r in lacking[:MAX_STEPS_NAMED])
        reported = sorted({name for r in lacking for name in r.metrics})
        log.warning(
            "Trial #%d's reports at %s %s%s have %s but not %r, the metric early_stopping judges: those"
            " reports were not judged (reports with %r are). Report %r at every step the rule should judge",
            number,
            "step" if len(lacking) == 1 else "steps",
            steps,
            ", ..." if len(lacking) > MAX_STEPS_NAMED else "",
            reported,
            self.rule.metric,
            self.rule.metric,
            self.rule.metric,
        )

    def if_nothing_was_reported(
        self,
        completed: Iterable[int],
        steps_spent: int,
        monitor_note: Callable[[int], MonitorNeverLogged | None] = lambda _: None,
    ) -> None:
        """Once: a trial completed while no trial has reported yet, where a rule or step budget works
        on reports. An app that never calls report() is never stopped, and its step budget never runs
        out (a sweep of observation_budget 500, set high for the step budget, ran 500 full trainings).
        A trial that failed before its first report says nothing of the app's reports. Without a rule
        or step budget only a SigOptReport whose monitor was never logged is said: the app meant to report."""
        if "nothing_reported" in self._told or steps_spent:
            return
        numbers = sorted(completed)
        # An app with SigOptReport whose monitor it never logged: advice to report would send the
        # user to the callback the app has; the name is what is wrong.
        notes = [(n, note) for n in numbers if (note := monitor_note(n)) is not None]
        if not self.rule.reads_reports:
            # Nothing judges the reports, but the app meant to report (a curve in trials.csv and the
            # journal): a misspelt monitor left the sweep reporting nothing, without a word.
            if notes:
                self._told.add("nothing_reported")
                self._say_monitor_never_logged_unjudged(*notes[0])
            return
        if not numbers:
            return
        self._told.add("nothing_reported")
        if notes:
            self._say_monitor_never_logged(*notes[0])
            return
        number = numbers[0]
        log.warning(
            "Trial #%d completed without reporting a step, and early_stopping (%s) works on what trials report:"
            " call `from hydra_sigopt import report` and %s after each epoch (with Lightning: the callback"
            " hydra_sigopt.lightning.SigOptReport), or no trial is stopped and the step budget never runs out",
            number,
            f"rule {self.rule.rule}" if self.rule.active else f"step_budget {self.rule.step_budget}",
            report_call(self.rule.metric),
        )

    def _say_monitor_never_logged(self, number: int, note: MonitorNeverLogged) -> None:
        log.warning(
            "Trial #%d completed without reporting a step: its SigOptReport(monitor=%r) found that metric"
            " never logged (the app logged %s in trainer.callback_metrics), so it reported nothing, and"
            " early_stopping works on what trials report. Give SigOptReport the name the app logs (%r, the"
            " metric early_stopping judges), or no trial is stopped and the step budget never runs out",
            number,
            note.monitor,
            list(note.logged),
            self.rule.metric,
        )

    def _say_monitor_never_logged_unjudged(self, number: int, note: MonitorNeverLogged) -> None:
        log.warning(
            "Trial #%d completed without reporting a step: its SigOptReport(monitor=%r) found that metric"
            " never logged (the app logged %s in trainer.callback_metrics), so it reported nothing. Give"
            " SigOptReport a name the app logs",
            number,
            note.monitor,
            list(note.logged),
        )


def report_call(metric: str) -> str:
    """The call that reports ``metric``, as valid Python (``val/loss`` is no keyword argument)."""
    keyword_argument = metric.isidentifier() and not keyword.iskeyword(metric)
    return f"report(step, {metric}=...)" if keyword_argument else f"report(step, **{{{metric!r}: ...}})"


__all__ = ["ReportAdvice", "report_call"]
