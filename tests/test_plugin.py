"""The plugin as Hydra sees it: discovery, config registration, import cost."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from conftest import SUBMITIT_LOCAL, run_example, write_app
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper


def test_hydra_discovers_the_sweeper() -> None:
    names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    assert "SigOptSweeper" in names


def test_config_is_registered_as_hydra_sweeper_sigopt() -> None:
    import hydra_plugins.hydra_sigopt_sweeper.config  # noqa: F401

    node = ConfigStore.instance().load("hydra/sweeper/sigopt.yaml").node
    assert node._target_ == "hydra_plugins.hydra_sigopt_sweeper.sigopt_sweeper.SigOptSweeper"
    assert node.backend == "lite" and node.observation_budget == 20 and node.parallel_bandwidth == 1


def test_importing_the_plugin_stays_cheap() -> None:
    # Every Hydra app imports all plugins at start-up: the engine, sigopt and numpy must not come with it.
    code = (
        "import sys, hydra_plugins.hydra_sigopt_sweeper.sigopt_sweeper\n"
        "heavy = [m for m in ('sigopt', 'sigoptlite', 'numpy', 'submitit', 'hydra_sigopt.sweep') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_core_library_never_imports_the_plugin_package() -> None:
    from pathlib import Path

    import hydra_sigopt

    root = Path(hydra_sigopt.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "import hydra_plugins" in p.read_text() or "from hydra_plugins" in p.read_text()
    ]
    assert offenders == []


def test_the_plugin_and_the_core_name_the_same_optuna_settings() -> None:
    """The plugin declares them (so Hydra lets them through); the core refuses them with their translation."""
    from hydra_plugins.hydra_sigopt_sweeper import config
    from hydra_sigopt import settings

    assert config.OPTUNA_KEYS == settings.OPTUNA_KEYS
    assert set(settings.OPTUNA_KEYS) <= {f.name for f in dataclasses.fields(config.SigOptSweeperConf)}


def test_a_config_can_refer_to_a_setting_it_leaves_at_its_default(tmp_path: Path) -> None:
    """``hydra.launcher.cpus_per_task: ${hydra.sweeper.parallel_bandwidth}`` (a launcher sized from the
    sweeper, as Optuna users write ``n_jobs: ${hydra.sweeper.n_jobs}``), and a trial reading the
    budget from ``HydraConfig``: a stored node without the settings' defaults failed both with an
    85-line ``InterpolationKeyError``."""
    app = write_app(
        tmp_path,
        "observation_budget: 2\nparams:\n  x: interval(-5, 5)",
        body=(
            "from hydra.core.hydra_config import HydraConfig\n"
            "    sweeper = HydraConfig.get().sweeper\n"
            "    print('SEEN', sweeper.parallel_bandwidth, sweeper.observation_budget, sweeper.scheduler, flush=True)\n"
            "    return (cfg.x - 1) ** 2"
        ),
    )
    config = tmp_path / "conf" / "config.yaml"
    config.write_text(config.read_text() + "  launcher:\n    cpus_per_task: ${hydra.sweeper.parallel_bandwidth}\n")
    run = run_example(tmp_path, *SUBMITIT_LOCAL, app=app).assert_ok()
    outputs = [p.read_text() for p in (run.sweep_dir / ".submitit").rglob("*_log.out")]
    assert sum("SEEN 1 2 auto" in text for text in outputs) == 2, outputs
