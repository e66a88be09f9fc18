"""SigOpt multitask (``hydra.sweeper.tasks``): cheaper versions of a training, each with a cost.

Each task is a name, a cost in (0, 1] (the full training costs 1) and the Hydra overrides that make
a trial that cheaper version (``{epochs: 5}``). The engine picks a task with every suggestion and
learns across tasks; the sweep's budget counts costs (a trial of a task costing 0.1 spends 0.1 of
``observation_budget``), so that "at most the compute of 40 full trainings" is a budget of 40.
Only trials of the full task (cost 1) can be the best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra_sigopt.errors import ConfigError
from hydra_sigopt.metrics import Metric
from hydra_sigopt.overrides import bare_key, format_override
from hydra_sigopt.stop_rules import StopRule

#: The keys of one task; ``overrides`` may be left out (the full task usually changes nothing), and
#: ``max_step`` without early stopping.
TASK_KEYS = ("name", "cost", "overrides", "max_step")
#: What SigOpt takes (sigoptlite refused a longer name with tracebacks).
MAX_TASK_NAME_LENGTH = 100
EXAMPLE = "[{name: short, cost: 0.1, overrides: {trainer.max_epochs: 5}}, {name: full, cost: 1}]"


@dataclass(frozen=True)
class Task:
    name: str
    cost: float
    #: Hydra override strings (``key=value``) added to a trial of this task.
    overrides: tuple[str, ...] = ()
    #: The last step a trial of this task reports (None: ``early_stopping.max_step``): it has then
    #: trained in full, and no rule stops it there.
    max_step: int | None = None

    def to_sigopt(self) -> dict[str, Any]:
        return {"name": self.name, "cost": self.cost}


def parse_tasks(raw: Any, metrics: Sequence[Metric], swept_keys: Sequence[str]) -> tuple[Task, ...]:
    """``hydra.sweeper.tasks``: at least two, distinct names and costs, one of cost 1 (what SigOpt asks)."""
    if raw is None or (isinstance(raw, Sequence) and not isinstance(raw, str) and not raw):
        return ()
    if isinstance(raw, str) or not isinstance(raw, Sequence) or len(raw) < 2:
        raise ConfigError("tasks", f"expected a list of at least 2 tasks such as {EXAMPLE}, got {raw!r}")
    tasks = tuple(_task(entry, f"tasks[{i}]", set(swept_keys)) for i, entry in enumerate(raw))
    _check_distinct(tasks)
    optimized = [m for m in metrics if m.strategy == "optimize"]
    if len(optimized) != 1 or any(m.strategy == "constraint" for m in metrics):
        names = [f"{m.name} ({m.strategy})" for m in metrics]
        problem = "SigOpt's multitask needs one optimized metric and no constraint metric"
        raise ConfigError("tasks", f"{problem}, got {names}")
    return tasks


def _task(entry: Any, where: str, swept: set[str]) -> Task:
    if not isinstance(entry, Mapping):
        raise ConfigError(where, f"expected a dict such as {{name: short, cost: 0.1}}, got {entry!r}")
    unknown = sorted(str(k) for k in set(entry) - set(TASK_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown setting; valid settings are {list(TASK_KEYS)}")
    name, cost = entry.get("name"), entry.get("cost")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name", f"expected a non-empty name, got {name!r}")
    if len(name) > MAX_TASK_NAME_LENGTH:
        raise ConfigError(
            f"{where}.name", f"the name is {len(name)} characters long; SigOpt allows at most {MAX_TASK_NAME_LENGTH}"
        )
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not 0 < cost <= 1:
        raise ConfigError(f"{where}.cost", f"expected a number in (0, 1] (the full training costs 1), got {cost!r}")
    overrides = _overrides(entry.get("overrides"), f"{where}.overrides", swept)
    return Task(name, float(cost), overrides, _max_step(entry.get("max_step"), f"{where}.max_step"))


def _max_step(raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(where, f"expected a whole number >= 1 (the last step this task's trials report), got {raw!r}")
    return raw


def check_last_steps(tasks: Sequence[Task], rule: StopRule) -> None:
    """With early stopping, each cheaper task says its last step: the sweeper cannot tell how many
    steps its overrides leave (``epochs: 3``), and a rule judging a trial at its last report (a rung
    at 3) stopped it at its end: the app's code after its training (a test, a checkpoint) never ran."""
    if not rule.reads_reports:
        return
    for i, task in enumerate(tasks):
        where = f"tasks[{i}].max_step"
        if task.max_step is None and task.cost < 1:
            example = f" ({task.overrides[0]}?)" if task.overrides else ""
            problem = f"needed with early stopping: the last step this task's trials report{example}"
            raise ConfigError(
                where, f"{problem}, where no rule stops them (a sweep started without it resumes with it)"
            )
        if task.max_step is not None and rule.max_step is not None and task.max_step > rule.max_step:
            problem = f"expected a whole number from 1 to early_stopping.max_step={rule.max_step}, got {task.max_step}"
            raise ConfigError(where, problem)


def last_step_of(tasks: Sequence[Task], name: str | None, rule: StopRule) -> int | None:
    """The step where a trial of that task has trained in full: its task's ``max_step``, else the rule's."""
    task = task_named(tasks, name)
    return rule.max_step if task is None or task.max_step is None else task.max_step


def _overrides(raw: Any, where: str, swept: set[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"expected a dict {{config key: value}} such as {{epochs: 5}}, got {raw!r}")
    out = []
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(where, f"config keys must be non-empty strings, got {key!r}")
        _check_settable(f"{where}.{key}", bare_key(key), None if key.startswith("~") else value, swept)
        out.append(format_override(key, value))
    return tuple(out)


#: Hydra's settings that every trial shares (the launcher's, the sweeper's): a task's would do nothing.
#: Per-job ones (``hydra.job.env_set``) are the trial's own and do take effect.
_SHARED_HYDRA_KEYS = ("hydra.launcher", "hydra.sweeper", "hydra/launcher", "hydra/sweeper")
#: Where the sweep writes its trials (``hydra.sweep.dir``, ``hydra.sweep.subdir``): a task's own
#: subdir put all its trials in one folder, each over the last; its own dir put them outside the sweep.
_SWEEP_KEY = "hydra.sweep"


def _check_settable(where: str, key: str, value: Any, swept: set[str]) -> None:
    """A task sets no key the whole sweep shares, and none that is swept or set on the command line,
    not even through its parent node (``opt: {lr: 0.9}`` replaced a swept ``opt.lr``: the trial ran
    0.9 while the engine was told the value it suggested; ``~opt`` or ``opt: null`` deleted it). A
    config group's option (``data: subset``) is no such clash: Hydra applies it before the values
    set under it. ``value`` is None for a deletion."""
    if key == "hydra" or any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in _SHARED_HYDRA_KEYS):
        shared = "is Hydra's launcher or sweeper config, shared by every trial; a task cannot change it"
        raise ConfigError(where, shared)
    if key == _SWEEP_KEY or key.startswith(f"{_SWEEP_KEY}."):
        problem = "a task's trials would share a folder or leave the sweep dir; a task cannot change it"
        raise ConfigError(where, f"is where the sweep writes its trials (hydra.sweep); {problem}")
    under = sorted(k for k in swept if k.startswith(f"{key}.")) if _replaces_the_node(value) else []
    if key in swept or under:
        also = f" ({', '.join(under)} is under it)" if under else ""
        raise ConfigError(where, f"is swept or set on the command line{also}; a task cannot set it too")


def _replaces_the_node(value: Any) -> bool:
    """Whether a task's value replaces the node it is set at, and with it the swept keys under it:
    a dict, a number, null or a deletion (``~key``, given as None), an interpolation (``${other}``).
    Not a config group's option: a string, or a list of them (a group of several options)."""
    if isinstance(value, str):
        return "${" in value
    return not isinstance(value, Sequence)


def _check_distinct(tasks: Sequence[Task]) -> None:
    names, costs = [t.name for t in tasks], [t.cost for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError("tasks", f"task names must differ, got {names}")
    if len(set(costs)) != len(costs):
        raise ConfigError("tasks", f"task costs must differ, got {costs}")
    if costs.count(1.0) != 1:
        raise ConfigError("tasks", f"exactly one task must cost 1 (the full training), got costs {costs}")


def task_named(tasks: Sequence[Task], name: str | None) -> Task | None:
    """The task of that name (None without tasks or name); a name the sweep does not know is an error."""
    if not tasks or name is None:
        return None
    found = [t for t in tasks if t.name == name]
    if not found:
        raise ValueError(f"task {name!r} is not one of this sweep's tasks {[t.name for t in tasks]}")
    return found[0]


def cost_of(tasks: Sequence[Task], name: str | None) -> float:
    """What a trial of that task spends of the budget (1 without tasks)."""
    task = task_named(tasks, name)
    return 1.0 if task is None else task.cost


def full_task(tasks: Sequence[Task]) -> Task | None:
    """The task of cost 1, the full training (None without tasks)."""
    return next((t for t in tasks if t.cost == 1.0), None)


def is_full(tasks: Sequence[Task], name: str | None) -> bool:
    """Whether a trial of that task is a full training (always, without tasks): only those can be best."""
    return cost_of(tasks, name) == 1.0
