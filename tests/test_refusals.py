"""Every refusal and every deliberate stop reads as one line, through a real Hydra multirun.

Hydra prints a compact exception as its message alone; the traceback only with HYDRA_FULL_ERROR=1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLE_APP, AppRun, run_example, running_job_ids, write_app
from sigopt_server import SigOptTestServer

from hydra_sigopt.cli import main as cli_main

HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
TOKEN = "tok-refusals-never-written-anywhere"


def error_lines(run: AppRun) -> list[str]:
    """What the run printed on stderr, without blank lines and Hydra's usual hint."""
    return [line for line in run.proc.stderr.splitlines() if line.strip() and line != HYDRA_HINT]


def assert_refused(run: AppRun, *needles: str, created: bool = False) -> str:
    """Non-zero exit, one line on stderr naming ``needles``, no traceback; no sweep dir unless ``created``."""
    assert run.proc.returncode != 0, run.output[-3000:]
    lines = error_lines(run)
    assert len(lines) == 1, run.proc.stderr[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.sweep_dir.exists() is created, run.output[-3000:]
    return lines[0]


def test_a_config_error_is_one_line_and_the_full_traceback_only_on_request(tmp_path: Path) -> None:
    run = run_example(tmp_path, "hydra.sweeper.scheduler=fast")
    assert_refused(run, "hydra.sweeper.scheduler: got 'fast'; valid values are")
    full = run_example(tmp_path, "hydra.sweeper.scheduler=fast", env={"HYDRA_FULL_ERROR": "1"})
    assert full.proc.returncode != 0
    assert "Traceback" in full.proc.stderr and "hydra_sigopt.errors.ConfigError" in full.proc.stderr


def test_a_broken_engine_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "sigoptlite").mkdir(parents=True)
    (fake / "sigoptlite" / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    run = run_example(tmp_path, env={"PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert_refused(run, "cannot be loaded", "broken on purpose", "hydra-sigopt install-engine")


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}) as s:
        yield s


def test_an_api_refusal_is_one_line(tmp_path: Path, server: SigOptTestServer) -> None:
    env = {"SIGOPT_API_TOKEN": "wrong-" + TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": ""}
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env=env)
    assert_refused(run, "HTTP 401", server.url)


def _beside_a_running_sweep(tmp_path: Path, *overrides: str) -> tuple[AppRun, int]:
    """The example sweep (``sleep_s=60``) running in ``tmp_path/sweep``, and another run started there."""
    sweep_dir = tmp_path / "sweep"
    first = subprocess.Popen(
        [sys.executable, str(EXAMPLE_APP), "-m", f"hydra.sweep.dir={sweep_dir}", "sleep_s=60"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_first_trial(sweep_dir)
        return run_example(tmp_path, *overrides, sweep_dir=sweep_dir), first.pid
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)


def test_a_second_sweeper_on_the_same_dir_is_one_line(tmp_path: Path) -> None:
    # The same command again: this sweep resumed twice (another sweep's is below).
    second, pid = _beside_a_running_sweep(tmp_path, "sleep_s=60")
    assert_refused(second, "another sweeper", f"pid {pid}", "hydra-sigopt kill", created=True)


def _frozen_holding_the_lock(sweep_dir: Path) -> subprocess.Popen[str]:
    """A sweeper frozen as it holds the sweep dir's lock, before its journal exists (as a sweep started
    in the same second holds Hydra's default sweep dir an instant before the other one tries it)."""
    from hydra_sigopt.crashpoints import ENV_VAR

    env = {**os.environ, ENV_VAR: "after_lock:1:STOP"}
    command = [sys.executable, str(EXAMPLE_APP), "-m", f"hydra.sweep.dir={sweep_dir}"]
    first = subprocess.Popen(
        command, cwd=sweep_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while Path(f"/proc/{first.pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.time() < deadline and first.poll() is None, "the first sweeper never took the lock"
        time.sleep(0.1)
    return first


def test_a_new_sweep_in_a_sweep_dir_another_new_sweep_took_is_told_to_take_its_own(tmp_path: Path) -> None:
    """A tester: two sweeps started in the same second from the same app share Hydra's default sweep
    dir (multirun/DATE/TIME); the second was told to stop the first (hydra-sigopt kill), another
    legitimate sweep. It is refused, told to give itself its own hydra.sweep.dir."""
    sweep_dir = tmp_path / "sweep"
    first = _frozen_holding_the_lock(sweep_dir)
    try:
        second = run_example(tmp_path, sweep_dir=sweep_dir)
    finally:
        first.kill()
        first.wait(timeout=60)
    line = assert_refused(second, f"the sweep dir {sweep_dir} is taken by another sweep (pid {first.pid}", created=True)
    assert f"give this new sweep its own: hydra.sweep.dir={sweep_dir}-2 " in line and "kill" not in line, line


def test_a_sweep_with_another_search_space_in_a_running_sweeps_dir_is_told_to_take_its_own(tmp_path: Path) -> None:
    """A tester: a sweep of another search space, started where a sweep runs, was told to stop it."""
    second, pid = _beside_a_running_sweep(tmp_path, "hydra.sweeper.params.l1_ratio='interval(0.1,0.9)'")
    line = assert_refused(second, f"is taken by another sweep (pid {pid}", "hydra.sweep.dir=", created=True)
    assert "kill" not in line, line


def wait_for_first_trial(sweep_dir: Path, timeout: float = 120) -> None:
    """Wait until the sweep in ``sweep_dir`` runs its first trial's task (Hydra wrote its config)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (sweep_dir / "0" / ".hydra" / "config.yaml").exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"no trial ever ran in {sweep_dir}")


def test_a_stop_by_kill_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE_APP),
            "-m",
            f"hydra.sweep.dir={sweep_dir}",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "sleep_s=60",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running_job_ids(sweep_dir, 1)
    # Killed while its Python still starts, a local job prints its own KeyboardInterrupt traceback
    # to the sweeper's terminal (submitit redirects its output only once started): wait for the task.
    wait_for_first_trial(sweep_dir)
    assert cli_main(["kill", str(sweep_dir)]) == 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    # The sweeper's own stop is its message alone (the next test: nothing else is printed either).
    lines = error_lines(AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sweep_dir))
    assert lines[-1].startswith("Interrupted. Running trials were cancelled"), err
    assert "hydra_sigopt" not in "\n".join(lines[:-1]) and "SweepAbortedError" not in out + err, err


@pytest.mark.parametrize(
    ("stop", "when"), [("kill", "as-jobs-start"), ("kill", "while-tasks-run"), ("ctrl-c", "while-tasks-run")]
)
def test_a_stop_on_submitit_local_prints_no_traceback(tmp_path: Path, stop: str, when: str) -> None:
    """Issue 11's leftover: submitit's local controllers share the sweeper's terminal. Cancelling a job sent
    its controller SIGINT, and a Ctrl-C in the terminal (SIGINT to the whole foreground process group)
    reached them too: each printed its KeyboardInterrupt traceback after the sweeper's message. The
    app's tasks still get theirs (in their job's log)."""
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(EXAMPLE_APP), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=submitit_local"]
    options = ["hydra.launcher.timeout_min=10", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=60"]
    proc = subprocess.Popen(
        [*command, *options],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the terminal's foreground process group
    )
    running = running_job_ids(sweep_dir, 2)
    if when == "while-tasks-run":
        wait_for_first_trial(sweep_dir)
    if stop == "kill":
        assert cli_main(["kill", str(sweep_dir)]) == 0
    else:
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err, err[-3000:]
    lines = error_lines(AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sweep_dir))
    assert lines == [lines[-1]] and lines[-1].startswith("Interrupted. Running trials were cancelled"), err[-3000:]
    if when == "while-tasks-run":  # the app was interrupted, as without the sweeper
        logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").glob(f"{running[0]}/*_log.err"))
        assert "KeyboardInterrupt" in logs, logs[-3000:]


API_ENV = {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": "", "SIGOPT_ENV_FILE": ""}


@pytest.mark.parametrize(
    ("overrides", "env", "says"),
    [
        pytest.param(["hydra.sweeper.seed=-1"], {}, "hydra.sweeper.seed: expected a whole number", id="seed-negative"),
        pytest.param(["hydra.sweeper.seed=4294967296"], {}, "valid seeds are 0 to 2**32-1", id="seed-too-large"),
        pytest.param(
            ["hydra.sweeper.backend=api", "hydra.sweeper.api.api_url=notaurl"],
            API_ENV,
            "hydra.sweeper.api.api_url: hydra.sweeper.api.api_url is 'notaurl', not an http(s) URL",
            id="api-url-without-scheme",
        ),
        pytest.param(
            [
                "hydra.sweeper.backend=api",
                "hydra.sweeper.api.api_url=http://127.0.0.1:9/api",
                "hydra.sweeper.api.timeout=0",
            ],
            API_ENV,
            "hydra.sweeper.api.timeout: expected seconds > 0",
            id="api-timeout-0",
        ),
        pytest.param(
            [
                "hydra.sweeper.backend=api",
                "hydra.sweeper.api.api_url=http://127.0.0.1:9/api",
                "hydra.sweeper.api.timeout=-5",
            ],
            API_ENV,
            "hydra.sweeper.api.timeout: expected seconds > 0",
            id="api-timeout-negative",
        ),
        pytest.param(
            [
                "hydra.sweeper.backend=api",
                "hydra.sweeper.api.api_url=http://127.0.0.1:9/api",
                "hydra.sweeper.api.max_unreachable_s=-1",
            ],
            API_ENV,
            "hydra.sweeper.api.max_unreachable_s: expected seconds > 0",
            id="api-max-unreachable-negative",
        ),
        pytest.param(
            [
                "hydra.sweeper.backend=api",
                "hydra.sweeper.api.api_url=http://127.0.0.1:9/api",
                "+hydra.sweeper.api.url=x",
            ],
            API_ENV,
            "hydra.sweeper.api.url: unknown setting; valid settings are ['api_url'",
            id="api-unknown-key",
        ),
        pytest.param(
            ["hydra.sweeper.api.timeout=5"],
            {},
            "hydra.sweeper.api.timeout: applies to backend: api only, and the backend is 'lite'",
            id="api-with-lite",
        ),
        pytest.param(["hydra.sweeper.progress_interval=nan"], {}, "progress_interval: expected seconds > 0", id="nan"),
        pytest.param(["hydra.sweeper.progress_interval=inf"], {}, "progress_interval: expected seconds > 0", id="inf"),
        pytest.param(["+hydra.sweep.mode=999"], {}, "hydra.sweep.mode: expected octal permission bits", id="mode"),
        pytest.param(
            ["hydra.sweeper.params.alpha={type:double,bounds:{min:-1e308,max:1e308}}"],
            {},
            "hydra.sweeper.params.alpha: values up to 1e+308 in magnitude; the engine handles at most 1e+150",
            id="bounds-1e308",
        ),
        pytest.param(
            [
                "hydra.sweeper.params.alpha={type:double,bounds:{min:1,max:2}}",
                "hydra.sweeper.params.l1_ratio={type:double,bounds:{min:1,max:2}}",
                "hydra.sweeper.linear_constraints=[{type:less_than,threshold:0,"
                "terms:[{name:alpha,weight:1},{name:l1_ratio,weight:1}]}]",
            ],
            {},
            "hydra.sweeper.linear_constraints[0].threshold: less_than 0 cannot hold inside the bounds",
            id="infeasible-constraint",
        ),
        pytest.param(
            ["hydra.sweeper.params.alpha={type:double,bounds:{min:0,max:1},prior:{name:uniform}}"],
            {},
            "hydra.sweeper.params.alpha.prior.name: got 'uniform'; valid priors are ['normal', 'beta']",
            id="unknown-prior",
        ),
        pytest.param(
            ["hydra.sweeper.metrics=[{name:" + "m" * 101 + ",objective:minimize}]"],
            {},
            "hydra.sweeper.metrics[0].name: the name is 101 characters long; SigOpt allows at most 100",
            id="metric-name-over-100",
        ),
        pytest.param(
            ["hydra.sweeper.name=" + "n" * 101],
            {},
            "hydra.sweeper.name: 'nnnnnnnnnnnnnnnnnnnn'... is 101 characters long",
            id="experiment-name-over-100-lite",
        ),
        pytest.param(
            ["hydra.sweeper.metrics=[{name:mse,objective:minimize,threshold:0.5}]"],
            {},
            "hydra.sweeper.metrics[0].threshold: SigOpt takes a threshold on an optimized metric only when two",
            id="threshold-on-the-one-optimized-metric",
        ),
        pytest.param(
            [
                "hydra.sweeper.params.alpha={type:double,bounds:{min:0,max:1}}",
                "hydra.sweeper.params.l1_ratio={type:double,bounds:{min:0,max:1}}",
                "hydra.sweeper.linear_constraints=[{type:less_than,threshold:1,"
                "terms:[{name:alpha,weight:0},{name:l1_ratio,weight:0}]}]",
            ],
            {},
            "hydra.sweeper.linear_constraints[0].terms: every weight is 0",
            id="constraint-of-zero-weights",
        ),
        pytest.param(
            # Issue 14: with the launcher's default signal_delay_s=120, a 2-minute limit made Slurm send
            # the pre-timeout signal as each job started; every trial longer than ~13 s failed as TIMEOUT.
            ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=2"],
            {},
            "hydra.launcher.signal_delay_s: 120 s is not shorter than the time limit hydra.launcher.timeout_min=2 "
            "(120 s): Slurm would send the pre-timeout signal as each job starts",
            id="slurm-signal-before-the-start",
        ),
    ],
)
def test_bad_settings_are_one_line_before_anything_exists(
    tmp_path: Path, overrides: list[str], env: dict[str, str], says: str
) -> None:
    assert_refused(run_example(tmp_path, *overrides, env=env), says)


@pytest.mark.parametrize("given_in", ["yaml", "command line"])
def test_a_fractional_budget_without_tasks_is_one_line_naming_the_key(tmp_path: Path, given_in: str) -> None:
    """``observation_budget=4.5`` was refused with OmegaConf's raw "Value '4.5' of type 'float' could
    not be converted to Integer" (with tasks a budget in costs is meaningful; without, it counts trials)."""
    budget = "4.5" if given_in == "yaml" else "4"
    app = write_app(tmp_path, f"observation_budget: {budget}\nparams:\n  x: interval(0, 2)")
    line = () if given_in == "yaml" else ("hydra.sweeper.observation_budget=4.5",)
    run = run_example(tmp_path, *line, app=app)
    says = assert_refused(run, "hydra.sweeper.observation_budget: ", "got 4.5", "hydra.sweeper.tasks")
    assert "could not be converted" not in says, says


def test_sweeping_a_hydra_config_group_is_refused(tmp_path: Path) -> None:
    app = write_app(tmp_path, "params:\n  x: interval(-5, 5)\n  hydra/launcher: choice(basic, submitit_local)")
    run = run_example(tmp_path, app=app)
    assert_refused(run, "hydra.sweeper.params.hydra/launcher: sweeps Hydra's own config")


OPTUNA_LEFTOVERS = """
n_trials: 20
direction: maximize
n_jobs: 2
storage: null
params:
  x: interval(-5, 5)
"""


def test_optuna_settings_are_named_at_once_with_their_translation(tmp_path: Path) -> None:
    app = write_app(tmp_path, OPTUNA_LEFTOVERS)
    line = assert_refused(
        run_example(tmp_path, app=app),
        "hydra.sweeper.n_trials, hydra.sweeper.direction, hydra.sweeper.n_jobs: these are settings of the Optuna",
        "n_trials -> observation_budget: 20",
        "direction -> metrics[].objective, e.g. metrics: [{name: value, objective: maximize}]",
        "n_jobs -> parallel_bandwidth: 2",
    )
    assert "storage" not in line  # null: nothing to translate


def test_an_optuna_sampler_is_named_with_the_others_before_hydra_builds_it(tmp_path: Path) -> None:
    """One line, as every refusal: it came wrapped in Hydra's instantiation error, the first thing a
    lightning-hydra-template user porting its mnist_optuna.yaml saw ("Error in call to target
    '...refuse_other_sweeper':", the refusal as a ConfigError(...) repr, "full_key: ...")."""
    sampler = "sampler:\n  _target_: optuna.samplers.TPESampler\n  seed: 1234\n"
    app = write_app(tmp_path, sampler + OPTUNA_LEFTOVERS)
    assert_refused(
        run_example(tmp_path, app=app),
        "hydra.sweeper.n_trials, hydra.sweeper.direction, hydra.sweeper.n_jobs, hydra.sweeper.sampler: these are",
        "n_trials -> observation_budget: 20",
        "sampler.seed -> seed: 1234",
    )


def test_a_leftover_optuna_target_is_refused_clearly_not_a_type_error(tmp_path: Path) -> None:
    target = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    app = write_app(tmp_path, f"_target_: {target}\ndirection: maximize\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app)
    assert_refused(
        run,
        f"hydra.sweeper._target_: is '{target}', left over from another sweeper",
        # In the same message, not at the next run: the Optuna settings beside it.
        "and hydra.sweeper.direction: a setting of the Optuna sweeper; here: direction -> metrics",
    )
    assert "TypeError" not in run.output


def test_a_refusal_made_while_hydra_builds_the_sweeper_keeps_its_traceback_on_full_error(tmp_path: Path) -> None:
    target = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    app = write_app(tmp_path, f"_target_: {target}\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app, env={"HYDRA_FULL_ERROR": "1"})
    assert run.proc.returncode != 0
    assert "Traceback" in run.proc.stderr and "left over from another sweeper" in run.proc.stderr


@pytest.mark.parametrize("override", ["lrr=0.1", "lrr=interval(0, 1)", "params"])
def test_a_key_the_app_lacks_stops_with_hydras_message_before_any_trial(tmp_path: Path, override: str) -> None:
    if override == "params":  # declared in the app's hydra.sweeper.params
        run = run_example(tmp_path, app=write_app(tmp_path, "params:\n  x: interval(-5, 5)\n  lrr: choice(1, 2)"))
    else:
        run = run_example(tmp_path, override)
    assert run.proc.returncode != 0
    assert "Could not override 'lrr'" in run.proc.stderr, run.output[-3000:]
    assert "Traceback" not in run.output and "Launching" not in run.output
    assert not run.sweep_dir.exists()


def test_every_config_group_option_is_composed_up_front(tmp_path: Path) -> None:
    for option in ("small", "large"):
        (tmp_path / "conf" / "model").mkdir(parents=True, exist_ok=True)
        (tmp_path / "conf" / "model" / f"{option}.yaml").write_text(f"width: {len(option)}\n")
    app = write_app(
        tmp_path,
        "params:\n  x: interval(-5, 5)\n  model: choice(small, large, larg)",
        defaults="  - model: small\n",
    )
    run = run_example(tmp_path, app=app)
    assert run.proc.returncode != 0
    assert "Could not find 'model/larg'" in run.proc.stderr, run.output[-3000:]
    assert "Traceback" not in run.output and "Launching" not in run.output
    assert not run.sweep_dir.exists()


def test_best_overrides_pasted_after_a_config_that_turns_the_sweep_on_are_told_to_add_run_mode(
    tmp_path: Path,
) -> None:
    """A tester pasted the best overrides after ``python train.py hparams_search=mlp_sigopt`` (a config
    that sets hydra.mode: MULTIRUN): every swept key got a value, and the refusal said "the search
    space is empty; declare at least one parameter", which they had."""
    run = run_example(tmp_path, "alpha=0.0012", "l1_ratio=1.0")  # what `hydra-sigopt best` printed
    assert_refused(run, "hydra.sweeper.params: every parameter of the search space is given a value on the")
    assert "(alpha, l1_ratio)" in error_lines(run)[0] and "add hydra.mode=RUN" in error_lines(run)[0]


def test_metrics_given_as_a_dict_is_one_line_naming_metrics(tmp_path: Path) -> None:
    app = write_app(tmp_path, "metrics: {loss: minimize}\nparams:\n  x: interval(-5, 5)")
    assert_refused(run_example(tmp_path, app=app), "hydra.sweeper.metrics: expected a non-empty list such as")


CONDITIONALS = """
params:
  +momentum: {type: double, bounds: {min: 0, max: 1}, conditions: {optimizer.name: [sgd]}}
  +beta2: {type: double, bounds: {min: 0.9, max: 0.999}, conditions: {optimizer.name: [adam]}}
conditionals:
  - {name: optimizer.name, values: [sgd, adam, rmsprop]}
"""


def test_a_conditional_value_no_parameter_uses_is_one_line(tmp_path: Path) -> None:
    """sigoptlite refused it only as the experiment was created, with a 70-line traceback."""
    app = write_app(tmp_path, CONDITIONALS)
    with open(tmp_path / "conf" / "config.yaml", "a") as f:
        f.write("optimizer:\n  name: sgd\n")
    assert_refused(
        run_example(tmp_path, app=app),
        "hydra.sweeper.conditionals[0].values: no parameter is switched on by 'rmsprop'",
    )


@pytest.mark.parametrize(
    ("override", "params", "says"),
    [
        pytest.param(
            "+batch_size=range(0, 100000000, 3)",
            "",
            "range(0, 100000000, 3) is a grid of 33,333,334 values, over the 100,000 taken; "
            "search int(interval(0, 99999999)) instead",
            id="int-range",
        ),
        pytest.param("+lr=range(0, 10, 0.000001)", "", "is a grid of 10,000,001 values", id="float-range"),
        pytest.param(
            "+lr=range(0, 10, 0.0000000001)",
            "",
            "range(0, 10, 1e-10) is a grid of 100,000,000,000 values, over the 100,000 taken; "
            "search interval(0, 10) instead",
            id="float-range-1e11",
        ),
        pytest.param(
            None,
            "x: {type: float, low: 0, high: 10, step: 0.000001}",
            "hydra.sweeper.params.x.step: {type: float, low: 0, high: 10, step: 1e-06} is a grid of 10,000,001 "
            "values, over the 100,000 taken; search {type: float, low: 0, high: 10} (no step) instead",
            id="optuna-step",
        ),
        pytest.param(
            None, "x: {type: int, low: 0, high: 100000000, step: 3}", "is a grid of 33,333,334", id="optuna-int-step"
        ),
    ],
)
def test_a_huge_stepped_grid_is_refused_before_it_is_listed(
    tmp_path: Path, override: str | None, params: str, says: str
) -> None:
    """Listing range(0, 100000000, 3) took 3 GB in 15 s before anything was said; range(0, 10, 1e-10) hung."""
    if override is not None:
        run = run_example(tmp_path, override, timeout=90)
    else:
        run = run_example(tmp_path, app=write_app(tmp_path, f"params:\n  {params}"), timeout=90)
    assert_refused(run, says)


VALID_SWEEPER_KEYS = "valid settings are ['name', 'params', 'metrics', 'observation_budget', 'parallel_bandwidth'"
VALID_EARLY_STOPPING_KEYS = "valid settings are ['rule', 'metric', 'min_step', 'max_step'"
# The lightning-hydra-template way: the sweep in its own config file, chosen with hparams_search=<file>.
HPARAMS_SEARCH = "# @package _global_\ndefaults:\n  - override /hydra/sweeper: sigopt\n\nhydra:\n  sweeper:\n"


def _run_with_sweeper_yaml(tmp_path: Path, where: str, sweeper_yaml: str) -> AppRun:
    """The app with ``sweeper_yaml`` under hydra.sweeper: in its primary config, or in an hparams_search file."""
    space = "params:\n  x: interval(-5, 5)\n"
    if where == "primary config":
        return run_example(tmp_path, app=write_app(tmp_path, space + sweeper_yaml))
    app = write_app(tmp_path, space)
    (tmp_path / "conf" / "hparams_search").mkdir()
    indented = "".join(f"    {line}\n" for line in sweeper_yaml.splitlines())
    (tmp_path / "conf" / "hparams_search" / "search.yaml").write_text(HPARAMS_SEARCH + indented)
    return run_example(tmp_path, "+hparams_search=search", app=app)


def _assert_one_line_before_anything(run: AppRun, *needles: str) -> str:
    """assert_refused, and no folder at all: neither the sweep dir nor Hydra's multirun/ in the working dir."""
    line = assert_refused(run, *needles)
    assert not (run.sweep_dir.parent / "multirun").exists()
    for structured_dump in ("full_key:", "object_type=", "Could not override"):
        assert structured_dump not in run.output, run.output[-3000:]
    return line


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            "hydra.sweeper.observation_budgt=5",
            f"hydra.sweeper.observation_budgt: unknown setting; {VALID_SWEEPER_KEYS}",
        ),
        (
            "hydra.sweeper.early_stopping.rulee=asha",
            f"hydra.sweeper.early_stopping.rulee: unknown setting; {VALID_EARLY_STOPPING_KEYS}",
        ),
    ],
)
def test_a_misspelt_sweeper_key_without_a_plus_is_one_line_naming_the_valid_keys(
    tmp_path: Path, override: str, says: str
) -> None:
    """Without a +, Hydra refused it while composing, with its structured-config dump (``Could not
    override``, ``Key 'observation_budgt' not in 'SigOptSweeperConf'``, ``full_key:``, ``object_type=``)."""
    _assert_one_line_before_anything(run_example(tmp_path, override), says)


@pytest.mark.parametrize("where", ["primary config", "hparams_search file"])
@pytest.mark.parametrize(
    ("sweeper_yaml", "says"),
    [
        ("observation_budgt: 5", f"hydra.sweeper.observation_budgt: unknown setting; {VALID_SWEEPER_KEYS}"),
        (
            "early_stopping:\n  rulee: asha",
            f"hydra.sweeper.early_stopping.rulee: unknown setting; {VALID_EARLY_STOPPING_KEYS}",
        ),
    ],
)
def test_a_misspelt_sweeper_key_in_a_config_file_is_one_line_naming_the_valid_keys(
    tmp_path: Path, where: str, sweeper_yaml: str, says: str
) -> None:
    _assert_one_line_before_anything(_run_with_sweeper_yaml(tmp_path, where, sweeper_yaml), says)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["hydra.sweeper.observation_budget=abc"], "hydra.sweeper.observation_budget: expected a whole number"),
        (["hydra.sweeper.parallel_bandwidth=1.5"], "hydra.sweeper.parallel_bandwidth: expected a whole number"),
        (
            ["hydra.sweeper.backend=api", "hydra.sweeper.api.timeout=abc"],
            "hydra.sweeper.api.timeout: expected a number, got 'abc'",
        ),
        (["hydra.sweeper.early_stopping.min_step=abc"], "hydra.sweeper.early_stopping.min_step: expected a whole"),
        (["hydra.sweeper.dev_run=maybe"], "hydra.sweeper.dev_run: expected true or false, got 'maybe'"),
        (["hydra.sweeper.max_failure_rate=abc"], "hydra.sweeper.max_failure_rate: expected a number"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_the_key(tmp_path: Path, overrides: list[str], says: str) -> None:
    """Hydra refused it while composing: "Error merging override ...", "Value '1.5' of type 'float'
    could not be converted to Integer", ``full_key:``, ``object_type=SigOptSweeperConf``."""
    _assert_one_line_before_anything(run_example(tmp_path, *overrides, env=API_ENV), says)


@pytest.mark.parametrize("where", ["primary config", "hparams_search file"])
def test_a_value_of_the_wrong_type_in_a_config_file_is_one_line_naming_the_key(tmp_path: Path, where: str) -> None:
    run = _run_with_sweeper_yaml(tmp_path, where, "parallel_bandwidth: two")
    _assert_one_line_before_anything(run, "hydra.sweeper.parallel_bandwidth: expected a whole number, got 'two'")


def test_a_declared_key_keeps_its_type_for_a_value_from_the_environment(tmp_path: Path) -> None:
    """``${oc.env:...}`` gives a string: the declared int turns it into the number, as OmegaConf did
    when Hydra composed a typed node (now untyped, so that typos and wrong types reach the sweeper)."""
    app = write_app(
        tmp_path, "observation_budget: 2\nparallel_bandwidth: ${oc.env:BANDWIDTH,1}\nparams:\n  x: interval(-5, 5)"
    )
    run = run_example(tmp_path, app=app, env={"BANDWIDTH": "2"}).assert_ok()
    assert len(run.trials) == 2
    assert "parallel_bandwidth: expected" not in run.output


def test_a_value_from_the_environment_keeps_its_type_beside_a_section_set_to_null(tmp_path: Path) -> None:
    """``early_stopping: null`` (no early stopping, as the sweeper takes it) made every other value go
    on as Hydra gave it: ``parallel_bandwidth: ${oc.env:BANDWIDTH}`` was refused with "expected a whole
    number >= 1, got '2'", a refusal of a right value."""
    app = write_app(
        tmp_path,
        "observation_budget: 2\nearly_stopping: null\nparallel_bandwidth: ${oc.env:BANDWIDTH,1}\n"
        "params:\n  x: interval(-5, 5)",
    )
    run = run_example(tmp_path, app=app, env={"BANDWIDTH": "2"})
    assert "parallel_bandwidth: expected" not in run.output, run.output[-2000:]
    run.assert_ok()
    assert len(run.trials) == 2


@pytest.mark.parametrize(
    ("sweeper_yaml", "env"),
    [
        ("observation_budget: ${oc.env:N_TRIALS,2}", {}),
        ("observation_budget: ${oc.env:N_TRIALS}", {"N_TRIALS": "2"}),
        ("observation_budget: 2\nwarm_jobs: ${oc.env:WARM,0}", {}),
    ],
)
def test_a_budget_or_warm_jobs_from_the_environment_is_the_number_it_says(
    tmp_path: Path, sweeper_yaml: str, env: dict[str, str]
) -> None:
    """``${oc.env:N_TRIALS,2}`` gives the string "2"; these two keys take a number or more (a cost budget,
    auto), so nothing converted it and the sweep was refused with ``expected a whole number >= 1, got '2'``."""
    app = write_app(tmp_path, f"{sweeper_yaml}\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app, env=env).assert_ok()
    assert len(run.trials) == 2


def test_a_native_dict_of_misplaced_bounds_is_not_taken_for_the_apps_nesting(tmp_path: Path) -> None:
    """``lr: {min: 0.001, max: 0.1}`` (bounds without their ``bounds`` key and type) was told to write
    ``lr.min: 0.001``, as if ``min`` were a key of the app's config."""
    app = write_app(tmp_path, "params:\n  lr: {min: 0.001, max: 0.1}")
    line = assert_refused(run_example(tmp_path, app=app), "hydra.sweeper.params.lr:")
    assert "write each key with dots" not in line and "valid keys are" in line and "'bounds'" in line, line


def test_a_nested_params_entry_is_refused_saying_to_write_its_keys_with_dots(tmp_path: Path) -> None:
    """``params: {model: {lr: ...}}`` (the app's config written as YAML nesting) was read as a SigOpt
    parameter dict: ``unknown key(s) ['lr']; valid keys are ['type', 'bounds', ...]``, which says
    nothing of the dotted keys ``params`` takes."""
    app = write_app(tmp_path, "params:\n  model:\n    lr: interval(0.0001, 0.1)\n    depth: int(interval(1, 4))")
    line = assert_refused(run_example(tmp_path, app=app), "hydra.sweeper.params.model:")
    assert "write each key with dots" in line and "model.lr: interval(0.0001, 0.1)" in line, line


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            "hydra.sweeper.scheduler=null",
            "hydra.sweeper.scheduler: expected a string, got null; leave it out for its default (auto)",
        ),
        (
            "hydra.sweeper.dev_run=null",
            "hydra.sweeper.dev_run: expected true or false, got null; leave it out for its default (false)",
        ),
        (
            "hydra.sweeper.early_stopping.min_step=null",
            "hydra.sweeper.early_stopping.min_step: expected a whole number, got null;"
            " leave it out for its default (1)",
        ),
    ],
)
def test_null_for_a_key_that_has_a_default_says_to_leave_it_out(tmp_path: Path, override: str, says: str) -> None:
    """``scheduler: null`` (meant as "the default") was refused as ``expected a string, got None``: a
    Python word for YAML's null, and nothing of what to write instead."""
    _assert_one_line_before_anything(run_example(tmp_path, override), says)


def test_a_nested_params_entry_from_the_command_line_is_shown_in_hydras_words(tmp_path: Path) -> None:
    """``hydra.sweeper.params.model.lr=null`` (Hydra reads its dots as nesting) was shown as
    ``model.lr: None``, Python's word for YAML's null."""
    app = write_app(tmp_path, "params:\n  x: interval(-5, 5)")
    line = assert_refused(run_example(tmp_path, "+hydra.sweeper.params.model.lr=null", app=app), "params.model:")
    assert "model.lr: null" in line, line


# ---------------------------------------------------------------- values Hydra cannot resolve or never got

UNSET_BUDGET = "observation_budget: ${oc.env:N_TRIALS}"


@pytest.mark.parametrize("where", ["primary config", "hparams_search file"])
def test_an_environment_variable_that_is_not_set_is_one_line_naming_the_key_and_the_default_to_give(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${oc.env:N_TRIALS}`` without a default, N_TRIALS unset: a 142-line traceback from inside
    OmegaConf's grammar, ending ``KeyError raised while resolving interpolation``, naming no key."""
    monkeypatch.delenv("N_TRIALS", raising=False)
    run = _run_with_sweeper_yaml(tmp_path, where, UNSET_BUDGET)
    _assert_one_line_before_anything(
        run,
        "hydra.sweeper.observation_budget: environment variable 'N_TRIALS' is not set; "
        "export it or give a default: ${oc.env:N_TRIALS,20}",
    )


@pytest.mark.parametrize(
    ("sweeper_yaml", "says"),
    [
        pytest.param(
            "early_stopping:\n  max_step: ${oc.env:MAX_STEP}",
            # its default, null (no limit), is what the default of the interpolation should be
            "hydra.sweeper.early_stopping.max_step: environment variable 'MAX_STEP' is not set; "
            "export it or give a default: ${oc.env:MAX_STEP,null}",
            id="nested-env",
        ),
        pytest.param(
            "observation_budget: ${hydra:nonexistent}",
            "hydra.sweeper.observation_budget: ${hydra:nonexistent} cannot be resolved while the sweeper is set up "
            "(Hydra's hydra: resolver works in trials only); refer to the key itself: ${hydra.nonexistent}",
            id="hydra-resolver",
        ),
        pytest.param(
            "name: ${hydra:job.name}-v2",
            "hydra.sweeper.name: ${hydra:job.name}-v2 cannot be resolved while the sweeper is set up "
            "(Hydra's hydra: resolver works in trials only); refer to the key itself: ${hydra.job.name}-v2",
            id="hydra-resolver-job-name",
        ),
        pytest.param(
            "observation_budget: ${budget}",
            "hydra.sweeper.observation_budget: ${budget} cannot be resolved: Interpolation key 'budget' not found",
            id="no-such-key",
        ),
    ],
)
def test_an_interpolation_that_cannot_be_resolved_is_one_line_naming_the_key(
    tmp_path: Path, sweeper_yaml: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each was a traceback of 140 lines (``${hydra:...}`` ending ``HydraConfig was not set``, which
    said nothing of where it was or what to write instead)."""
    monkeypatch.delenv("MAX_STEP", raising=False)
    _assert_one_line_before_anything(_run_with_sweeper_yaml(tmp_path, "primary config", sweeper_yaml), says)


def test_an_unresolvable_credential_is_named_without_its_value(tmp_path: Path) -> None:
    app = write_app(tmp_path, "api:\n  token: tok-half-written-${no_such_key}\nparams:\n  x: interval(-5, 5)")
    line = _assert_one_line_before_anything(run_example(tmp_path, app=app), "hydra.sweeper.api.token: its value")
    assert "tok-half-written" not in line, line


def test_an_unresolvable_url_is_named_without_its_password(tmp_path: Path) -> None:
    """The URL was quoted whole, its password with it (found by review-40)."""
    app = write_app(
        tmp_path, "api:\n  api_url: https://me:s3cretpw${no_such_key}@sigopt.lab/api\nparams:\n  x: interval(-5, 5)"
    )
    line = _assert_one_line_before_anything(
        run_example(tmp_path, app=app), "hydra.sweeper.api.api_url: https://me:***@"
    )
    assert "s3cretpw" not in line, line


def test_a_value_left_unset_in_a_list_says_to_give_it_in_the_config(tmp_path: Path) -> None:
    """It said "give it, e.g. on the command line: or in the config" (found by review-40)."""
    app = write_app(tmp_path, "metrics:\n  - name: ???\n    objective: minimize\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app)
    line = _assert_one_line_before_anything(run, "hydra.sweeper.metrics[0].name: needs a value")
    assert line.endswith("(??? asks for one); give it in the config"), line


def test_the_key_itself_named_in_place_of_the_hydra_resolver_works(tmp_path: Path) -> None:
    """What the refusal of ``${hydra:job.name}`` says to write instead does resolve."""
    app = write_app(tmp_path, "name: ${hydra.job.name}-v2\nobservation_budget: 1\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app).assert_ok()
    assert "SigOpt sweep 'app-v2'" in run.output, run.output[-2000:]


def test_an_unresolvable_interpolation_keeps_its_traceback_on_full_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("N_TRIALS", raising=False)
    app = write_app(tmp_path, f"{UNSET_BUDGET}\nparams:\n  x: interval(-5, 5)")
    run = run_example(tmp_path, app=app, env={"HYDRA_FULL_ERROR": "1"})
    assert run.proc.returncode != 0
    assert "Traceback" in run.proc.stderr and "environment variable 'N_TRIALS' is not set" in run.proc.stderr
    assert not run.sweep_dir.exists()


def _files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time; not SQLite's shared-memory
    index of the journal (``-shm``), which any reader of the journal touches, as continue does."""
    files = (p for p in folder.rglob("*") if not p.name.endswith("-shm"))
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


def test_continue_run_from_a_shell_without_the_variable_is_one_line_and_leaves_the_sweep_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way a user meets it: the sweep was started with ``N_TRIALS=3`` exported; its sweeper died
    (killed in a trial); ``hydra-sigopt continue DIR --run`` from a new SSH session, where N_TRIALS
    is not set, printed the 142-line traceback."""
    from hydra_sigopt.crashpoints import ENV_VAR

    monkeypatch.delenv("N_TRIALS", raising=False)
    app = write_app(tmp_path, f"{UNSET_BUDGET}\nparams:\n  x: interval(-5, 5)")
    killed = run_example(tmp_path, app=app, env={"N_TRIALS": "3", ENV_VAR: "in_task:1"})
    assert killed.proc.returncode == -signal.SIGKILL, killed.output[-3000:]
    before = _files_of(killed.sweep_dir)
    cli_path = Path(sys.executable).with_name("hydra-sigopt")  # --run becomes the sweeper: not in this process
    proc = subprocess.run(
        [str(cli_path), "continue", str(killed.sweep_dir), "--run"], capture_output=True, text=True, timeout=600
    )
    run = AppRun(proc, killed.sweep_dir)
    assert_refused(
        run,
        "hydra.sweeper.observation_budget: environment variable 'N_TRIALS' is not set; "
        "export it or give a default: ${oc.env:N_TRIALS,20}",
        created=True,
    )
    assert _files_of(killed.sweep_dir) == before


@pytest.mark.parametrize(
    ("sweeper_yaml", "overrides", "says"),
    [
        pytest.param(
            "",
            ["hydra.sweeper.parallel_bandwidth=???"],
            "hydra.sweeper.parallel_bandwidth: needs a value, a whole number >= 1 (??? asks for one); "
            "give it, e.g. on the command line: hydra.sweeper.parallel_bandwidth=1",
            id="on-the-command-line",
        ),
        pytest.param(
            "",
            ["hydra.sweeper.observation_budget=???"],
            "hydra.sweeper.observation_budget: needs a value, a whole number >= 1 (with tasks, a number > 0)",
            id="budget-on-the-command-line",
        ),
        pytest.param(
            "early_stopping:\n  rule: ???",
            [],
            "hydra.sweeper.early_stopping.rule: needs a value, one of ['none', 'median', 'asha']",
            id="in-a-config-file",
        ),
        pytest.param(
            # the app's own key left for the command line, which the sweeper's refers to
            "observation_budget: ${trials}",
            [],
            "hydra.sweeper.observation_budget: ${trials} refers to trials, which needs a value (??? asks for one); "
            "give it, e.g. trials=...",
            id="through-an-interpolation",
        ),
    ],
)
def test_a_value_marked_as_mandatory_and_not_given_is_one_line_naming_the_key(
    tmp_path: Path, sweeper_yaml: str, overrides: list[str], says: str
) -> None:
    """``hydra.sweeper.parallel_bandwidth=???`` was a traceback ending ``MissingMandatoryValue``; the
    others were silently taken as the key's default, and the sweep ran."""
    app = write_app(tmp_path, f"{sweeper_yaml}\nparams:\n  x: interval(-5, 5)")
    (tmp_path / "conf" / "config.yaml").write_text((tmp_path / "conf" / "config.yaml").read_text() + "trials: ???\n")
    _assert_one_line_before_anything(run_example(tmp_path, *overrides, app=app), says)


@pytest.mark.parametrize(
    ("sweeper_yaml", "overrides", "says"),
    [
        pytest.param(
            "early_stopping: [asha]\nparams:\n  x: interval(-5, 5)",
            [],
            "hydra.sweeper.early_stopping: expected a dict such as {rule: asha, min_step: 1}, got ['asha']",
            id="list-for-early-stopping-in-a-file",
        ),
        pytest.param(
            "api: [http://localhost]\nparams:\n  x: interval(-5, 5)",
            [],
            "hydra.sweeper.api: expected a dict of API settings",
            id="list-for-api-in-a-file",
        ),
        pytest.param(
            "conditionals: {optimizer: [sgd, adam]}\nparams:\n  x: interval(-5, 5)",
            [],
            "hydra.sweeper.conditionals: expected a list, got {'optimizer': ['sgd', 'adam']}",
            id="dict-for-conditionals-in-a-file",
        ),
        pytest.param(
            "params:\n  x: interval(-5, 5)",
            ["hydra.sweeper.tasks={a:1}"],
            "hydra.sweeper.tasks: expected a list of at least 2 tasks",
            id="dict-for-tasks-on-the-command-line",
        ),
        pytest.param(
            "observation_budget: 2",
            ["hydra.sweeper.params=[1,2]"],
            "hydra.sweeper.params: expected a dict {config key: sweep}",
            id="list-for-params-on-the-command-line",
        ),
    ],
)
def test_a_list_for_a_dict_or_the_reverse_is_one_line_naming_the_key(
    tmp_path: Path, sweeper_yaml: str, overrides: list[str], says: str
) -> None:
    """Hydra refused each while composing, in four lines: "Cannot merge DictConfig with ListConfig",
    ``full_key:``, ``object_type=dict``."""
    app = write_app(tmp_path, sweeper_yaml)
    line = _assert_one_line_before_anything(run_example(tmp_path, *overrides, app=app), says)
    assert "Cannot merge" not in line, line
