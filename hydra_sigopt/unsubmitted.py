"""Trials whose job was never submitted when the sweep stops: nothing runs, so nothing is left
running or cancelled.

``sbatch`` refusing a trial's job for good (an invalid partition, a gres the cluster lacks) stops
the sweep at once; so do refusals that outlast their retries, and a Ctrl-C may come while trials
wait for the cluster to take their jobs. Such a trial stays pending in the journal, as one whose
sweeper died before submitting it: a resumed sweep (the launcher config fixed) runs its suggestion
again. Why it was never submitted is kept in the journal's meta (``never_submitted``), for
``hydra-sigopt status`` and the resume's log to say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hydra_sigopt.journal import PENDING, Journal, Trial

if TYPE_CHECKING:  # hydra-sigopt status reads the journal's note without loading the runners
    from hydra_sigopt.runners import TrialRunner
    from hydra_sigopt.scheduler import Scheduler

#: The journal's meta entry: trial number (a string, as JSON has it) -> the refusal of its job.
NEVER_SUBMITTED = "never_submitted"


def set_aside_unsubmitted(runner: TrialRunner, scheduler: Scheduler, journal: Journal, said: str = "") -> str:
    """Take the trials whose job was never submitted out of those in flight, and note why in the
    journal; what to tell the user ('' if there are none). ``said``: what the stop message says
    already (the refusal that stopped the sweep is not repeated)."""
    dropped = {n: why for n, why in runner.drop_unsubmitted().items() if n in scheduler.in_flight}
    if not dropped:
        return ""
    for number in dropped:
        del scheduler.in_flight[number]  # not running: neither left running nor cancelled
    noted = journal.meta().get(NEVER_SUBMITTED) or {}
    journal.set_meta(**{NEVER_SUBMITTED: {**noted, **{str(n): why for n, why in dropped.items()}}})
    return _say(dropped, said)


def _say(dropped: Mapping[int, str], said: str) -> str:
    numbers = sorted(dropped)
    why = dropped[numbers[0]]
    because = f" ({why})" if why and why not in said else ""
    once = ", once the refusal's cause is fixed" if why else ""  # the same command would be refused again
    if len(numbers) == 1:
        return f"Trial #{numbers[0]} was never submitted{because}; a resumed sweep submits it{once}"
    return f"Trials {numbers} were never submitted{because}; a resumed sweep submits them{once}"


def never_submitted(meta: Mapping[str, Any], trial: Trial) -> str | None:
    """Why a trial's job was never submitted, if a stop said so and it still waits for one; else None."""
    if trial.state != PENDING or trial.job_id:
        return None
    noted = meta.get(NEVER_SUBMITTED) or {}
    why = noted.get(str(trial.number))
    return None if why is None else str(why)
