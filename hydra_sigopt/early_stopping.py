"""Early stopping, carried out: read the trials' reports, journal them, ask the rule, stop trials.

The order of effects is the journal's: a report is journaled before the rule sees it, and a stop
decision (the trial ``stopped``, with the values it is observed with) is journaled before the stop
marker tells the trial (journal before effect): a resumed sweep writes the markers of its stopped
trials again, so a decision is never lost, and never taken back.

Trials running as jobs (submitit) are read while the sweep waits for them (:meth:`EarlyStopping.poll`).
A trial running inside the sweeper's own process (Hydra's basic launcher) blocks the sweep loop, so
:func:`hydra_sigopt.reporting.report` calls :meth:`EarlyStopping.check` itself after each report:
the same reading, journaling and deciding, at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt.journal import ABANDONED, STOPPED, IllegalTransition, Journal, Trial
from hydra_sigopt.journal_reports import Report
from hydra_sigopt.metrics import Metric, MetricValue, is_finite_number
from hydra_sigopt.report_advice import ReportAdvice
from hydra_sigopt.report_files import (
    LARGEST_STEP,
    REPORTS_NAME,
    ReportLines,
    monitor_never_logged,
    trial_folder,
    write_judged,
    write_stop,
)
from hydra_sigopt.reporting import set_in_process_hook
from hydra_sigopt.stop_rules import StopRule, decides_at, should_stop
from hydra_sigopt.tasks import Task, last_step_of

log = logging.getLogger("hydra_sigopt")

#: How often (seconds) the reports of trials running as jobs are read while the sweep waits, at
#: least: trials whose steps are shorter are read more often (:meth:`EarlyStopping.read_interval`).
POLL_INTERVAL_S = 1.0
#: The shortest wait between two readings, and its share per running trial: each reading stats and
#: reads every running trial's report file (on NFS too), so many trials are read less often.
MIN_READ_INTERVAL_S = 0.05
READ_INTERVAL_PER_TRIAL_S = 0.002


class EarlyStopping:
    """Journals every trial's reports and stops the trials the rule condemns."""

    def __init__(
        self,
        rule: StopRule,
        journal: Journal,
        root: Path,
        metrics: Sequence[Metric],
        clock: Callable[[], float] = time.monotonic,
        tasks: Sequence[Task] = (),
    ) -> None:
        self.rule = rule
        #: The sweep's tasks: a cheaper one's trials have trained in full at its own max_step.
        self.tasks = tuple(tasks)
        self._task_of: dict[int, str | None] = {}
        self.clock = clock
        self.journal = journal
        self.root = root
        self.metrics = tuple(metrics)
        self._readers: dict[int, ReportLines] = {}
        #: Values of the rule's metric by trial and step: what the rule decides on.
        self._curves: dict[int, dict[int, float]] = {}
        #: The last value each trial reported of each metric: a stopped trial's observation.
        self._latest: dict[int, dict[str, float]] = {}
        self._last_step: dict[int, int] = {}
        self._told_budget_spent = False
        self.advice = ReportAdvice(rule)
        #: The longest step each trial took (by its own clock), and the trials stopped here (the
        #: sweeper's clock at the stop): see overstaying. A stopped trial's job is watched from its
        #: stop, or from its last failed cancel.
        self._longest_step: dict[int, float] = {}
        #: The length of each trial's last step (by its own clock): how often to read its reports.
        self._last_step_length: dict[int, float] = {}
        self._stopped_at: dict[int, float] = {}
        self._watched_from: dict[int, float] = {}
        #: Trials stopped before a restart whose jobs may still run, by number: their job ids.
        self._adopted: dict[int, str] = {}
        #: The steps trials abandoned at a resume had reported (counted in the step budget).
        self._abandoned_steps = 0

    def start(self) -> None:
        """Learn the journal's reports (a resumed sweep's too), tell stopped trials again, take the hook."""
        trials = self.journal.trials()
        abandoned = {t.number for t in trials if t.state == ABANDONED}
        self._learn(r for r in self.journal.reports.all() if r.number not in abandoned)
        for number in sorted(abandoned):  # what they reported after the last sweeper's last read of them
            self.journal.reports.add(self._new_reports(number))
        # Not judged (their suggestions run again), but trained all the same: the step budget
        # bounds compute, and a resume after a kill spent them past it.
        last_steps = self.journal.reports.last_steps()
        self._abandoned_steps = sum(last_steps.get(n, 0) for n in abandoned)
        for t in trials:
            if t.state == STOPPED:
                # The decision is journaled; its marker may not have been written (a kill between the two).
                write_stop(trial_folder(self.root, t.number), self._last_step.get(t.number, 0), "stopped early")
        set_in_process_hook(self.check)

    def close(self) -> None:
        set_in_process_hook(None)

    # ------------------------------------------------------------------ reading and deciding

    def poll(self, numbers: Iterable[int]) -> None:
        """Read, journal and judge the new reports of these running trials."""
        for number in numbers:
            self.check(number)

    def check(self, number: int, decide: bool = True) -> None:
        """Journal trial ``number``'s new reports; stop it if the rule says so (only with ``decide``)."""
        reports = self._new_reports(number)
        if not reports:
            return
        self.journal.reports.add(reports)
        previous = self._last_step.get(number)
        self._learn(reports)
        self.advice.if_past_max_step(number, reports[-1].step)
        if not decide:
            return
        if self.step_budget_spent and not self._trained_in_full(number, reports[-1].step):
            self._stop(number, reports[-1].step, f"early_stopping.step_budget={self.rule.step_budget} is spent")
            return
        if not self.rule.active:
            return
        self.advice.if_the_metric_is_missing(number, reports)
        # Reports read late (epochs faster than the reading), or a cheaper task's last: it completes.
        if not self._trained_in_full(number, reports[-1].step):
            peers = self._peers(number)  # once: a filter over every trial's curve
            for report in reports:
                if should_stop(self.rule, peers, number, report.step):
                    value = self._curves[number][report.step]
                    why = f"{self.rule.metric}={value:.6g} at step {report.step}, early_stopping.rule={self.rule.rule}"
                    self._stop(number, report.step, why)
                    return
        # The trial waits for this verdict (hydra_sigopt.reporting) at the steps where the rule
        # decides, and only there: elsewhere a file written per trial and poll is churn (on NFS).
        befores = [previous, *(r.step for r in reports[:-1])]
        if any(decides_at(self.rule, before, r.step) for before, r in zip(befores, reports)):
            write_judged(trial_folder(self.root, number), reports[-1].step)

    def read_interval(self, running: Collection[int]) -> float:
        """How long the sweep may wait before reading the running trials' reports again.

        A trial waits for the verdict on a report where the rule decides as long as its last step
        took (:mod:`hydra_sigopt.reporting`), so reading at half the shortest step lets a condemned
        trial stop at that very report. Read once a second, trials of 0.1 s steps trained a median of
        several steps past their stop in the multi-fidelity benchmark, and those steps are compute
        spent for nothing. Within [MIN_READ_INTERVAL_S, POLL_INTERVAL_S], the floor growing with the
        number of trials read.
        """
        lengths = [self._last_step_length[n] for n in running if n in self._last_step_length]
        if not lengths:
            return POLL_INTERVAL_S
        floor = max(MIN_READ_INTERVAL_S, READ_INTERVAL_PER_TRIAL_S * len(running))
        return min(POLL_INTERVAL_S, max(floor, min(lengths) / 2))

    def _trained_in_full(self, number: int, step: int) -> bool:
        """Whether a report at ``step`` ends trial ``number``'s full training (``max_step``, or its
        task's): the budget it spends is spent already, and stopping it would only throw its result
        away (it completes)."""
        full_at = last_step_of(self.tasks, self._task(number), self.rule)
        return full_at is not None and step >= full_at

    def _task(self, number: int) -> str | None:
        if number not in self._task_of:
            self._task_of[number] = self.journal.trial(number).task if self.tasks else None
        return self._task_of[number]

    def _peers(self, number: int) -> dict[int, dict[int, float]]:
        """The curves trial ``number`` is judged against: its task's trials' (``compare_tasks:
        apart``). A cheaper task's trial is ahead of a full training at the same step wherever the
        schedule follows the epochs (a learning rate annealed over them): judged together, a
        tester's sweep stopped every full training and ended with no result."""
        if self.rule.compare_tasks == "together":
            return self._curves
        task = self._task(number)
        return {n: curve for n, curve in self._curves.items() if self._task(n) == task}

    @property
    def steps_spent(self) -> int:
        """The steps reported so far, summed over the trials (those abandoned before a resume too)."""
        return sum(self._last_step.values()) + self._abandoned_steps

    @property
    def step_budget_spent(self) -> bool:
        return self.rule.step_budget is not None and self.steps_spent >= self.rule.step_budget

    def newly_spent(self) -> bool:
        """True the first time the step budget is found spent: the sweep starts no trial from then on."""
        if self._told_budget_spent or not self.step_budget_spent:
            return False
        self._told_budget_spent = True
        log.info(
            "early_stopping.step_budget=%d is spent (%d steps reported): no trial starts any more, and the"
            " running ones stop at their next report",
            self.rule.step_budget,
            self.steps_spent,
        )
        return True

    def overstaying(self, running: Iterable[int]) -> list[tuple[int, float]]:
        """The trials stopped here whose jobs still run a step and ``stop_grace_s`` after the stop,
        each once, with the seconds since it: to be cancelled.

        A stopped trial learns of it at its next report (a step later at most: the longest step it
        took so far, a queue wait left out) and may then save a checkpoint. A job still running
        after that swallowed ``TrialStopped`` (a catch-all ``except Exception``) or hangs (a rank
        of a multi-process trial that missed the stop waits in a collective): it would hold its
        slot to the end.
        """
        now, late = self.clock(), []
        for number in running:
            watched_from = self._watched_from.get(number)
            step = self._longest_step.get(number, 0.0)
            if watched_from is not None and now - watched_from >= step + self.rule.stop_grace_s:
                del self._watched_from[number]
                late.append((number, now - self._stopped_at[number]))
        return late

    def adopt_stopped_jobs(self, trials: Iterable[Trial]) -> None:
        """Watch the jobs of trials stopped before a restart (not observed: their jobs had not ended)
        as those stopped here: their stop time is the journal's, their longest step their report
        file's. :meth:`overstaying_adopted` returns them once they overstay."""
        now, wall = self.clock(), time.time()
        for t in trials:
            if t.job_id is None or t.ended_at is None:
                continue
            self._adopted[t.number] = str(t.job_id)
            self._stopped_at[t.number] = self._watched_from[t.number] = now - max(0.0, wall - t.ended_at)
            for line in ReportLines(trial_folder(self.root, t.number) / REPORTS_NAME).new_lines():
                if isinstance(line, dict):
                    self._note_step_length(t.number, line.get("took"))

    def overstaying_adopted(self) -> list[tuple[int, str, float]]:
        """(number, job id, seconds since the stop) of the adopted trials that overstay, each once."""
        return [(n, self._adopted.pop(n), since) for n, since in self.overstaying(list(self._adopted))]

    def adopt_again(self, jobs: Iterable[tuple[int, str]]) -> None:
        """These adopted jobs' cancels failed: they overstay again a step and stop_grace_s from now."""
        jobs = list(jobs)
        self._adopted.update(jobs)
        self.retry_cancel_later(number for number, _ in jobs)

    def retry_cancel_later(self, numbers: Iterable[int]) -> None:
        """These trials' cancels failed (the cluster out of reach): :meth:`overstaying` returns them
        again a step and ``stop_grace_s`` from now, if their jobs still run then."""
        for number in numbers:
            self._watched_from[number] = self.clock()

    def journal_last_reports(self, numbers: Iterable[int]) -> None:
        """Journal what these trials reported before their jobs ended, unjudged (their results are
        recorded next: a trial is not stopped after the fact); at a resume too, before :meth:`start`."""
        for number in numbers:
            self.check(number, decide=False)

    def advise_on_completed(self, completed: Iterable[int]) -> None:
        """What trials that completed show of how the app reports (see ReportAdvice)."""
        completed = list(completed)
        self.advice.if_nothing_was_reported(
            completed, self.steps_spent, lambda n: monitor_never_logged(trial_folder(self.root, n))
        )
        self.advice.if_reports_lacked_the_metric(completed)

    def _stop(self, number: int, step: int, why: str) -> None:
        values, missing = self._observation_of(number)
        # Its last step: several reports may be read at once, and it is stopped after the last.
        last = self._last_step[number]
        reason = f"stopped early at step {last} before reporting {', '.join(missing)}" if missing else None
        if reason is None and self.rule.observe_stopped == "failed":
            reason = f"stopped early at step {last} (early_stopping.observe_stopped: failed)"
        try:
            self.journal.mark_stopped(number, values, failure_reason=reason)
        except IllegalTransition:
            return  # it ended (or was abandoned) meanwhile: nothing to stop
        write_stop(trial_folder(self.root, number), step, why)
        self._stopped_at[number] = self._watched_from[number] = self.clock()
        told = f"; observed as failed: {reason}" if reason else ""
        judged = "" if last == step else f", its last report read; the rule judged its report of step {step}"
        log.info("Trial #%d stopped early at step %d%s (%s)%s", number, last, judged, why, told)

    def _observation_of(self, number: int) -> tuple[list[MetricValue], list[str]]:
        """The stopped trial's observation: each metric's last reported value; the metrics never reported."""
        latest = self._latest.get(number, {})
        values = [MetricValue(m.name, latest[m.name]) for m in self.metrics if m.name in latest]
        return values, [m.name for m in self.metrics if m.name not in latest]

    # ------------------------------------------------------------------ the report files

    def _new_reports(self, number: int) -> list[Report]:
        reader = self._readers.get(number)
        if reader is None:
            reader = self._readers[number] = ReportLines(trial_folder(self.root, number) / REPORTS_NAME)
        reports: list[Report] = []
        for line in reader.new_lines():
            report = self._valid(number, line, reports[-1].step if reports else self._last_step.get(number))
            if report is not None:
                reports.append(report)
                self._note_step_length(number, line.get("took"))
        return reports

    def _note_step_length(self, number: int, took: Any) -> None:
        """A report's step length (absent from lines of older versions: then only the grace counts)."""
        if is_finite_number(took) and took > 0:
            self._longest_step[number] = max(float(took), self._longest_step.get(number, 0.0))
            self._last_step_length[number] = float(took)

    def _valid(self, number: int, line: Any, last: int | None) -> Report | None:
        """A report line as written by :func:`~hydra_sigopt.reporting.report`; anything else is ignored.

        A step not after the last one journaled is a line read again (a resumed sweep reads each
        file from its start) or a requeued job reporting its first steps again: skipped quietly.
        """
        problem = _problem(line)
        if problem is not None:
            log.warning("Trial #%d: a line of its report file is ignored (%s): %.200r", number, problem, line)
            return None
        if last is not None and line["step"] <= last:
            return None
        metrics = {str(k): float(v) for k, v in line["metrics"].items()}
        return Report(number, int(line["step"]), metrics, line.get("time"))

    def _learn(self, reports: Iterable[Report]) -> None:
        for r in reports:
            self._last_step[r.number] = max(r.step, self._last_step.get(r.number, r.step))
            self._latest.setdefault(r.number, {}).update(r.metrics)
            if self.rule.metric in r.metrics:
                self._curves.setdefault(r.number, {})[r.step] = r.metrics[self.rule.metric]


def _problem(line: Any) -> str | None:
    if not isinstance(line, dict) or not isinstance(line.get("metrics"), dict) or not line["metrics"]:
        return "not a report"
    step = line.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= LARGEST_STEP:
        return f"step {step!r} is not a whole number from 0 to {LARGEST_STEP}"
    for name, value in line["metrics"].items():
        if not is_finite_number(value):
            return f"{name}={value!r} is not a finite number"
    return None
