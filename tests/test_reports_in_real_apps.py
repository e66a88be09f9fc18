"""``report()`` in the ways real training apps call it, in a real sweep: from a worker thread, and
when the file system refuses a report (full, over quota)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SUBMITIT_LOCAL, run_example
from small_apps import write_app

from hydra_sigopt.journal import Journal
from hydra_sigopt.report_files import REPORTS_NAME, trials_root

pytestmark = pytest.mark.slow

MEDIAN = ("hydra.sweeper.early_stopping.rule=median", "hydra.sweeper.early_stopping.min_step=1")


def reported_steps(sweep_dir: Path) -> dict[int, list[int]]:
    with Journal.open(sweep_dir, readonly=True) as journal:
        found: dict[int, list[int]] = {}
        for r in journal.reports.all():
            found.setdefault(r.number, []).append(r.step)
    return found


THREADED = """\
errors = []


def train():  # the training loop runs in a worker thread, as some apps run it
    try:
        for epoch in range(1, 4):
            report(epoch, value=cfg.x / epoch)
    except BaseException as error:
        errors.append(error)


worker = threading.Thread(target=train)
worker.start()
worker.join()
if errors:
    raise errors[0]
return cfg.x / 3
"""


def test_reports_from_a_worker_thread_in_the_sweepers_process(tmp_path: Path) -> None:
    """With the basic launcher report() handed each report to the sweeper's hook on the caller's
    thread, which journaled it through the sweeper's SQLite connection: every trial failed with
    "SQLite objects created in a thread can only be used in that same thread"."""
    app = write_app(tmp_path, THREADED, helpers="import threading\n\nfrom hydra_sigopt import report\n", budget=3)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {n: [1, 2, 3] for n in range(3)}  # journaled when each trial ended
    # Said once per sweep, as the README says (it was said by each of the 3 trials).
    assert run.output.count("report() was called from another thread or process than the trial's task") == 1


# Each line is large (many metrics), so that the report file is the largest file the job writes
# and a file-size limit just past its end refuses only the report: the job's logs stay writable.
REFUSED_REPORT = """\
extra = {f"m{i}": 0.0 for i in range(400)}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) as on a full disk (ENOSPC)
folder = Path(HydraConfig.get().sweep.dir).absolute() / ".hydra_sigopt" / "trials" / str(job_num())
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
for epoch in range(1, 7):
    if epoch == 3:  # the file system takes 10 bytes of this report's line, and refuses the rest
        resource.setrlimit(resource.RLIMIT_FSIZE, ((folder / "reports.jsonl").stat().st_size + 10, hard))
    report(epoch, value=cfg.x / epoch, **extra)
    if epoch == 3:  # space again (the user freed some)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
return cfg.x / 6
"""


def test_a_report_the_file_system_refuses_leaves_the_training_and_the_next_reports_whole(tmp_path: Path) -> None:
    """A full disk or quota in the middle of a report: report() raised OSError, which ended the
    training, and the part of the line written stayed, so that the next report's line was joined to
    it and lost as well."""
    helpers = "import resource\nimport signal\nfrom pathlib import Path\n\nfrom hydra_sigopt import report\n"
    app = write_app(tmp_path, REFUSED_REPORT, helpers=helpers, budget=2)
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {n: [1, 2, 4, 5, 6] for n in range(2)}  # only step 3's is lost
    assert "a line of its report file is ignored" not in run.output
    logs = "".join(p.read_text() for p in (run.sweep_dir / ".submitit").rglob("*_log.*"))
    assert "report(step=3) could not be written to" in logs and "the training goes on" in logs


SPAWNING = """\
context = multiprocessing.get_context("spawn")  # as torch.multiprocessing.spawn and ddp_spawn start workers
worker = context.Process(target=train, args=(cfg.x,))
worker.start()
worker.join()
assert worker.exitcode == 0
return cfg.x / 3
"""
SPAWNED_WORKER = """\
import multiprocessing

from hydra_sigopt import report


def train(x):  # the training loop, in a worker process started with spawn
    for epoch in range(1, 4):
        report(epoch, value=x / epoch)
"""


def test_reports_from_a_worker_process_started_with_spawn(tmp_path: Path) -> None:
    """A spawned worker is a fresh interpreter: it inherited nothing of the trial's reporting, so its
    reports went nowhere, without a word, and no trial could be judged."""
    app = write_app(tmp_path, SPAWNING, helpers=SPAWNED_WORKER, budget=2)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {0: [1, 2, 3], 1: [1, 2, 3]}
    # With the basic launcher the sweeper cannot read them while the trial runs (Lightning's
    # ddp_spawn, on this launcher, was never stopped, without a word, its ranks waiting at each
    # rung for a verdict that could not come): said once per sweep, though each trial's worker is a
    # process of its own.
    assert run.output.count("report() was called from another thread or process than the trial's task") == 1


SPAWNING_STAGES = """\
context = multiprocessing.get_context("spawn")
for stage in range(2):  # two Trainers, as a fine-tuning stage after the first, each with ddp_spawn
    worker = context.Process(target=train, args=(cfg.x,))
    worker.start()
    worker.join()
    assert worker.exitcode == 0
return cfg.x / 6
"""
SPAWNED_STAGE = """\
import time

from hydra_sigopt import report
from hydra_sigopt.reporting import last_reported_step


def train(x):  # one stage's training loop, in a worker process started with spawn
    offset = last_reported_step() or 0  # as SigOptReport counts a second Trainer's epochs on
    for epoch in range(1, 4):
        time.sleep(0.4)  # the epoch
        report(offset + epoch, value=x / (offset + epoch))
"""


def test_spawned_workers_of_a_second_stage_count_on_and_a_first_report_waits_for_its_verdict(tmp_path: Path) -> None:
    """Lightning's ddp_spawn, as jobs: a second Trainer's workers reported steps 1, 2, 3 again (the
    sweeper dropped them all: the trial's fine-tuning was never judged, nor counted), and a worker's
    first report took 0 s by its clock, so it never waited for the verdict at the lowest rung (a
    trial stopped there trained one more epoch)."""
    app = write_app(tmp_path, SPAWNING_STAGES, helpers="import multiprocessing\n\nfrom stages import train\n", budget=2)
    (app.parent / "stages.py").write_text(SPAWNED_STAGE)  # importable: a job's __main__ is submitit's
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *MEDIAN, app=app, env={"PYTHONPATH": str(app.parent)}).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {0: [1, 2, 3, 4, 5, 6], 1: [1, 2, 3, 4, 5, 6]}
    assert [t["step"] for t in run.trials] == ["6", "6"]
    for number in (0, 1):
        lines = (trials_root(run.sweep_dir) / str(number) / REPORTS_NAME).read_text().splitlines()
        assert json.loads(lines[0])["took"] >= 0.4, lines  # its epoch, at least: what the wait is bounded by


NESTED = """\
done = subprocess.run([sys.executable, INNER, "-m", "+y=1,2", f"hydra.sweep.dir={job_dir()}/inner"])
assert done.returncode == 0, "the Hydra multirun the trial started failed"
return cfg.x
"""
INNER_APP = """\
import hydra

from hydra_sigopt import report


@hydra.main(version_base="1.3", config_path=None)
def main(cfg):  # swept by Hydra's own basic sweeper: report() must do nothing here
    for epoch in range(1, 4):
        report(epoch, value=1.0)


main()
"""


def test_a_hydra_app_a_trial_runs_does_not_report_for_the_trial(tmp_path: Path) -> None:
    """The trial's name in the environment (for spawned workers) reached a multirun of another
    sweeper started inside the trial: its jobs reported into the trial's file (where they could
    stop it), and its second job failed on "steps must increase"."""
    inner = tmp_path / "inner.py"
    inner.write_text(INNER_APP)
    helpers = f"""\
import subprocess

INNER = {str(inner)!r}


def job_dir():
    return HydraConfig.get().runtime.output_dir
"""
    app = write_app(tmp_path, NESTED, helpers=helpers, budget=1)
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"], run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {}


REPORTING = """\
for epoch in range(1, 4):
    report(epoch, value=cfg.x + 1 / epoch)
return cfg.x
"""

CHANGES_ITS_OWN_DIR = """\
os.chdir(HydraConfig.get().runtime.output_dir)  # as apps moved off Hydra 1.1's change of directory do
with open("model.txt", "w") as f:
    f.write("weights")
return cfg.x
"""


@pytest.mark.parametrize(
    ("task", "version_base"),
    [
        pytest.param(REPORTING, "", id="no-version_base-so-hydra-changes-into-the-job-dir"),
        pytest.param(CHANGES_ITS_OWN_DIR, 'version_base="1.3", ', id="the-app-changes-its-own-dir"),
    ],
)
def test_a_trial_in_another_working_dir_with_hydras_relative_sweep_dir(
    tmp_path: Path, task: str, version_base: str
) -> None:
    """Hydra's default sweep dir is relative (multirun/<date>/<time>). With the basic launcher the
    trial runs in the sweeper's process: an app without ``version_base`` (Hydra then changes into
    the job's dir, as Hydra 1.1 did) or one that changes dir itself moved the sweeper with it, and
    its journal, found by a relative path, looked deleted: the sweep died after the first trial
    with "the journal ... was deleted while the sweep ran" and two tracebacks."""
    app = write_app(tmp_path, task, helpers="from hydra_sigopt import report\n", budget=3)
    app.write_text(app.read_text().replace('version_base="1.3", ', version_base))
    relative = Path("multirun") / "day" / "time"
    run = run_example(tmp_path, *MEDIAN, app=app, sweep_dir=relative)
    sweep_dir = tmp_path / relative
    assert run.proc.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output and "deleted" not in run.output, run.output[-3000:]
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["completed"] * 3
    assert (sweep_dir / "optimization_results.yaml").exists()


TRAINS_ON = """\
import time

for epoch in range(1, 11):
    time.sleep(0.05)
    try:
        report(epoch, value=cfg.x + 1 / epoch)
    except Exception as exc:  # a catch-all, as research code has one: it swallows TrialStopped too
        print(f"epoch {epoch}: ignored {type(exc).__name__}", flush=True)
return cfg.x
"""


def test_an_app_that_trains_on_after_its_stop_in_the_sweepers_process_is_said_once(tmp_path: Path) -> None:
    """With the basic launcher nothing can cancel a trial: one whose app swallowed TrialStopped
    trained to its end, holding the sweep, without a word (on submitit its job is cancelled, and
    the sweeper says so)."""
    app = write_app(tmp_path, TRAINS_ON, helpers="from hydra_sigopt import report\n", budget=2)
    run = run_example(tmp_path, "hydra.sweeper.early_stopping.step_budget=12", app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "stopped"], run.output[-3000:]
    assert run.output.count(": ignored TrialStopped") == 9  # stopped at epoch 2, it trained on to 10
    said = "Trial #1 reports after its stop: the app caught TrialStopped and trains on"
    assert run.output.count(said) == 1 and run.output.count("reports after its stop") == 1, run.output[-3000:]


LINGERING = """\
if job_num() == 0:  # starts a thread that reports, and returns without stopping it
    threading.Thread(target=linger, daemon=True).start()
    assert lingering["bound"].wait(30)  # its first report, while this trial runs
    return cfg.x
if job_num() == 1:
    lingering["next trial"].set()
    assert lingering["reported on"].wait(30)  # it reported steps 2 and 3 while this trial runs
for epoch in range(1, 4):
    report(epoch, value=cfg.x / epoch)
return cfg.x / 3
"""
LINGERING_THREAD = """\
import threading

from hydra_sigopt import report

# The trials of the basic launcher run one after another in this one process: shared by all.
lingering = {"bound": threading.Event(), "next trial": threading.Event(), "reported on": threading.Event()}


def linger():  # a logger or prefetcher of trial 0's that outlives it
    report(1, value=999.0)
    lingering["bound"].set()
    lingering["next trial"].wait(30)
    report(2, value=999.0)
    report(3, value=999.0)
    lingering["reported on"].set()
"""


def test_a_thread_a_trial_left_running_does_not_report_into_the_trials_after_it(tmp_path: Path) -> None:
    """Basic launcher: a thread trial #0 left running reported into the trial running at the time:
    trial #1 got steps 2 and 3 of value 999, then failed on its own first report ("steps must
    increase, and the previous report's step was 3"); a stray step below its own would have been
    judged and observed as trial #1's value."""
    app = write_app(tmp_path, LINGERING, helpers=LINGERING_THREAD, budget=3)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3, run.output[-3000:]
    files = {n: [json.loads(line) for line in lines_of(run.sweep_dir, n)] for n in (0, 1, 2)}
    assert [(r["step"], r["metrics"]["value"]) for r in files[0]] == [(1, 999.0)]  # while trial 0 ran: its own
    for n in (1, 2):
        assert [r["step"] for r in files[n]] == [1, 2, 3] and all(r["metrics"]["value"] < 1 for r in files[n])
    said = "came from a thread that trial #0 left running after its task returned: it is left out"
    assert run.output.count(said) == 1, run.output[-3000:]


def lines_of(sweep_dir: Path, number: int) -> list[str]:
    return (trials_root(sweep_dir) / str(number) / REPORTS_NAME).read_text().splitlines()


FLOAT_STEPS = """\
for epoch in range(1, 4):
    report(epoch * 1.0, value=cfg.x / epoch)  # an epoch computed as a float (samples seen / dataset size)
return cfg.x / 3
"""


def test_a_float_step_with_a_whole_value_is_that_step(tmp_path: Path) -> None:
    """report(1.0, ...) failed the trial with "the step must be a whole number", 1.0 being one."""
    app = write_app(tmp_path, FLOAT_STEPS, helpers="from hydra_sigopt import report\n", budget=2)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {0: [1, 2, 3], 1: [1, 2, 3]}


SOME_STEPS_WITHOUT_THE_METRIC = """\
for epoch in range(1, 7):
    if epoch % 2:
        report(epoch, other=1.0)  # the rule judges value, reported at even epochs only
    else:
        report(epoch, value=cfg.x / epoch)
return cfg.x / 6
"""


def test_reports_of_which_only_some_lack_the_judged_metric_are_named_as_not_judged(tmp_path: Path) -> None:
    """The warning said "no trial is stopped on these reports" and advised declaring `other`, while
    the reports with `value` were judged (and stopped trials)."""
    app = write_app(tmp_path, SOME_STEPS_WITHOUT_THE_METRIC, helpers="from hydra_sigopt import report\n", budget=2)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    said = (
        "Trial #0's reports at steps 1, 3, 5 have ['other'] but not 'value', the metric early_stopping judges:"
        " those reports were not judged (reports with 'value' are)"
    )
    assert run.output.count(said) == 1, run.output[-3000:]
    assert "no trial is stopped on these reports" not in run.output


NO_STEP_WITH_THE_METRIC = """\
for epoch in range(1, 4):
    report(epoch, other=1.0 / epoch)
return cfg.x
"""


def test_reports_that_all_lack_the_judged_metric_are_said_to_stop_no_trial(tmp_path: Path) -> None:
    app = write_app(tmp_path, NO_STEP_WITH_THE_METRIC, helpers="from hydra_sigopt import report\n", budget=2)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    said = "Trial #0 reports ['other'], but early_stopping judges 'value': no trial is stopped on these reports"
    assert run.output.count(said) == 1, run.output[-3000:]


POOLED = """\
for epoch in range(1, 4):
    # the evaluation runs in the app's pool, which reports: on behalf of this trial, the task waits for it
    evaluation().submit(report, epoch, value=cfg.x / epoch).result()
return cfg.x / 3
"""
POOL = """\
from concurrent.futures import ThreadPoolExecutor

from hydra_sigopt import report

_pool = []


def evaluation():  # created at first use, then reused by every trial of this process (the basic launcher's)
    if not _pool:
        _pool.append(ThreadPoolExecutor(max_workers=2))
    return _pool[0]
"""


def test_a_thread_pool_the_trials_share_reports_for_the_trial_that_submitted_the_work(tmp_path: Path) -> None:
    """Basic launcher: a pool thread was bound to the first trial it reported for; trials #1 and #2's
    reports made in it were left out ("came from a thread that trial #0 left running"), so early
    stopping never judged them."""
    app = write_app(tmp_path, POOLED, helpers=POOL, budget=3)
    run = run_example(tmp_path, *MEDIAN, app=app).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 3, run.output[-3000:]
    assert "left running after its task returned" not in run.output, run.output[-3000:]
    assert {n: [json.loads(line)["step"] for line in lines_of(run.sweep_dir, n)] for n in range(3)} == {
        n: [1, 2, 3] for n in range(3)
    }
    assert reported_steps(run.sweep_dir) == {n: [1, 2, 3] for n in range(3)}


EPOCHS = """\
for epoch in range(1, 4):
    report(epoch, value=cfg.x / epoch)
return cfg.x / 3
"""


@pytest.mark.parametrize(
    "environment",
    [
        pytest.param({"LOCAL_RANK": "1"}, id="local-rank-of-a-single-process-job"),
        pytest.param({"SLURM_PROCID": "1", "SLURM_NTASKS": "1"}, id="slurm-procid-of-a-one-task-job"),
        pytest.param({"RANK": "2", "WORLD_SIZE": "1"}, id="rank-in-a-world-of-one"),
    ],
)
def test_a_process_alone_in_its_world_reports_whatever_rank_its_environment_gives(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    """A single-process job whose environment named a rank other than 0 (a cluster exporting
    LOCAL_RANK=1, a Slurm step's SLURM_PROCID) wrote no report: the trials trained to their end
    unjudged, with nothing in their report files."""
    app = write_app(tmp_path, EPOCHS, helpers="from hydra_sigopt import report\n", budget=2)
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *MEDIAN, app=app, env=environment).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {0: [1, 2, 3], 1: [1, 2, 3]}, run.output[-3000:]


DDP_SPAWN_RANKS = """\
import os

import torch.distributed as dist

from hydra_sigopt import report


def rank(index, x, port):  # one rank, as Lightning's ddp_spawn starts it: LOCAL_RANK only, no WORLD_SIZE
    os.environ["LOCAL_RANK"] = str(index)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=index, world_size=2)
    try:
        for epoch in range(1, 4):
            report(epoch, value=x / epoch + index)  # every rank reports; rank 1's value is off by 1
            dist.barrier()
    finally:
        dist.destroy_process_group()
"""
DDP_SPAWNING = """\
import socket

import torch.multiprocessing

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
torch.multiprocessing.spawn(rank, args=(cfg.x, port), nprocs=2)
return cfg.x / 3
"""


def test_the_ranks_of_a_process_group_without_a_world_size_variable_report_from_rank_0_only(tmp_path: Path) -> None:
    """ddp_spawn's ranks name no world size in their environment: a process alone in its world is
    rank 0, but these are not, and rank 1's reports must stay out (the process group says so)."""
    pytest.importorskip("torch.distributed")
    app = write_app(tmp_path, DDP_SPAWNING, helpers=DDP_SPAWN_RANKS, budget=2)
    run = run_example(tmp_path, *MEDIAN, app=app)  # spawn pickles by module: __main__ here.assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    for n in (0, 1):
        values = [json.loads(line)["metrics"]["value"] for line in lines_of(run.sweep_dir, n)]
        assert len(values) == 3 and all(v < 1 for v in values), values


#: A module of the app's (a submitit_local job unpickles the task by value: spawn needs rank importable).
LATE_RANK = """\
import time

import torch.distributed as dist

from hydra_sigopt import report


def rank(index, x, port):  # every rank reports each epoch, as an app without a rank check does
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=index, world_size=2)
    try:
        if index:
            time.sleep(1.0)  # rank 1 starts late (a slower process): rank 0 has reported step 1 by then
        for epoch in range(1, 4):
            report(epoch, value=x / epoch + index)  # rank 1's value is off by 1
            dist.barrier()
    finally:
        dist.destroy_process_group()
"""


def test_a_spawned_rank_that_reports_after_rank_0_is_not_refused_its_first_step(tmp_path: Path) -> None:
    """torch.multiprocessing.spawn's ranks in a submitit_local job, each calling report(): rank 1 read
    the trial's last report (rank 0's step 1, written just before) as an earlier stage's, and its own
    report(1) raised "steps must increase": every trial failed. Only rank 0's reports count."""
    pytest.importorskip("torch.distributed")
    app = write_app(tmp_path, DDP_SPAWNING, helpers="from late_rank import rank\n", budget=2)
    (app.parent / "late_rank.py").write_text(LATE_RANK)
    env = {"PYTHONPATH": f"{app.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = run_example(tmp_path, *SUBMITIT_LOCAL, *MEDIAN, app=app, env=env)
    assert "steps must increase" not in run.output, run.output[-3000:]
    run.assert_ok()
    assert [t["state"] for t in run.trials] == ["completed"] * 2, run.output[-3000:]
    assert reported_steps(run.sweep_dir) == {0: [1, 2, 3], 1: [1, 2, 3]}, run.output[-3000:]
    for n in (0, 1):
        values = [json.loads(line)["metrics"]["value"] for line in lines_of(run.sweep_dir, n)]
        assert len(values) == 3 and all(v < 1 for v in values), values  # rank 0's values only
