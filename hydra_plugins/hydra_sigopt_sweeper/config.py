"""Structured config of the SigOpt sweeper: ``hydra/sweeper=sigopt``."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class ApiConf:
    # SigOpt API root, e.g. https://sigopt.example.org/api (default: $SIGOPT_API_URL).
    # Tokens are never set here: they come from $SIGOPT_API_TOKEN or a token file.
    api_url: Optional[str] = None
    # TLS verification: true, false, or the path of a CA bundle (default: $SIGOPT_API_VERIFY_SSL_CERTS or true).
    verify_ssl_certs: Optional[Any] = None
    # Seconds before a request to the API times out.
    timeout: float = 30.0
    # SigOpt project the experiment belongs to (default: $SIGOPT_PROJECT).
    project: Optional[str] = None
    # Attach to this existing experiment instead of creating one.
    experiment_id: Optional[str] = None
    # Stop the sweep (journal intact, resumable) once the API has been unreachable this long.
    max_unreachable_s: float = 600.0
    # Never set: a token here is refused (Hydra writes configs to disk). It exists so that the
    # refusal can say where tokens go: $SIGOPT_API_TOKEN or $SIGOPT_ENV_FILE.
    token: Optional[str] = None


@dataclass
class EarlyStoppingConf:
    # none (every trial runs to its end), median (stop a trial whose best value so far is worse than
    # the median of the other trials' values at the same step) or asha (asynchronous successive
    # halving: at steps min_step * reduction_factor**k, stop a trial outside the top
    # 1/reduction_factor of the values recorded there). The app reports with hydra_sigopt.report().
    rule: str = "none"
    # The reported metric the rule judges (its objective gives the direction); default: the optimized metric.
    metric: Optional[str] = None
    # No trial is stopped before this step (median: its warm-up; asha: its first rung).
    min_step: int = 1
    # asha: no rung beyond this step (usually the steps of a full training); null: no limit.
    max_step: Optional[int] = None
    # asha: 1/reduction_factor of the trials pass each rung, and rungs are this factor apart.
    reduction_factor: float = 3
    # The steps all trials may report together, e.g. 40 full trainings of 50 epochs: 2000. Once
    # spent, no trial starts and running trials are stopped at their next report. null: no limit
    # (observation_budget alone counts trials). Applies with rule none too.
    step_budget: Optional[int] = None
    # What the engine learns from a stopped trial: last_value (an observation with the last value it
    # reported of each metric) or failed (a failed observation: the engine avoids the region).
    observe_stopped: str = "last_value"
    # Seconds a stopped trial's job may run on after its next report was due (to save a checkpoint
    # on TrialStopped) before the sweeper cancels it: an app that swallows TrialStopped, or a
    # process of the trial that hangs, must not hold the slot to the end of its training.
    stop_grace_s: float = 60
    # With tasks: judge a trial against its own task's trials only (apart), or against every task's
    # (together: right only when a cheaper task cuts the same training short, with a schedule that
    # does not follow the epochs; a short trial annealed over fewer epochs is ahead at any step).
    compare_tasks: str = "apart"


SWEEPER_TARGET = "hydra_plugins.hydra_sigopt_sweeper.sigopt_sweeper.SigOptSweeper"
#: The resolver that checks every value of hydra.sweeper as Hydra starts resolving the node.
CHECK_VALUES_RESOLVER = "hydra_sigopt.check_values"


# The Optuna sweeper's settings (as in hydra_sigopt.settings.OPTUNA_KEYS; not imported: this module stays cheap).
OPTUNA_KEYS = (
    "n_trials",
    "direction",
    "n_jobs",
    "sampler",
    "storage",
    "study_name",
    "search_space",
    "custom_search_space",
)


def refuse_other_sweeper(target: str, values_checked: Any = None, **optuna_settings: Any) -> None:
    """Stop what Hydra would otherwise instantiate wrongly, before it does.

    Hydra instantiates ``hydra.sweeper`` as whatever ``_target_`` names, and every nested node
    with a ``_target_`` too, children first and in field order: this check (``_check_target_``,
    the first field) runs before both. A ``_target_`` left from another sweeper would get this
    sweeper's settings and fail with a TypeError that says nothing useful; an Optuna ``sampler``
    node would be built as an Optuna sampler (or fail where Optuna is not installed) before the
    settings are read. Other Optuna settings are refused by ``hydra_sigopt.settings``. The refusal is
    one line, as every other (exit_with_refusal: Hydra would wrap it in its instantiation error).
    ``values_checked`` is what the check of every value (``refuse_unusable_values``) resolved to.
    """
    from hydra_sigopt.errors import ConfigError, exit_with_refusal

    try:
        _refuse_other_sweeper(target, optuna_settings)
    except ConfigError as exc:
        exit_with_refusal(exc)


def _refuse_other_sweeper(target: str, optuna_settings: dict[str, Any]) -> None:
    from hydra_sigopt.errors import ConfigError

    if target != SWEEPER_TARGET:
        from hydra_sigopt.settings import refuse_optuna_keys

        try:  # all in one message: the Optuna settings beside it, not at the next run
            refuse_optuna_keys(optuna_settings)
            others = ""
        except ConfigError as optuna:
            others = f"; and {optuna.key}: {optuna.problem.replace('these are settings', 'settings', 1)}"
            others = others.replace("this is a setting", "a setting", 1)
        raise ConfigError(
            "hydra.sweeper._target_",
            f"is {target!r}, left over from another sweeper, under hydra/sweeper: sigopt; "
            f"remove it (README: 'Coming from the Optuna sweeper'){others}",
        )
    sampler = optuna_settings.get("sampler")
    if isinstance(sampler, dict) and "_target_" in sampler:
        from hydra_sigopt.settings import refuse_optuna_keys

        refuse_optuna_keys(optuna_settings)


def refuse_unusable_values(*, _parent_: Any) -> None:
    """Refuse, in one line, a value of ``hydra.sweeper`` that does not resolve or was never given (``???``).

    Run as the resolver of ``_check_target_.values_checked``, which Hydra resolves before every
    setting as it resolves the sweeper's node to build it (in the node's order; the settings come
    after ``_check_target_``): Hydra's own resolution of a bad value raised a 140-line traceback from
    inside OmegaConf, and nothing of the sweeper runs before it. ``_parent_`` is ``_check_target_``
    in the node Hydra resolves.
    """
    from hydra_sigopt.errors import exit_with_refusal
    from hydra_sigopt.unresolved import first_unusable_value

    refusal = first_unusable_value(_parent_._get_parent(), _declared_default, _valid_values)
    if refusal is not None:
        exit_with_refusal(refusal)


def _declared_default(key: str) -> Optional[str]:
    """The default declared for ``key`` (``early_stopping.max_step``) in Hydra's words; None if undeclared."""
    from hydra_sigopt.overrides import format_value

    undeclared = object()
    default = OmegaConf.select(typed_node(), key, default=undeclared)
    return None if default is undeclared or OmegaConf.is_config(default) else format_value(default)


def _valid_values(key: str) -> Optional[str]:
    """What ``key`` takes, in the words of the sweeper's refusals."""
    from hydra_sigopt.settings import valid_values

    return valid_values(key) or _declared_kind(key)


@dataclass
class SigOptSweeperConf:
    _target_: str = SWEEPER_TARGET

    # Not a setting: Hydra instantiates it first, to refuse a leftover _target_ or Optuna sampler
    # (see refuse_other_sweeper); the sweeper drops it.
    _check_target_: Any = field(
        default_factory=lambda: {
            "_target_": "hydra_plugins.hydra_sigopt_sweeper.config.refuse_other_sweeper",
            "_recursive_": False,
            "_convert_": "all",
            # First resolved of all the sweeper's values: see refuse_unusable_values.
            "values_checked": f"${{{CHECK_VALUES_RESOLVER}:}}",
            "target": "${.._target_}",
            **{key: f"${{..{key}}}" for key in OPTUNA_KEYS},
        }
    )

    # Experiment name shown in SigOpt and in the reports (default: the Hydra job name).
    name: Optional[str] = None

    # Search space by config key: Hydra sweep syntax (interval, int(interval), tag(log, ...),
    # choice, range) or SigOpt parameter dicts (type, bounds, transformation, grid, prior,
    # categorical_values, conditions). Command-line sweeps are added to it.
    params: Dict[str, Any] = field(default_factory=dict)

    # SigOpt metrics: name, objective (maximize|minimize), strategy (optimize|constraint|store),
    # threshold. A single-metric task may return a plain number.
    # (null: [{name: value, objective: minimize}]; typed Any so that a dict given here is refused by name.)
    metrics: Any = None

    # Number of trials to run (failed trials count); with tasks, the compute of this many full trainings,
    # so a fraction (4.5) is meaningful. (Typed Any: a float is refused by name without tasks, not by OmegaConf.)
    observation_budget: Any = 20

    # Trials running at the same time.
    parallel_bandwidth: int = 1

    # Abort once this fraction of finished trials failed (judged over at least 5 trials).
    max_failure_rate: float = 0.5

    # SigOpt engine: lite (sigoptlite in-process) or api (a SigOpt server through the sigopt client).
    backend: str = "lite"

    # Random suggestions through the same path (the original tool's dev token).
    dev_run: bool = False

    # lite only: default (GP, then SPE) or kde_only (fast; for long or high-dimensional sweeps).
    compute_mode: str = "default"

    # lite only: seed of the engine's random number generators, for reproducible sweeps.
    seed: Optional[int] = None

    # SigOpt conditionals: [{name: optimizer, values: [sgd, adam]}]; parameters refer to them in `conditions`.
    conditionals: List[Any] = field(default_factory=list)

    # SigOpt linear constraints over two or more double (or two or more int) parameters.
    linear_constraints: List[Any] = field(default_factory=list)

    # auto: async with submitit launchers, batch otherwise; async: one job per trial, slots refilled
    # as jobs end (submitit launchers only); batch: launch parallel_bandwidth trials and wait for all.
    scheduler: str = "auto"

    # async only: jobs started before their trial is known, which wait (at most a minute, and 5 %
    # of timeout_min) for the next free slot, so that it is refilled without a job's start-up.
    # auto: 2 on submitit_local (1 with parallel_bandwidth 1), 0 on Slurm (a waiting job holds its
    # allocation); or a number.
    warm_jobs: Any = "auto"

    # On Ctrl-C: cancel the running trials, or detach (leave them running; a resumed sweep re-attaches).
    on_interrupt: str = "cancel"

    # Continue the sweep in this sweep dir (the same as running with hydra.sweep.dir=<dir>).
    resume: Optional[str] = None

    # Seconds between progress lines.
    progress_interval: float = 10.0

    # Code the submitit trials run from: none (the working tree, as it is when each job starts), git (a copy
    # of the repository's tracked files, uncommitted changes included, made in the sweep dir at the start) or
    # copy (the app's folder, honouring .gitignore). A resumed sweep keeps its snapshot.
    code_snapshot: str = "none"

    # Stop unpromising trials early, from the intermediate values they report (README: "Early stopping").
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)

    # SigOpt multitask: cheaper versions of the training, e.g. [{name: short, cost: 0.1, overrides:
    # {trainer.max_epochs: 5}}, {name: full, cost: 1}] (with early stopping, each cheaper one also
    # gives its last step, max_step: 5). The engine picks a task per trial; observation_budget then
    # counts costs (README: "Cheaper tasks"). Empty: every trial is a full one.
    tasks: List[Any] = field(default_factory=list)

    # backend=api settings.
    api: ApiConf = field(default_factory=ApiConf)

    # Settings of hydra-optuna-sweeper. Never set: each is refused, all in one message, with what it is
    # here (n_trials -> observation_budget, direction -> metrics[].objective, n_jobs -> parallel_bandwidth,
    # sampler.seed -> seed, storage/study_name -> the sweep dir, search_space -> params,
    # custom_search_space -> conditionals). Declared so that Hydra lets them through to that message.
    n_trials: Optional[Any] = None
    direction: Optional[Any] = None
    n_jobs: Optional[Any] = None
    sampler: Optional[Any] = None
    storage: Optional[Any] = None
    study_name: Optional[Any] = None
    search_space: Optional[Any] = None
    custom_search_space: Optional[Any] = None


def typed_node() -> Any:
    """The sweeper's config with its declared types and defaults, each node open to keys it does not declare.

    A structured node is closed unless its own flag says otherwise (its parent's is not inherited):
    opened, an undeclared key is left to the sweeper's one-line refusal naming the valid keys
    (hydra_sigopt.settings).
    """
    return _opened(OmegaConf.structured(SigOptSweeperConf))


def _sweeper_node() -> Any:
    """What ``hydra/sweeper=sigopt`` puts under ``hydra.sweeper``: the declared keys and their defaults,
    untyped and open; without the dicts and lists (see :func:`_shaped`).

    Typed, Hydra refused a misspelt key (``hydra.sweeper.observation_budgt=5``, or in a config
    file) or a value of another type (``hydra.sweeper.parallel_bandwidth=1.5``) while composing,
    with its multi-line structured-config dump (``full_key:``, ``object_type=SigOptSweeperConf``).
    Let through, each gets the sweeper's one-line refusal before anything is written: the key by
    hydra_sigopt.settings, the type by :func:`with_declared_types` as the sweeper is set up.
    """
    declared = OmegaConf.to_container(typed_node())
    assert isinstance(declared, dict)
    # Opened: Hydra closes the whole config before it applies the command line's overrides.
    return _opened(OmegaConf.create({key: value for key, value in declared.items() if not _shaped(key, value)}))


def _shaped(key: str, value: Any) -> bool:
    """Whether the stored node leaves ``key`` out: a dict or a list (params, early_stopping, tasks, ...).

    Stored, a value of the other shape given for it (``early_stopping: [asha]`` in a config file,
    ``hydra.sweeper.tasks={a:1}``) could not be merged into it: Hydra stopped while composing, in
    four lines ("Cannot merge DictConfig with ListConfig", ``full_key:``, ``object_type=dict``). Left
    out, the value is given as it is and the sweeper's refusal says what it should be; a key left out
    by the user gets its default from the sweeper (hydra_sigopt.settings), as it did from here.
    """
    return isinstance(value, (dict, list)) and key != "_check_target_"


def _opened(node: Any) -> Any:
    """``node`` and its sub-nodes (api, early_stopping, ...) open to undeclared keys, each by its own flag."""
    from omegaconf import DictConfig, OmegaConf

    for child in (node, *(node[key] for key in node if isinstance(node._get_node(key), DictConfig))):
        OmegaConf.set_struct(child, False)
    return node


# What a value of each declared type must be, in the words of the sweeper's other refusals.
_KINDS: Dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def with_declared_types(given: Mapping[str, Any]) -> Dict[str, Any]:
    """``hydra.sweeper``'s values converted to their declared types, as OmegaConf converted them when
    the stored node was typed (``${oc.env:BANDWIDTH}``'s string "2" to the int 2).

    A value that is not of its key's type is refused in one line naming the key and the type
    (``hydra.sweeper.api.timeout: expected a number, got 'abc'``). A dict or list of the wrong
    shape (``early_stopping: null``) is given on as it is: the sweeper's own check says what it
    should look like. Key by key: such a value left the others unconverted, and the sweeper then
    refused a right one (``parallel_bandwidth: ... got '2'``).
    """
    typed = typed_node()
    return {key: _with_declared_type(typed, key, value) for key, value in given.items()}


def _with_declared_type(typed: Any, key: str, value: Any) -> Any:
    """``value`` merged into ``typed``'s ``key`` (see with_declared_types)."""
    from omegaconf.errors import OmegaConfBaseException

    from hydra_sigopt.errors import ConfigError

    try:
        typed.merge_with({key: value})
    except OmegaConfBaseException as exc:
        kind = _declared_kind(str(exc.full_key))
        if kind is None:
            return value
        # from None: Hydra would print the OmegaConf error it came from below the one line.
        raise ConfigError(str(exc.full_key), f"expected {kind}, got {_given_words(exc)}") from None
    return typed[key]


def _given_words(exc: Any) -> str:
    """The refused value as the user wrote it; ``null`` (usually meant as "the default") with that default."""
    from hydra_sigopt.overrides import format_value

    if exc.value is not None:
        return repr(exc.value)
    # In Hydra's words (false, not False); "for none" alone read as "for nothing".
    return f"null; leave it out for its default ({format_value(OmegaConf.select(typed_node(), str(exc.full_key)))})"


def _declared_kind(full_key: str) -> Optional[str]:
    """What the scalar declared at ``full_key`` (``api.timeout``) must be; None for a dict, a list, an
    ``Any`` or an undeclared key."""
    import dataclasses
    import typing

    declared: Any = SigOptSweeperConf
    for part in full_key.split("."):
        if not dataclasses.is_dataclass(declared):
            return None
        declared = typing.get_type_hints(declared).get(part)
    if typing.get_origin(declared) is typing.Union:  # Optional[int] -> int
        declared = next(arg for arg in typing.get_args(declared) if arg is not type(None))
    return _KINDS.get(declared)


OmegaConf.register_new_resolver(CHECK_VALUES_RESOLVER, refuse_unusable_values, replace=True)
ConfigStore.instance().store(
    group="hydra/sweeper", name="sigopt", node=_sweeper_node(), provider="hydra-sigopt-sweeper"
)
