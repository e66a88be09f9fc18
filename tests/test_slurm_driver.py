"""``hydra-sigopt submit``: the sweep's driver as a Slurm job, on the real cluster.

Skipped with the reason where no Slurm is reachable, unless HYDRA_SIGOPT_REQUIRE_SLURM=1 (CI).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE_APP, running_job_ids, start_now, start_requeued_job_now, waits_for_its_begin_time
from sigopt_server import SigOptTestServer
from test_slurm import SLURM, no_jobs_left_behind, slurm  # noqa: F401  (the fixture that skips or fails without a cluster)

from hydra_sigopt.journal import Journal

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HYDRA_SIGOPT = [sys.executable, "-m", "hydra_sigopt.cli"]


def _submit_command(
    tmp_path: Path,
    sweep_dir: Path,
    *overrides: str,
    time_min: int = 30,
    env: dict[str, str] | None = None,
    app: Path = EXAMPLE_APP,
) -> subprocess.CompletedProcess[str]:
    """``hydra-sigopt submit`` of the (example) app's Slurm sweep, as a user runs it from ``tmp_path``."""
    return subprocess.run(
        [
            *HYDRA_SIGOPT,
            "submit",
            "--partition=debug",
            f"--time={time_min}",
            "--mem-gb=1",
            "--",
            sys.executable,
            str(app),
            "-m",
            *SLURM,
            "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep_dir}",
            *overrides,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _submit(
    tmp_path: Path,
    *overrides: str,
    time_min: int = 30,
    sweep_dir: Path | None = None,
    env: dict[str, str] | None = None,
    app: Path = EXAMPLE_APP,
) -> tuple[str, Path]:
    sweep_dir = sweep_dir or tmp_path / "sweep"
    done = _submit_command(tmp_path, sweep_dir, *overrides, time_min=time_min, env=env, app=app)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("Submitted the sweep's driver as Slurm job ")
    assert f"hydra-sigopt kill {shlex.quote(str(sweep_dir))}" in done.stdout and "tail -f " in done.stdout
    return first.removeprefix("Submitted the sweep's driver as Slurm job ").split(";")[0], sweep_dir


def _cli(*args: str) -> str:
    done = subprocess.run([*HYDRA_SIGOPT, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _queued(job_id: str) -> bool:
    return bool(subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip())


def _wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(1)


def _completed(sweep_dir: Path) -> int:
    try:
        with Journal.open(sweep_dir, readonly=True) as journal:
            return sum(t.state == "completed" for t in journal.trials())
    except Exception:
        return 0


def test_a_submitted_driver_survives_a_requeue_and_observes_the_budget_exactly(tmp_path: Path) -> None:
    """Issue 14: the driver had to stay alive in a terminal on a login node. Submitted, it returns at
    once; requeued mid-sweep (as at a time limit or preemption), it resumes and re-attaches its trials."""
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=10"
    )
    assert f"Driver:      Slurm job {driver_job}" in _cli("status", str(sweep_dir))
    _wait_until(lambda: _completed(sweep_dir) >= 1 and len(running_job_ids(sweep_dir, 1)) >= 1, 240, "a trial")
    # Requeued and held in the queue: status said "Sweeper: not running — resume with: hydra-sigopt
    # continue ... --run", which would start a second sweeper beside the driver about to resume it.
    subprocess.run(["scontrol", "requeuehold", driver_job], check=True, capture_output=True)
    seen: list[str] = []
    pending = f"Sweeper:     not running: its driver, Slurm job {driver_job}, is pending"

    def shown_pending() -> bool:
        seen.append(_cli("status", str(sweep_dir)))
        return pending in seen[-1]

    _wait_until(shown_pending, 120, "the held driver shown as pending")
    assert not [status for status in seen if "hydra-sigopt continue" in status], seen  # nor while it completed
    subprocess.run(["scontrol", "release", driver_job], check=True, capture_output=True)
    start_requeued_job_now(driver_job)
    _wait_until(lambda: (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job), 600, "end")
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["trials"] == {"total": 4, "completed": 4, "failed": 0, "stopped": 0, "running": 0}
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
        meta = journal.meta()
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 4  # none lost, none run twice
    assert meta["engine_observation_count"] == 4
    log = (sweep_dir / "sigopt_driver" / f"driver-{driver_job}.log").read_text()
    assert "Resuming the sweep" in log and "re-attached to job" in log
    assert f"Driver:      Slurm job {driver_job} (ended" in _cli("status", str(sweep_dir))


#: The trials run until the test lets them end (the go file).
TRIALS_WAIT_FOR_GO = """\
import pathlib
import time
go = pathlib.Path(os.environ["GO_FILE"])
while not go.exists():
    time.sleep(0.2)
return cfg.x
"""


def test_a_submitted_driver_requeues_itself_at_its_time_limit_and_finishes_the_sweep(tmp_path: Path) -> None:
    """Issue 14: the driver survives its own time limit by requeueing itself. With --time=3 and the
    120 s lead, Slurm signals it within the first minute (it may signal up to 60 s early): the
    sweeper stops leaving its trials running (they run until the resumed sweep has re-attached
    them: the test's go file), the job requeues itself and the sweep resumes."""
    from small_apps import write_app

    go = tmp_path / "go"
    app = write_app(tmp_path, TRIALS_WAIT_FOR_GO, budget=3)
    driver_job, sweep_dir = _submit(
        tmp_path,
        "hydra.sweeper.parallel_bandwidth=3",
        time_min=3,
        env={**os.environ, "GO_FILE": str(go)},
        app=app,
    )
    log = sweep_dir / "sigopt_driver" / f"driver-{driver_job}.log"
    let_the_trials_end_at = time.time() + 300  # (if the sweep never resumes: the assertions below say so)

    def ended() -> bool:
        if waits_for_its_begin_time(driver_job):  # requeued by itself (maybe more than once)
            start_now(driver_job)
        if time.time() > let_the_trials_end_at or (log.exists() and "Resuming the sweep" in log.read_text()):
            go.touch()
        return (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job)

    try:
        _wait_until(ended, 900, "end")
    finally:
        go.touch()
    text = log.read_text()
    assert "hydra-sigopt driver: time limit near; requeued" in text, text[-3000:]
    assert "Resuming the sweep" in text
    with Journal.open(sweep_dir, readonly=True) as journal:
        trials = journal.trials()
    # The budget observed exactly: no trial lost with the stopped sweeper, none run twice.
    assert [(t.state, t.rerun_of) for t in trials] == [("completed", None)] * 3


@dataclass
class KilledDriver:
    """A submitted sweep with two trials running, stopped with ``hydra-sigopt kill``, and what was
    seen right after (before any test acts on the sweep again)."""

    driver_job: str
    sweep_dir: Path
    kill_output: str
    driver_queued_after_kill: bool
    trial_states_after_kill: set[str]


@pytest.fixture(scope="module")
def killed_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilledDriver]:
    """One run for two tests (the kill, and ``continue --run`` of the killed sweep): each submit
    takes a Slurm job and a Hydra start-up before its trials run."""
    tmp_path = tmp_path_factory.mktemp("killed_driver")
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=300"
    )
    try:
        trial_jobs = running_job_ids(sweep_dir, 2, timeout=240)
        out = _cli("kill", str(sweep_dir))
        driver_queued = _queued(driver_job)
        _wait_until(lambda: not any(_queued(j) for j in trial_jobs.values()), 60, "the trials' jobs cancelled")
        with Journal.open(sweep_dir, readonly=True) as journal:
            states = {t.state for t in journal.trials()}
        yield KilledDriver(driver_job, sweep_dir, out, driver_queued, states)
    finally:
        _cancel_jobs_submitted_from(tmp_path)


def _cancel_jobs_submitted_from(folder: Path) -> None:
    """What no_jobs_left_behind does for a test's own tmp_path, for a module fixture's folder."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, timeout=60)
    left = [
        job
        for job, _, cwd in (line.partition(" ") for line in queue.stdout.splitlines())
        if cwd.startswith(str(folder))
    ]
    if left:
        subprocess.run(["scancel", *left], capture_output=True, timeout=60)


def test_kill_stops_a_submitted_driver_and_its_trials(killed_driver: KilledDriver) -> None:
    assert f"Stopping the sweep's driver, Slurm job {killed_driver.driver_job}" in killed_driver.kill_output
    assert not killed_driver.driver_queued_after_kill
    # (the fixture waited for the trials' jobs to leave the queue)
    assert killed_driver.trial_states_after_kill == {"abandoned"}


def test_delete_stops_a_submitted_driver_and_its_trials_before_deleting(tmp_path: Path) -> None:
    """Issue 14: ``delete`` stops the driver job too (else the driver would resume into a sweep
    whose files are gone)."""
    driver_job, sweep_dir = _submit(
        tmp_path, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2", "sleep_s=300"
    )
    trial_jobs = running_job_ids(sweep_dir, 2, timeout=240)
    out = _cli("delete", "--yes", str(sweep_dir))
    assert f"Stopping the sweep's driver, Slurm job {driver_job}" in out, out
    assert not _queued(driver_job)
    _wait_until(lambda: not any(_queued(j) for j in trial_jobs.values()), 60, "the trials' jobs cancelled")
    assert not (sweep_dir / "sigopt_journal.sqlite").exists() and not (sweep_dir / "sigopt_driver").exists()


def _cli_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HYDRA_SIGOPT, *args], capture_output=True, text=True, timeout=300, env=env)


def _state(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _driver_held(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user on a busy cluster: the next job they submit (the driver) waits in
    the queue, held, until ``scontrol release``; jobs after it run at once. (sbatch 22.05 reads no
    SBATCH_HOLD, so ``sbatch`` on the PATH is the real one given --hold, once.)"""
    folder = tmp_path / "busy_cluster"
    folder.mkdir()
    once = folder / "hold_next"
    once.touch()
    (folder / "sbatch").write_text(
        "#!/bin/bash\n"
        f"if [ -e {shlex.quote(str(once))} ]; then rm -f {shlex.quote(str(once))}; "
        f'exec {shutil.which("sbatch")} --hold "$@"; fi\n'
        f'exec {shutil.which("sbatch")} "$@"\n'
    )
    (folder / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", **extra}


def test_a_second_submit_on_a_sweep_whose_driver_is_queued_or_running_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """A user retrying after an ssh hiccup submitted the sweep twice: both said "Submitted"; the
    second driver died on the sweep's lock, but its record had replaced the first's, so status showed
    the dead one and kill had no running driver to cancel. The first driver is held here (as a busy
    cluster keeps it waiting), then released."""
    sweep_dir = tmp_path / "sweep"
    held = _driver_held(tmp_path)
    overrides = ("hydra.sweeper.observation_budget=2", "sleep_s=300")
    driver_job, _ = _submit(tmp_path, *overrides, sweep_dir=sweep_dir, env=held)
    record = (sweep_dir / "sigopt_driver" / "driver.json").read_text()
    script = (sweep_dir / "sigopt_driver" / "driver.sh").read_text()

    for state in ("pending", "running"):
        again = _submit_command(tmp_path, sweep_dir, *overrides)
        assert again.returncode != 0 and again.stdout == "", again.stdout
        assert again.stderr.strip().splitlines() == [
            f"hydra-sigopt: {sweep_dir} is run by its driver, Slurm job {driver_job} ({state}); follow it with "
            f"hydra-sigopt status {shlex.quote(str(sweep_dir))}, or stop it first with hydra-sigopt kill "
            f"{shlex.quote(str(sweep_dir))}"
        ]
        assert (sweep_dir / "sigopt_driver" / "driver.json").read_text() == record  # nothing written
        assert (sweep_dir / "sigopt_driver" / "driver.sh").read_text() == script
        assert f"Driver:      Slurm job {driver_job} ({state}" in _cli("status", str(sweep_dir))
        if state == "pending":
            subprocess.run(["scontrol", "release", driver_job], check=True, capture_output=True)
            _wait_until(lambda: _state(driver_job) == "RUNNING", 120, "the released driver running")
    out = _cli("kill", str(sweep_dir))
    assert f"Stopping the sweep's driver, Slurm job {driver_job}" in out
    assert not _queued(driver_job)


def test_best_plot_and_continue_of_a_submitted_sweep_not_started_yet_say_so(tmp_path: Path) -> None:
    """``best DIR`` of a sweep whose driver job waits in the queue said "DIR is not a hydra-sigopt
    sweep dir", which sends the user looking for a typo in a path that is right."""
    sweep_dir = tmp_path / "my sweep"
    done = _submit_command(tmp_path, sweep_dir, "hydra.sweeper.observation_budget=2", env=_driver_held(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    driver_job = lines[0].removeprefix("Submitted the sweep's driver as Slurm job ").split(";")[0]
    log = sweep_dir / "sigopt_driver" / f"driver-{driver_job}.log"
    where = shlex.quote(str(sweep_dir))
    assert lines[1] == f"  follow it:  tail -f {shlex.quote(str(log))}   or   hydra-sigopt status {where}"
    assert lines[2] == f"  stop it:    hydra-sigopt kill {where}   (scancel {driver_job} leaves its trials running)"
    for command in (["best"], ["plot"], ["continue"]):
        told = _cli_run(*command, str(sweep_dir))
        assert told.returncode != 0
        assert told.stderr.strip().splitlines() == [
            f"hydra-sigopt: {sweep_dir}: the sweep's driver (Slurm job {driver_job}, pending) has not started it yet"
        ], command
    subprocess.run(["scancel", driver_job], check=True, capture_output=True)


def _saved_environment(job_id: str) -> bytes:
    """The environment slurmctld keeps for a job (in its state dir, as long as the job exists)."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    state_dir = next(
        line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("StateSaveLocation")
    )
    return (Path(state_dir) / f"hash.{int(job_id) % 10}" / f"job.{job_id}" / "environment").read_bytes()


def _files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


TOKEN = "tok-submitted-driver-never-sees-it"
DEV_TOKEN = "dev-tok-submitted-driver-never-sees-it"


def test_a_lite_sweeps_driver_job_gets_no_sigopt_token(tmp_path: Path) -> None:
    """sbatch exported the user's whole environment: SIGOPT_API_TOKEN and SIGOPT_DEV_TOKEN sat in the
    driver's environment and in slurmctld's saved copy of it, though backend: lite never reads one."""
    env = _driver_held(tmp_path, SIGOPT_API_TOKEN=TOKEN, SIGOPT_DEV_TOKEN=DEV_TOKEN, MY_SETTING="kept")
    done = _submit_command(tmp_path, tmp_path / "sweep", "hydra.sweeper.observation_budget=1", env=env)
    assert done.returncode == 0, done.stderr
    driver_job = done.stdout.splitlines()[0].removeprefix("Submitted the sweep's driver as Slurm job ").split(";")[0]
    saved = _saved_environment(driver_job)
    assert b"SIGOPT_API_TOKEN" not in saved and TOKEN.encode() not in saved and DEV_TOKEN.encode() not in saved
    assert b"MY_SETTING=kept" in saved  # the rest of the user's environment goes with the job
    assert _files_containing(tmp_path / "sweep", TOKEN) == [] and "SIGOPT" not in done.stderr
    subprocess.run(["scancel", driver_job], check=True, capture_output=True)


def test_an_api_sweeps_driver_reads_its_token_from_the_token_file_not_the_job_environment(tmp_path: Path) -> None:
    """backend: api needs the token in the driver: with a SIGOPT_ENV_FILE the user has, it reaches the
    driver through that file, and the token variable stays out of the job's environment (and of
    slurmctld's state dir). Without one, submit says that the job's environment carries it."""
    env_file = tmp_path / "sigopt.env"
    env_file.write_text(f"SIGOPT_TOKEN={TOKEN}\n")
    with SigOptTestServer(tokens={TOKEN}) as server:
        env = {**os.environ, "SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": TOKEN}
        env.pop("SIGOPT_PROJECT", None)
        with_file = {**env, "SIGOPT_ENV_FILE": str(env_file)}
        api = ("hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2")
        driver_job, sweep_dir = _submit(tmp_path, *api, env=with_file)
        saved = _saved_environment(driver_job)
        assert TOKEN.encode() not in saved and f"SIGOPT_ENV_FILE={env_file}".encode() in saved
        _wait_until(lambda: (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job), 600, "end")
        results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        assert (
            results["trials"]["completed"] == 2
            and len(server.experiments[str(results["experiment_id"])].observations) == 2
        )
        assert _files_containing(sweep_dir, TOKEN) == []

        without_file = _submit_command(tmp_path, tmp_path / "other", *api, env=_driver_held(tmp_path, **env))
        assert without_file.returncode == 0, without_file.stderr
        assert without_file.stderr.startswith(
            "Note: the driver job's environment carries SIGOPT_API_TOKEN (backend: api needs the token); "
            "slurmctld keeps a job's environment in its state dir"
        )


def test_continue_run_in_a_terminal_cancels_the_trials_on_ctrl_c_not_the_drivers_detach(
    killed_driver: KilledDriver,
) -> None:
    """``continue --run`` of a submitted sweep carried over the driver's on_interrupt=detach, which
    submit added for its job: a terminal user's Ctrl-C left the Slurm jobs running ("Trials [2, 3]
    were left running (on_interrupt: detach)"). Their own on_interrupt would stay; this one goes.
    The sweep is the one test_kill_stops_a_submitted_driver_and_its_trials killed."""
    sweep_dir = killed_driver.sweep_dir
    assert f"Stopping the sweep's driver, Slurm job {killed_driver.driver_job}" in killed_driver.kill_output
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_SIGOPT_DRIVER_JOB"}
    resumed = subprocess.Popen(
        [*HYDRA_SIGOPT, "continue", str(sweep_dir), "--run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        new_jobs = running_job_ids(sweep_dir, 2, timeout=240)
        resumed.send_signal(signal.SIGINT)  # the user's Ctrl-C
        out, _ = resumed.communicate(timeout=300)
    finally:
        resumed.kill()
    assert (
        "Without hydra.sweeper.on_interrupt=detach, which hydra-sigopt submit added for its driver job: Ctrl-C "
        "here cancels the running trials (on_interrupt: cancel)"
    ) in out
    assert "on_interrupt: detach" not in out and "Running trials were cancelled" in out, out[-3000:]
    _wait_until(lambda: not any(_queued(j) for j in new_jobs.values()), 60, "the resumed trials' jobs cancelled")


def test_continue_keeps_an_on_interrupt_the_user_gave_and_a_driver_jobs_detach(tmp_path: Path) -> None:
    """Only the override submit added is dropped, and only outside a driver job: an on_interrupt the
    user gave stays, and a driver job resuming the sweep keeps submit's detach."""
    own_job, own_dir = _submit(tmp_path, "hydra.sweeper.observation_budget=1", "hydra.sweeper.on_interrupt=detach")
    added_job, added_dir = _submit(tmp_path, "hydra.sweeper.observation_budget=1", sweep_dir=tmp_path / "added")

    def ended() -> bool:
        done = [
            (d / "optimization_results.yaml").exists() and not _queued(j)
            for j, d in ((own_job, own_dir), (added_job, added_dir))
        ]
        return all(done)

    _wait_until(ended, 300, "both sweeps ended")
    user_s = _cli_run("continue", str(own_dir))
    assert "hydra.sweeper.on_interrupt=detach" in user_s.stdout and user_s.stderr == ""
    in_a_driver_job = _cli_run("continue", str(added_dir), env={**os.environ, "HYDRA_SIGOPT_DRIVER_JOB": "4711"})
    assert "hydra.sweeper.on_interrupt=detach" in in_a_driver_job.stdout and in_a_driver_job.stderr == ""
    in_a_terminal = _cli_run("continue", str(added_dir))
    assert "on_interrupt" not in in_a_terminal.stdout and in_a_terminal.stderr.startswith("Without hydra.sweeper")


def test_kill_and_delete_on_a_copy_leave_the_live_driver_and_its_trials_running(tmp_path: Path) -> None:
    """Seen: ``delete`` on a ``cp -a`` backup of a submitted sweep printed "Stopping the sweep's driver,
    Slurm job 1370" and the live trials went CG; the live sweep then failed them."""
    from small_apps import write_app
    from test_sweep_copies import WAIT_FOR_GO

    go = tmp_path / "go"  # the trials wait for it: their jobs surely run while the copy is acted on
    app = write_app(tmp_path, WAIT_FOR_GO, budget=2)
    live = tmp_path / "sweep"
    command = [sys.executable, str(app), "-m", *SLURM, "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={live}"]
    command.append("hydra.sweeper.parallel_bandwidth=2")
    submitted = subprocess.run(
        [*HYDRA_SIGOPT, "submit", "--partition=debug", "--time=30", "--mem-gb=1", "--", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GO_FILE": str(go)},
    )
    assert submitted.returncode == 0, submitted.stderr
    driver_job = submitted.stdout.split()[7].rstrip(";")
    try:
        trial_jobs = running_job_ids(live, 2, timeout=240)
        backup = tmp_path / "backup"
        subprocess.run(["cp", "-a", str(live), str(backup)], check=True)
        for argv in (["delete", "--yes", str(backup)], ["kill", str(backup)]):
            done = subprocess.run([*HYDRA_SIGOPT, *argv], capture_output=True, text=True, timeout=300)
            assert "Stopping the sweep's driver" not in done.stdout, done.stdout
            assert _queued(driver_job) and all(_queued(j) for j in trial_jobs.values()), done.stdout
            assert done.returncode != 0 and f"is a copy of the sweep at {live.resolve()}" in done.stderr
        assert f"Driver:      the original's, Slurm job {driver_job}" in _cli("status", str(backup))
        _cli("delete", "--yes", "--local-only", str(backup))
        assert _queued(driver_job) and all(_queued(j) for j in trial_jobs.values())
    finally:
        go.touch()
    _wait_until(lambda: not _queued(driver_job), 240, "the live sweep's driver ends")
    with Journal.open(live, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["completed"] * 2


def test_continue_run_while_the_requeued_driver_waits_in_the_queue_is_refused(tmp_path: Path) -> None:
    """A requeued driver (preemption, ``scontrol requeue``) waits in the queue, PENDING, and resumes
    the sweep once Slurm starts it again: ``continue --run`` in a terminal meanwhile started a second
    sweeper on the sweep dir, which the driver would then run beside (or be refused by)."""
    driver_job, sweep_dir = _submit(tmp_path, "hydra.sweeper.observation_budget=2", "sleep_s=300")
    try:
        running_job_ids(sweep_dir, 1, timeout=240)
        subprocess.run(["scontrol", "requeuehold", driver_job], check=True, capture_output=True)
        _wait_until(lambda: _state(driver_job) == "PENDING", 120, "the requeued driver pending")
        resumed = subprocess.Popen(
            [*HYDRA_SIGOPT, "continue", str(sweep_dir), "--run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = resumed.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            resumed.terminate()
            out, err = resumed.communicate(timeout=60)
        where = shlex.quote(str(sweep_dir))
        assert resumed.returncode != 0 and err.strip().splitlines() == [
            f"hydra-sigopt: {sweep_dir} is run by its driver, Slurm job {driver_job} (pending); follow it with "
            f"hydra-sigopt status {where}, or stop it first with hydra-sigopt kill {where}"
        ], (out + err)[-3000:]
    finally:
        _cli("kill", str(sweep_dir))
    assert not _queued(driver_job)


URL_PASSWORD = "url-password-never-shown"


def _job_submitted(done: subprocess.CompletedProcess[str]) -> str:
    """The driver job ``hydra-sigopt submit`` said it submitted."""
    return done.stdout.splitlines()[0].removeprefix("Submitted the sweep's driver as Slurm job ").split(";")[0]


def test_a_password_in_the_api_url_stays_out_of_the_driver_jobs_environment_logs_and_trials(tmp_path: Path) -> None:
    """A password in SIGOPT_API_URL (a server behind basic auth) went with an api driver job's
    environment, into slurmctld's state dir, whatever SIGOPT_ENV_FILE held, and submit did not say
    so. With the URL in the token file, the driver reads it there; without, submit says it goes."""
    env_file = tmp_path / "sigopt.env"
    with SigOptTestServer(tokens={TOKEN}) as server:
        url = server.url.replace("://", f"://user:{URL_PASSWORD}@", 1)
        env_file.write_text(f"SIGOPT_TOKEN={TOKEN}\nSIGOPT_API_URL={url}\n")
        env = {**os.environ, "SIGOPT_API_URL": url, "SIGOPT_ENV_FILE": str(env_file)}
        env.pop("SIGOPT_PROJECT", None)
        api = ("hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", "sleep_s=5")
        done = _submit_command(tmp_path, tmp_path / "sweep", *api, env=env)
        assert done.returncode == 0 and URL_PASSWORD not in done.stdout + done.stderr, done.stdout + done.stderr
        driver_job = (
            done.stdout.splitlines()[0].removeprefix("Submitted the sweep's driver as Slurm job ").split(";")[0]
        )
        sweep_dir = tmp_path / "sweep"
        assert URL_PASSWORD.encode() not in _saved_environment(driver_job)
        trial_job = running_job_ids(sweep_dir, 1, timeout=300)[0]
        assert URL_PASSWORD.encode() not in _saved_environment(trial_job)  # the trial's environment
        _wait_until(lambda: (sweep_dir / "optimization_results.yaml").exists() and not _queued(driver_job), 600, "end")
        results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
        assert results["trials"]["completed"] == 2, results
        assert _files_containing(sweep_dir, URL_PASSWORD) == []  # the driver's log, the trials' logs, the journal
        shown = _cli_run("status", str(sweep_dir), env=env)
        assert shown.returncode == 0 and URL_PASSWORD not in shown.stdout + shown.stderr, shown.stderr

        without_file = {k: v for k, v in env.items() if k != "SIGOPT_ENV_FILE"} | {"SIGOPT_API_TOKEN": TOKEN}
        told = _submit_command(tmp_path, tmp_path / "other", *api, env=_driver_held(tmp_path, **without_file))
        assert told.returncode == 0, told.stderr
        assert URL_PASSWORD not in told.stdout + told.stderr
        assert told.stderr.strip().splitlines() == [
            "Note: the driver job's environment carries SIGOPT_API_TOKEN, SIGOPT_API_URL (backend: api needs the "
            "token and the URL's password); slurmctld keeps a job's environment in its state dir while the job "
            "exists. To keep them out, put them in a file named by SIGOPT_ENV_FILE (SIGOPT_TOKEN=..., "
            "SIGOPT_API_URL=...) instead."
        ]
        subprocess.run(["scancel", _job_submitted(told)], check=True, capture_output=True)
