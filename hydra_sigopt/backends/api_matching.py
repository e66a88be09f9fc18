"""Whether an existing server experiment is the search the sweep's config declares (``api.experiment_id``).

Attached to an experiment with other parameters, metrics or tasks, the server would suggest points of
its own search and rank the sweep's values by its own objectives: refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra_sigopt.backends.api_calls import ApiError
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition

#: What a user whose experiment_id names another search can do (a refusal names the key to change).
OTHER_SEARCH_ADVICE = (
    "attach to an experiment of the same search, or leave hydra.sweeper.api.experiment_id out to create one"
)


def check_matches(experiment: Any, definition: ExperimentDefinition, where: str) -> None:
    """Refuse an experiment whose parameters, metrics or tasks differ from the config."""
    server_params = sorted(p.name for p in experiment.parameters or [])
    server_metrics = sorted(m.name for m in experiment.metrics or [])
    ours_params = sorted(definition.space.names)
    ours_metrics = sorted(m.name for m in definition.metrics)
    if server_params != ours_params or server_metrics != ours_metrics:
        raise ApiError(
            f"{where} has parameters {server_params} and metrics "
            f"{server_metrics}, but the sweep declares parameters {ours_params} and metrics {ours_metrics}; "
            f"{OTHER_SEARCH_ADVICE}"
        )
    _check_same_tasks(experiment, definition, where)
    body = definition.to_sigopt()
    ours = {p["name"]: _parameter_text(p) for p in body["parameters"]}
    differences = [
        f"parameter {p.name} is {_parameter_text(_plain(p))} there, {ours[p.name]} here"
        for p in experiment.parameters or []
        if _parameter_text(_plain(p)) != ours[p.name]
    ]
    objectives = {m["name"]: _metric_text(m) for m in body["metrics"]}
    differences += [
        f"metric {m.name} is {_metric_text(_plain(m))} there, {objectives[m.name]} here"
        for m in experiment.metrics or []
        if _metric_text(_plain(m)) != objectives[m.name]
    ]
    if differences:
        raise ApiError(
            f"{where} is another search than the sweep's config: {'; '.join(differences)}; {OTHER_SEARCH_ADVICE}"
        )


def check_project(experiment: Any, project: str | None, key: str, where: str) -> None:
    """Refuse a project other than the attached experiment's: the sweep runs in the experiment's own
    project whatever ``key`` (``api.project`` or ``SIGOPT_PROJECT``) names, and its results would be
    looked for in the wrong one. None or empty: no project given, nothing to compare."""
    theirs = getattr(experiment, "project", None)
    if not project or project == theirs:
        return
    there = "in no project" if theirs is None else f"in project {theirs!r}"
    keep = "leave it out to attach" if theirs is None else f"set it to {theirs} or leave it out to attach"
    raise ConfigError(
        key,
        f"{where} is {there}, not {project!r} (an attached experiment keeps its own project); {keep}, "
        f"or leave hydra.sweeper.api.experiment_id out to create an experiment in {project!r}",
    )


def _plain(obj: Any) -> dict[str, Any]:
    """A client object (Parameter, Metric) as the JSON the server sent."""
    to_json = getattr(obj, "to_json", None)
    return dict(to_json()) if callable(to_json) else dict(obj)


def _number(value: Any) -> str:
    return f"{float(value):g}"


def _parameter_text(p: dict[str, Any]) -> str:
    """A parameter's domain in words: what the server searches (its type, bounds or values, scale)."""
    kind = str(p.get("type"))
    if p.get("categorical_values"):
        names = sorted(str(c["name"] if isinstance(c, dict) else c) for c in p["categorical_values"])
        return f"{kind} of {names}"
    if p.get("grid"):
        return f"{kind} on the grid [{', '.join(_number(v) for v in sorted(float(v) for v in p['grid']))}]"
    bounds = p.get("bounds") or {}
    text = f"{kind} in [{_number(bounds.get('min'))}, {_number(bounds.get('max'))}]"
    return text + (", log scale" if p.get("transformation") == "log" else "")


def _metric_text(m: dict[str, Any]) -> str:
    """What the server does with a metric: its objective, and a strategy or threshold other than the plain one."""
    text = f"to {m.get('objective') or 'maximize'}"
    strategy = m.get("strategy") or "optimize"
    if strategy != "optimize":
        text += f" ({strategy})"
    if m.get("threshold") is not None:
        text += f" with threshold {_number(m['threshold'])}"
    return text


def _check_same_tasks(experiment: Any, definition: ExperimentDefinition, where: str) -> None:
    """The server picks each suggestion's task: a sweep without the experiment's tasks trained its
    cheap ones in full (posted as cheap), other costs mixed two trainings under one name, and tasks
    on a plain experiment failed the sweep at its first suggestion."""
    server_tasks = sorted((str(t.name), float(t.cost)) for t in getattr(experiment, "tasks", None) or [])
    ours_tasks = sorted((t.name, t.cost) for t in definition.tasks)
    if server_tasks != ours_tasks:
        raise ApiError(
            f"{where} has tasks {_tasks_text(server_tasks)}, but the sweep declares {_tasks_text(ours_tasks)}"
            f" (hydra.sweeper.tasks: the same names and costs); {OTHER_SEARCH_ADVICE}"
        )


def _tasks_text(tasks: Sequence[tuple[str, float]]) -> str:
    return "none" if not tasks else ", ".join(f"{name} (cost {cost:g})" for name, cost in tasks)
