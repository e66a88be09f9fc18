"""Throwaway Hydra apps written into a test's tmp_path, for behaviour the example app cannot show."""

from __future__ import annotations

import textwrap
from pathlib import Path

APP_TEMPLATE = """\
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig


def job_num():
    return HydraConfig.get().job.num


{helpers}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
{task}


if __name__ == "__main__":
    main()
"""

CONFIG_TEMPLATE = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

x: 0.5

hydra:
  sweeper:
    observation_budget: {budget}
    max_failure_rate: 1.0
    dev_run: true
    params:
      x: interval(0, 1)
"""


def write_app(root: Path, task: str, helpers: str = "", budget: int = 4) -> Path:
    """``root/app/app.py``: a Hydra app whose task function body is ``task`` (it sees ``cfg``).

    One double parameter ``x``, random suggestions (``dev_run``), ``budget`` trials and no
    failure-rate abort, so that every trial's outcome shows in ``trials.csv``.
    """
    app_dir = root / "app"
    (app_dir / "conf").mkdir(parents=True, exist_ok=True)
    source = APP_TEMPLATE.format(helpers=textwrap.dedent(helpers), task=textwrap.indent(textwrap.dedent(task), "    "))
    (app_dir / "app.py").write_text(source)
    (app_dir / "conf" / "config.yaml").write_text(CONFIG_TEMPLATE.format(budget=budget))
    return app_dir / "app.py"
