"""What the engine is told about a trial, built from its journal row: the same live and after a restart.

A result posted by a resumed sweep (its sweeper stopped between recording and posting) carries the
same metadata as one posted at once, and keeps its suggestion: the journal has all of it.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from hydra_sigopt.journal import FAILED, FINISHED_STATES, PENDING, RUNNING, STOPPED, Journal, Trial

#: Runners whose trials run on the sweeper's host: its name is theirs when a failed job could not say.
LOCAL_RUNNERS = ("BasicLauncher", "local")


def observation_metadata(trial: Trial, runner_kind: str, step: int | None = None) -> dict[str, Any]:
    """Job number and id, host, duration, the last step it reported, whether it was stopped early,
    and a failure's reason (already cut and without tokens)."""
    host = trial.host or (socket.gethostname() if runner_kind in LOCAL_RUNNERS else None)
    metadata: dict[str, Any] = {"job_number": trial.number, "job_id": trial.job_id, "host": host, "step": step}
    if trial.duration is not None:
        metadata["duration_s"] = round(trial.duration, 3)
    if trial.state == STOPPED:
        # Stopped early: its values are those of its last report. (Metadata holds strings and numbers only.)
        metadata["stopped_at_step"] = step
    if trial.state == FAILED or (trial.failure_reason and trial.state == STOPPED):
        metadata["failure_reason"] = trial.failure_reason
    return {k: v for k, v in metadata.items() if v is not None}


#: Journal meta: the suggestions the last sweeper's wrap-up kept open (those its journal still
#: needed) once it had released every other; None while a sweeper runs or when the release failed.
#: ``hydra-sigopt kill`` releases only when the journal needs fewer now (the trials a detached stop
#: left running, which it cancels): else it does not wait on a server that may be long gone.
SUGGESTIONS_RELEASED = "open_suggestions_kept"


def released_already(meta: Mapping[str, Any], in_use: Sequence[str]) -> bool:
    """Whether the last wrap-up released every open suggestion but those still ``in_use``."""
    kept = meta.get(SUGGESTIONS_RELEASED)
    return kept is not None and set(kept) <= set(in_use)


def suggestions_in_use(trials: Sequence[Trial]) -> list[str]:
    """The suggestions the journal still needs open: trials in flight, and results not posted yet."""
    return [
        t.suggestion_id
        for t in trials
        if t.suggestion_id and (t.state in (PENDING, RUNNING) or (t.state in FINISHED_STATES and not t.observed))
    ]


def sweep_id(journal: Journal) -> str:
    """The sweep's own id, made once and kept in its journal (older journals get one on resume)."""
    existing = journal.meta().get("sweep_id")
    if existing:
        return str(existing)
    made = uuid.uuid4().hex
    journal.set_meta(sweep_id=made)
    return made
