"""Whether an existing server experiment is the search the sweep's config declares (``api.experiment_id``).

Attached to an experiment with other parameters, metrics or tasks, the server would suggest points of
its own search and rank the sweep's values by its own objectives: refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_sigopt.backends.api_calls import ApiError
from hydra_sigopt.experiment import ExperimentDefinition


def check_matches(experiment: Any, definition: ExperimentDefinition, where: str) -> None:
    """Refuse an experiment whose parameters, metrics or tasks differ from the config."""
    server_params = sorted(p.name for p in experiment.parameters or [])
    server_metrics = sorted(m.name for m in experiment.metrics or [])
    ours_params = sorted(definition.space.names)
    ours_metrics = sorted(m.name for m in definition.metrics)
    if server_params != ours_params or server_metrics != ours_metrics:
        raise ApiError(
            f"{where} has parameters {server_params} and metrics "
            f"{server_metrics}, but the sweep declares parameters {ours_params} and metrics {ours_metrics}"
        )
    _check_same_tasks(experiment, definition, where)


def _check_same_tasks(experiment: Any, definition: ExperimentDefinition, where: str) -> None:
    """The server picks each suggestion's task: a sweep without the experiment's tasks trained its
    cheap ones in full (posted as cheap), other costs mixed two trainings under one name, and tasks
    on a plain experiment failed the sweep at its first suggestion."""
    server_tasks = sorted((str(t.name), float(t.cost)) for t in getattr(experiment, "tasks", None) or [])
    ours_tasks = sorted((t.name, t.cost) for t in definition.tasks)
    if server_tasks != ours_tasks:
        raise ApiError(
            f"{where} has tasks {_tasks_text(server_tasks)}, but the sweep declares {_tasks_text(ours_tasks)}"
            " (hydra.sweeper.tasks: the same names and costs)"
        )


def _tasks_text(tasks: Sequence[tuple[str, float]]) -> str:
    return "none" if not tasks else ", ".join(f"{name} (cost {cost:g})" for name, cost in tasks)
