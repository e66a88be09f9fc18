"""A trial's life: its states and the transitions between them, enforced by the journal.

::

    pending ──► running ──► completed | failed      (a result: the end of a trial's life)
       │           │ ▲
       │           └─┘ (its job id learnt later)
       └───────────┴──► abandoned                   (stopped without a result; a resumed
                                                     sweep runs its suggestion again)

A finished or abandoned trial never changes state again: a late write (a result arriving after
``hydra-sigopt kill`` abandoned the trial) is refused by the journal, and the writer decides what a
lost race means. Early stopping will add its states here.
"""

from __future__ import annotations

from enum import Enum


class TrialState(str, Enum):
    PENDING = "pending"  # recorded; its job is not known to have started
    RUNNING = "running"  # its job was started (or re-attached)
    COMPLETED = "completed"  # it returned valid metric values
    FAILED = "failed"  # it raised, returned an invalid value, or its job died
    ABANDONED = "abandoned"  # stopped without a result (cancelled, or lost with the sweeper)

    def __str__(self) -> str:
        return self.value


LEGAL_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.PENDING: frozenset({TrialState.RUNNING, TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED}),
    TrialState.RUNNING: frozenset({TrialState.RUNNING, TrialState.COMPLETED, TrialState.FAILED, TrialState.ABANDONED}),
    TrialState.COMPLETED: frozenset(),
    TrialState.FAILED: frozenset(),
    TrialState.ABANDONED: frozenset(),
}
FINISHED = frozenset({TrialState.COMPLETED, TrialState.FAILED})


def is_legal(current: str, target: str) -> bool:
    """Whether a trial in state ``current`` may move to ``target``."""
    return TrialState(target) in LEGAL_TRANSITIONS[TrialState(current)]
