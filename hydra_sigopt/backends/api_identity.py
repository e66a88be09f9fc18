"""Whether the experiment at a sweep's experiment id is still the one the sweep created or attached to.

A server restored from a backup, redeployed or replaced at the same URL numbers its experiments
from 1 again: the id a journal holds may name a colleague's experiment by now. The sweep records
the experiment's ``created`` time (the server's) in its journal when it creates or attaches to it;
a resume, ``hydra-sigopt kill`` and ``hydra-sigopt delete`` compare it (a journal from before that
record is taken as it is). An experiment the server no longer has (HTTP 404) is named as gone,
with what the journal still holds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hydra_sigopt.backends.api_calls import ApiError

#: The journal meta key of the experiment's ``created`` time.
CREATED_KEY = "experiment_created"


class ExperimentNotThisSweepsError(ApiError):
    """The experiment id names another experiment than the sweep's (or none: ``status`` 404)."""


def created_of(experiment: Any) -> int | None:
    created = getattr(experiment, "created", None)
    return None if created is None else int(created)


def _when(created: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))


def check_same_experiment(experiment: Any, expected_created: Any, experiment_id: str, url: str) -> None:
    """Refuse an experiment created at another time than the one the journal recorded (None: not recorded)."""
    found = created_of(experiment)
    if expected_created is None or found is None or int(expected_created) == found:
        return
    raise ExperimentNotThisSweepsError(
        f"SigOpt experiment {experiment_id} at {url} is not this sweep's: it was created {_when(found)}, this "
        f"sweep's {_when(int(expected_created))} (the server lost its data, or another server answers at this URL, "
        "and the id was given again); nothing was sent to it"
    )


def experiment_gone(experiment_id: str, url: str) -> ExperimentNotThisSweepsError:
    return ExperimentNotThisSweepsError(
        f"this sweep's SigOpt experiment {experiment_id} is not at {url} any more (HTTP 404: it was deleted, or the "
        "server lost its data)",
        404,
    )


def journal_advice(sweep_dir: Any) -> str:
    """What a user whose sweep lost its experiment can do: the journal keeps every result."""
    return (
        f"the journal in {sweep_dir} keeps every result of this sweep (trials.csv, hydra-sigopt best); "
        f"start a new sweep (another hydra.sweep.dir), or drop this one with hydra-sigopt delete {sweep_dir} "
        "--local-only"
    )


def other_sweeps_objects(observations: list[Any], open_suggestions: list[Any], sweep_id: str | None) -> int:
    """How many observations and open suggestions of the experiment another sweep made (by metadata ``sweep_id``)."""

    def other(obj: Any) -> bool:
        metadata: Mapping[str, Any] = dict(getattr(obj, "metadata", None) or {})
        theirs = metadata.get("sweep_id")
        return theirs is not None and str(theirs) != str(sweep_id)

    return sum(1 for o in [*observations, *open_suggestions] if other(o))
