"""Faults that gave raw tracebacks (issue 12, item 16): a bad plot extension, a closed pipe, a full
disk while creating the journal, a read-only sweep path, Ctrl-C during the shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import small_apps
from conftest import (
    EXAMPLE_APP,
    SUBMITIT_LOCAL,
    AppRun,
    run_example,
    running_job_ids,
    start_example,
    trial_states,
    write_app,
)

from hydra_sigopt.crashpoints import ENV_VAR
from hydra_sigopt.errors import JournalError

pytestmark = pytest.mark.slow

HYDRA_SIGOPT = [sys.executable, "-m", "hydra_sigopt.cli"]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    return run_example(tmp_path_factory.mktemp("faults"), "hydra.sweeper.observation_budget=2").assert_ok()


def integrity_check(sweep_dir: Path) -> str:
    """A Python one-liner printing SQLite's integrity check of the sweep's journal (``ok`` when whole)."""
    check = "PRAGMA integrity_check"
    return (
        f"import sqlite3; print(sqlite3.connect('{sweep_dir}/sigopt_journal.sqlite').execute('{check}').fetchone()[0])"
    )


def in_mount_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (its mounts vanish with it)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs `unshare -m` (root, or user namespaces) for a private mount")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600)


def test_plot_to_an_unsupported_extension_names_the_valid_ones(finished_sweep: AppRun, tmp_path: Path) -> None:
    done = subprocess.run(
        [*HYDRA_SIGOPT, "plot", str(finished_sweep.sweep_dir), "-o", str(tmp_path / "x.txt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"-o {tmp_path / 'x.txt'}: .txt is not an image format; use one of" in done.stderr
    assert ".png" in done.stderr and ".svg" in done.stderr
    assert not (tmp_path / "x.txt").exists()


def test_plot_to_a_name_without_extension_writes_nothing_it_was_not_given(
    finished_sweep: AppRun, tmp_path: Path
) -> None:
    """-o figure printed "Wrote figure" and wrote figure.png (matplotlib adds the extension), over the
    user's figure.png; -o SWEEP_DIR wrote SWEEP_DIR.png beside the sweep dir."""
    users_file = tmp_path / "figure.png"
    users_file.write_bytes(b"the user's own figure")
    sweep = finished_sweep.sweep_dir
    for given, valid in ((tmp_path / "figure", f"-o {users_file}"), (sweep, f"-o {sweep / 'sweep.png'}")):
        done = subprocess.run([*HYDRA_SIGOPT, "plot", str(sweep), "-o", str(given)], capture_output=True, text=True)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"-o {given} " in done.stderr and f"e.g. {valid}" in done.stderr
    assert users_file.read_bytes() == b"the user's own figure"
    assert not (tmp_path / "figure").exists() and not sweep.with_name(sweep.name + ".png").exists()


def test_plot_of_a_read_only_sweep_dir_is_one_line_naming_the_way_out(finished_sweep: AppRun) -> None:
    """status and best work on a read-only sweep dir (someone else's); plot, writing its image there
    by default, ended in a 29-line traceback."""
    sweep = finished_sweep.sweep_dir
    done = in_mount_namespace(
        f"mount --bind -o ro {sweep} {sweep} && {' '.join(HYDRA_SIGOPT)} plot {sweep}; echo exit=$?"
    )
    assert done.stdout.strip().endswith("exit=2"), done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write {sweep}/sweep.png (Read-only file system); write the plot elsewhere with -o" in done.stderr


def test_plot_shows_names_with_dollar_signs_as_written(tmp_path: Path) -> None:
    """A metric named cost_$_per_$_sample was parsed as mathtext: plot failed with a 61-line traceback."""
    metrics = "metrics: [{name: cost_$_per_$_sample, objective: minimize}]"
    sweeper = f"observation_budget: 2\n{metrics}\nparams:\n  x: interval(0, 1)"
    app = write_app(tmp_path, sweeper, body='return {"cost_$_per_$_sample": cfg.x}')
    run = run_example(tmp_path, app=app).assert_ok()
    done = subprocess.run([*HYDRA_SIGOPT, "plot", str(run.sweep_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run.sweep_dir / "sweep.png").stat().st_size > 0


def test_status_into_a_closed_pipe_stops_quietly(finished_sweep: AppRun) -> None:
    # The reader is gone before the command writes its first line (`hydra-sigopt status | head -0`).
    proc = subprocess.Popen(
        [*HYDRA_SIGOPT, "status", "--all", str(finished_sweep.sweep_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == ""


def _small_disk(tmp_path: Path) -> tuple[Path, Path]:
    """The mount point of a small disk (a tmpfs the test's shell mounts) and a sweep dir on it."""
    mount = tmp_path / "small"
    mount.mkdir()
    return mount, mount / "sweep"


def _submitit_sweep_on_a_small_disk(tmp_path: Path, app: Path) -> tuple[Path, Path, str]:
    """:func:`_small_disk`, and the shell command of a submitit_local sweep of ``app`` there."""
    mount, sweep_dir = _small_disk(tmp_path)
    # No warm job: starting one for trial #3 may be the sweeper's own refused write, which stops the
    # sweep first (as it should, but then not on what the test is about).
    sweep = f"cd {tmp_path} && {sys.executable} {app} -m hydra.sweep.dir={sweep_dir} {' '.join(SUBMITIT_LOCAL)}"
    return mount, sweep_dir, sweep + " hydra.sweeper.warm_jobs=0"


def test_a_full_disk_while_creating_the_journal_leaves_nothing(tmp_path: Path) -> None:
    mount, sweep_dir = _small_disk(tmp_path)
    done = in_mount_namespace(
        f"mount -t tmpfs -o size=8k tmpfs {mount} && cd {tmp_path} && "
        f"{sys.executable} {EXAMPLE_APP} -m hydra.sweep.dir={sweep_dir} hydra.sweeper.observation_budget=2; "
        f"echo exit=$?; ls -A {mount}"
    )
    output = done.stdout + done.stderr
    assert "exit=0" not in output
    assert f"could not create the journal {sweep_dir}/sigopt_journal.sqlite (database or disk is full)" in output
    assert "nothing was left behind" in output
    assert done.stdout.strip().endswith("exit=1")  # `ls -A` of the mount printed nothing: no sweep dir, no *.creating


# Trial #2 saves a checkpoint that takes the disk's last byte (a checkpoint half written is kept,
# as torch.save leaves one); its own result comes back all the same.
#: A checkpoint written until the disk refuses more (its body, indented for an if: block).
_CHECKPOINT_TO_THE_LAST_BYTE = """\
    out = os.path.join(HydraConfig.get().runtime.output_dir, "checkpoint.bin")
    with open(out, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
"""
FILLS_THE_DISK = f"""\
if job_num() == 2:
{_CHECKPOINT_TO_THE_LAST_BYTE}return cfg.x
"""


def test_a_disk_filled_by_a_trial_stops_the_sweep_in_one_line_and_it_continues_once_space_is_freed(
    tmp_path: Path,
) -> None:
    """The journal's write of the result after the checkpoint failed with three chained tracebacks
    (sqlite3.OperationalError: database or disk is full), the stop's own writes failing in turn."""
    app = small_apps.write_app(tmp_path, FILLS_THE_DISK, budget=4)
    mount, sweep_dir = _small_disk(tmp_path)
    sweep = f"cd {tmp_path} && {sys.executable} {app} -m hydra.sweep.dir={sweep_dir}"
    integrity = integrity_check(sweep_dir)
    done = in_mount_namespace(
        f"mount -t tmpfs -o size=2m tmpfs {mount} && {{ {sweep}; echo exit=$?; }} 2>&1 && echo ==== && "
        f'{sys.executable} -c "{integrity}" && rm {sweep_dir}/2/checkpoint.bin && {sweep} && '
        f"{' '.join(HYDRA_SIGOPT)} status {sweep_dir}"
    )
    full, resumed = done.stdout.split("====")
    assert f"the disk holding the sweep dir {sweep_dir} is full" in full, full[-3000:]
    assert "free some space there. Continue this sweep with: " in full
    assert "Traceback" not in full and "OperationalError" not in full, full[-3000:]
    assert "exit=1" in full
    assert resumed.split()[0] == "ok"  # PRAGMA integrity_check of the journal the full disk left
    assert "4/4 done (4 completed, 0 failed)" in resumed, resumed[-3000:] + done.stderr[-3000:]


# Trial #1 fills the disk with its checkpoint, then trains on (the first time it runs).
FILLS_THE_DISK_AND_RUNS_ON = f"""\
if job_num() == 1 and not os.path.exists({{marker!r}}):
    open({{marker!r}}, "w").close()
{_CHECKPOINT_TO_THE_LAST_BYTE}    time.sleep(300)
return cfg.x
"""


def _sweep_signalled_as_its_disk_fills(tmp_path: Path, signal_name: str) -> tuple[Path, str, str]:
    """The sweep dir and the sweep's shell command (of FILLS_THE_DISK_AND_RUNS_ON, on a small disk), and
    the shell lines that mount the disk, run the sweep, send the sweeper ``signal_name`` (``INT``)
    once trial #1 has filled the disk, and print its exit status (``exit=N``) and its output."""
    app = small_apps.write_app(
        tmp_path, FILLS_THE_DISK_AND_RUNS_ON.format(marker=str(tmp_path / "filled")), helpers="import time"
    )
    mount, sweep_dir, sweep = _submitit_sweep_on_a_small_disk(tmp_path, app)
    stop_shell = (
        f"mount -t tmpfs -o size=2m tmpfs {mount} && {{ {sweep} > {tmp_path}/out 2>&1 & pid=$!; "
        f"while [ $(df --output=avail {mount} | tail -1) -gt 0 ]; do sleep 0.2; done; kill -{signal_name} $pid; "
        f"wait $pid; echo exit=$?; }} && cat {tmp_path}/out"
    )
    return sweep_dir, sweep, stop_shell


def test_a_ctrl_c_while_the_disk_is_full_still_cancels_the_trials_and_says_how_to_continue(tmp_path: Path) -> None:
    """The stop's own journal write (marking the running trials abandoned) failed on the full disk:
    the sweep ended on the bare "disk is full" line, without the continue hint, and trial #1's job
    was left running (never cancelled)."""
    sweep_dir, sweep, stop_shell = _sweep_signalled_as_its_disk_fills(tmp_path, "INT")
    status = f"{' '.join(HYDRA_SIGOPT)} status {sweep_dir}"
    done = in_mount_namespace(
        f"{stop_shell} && {status}; echo ====; rm {sweep_dir}/1/checkpoint.bin && {sweep} && {status}"
    )
    full, resumed = done.stdout.split("====")
    assert f"Interrupted; the disk holding the sweep dir {sweep_dir} is full" in full, full[-3000:]
    assert "Running trials [1] were cancelled. Continue this sweep with: " in full, full[-3000:]
    assert "Traceback" not in full and "exit=1" in full
    assert "#1    job" in full and "lost with the sweeper (run again on resume)" in full  # not running
    assert "4/4 done (4 completed, 0 failed)" in resumed, resumed[-3000:] + done.stderr[-3000:]


def test_a_hang_up_while_the_disk_is_full_ends_on_the_hang_up_s_message_its_trials_left_running(
    tmp_path: Path,
) -> None:
    """A lost SSH session (SIGHUP) while the disk was full: the stop left trial #1 running, as a hang-up
    must, then the wrap-up's note in the journal failed on the full disk, and its "disk is full" error
    replaced the stop's message (which trials were left running, how to continue) and cut the
    wrap-up short (the journal not closed, the signals not given back)."""
    sweep_dir, _, stop_shell = _sweep_signalled_as_its_disk_fills(tmp_path, "HUP")
    integrity = integrity_check(sweep_dir)
    done = in_mount_namespace(
        f'{stop_shell} && echo ==== && {sys.executable} -c "{integrity}"; '
        # Trial #1's job, left running: said so, then ended here (it would sleep on for minutes). The
        # bracket keeps the pattern from matching this shell's own command line.
        f"pkill -KILL -f '[s]ubmitit[.](core[.]_submit|local[.]_local) {sweep_dir}/' && echo trial-1-was-running"
    )
    stopped, checked = done.stdout.split("====")
    last = [line for line in stopped.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line][-1]
    assert last.startswith("Interrupted. Trials [1] were left running (the sweeper's terminal hung up: SIGHUP)"), (
        stopped[-3000:]
    )
    assert "Continue this sweep with: " in last and "Traceback" not in stopped, stopped[-3000:]
    assert checked.split()[0] == "ok"  # PRAGMA integrity_check of the journal the full disk left
    assert "trial-1-was-running" in checked, checked  # left running, as the stop says


# Trial #1 fills the disk with its checkpoint, then is killed (the system's OOM killer, say) before it returns.
FILLS_THE_DISK_AND_IS_KILLED = f"""\
if job_num() == 1:
{_CHECKPOINT_TO_THE_LAST_BYTE}    os.kill(os.getpid(), signal.SIGKILL)
return cfg.x
"""


def test_a_job_killed_on_a_full_disk_is_not_said_to_have_failed_to_write_its_result(tmp_path: Path) -> None:
    """A job that ended without a result while the disk was full was said to have failed for the disk
    ("No space left on device: job N of trial #1 could not write its result"), also a job that never
    got to write one: killed, or crashed. What is known is said: how it ended, and that the disk is full."""
    app = small_apps.write_app(tmp_path, FILLS_THE_DISK_AND_IS_KILLED, helpers="import signal", budget=3)
    mount, sweep_dir, sweep = _submitit_sweep_on_a_small_disk(tmp_path, app)
    done = in_mount_namespace(f"mount -t tmpfs -o size=2m tmpfs {mount} && {{ {sweep}; echo exit=$?; }} 2>&1")
    output = done.stdout
    assert "could not write its result" not in output, output[-3000:]
    assert "ResultUnknownError: trial #1: job " in output and " ended without a result; its log: " in output
    assert (
        f"the disk holding {sweep_dir}/.submitit/" in output
        and "refuses writes now (No space left on device), but nothing shows" in (output)
    ), output[-3000:]
    assert "trial #1 is not counted as failed" in output and "Continue this sweep with: " in output, output[-3000:]
    assert "Traceback" not in output and "exit=1" in output, output[-3000:]


def test_a_job_whose_result_the_full_disk_refused_is_said_so(tmp_path: Path) -> None:
    """The other side of the test above: trial #2's job returned, and its result could not be saved."""
    app = small_apps.write_app(tmp_path, FILLS_THE_DISK, budget=3)
    mount, sweep_dir, sweep = _submitit_sweep_on_a_small_disk(tmp_path, app)
    done = in_mount_namespace(f"mount -t tmpfs -o size=2m tmpfs {mount} && {{ {sweep}; echo exit=$?; }} 2>&1")
    output = done.stdout
    assert "OSError: [Errno 28] No space left on device: job " in output, output[-3000:]
    assert f"of trial #2 could not write its result in {sweep_dir}/.submitit/" in output, output[-3000:]
    assert "trial #2 is not counted as failed" in output and "exit=1" in output, output[-3000:]


# Trial #2 makes the sweep dir read-only as it ends (a file system remounted read-only, say; the
# sweeper's open journal stays writable, as on a file server that refuses new files only).
MAKES_THE_SWEEP_DIR_READ_ONLY = """\
if job_num() == 2:
    sweep_dir = HydraConfig.get().sweep.dir
    subprocess.run(["mount", "--bind", "-o", "ro", sweep_dir, sweep_dir], check=True)
return cfg.x
"""


def test_a_sweep_dir_turned_read_only_stops_the_sweep_in_one_line_without_failing_trials(tmp_path: Path) -> None:
    """Hydra could not make the next trials' folders: each was recorded as a failed trial (the
    budget spent, and the engine told their points fail), then trials.csv could not be written at
    the end, with a traceback (OSError: Read-only file system)."""
    app = small_apps.write_app(tmp_path, MAKES_THE_SWEEP_DIR_READ_ONLY, helpers="import subprocess", budget=4)
    sweep_dir = tmp_path / "sweep"
    sweep = f"cd {tmp_path} && {sys.executable} {app} -m hydra.sweep.dir={sweep_dir}"
    done = in_mount_namespace(
        f"{{ {sweep}; echo exit=$?; }} 2>&1; echo ====; umount {sweep_dir} && {sweep} && "
        f"{' '.join(HYDRA_SIGOPT)} status {sweep_dir}"
    )
    read_only, resumed = done.stdout.split("====")
    assert f"The sweep stopped on OSError: [Errno 30] Read-only file system: '{sweep_dir}/3'" in read_only
    assert f"could not write trials.csv and optimization_results.yaml in the sweep dir {sweep_dir}" in read_only
    assert "Traceback" not in read_only and "failed:" not in read_only, read_only[-3000:]
    assert "exit=1" in read_only
    assert "4/4 done (4 completed, 0 failed)" in resumed, resumed[-3000:] + done.stderr[-3000:]
    assert (sweep_dir / "trials.csv").is_file()


def test_a_job_that_cannot_write_its_result_on_a_read_only_sweep_dir_stops_the_sweep_without_failing_its_trial(
    tmp_path: Path,
) -> None:
    """submitit_local: trial #2's job could not write its result pickle (nor its kept value) into the
    sweep dir turned read-only; the trial was recorded as failed ("job N ended without a result"),
    spending the budget and telling the engine its point fails, and the sweep went on."""
    app = small_apps.write_app(tmp_path, MAKES_THE_SWEEP_DIR_READ_ONLY, helpers="import subprocess", budget=4)
    sweep_dir = tmp_path / "sweep"
    # No warm job: starting one for trial #3 may be the sweeper's own refused write, which stops the
    # sweep first (as it should, but then no job's refused result write is seen).
    sweep = f"cd {tmp_path} && {sys.executable} {app} -m hydra.sweep.dir={sweep_dir} {' '.join(SUBMITIT_LOCAL)}"
    sweep += " hydra.sweeper.warm_jobs=0"
    status = f"{' '.join(HYDRA_SIGOPT)} status {sweep_dir}"
    done = in_mount_namespace(
        f"{{ {sweep}; echo exit=$?; }} 2>&1; {status}; echo ====; umount {sweep_dir} && {sweep} && {status}"
    )
    read_only, resumed = done.stdout.split("====")
    assert "The sweep stopped on OSError: [Errno 30] Read-only file system: job " in read_only, read_only[-3000:]
    assert f"of trial #2 could not write its result in {sweep_dir}/.submitit/" in read_only
    assert "trial #2 is not counted as failed" in read_only and "Continue this sweep with: " in read_only
    assert "Trial #2 failed" not in read_only and "1 failed" not in read_only, read_only[-3000:]
    assert "exit=1" in read_only
    assert "4/4 done (4 completed, 0 failed)" in resumed, resumed[-3000:] + done.stderr[-3000:]


# Trial #2 shuts down the file system holding the sweep dir (the fstests way to make every read and
# write there fail with EIO: a disk gone bad under the sweep), the first time it runs. The ioctl is
# ext4's EXT4_IOC_SHUTDOWN (_IOR('X', 125, __u32)) with EXT4_GOING_FLAGS_LOGFLUSH, what xfs_io's
# "shutdown -f" calls; called directly, the test needs no xfsprogs (CI's machine has none).
EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_LOGFLUSH = 0x8004587D, 1
SHUTS_DOWN_THE_FILE_SYSTEM = f"""\
if job_num() == 2 and not os.path.exists({{marker!r}}):
    open({{marker!r}}, "w").close()
    fcntl.ioctl(os.open({{mount!r}}, os.O_RDONLY), {EXT4_IOC_SHUTDOWN}, struct.pack("I", {EXT4_GOING_FLAGS_LOGFLUSH}))
return cfg.x
"""


def test_a_file_system_failing_under_the_sweep_stops_it_in_one_line_and_it_continues_once_back(
    tmp_path: Path,
) -> None:
    """The journal's next write after the file system failed ended in three chained tracebacks
    (OSError: [Errno 5] Input/output error, from the journal guard's read of the file's header)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    task = SHUTS_DOWN_THE_FILE_SYSTEM.format(marker=str(tmp_path / "shut"), mount=str(mount))
    app = small_apps.write_app(tmp_path, task, helpers="import fcntl, struct", budget=4)
    sweep_dir = mount / "sweep"
    image = tmp_path / "disk.img"
    sweep = f"cd {tmp_path} && {sys.executable} {app} -m hydra.sweep.dir={sweep_dir}"
    integrity = integrity_check(sweep_dir)
    done = in_mount_namespace(
        f"truncate -s 64M {image} && mkfs.ext4 -q {image} && mount -o loop {image} {mount} && "
        f"{{ {sweep}; echo exit=$?; }} 2>&1; echo ====; umount {mount} && mount -o loop {image} {mount} && "
        f'{sys.executable} -c "{integrity}" && {sweep} && {" ".join(HYDRA_SIGOPT)} status {sweep_dir}; umount {mount}'
    )
    failed, resumed = done.stdout.split("====")
    said = f"the file system holding the sweep dir {sweep_dir} failed under the sweep (Input/output error)"
    assert said in failed and "Continue this sweep with: " in failed, failed[-3000:]
    assert "Traceback" not in failed and "OSError" not in failed, failed[-3000:]
    assert "exit=1" in failed
    assert resumed.split()[0] == "ok"  # PRAGMA integrity_check of the journal once the disk is back
    assert "4/4 done (4 completed, 0 failed)" in resumed, resumed[-3000:] + done.stderr[-3000:]


def test_a_read_only_sweep_path_is_one_line_naming_it(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    done = in_mount_namespace(
        f"mount --bind -o ro {read_only} {read_only} && cd {tmp_path} && "
        f"{sys.executable} {EXAMPLE_APP} -m hydra.sweep.dir={read_only}/sweep hydra.sweeper.observation_budget=2"
    )
    assert done.returncode != 0
    assert f"cannot write in the sweep dir {read_only}/sweep: Read-only file system" in done.stderr
    assert "PermissionError" not in done.stderr and "OSError" not in done.stderr


def test_a_ctrl_c_after_the_wrap_up_does_not_hide_the_interrupted_message(tmp_path: Path) -> None:
    """The test below failed in CI: one of the user's Ctrl-Cs came after the sweeper had given the
    signals back, while Hydra printed the stop, and a KeyboardInterrupt traceback was the last thing
    printed. Here that Ctrl-C comes exactly then: after a Ctrl-C as the second trial is submitted."""
    env = {ENV_VAR: "after_submit:2:INT,after_wrap_up:1:INT"}
    overrides = [*SUBMITIT_LOCAL, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2"]
    stopped = run_example(tmp_path, *overrides, "hydra.sweeper.warm_jobs=0", "sleep_s=60", env=env)
    assert stopped.proc.returncode != 0
    # (A job's controller SIGINTed during its imports prints its own traceback: not the sweeper's.)
    assert "hydra_sigopt" not in stopped.proc.stderr.split("Interrupted.")[-1], stopped.output[-3000:]
    hint = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    last = [line for line in stopped.proc.stderr.splitlines() if line.strip() and line != hint][-1]
    assert "Interrupted. Running trials were cancelled" in last, stopped.output[-3000:]


@pytest.mark.parametrize("point", ["before_launcher", "after_lock", "writing_sweep_dir"])
def test_a_ctrl_c_at_any_instant_of_start_up_is_one_line_and_the_sweep_goes_on_after_it(
    tmp_path: Path, point: str
) -> None:
    """A tester: a Ctrl-C just after the sweep dir was locked, before the sweeper took over the
    signals, printed a KeyboardInterrupt traceback from _write_sweep_dir, not the stop's one line."""
    overrides = ("hydra.sweeper.observation_budget=2",)
    stopped = run_example(tmp_path, *overrides, env={ENV_VAR: f"{point}:1:INT"})
    assert stopped.proc.returncode != 0
    assert "Traceback" not in stopped.output and "KeyboardInterrupt" not in stopped.output, stopped.output[-3000:]
    hint = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    lines = [line for line in stopped.proc.stderr.splitlines() if line.strip() and line != hint]
    assert len(lines) == 1 and lines[0].startswith("Interrupted"), stopped.proc.stderr[-3000:]
    if point != "before_launcher":  # the sweep dir was taken: how to continue, as after any stop
        assert f"Continue this sweep with: cd {tmp_path} && " in lines[0], lines[0]
    again = run_example(tmp_path, *overrides).assert_ok()  # the same command: the sweep runs, from the start
    assert [t["state"] for t in again.trials] == ["completed", "completed"]


def test_ctrl_c_again_and_again_during_the_shutdown_prints_only_the_interrupted_message(tmp_path: Path) -> None:
    proc, sweep_dir = start_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.warm_jobs=0",
        "sleep_s=60",
    )
    running_job_ids(sweep_dir, 2)
    # An impatient user: Ctrl-C every 0.2 s until the sweeper is gone.
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    output = proc.communicate()[0]
    assert proc.returncode != 0
    # The interrupted message (and how to continue) is the last thing printed, before Hydra's usual
    # hint about HYDRA_FULL_ERROR: no traceback after it.
    hint = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    last = [line for line in output.splitlines() if line.strip() and line != hint][-1]
    assert "Interrupted. Running trials were cancelled" in last and "Continue this sweep with:" in last, output[-3000:]


def _plotted_figure(sweep_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Any]:
    """``plot``'s panel titles and its figure, kept open (as the CLI draws it, from the journal)."""
    import matplotlib.pyplot as plt

    from hydra_sigopt.journal import Journal
    from hydra_sigopt.plot import plot_sweep

    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", kept.append)
    with Journal.open(sweep_dir, readonly=True) as journal:
        titles = plot_sweep(journal.meta(), journal.trials(), sweep_dir / "p.png", journal.reports.all())
    return titles, kept[0]


def test_plot_draws_a_log_scale_parameter_s_ticks_as_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing names as written switched mathtext off for the whole figure: the ticks of a log-scale
    parameter (every sweep's learning rate) read $\\mathdefault{10^{-2}}$, overlapping each other."""
    sweeper = "observation_budget: 3\nparams:\n  x: tag(log, interval(0.0001, 1))"
    app = write_app(tmp_path, sweeper, body="return cfg.x")
    run = run_example(tmp_path, app=app).assert_ok()
    titles, fig = _plotted_figure(run.sweep_dir, monkeypatch)
    lr_axis = fig.axes[titles.index("x")]
    renderer = fig.canvas.get_renderer()
    labels = [label for label in lr_axis.get_xticklabels() if label.get_text() and label.get_visible()]
    assert labels and all("mathdefault" in label.get_text() for label in labels)  # matplotlib's own mathtext
    # Drawn as math, "10^-2" is a few characters wide; drawn as written, the whole source text.
    widest = max(label.get_window_extent(renderer).width for label in labels)
    assert widest < 40, [label.get_text() for label in labels]


@pytest.mark.parametrize("best", ["val/acc_best", "val/acc_$_per_$_best"])
def test_plot_of_a_sweep_judged_on_a_stored_metric_draws_its_curves_and_stopped_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, best: str
) -> None:
    """As lightning-hydra-template does it: optimize val/acc_best, report val/acc each epoch, and
    early_stopping.metric=val/acc. The plot had no learning curves and left the stopped trials out
    ("2 completed, 0 failed") where status said "5/5 done (2 completed, 3 stopped early)". (The
    first fix's legend for those trials named the metric unescaped: a $ in it failed the plot.)"""
    sweeper = (
        "observation_budget: 3\n"
        f"metrics: [{{name: '{best}', objective: maximize}}, {{name: val/acc, strategy: store}}]\n"
        "early_stopping: {rule: median, metric: val/acc, max_step: 5, step_budget: 7}\n"
        "params:\n  x: interval(0, 1)"
    )
    # train/loss too, declared first: the curves drawn are those the rule judged (val/acc).
    sweeper = sweeper.replace("metrics: [", "metrics: [{name: train/loss, strategy: store}, ")
    body = (
        "from hydra_sigopt import report\n"
        "    for epoch in range(1, 6):\n"
        "        report(epoch, **{'train/loss': 1 / epoch, 'val/acc': cfg.x * epoch / 5})\n"
        f"    return {{{best!r}: cfg.x, 'val/acc': cfg.x, 'train/loss': 0.2}}"
    )
    app = write_app(tmp_path, sweeper, body=body)
    run = run_example(tmp_path, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "stopped"], run.output[-3000:]
    titles, fig = _plotted_figure(run.sweep_dir, monkeypatch)
    assert titles[0].endswith(": 1 completed, 1 stopped early, 0 failed"), titles
    assert titles[1] == "learning curves (1 stopped early: x)", titles
    assert fig.axes[1].get_ylabel() == "val/acc"


def without_write_permission(command: list[str]) -> list[str]:
    """``command`` run without the power to write what its user may not: root ignores file
    permissions, so as root it runs with the capabilities that do so dropped (setpriv)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:  # a skip here would pass for the permissions it never tested
        pytest.fail("running as root, which ignores file permissions; this test needs setpriv to drop them")
    drop = "--bounding-set=-dac_override,-dac_read_search,-fowner,-chown"
    return ["setpriv", drop, "--inh-caps=-all", "--", *command]


@pytest.fixture
def read_only_copy(finished_sweep: AppRun, tmp_path: Path) -> Iterator[Path]:
    """A copy of a finished sweep made read-only (`chmod -R a-w`), as a teammate's sweep is to its reader."""
    copy = tmp_path / "teammates_sweep"
    shutil.copytree(finished_sweep.sweep_dir, copy)
    subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
    yield copy
    subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("command", [["kill"], ["delete", "--yes"], ["delete", "--yes", "--local-only"]])
def test_kill_and_delete_of_a_sweep_dir_the_user_cannot_write_is_one_line(
    read_only_copy: Path, command: list[str]
) -> None:
    """A 17-line traceback ending in PermissionError on sigopt_journal.lock (SweepLock.holder)."""
    before = _snapshot(read_only_copy)
    done = subprocess.run(
        without_write_permission([*HYDRA_SIGOPT, *command, str(read_only_copy)]), capture_output=True, text=True
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write in the sweep dir {read_only_copy}: Permission denied; nothing was done" in done.stderr
    assert _snapshot(read_only_copy) == before


def test_status_of_a_sweep_dir_the_user_cannot_write_tells_whether_its_sweeper_runs(read_only_copy: Path) -> None:
    """It said "Sweeper: unknown (the lock file cannot be opened: Permission denied)" of a finished sweep."""
    done = subprocess.run(
        without_write_permission([*HYDRA_SIGOPT, "status", str(read_only_copy)]), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Sweeper:     not running (the budget is spent)" in done.stdout


def test_status_and_best_refuse_a_read_only_journal_whose_wal_they_cannot_read(tmp_path: Path) -> None:
    """A sweep killed with -9 leaves its latest commits in the WAL; copied without its -shm file and
    read-only, status said "Trials: 0/30 done" and best "no completed trial yet": the journal was
    read as immutable, without its WAL."""
    proc, sweep_dir = start_example(tmp_path, "hydra.sweeper.observation_budget=30", "sleep_s=0.3")
    try:
        deadline = time.time() + 120
        while sum(state == "completed" for state, _, _ in _states_or_none(sweep_dir).values()) < 2:
            assert time.time() < deadline and proc.poll() is None, "the sweep completed no two trials"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.communicate()
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy, ignore=shutil.ignore_patterns("*-shm"))
    assert (copy / "sigopt_journal.sqlite-wal").stat().st_size > 0
    subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
    try:
        for command in ("status", "best"):
            done = subprocess.run(
                without_write_permission([*HYDRA_SIGOPT, command, str(copy)]), capture_output=True, text=True
            )
            assert done.returncode == 2, done.stdout + done.stderr
            assert done.stdout == "" and done.stderr.count("\n") == 1, done.stdout + done.stderr
            assert (
                "its latest commits are in its -wal file, which SQLite cannot read without its -shm file" in done.stderr
            )
            assert "copy the sweep dir with its -wal and -shm files" in done.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)


def _states_or_none(sweep_dir: Path) -> dict[int, tuple[str, str | None, bool]]:
    """The trials' states, or none before the sweep made its journal."""
    try:
        return trial_states(sweep_dir)
    except JournalError:
        return {}
