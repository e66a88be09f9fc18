"""Trials run the code the sweep started with (``hydra.sweeper.code_snapshot``), on submitit_local.

The app's task returns ``helper.value(x) = x + OFFSET``. The committed helper has OFFSET 100, the
working tree (uncommitted, so the tree is dirty) OFFSET 0, and the test edits it to OFFSET 1000 while
the sweep runs: a trial that ran the code the sweep started with returns a value in [0, 1].
The real-cluster versions are in tests/test_slurm_code_snapshot.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, AppRun

from hydra_sigopt.journal import Journal

pytestmark = pytest.mark.slow

CONFIG = """\
defaults:
  - override hydra/sweeper: sigopt
  - _self_

x: 0.5
sleep_s: 1.0
bonus: 0

hydra:
  sweeper:
    observation_budget: {budget}
    max_failure_rate: 1.0
    dev_run: true
    params:
      x: interval(0, 1)
"""

APP = """\
import time

import hydra

import helper


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    time.sleep(cfg.sleep_s)
    return helper.value(cfg.x) + cfg.bonus


if __name__ == "__main__":
    main()
"""


def helper_source(offset: int) -> str:
    return f"OFFSET = {offset}\n\n\ndef value(x):\n    return x + OFFSET\n"


def git(where: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=where, check=True, capture_output=True)


def write_git_app(root: Path, budget: int = 4, repo: bool = True) -> Path:
    """``root/app``: the app, committed with OFFSET 100 and then changed to OFFSET 0 without a commit."""
    app = root / "app"
    (app / "conf").mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "conf" / "config.yaml").write_text(CONFIG.format(budget=budget))
    (app / "helper.py").write_text(helper_source(100))
    if repo:
        git(app, "init", "-q")
        git(app, "add", ".")
        git(app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "app")
    (app / "helper.py").write_text(helper_source(0))
    return app


def start(
    app: Path, sweep_dir: Path, *overrides: str, launcher: Sequence[str] = SUBMITIT_LOCAL
) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(app / "app.py"), "-m", f"hydra.sweep.dir={sweep_dir}", *launcher, *overrides]
    return subprocess.Popen(
        cmd,
        cwd=app,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def run(
    app: Path, sweep_dir: Path, *overrides: str, timeout: float = 300, launcher: Sequence[str] = SUBMITIT_LOCAL
) -> AppRun:
    proc = start(app, sweep_dir, *overrides, launcher=launcher)
    out, _ = proc.communicate(timeout=timeout)
    return AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), sweep_dir)


def wait_for_done(sweep_dir: Path, count: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with Journal.open(sweep_dir, readonly=True) as journal:
                if len(journal.trials(["completed", "failed"])) >= count:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{count} trials never finished in {sweep_dir}")


def finish(proc: subprocess.Popen[str], sweep_dir: Path, timeout: float = 300) -> AppRun:
    out, _ = proc.communicate(timeout=timeout)
    return AppRun(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), sweep_dir)


def offsets(run: AppRun) -> list[int]:
    """Each trial's OFFSET (its value minus its x): which helper.py it ran."""
    return [round(float(t["value"]) - float(t["param.x"])) for t in run.trials if t["state"] == "completed"]


def status(sweep_dir: Path) -> str:
    cli = Path(sys.executable).with_name("hydra-sigopt")
    return subprocess.run([str(cli), "status", str(sweep_dir)], capture_output=True, text=True, check=True).stdout


def test_git_snapshot_trials_run_the_code_the_sweep_started_with(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=5)
    sweep_dir = tmp_path / "sweep"
    proc = start(app, sweep_dir, "hydra.sweeper.code_snapshot=git", "hydra.sweeper.parallel_bandwidth=2")
    wait_for_done(sweep_dir, 1)
    (app / "helper.py").write_text(helper_source(1000))  # a different program from here on
    config = app / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("bonus: 0", "bonus: 10000"))  # and another config
    run = finish(proc, sweep_dir).assert_ok()

    assert [t["state"] for t in run.trials] == ["completed"] * 5
    assert offsets(run) == [0] * 5  # the uncommitted OFFSET 0: not the committed 100, nor the edit's 1000
    snapshot = sweep_dir / "sigopt_code"
    assert (snapshot / "helper.py").read_text() == helper_source(0)
    assert sorted(p.name for p in snapshot.iterdir()) == ["app.py", "conf", "helper.py"]
    # Warm jobs run from it too: at least one trial after the edit was claimed by a warm job.
    logs = "".join(p.read_text() for p in (sweep_dir / ".submitit").rglob("*_log.out"))
    assert "Warm job runs trial" in logs
    # Trial folders stay in the sweep dir, not in the snapshot.
    assert all((sweep_dir / str(n) / ".hydra").is_dir() for n in range(5))
    assert not list(snapshot.rglob(".hydra"))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True).stdout.strip()
    assert f"Code snapshot: trials run from {snapshot}" in run.output
    assert f"commit {commit[:12]}, with uncommitted changes" in run.output
    with Journal.open(sweep_dir, readonly=True) as journal:
        code = journal.meta()["code"]
    assert (code["mode"], code["commit"], code["dirty"], len(code["diff_sha256"])) == ("git", commit, True, 64)
    assert f"Code:        snapshot (git) {snapshot.resolve()} of {app.resolve()}: commit {commit[:12]}" in status(
        sweep_dir
    )


def test_without_a_snapshot_a_change_under_the_sweep_is_named_once(tmp_path: Path) -> None:
    app = write_git_app(tmp_path)
    sweep_dir = tmp_path / "sweep"
    proc = start(app, sweep_dir)
    wait_for_done(sweep_dir, 1)
    (app / "helper.py").write_text(helper_source(1000))
    run = finish(proc, sweep_dir).assert_ok()

    assert offsets(run)[0] == 0 and offsets(run)[-1] == 1000, offsets(run)  # the sweep mixed two programs
    assert run.output.count("The app's code changed while the sweep runs") == 1
    assert f"runs: {app / 'helper.py'}. Trials started from now on import the changed files" in run.output
    assert "Code:        working tree (commit " in status(sweep_dir)


def test_resume_after_sigkill_runs_from_the_same_snapshot(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=4)
    sweep_dir = tmp_path / "sweep"
    proc = start(app, sweep_dir, "hydra.sweeper.code_snapshot=git")
    wait_for_done(sweep_dir, 1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its jobs, as a lost login node would
    proc.communicate(timeout=30)
    (app / "helper.py").write_text(helper_source(1000))
    git(app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-a", "-m", "other")
    with Journal.open(sweep_dir, readonly=True) as journal:
        before = journal.meta()["code"]

    run = run_resumed(app, sweep_dir).assert_ok()
    assert f"Resumed sweep runs from its code snapshot {sweep_dir / 'sigopt_code'}" in run.output
    assert "Code snapshot: trials run from" not in run.output
    assert offsets(run) == [0] * 4, offsets(run)
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert journal.meta()["code"] == before
    # The snapshot is the sweep's: hydra-sigopt delete removes it with the rest.
    cli = Path(sys.executable).with_name("hydra-sigopt")
    subprocess.run([str(cli), "delete", str(sweep_dir), "--yes"], capture_output=True, text=True, check=True)
    assert not sweep_dir.exists()


def test_a_resume_after_the_entry_script_was_edited_runs_the_snapshot_s_script(tmp_path: Path) -> None:
    """A task function defined in the script Python runs travels by value from the sweeper: a resumed
    sweep ran the edited app.py (its trials gave 5000 more) while its log said it ran from the snapshot."""
    app = write_git_app(tmp_path, budget=4)
    sweep_dir = tmp_path / "sweep"
    proc = start(app, sweep_dir, "hydra.sweeper.code_snapshot=git")
    wait_for_done(sweep_dir, 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    (app / "app.py").write_text(APP.replace("+ cfg.bonus", "+ cfg.bonus + 5000"))

    resumed = run_resumed(app, sweep_dir).assert_ok()  # the same command
    assert offsets(resumed) == [0] * 4, (offsets(resumed), resumed.output[-3000:])
    assert (
        f"app.py changed since this sweep started; resuming from its copy {sweep_dir / 'sigopt_code' / 'app.py'}"
        in (resumed.output)
    )
    assert (app / "app.py").read_text() == APP.replace("+ cfg.bonus", "+ cfg.bonus + 5000")  # the user's edit stays


def test_a_resume_in_process_says_its_snapshot_is_not_used(tmp_path: Path) -> None:
    """Resumed with the basic launcher, trials run the code the sweeper imported, not the snapshot: the log says so."""
    app = write_git_app(tmp_path, budget=1)
    sweep_dir = tmp_path / "sweep"
    run(app, sweep_dir, "hydra.sweeper.code_snapshot=git", "sleep_s=0").assert_ok()
    (app / "helper.py").write_text(helper_source(1000))  # what an in-process trial imports from now on

    basic = ("hydra/launcher=basic",)
    resumed = run(app, sweep_dir, "hydra.sweeper.observation_budget=2", "sleep_s=0", launcher=basic).assert_ok()
    assert offsets(resumed) == [0, 1000]  # the resumed trial ran the working tree, not the snapshot
    assert "Resumed sweep runs from its code snapshot" not in resumed.output
    honest = (
        f"Resumed sweep's code snapshot {sweep_dir / 'sigopt_code'} is not used with BasicLauncher: "
        "trials run in the sweeper's process, from the code it imported at start"
    )
    assert resumed.output.count(honest) == 1, resumed.output[-3000:]
    assert "does nothing with BasicLauncher" not in resumed.output  # one line, not two


def run_resumed(app: Path, sweep_dir: Path) -> AppRun:
    return run(app, sweep_dir, "hydra.sweeper.code_snapshot=git")


def head(app: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True).stdout.strip()


def one_trial_then_a_commit(tmp_path: Path) -> tuple[Path, Path, str, str]:
    """A sweep of one trial without a snapshot, then a commit of the app: the app, the sweep dir, and
    the commits before and after."""
    app = write_git_app(tmp_path, budget=1)
    sweep_dir = tmp_path / "sweep"
    run(app, sweep_dir, "sleep_s=0").assert_ok()
    first = head(app)
    git(app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-a", "-m", "other")
    return app, sweep_dir, first, head(app)


def test_a_resume_at_another_commit_keeps_the_commit_the_sweep_started_with(tmp_path: Path) -> None:
    """Without a snapshot, the journal keeps what the earlier trials ran and adds what the resumed ones run."""
    app, sweep_dir, first, second = one_trial_then_a_commit(tmp_path)

    resumed = run(app, sweep_dir, "hydra.sweeper.observation_budget=2", "sleep_s=0").assert_ok()
    assert len(resumed.trials) == 2
    warning = f"the earlier trials ran commit {first[:12]}, with uncommitted changes (diff sha256 "  # then the hash
    assert warning in resumed.output, resumed.output[-3000:]
    assert f"; the resumed ones (trial #1 on) run commit {second[:12]}, clean" in resumed.output
    with Journal.open(sweep_dir, readonly=True) as journal:
        code = journal.meta()["code"]
    assert (code["mode"], code["commit"], code["dirty"]) == ("none", first, True)
    assert [(r["commit"], r["dirty"], r["from_trial"]) for r in code["resumed_with"]] == [(second, False, 1)]
    shown = status(sweep_dir)
    assert f"Code:        working tree (commit {first[:12]}, with uncommitted changes" in shown
    assert f"from trial #1 (resumed): working tree (commit {second[:12]}, clean" in shown


def test_a_resume_that_makes_a_snapshot_keeps_the_commit_the_sweep_started_with(tmp_path: Path) -> None:
    """A sweep started without a snapshot and resumed with code_snapshot=git: the journal keeps what the
    first trials ran, adds the snapshot from the resumed trial on, and a later resume runs from it."""
    app, sweep_dir, first, second = one_trial_then_a_commit(tmp_path)

    snapshotted = run(
        app, sweep_dir, "hydra.sweeper.observation_budget=2", "sleep_s=0", "hydra.sweeper.code_snapshot=git"
    )
    snapshotted.assert_ok()
    assert "Code snapshot (its earlier trials ran from the working tree): trials run from" in snapshotted.output
    with Journal.open(sweep_dir, readonly=True) as journal:
        code = journal.meta()["code"]
    assert (code["mode"], code["commit"], code["dirty"]) == ("none", first, True)  # what trial 0 ran
    assert [(r["mode"], r["commit"], r["dirty"], r["from_trial"]) for r in code["resumed_with"]] == [
        ("git", second, False, 1)
    ]
    (app / "helper.py").write_text(helper_source(1000))  # the working tree moves on
    again = run(app, sweep_dir, "hydra.sweeper.observation_budget=3", "sleep_s=0").assert_ok()
    assert f"Resumed sweep runs from its code snapshot {sweep_dir / 'sigopt_code'}" in again.output
    assert offsets(again) == [0, 0, 0]  # trial 2 ran the snapshot, not the edit's 1000
    shown = status(sweep_dir)
    assert f"Code:        working tree (commit {first[:12]}, with uncommitted changes" in shown
    assert f"from trial #1 (resumed): snapshot (git) {(sweep_dir / 'sigopt_code').resolve()}" in shown


def test_an_in_process_resume_does_not_need_the_snapshot_it_does_not_use(tmp_path: Path) -> None:
    """Resumed with the basic launcher, trials import the sweeper's code: a snapshot folder that is gone
    is no reason to refuse."""
    app = write_git_app(tmp_path, budget=1)
    sweep_dir = tmp_path / "sweep"
    run(app, sweep_dir, "hydra.sweeper.code_snapshot=git", "sleep_s=0").assert_ok()
    shutil.rmtree(sweep_dir / "sigopt_code")

    basic = ("hydra/launcher=basic",)
    resumed = run(app, sweep_dir, "hydra.sweeper.observation_budget=2", "sleep_s=0", launcher=basic).assert_ok()
    assert [t["state"] for t in resumed.trials] == ["completed", "completed"]
    assert f"Resumed sweep's code snapshot {sweep_dir / 'sigopt_code'} is not used with BasicLauncher" in resumed.output


def refusal(app: Path, tmp_path: Path, *overrides: str) -> str:
    """The one-line message of a sweep refused before anything was written."""
    sweep_dir = tmp_path / "sweep"
    done = run(app, sweep_dir, *overrides, timeout=120)
    assert done.proc.returncode != 0
    assert not sweep_dir.exists()
    assert "Traceback" not in done.output
    lines = [line for line in done.output.splitlines() if line.startswith("hydra.sweeper.code_snapshot")]
    assert len(lines) == 1, done.output[-3000:]
    return lines[0]


def test_git_outside_a_repository_is_refused(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, repo=False)
    message = refusal(app, tmp_path, "hydra.sweeper.code_snapshot=git")
    assert f"git snapshots the app's git repository, and {app} is not in one" in message
    assert "use code_snapshot: copy (the app's folder) or none" in message


def test_a_submodule_is_refused(tmp_path: Path) -> None:
    app = write_git_app(tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True).stdout.strip()
    git(app, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    for mode in ("git", "copy"):
        message = refusal(app, tmp_path, f"hydra.sweeper.code_snapshot={mode}")
        assert "has submodules (vendor/lib), which a snapshot cannot copy faithfully" in message


def test_a_snapshot_over_the_size_limit_names_the_large_files(tmp_path: Path) -> None:
    app = write_git_app(tmp_path)
    with open(app / "weights.bin", "wb") as f:
        f.truncate(101 * 2**20)  # sparse: 101 MB to git and to a copy, nothing on disk
    git(app, "add", "weights.bin")
    for mode in ("git", "copy"):
        message = refusal(app, tmp_path, f"hydra.sweeper.code_snapshot={mode}")
        assert (
            "would copy 4 files, 101.0 MB (limit 100.0 MB); largest: weights.bin (101.0 MB), app.py (0.2 KB), "
            in message
        )
        assert "keep data out of the copied files (untrack it or add it to .gitignore)" in message


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    app = write_git_app(tmp_path)
    message = refusal(app, tmp_path, "hydra.sweeper.code_snapshot=svn")
    assert message == "hydra.sweeper.code_snapshot: got 'svn'; valid values are ['none', 'git', 'copy']"


def test_in_process_trials_need_no_snapshot(tmp_path: Path) -> None:
    """The basic launcher runs trials in the sweeper's process: one line, and not even a git check."""
    app = write_git_app(tmp_path, budget=2, repo=False)
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(app / "app.py"), "-m", f"hydra.sweep.dir={sweep_dir}", "sleep_s=0"]
    done = subprocess.run([*cmd, "hydra.sweeper.code_snapshot=git"], cwd=app, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert output.count("hydra.sweeper.code_snapshot=git does nothing with BasicLauncher") == 1
    assert "trials run in the sweeper's process, from the code it imported at start" in output
    assert not (sweep_dir / "sigopt_code").exists()


def test_copy_snapshot_honours_gitignore_outside_a_repository(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=3, repo=False)
    (app / ".gitignore").write_text("data/\n*.ckpt\n")
    (app / "data").mkdir()
    (app / "data" / "train.csv").write_text("x\n1\n")
    (app / "model.ckpt").write_text("weights")
    (app / "lib").mkdir()
    (app / "lib" / "util.py").write_text("X = 1\n")
    # A relative sweep dir (Hydra's default is one) still holds the trials: jobs run from the snapshot.
    proc = start(app, Path("multirun/s"), "hydra.sweeper.code_snapshot=copy")
    sweep_dir = app / "multirun" / "s"
    wait_for_done(sweep_dir, 1)
    (app / "helper.py").write_text(helper_source(1000))
    run = finish(proc, sweep_dir).assert_ok()

    assert offsets(run) == [0] * 3, offsets(run)
    copied = sorted(str(p.relative_to(sweep_dir / "sigopt_code")) for p in (sweep_dir / "sigopt_code").rglob("*"))
    assert copied == [".gitignore", "app.py", "conf", "conf/config.yaml", "helper.py", "lib", "lib/util.py"]
    assert "not a git checkout" in run.output
    assert all((sweep_dir / str(n) / ".hydra").is_dir() for n in range(3))


def test_copy_snapshot_in_a_repository_leaves_out_earlier_sweeps_and_runs(tmp_path: Path) -> None:
    """A tester's git repo (no .gitignore), `code_snapshot: copy`, Hydra's default sweep dirs: each
    snapshot copied every earlier sweep's folder, their snapshots included (16 files, then 46, 106,
    226: it doubled each sweep, and a checkpoint under multirun/ would reach the size limit). Git lists
    those untracked folders; a Hydra run or sweep folder (outputs/, multirun/, or any folder holding
    .hydra or multirun.yaml) is output, not code. An untracked module of the app is still copied."""
    app = write_git_app(tmp_path, budget=1)
    (app / "lib.py").write_text("X = 1\n")  # untracked, imported by nobody here: still the app's code
    (app / "heads" / "outputs").mkdir(parents=True)  # a package's module folder named as Hydra's: code
    (app / "heads" / "outputs" / "linear.py").write_text("W = 2\n")
    (app / "outputs" / "2026-12-01" / "10-00-00" / ".hydra").mkdir(parents=True)  # a plain run's folder
    (app / "outputs" / "2026-12-01" / "10-00-00" / "model.ckpt").write_text("weights")
    (app / "runs" / "old" / "0" / ".hydra").mkdir(parents=True)  # a sweep in a folder of the user's naming
    (app / "runs" / "old" / "multirun.yaml").write_text("hydra: {}\n")
    (app / "runs" / "old" / "0" / "log.txt").write_text("trained\n")
    snapshots = []
    for name in ("first", "second"):
        sweep_dir = Path("multirun") / name  # relative, as Hydra's default multirun/DATE/TIME is
        run(app, sweep_dir, "hydra.sweeper.code_snapshot=copy").assert_ok()
        code = app / sweep_dir / "sigopt_code"
        snapshots.append(sorted(str(p.relative_to(code)) for p in code.rglob("*") if p.is_file()))
    assert snapshots[0] == ["app.py", "conf/config.yaml", "heads/outputs/linear.py", "helper.py", "lib.py"], snapshots[
        0
    ]
    assert snapshots[1] == snapshots[0], snapshots[1]


@pytest.mark.parametrize("cluster", ["local", "slurm"])
def test_submitit_starts_each_job_with_the_executors_python(tmp_path: Path, cluster: str) -> None:
    """Tripwire: the snapshot wraps the executor's ``python``; submitit must still start jobs with it."""
    import shlex

    import submitit

    from hydra_sigopt.runners.executor import run_jobs_from

    executor = submitit.AutoExecutor(cluster=cluster, folder=tmp_path)
    run_jobs_from(executor, lambda python: f"/bin/sh -c 'exec \"$@\"' sh {python}")
    command = executor._executor._submitit_command_str
    assert command.startswith(f"/bin/sh -c 'exec \"$@\"' sh {shlex.quote(sys.executable)} -u -m submitit.core._submit ")


def test_a_resume_whose_snapshot_is_gone_is_refused(tmp_path: Path) -> None:
    app = write_git_app(tmp_path, budget=1)
    sweep_dir = tmp_path / "sweep"
    run(app, sweep_dir, "hydra.sweeper.code_snapshot=git", "sleep_s=0").assert_ok()
    shutil.rmtree(sweep_dir / "sigopt_code")
    done = run(app, sweep_dir, "hydra.sweeper.observation_budget=2", "sleep_s=0")
    assert done.proc.returncode != 0
    assert f"runs its trials from the code snapshot {sweep_dir / 'sigopt_code'}, which is gone" in done.output
    assert "Traceback" not in done.output
    assert len(done.trials) == 1  # no trial ran other code


def test_the_servers_experiment_records_the_commit_of_the_code_trials_run_when_started_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app started through a script outside its repository (a console entry point in a virtualenv's
    bin/, say): the experiment names the commit of the task's code, as the journal does."""
    from sigopt_server import SigOptTestServer

    app = write_git_app(tmp_path, budget=1)
    launcher_script = tmp_path / "venv-bin" / "train"
    launcher_script.parent.mkdir()
    source = app / "app.py"  # run as __main__ from the script, whose path stays sys.argv[0]
    launcher_script.write_text(
        f"import sys\nsys.path.insert(0, {str(app)!r})\n"
        f"exec(compile(open({str(source)!r}).read(), {str(source)!r}, 'exec'), {{'__name__': '__main__'}})\n"
    )
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, str(launcher_script), "-m", f"hydra.sweep.dir={sweep_dir}", "sleep_s=0"]
    with SigOptTestServer(tokens={"tok-code", "dev-tok-code"}) as server:
        env = {**os.environ, "SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": "tok-code"}
        env.pop("SIGOPT_ENV_FILE", None)
        proc = subprocess.run([*cmd, "hydra.sweeper.backend=api"], cwd=app, capture_output=True, text=True, env=env)
        done = AppRun(proc, sweep_dir).assert_ok()
        metadata = server.experiments[str(done.results["experiment_id"])].data["metadata"]
    with Journal.open(sweep_dir, readonly=True) as journal:
        code = journal.meta()["code"]
    assert (metadata.get("git_commit"), metadata.get("git_dirty")) == (head(app), "true")
    assert (code["commit"], metadata["git_diff_sha256"]) == (head(app), code["diff_sha256"])


def test_the_servers_experiment_records_commit_dirty_and_diff_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sigopt_server import SigOptTestServer

    app = write_git_app(tmp_path, budget=1)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True).stdout.strip()
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=app, capture_output=True).stdout
    with SigOptTestServer(tokens={"tok-code", "dev-tok-code"}) as server:
        monkeypatch.setenv("SIGOPT_API_URL", server.url)
        monkeypatch.setenv("SIGOPT_API_TOKEN", "tok-code")
        monkeypatch.delenv("SIGOPT_ENV_FILE", raising=False)
        done = run(app, tmp_path / "sweep", "hydra.sweeper.backend=api", "sleep_s=0").assert_ok()
        metadata = server.experiments[str(done.results["experiment_id"])].data["metadata"]
    assert metadata["git_commit"] == commit
    assert metadata["git_dirty"] == "true"
    assert metadata["git_diff_sha256"] == hashlib.sha256(diff).hexdigest()


def test_copy_of_an_app_in_a_subfolder_of_the_start_folder_is_refused(tmp_path: Path) -> None:
    """lightning-hydra-template's layout: ``src/train.py`` run from the project root, configs in
    ``../configs``, ``from src.utils import ...``. ``copy`` copied ``src/``'s contents only, and every
    trial failed with ``No module named 'src'``; nothing said so at start."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "configs").mkdir()
    (project / "src" / "__init__.py").write_text("")
    (project / "src" / "utils.py").write_text("def score(x):\n    return x * x\n")
    (project / "src" / "train.py").write_text(
        "import hydra\nfrom src.utils import score\n\n\n"
        '@hydra.main(version_base="1.3", config_path="../configs", config_name="train")\n'
        "def main(cfg):\n    return score(cfg.x)\n\n\nif __name__ == '__main__':\n    main()\n"
    )
    (project / "configs" / "train.yaml").write_text(
        "defaults:\n  - override hydra/sweeper: sigopt\n  - _self_\nx: 0.0\n"
        "hydra:\n  sweeper:\n    observation_budget: 2\n    params:\n      x: interval(0, 1)\n"
    )
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "src/train.py", "-m", f"hydra.sweep.dir={sweep_dir}", *SUBMITIT_LOCAL]
    done = subprocess.run(
        [*cmd, "hydra.sweeper.code_snapshot=copy"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(project)},
        timeout=300,
    )
    assert done.returncode != 0, (done.stdout + done.stderr)[-3000:]
    assert "hydra.sweeper.code_snapshot: copy copies the app's folder" in done.stderr, done.stderr[-3000:]
    assert "use code_snapshot: git" in done.stderr and "Traceback" not in done.stderr
    assert not sweep_dir.exists()
