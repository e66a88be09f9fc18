"""The sweeper's work on Hydra's side: config, launcher, sweep dir; then :class:`~hydra_sigopt.sweep.Sweep`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict

if TYPE_CHECKING:  # for the annotation only: the sweep's modules are imported as it starts, below
    from hydra_sigopt.sweep import Sweep

log = logging.getLogger("hydra_sigopt")


class SigOptSweeperImpl:
    def __init__(self, sweeper_config: Mapping[str, Any]) -> None:
        self.raw = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in sweeper_config.items()
        }
        self.config: DictConfig | None = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config
        _keep_task_interpolations(self.raw, config)

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        from hydra_sigopt.errors import SweepAbortedError

        try:
            sweep = self._prepare(arguments)
        except KeyboardInterrupt:  # before the sweep takes over the signals (Sweep.run): a stop all the same
            raise SweepAbortedError("Interrupted before the sweep started; nothing was written or run") from None
        return sweep.run()

    def _prepare(self, arguments: list[str]) -> Sweep:
        """Check the settings and build the launcher, the runner, the engine and the :class:`Sweep`."""
        from hydra.core.plugins import Plugins

        from hydra_sigopt.backends import create_backend
        from hydra_sigopt.config_keys import floats_for_int_keys
        from hydra_sigopt.continuation import config_sets_multirun, current_command
        from hydra_sigopt.crashpoints import crash_point
        from hydra_sigopt.engine_speed import slow_engine_warnings, stopped_as_failed_warning
        from hydra_sigopt.metrics import default_objective_warning
        from hydra_sigopt.report_files import trials_root
        from hydra_sigopt.runners import TimedTask, make_runner
        from hydra_sigopt.secrets import refuse_tokens_in_config
        from hydra_sigopt.settings import parse_settings, sweep_dir_mode
        from hydra_sigopt.stop_rules import open_ended_warning, unstoppable_warning
        from hydra_sigopt.sweep import Sweep
        from hydra_sigopt.sweepdir import refuse_missing_journal

        assert self.config is not None
        refuse_tokens_in_config(self.raw)
        # Validate everything before a launcher, an engine or a folder exists.
        settings, definition = parse_settings(self.raw, arguments, default_name=str(self.config.hydra.job.name))
        mode = sweep_dir_mode(self.config)
        self._check_trials_compose(definition.space, definition.tasks, arguments)
        for warning in floats_for_int_keys(definition.space, self.config):
            log.warning("%s", warning)
        for warning in slow_engine_warnings(settings, definition):
            log.warning("The sweep will be slow: %s", warning)
        for caveat in (
            default_objective_warning(self.raw.get("metrics")),
            stopped_as_failed_warning(settings, definition),
            open_ended_warning(settings.early_stopping),
        ):
            if caveat:
                log.warning("%s", caveat)
        if settings.resume:
            refuse_missing_journal(Path(settings.resume).expanduser())
            self._use_sweep_dir(settings.resume)
        else:
            # Absolute from here on: trials run from other dirs than this one (a code snapshot's
            # folder; with the basic launcher, in this process, Hydra 1.1's change into the job's
            # dir, or the app's own os.chdir), and a relative path would follow them.
            self._use_sweep_dir(str(self.config.hydra.sweep.dir))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))

        crash_point("before_launcher")  # the settings checked, the launcher and the engine not yet made
        detached = settings.on_interrupt == "detach"
        task = TimedTask(self.task_function, trials_root(sweep_dir), settings.early_stopping, detached)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=task, config=self.config
        )
        code = self._code_plan(settings.code_snapshot, launcher, sweep_dir)
        definition = self._within_launcher_limits(definition, launcher)
        runner = make_runner(launcher, settings.scheduler, settings.warm_jobs, definition.parallel_bandwidth)
        if caveat := unstoppable_warning(settings.early_stopping, runner.reads_reports_while_running, runner.kind):
            log.warning("%s", caveat)
        # The engine, its token and URL come before any folder; a new sweep's experiment is created
        # by Sweep.run once it holds the sweep dir's lock (two sweeps started at once make one).
        backend = create_backend(settings.backend, **self._backend_options(settings, sweep_dir))
        return Sweep(
            settings,
            definition,
            sweep_dir,
            runner,
            backend,
            command=current_command(config_sets_multirun(_hydra_overrides(self.config))),
            # Once the sweep dir's lock is held: a refused second sweeper overwrites nothing.
            on_locked=lambda: self._write_sweep_dir(sweep_dir, mode),
            code=code,
        )

    @staticmethod
    def _within_launcher_limits(definition: Any, launcher: Any) -> Any:
        """The definition with no more trials at once than the launcher lets run (array_parallelism)."""
        import dataclasses

        from hydra_sigopt.runners import bandwidth_within_array_parallelism, is_submitit_launcher

        if not is_submitit_launcher(launcher):
            return definition
        bandwidth = bandwidth_within_array_parallelism(launcher, definition.parallel_bandwidth)
        return dataclasses.replace(definition, parallel_bandwidth=bandwidth)

    def _code_plan(self, mode: str, launcher: Any, sweep_dir: Path) -> Any:
        """What ``code_snapshot`` copies, checked before anything is written; a no-op for in-process trials."""
        from hydra_sigopt.runners import is_submitit_launcher
        from hydra_sigopt.snapshot import CodePlan, CodeWatch, app_dir_of, plan_snapshot

        app_dir = app_dir_of(self.task_function)
        if is_submitit_launcher(launcher):
            _rerun_from_an_edited_scripts_copy(self.task_function, sweep_dir)
        if not is_submitit_launcher(launcher):
            # Logged once the journal says whether this resumes a sweep that has a snapshot.
            return CodePlan(
                mode, None, app_dir, not_from_snapshot=f"{type(launcher).__name__}: {_why_no_snapshot(launcher)}"
            )
        # Run from the snapshot's own copy (a resume, see _rerun_from_an_edited_scripts_copy): it is the snapshot.
        source = None if _is_within(app_dir, sweep_dir) else plan_snapshot(mode, app_dir)
        watch = CodeWatch.for_task(self.task_function, skip=sweep_dir) if source is None else None
        return CodePlan(mode, source, app_dir, watch)

    def _write_sweep_dir(self, sweep_dir: Path, mode: int | None) -> None:
        """Hydra's part of the sweep dir: its mode and ``multirun.yaml``."""
        assert self.config is not None
        if mode is not None:
            os.chmod(sweep_dir, mode=mode)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

    def _check_trials_compose(self, space: Any, tasks: Any, arguments: list[str]) -> None:
        """Compose trial configs now, as Hydra's validate_batch_is_legal does, from the main thread.

        A key the app's config lacks (``lrr=0.1``, in the space or in a task's overrides), a config
        group option that does not exist or a value of the wrong type then stops the run with
        Hydra's own message, before a sweep dir, journal or experiment exists, instead of failing
        every trial (of that task).
        """
        from hydra.errors import ConfigCompositionException

        from hydra_sigopt.config_keys import missing_option_error, unknown_key_error

        assert self.config is not None
        loader = self.hydra_context.config_loader
        points = representative_points(space)
        try:
            for assignments in points:
                loader.load_sweep_config(self.config, space.overrides_for(assignments))
        except ConfigCompositionException as exc:
            choices = _categorical_overrides(space, assignments)
            params = self.raw.get("params")
            refusal = unknown_key_error(exc, self.config, params, arguments, choices) or missing_option_error(
                exc, params, arguments
            )
            if refusal is None:
                raise
            raise refusal from exc
        for task in tasks:  # with every point: a task's key may be in one config group option only
            for assignments in points:
                loader.load_sweep_config(self.config, space.overrides_for(assignments) + list(task.overrides))

    def _use_sweep_dir(self, sweep_dir: str) -> None:
        """Point this run (and the jobs it launches) at an existing sweep dir."""
        assert self.config is not None
        from hydra_sigopt.overrides import format_override

        resolved = str(Path(sweep_dir).expanduser().resolve())
        with open_dict(self.config):
            self.config.hydra.sweep.dir = resolved
            # Jobs re-compose their config from these overrides (ConfigLoader.load_sweep_config).
            self.config.hydra.overrides.hydra.append(format_override("hydra.sweep.dir", resolved))

    def _backend_options(self, settings: Any, sweep_dir: Path) -> dict[str, Any]:
        if settings.backend == "lite":
            return {"compute_mode": settings.compute_mode, "seed": settings.seed}
        from hydra_sigopt.secrets import api_url_setting

        options: dict[str, Any] = {"settings": dict(settings.api), "dev_run": settings.dev_run}
        if not (settings.api.get("api_url") or api_url_setting()[0]):  # the journal says where the sweep ran
            options["recorded_url"] = _recorded_url(sweep_dir)
        return options


def _recorded_url(sweep_dir: Path) -> str | None:
    """The API URL a resumed sweep's journal recorded (password masked), named where none is set now:
    a new SSH session has none of the old one's environment, and the URL was in no message."""
    from hydra_sigopt.errors import JournalError
    from hydra_sigopt.journal import journal_path, open_journal

    if not journal_path(sweep_dir).is_file():
        return None
    try:
        with open_journal(sweep_dir) as journal:
            url = (journal.meta().get("api") or {}).get("api_url")
    except JournalError:  # the sweep says what is wrong with its journal once it opens it
        return None
    return str(url) if url else None


def _why_no_snapshot(launcher: Any) -> str:
    if type(launcher).__name__ == "BasicLauncher":
        return "trials run in the sweeper's process, from the code it imported at start"
    return "only hydra-submitit-launcher's jobs run from a snapshot; these trials run the working tree's code"


MAX_COMPOSED_POINTS = 50


def _keep_task_interpolations(raw: dict[str, Any], config: DictConfig) -> None:
    """Give the tasks' escaped interpolations (``tag: 'lr_\\${lr}'``) to their trials, to resolve in
    each trial's own config (``lr_0.63``).

    Hydra resolves the sweeper's config against the base config when it makes the sweeper, an
    escaped interpolation twice: every trial got ``lr_0.1``, the base config's lr, and there was no
    way to have a task's override follow the trial's config. Unescaped ones stay as Hydra resolved
    them, as in the rest of the sweeper's config (and in the journals of sweeps begun before).
    """
    written = OmegaConf.select(config, "hydra.sweeper.tasks", default=None)
    tasks = raw.get("tasks")
    if not OmegaConf.is_list(written) or not isinstance(tasks, list):
        return
    for task, as_written in zip(tasks, OmegaConf.to_container(written, resolve=False)):  # type: ignore[arg-type]
        if not (isinstance(task, dict) and isinstance(as_written, dict) and isinstance(task.get("overrides"), dict)):
            continue
        for key, text in (as_written.get("overrides") or {}).items():
            if isinstance(text, str) and "\\${" in text:
                task["overrides"][key] = text.replace("\\${", "${")


def _hydra_overrides(config: DictConfig) -> list[str]:
    """The command line's ``hydra.*`` overrides as typed: unresolved, since one may name a value known
    only in a job (``hydra.sweep.subdir=trial_${hydra.job.num}``), which fails to resolve here."""
    written = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
    return [str(o) for o in written] if isinstance(written, list) else []


def _categorical_overrides(space: Any, assignments: Mapping[str, Any]) -> list[str]:
    """The overrides of a trial config's categorical parameters (``model=resnet``): what the config
    that failed to compose was composed with, where a config group option is in play."""
    from hydra_sigopt.overrides import format_override

    return [
        format_override(p.override_key, p.to_value(assignments[p.name]))
        for p in space.parameters
        if p.categories is not None and p.name in assignments
    ]


def representative_points(space: Any) -> list[dict[str, Any]]:
    """Assignments that together give every parameter a valid value and every category once.

    Every parameter is included (a conditional one too, so that its key is checked); numbers sit at
    their lower bound or first grid value; point ``i`` takes the ``i``-th value (cycling) of each
    categorical parameter and conditional, so config group options are all composed.
    """
    choices: dict[str, list[Any]] = {c["name"]: list(c["values"]) for c in space.conditionals}
    fixed: dict[str, Any] = {}
    for p in space.parameters:
        if p.categories is not None:
            choices[p.name] = list(p.categories)
        else:
            fixed[p.name] = p.grid[0] if p.grid is not None else p.bounds[0]
    # Config groups have a handful of options; a 1000-way categorical of plain values need not cost
    # 1000 compositions at start-up.
    count = min(max((len(v) for v in choices.values()), default=1), MAX_COMPOSED_POINTS)
    return [{**fixed, **{k: v[i % len(v)] for k, v in choices.items()}} for i in range(count)]


def _is_within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _rerun_from_an_edited_scripts_copy(task_function: Any, sweep_dir: Path) -> None:
    """A resumed sweep whose script was edited since it started runs again, in this process, from
    the snapshot's copy of the script (see :func:`hydra_sigopt.snapshot.edited_entry_script`);
    refused where this process was not started as ``python script.py``. Before anything is written."""
    import shlex
    import sys

    from hydra_sigopt.errors import SweepAbortedError
    from hydra_sigopt.journal import journal_path, open_journal
    from hydra_sigopt.snapshot import edited_entry_script

    if not journal_path(sweep_dir).exists():
        return
    with open_journal(sweep_dir) as journal:
        stored = journal.meta().get("code")
    copy = edited_entry_script(task_function, sweep_dir, stored)
    if copy is None:
        return
    script = Path(sys.argv[0]).resolve()
    # The interpreter's own options (python -u ...) are kept: orig_argv is they and then sys.argv.
    argv = [*sys.orig_argv[: len(sys.orig_argv) - len(sys.argv)], str(copy), *sys.argv[1:]]
    run_as_script = getattr(sys.modules["__main__"], "__spec__", None) is None  # not python -m
    if not run_as_script or script.name != copy.name or not script.is_file():
        raise SweepAbortedError(
            f"{copy.name} changed since this sweep started, and its trials would run the edited one (a task "
            f"function defined in the script travels from this process); resume with the snapshot's copy: "
            f"{shlex.join(argv)}"
        )
    log.warning("%s changed since this sweep started; resuming from its copy %s", script.name, copy)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, argv)
