"""The hydra-sigopt command on real sweep dirs made by the example app."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import EPOCHS_APP, EXAMPLE_APP, SUBMITIT_LOCAL, AppRun, run_example, running_job_ids, start_example
from conftest import write_app as write_sweep_app
from small_apps import write_app

from hydra_sigopt.cli import main
from hydra_sigopt.journal import JOURNAL_NAME, Journal
from hydra_sigopt.processes import pid_running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    workdir = tmp_path_factory.mktemp("cli")
    return run_example(workdir, "hydra.sweeper.observation_budget=5", "fail_mode=raise", "fail_jobs=[3]").assert_ok()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_reading_a_finished_sweep_writes_nothing_in_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status, best and continue read a sweep: each left sigopt_journal.sqlite-wal and -shm behind
    in a sweep that had ended cleanly without them (files of ours in the user's results folder,
    which a later copy or archive of it carries along)."""
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    before = sorted(p.name for p in run.sweep_dir.iterdir())
    for command in ("status", "best", "continue"):
        code, _, err = cli(capsys, command, str(run.sweep_dir))
        assert code == 0, err
    assert sorted(p.name for p in run.sweep_dir.iterdir()) == before


def test_status_counts_best_and_table(finished_sweep: AppRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "status", str(finished_sweep.sweep_dir))
    assert code == 0
    assert "5/5 done (4 completed, 1 failed), 0 running" in out
    assert "Sweeper:     not running (the budget is spent)" in out
    best = finished_sweep.results
    assert f"mse={best['best_value']:.6g} (trial #{best['best_trial']}): {best['best_overrides']}" in out
    code, out, _ = cli(capsys, "status", "--all", str(finished_sweep.sweep_dir))
    lines = out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("#"))) :]
    assert len(table) == 6
    assert table[0].split()[:4] == ["#", "state", "job", "mse"], table[0]  # no task column without tasks
    assert "failed" in table[4] and "RuntimeError: fail_mode=raise" in table[4]


def test_status_best_line_points_to_the_full_rerun_overrides(finished_sweep: AppRun) -> None:
    """A user pasted status's Best: line (the searched values only) and lost the sweep's own overrides
    (fail_mode=raise fail_jobs=[3] here): ``hydra-sigopt best DIR`` prints them all, status never said so."""
    sweep_dir = str(finished_sweep.sweep_dir)
    hydra_sigopt = [sys.executable, "-m", "hydra_sigopt.cli"]
    status = subprocess.run([*hydra_sigopt, "status", sweep_dir], capture_output=True, text=True)
    lines = status.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Best:"))
    pointer = f"             every override to rerun it, fixed ones too: hydra-sigopt best {shlex.quote(sweep_dir)}"
    assert lines[at + 1 : at + 2] == [pointer], status.stdout
    assert all(len(line) <= 120 for line in lines[at : at + 2] if sweep_dir not in line), lines[at : at + 2]
    best = subprocess.run([*hydra_sigopt, "best", sweep_dir], capture_output=True, text=True)
    assert "fail_mode=raise" in best.stdout and "fail_mode=raise" not in lines[at], (best.stdout, lines[at])


LONG_NAMES = """
observation_budget: 2
params:
  model.optimizer.learning_rate: tag(log, interval(1e-4, 1e-1))
  data.loader.batch_size: choice(32, 64, 128, 256)
  model.net.lin1_size: choice(64, 128, 256)
  model.net.lin2_size: choice(64, 128, 256)
  model.net.lin3_size: choice(32, 64, 128, 256)
"""


def test_status_all_marks_the_overrides_it_cuts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The lightning-hydra-template's five parameters: each row of status --all was cut at 100
    characters with nothing to say so, mid-name ("model.net.lin2_siz") or mid-value: "lin1_size=12"
    for a trial that ran 128."""
    app = write_sweep_app(tmp_path, LONG_NAMES, body="return cfg.model.optimizer.learning_rate")
    config = app.parent / "conf" / "config.yaml"
    keys = "model: {optimizer: {learning_rate: 0.1}, net: {lin1_size: 1, lin2_size: 1, lin3_size: 1}}\n"
    config.write_text(config.read_text().replace("y: 0.0\n", f"y: 0.0\n{keys}data: {{loader: {{batch_size: 1}}}}\n"))
    run = run_example(tmp_path, app=app).assert_ok()
    code, out, _ = cli(capsys, "status", "--all", str(run.sweep_dir))
    assert code == 0
    rows = out.splitlines()[-2:]
    for row, trial in zip(rows, run.trials):
        shown = row.split("  ")[-1]
        assert shown.endswith("…") and trial["overrides"].startswith(shown[:-1]), (shown, trial["overrides"])


def _watch(sweep_dir: Path) -> subprocess.Popen[str]:
    """``hydra-sigopt status SWEEP_DIR --watch 1``, its output into a pipe (not a terminal)."""
    command = [sys.executable, "-m", "hydra_sigopt.cli", "status", str(sweep_dir), "--watch", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _readline_until(stream: Any, wanted: str) -> str:
    """The lines read until one holds ``wanted`` (all of them, if the stream ends first)."""
    read = ""
    while line := stream.readline():
        read += line
        if wanted in line:
            break
    return read


def test_status_watch_follows_a_sweep_from_before_its_dir_exists_and_ends_with_it(tmp_path: Path) -> None:
    """There was no way to follow a sweep but to run status again and again. ``--watch`` is started
    before the sweep made its dir (it waits, saying so once), shows the trials as they end, and ends
    by itself, with exit 0, once the sweep has ended, its last snapshot showing the end."""
    sweep_dir = tmp_path / "sweep"
    watcher = _watch(sweep_dir)
    try:
        first = _readline_until(watcher.stdout, "Waiting for a sweep")
        assert f"Waiting for a sweep in {sweep_dir}" in first
        run_example(tmp_path, "hydra.sweeper.observation_budget=4", "sleep_s=1").assert_ok()
        out, err = watcher.communicate(timeout=120)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert err == "" and "Waiting for a sweep" not in out  # said once, in the first line
    # Into a pipe each snapshot follows the last after a line with its time (no screen clearing).
    snapshots = re.split(r"^--- [0-9: -]+ ---$", out, flags=re.MULTILINE)[1:]
    assert len(snapshots) >= 2 and "\033[" not in out, out
    done = [int(re.search(r"Trials:\s+(\d+)/4 done", s).group(1)) for s in snapshots]  # type: ignore[union-attr]
    assert min(done) < 4 and done == sorted(done), out  # it showed the trials as they ended
    assert done[-1] == 4 and "Sweeper:     not running (the budget is spent)" in snapshots[-1], out


def test_status_watch_ends_quietly_on_ctrl_c_while_the_sweep_runs_on(tmp_path: Path) -> None:
    """Ctrl-C stops the watching (exit 0, no traceback), not the sweep."""
    proc, sweep_dir = start_example(tmp_path, "hydra.sweeper.observation_budget=2", "sleep_s=60")
    try:
        watcher = _watch(sweep_dir)
        assert "Trials:" in _readline_until(watcher.stdout, "Trials:")
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert proc.poll() is None  # the sweep runs on
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)


def test_best_prints_the_overrides_ready_to_paste(finished_sweep: AppRun, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "best", str(finished_sweep.sweep_dir))
    assert code == 0
    # The sweep's own command line (fail_mode=raise ...) first: the best trial ran with it too.
    assert out.strip() == f"fail_mode=raise 'fail_jobs=[3]' {finished_sweep.results['best_overrides']}"
    # Pasted on the command line, they give the same result (the example app's fault hook, off here,
    # reads hydra.job.num, which only a multirun has).
    single = subprocess.run(
        [sys.executable, str(EXAMPLE_APP), *shlex.split(out), "fail_mode=none"],
        capture_output=True,
        text=True,
        cwd=finished_sweep.sweep_dir,
    )
    assert f"mse={finished_sweep.results['best_value']:.2f}" in single.stdout + single.stderr


def test_plot_writes_a_png(finished_sweep: AppRun, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import matplotlib.image

    out_png = tmp_path / "sweep.png"
    code, _, _ = cli(capsys, "plot", str(finished_sweep.sweep_dir), "-o", str(out_png))
    assert code == 0 and out_png.is_file()
    image = matplotlib.image.imread(out_png)
    # Three panels (objective, alpha, l1_ratio) side by side at 100 dpi.
    assert image.shape[:2] == (360, 1500)


def test_plot_into_a_folder_that_does_not_exist_is_refused_and_creates_nothing(
    finished_sweep: AppRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``plot -o /nonexistent/dir/x.png`` created the missing folders: a typo in the path made a tree
    of folders somewhere unexpected. It is refused in one line naming the folder."""
    out_png = tmp_path / "nonexistent" / "dir" / "x.png"
    code, out, err = cli(capsys, "plot", str(finished_sweep.sweep_dir), "-o", str(out_png))
    assert code == 2, out
    assert err.strip() == f"hydra-sigopt: -o {out_png}: the folder {out_png.parent} does not exist; create it first"
    assert not (tmp_path / "nonexistent").exists()


def test_plot_without_matplotlib_says_what_to_install(finished_sweep: AppRun, tmp_path: Path) -> None:
    """The README's install line (``[lite]``) brings no matplotlib: ``plot`` ended in a traceback."""
    without = "import sys; sys.modules['matplotlib'] = None; from hydra_sigopt.cli import main; sys.exit(main())"
    out_png = tmp_path / "sweep.png"
    done = subprocess.run(
        [sys.executable, "-c", without, "plot", str(finished_sweep.sweep_dir), "-o", str(out_png)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "hydra-sigopt: plot needs matplotlib: pip install 'hydra-sigopt-sweeper[plot]'"
    assert not out_png.exists()


def drawn_figure(sweep_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Any]:
    """``hydra-sigopt plot``'s panels' titles and its figure, as drawn."""
    from matplotlib.figure import Figure

    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: drawn.append(figure))
    titles: list[str] = []
    monkeypatch.setattr("hydra_sigopt.cli._out", lambda text="": titles.append(text))
    assert main(["plot", str(sweep_dir)]) == 0
    (figure,) = drawn
    return [ax.get_title() for ax in figure.axes], figure


def legend_of(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_of_two_metrics_shows_the_second_and_the_pareto_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two optimized metrics the plot drew the first only: the Pareto set ``best`` prints was
    nowhere, and the trial best on the second looked mediocre. A failed trial was drawn at the lowest
    value shown, which for a minimized metric is where the best trials are."""
    app = write_sweep_app(
        tmp_path,
        "observation_budget: 6\nparallel_bandwidth: 1\nseed: 3\n"
        "metrics:\n  - {name: loss, objective: minimize}\n  - {name: xval, objective: maximize}\n"
        "params:\n  x: interval(-5, 5)",
        body="from hydra.core.hydra_config import HydraConfig\n"
        "    if HydraConfig.get().job.num == 2: raise RuntimeError('diverged')\n"
        "    return (cfg.x - 1) ** 2, cfg.x",
    )
    run = run_example(tmp_path, app=app).assert_ok()
    front = sorted(s["trial"] for s in run.results["solutions"])
    titles, figure = drawn_figure(run.sweep_dir, monkeypatch)
    assert f"Pareto front: {len(front)} of 5 trials" in titles, titles
    pareto = figure.axes[titles.index(f"Pareto front: {len(front)} of 5 trials")]
    assert (pareto.get_xlabel(), pareto.get_ylabel()) == ("loss (minimize)", "xval (maximize)")
    assert sorted(int(a.get_text()[1:]) for a in pareto.texts) == front
    assert "Pareto-optimal (hydra-sigopt best)" in legend_of(pareto)
    first = figure.axes[0]
    assert "best loss so far" in legend_of(first)
    failed = next(c for c in first.collections if c.get_label() == "failed (no value)")
    assert failed.get_offsets()[0][1] > 0.9  # near the top: the worse end of a minimized metric


def test_the_plot_of_a_short_sweep_numbers_its_trials_in_whole_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tester: the trial axis of a sweep of a few trials was ticked 0.0, 0.2, ... (trial 0.5 is no trial)."""
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    _, figure = drawn_figure(run.sweep_dir, monkeypatch)
    ticks = figure.axes[0].get_xticks()
    assert all(float(tick).is_integer() for tick in ticks), ticks


@pytest.mark.parametrize("fail_jobs", ["[0,1]", "null"])
def test_the_plot_shows_every_failed_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_jobs: str) -> None:
    """A sweep whose first trials failed, or every trial: the title said "4 failed" and one cross was
    drawn, at trial 0 (or none); the failed trials before the first completed one fell outside the
    trial axis, which only the completed trials and the best-so-far line had set."""
    failing = ("fail_mode=raise", f"fail_jobs={fail_jobs}", "hydra.sweeper.max_failure_rate=1")
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=4", *failing).assert_ok()
    failed = [int(t["number"]) for t in run.trials if t["state"] == "failed"]
    assert failed == ([0, 1] if fail_jobs != "null" else [0, 1, 2, 3]), run.trials
    _, figure = drawn_figure(run.sweep_dir, monkeypatch)
    first = figure.axes[0]
    low, high = first.get_xlim()
    assert low < 0 and high > 3, (low, high)
    crosses = next(c for c in first.collections if c.get_label() == "failed (no value)")
    assert sorted(x for x, _ in crosses.get_offsets()) == failed


def test_plot_of_a_sweep_without_an_ended_trial_says_so_in_one_line(tmp_path: Path) -> None:
    """An in-process sweep that died in its first trial (kill -9, the OOM killer, os._exit): plot
    wrote "Wrote sweep.png", an image of empty panels with axes at -0.04 to 0.04."""
    app = write_sweep_app(
        tmp_path, "observation_budget: 3\nparams:\n  x: interval(0, 1)", body="import os; os._exit(9)"
    )
    run = run_example(tmp_path, app=app)
    assert run.proc.returncode == 9, run.output[-2000:]
    out_png = tmp_path / "sweep.png"
    done = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "plot", str(run.sweep_dir), "-o", str(out_png)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stdout
    assert done.stderr == "Nothing to plot yet: no trial has ended (1 started).\n", done.stderr
    assert not out_png.exists()


def test_plot_of_a_sweep_whose_every_trial_failed_says_why_its_parameter_panels_are_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user: every trial failed, and plot drew one empty panel per parameter with no word of why."""
    failing = ("fail_mode=raise", "fail_jobs=null", "hydra.sweeper.max_failure_rate=1")
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2", *failing).assert_ok()
    assert {t["state"] for t in run.trials} == {"failed"}, run.trials
    out_png = tmp_path / "sweep.png"
    done = subprocess.run(
        [sys.executable, "-m", "hydra_sigopt.cli", "plot", str(run.sweep_dir), "-o", str(out_png)],
        capture_output=True,
        text=True,
    )
    said = f"Wrote {out_png} (no trial completed: nothing to plot but the failures, 2 failed)\n"
    assert (done.returncode, done.stdout, done.stderr) == (0, said, ""), (done.stdout, done.stderr)
    assert out_png.exists()
    titles, figure = drawn_figure(run.sweep_dir, monkeypatch)
    parameter_panels = [ax for ax in figure.axes[1:] if ax.get_xlabel() and ax.axison]
    assert parameter_panels, titles
    for ax in parameter_panels:
        assert [t.get_text() for t in ax.texts] == ["no trial completed:\nnothing to plot but the failures"]


def test_plot_tells_trials_outside_a_constraint_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = write_sweep_app(
        tmp_path,
        "observation_budget: 5\nparallel_bandwidth: 1\nseed: 1\n"
        "metrics:\n  - {name: loss, objective: minimize}\n"
        "  - {name: mem, objective: minimize, strategy: constraint, threshold: 0.5}\n"
        "params:\n  x: interval(0, 1)",
        body="return {'loss': (cfg.x - 0.2) ** 2, 'mem': cfg.x}",
    )
    run = run_example(tmp_path, app=app).assert_ok()
    outside = [t for t in run.trials if float(t["value.mem"]) > 0.5]
    assert outside, run.trials  # seeded: some trials are outside mem <= 0.5
    _, figure = drawn_figure(run.sweep_dir, monkeypatch)
    first = figure.axes[0]
    drawn = next(c for c in first.collections if c.get_label() == "completed, outside a constraint")
    assert sorted(x for x, _ in drawn.get_offsets()) == sorted(float(t["number"]) for t in outside)


def test_continue_prints_and_runs_the_resume_command(
    finished_sweep: AppRun, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "continue", str(finished_sweep.sweep_dir))
    assert code == 0
    command = out.strip()
    assert f"hydra.sweep.dir={finished_sweep.sweep_dir.resolve()}" in command
    assert str(EXAMPLE_APP) in command and "-m" in command
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Resuming the sweep" in done.stdout + done.stderr
    assert len(finished_sweep.trials) == 5  # the budget was spent: nothing new ran


def test_continue_keeps_the_budget_a_resume_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished sweep of 2 resumed with hydra.sweeper.resume=<dir> and a budget of 5, then
    Ctrl-C'd: continue printed the first command's budget of 2, and --run ended at once, "3/2
    trials done": the raised budget was lost."""
    from hydra_sigopt.crashpoints import ENV_VAR

    first = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    resume = (f"hydra.sweeper.resume={first.sweep_dir}", "hydra.sweeper.observation_budget=5")
    stopped = run_example(tmp_path, *resume, env={ENV_VAR: "after_result:1:INT"})
    assert "Interrupted" in stopped.output, stopped.output[-3000:]
    code, out, _ = cli(capsys, "continue", str(first.sweep_dir))
    assert code == 0 and "hydra.sweeper.observation_budget=5" in out, out
    done = subprocess.run(out.strip(), shell=True, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with Journal.open(first.sweep_dir, readonly=True) as journal:
        assert sum(t.state == "completed" for t in journal.trials()) == 5


@pytest.mark.parametrize("on_interrupt", ["cancel", "detach"])
def test_kill_stops_a_live_sweep_and_its_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], on_interrupt: str
) -> None:
    """With ``on_interrupt: detach`` the sweeper took kill's SIGTERM for a Ctrl-C and said "Trials
    [0, 1] were left running (on_interrupt: detach); a resumed sweep re-attaches to them", then kill
    cancelled them, after saying the sweeper "cancels its own jobs". A kill cancels, whatever the policy."""
    proc, sweep_dir = start_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=6",
        "hydra.sweeper.parallel_bandwidth=2",
        f"hydra.sweeper.on_interrupt={on_interrupt}",
        "sleep_s=60",
    )
    running_ids = running_job_ids(sweep_dir, 2)
    running = list(running_ids.values())
    code, out, _ = cli(capsys, "status", str(sweep_dir))
    assert f"Sweeper:     pid {proc.pid} on {socket.gethostname()}" in out
    code, out, _ = cli(capsys, "kill", str(sweep_dir))
    assert code == 0
    assert f"Stopping the sweeper (pid {proc.pid})" in out
    # What the sweeper did with its trials is said, not "No running trials." (issue 14).
    for number, job_id in running_ids.items():
        assert f"trial #{number} job {job_id}: cancelled by the sweeper" in out
    assert "No running trials." not in out
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Interrupted. Running trials were cancelled" in output and "Continue this sweep with:" in output
    deadline = time.time() + 10
    while time.time() < deadline and any(pid_running(j) for j in running):
        time.sleep(0.2)
    assert not any(pid_running(j) for j in running)
    with Journal.open(sweep_dir, readonly=True) as j:
        assert not j.trials(["running", "pending"])
        assert {t.state for t in j.trials()} == {"abandoned"}
    code, out, _ = cli(capsys, "status", str(sweep_dir))
    # Right after the stop: nothing has replaced them yet.
    assert "0 running, 2 abandoned (2 given up: new suggestions take their place)" in out
    assert f"Sweeper:     not running — resume with: hydra-sigopt continue {sweep_dir} --run" in out


def kill_a_hung_sweeper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, hang: str
) -> tuple[Path, dict[int, str], str]:
    """Two running submitit_local trials; the sweeper hangs (``hang``: SIGSTOP now, or where the
    crash point named stops it); ``hydra-sigopt kill`` with 3 s of patience, which must SIGKILL it."""
    import functools
    import signal

    from hydra_sigopt import cli as cli_module
    from hydra_sigopt.crashpoints import ENV_VAR

    env = {ENV_VAR: hang} if hang != "SIGSTOP" else None
    overrides = ("hydra.sweeper.observation_budget=6", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=60")
    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, *overrides, env=env)
    running = running_job_ids(sweep_dir, 2)
    if hang == "SIGSTOP":
        proc.send_signal(signal.SIGSTOP)
    monkeypatch.setattr(cli_module, "kill_sweep", functools.partial(cli_module.kill_sweep, wait_s=3))
    try:
        code, out, _ = cli(capsys, "kill", str(sweep_dir))
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()
    assert code == 0 and f"The sweeper (pid {proc.pid}) did not stop within 3 s of SIGTERM; killed it (SIGKILL)" in out
    assert not any(pid_running(j) for j in running.values())
    return sweep_dir, running, out


def test_kill_of_a_sweeper_that_does_not_stop_kills_it_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen sweeper (SIGSTOP, a hung file system) ignored the SIGTERM: kill waited 60 s, then
    said the trials were cancelled and exited 0, while the sweeper still held the sweep (status:
    "Sweeper: pid N"; continue was refused)."""
    sweep_dir, _, _ = kill_a_hung_sweeper(tmp_path, capsys, monkeypatch, "SIGSTOP")
    with Journal.open(sweep_dir, readonly=True) as j:
        assert not j.trials(["running", "pending"])
    _, out, _ = cli(capsys, "status", str(sweep_dir))
    assert "Sweeper:     not running" in out, out


def test_a_kill_interrupted_while_it_waits_leaves_no_marker_behind(tmp_path: Path) -> None:
    """A reviewer: ``hydra-sigopt kill`` stopped by a Ctrl-C while it waited for a frozen sweeper left
    its marker (``sigopt_kill_requested``, naming the sweeper's pid) in the sweep dir; a later
    sweeper given the same pid (a container's) would take its own Ctrl-C for a kill."""
    from hydra_sigopt.journal import KILL_MARKER_NAME

    proc, sweep_dir = start_example(tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.observation_budget=4", "sleep_s=60")
    running_job_ids(sweep_dir, 1)
    proc.send_signal(signal.SIGSTOP)
    try:
        kill = subprocess.Popen([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], text=True)
        deadline = time.time() + 30
        while not (sweep_dir / KILL_MARKER_NAME).exists():
            assert time.time() < deadline and kill.poll() is None, "kill wrote no marker"
            time.sleep(0.05)
        kill.send_signal(signal.SIGINT)
        kill.wait(timeout=30)
        assert not (sweep_dir / KILL_MARKER_NAME).exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)
        proc.communicate(timeout=60)  # the trial's job, cancelled, lets the output pipe go


def test_kill_of_a_sweeper_that_hangs_while_cancelling_cancels_the_jobs_it_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper stopping marks its running trials abandoned, then cancels their jobs one by one
    (scancel may take a minute each on a busy controller). Killed in between, it left jobs running
    that kill reported as "cancelled by the sweeper"."""
    _, running, out = kill_a_hung_sweeper(tmp_path, capsys, monkeypatch, "before_cancel:1:STOP")
    for number, job_id in running.items():
        assert f"trial #{number} job {job_id}: cancelled: " in out, out


@pytest.mark.parametrize("named", ["no process", "a process not holding it"])
def test_kill_never_signals_an_unknown_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], named: str
) -> None:
    """A lock held while its file names no process (a sweeper between taking the lock and writing its
    pid) read as pid -1, and ``os.kill(-1, SIGTERM)`` signals every process the user may signal. In
    that instant the file may also still name the sweeper before it, whose pid may be reused."""
    from hydra_sigopt import cli as cli_module

    sweep_dir = run_example(tmp_path, "hydra.sweeper.observation_budget=1").assert_ok().sweep_dir

    signals: list[tuple[int, int]] = []
    monkeypatch.setattr(cli_module.os, "kill", lambda pid, sig: signals.append((pid, sig)))
    lock_file = sweep_dir / "sigopt_journal.lock"
    lock_file.write_text("" if named == "no process" else f"{os.getpid()}@{socket.gethostname()}\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
            str(lock_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, _, err = cli(capsys, "kill", str(sweep_dir))
        sent = list(signals)
    finally:
        monkeypatch.undo()
        holder.kill()
        holder.wait()
    assert sent == []
    assert code != 0 and "does not name the process holding it" in err, err


#: The stop comes with the first report, made at once; the next report, where the trial would learn
#: of it, is an epoch (300 s) later.
REPORTS_AT_ONCE_THEN_A_LONG_EPOCH = """\
import time
from hydra_sigopt import report

for epoch in range(1, 4):
    report(epoch, value=cfg.x)
    time.sleep(300)
return cfg.x
"""


def test_kill_cancels_the_jobs_of_trials_stopped_early_that_run_on_to_their_next_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial stopped early where it did not wait for a verdict (a spent step budget; a rule's verdict
    later than the wait) learns it at its next report: an epoch later, which may be an hour of GPU.
    A sweeper killed meanwhile, ``hydra-sigopt kill`` left those jobs running (it cancelled running trials only)."""
    proc, sweep_dir = start_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.warm_jobs=0",
        "hydra.sweeper.early_stopping.rule=none",  # no rule: no report waits for a verdict
        "hydra.sweeper.early_stopping.step_budget=1",  # spent by the first report: each trial stopped at its first
        app=write_app(tmp_path, REPORTS_AT_ONCE_THEN_A_LONG_EPOCH),
    )
    try:
        jobs = running_job_ids(sweep_dir, 2)
        deadline = time.time() + 120
        while time.time() < deadline and len(_stopped(sweep_dir)) < 2:
            time.sleep(0.2)
        assert _stopped(sweep_dir) == {0, 1}
        os.kill(proc.pid, signal.SIGKILL)  # a lost sweeper: its jobs run on
        proc.wait(timeout=30)
        assert all(pid_running(j) for j in jobs.values())
        code, out, _ = cli(capsys, "kill", str(sweep_dir))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0
    for number, job_id in jobs.items():
        on_to_its_next_report = "its job was still running on to its next report, where it learns of the stop"
        assert f"trial #{number} job {job_id}: stopped early; {on_to_its_next_report}: cancelled" in out, out
    assert not any(pid_running(j) for j in jobs.values())
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert {t.state for t in journal.trials()} == {"stopped"}  # still stopped: its reports are its result


#: Trial #0 reports every 0.2 s and spends the step budget (3) at once; stopped, it catches TrialStopped
#: and saves a checkpoint for 8 s. Trial #1 is still in its first epoch (30 s) throughout.
SAVES_A_CHECKPOINT_WHEN_STOPPED = """\
import time
from hydra_sigopt import TrialStopped, report

try:
    for epoch in range(1, 41):
        time.sleep(30 if job_num() == 1 else 0.2)
        report(epoch, value=cfg.x)
except TrialStopped:
    time.sleep(8)  # saving a checkpoint
    raise
return cfg.x
"""
SAVING_OVERRIDES = (
    "hydra.sweeper.observation_budget=2",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.warm_jobs=0",
    "hydra.sweeper.early_stopping={rule: none, step_budget: 3, stop_grace_s: 30}",
)


def kill_while_a_stopped_trial_saves(tmp_path: Path, launcher: tuple[str, ...]) -> tuple[str, dict[int, str], str]:
    """``hydra-sigopt kill`` 1 s after trial #0, stopped, began saving its checkpoint; its output,
    the trials' job ids, and the sweeper's output."""
    from hydra_sigopt.report_files import stop_seen, trial_folder, trials_root

    app = write_app(tmp_path, SAVES_A_CHECKPOINT_WHEN_STOPPED, budget=2)
    proc, sweep_dir = start_example(tmp_path, *launcher, *SAVING_OVERRIDES, app=app)
    try:
        deadline = time.time() + 300
        while not stop_seen(trial_folder(trials_root(sweep_dir), 0)):
            assert time.time() < deadline and proc.poll() is None, "trial #0 never learnt of its stop"
            time.sleep(0.1)
        with Journal.open(sweep_dir, readonly=True) as journal:
            jobs = {t.number: str(t.job_id) for t in journal.trials()}
        time.sleep(1)
        done = subprocess.run(
            [sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True, text=True
        )
        sweeper_output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done.returncode == 0, done.stderr
    return done.stdout, jobs, sweeper_output


def test_kill_lists_the_job_of_a_stopped_trial_still_saving_its_checkpoint(tmp_path: Path) -> None:
    """The sweeper's stop cancelled the job of a stopped trial still saving its checkpoint after
    TrialStopped ("Running trials were cancelled: [0, 1]" in its log), but kill listed trial #1 only.
    The sweeper's own line counted trial #0 among the running trials (a resumed sweep replaces those),
    though its result, stopped early, stands."""
    out, jobs, sweeper_output = kill_while_a_stopped_trial_saves(tmp_path, SUBMITIT_LOCAL)
    saving = "stopped early; its job was still running after TrialStopped (saving a checkpoint, or training on)"
    assert f"trial #0 job {jobs[0]}: {saving}: cancelled by the sweeper" in out, out
    assert f"trial #1 job {jobs[1]}: cancelled by the sweeper" in out, out
    assert "2 trials were running; each is listed above." in out, out
    assert not any(pid_running(j) for j in jobs.values())
    assert "Running trials were cancelled: [1]" in sweeper_output, sweeper_output
    assert "The job of trial #0, stopped early (its result stands), was cancelled too" in sweeper_output


def _stopped(sweep_dir: Path) -> set[int]:
    try:
        with Journal.open(sweep_dir, readonly=True) as journal:
            return {t.number for t in journal.trials(["stopped"])}
    except Exception:
        return set()


def test_delete_asks_unless_yes(finished_sweep: AppRun, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    # Without the outputs/ of test_best_...'s single run: delete keeps what the sweep did not write.
    shutil.copytree(finished_sweep.sweep_dir, copy, ignore=shutil.ignore_patterns("outputs"))
    code, _, err = cli(capsys, "delete", str(copy))
    assert code == 2 and "pass --yes" in err and copy.exists()
    code, _, _ = cli(capsys, "delete", "--yes", str(copy))
    assert code == 0 and not copy.exists()


def test_not_a_sweep_or_corrupt_journal_exit_2_and_touch_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("status", "best", "plot", "kill", "delete", "continue"):
        code, _, err = cli(capsys, command, str(tmp_path))
        assert code == 2, command
        assert "is not a hydra-sigopt sweep dir" in err
    (tmp_path / JOURNAL_NAME).write_bytes(b"garbage" * 50)
    for command in ("status", "kill", "delete"):
        extra = ["--yes"] if command == "delete" else []
        code, _, err = cli(capsys, command, *extra, str(tmp_path))
        assert code == 2 and "not a readable journal" in err
    assert (tmp_path / JOURNAL_NAME).read_bytes() == b"garbage" * 50
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_NAME]


def test_interrupt_with_detach_leaves_jobs_running_for_resume(tmp_path: Path) -> None:
    overrides = [
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.on_interrupt=detach",
        "sleep_s=12",  # the jobs outlive the stop and the sweeper's exit, however loaded the machine
        "sleep_jobs=[0,1]",
    ]
    proc, _ = start_example(tmp_path, *overrides)
    running = list(running_job_ids(tmp_path / "sweep", 2).values())
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "were left running (on_interrupt: detach)" in output
    for job_id in running:
        os.kill(int(job_id), 0)  # still alive
    resumed = run_example(tmp_path, *overrides).assert_ok()
    assert resumed.output.count("re-attached to job") == 2
    assert [t["state"] for t in resumed.trials] == ["completed"] * 3


def test_a_second_ctrl_c_during_cancellation_loses_nothing(tmp_path: Path) -> None:
    proc, sweep_dir = start_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=60",
    )
    running = list(running_job_ids(sweep_dir, 2).values())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "Interrupted. Running trials were cancelled" in output
    with Journal.open(sweep_dir, readonly=True) as j:
        assert {t.state for t in j.trials()} == {"abandoned"}
    deadline = time.time() + 10
    while time.time() < deadline and any(pid_running(j) for j in running):
        time.sleep(0.2)
    assert not any(pid_running(j) for j in running)


def signal_the_terminal_until_the_jobs_end(tmp_path: Path, sent: int, *overrides: str) -> tuple[Path, dict[int, str]]:
    """A sweep of 2 submitit_local slots led by a terminal: ``sent`` to its whole process group once
    both trials run, then wait (at most 60 s) until their jobs have ended; the sweep dir and the jobs."""
    proc, sweep_dir = start_example(
        tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", *overrides, new_session=True, app=EPOCHS_APP
    )
    try:
        jobs = running_job_ids(sweep_dir, 2)
        os.killpg(proc.pid, sent)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    deadline = time.time() + 60
    while any(pid_running(j) for j in jobs.values()) and time.time() < deadline:
        time.sleep(0.2)
    return sweep_dir, jobs


def test_status_after_the_terminal_hung_up_shows_dead_local_jobs_lost_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SSH session that dies hangs up the sweeper's process group, its submitit_local jobs with
    it. status went on showing them running, their times counting, so the user did not resume."""
    overrides = ("hydra.sweeper.observation_budget=6", "epoch_sleep_s=2")
    sweep_dir, jobs = signal_the_terminal_until_the_jobs_end(tmp_path, signal.SIGHUP, *overrides)  # its hang-up
    try:
        code, out, _ = cli(capsys, "status", str(sweep_dir))
    finally:
        subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)
    assert code == 0
    assert ", 0 running, 2 lost with the sweeper (run again on resume)" in out, out
    for number, job in jobs.items():
        line = next(line for line in out.splitlines() if f"#{number}    job {job}" in line)
        assert "lost with the sweeper" in line, out
    assert "resume with: hydra-sigopt continue" in out, out


def test_status_shows_detached_jobs_that_ended_as_ended_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """on_interrupt: detach, submitit_local: after the Ctrl-C the jobs trained on and ended, and
    status went on showing them running, their time and the sweep's elapsed time counting, so the
    user could not tell the sweep was waiting for a resume only."""
    overrides = ("hydra.sweeper.on_interrupt=detach", "hydra.sweeper.observation_budget=4", "epochs=3")
    overrides += ("hydra.sweeper.early_stopping.rule=none", "epoch_sleep_s=1")
    sweep_dir, jobs = signal_the_terminal_until_the_jobs_end(tmp_path, signal.SIGINT, *overrides)  # its Ctrl-C
    try:
        code, first, _ = cli(capsys, "status", str(sweep_dir))
        time.sleep(1.5)
        _, second, _ = cli(capsys, "status", str(sweep_dir))
    finally:
        subprocess.run([sys.executable, "-m", "hydra_sigopt.cli", "kill", str(sweep_dir)], capture_output=True)
    assert code == 0
    assert ", 0 running, 2 ended while no sweeper ran (recorded on resume)" in first, first
    for number, job in jobs.items():
        line = next(line for line in first.splitlines() if f"#{number}    job {job}" in line)
        assert "(its result is recorded on resume)" in line and "running" not in line, first
    elapsed = [[line for line in out.splitlines() if line.startswith("Elapsed:")] for out in (first, second)]
    assert elapsed[0] == elapsed[1], elapsed  # no longer counting


def test_status_of_a_killed_in_process_sweep_shows_its_trial_lost_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The basic launcher runs trials in the sweeper's process: after a kill -9 inside a trial,
    status showed it running, its time and the sweep's elapsed time still counting."""
    from hydra_sigopt.crashpoints import ENV_VAR

    run = run_example(tmp_path, "hydra.sweeper.observation_budget=3", env={ENV_VAR: "in_task:1"})
    assert run.proc.returncode == -signal.SIGKILL
    code, first, _ = cli(capsys, "status", str(run.sweep_dir))
    time.sleep(1.5)
    _, second, _ = cli(capsys, "status", str(run.sweep_dir))
    assert code == 0
    assert "0 running, 1 lost with the sweeper (run again on resume)" in first, first
    assert "#0    job -          lost with the sweeper (run again on resume)" in first, first
    assert "resume with: hydra-sigopt continue" in first, first
    elapsed = [[line for line in out.splitlines() if line.startswith("Elapsed:")] for out in (first, second)]
    assert elapsed[0] == elapsed[1], elapsed  # no longer counting


def test_kill_after_a_kill_9_says_an_in_process_trial_ended_with_the_sweeper_not_that_it_never_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a kill -9 of a basic-launcher sweep inside a trial, hydra-sigopt kill listed that trial as
    "never started", though its log was in its folder: the user thought the kill -9 came before it."""
    from hydra_sigopt.crashpoints import ENV_VAR

    run = run_example(tmp_path, "hydra.sweeper.observation_budget=3", env={ENV_VAR: "in_task:1"})
    assert run.proc.returncode == -signal.SIGKILL
    code, out, _ = cli(capsys, "kill", str(run.sweep_dir))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("  trial #0"))
    assert "never started" not in line, out
    assert "in the sweeper's process, which ended: nothing left to cancel" in line, out


def test_continue_run_is_the_sweeper_itself_so_killing_it_stops_the_sweep(tmp_path: Path) -> None:
    """`hydra-sigopt continue DIR --run` ran the sweeper as its child: a tester's `kill -9` of the pid
    they had started left the sweeper running on, holding the sweep. It now becomes the sweeper."""
    from hydra_sigopt.journal import SweepLock

    proc, sweep_dir = start_example(tmp_path, "hydra.sweeper.observation_budget=3", "sleep_s=30")
    deadline = time.time() + 60
    while not (sweep_dir / "0" / ".hydra").is_dir() and time.time() < deadline:  # its first trial runs
        time.sleep(0.1)
    proc.kill()  # a lost sweeper
    proc.communicate(timeout=30)
    cli_path = Path(sys.executable).with_name("hydra-sigopt")
    again = subprocess.Popen([str(cli_path), "continue", str(sweep_dir), "--run"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        # (-1, ''): the lock is taken and its holder not yet written into the file
        while (holder := SweepLock(sweep_dir).holder()) in (None, (-1, "")) and time.time() < deadline:
            time.sleep(0.1)
        assert holder is not None and holder[0] == again.pid, (holder, again.pid)
    finally:
        again.kill()
        again.wait(timeout=30)
    time.sleep(0.5)
    assert SweepLock(sweep_dir).holder() is None  # killing it killed the sweeper


def test_continue_run_of_a_sweep_without_its_command_is_refused_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper killed before it recorded its command leaves a template (`python <your_app.py> -m`):
    `continue --run` ran it ("can't open file '<your_app.py>'")."""
    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: execs.append(argv))
    meta = {"name": "t", "experiment_id": "-1", "backend": "lite", "identity": {"parameters": [], "metrics": []}}
    Journal.create(tmp_path, {**meta, "fingerprint": "abc"}).close()
    code, _, err = cli(capsys, "continue", str(tmp_path), "--run")
    assert execs == [] and code != 0
    assert "journal does not record its command" in err and "Traceback" not in err, err


def test_status_of_a_sweep_killed_after_its_last_trial_before_its_wrap_up_says_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trial-count budget: killed after the last trial's result was posted, before the wrap-up
    wrote trials.csv and optimization_results.yaml, status said "not running (the budget is spent)"."""
    from hydra_sigopt.crashpoints import ENV_VAR

    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2", env={ENV_VAR: "after_observe:2"})
    assert run.proc.returncode == -signal.SIGKILL
    _, out, _ = cli(capsys, "status", str(run.sweep_dir))
    assert "2/2 done" in out, out
    assert f"Sweeper:     not running — resume with: hydra-sigopt continue {run.sweep_dir} --run" in out, out
    cli_path = Path(sys.executable).with_name("hydra-sigopt")  # --run becomes the sweeper: not in this process
    done = subprocess.run([str(cli_path), "continue", str(run.sweep_dir), "--run"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run.sweep_dir / "trials.csv").exists() and (run.sweep_dir / "optimization_results.yaml").exists()
    _, out, _ = cli(capsys, "status", str(run.sweep_dir))
    assert "Sweeper:     not running (the budget is spent)" in out, out


def test_status_counts_a_stopped_trial_whose_result_is_not_posted_as_unposted() -> None:
    """While a SigOpt server is out of reach, an ASHA sweep's unposted results are mostly stopped
    trials' (posted as completed ones are); the Unposted line left them out (found by review)."""
    from hydra_sigopt.cli import _unposted
    from hydra_sigopt.journal import Trial

    def trial(number: int, state: str, observed_at: float | None) -> Trial:
        return Trial(number, None, {}, [], state, None, (), None, None, None, 0.0, 0.0, 1.0, observed_at, None, None)

    trials = [
        trial(0, "completed", 2.0),
        trial(1, "stopped", None),
        trial(2, "completed", None),
        trial(3, "running", None),
    ]
    assert _unposted(trials, held=True).startswith("#1, #2: ended and recorded, not posted to the engine yet")
