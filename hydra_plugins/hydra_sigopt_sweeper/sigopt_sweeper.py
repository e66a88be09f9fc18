"""The Hydra plugin: a thin Sweeper that hands the work to :mod:`hydra_sigopt`.

Every Hydra app in the environment imports this module at start-up, so it imports nothing heavy.
"""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import SigOptSweeperConf  # noqa: F401  (registers the config)


class SigOptSweeper(Sweeper):
    def __init__(self, **sweeper_config: Any) -> None:
        sweeper_config.pop("_check_target_", None)  # done by Hydra instantiating it (config.py)
        self.sweeper_config = sweeper_config
        self.impl: Optional[Any] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_sigopt.hydra_sweeper import SigOptSweeperImpl

        self.impl = SigOptSweeperImpl(self.sweeper_config)
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.impl is not None, "setup() must be called before sweep()"
        return self.impl.sweep(arguments)
