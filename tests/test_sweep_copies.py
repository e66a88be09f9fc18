"""A copy of a sweep dir (``cp -a`` of a live sweep, an rsync'ed backup) names the original's jobs
and driver in its journal: ``hydra-sigopt kill`` / ``delete`` run on the copy must not cancel them,
and ``status`` on it must not present them as the copy's own."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, finish_example, run_example, running_job_ids, start_example
from fake_slurm import FakeSlurm
from small_apps import write_app
from test_delete import HYDRA_SIGOPT, hydra_sigopt

from hydra_sigopt.copies import LOCATION
from hydra_sigopt.errors import JournalError
from hydra_sigopt.journal import JOURNAL_NAME, Journal
from hydra_sigopt.processes import cancel_local_jobs, local_job_running

pytestmark = pytest.mark.slow

# Each trial runs until the test creates the file GO_FILE names: its job is surely running meanwhile.
WAIT_FOR_GO = """\
import pathlib
import time
go = pathlib.Path(os.environ["GO_FILE"])
while not go.exists():
    time.sleep(0.2)
return cfg.x
"""


def _start_and_copy(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, dict[int, str], Path, Path]:
    """A live sweep of 3 trials on 2 local slots, both running (they wait for the go file), and a
    ``cp -a`` copy of its dir: (the sweep's process, its dir, its running jobs, the copy, the go file).
    The go file is created if this fails, so that the sweep ends."""
    go = tmp_path / "go"
    app = write_app(tmp_path, WAIT_FOR_GO, budget=3)
    proc, live = start_example(
        tmp_path, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", app=app, env={"GO_FILE": str(go)}
    )
    try:
        jobs = running_job_ids(live, 2)
        backup = tmp_path / "backup"
        subprocess.run(["cp", "-a", str(live), str(backup)], check=True)
    except BaseException:
        go.touch()
        raise
    return proc, live, jobs, backup, go


def test_kill_and_delete_on_a_copy_of_a_live_sweep_leave_its_jobs_running(tmp_path: Path) -> None:
    """Seen: delete on a backup said "Stopping the sweep's driver" and cancelled the live trials;
    the live sweep then failed them ("job ... ended without a result")."""
    proc, live, jobs, backup, go = _start_and_copy(tmp_path)
    try:
        killed = hydra_sigopt("kill", str(backup))
        assert all(local_job_running(j) for j in jobs.values()), killed.stdout + killed.stderr
        assert killed.returncode != 0
        assert f"is a copy of the sweep at {live.resolve()}" in killed.stderr
        assert "nothing was cancelled" in killed.stderr and "--local-only" in killed.stderr

        status = hydra_sigopt("status", str(backup))
        assert status.returncode == 0, status.stderr
        assert f"Copy of:     {live.resolve()}" in status.stdout
        assert "(the original's trials, as copied; their jobs are its)" in status.stdout
        assert f"the original at {live.resolve()} runs" in status.stdout  # not "resume with: continue backup"

        refused = hydra_sigopt("delete", str(backup), "--yes")
        assert all(local_job_running(j) for j in jobs.values()), refused.stdout + refused.stderr
        assert refused.returncode != 0 and "nothing was cancelled or deleted" in refused.stderr
        assert (backup / JOURNAL_NAME).exists()

        deleted = hydra_sigopt("delete", str(backup), "--yes", "--local-only")
        assert deleted.returncode == 0, deleted.stderr
        assert all(local_job_running(j) for j in jobs.values()), deleted.stdout
        assert "left as they are" in deleted.stdout and not backup.exists()
    finally:
        go.touch()
    run = finish_example(proc, live, timeout=300).assert_ok()
    assert "without a result" not in run.output and "3/3 trials done, 0 running, 0 failed" in run.output
    assert [t["state"] for t in run.trials] == ["completed"] * 3


def test_a_copy_resumes_once_its_original_has_ended_not_while_it_runs(tmp_path: Path) -> None:
    """A backup is for resuming after the original is lost: refused while the original runs (it would
    re-attach, then cancel, the original's jobs), accepted after it ended."""
    proc, live, jobs, backup, go = _start_and_copy(tmp_path)
    try:
        resumed = subprocess.run(
            ["/bin/sh", "-c", hydra_sigopt("continue", str(backup)).stdout.strip()],
            capture_output=True,
            text=True,
            timeout=120,  # a copy re-attached to the original's jobs waited for results that never came
            env={**os.environ, "GO_FILE": str(go)},
        )
        assert all(local_job_running(j) for j in jobs.values()), resumed.stdout + resumed.stderr
        assert resumed.returncode != 0
        assert f"is a copy of the sweep at {live.resolve()}, which still runs" in resumed.stderr + resumed.stdout
    finally:
        go.touch()
    finish_example(proc, live, timeout=300).assert_ok()
    shutil.rmtree(live)  # the original lost: the backup is all there is
    resumed = run_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=2",
        sweep_dir=backup,
        app=tmp_path / "app" / "app.py",  # the app _start_and_copy wrote
        env={"GO_FILE": str(go)},
    ).assert_ok()
    assert sum(t["state"] == "completed" for t in resumed.trials) == 3
    assert "Copy of" not in hydra_sigopt("status", str(backup)).stdout  # it is the sweep's dir now


def test_submit_on_a_copy_of_a_live_sweep_is_refused_up_front_and_submits_nothing(tmp_path: Path) -> None:
    """``hydra-sigopt submit`` on a backup sbatched a driver job, which the resume in it refused later
    (in the job's log): refused at once instead, naming the original, as kill and delete are."""
    proc, live, _, backup, go = _start_and_copy(tmp_path)
    fake = FakeSlurm(tmp_path / "fake_slurm")  # no real job is submitted, whatever the command does
    try:
        app = tmp_path / "app" / "app.py"
        command = [sys.executable, str(app), "-m", *SUBMITIT_LOCAL, f"hydra.sweep.dir={backup}"]
        done = subprocess.run(
            [*HYDRA_SIGOPT, "submit", "--", *command],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "PATH": fake.path_env(), "GO_FILE": str(go)},
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert f"{backup} is a copy of the sweep at {live.resolve()}, which still runs" in done.stderr
        assert fake.calls("sbatch") == []
        assert not (backup / "sigopt_driver").exists()
    finally:
        go.touch()
    finish_example(proc, live, timeout=300).assert_ok()


def _release_and_end(go: Path, pids: list[str], proc: subprocess.Popen[str]) -> None:
    """Let the trials' jobs go on, cancel those of the killed sweeper still running, and close its output."""
    go.touch()
    cancel_local_jobs(pids)
    proc.kill()
    assert proc.stdout is not None
    proc.stdout.close()


def _wait_until_in_the_app(sweep_dir: Path, count: int, timeout: float = 120) -> None:
    """Wait until ``count`` trials run the app's code (Hydra wrote their .hydra folder just before)."""
    deadline = time.time() + timeout
    while len(list(sweep_dir.glob("**/.hydra/overrides.yaml"))) < count:
        assert time.time() < deadline, f"{count} trials never started the app in {sweep_dir}"
        time.sleep(0.2)


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"waited in vain for {what}"
        time.sleep(0.2)


def app_of(tmp_path: Path) -> Path:
    """The app _start_and_copy wrote."""
    return tmp_path / "app" / "app.py"


@contextmanager
def _original_gone_while_its_jobs_run(tmp_path: Path) -> Iterator[tuple[Path, Path, Path, list[str]]]:
    """A live sweep copied, then its sweeper killed and its dir deleted while its submitit_local jobs
    run on: the original dir, the copy, the go file the jobs wait for, and the jobs' pids. The jobs
    are stopped on the way out."""
    proc, live, jobs, backup, go = _start_and_copy(tmp_path)
    pids = sorted(jobs.values(), key=int)
    try:
        _wait_until_in_the_app(live, len(pids))  # a job whose files go before it starts fails at once
        proc.send_signal(signal.SIGKILL)  # the sweeper dies; its submitit_local jobs run on
        proc.wait(timeout=60)  # (its output pipe stays open: the jobs inherited it)
        shutil.rmtree(live)
        yield live, backup, go, pids
    finally:
        _release_and_end(go, pids, proc)


def test_a_copy_whose_original_is_gone_names_the_jobs_still_running_and_how_to_stop_them(tmp_path: Path) -> None:
    """The original's sweeper died and its dir was deleted, its jobs ran on: the copy could be neither
    resumed (the original "still runs") nor killed ("run kill on the original", which is gone), and
    nothing said how to stop those jobs. Each refusal names them and the command that stops them."""
    with _original_gone_while_its_jobs_run(tmp_path) as (live, backup, go, pids):
        assert all(local_job_running(j) for j in pids)
        stop = f"pkill -INT -P {','.join(pids)}"

        killed = hydra_sigopt("kill", str(backup))
        assert killed.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"the original sweep dir {live.resolve()} is gone" in killed.stderr, killed.stderr
        assert stop in killed.stderr, killed.stderr

        resumed = subprocess.run(
            ["/bin/sh", "-c", hydra_sigopt("continue", str(backup)).stdout.strip()],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GO_FILE": str(go)},
        )
        assert resumed.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"the original sweep dir {live.resolve()} is gone" in resumed.stderr + resumed.stdout
        assert stop in resumed.stderr + resumed.stdout

        subprocess.run(stop.split(), check=True)  # as the user does what the refusal says
        _wait_until(lambda: not any(local_job_running(j) for j in pids), "the jobs to stop on pkill -INT")
        # Nothing of the original runs now: kill on the copy said to run it on the original, which is gone.
        killed = hydra_sigopt("kill", str(backup))
        assert killed.returncode == 0, killed.stderr
        assert "there is nothing to stop" in killed.stdout, killed.stdout + killed.stderr
        assert f"hydra-sigopt kill {live.resolve()}" not in killed.stdout + killed.stderr
        go.touch()
        resumed_copy = run_example(
            tmp_path,
            *SUBMITIT_LOCAL,
            "hydra.sweeper.parallel_bandwidth=2",
            sweep_dir=backup,
            app=app_of(tmp_path),
            env={"GO_FILE": str(go)},
        ).assert_ok()
        assert [t["state"] for t in resumed_copy.trials].count("completed") == 3


def test_delete_on_a_copy_whose_original_is_gone_deletes_it_once_nothing_of_the_original_runs(tmp_path: Path) -> None:
    """Seen: with the original's dir gone and nothing of it running, delete on the copy refused and
    said to run delete on the original, which is not there. While the original's jobs run, it names
    them and how to stop them; once they have stopped, it deletes the copy as any ended sweep's dir."""
    with _original_gone_while_its_jobs_run(tmp_path) as (live, backup, _go, pids):
        stop = f"pkill -INT -P {','.join(pids)}"

        refused = hydra_sigopt("delete", str(backup), "--yes")
        assert refused.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"the original sweep dir {live.resolve()} is gone" in refused.stderr, refused.stderr
        assert stop in refused.stderr and "nothing was cancelled or deleted" in refused.stderr, refused.stderr
        assert (backup / JOURNAL_NAME).exists()

        subprocess.run(stop.split(), check=True)
        _wait_until(lambda: not any(local_job_running(j) for j in pids), "the jobs to stop on pkill -INT")
        unasked = hydra_sigopt("delete", str(backup))  # no terminal to answer: asks as for any sweep
        assert "pass --yes" in unasked.stderr and (backup / JOURNAL_NAME).exists(), unasked.stdout + unasked.stderr

        deleted = hydra_sigopt("delete", str(backup), "--yes")
        said = deleted.stdout + deleted.stderr
        assert deleted.returncode == 0, said
        assert f"hydra-sigopt delete {live.resolve()}" not in said
        assert f"the sweep at {live.resolve()}, which is gone" in deleted.stdout, said
        assert not backup.exists(), said


def test_a_moved_sweep_dir_is_the_sweep_and_a_journal_without_the_record_is_taken_as_it_was(tmp_path: Path) -> None:
    """A ``mv`` keeps the sweep's identity (the inode); a copy made before the record existed (an
    older journal) cannot be told from its original, and is shown as it was."""
    run = run_example(tmp_path, "hydra.sweeper.observation_budget=2").assert_ok()
    moved = tmp_path / "moved"
    run.sweep_dir.rename(moved)
    assert "Copy of" not in hydra_sigopt("status", str(moved)).stdout
    assert hydra_sigopt("kill", str(moved)).stdout.strip() == "No running trials."

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(moved), str(copy)], check=True)
    # Named where the sweep last ran: each run notes its place.
    assert f"Copy of:     {run.sweep_dir.resolve()}" in hydra_sigopt("status", str(copy)).stdout
    # It names no job, driver or server experiment: nothing a kill would act on but its own files.
    assert hydra_sigopt("kill", str(copy)).stdout.strip() == "No running trials."
    with Journal.open(copy) as journal:
        journal.set_meta(**{LOCATION: None})  # as a journal written before the record
    assert "Copy of" not in hydra_sigopt("status", str(copy)).stdout


# Reports each 0.3 s until it is stopped early, then saves its checkpoint (here: until the go file),
# having said so in a file beside the go file. It reports no more, so nothing of it writes in the sweep dir.
SAVES_A_CHECKPOINT_WHEN_STOPPED = """\
import pathlib
import time
from hydra_sigopt import TrialStopped, report
go = pathlib.Path(os.environ["GO_FILE"])
epoch = 0
while True:
    epoch += 1
    time.sleep(0.3)
    try:
        report(epoch, value=cfg.x + 1 / epoch)
    except TrialStopped:
        break
go.with_name(f"saving-{HydraConfig.get().job.num}").touch()
while not go.exists():
    time.sleep(0.2)
return cfg.x
"""


def test_kill_on_a_copy_whose_original_is_gone_names_the_jobs_of_trials_stopped_early_that_still_run(
    tmp_path: Path,
) -> None:
    """Both trials stopped early (the step budget spent), their jobs saving a checkpoint; the sweeper
    killed, its dir copied and then deleted. Seen: kill on the copy said to run kill on the original,
    which is gone, while the two jobs ran on; delete said the same."""
    proc, live, go = _start_stopped_trials_saving(tmp_path, SAVES_A_CHECKPOINT_WHEN_STOPPED)
    pids: list[str] = []
    try:
        pids = _stopped_jobs(live)
        backup = _kill_the_sweeper_and_copy(proc, live, pids)
        shutil.rmtree(live)
        assert all(local_job_running(j) for j in pids)

        killed = hydra_sigopt("kill", str(backup))
        assert killed.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"hydra-sigopt kill {live.resolve()}" not in killed.stderr, killed.stderr
        assert f"the original sweep dir {live.resolve()} is gone" in killed.stderr, killed.stderr
        assert f"pkill -INT -P {','.join(pids)}" in killed.stderr, killed.stderr

        refused = hydra_sigopt("delete", str(backup), "--yes")
        assert refused.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"pkill -INT -P {','.join(pids)}" in refused.stderr, refused.stderr
        assert "nothing was cancelled or deleted" in refused.stderr and (backup / JOURNAL_NAME).exists()
    finally:
        _release_and_end(go, pids, proc)


def _stopped_jobs(sweep_dir: Path) -> list[str]:
    """The job ids of the trials stopped early, in trial order (none while the journal is unreadable)."""
    try:
        with Journal.open(sweep_dir, readonly=True) as journal:
            return [str(t.job_id) for t in journal.trials(["stopped"]) if t.job_id]
    except (JournalError, sqlite3.Error):
        return []


def _start_stopped_trials_saving(tmp_path: Path, app_body: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """A sweep of 2 trials on 2 local slots, both stopped early (the step budget spent) and then
    running on (see ``app_body``), each having touched ``saving-<n>`` beside the go file: (the
    sweep's process, its dir, the go file). The go file is created if this fails, so that the jobs end."""
    go = tmp_path / "go"
    app = write_app(tmp_path, app_body, budget=2)
    proc, live = start_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.early_stopping.step_budget=8",
        "hydra.sweeper.early_stopping.stop_grace_s=600",  # the sweeper does not cancel them itself
        app=app,
        env={"GO_FILE": str(go)},
    )
    try:
        saving = [tmp_path / "saving-0", tmp_path / "saving-1"]
        _wait_until(lambda: all(f.exists() for f in saving), "both trials to be stopped early", timeout=120)
    except BaseException:
        go.touch()
        raise
    return proc, live, go


def _kill_the_sweeper_and_copy(proc: subprocess.Popen[str], live: Path, pids: list[str]) -> Path:
    """Kill the sweeper (its 2 stopped trials' jobs ``pids`` run on, saving) and copy its dir as a
    user backs it up (``cp -a``, beside it): the copy."""
    assert len(pids) == 2, pids
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    backup = live.parent / "backup"
    subprocess.run(["cp", "-a", str(live), str(backup)], check=True)
    return backup


def _resume_as_continue_says(sweep_dir: Path, go: Path) -> subprocess.CompletedProcess[str]:
    """Run the command ``hydra-sigopt continue`` prints for ``sweep_dir``, as a user resuming it does."""
    return subprocess.run(
        ["/bin/sh", "-c", hydra_sigopt("continue", str(sweep_dir)).stdout.strip()],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "GO_FILE": str(go)},
    )


def test_a_copy_is_not_resumed_while_the_jobs_of_its_originals_trials_stopped_early_still_run(tmp_path: Path) -> None:
    """The original's sweeper killed while its two trials, stopped early, save their checkpoints;
    its dir copied. Seen: resuming the copy was not refused (only the jobs of running trials counted),
    so the copy's sweep took those jobs for its own while they wrote into the original's trial folders.
    Refused in one line naming them, as while the original's running trials run."""
    proc, live, go = _start_stopped_trials_saving(tmp_path, SAVES_A_CHECKPOINT_WHEN_STOPPED)
    pids: list[str] = []
    try:
        pids = _stopped_jobs(live)
        backup = _kill_the_sweeper_and_copy(proc, live, pids)
        assert all(local_job_running(j) for j in pids)

        resumed = _resume_as_continue_says(backup, go)
        said = resumed.stdout + resumed.stderr
        assert resumed.returncode != 0 and all(local_job_running(j) for j in pids), said
        refusal = [line for line in said.splitlines() if f"is a copy of the sweep at {live.resolve()}" in line]
        assert len(refusal) == 1, said
        assert "which still runs" in refusal[0] and all(pid in refusal[0] for pid in pids), said
        assert "Copy of" in hydra_sigopt("status", str(backup)).stdout
        assert f"the original at {live.resolve()} runs" in hydra_sigopt("status", str(backup)).stdout
    finally:
        _release_and_end(go, pids, proc)


# Trains on after its stop (catches TrialStopped and reports again), until the go file. Once report()
# stops raising (the sweep dir, and the stop in it, deleted) it saves a checkpoint in its output folder,
# which makes that folder again, and says so beside the go file.
TRAINS_ON_AFTER_ITS_STOP = """\
import pathlib
import time
from hydra_sigopt import TrialStopped, report
go = pathlib.Path(os.environ["GO_FILE"])
num = HydraConfig.get().job.num
out = pathlib.Path(HydraConfig.get().runtime.output_dir)
stopped = False
epoch = 0
while not go.exists():
    epoch += 1
    time.sleep(0.3)
    try:
        report(epoch, value=cfg.x + 1 / epoch)
    except TrialStopped:
        if not stopped:
            go.with_name(f"saving-{num}").touch()
        stopped = True
        continue
    if stopped:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        go.with_name(f"reported-after-the-delete-{num}").touch()
return cfg.x
"""


def test_a_copy_whose_original_was_deleted_and_made_again_by_its_jobs_names_them(tmp_path: Path) -> None:
    """The original's trials, stopped early, train on and report; its sweeper killed, its dir copied,
    then deleted. Seen: their next reports made ``<original>/.hydra_sigopt/trials/N`` again, and their
    checkpoints ``<original>/N/checkpoints``: kill on the copy then took the original for there and
    said to run kill on it, a folder with no sweep in it. The original is gone while no journal is
    at its path: kill, delete and continue name its jobs; and reports do not make the deleted folders."""
    proc, live, go = _start_stopped_trials_saving(tmp_path, TRAINS_ON_AFTER_ITS_STOP)
    pids: list[str] = []
    try:
        pids = _stopped_jobs(live)
        backup = _kill_the_sweeper_and_copy(proc, live, pids)
        shutil.rmtree(live)
        after = [tmp_path / "reported-after-the-delete-0", tmp_path / "reported-after-the-delete-1"]
        _wait_until(lambda: all(f.exists() for f in after), "both trials to report after the delete", timeout=120)
        assert all(local_job_running(j) for j in pids)
        stop = f"pkill -INT -P {','.join(pids)}"

        killed = hydra_sigopt("kill", str(backup))
        assert killed.returncode != 0 and all(local_job_running(j) for j in pids)
        assert f"hydra-sigopt kill {live.resolve()}" not in killed.stderr, killed.stderr
        assert f"the original sweep dir {live.resolve()} is gone" in killed.stderr, killed.stderr
        assert stop in killed.stderr, killed.stderr

        refused = hydra_sigopt("delete", str(backup), "--yes")
        assert refused.returncode != 0 and all(local_job_running(j) for j in pids)
        assert stop in refused.stderr and "nothing was cancelled or deleted" in refused.stderr, refused.stderr

        resumed = _resume_as_continue_says(backup, go)
        assert resumed.returncode != 0 and all(local_job_running(j) for j in pids)
        assert stop in resumed.stdout + resumed.stderr

        assert not (live / ".hydra_sigopt").exists(), sorted(str(p) for p in live.rglob("*"))
        assert (live / "0" / "checkpoints").is_dir()  # the app's own writes are its own
        assert (backup / JOURNAL_NAME).exists()

        go.touch()  # the tasks return: the note of their run is not written in the deleted folder either
        _wait_until(lambda: not any(local_job_running(j) for j in pids), "the jobs to end", timeout=120)
        assert not (live / ".hydra_sigopt").exists(), sorted(str(p) for p in live.rglob("*"))
    finally:
        _release_and_end(go, pids, proc)
