"""Declaring the search space the way a first-time user does, in a real multirun: what the
command line does beside ``hydra.sweeper.params``, and what a YAML list of options may hold.

Found by trying it (user-play-6): a key swept twice on the command line searched the last
silently; ``lr=0.1`` beside ``params: {lr: ...}`` dropped lr from the space without a word; a
YAML list of options holding ``null`` was refused with Hydra's parse error of a
``choice(null, adam)`` the user never wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_example, write_app
from test_refusals import assert_refused

SWEEPER = """
observation_budget: 2
parallel_bandwidth: 1
params:
  x: interval(0, 2)
"""
SHOW_OPT = "print('OPT', __import__('json').dumps(cfg.get('opt'))); return (cfg.x - 1) ** 2"


def test_a_key_swept_twice_on_the_command_line_is_refused_naming_both(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER)
    run = run_example(workdir, "y=choice(16,32)", "y=choice(64,128)", app=app)
    line = assert_refused(run, "'y'", "y=choice(16,32)", "y=choice(64,128)", "once")
    assert line.startswith("command line: "), line


def test_a_sweep_and_a_value_for_one_key_on_the_command_line_are_refused(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER)
    run = run_example(workdir, "y=3", "y=interval(0,1)", app=app)
    assert_refused(run, "'y'", "y=3", "y=interval(0,1)")


def test_a_fixed_value_given_twice_on_the_command_line_is_hydras_last_wins(workdir: Path) -> None:
    """Not a search: Hydra applies ``y=1 y=3`` in order, and so does every trial."""
    app = write_app(workdir, SWEEPER, body="print('Y', cfg.y); return (cfg.x - 1) ** 2")
    run = run_example(workdir, "y=1", "y=3", app=app).assert_ok()
    assert run.output.count("Y 3") == 2, run.output[-2000:]


def test_a_value_on_the_command_line_for_a_params_entry_says_it_is_no_longer_searched(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER + "  y: interval(0, 10)\n", body="print('Y', cfg.y); return (cfg.x - 1) ** 2")
    run = run_example(workdir, "y=0.5", app=app).assert_ok()
    assert run.output.count("Y 0.5") == 2, run.output[-2000:]
    assert "hydra.sweeper.params.y: y=0.5 on the command line replaces interval(0, 10)" in run.output, run.output[
        -3000:
    ]
    assert "y is not searched" in run.output


def test_a_sweep_on_the_command_line_for_a_params_entry_says_it_replaces_it(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER + "  y: interval(0, 10)\n")
    run = run_example(workdir, "y=interval(2,3)", app=app).assert_ok()
    assert "hydra.sweeper.params.y: y=interval(2,3) on the command line replaces interval(0, 10)" in run.output


def test_null_in_a_yaml_list_of_options_reaches_the_app_as_none(workdir: Path) -> None:
    sweeper = SWEEPER.replace("observation_budget: 2", "observation_budget: 6") + "  +opt: [null, adam]\n"
    app = write_app(workdir, sweeper, body=SHOW_OPT)
    run = run_example(workdir, "hydra.sweeper.seed=1", app=app).assert_ok()  # seed 1: both options drawn
    seen = [json.loads(line[4:]) for line in run.output.splitlines() if line.startswith("OPT ")]
    assert set(seen) == {None, "adam"}, seen
    assert [row["param.opt"] for row in run.trials] == ["null" if v is None else v for v in seen]
    assert "+opt" in run.results["best_params"]


def test_a_space_edited_in_the_yaml_is_refused_on_resume_saying_the_change_is_in_the_config_files(
    workdir: Path,
) -> None:
    """The refusal said to "run the command it was started with (hydra-sigopt continue DIR prints
    it)": that command was the one refused, since the change was in config.yaml, not on it."""
    app = write_app(workdir, SWEEPER)
    first = run_example(workdir, "y=1", app=app).assert_ok()
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("interval(0, 2)", "interval(0, 3)"))
    before = _sweep_files(first.sweep_dir)

    rerun = run_example(workdir, "y=1", app=app)
    continued = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "continue", str(first.sweep_dir), "--run"],
        capture_output=True,
        text=True,
    )
    for output in (rerun.output, continued.stdout + continued.stderr):
        assert "parameter 'x' changed" in output, output[-2000:]
        assert "The command line is the one the sweep was started with" in output, output[-2000:]
        assert "app's config files" in output
        assert "prints it" not in output  # the printed command is the one refused
    assert _sweep_files(first.sweep_dir) == before  # nothing of the sweep's was written


def _sweep_files(sweep_dir: Path) -> dict[str, int]:
    """Each file's modification time, but the lock's (taken by every run that opens the sweep)."""
    return {p.name: p.stat().st_mtime_ns for p in sweep_dir.iterdir() if p.name != "sigopt_journal.lock"}


def test_a_space_changed_on_the_command_line_keeps_the_advice_to_run_the_sweeps_command(workdir: Path) -> None:
    app = write_app(workdir, SWEEPER)
    first = run_example(workdir, "y=interval(0,1)", app=app).assert_ok()
    rerun = run_example(workdir, "y=interval(0,5)", app=app)
    assert "parameter 'y' changed" in rerun.output, rerun.output[-2000:]
    assert f"hydra-sigopt continue {first.sweep_dir} prints it" in rerun.output
    assert "config files" not in rerun.output


NESTED = "model: {name: resnet, optimizer: {lr: 0.01, momentum: 0.9}}\n"


def _nested_app(workdir: Path, sweeper: str) -> Path:
    app = write_app(workdir, sweeper)
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\n" + NESTED))
    return app


def test_a_params_key_the_app_lacks_is_one_line_naming_the_entry_and_the_keys_it_may_mean(workdir: Path) -> None:
    """Hydra's own message took four lines, named neither hydra.sweeper.params nor the nested key
    meant, and offered ``+lr=1e-05``, which would add a key the app never reads."""
    app = _nested_app(workdir, SWEEPER + "  lr: tag(log, interval(1e-5, 1e-1))\n")
    run = run_example(workdir, app=app)
    line = assert_refused(run, "hydra.sweeper.params.lr:", "model.optimizer.lr", "+lr")
    assert "Could not override 'lr'" in line, line  # Hydra's own words lead


def test_a_command_line_key_the_app_lacks_is_one_line_naming_the_override(workdir: Path) -> None:
    app = _nested_app(workdir, SWEEPER)
    run = run_example(workdir, "model.optimizer.momentun=interval(0.8,0.99)", app=app)
    assert_refused(
        run, "command-line override 'model.optimizer.momentun=interval(0.8,0.99)'", "model.optimizer.momentum"
    )


def test_a_key_of_one_config_group_option_only_names_the_option_that_lacks_it(workdir: Path) -> None:
    """``model.patch`` exists in ``vit`` only: "the app's config has no such key; did you mean
    batch?" pointed away from the group option that lacked it."""
    app = write_app(workdir, SWEEPER, defaults="  - model: resnet\n")
    (app.parent / "conf" / "model").mkdir()
    (app.parent / "conf" / "model" / "resnet.yaml").write_text("depth: 18\n")
    (app.parent / "conf" / "model" / "vit.yaml").write_text("depth: 12\npatch: 16\n")
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\nbatch: 32\n"))
    run = run_example(workdir, "model=choice(resnet,vit)", "model.patch=choice(8,16)", app=app)
    line = assert_refused(run, "command-line override 'model.patch=choice(8,16)'", "composed with model=resnet")
    assert "batch" not in line, line


def test_an_interval_over_an_int_key_warns_that_the_app_gets_floats(workdir: Path) -> None:
    """``batch=interval(16,128)`` over ``batch: 32`` gave the app 44.56875742297689 as its batch
    size, as Hydra's grammar says (an interval is floats), with nothing to hint at int(...)."""
    app = write_app(workdir, SWEEPER, body="print('B', repr(cfg.batch)); return (cfg.x - 1) ** 2")
    config = app.parent / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("y: 0.0\n", "y: 0.0\nbatch: 32\n"))
    run = run_example(workdir, "batch=interval(16,128)", app=app).assert_ok()
    assert "batch: interval(16,128) gives the app floats, where its config has batch: 32" in run.output, run.output[
        -2000:
    ]
    assert "int(interval(16,128))" in run.output
    quiet = run_example(workdir, "batch=int(interval(16,128))", "x=interval(0,2)", sweep_dir=workdir / "s2", app=app)
    assert "gives the app floats" not in quiet.assert_ok().output


def test_a_config_group_option_that_does_not_exist_is_one_line_with_the_valid_options(workdir: Path) -> None:
    """Hydra's message took ten lines (its config search path included)."""
    app = write_app(workdir, SWEEPER, defaults="  - model: resnet\n")
    (app.parent / "conf" / "model").mkdir()
    for option in ("resnet", "vit"):
        (app.parent / "conf" / "model" / f"{option}.yaml").write_text("depth: 18\n")
    run = run_example(workdir, "model=choice(resnet,vitt)", app=app)
    assert_refused(run, "command-line override 'model=choice(resnet,vitt)'", "'vitt'", "['resnet', 'vit']")
