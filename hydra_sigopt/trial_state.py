"""A trial's life: its states and the transitions between them, enforced by the journal.

::

    pending ──► running ──► completed | failed      (a result: the end of a trial's life)
       │         │ │ ▲
       │         │ └─┘ (its job id learnt later)
       │         └────► stopped ···► completed      (stopped early: its last reports are its result;
       │                                              or its job had trained to its end: RECOVERIES)
       └─────────┴────► abandoned ···► completed    (stopped without a result; a resumed
                                                     sweep replaces it, unless its job wrote a
                                                     result after all: see RECOVERIES)

A finished trial never changes state again, nor does an abandoned one in a running sweep: a late
write (a result arriving after ``hydra-sigopt kill`` abandoned the trial) is refused by the
journal, and the writer decides what a lost race means. A stopped trial is final as soon as the
sweeper journals its decision (before the trial is told): its job ends at its next report, and
whatever it does then (returns, fails) changes nothing: its observation is its last reported values,
unless the trial never learnt of the stop and returned a result (see RECOVERIES).
"""

from __future__ import annotations

from enum import Enum


class TrialState(str, Enum):
    PENDING = "pending"  # recorded; its job is not known to have started
    RUNNING = "running"  # its job was started (or re-attached)
    COMPLETED = "completed"  # it returned valid metric values
    FAILED = "failed"  # it raised, returned an invalid value, or its job died
    ABANDONED = "abandoned"  # stopped without a result (cancelled, or lost with the sweeper)
    STOPPED = "stopped"  # stopped early by the early-stopping rule; its last reports are its result

    def __str__(self) -> str:
        return self.value


LEGAL_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.PENDING: frozenset({TrialState.RUNNING, TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED}),
    TrialState.RUNNING: frozenset(
        {TrialState.RUNNING, TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED, TrialState.STOPPED}
    ),
    TrialState.COMPLETED: frozenset(),
    TrialState.STOPPED: frozenset(),
    TrialState.FAILED: frozenset(),
    TrialState.ABANDONED: frozenset(),
}
#: A trial abandoned while its job went on (a cancel that did not reach the job, or came too late)
#: whose job then wrote a result: a resumed sweep that finds that result in the job's folder
#: completes the trial with it (``Journal.recover_result``). Only a resume does this, and only with
#: a valid result: a failure written after the cancel is most likely the cancel's doing.
#: A trial abandoned by a stop whose cancel of its job then failed (slurmctld unreachable, say): the
#: job runs on, so the trial is running again (``Journal.keep_running``), for a resumed sweep to
#: re-attach and ``hydra-sigopt kill`` to cancel again. Only the stop that abandoned it does this.
#: A trial stopped on reports the sweeper read only after the trial had trained to its end (epochs
#: faster than it reads them, a busy or resumed sweeper): the trial never learnt of the stop and
#: returned its result, which completes it (``Journal.recover_result``), if its stopped
#: observation was not posted yet.
RECOVERIES: dict[TrialState, frozenset[TrialState]] = {
    TrialState.ABANDONED: frozenset({TrialState.COMPLETED, TrialState.RUNNING}),
    TrialState.STOPPED: frozenset({TrialState.COMPLETED}),
}
FINISHED = frozenset({TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED})


def is_legal(current: str, target: str, recovering: bool = False) -> bool:
    """Whether a trial in state ``current`` may move to ``target`` (by a resume's recovery: ``recovering``)."""
    table = RECOVERIES if recovering else LEGAL_TRANSITIONS
    return TrialState(target) in table.get(TrialState(current), frozenset())
