"""SigOpt multitask end to end (issue 17): the epoch-by-epoch example app with a cheap task of 3
epochs beside the full one of 12, run as real Hydra multiruns, on both engines.

What a user checks: each trial ran its task's overrides (its last step says how many epochs it
trained), the budget counts costs ("at most the compute of N full trainings" is a budget of N), a
cheap trial is never the best, and a killed sweep resumes with its tasks.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import small_apps
from conftest import EPOCHS_APP, SUBMITIT_LOCAL, AppRun, run_example, write_app
from sigopt_server import SigOptTestServer

from hydra_sigopt.crashpoints import ENV_VAR

pytestmark = pytest.mark.slow

COSTS = {"short": 0.25, "full": 1.0}
EPOCHS = {"short": 3, "full": 12}
TASKS = "hydra.sweeper.tasks=[{name:short,cost:0.25,overrides:{epochs:3}},{name:full,cost:1}]"
BUDGET = 3
COMMON = (TASKS, f"hydra.sweeper.observation_budget={BUDGET}", "hydra.sweeper.early_stopping.rule=none")
TOKEN = "tok-multitask-7d1e"


def check_multitask_sweep(run: AppRun) -> list[dict[str, str]]:
    """What the user reads of a finished multitask sweep; returns trials.csv's rows."""
    run.assert_ok()
    rows = run.trials
    assert {r["task"] for r in rows} == {"short", "full"}, rows  # the engine used both
    for r in rows:
        assert int(r["step"]) == EPOCHS[r["task"]], r  # the trial ran its task's overrides
        assert ("epochs=3" in r["overrides"].split()) == (r["task"] == "short"), r
    costs = [COSTS[r["task"]] for r in rows]
    assert BUDGET <= math.fsum(costs) < BUDGET + costs[-1], costs  # the budget counts costs
    assert len(rows) > BUDGET  # cheap trials: more trials than full trainings
    best = next(r for r in rows if int(r["number"]) == run.results["best_trial"])
    assert best["task"] == "full"  # three epochs are not a result to paste
    assert all(float(best["value.val_error"]) <= float(r["value.val_error"]) for r in rows if r["task"] == "full")
    assert run.results["trials"]["budget_spent"] == pytest.approx(math.fsum(costs))
    assert f"trials done ({math.fsum(costs):.4g}/{BUDGET} of the budget spent)" in run.output, run.output[-2000:]
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(run.sweep_dir)], capture_output=True, text=True
    )
    assert f"{len(rows)} done, {math.fsum(costs):.4g}/{BUDGET} of the budget spent" in status.stdout, status.stdout
    return rows


def test_in_process_trials_run_the_task_the_engine_picks(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from hydra_sigopt.journal import Journal
    from hydra_sigopt.plot import plot_sweep

    run = run_example(workdir, *COMMON, "hydra.sweeper.seed=3", app=EPOCHS_APP)
    rows = check_multitask_sweep(run)
    assert run.results["engine_observations"] == len(rows)
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: drawn.append(figure))
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        titles = plot_sweep(journal.meta(), journal.trials(), workdir / "p.png", journal.reports.all())
    short = sum(r["task"] == "short" for r in rows)
    assert titles[0].endswith(f": {len(rows)} completed ({short} of cheaper tasks), 0 failed"), titles
    # Every panel tells a cheaper task's trials apart (the parameter panels drew them as full trainings).
    assert titles[1] == "learning curves (0 stopped early: x, cheaper tasks dashed)", titles
    (figure,) = drawn
    x_panel = next(ax for ax in figure.axes if ax.get_xlabel() == "alpha")
    assert [t.get_text() for t in x_panel.get_legend().get_texts()] == ["completed", "cheaper task"]


def test_jobs_run_their_tasks_and_a_killed_sweep_resumes_with_them(workdir: Path) -> None:
    """submitit_local, 2 slots; the sweeper is killed after its third observation and resumed: the
    engine is rebuilt from the journal, each observation with its task (it refuses one without)."""
    overrides = (*COMMON, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", "hydra.sweeper.seed=5")
    killed = run_example(workdir, *overrides, env={ENV_VAR: "after_observe:3"}, app=EPOCHS_APP)
    assert killed.proc.returncode != 0
    resumed = run_example(workdir, *overrides, app=EPOCHS_APP)
    rows = check_multitask_sweep(resumed)
    assert all(r["job_id"] for r in rows)
    assert resumed.results["engine_observations"] == len(rows)  # every trial replayed, with its task


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    # Seeded: the server picks each suggestion's task at random, and unseeded, all three trials of
    # the budget were the full task about one run in eight (then "the engine used both" failed).
    with SigOptTestServer(tokens={TOKEN}, seed=1) as s:
        yield s


def test_the_api_backend_runs_the_tasks_the_server_picks(
    workdir: Path, server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # the sweep inherits the environment
    env = {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": ""}
    run = run_example(workdir, *COMMON, "hydra.sweeper.backend=api", env=env, app=EPOCHS_APP)
    rows = check_multitask_sweep(run)
    experiment = server.experiments[str(run.results["experiment_id"])]
    assert [(t["name"], t["cost"]) for t in experiment.tasks] == [("short", 0.25), ("full", 1.0)]
    by_job = {o["metadata"]["job_number"]: o["task"]["name"] for o in experiment.observations}
    assert by_job == {int(r["number"]): r["task"] for r in rows}  # the server holds each trial at its task


def test_bad_tasks_are_one_line_before_anything_is_written(workdir: Path) -> None:
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.25},{name:full,cost:0.5}]"
    done = run_example(workdir, tasks, app=EPOCHS_APP)
    assert done.proc.returncode != 0
    assert "hydra.sweeper.tasks: exactly one task must cost 1 (the full training), got costs [0.25, 0.5]" in (
        done.proc.stderr
    )
    assert "Traceback" not in done.proc.stderr and not (workdir / "sweep").exists()


def test_a_task_override_of_a_key_the_app_lacks_stops_the_run_before_anything_is_written(workdir: Path) -> None:
    """A typo in a task's overrides (``epochz``) failed every trial of that task, spending budget,
    and the fixed command was then refused in that sweep dir as a change of tasks."""
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.25,max_step:3,overrides:{epochz:3}},{name:full,cost:1}]"
    done = run_example(workdir, tasks, app=EPOCHS_APP)
    assert done.proc.returncode != 0
    assert "Could not override 'epochz'" in done.proc.stderr, done.proc.stderr[-2000:]
    assert "Traceback" not in done.proc.stderr and not (workdir / "sweep").exists()


@pytest.mark.parametrize("order", ["mnist,small", "small,mnist"])
def test_a_task_override_one_config_group_option_lacks_stops_the_run_whatever_the_choices_order(
    workdir: Path, order: str
) -> None:
    """A task sets ``model.net.width``, which only one of the swept ``model`` options has: refused at
    start with ``choice(small,mnist)``, but with ``choice(mnist,small)`` every ``narrow`` trial of
    ``model=small`` failed, spending budget until max_failure_rate ended the sweep."""
    app = write_app(
        workdir,
        "observation_budget: 4\nparams:\n  model: choice(" + order + ")\n  x: interval(0, 1)\n"
        "tasks:\n  - {name: narrow, cost: 0.25, overrides: {model.net.width: 8}}\n  - {name: full, cost: 1}",
        body="return cfg.x",
        defaults="  - model: mnist\n",
    )
    (workdir / "conf" / "model").mkdir()
    (workdir / "conf" / "model" / "mnist.yaml").write_text("net:\n  width: 64\n")
    (workdir / "conf" / "model" / "small.yaml").write_text("layers: 2\n")
    done = run_example(workdir, app=app)
    assert done.proc.returncode != 0
    assert "Could not override 'model.net.width'" in done.proc.stderr, done.output[-2000:]
    assert "Traceback" not in done.proc.stderr and not (workdir / "sweep").exists()


def test_an_escaped_interpolation_in_a_task_override_is_resolved_in_each_trial(workdir: Path) -> None:
    """``tag: "lr_\\${lr}"`` in a task's overrides (escaped: to resolve later, in the trial): every
    trial got ``lr_0.1``, the base config's value, as Hydra resolved the sweeper's config twice; the
    trial's own suggested lr never showed, and no spelling could make it."""
    app = write_app(
        workdir,
        "observation_budget: 3\ndev_run: true\nparams:\n  lr: interval(0.5, 0.9)\n"
        'tasks:\n  - {name: short, cost: 0.25, overrides: {tag: "lr_\\\\${lr}"}}\n  - {name: full, cost: 1}',
        body='print(f"TAG {cfg.tag} LR {cfg.lr}", flush=True); return cfg.lr',
    )
    config = workdir / "conf" / "config.yaml"
    assert 'tag: "lr_\\\\${lr}"' in config.read_text()
    config.write_text(config.read_text().replace("x: 0.0\n", "x: 0.0\nlr: 0.1\ntag: base\n"))
    run = run_example(workdir, "hydra.sweeper.seed=3", app=app).assert_ok()
    lines = [line.split() for line in run.output.splitlines() if line.startswith("TAG ")]
    assert lines, run.output[-2000:]
    for _, tag, _, lr in lines:
        assert tag in ("base", f"lr_{lr}"), lines
    assert any(tag != "base" for _, tag, _, _ in lines), lines  # a short trial ran


TRAINS_THEN_TESTS = """\
from hydra_sigopt import report

for epoch in range(1, cfg.epochs + 1):
    loss = (1 - cfg.x) / epoch + cfg.x / 2  # a large x learns fast, and ends worse: ASHA's rungs disagree
    report(epoch, loss=loss)
with open(os.path.join(HydraConfig.get().runtime.output_dir, "tested.txt"), "w") as f:  # a test after fit
    f.write(repr(loss))
return loss
"""
ASHA_TO_9 = tuple(
    f"hydra.sweeper.early_stopping.{s}" for s in ("rule=asha", "min_step=1", "max_step=9", "reduction_factor=3")
)


def write_trains_then_tests(workdir: Path) -> Path:
    app = small_apps.write_app(workdir, TRAINS_THEN_TESTS, budget=4)
    with (app.parent / "conf" / "config.yaml").open("a") as config:
        config.write("epochs: 9\n")
    return app


def test_a_cheaper_tasks_trial_is_not_stopped_at_its_last_epoch(workdir: Path) -> None:
    """With tasks and ASHA (rungs 1, 3), a 3-epoch trial was judged at rung 3, its last epoch, and
    stopped there: the test after its training never ran, and it was observed as stopped (as failed,
    with ``observe_stopped: failed``), though nothing was left to save."""
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.25,max_step:3,overrides:{epochs:3}},{name:full,cost:1}]"
    metric = "hydra.sweeper.metrics=[{name:loss,objective:minimize}]"
    run = run_example(
        workdir,
        tasks,
        metric,
        *ASHA_TO_9,
        "hydra.sweeper.dev_run=false",
        "hydra.sweeper.seed=3",
        app=write_trains_then_tests(workdir),
    ).assert_ok()
    ended_short = [t for t in run.trials if t["task"] == "short" and t["step"] == "3"]
    assert len(ended_short) >= 3, run.trials  # enough trials at rung 3 for ASHA to stop some of them there
    for t in ended_short:
        assert t["state"] == "completed", (t, run.output[-3000:])
        assert (run.sweep_dir / t["number"] / "tested.txt").exists()
    assert any(t["state"] == "stopped" for t in run.trials), run.trials  # the rule did stop trials


ANNEALED = """\
import time
from hydra_sigopt import report

for epoch in range(1, cfg.epochs + 1):
    time.sleep(0.2)
    loss = 1 / (1 + 4 * epoch / cfg.epochs)  # a learning rate annealed over the run's own epochs
    report(epoch, loss=loss)
return loss
"""


def test_full_trainings_are_judged_against_full_trainings_so_the_sweep_has_a_best(workdir: Path) -> None:
    """A tester's sweep (tasks short: 3 epochs and full: 9, ASHA, a schedule annealed over the run's
    epochs) stopped every full training and ended with no result: at any step a short trial is ahead
    of a full one, and the rule compared them. Here every full training learns the same curve, so no
    full training is worse than another: none may be stopped."""
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.2,max_step:3,overrides:{epochs:3}},{name:full,cost:1}]"
    app = small_apps.write_app(workdir, ANNEALED, budget=6)
    with (app.parent / "conf" / "config.yaml").open("a") as config:
        config.write("epochs: 9\n")
    run = run_example(
        workdir,
        tasks,
        "hydra.sweeper.metrics=[{name:loss,objective:minimize}]",
        *ASHA_TO_9,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=3",
        "hydra.sweeper.seed=3",  # random tasks: a seed whose draws hold both (unseeded, all full once)
        app=app,
    ).assert_ok()
    assert {t["task"] for t in run.trials} == {"short", "full"}, run.trials
    full = [t for t in run.trials if t["task"] == "full"]
    assert not [t for t in full if t["state"] == "stopped"], (run.trials, run.output[-3000:])
    assert run.results["best_params"] is not None, run.output[-3000:]


def test_a_cheaper_task_without_its_last_step_is_refused_with_early_stopping(workdir: Path) -> None:
    """The sweeper cannot know how many steps a task's overrides leave (``epochs: 3``)."""
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.25,overrides:{epochs:3}},{name:full,cost:1}]"
    done = run_example(workdir, tasks, *ASHA_TO_9, app=write_trains_then_tests(workdir))
    assert done.proc.returncode != 0
    assert "hydra.sweeper.tasks[0].max_step: " in done.proc.stderr, done.proc.stderr[-2000:]
    assert "Traceback" not in done.proc.stderr and not (workdir / "sweep").exists()


def test_best_of_a_finished_sweep_where_no_full_task_trial_completed_does_not_say_yet(workdir: Path) -> None:
    """best said "No trial of the full task completed (2 of cheaper tasks did; those are never the
    best) yet." of a sweep whose budget was spent and wrapped up: no trial is left to complete."""
    tasks = "[{name:short,cost:0.25,overrides:{cv_folds:2}},{name:full,cost:1,overrides:{fail_mode:raise}}]"
    overrides = ("hydra.sweeper.observation_budget=2", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.seed=3")
    run = run_example(workdir, f"hydra.sweeper.tasks={tasks}", *overrides).assert_ok()
    completed = [t["task"] for t in run.trials if t["state"] == "completed"]
    assert completed and set(completed) == {"short"}, run.trials
    hydra_sigopt = [sys.executable, "-m", "hydra_sigopt.cli"]
    best = subprocess.run([*hydra_sigopt, "best", str(run.sweep_dir)], capture_output=True, text=True)
    assert best.returncode == 1
    said = f"No trial of the full task completed ({len(completed)} of cheaper tasks did; those are never the best)."
    assert best.stderr.strip() == said, best.stderr
    status = subprocess.run([*hydra_sigopt, "status", str(run.sweep_dir)], capture_output=True, text=True)
    assert f"Best:        {said[0].lower()}{said[1:-1]}\n" in status.stdout, status.stdout


def test_a_finished_multitask_sweep_run_again_with_its_own_budget_ends_as_it_is(workdir: Path) -> None:
    """A reviewer: a full training started with 2.75 of 3 spent ends the sweep at 3.75 (the budget is
    issued, not finished, when the last trial starts); the same command run again (a requeued
    driver, hydra-sigopt continue --run) was refused as "3 is below the 3.75 ... spent already"."""
    overrides = (*COMMON, "hydra.sweeper.seed=1")
    first = run_example(workdir, *overrides, app=EPOCHS_APP).assert_ok()
    spent = first.results["trials"]["budget_spent"]
    assert spent > BUDGET  # seeded: its last full training started past 2 of the budget of 3
    again = run_example(workdir, *overrides, app=EPOCHS_APP).assert_ok()
    assert "is below" not in again.output
    assert again.results["trials"]["budget_spent"] == spent and len(again.trials) == len(first.trials)
    lowered = (
        TASKS,
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.early_stopping.rule=none",
        "hydra.sweeper.seed=1",
    )
    lower = run_example(workdir, *lowered, app=EPOCHS_APP)
    assert lower.proc.returncode != 0  # lowered below what was spent: refused, with what to give
    assert f"observation_budget: 2 is below the {spent:.4g} of the budget" in lower.output, lower.output[-2000:]
    assert f"give at least {BUDGET}, the budget it last ran with" in lower.output


FRACTIONAL_TASKS = "tasks:\n  - {name: short, cost: 0.25, overrides: {y: 0.5}}\n  - {name: full, cost: 1}"


@pytest.mark.parametrize("given_in", ["yaml", "command line"])
def test_a_fractional_budget_counts_task_costs(workdir: Path, given_in: str) -> None:
    """``observation_budget: 1.5`` with tasks ("at most the compute of 1.5 full trainings") was
    refused with OmegaConf's raw "could not be converted to Integer", on the command line and in
    the sweeper's YAML alike."""
    budget = "1.5" if given_in == "yaml" else "1"
    app = write_app(
        workdir,
        f"observation_budget: {budget}\nparams:\n  x: interval(0, 2)\n{FRACTIONAL_TASKS}",
        body="return (cfg.x - 1) ** 2 + cfg.y",
    )
    line = () if given_in == "yaml" else ("hydra.sweeper.observation_budget=1.5",)
    run = run_example(workdir, *line, "hydra.sweeper.seed=2", app=app).assert_ok()
    costs = [{"short": 0.25, "full": 1.0}[r["task"]] for r in run.trials]
    assert 1.5 <= math.fsum(costs) < 1.5 + costs[-1], costs  # the budget counts costs, and is not cut to 1
    assert f"({math.fsum(costs):.4g}/1.5 of the budget spent)" in run.output, run.output[-2000:]
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", str(run.sweep_dir)], capture_output=True, text=True
    )
    assert f"{len(costs)} done, {math.fsum(costs):.4g}/1.5 of the budget spent" in status.stdout, status.stdout
    assert "the budget is spent" in status.stdout, status.stdout


def test_a_fractional_budget_goes_to_a_sigopt_server_rounded_up(
    workdir: Path, server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SigOpt server takes a whole observation_budget only (it refuses 1.5): it gets 2, the sweep stops at 1.5."""
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # the sweep inherits the environment
    env = {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": ""}
    app = write_app(
        workdir,
        f"observation_budget: 1.5\nbackend: api\nparams:\n  x: interval(0, 2)\n{FRACTIONAL_TASKS}",
        body="return (cfg.x - 1) ** 2 + cfg.y",
    )
    run = run_example(workdir, env=env, app=app).assert_ok()
    costs = [{"short": 0.25, "full": 1.0}[r["task"]] for r in run.trials]
    assert 1.5 <= math.fsum(costs) < 1.5 + costs[-1], costs
    assert server.experiments[str(run.results["experiment_id"])].data["observation_budget"] == 2


def test_status_all_shows_each_trials_task(workdir: Path) -> None:
    """The per-trial table of ``hydra-sigopt status --all`` had no task column: a 3-epoch trial read
    like a full training."""
    app = write_app(
        workdir,
        f"observation_budget: 2\nparams:\n  x: interval(0, 2)\n{FRACTIONAL_TASKS}",
        body="return (cfg.x - 1) ** 2 + cfg.y",
    )
    run = run_example(workdir, "hydra.sweeper.seed=4", app=app).assert_ok()  # seeded: trials of both tasks
    status = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "status", "--all", str(run.sweep_dir)],
        capture_output=True,
        text=True,
    )
    lines = status.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#  "))
    assert lines[header].split()[:4] == ["#", "state", "job", "task"], lines[header]
    column = lines[header].index(" task ") + 1
    shown = {int(line.split()[0]): line[column:].split()[0] for line in lines[header + 1 :]}
    assert shown == {int(r["number"]): r["task"] for r in run.trials}, status.stdout
    assert {"short", "full"} <= set(shown.values()), status.stdout
