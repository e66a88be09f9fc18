"""The Hydra plugin: a thin Sweeper that hands the work to :mod:`hydra_sigopt`.

Every Hydra app in the environment imports this module at start-up, so it imports nothing heavy.
"""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import with_declared_types  # (importing it registers the config)


class SigOptSweeper(Sweeper):
    def __init__(self, **sweeper_config: Any) -> None:
        sweeper_config.pop("_check_target_", None)  # done by Hydra instantiating it (config.py)
        self.sweeper_config = sweeper_config
        self.impl: Optional[Any] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_sigopt.hydra_sweeper import SigOptSweeperImpl

        # Here, not in __init__: Hydra would wrap a refusal raised while it instantiates the sweeper.
        self.impl = SigOptSweeperImpl(with_declared_types(self.sweeper_config))
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.impl is not None, "setup() must be called before sweep()"
        return self.impl.sweep(arguments)
