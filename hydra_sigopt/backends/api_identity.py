"""Whether the experiment at a sweep's experiment id is still the one the sweep created or attached to.

A server restored from a backup, redeployed or replaced at the same URL numbers its experiments
from 1 again: the id a journal holds may name a colleague's experiment by now, so the id alone
identifies nothing across such a loss. A sweep writes its own id (``sweep_id``) into the metadata of
the experiment it creates, and records in its journal, when it creates or attaches to one, the
sweep id the experiment carries (:data:`TAG_KEY`) and its ``created`` time (the server's, in whole
seconds: two experiments made in one second share it); a resume, ``hydra-sigopt kill`` and
``hydra-sigopt delete`` compare the sweep id where both are known, else the time (a journal from
before either record is taken as it is). An experiment the server no longer has (HTTP 404) is named as gone,
with what the journal still holds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from hydra_sigopt.backends.api_calls import ApiError
from hydra_sigopt.errors import EngineLostError
from hydra_sigopt.sigopt_client import import_sigopt

#: The journal meta key of the experiment's ``created`` time.
CREATED_KEY = "experiment_created"
#: The journal meta key of the sweep id in the experiment's metadata: the sweep that created it.
TAG_KEY = "experiment_sweep_id"
#: The experiment metadata key naming the sweep that created it (as on suggestions and observations).
SWEEP_ID_KEY = "sweep_id"


class ExperimentNotThisSweepsError(ApiError, EngineLostError):
    """The experiment id names another experiment than the sweep's (or none: ``status`` 404)."""


def created_of(experiment: Any) -> int | None:
    created = getattr(experiment, "created", None)
    return None if created is None else int(created)


def tag_of(experiment: Any) -> str | None:
    """The id of the sweep that created ``experiment`` (None: not made by a sweep of this sweeper's)."""
    metadata = getattr(experiment, "metadata", None)
    tag = dict(metadata).get(SWEEP_ID_KEY) if metadata is not None else None
    return None if tag is None else str(tag)


def _when(created: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))


def check_same_experiment(
    experiment: Any, expected: Mapping[str, Any], experiment_id: str, url: str, then: str
) -> None:
    """Refuse an experiment other than the one the journal's meta ``expected`` recorded: made by another
    sweep, or (where either has no sweep id) created at another time; nothing recorded: taken as it is."""
    expected_tag, found_tag = expected.get(TAG_KEY), tag_of(experiment)
    if expected_tag is not None and found_tag is not None:
        if str(expected_tag) == found_tag:
            return
        raise _not_this_sweeps(experiment_id, url, f"by sweep {found_tag}, this sweep's by sweep {expected_tag}", then)
    expected_created, found = expected.get(CREATED_KEY), created_of(experiment)
    if expected_created is None or found is None or int(expected_created) == found:
        return
    raise _not_this_sweeps(experiment_id, url, f"{_when(found)}, this sweep's {_when(int(expected_created))}", then)


def _not_this_sweeps(experiment_id: str, url: str, created: str, then: str) -> ExperimentNotThisSweepsError:
    return ExperimentNotThisSweepsError(
        f"SigOpt experiment {experiment_id} at {url} is not this sweep's: it was created {created} (the server "
        f"lost its data, or another server answers at this URL, and the id was given again); {then}"
    )


def experiment_gone(experiment_id: str, url: str) -> ExperimentNotThisSweepsError:
    return ExperimentNotThisSweepsError(
        f"this sweep's SigOpt experiment {experiment_id} is not at {url} any more (HTTP 404: it was deleted, or the "
        "server lost its data)",
        404,
    )


def raise_if_gone(backend: Any) -> None:
    """After an HTTP 404 of a started sweep's call: if the experiment itself is gone, say that (not the 404 of a
    suggestion or observation). A started sweep knows its experiment's ``created`` time."""
    if backend.experiment_id is None or backend.experiment_created is None:
        return
    sigopt = import_sigopt()
    try:
        backend.connection.experiments(backend.experiment_id).fetch()
    except sigopt.exception.ApiException as exc:
        if exc.status_code == 404:
            raise experiment_gone(str(backend.experiment_id), backend.shown_url) from None
    except Exception:  # any other answer: the 404 stands as it was
        return


class Kept(NamedTuple):
    """Why an experiment is left as it is, and whether it is the sweep's own (then its open suggestions go)."""

    reason: str
    ours: bool


def why_keep(backend: Any, meta: Mapping[str, Any]) -> Kept | None:
    """Why ``hydra-sigopt delete`` must leave the sweep's server experiment as it is: another experiment
    is at its id by now, or other sweeps' observations or open suggestions are in it (None: delete it).

    An experiment the server no longer has (HTTP 404) raises :class:`ExperimentNotThisSweepsError`.
    """
    eid, url = str(backend.experiment_id), backend.shown_url
    try:
        experiment = backend.fetch(f"fetch experiment {eid}", lambda e: e.fetch())
    except ApiError as exc:
        if exc.status == 404:
            raise ExperimentNotThisSweepsError(
                f"SigOpt experiment {eid} is not at {url} any more (HTTP 404: it was deleted, or the server lost its "
                "data)",
                404,
            ) from None
        raise
    try:
        check_same_experiment(experiment, meta, eid, url, "it is left as it is")
    except ExperimentNotThisSweepsError as exc:
        return Kept(str(exc), ours=False)
    mine = meta.get("sweep_id")
    observations = backend.fetch("list observations", lambda e: list(e.observations().fetch().iterate_pages()))
    suggestions = backend.fetch(
        "list open suggestions", lambda e: list(e.suggestions().fetch(state="open").iterate_pages())
    )
    theirs = [_of_another_sweep(o, mine) for o in observations], [_of_another_sweep(s, mine) for s in suggestions]
    if not any(theirs[0]) and not any(theirs[1]):
        return None
    return Kept(
        f"SigOpt experiment {eid} is left as it is: {sum(theirs[0])} observations and {sum(theirs[1])} open "
        "suggestions of other sweeps are in it (they attached to it with hydra.sweeper.api.experiment_id)",
        ours=True,
    )


def _of_another_sweep(obj: Any, sweep_id: Any) -> bool:
    """Whether the metadata of a server object names another sweep than ``sweep_id``."""
    metadata: Mapping[str, Any] = dict(getattr(obj, "metadata", None) or {})
    theirs = metadata.get("sweep_id")
    return theirs is not None and str(theirs) != str(sweep_id)
