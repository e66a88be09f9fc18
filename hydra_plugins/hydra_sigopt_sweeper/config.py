"""Structured config of the SigOpt sweeper: ``hydra/sweeper=sigopt``."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


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


def refuse_other_sweeper(target: str, **optuna_settings: Any) -> None:
    """Stop what Hydra would otherwise instantiate wrongly, before it does.

    Hydra instantiates ``hydra.sweeper`` as whatever ``_target_`` names, and every nested node
    with a ``_target_`` too, children first and in field order: this check (``_check_target_``,
    the first field) runs before both. A ``_target_`` left from another sweeper would get this
    sweeper's settings and fail with a TypeError that says nothing useful; an Optuna ``sampler``
    node would be built as an Optuna sampler (or fail where Optuna is not installed) before the
    settings are read. Other Optuna settings are refused by ``hydra_sigopt.settings``.
    """
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


ConfigStore.instance().store(
    group="hydra/sweeper", name="sigopt", node=SigOptSweeperConf, provider="hydra-sigopt-sweeper"
)
