"""The sweeper's work on Hydra's side: config, launcher, sweep dir; then :class:`~hydra_sigopt.sweep.Sweep`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

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

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        from hydra.core.plugins import Plugins

        from hydra_sigopt.backends import create_backend
        from hydra_sigopt.continuation import current_command
        from hydra_sigopt.runners import TimedTask, make_runner
        from hydra_sigopt.secrets import refuse_tokens_in_config
        from hydra_sigopt.settings import parse_settings
        from hydra_sigopt.sweep import Sweep
        from hydra_sigopt.sweepdir import refuse_missing_journal

        assert self.config is not None
        refuse_tokens_in_config(self.raw)
        # Validate everything before a launcher, an engine or a folder exists.
        settings, definition = parse_settings(self.raw, arguments, default_name=str(self.config.hydra.job.name))
        if settings.resume:
            refuse_missing_journal(Path(settings.resume).expanduser())
            self._use_sweep_dir(settings.resume)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))

        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=TimedTask(self.task_function), config=self.config
        )
        runner = make_runner(launcher, settings.scheduler, settings.warm_jobs, definition.parallel_bandwidth)
        # The engine, its token and URL come before any folder; a new sweep's experiment is created
        # by Sweep.run once it holds the sweep dir's lock (two sweeps started at once make one).
        backend = create_backend(settings.backend, **self._backend_options(settings))
        sweep = Sweep(
            settings,
            definition,
            sweep_dir,
            runner,
            backend,
            command=current_command(),
            # Once the sweep dir's lock is held: a refused second sweeper overwrites nothing.
            on_locked=lambda: self._write_sweep_dir(sweep_dir),
        )
        return sweep.run()

    def _write_sweep_dir(self, sweep_dir: Path) -> None:
        """Hydra's part of the sweep dir: its mode and ``multirun.yaml``."""
        assert self.config is not None
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

    def _use_sweep_dir(self, sweep_dir: str) -> None:
        """Point this run (and the jobs it launches) at an existing sweep dir."""
        assert self.config is not None
        from hydra_sigopt.overrides import format_override

        resolved = str(Path(sweep_dir).expanduser().resolve())
        with open_dict(self.config):
            self.config.hydra.sweep.dir = resolved
            # Jobs re-compose their config from these overrides (ConfigLoader.load_sweep_config).
            self.config.hydra.overrides.hydra.append(format_override("hydra.sweep.dir", resolved))

    def _backend_options(self, settings: Any) -> dict[str, Any]:
        if settings.backend == "lite":
            return {"compute_mode": settings.compute_mode, "seed": settings.seed}
        return {"settings": dict(settings.api), "dev_run": settings.dev_run}
