"""Processes on this machine: whether one runs, stopping submitit's local jobs, and where a job's
result is.

Used by the runners (re-attaching and cancelling ``submitit_local`` jobs), by warm jobs (whether
their sweeper still runs), by a resumed sweep and by ``hydra-sigopt kill``; it imports nothing of
the sweeper's.
"""

from __future__ import annotations

import glob
import os
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def interrupts_kept_from_children(hangups_too: bool = False) -> Iterator[None]:
    """Start child processes with SIGINT blocked (for submitit's local jobs); with ``hangups_too``
    (``on_interrupt: detach``) SIGHUP as well, so that a lost terminal leaves the jobs running, and
    trackable through their controller, as it leaves Slurm's.

    A child inherits the calling thread's signal mask, through exec: submitit's local controller
    then never takes a terminal's Ctrl-C, which it turned into a KeyboardInterrupt traceback printed
    in the terminal it shares with the sweeper. Its tasks unblock it (:func:`take_interrupts`), so
    the app still gets its KeyboardInterrupt. A Ctrl-C meanwhile is not lost: the other threads
    take it, or it waits here until unblocked.
    """
    blocked = {signal.SIGINT, signal.SIGHUP} if hangups_too else {signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def take_interrupts() -> None:
    """Unblock SIGINT in this thread (a local job's task: see :func:`interrupts_kept_from_children`);
    one that came while it was blocked is raised now, as KeyboardInterrupt."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def leave_the_terminals_process_group() -> None:
    """A process group of its own for a detached local job's task (``on_interrupt: detach``): a
    Ctrl-C in the sweeper's terminal (SIGINT to its whole foreground group) stops the sweeper only;
    a cancel (``hydra-sigopt kill``: SIGINT to the job's processes) still reaches it. A no-op but in
    a submitit local job (Slurm's never were in that group), and for a process leading a group already."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return
    try:
        if os.getpgid(0) != os.getpid():
            os.setpgid(0, 0)
    except OSError:
        pass  # the job stays in the terminal's group: a Ctrl-C there reaches it, as without detach
    # One that came while the job started (SIGINT blocked) was most likely the terminal's. (A cancel's
    # comes to a job whose task did not start yet: it is killed 3 s later all the same.)
    if signal.SIGINT in signal.sigpending():
        signal.sigwait({signal.SIGINT})


def pid_running(pid: str | int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != b"Z"


def _stat_fields(pid: str | int) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the process's name (state first); [] when it is gone.

    Bytes, not text: the name is the program's, cut at 15 bytes, so it may be any bytes (a cut
    UTF-8 character, a name set with prctl); it may hold spaces and ")" too, hence the last ")".
    """
    try:
        return Path(f"/proc/{int(pid)}/stat").read_bytes().rpartition(b")")[2].split()
    except (OSError, ValueError):
        return []


def _descendants(pids: Sequence[int]) -> dict[int, str | None]:
    """Every process below these, with its start time (its identity: pids are reused)."""
    found: dict[int, str | None] = {}
    frontier = list(pids)
    while frontier:
        frontier = [c for p in frontier for c in _children(p) if c not in found]
        found.update({c: _start_time(c) for c in frontier})
    return found


def _start_time(pid: int) -> str | None:
    """When a process started, in clock ticks since boot (None: it is gone)."""
    fields = _stat_fields(pid)
    return fields[19].decode() if len(fields) > 19 else None


def this_process_started_at() -> float | None:
    """When this process started, in wall time (None: not on Linux, or /proc unreadable)."""
    ticks = _start_time(os.getpid())  # since boot (/proc/stat's btime, whole seconds, is too coarse)
    try:
        since = time.clock_gettime(time.CLOCK_BOOTTIME) - int(ticks or "") / os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError):
        return None
    return time.time() - since


def _same_process(pid: int, start_time: str | None) -> bool:
    return start_time is not None and _start_time(pid) == start_time


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc): each of its threads' (one a thread pool
    started is listed under that thread only)."""
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            found += [int(c) for c in (thread / "children").read_text().split() if int(c) not in found]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def local_job_running(job_id: str | int, submitit_folder: str | None = None) -> bool:
    """Whether a submitit local job's controller runs: its pid is alive and is that controller.

    Pids are reused, so the pid alone could name an unrelated process after a restart.
    """
    if not pid_running(job_id):
        return False
    try:
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return "submitit.local._local" in cmdline and (submitit_folder is None or submitit_folder in cmdline)


def cancel_local_jobs(
    job_ids: Sequence[str | int], submitit_folder: str | None = None, grace_s: float = 3.0
) -> list[str]:
    """Stop submitit local jobs and their task processes; return the ids that were still running.

    Not as submitit's own cancel does it: SIGINT to a job's controller makes it print its
    KeyboardInterrupt traceback to the terminal it shares with the sweeper. The controller is paused
    instead (it starts no task and prints nothing from then on), its tasks and the processes they
    started get SIGINT, as from a terminal's Ctrl-C (their output goes to the job's log), and
    whatever still runs after ``grace_s`` is killed, the tasks' processes first (a controller
    started from a background shell ignores SIGINT, and so do its tasks); then the paused controller.
    """
    live = [int(j) for j in job_ids if str(j).isdigit() and local_job_running(j, submitit_folder)]
    managers: list[int] = []
    tasks: list[int] = []
    for pid in live:
        job_managers, job_tasks = _pause_job(pid)
        managers += job_managers
        tasks += job_tasks
    # The app's own processes (a simulator it runs, data loader workers) belong to init once their
    # task is gone, and nothing would stop them: they are found while the tasks still run.
    try:
        started = _descendants(tasks)
        _signal([*tasks, *started], signal.SIGINT)
        _wait_gone([*tasks, *started], grace_s)
        survivors = _freeze([p for p in tasks if pid_running(p)], started, managers)
        _signal(survivors, signal.SIGKILL)
    finally:  # whatever happened above, no controller is left paused
        _signal(managers[::-1], signal.SIGKILL)
    # A SIGKILLed process is gone a moment after the signal, not at it: without this wait a caller
    # (``hydra-sigopt kill``, then the user's ``ps``) could still see the jobs it was told were cancelled.
    _wait_gone([*survivors, *managers], _KILL_WAIT_S)
    return [str(pid) for pid in live]


def _freeze(tasks: list[int], started: dict[int, str | None], managers: list[int]) -> list[int]:
    """Pause (SIGSTOP) what is left of the jobs, until no new process appears, and return it all: the
    tasks still running, what they started, and every process carrying a job's environment (those
    whose parent ended during the grace, now init's; daemons). A process that ignores SIGINT and
    keeps starting others (a shell loop, a pool) cannot start one more between finding and killing."""
    frozen: dict[int, str | None] = {}
    pending = {**{p: _start_time(p) for p in tasks}, **started}
    while True:
        pending |= {p: t for p, t in _in_jobs_environment(managers).items() if p not in frozen}
        alive = {p: t for p, t in pending.items() if _same_process(p, t)}
        if not alive:
            return list(frozen)
        _signal(list(alive), signal.SIGSTOP)
        frozen |= alive
        pending = {p: t for p, t in _descendants(list(alive)).items() if p not in frozen}


def _in_jobs_environment(managers: list[int]) -> dict[int, str | None]:
    """The processes whose environment names one of these local job controllers: submitit gives each
    task ``SUBMITIT_LOCAL_JOB_ID=<controller pid>``, and whatever a task starts inherits it."""
    return _carrying_job_ids({pid: _start_time(pid) for pid in managers})


def _carrying_job_ids(jobs: dict[int, str | None]) -> dict[int, str | None]:
    """The processes carrying ``SUBMITIT_LOCAL_JOB_ID`` of one of these jobs (by job pid, with when
    that pid's process started), with their start times."""
    started = {f"SUBMITIT_LOCAL_JOB_ID={pid}".encode(): since for pid, since in jobs.items()}
    mine = {os.getpid(), os.getppid()}
    found: dict[int, str | None] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        pid, since = int(entry.name), _start_time(int(entry.name))
        # A process older than the controller got the id from an earlier job whose pid was reused.
        if any(_not_before(since, started[mark]) for mark in started.keys() & set(environment)):
            found[pid] = since
    return found


def _not_before(start: str | None, reference: str | None) -> bool:
    return start is not None and reference is not None and int(start) >= int(reference)


def local_job_started(job_id: str | int) -> str | None:
    """When a running local job's process started (its identity, see :func:`leftovers_of_local_job`);
    None when it is gone."""
    return _start_time(int(job_id)) if str(job_id).isdigit() else None


def leftovers_of_local_job(job_id: str | int, job_started: str | None) -> dict[int, str | None]:
    """What an ended local job left running: the processes still carrying its ``SUBMITIT_LOCAL_JOB_ID``
    (a task's children outlive it, adopted by init), by pid with their start times. Call it once
    the job's controller has exited (it stops its tasks as it ends)."""
    return _carrying_job_ids({int(job_id): job_started}) if job_started is not None else {}


def signal_if_same(processes: dict[int, str | None], signum: int) -> list[int]:
    """Send ``signum`` to those of these processes that still run (the same process: pids are
    reused); return their pids."""
    alive = [p for p, since in processes.items() if _same_process(p, since) and pid_running(p)]
    _signal(alive, signum)
    return alive


def command_of(pid: int) -> str:
    """A process's name, for a message ('' when it is gone): not its arguments, which may hold a
    password (``--password=...``, a database URL) that a sweep's log must not show."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(errors="replace").strip()
    except OSError:
        return ""


#: How long a cancel waits for the processes it killed to be gone.
_KILL_WAIT_S = 10.0


def _wait_gone(pids: Sequence[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_running(p) for p in pids):
        time.sleep(0.05)


def _pause_job(job_pid: int) -> tuple[list[int], list[int]]:
    """Pause a local job's controller (SIGSTOP: it cannot be ignored); return the paused processes
    and the job's tasks. With ``hydra.launcher.setup`` the job's pid is a shell that runs the setup
    and then the controller: both are paused, and a setup command still running counts as a task."""
    _signal([job_pid], signal.SIGSTOP)
    managers, tasks = [job_pid], []
    for child in _children(job_pid):
        if _is_controller(child):
            _signal([child], signal.SIGSTOP)
            managers.append(child)
            tasks += _children(child)
        else:
            tasks.append(child)
    return managers, tasks


def _is_controller(pid: int) -> bool:
    try:
        return b"submitit.local._local" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _signal(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:  # another user's (a program run through sudo): not ours to stop
            continue


def result_written_at(result: Path, trial_created_at: float, cluster: str, every_task: bool = True) -> float | None:
    """When a trial's job wrote its result file ``result`` (task 0's; with ``every_task``, the last
    of its tasks' results, in a multi-task job); None if it did not, or if it is not the trial's own.

    A local job's id is its process id, which the system reuses: a result older than the trial is an
    earlier job's (one clock stamps both). A Slurm job's result is stamped by the file server's clock,
    the trial by the sweeper host's: a file server behind by more than a trial's run would make the
    job's own result look older than its trial, so the two are not compared there (Slurm's job ids
    come back only when its counter wraps).
    """
    try:
        at = max(path.stat().st_mtime for path in (results_of_every_task(result) if every_task else [result]))
    except OSError:  # a task's is missing: the job has not ended (a rank still runs, or hangs)
        return None
    return at if cluster == "slurm" or at >= trial_created_at else None


def results_of_every_task(result: Path) -> list[Path]:
    """Task 0's result file ``result`` and those of the job's other tasks (a multi-task job: one per
    device), each task known by its log, which Slurm and submitit's controller open as it starts."""
    prefix = result.name.removesuffix("0_result.pkl")  # "<job id>_"
    tasks = {0}
    for log_file in result.parent.glob(f"{glob.escape(prefix)}*_log.*"):
        task = log_file.name.removeprefix(prefix).partition("_")[0]
        if task.isdigit():
            tasks.add(int(task))
    return [result.with_name(f"{prefix}{task}_result.pkl") for task in sorted(tasks)]


def job_result_file(submitit_folder: str, job_id: str, cwd: str | None = None) -> Path:
    """The file in which submitit leaves a job's result (task 0's: see results_of_every_task), local or Slurm.

    ``submitit_folder`` is the launcher's pattern (``%j`` is the job id); a relative one is taken
    from ``cwd``, the sweeper's working directory.
    """
    folder = Path(submitit_folder.replace("%j", job_id))
    if cwd and not folder.is_absolute():
        folder = Path(cwd) / folder
    return folder / f"{job_id}_0_result.pkl"
