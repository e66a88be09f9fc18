"""Warm jobs: submitit jobs started before their trial, taking the next free slot without start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import SUBMITIT_LOCAL, AppRun, finish_example, run_example, start_example
from hydra.core.singleton import Singleton
from small_apps import write_app

from hydra_sigopt.journal import Journal
from hydra_sigopt.processes import cancel_local_jobs
from hydra_sigopt.runners.trial_job import TrialJob
from hydra_sigopt.runners.warm_pool import WarmPool, _Waiting
from hydra_sigopt.warm import NotUsed, WarmJob, claim, max_wait_for, read_claim, read_next_trial, tell_next_trial

# ------------------------------------------------------------------ the claim protocol


@pytest.mark.parametrize(
    ("timeout_min", "expected_s"),
    [(None, 60.0), (0, 60.0), (60, 60.0), (10, 30.0), (1, 3.0), (0.1, 1.0)],
)
def test_a_warm_job_waits_at_most_a_minute_and_five_percent_of_its_time_limit(
    timeout_min: float | None, expected_s: float
) -> None:
    assert max_wait_for(timeout_min) == pytest.approx(expected_s)


def test_exactly_one_of_racing_claims_wins_and_its_content_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    results: dict[int, bool] = {}
    start = threading.Barrier(8)

    def contend(i: int) -> None:
        start.wait()
        results[i] = claim(path, {"number": i, "overrides": [f"x={i}"] * 50})

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    assert read_claim(path) == {"number": winners[0], "overrides": [f"x={winners[0]}"] * 50}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


class RecordingLauncher:
    """Stands in for the launcher object in protocol tests: records the call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *args: object) -> str:
        self.calls.append(args)
        return "ran"


def warm_job(tmp_path: Path, launcher: RecordingLauncher, max_wait_s: float = 30.0, **kw: object) -> WarmJob:
    return WarmJob(launcher, str(tmp_path / "claim.json"), Singleton.get_state(), max_wait_s, 0.01, **kw)  # type: ignore[arg-type]


def test_a_warm_job_runs_the_trial_it_is_given(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    job = warm_job(tmp_path, launcher)
    threading.Timer(0.3, claim, args=(tmp_path / "claim.json", {"number": 7, "overrides": ["a=1", "b='x y'"]})).start()
    assert job() == "ran"
    assert launcher.calls[0][:4] == (["a=1", "b='x y'"], "hydra.sweep.dir", 7, "job_id_for_7")
    # Preempted or timed out while running the trial: the trial itself is requeued, as a cold job runs it.
    requeued = job.checkpoint()
    assert requeued.args == (["a=1", "b='x y'"], "hydra.sweep.dir", 7, "job_id_for_7", job.singleton_state)
    assert isinstance(requeued.function, TrialJob) and requeued.function.launcher is launcher


def test_a_warm_job_preempted_while_waiting_ends_and_its_slot_goes_to_a_fresh_job(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    job = warm_job(tmp_path, launcher)
    assert job.checkpoint() is None  # not requeued: nothing to resume
    # The sweeper arriving afterwards finds the claim taken and starts the trial in a new job.
    assert not claim(tmp_path / "claim.json", {"number": 3, "overrides": ["a=1"]})
    assert isinstance(job(), NotUsed) and not launcher.calls


def test_a_warm_job_preempted_as_its_trial_arrives_requeues_that_trial(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    job = warm_job(tmp_path, launcher)
    assert claim(tmp_path / "claim.json", {"number": 3, "overrides": ["a=1"]})
    # The signal came before the job read its claim: the trial must not be lost with the job.
    requeued = job.checkpoint()
    assert requeued.args == (["a=1"], "hydra.sweep.dir", 3, "job_id_for_3", job.singleton_state)
    assert isinstance(requeued.function, TrialJob) and requeued.function.launcher is launcher


def test_a_warm_job_gives_up_after_its_longest_wait(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    started = time.monotonic()
    result = warm_job(tmp_path, launcher, max_wait_s=0.5)()
    assert isinstance(result, NotUsed) and "no trial within" in result.reason
    assert 0.5 <= time.monotonic() - started < 5
    assert not launcher.calls
    # Its own claim is in place, so a sweeper arriving late cannot hand it a trial.
    assert not claim(tmp_path / "claim.json", {"number": 1, "overrides": []})


def test_a_warm_job_ends_when_its_sweeper_is_gone(tmp_path: Path) -> None:
    sweeper = subprocess.Popen([sys.executable, "-c", "pass"])
    sweeper.wait()
    launcher = RecordingLauncher()
    started = time.monotonic()
    result = warm_job(tmp_path, launcher, max_wait_s=60, sweeper_pid=sweeper.pid)()
    assert isinstance(result, NotUsed) and f"pid {sweeper.pid}" in result.reason
    assert time.monotonic() - started < 5
    assert not launcher.calls


def test_a_retired_warm_job_ends_without_running_anything(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    assert claim(tmp_path / "claim.json", {"stop": "the sweep ended"})
    assert warm_job(tmp_path, launcher)() == NotUsed("the sweep ended")
    assert not launcher.calls


class ComposingLauncher(RecordingLauncher):
    """A launcher whose config loader records the warm-up compositions a warm job asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.composed: list[list[str]] = []
        self.config = "the sweep's config"
        loader = SimpleNamespace(load_sweep_config=lambda config, overrides: self.composed.append(list(overrides)))
        self.hydra_context = SimpleNamespace(config_loader=loader)


def test_a_waiting_warm_job_composes_a_config_ahead(tmp_path: Path) -> None:
    # The sweeper's claim comes while the composition ahead runs: ordered, not timed (a timer raced
    # the job's start on a loaded machine, and a claim already there rightly composes nothing).
    launcher = ComposingLauncher()

    claimed: list[bool] = []

    def compose_then_claim(config: object, overrides: list[str]) -> None:
        launcher.composed.append(list(overrides))
        claimed.append(claim(tmp_path / "claim.json", {"number": 4, "overrides": ["x=0.25"]}))

    launcher.hydra_context = SimpleNamespace(config_loader=SimpleNamespace(load_sweep_config=compose_then_claim))
    assert warm_job(tmp_path, launcher, warm_up_overrides=["x=0.5"])() == "ran"
    assert launcher.composed == [["x=0.5"]] and claimed == [True]
    assert launcher.calls[0][:3] == (["x=0.25"], "hydra.sweep.dir", 4)


def test_a_warm_job_whose_trial_came_while_it_started_composes_only_the_trials_config(tmp_path: Path) -> None:
    # Slots freeing faster than jobs start: the claim is there before the job is up. Composing
    # ahead then only delays the trial (one more composition before its task runs).
    launcher = ComposingLauncher()
    assert claim(tmp_path / "claim.json", {"number": 4, "overrides": ["x=0.25"]})
    assert warm_job(tmp_path, launcher, warm_up_overrides=["x=0.5"])() == "ran"
    assert launcher.composed == []
    assert launcher.calls[0][:3] == (["x=0.25"], "hydra.sweep.dir", 4)


def test_a_warm_job_retired_while_it_started_composes_nothing(tmp_path: Path) -> None:
    launcher = ComposingLauncher()
    assert claim(tmp_path / "claim.json", {"stop": "the sweep ended"})
    assert warm_job(tmp_path, launcher, warm_up_overrides=["x=0.5"])() == NotUsed("the sweep ended")
    assert launcher.composed == [] and not launcher.calls


class LauncherOfConfigs(ComposingLauncher):
    """Composes its trial's config as Hydra's launcher does, and returns the config it ran on.
    The sweeper's claim comes while the first composition runs (no timing to race with)."""

    def __init__(self, claim_path: Path, trial: dict[str, object], fails: bool = False) -> None:
        super().__init__()
        self.claim_path, self.trial, self.fails = claim_path, trial, fails
        self.hydra_context.config_loader.load_sweep_config = self._load

    def _load(self, config: object, overrides: list[str]) -> str:
        self.composed.append(list(overrides))
        claim(self.claim_path, self.trial)
        if self.fails:
            raise ValueError("Could not override 'y'")
        return f"config of {overrides}, composition {len(self.composed)}"

    def __call__(self, *args: object) -> str:
        self.calls.append(args)
        return str(self.hydra_context.config_loader.load_sweep_config(self.config, args[0]))


def test_a_warm_job_told_its_trial_ahead_runs_it_on_the_config_it_composed_while_waiting(tmp_path: Path) -> None:
    launcher = LauncherOfConfigs(tmp_path / "claim.json", {"number": 4, "overrides": ["x=0.25"]})
    tell_next_trial(tmp_path / "claim.json", ["x=0.25"])
    assert warm_job(tmp_path, launcher, warm_up_overrides=["x=0.5"])() == "config of ['x=0.25'], composition 1"
    assert launcher.composed == [["x=0.25"]]  # once, ahead: not again when the trial came


def test_a_warm_job_told_another_trial_composes_the_one_it_gets(tmp_path: Path) -> None:
    launcher = LauncherOfConfigs(tmp_path / "claim.json", {"number": 4, "overrides": ["x=0.25"]})
    tell_next_trial(tmp_path / "claim.json", ["x=0.5"])
    assert warm_job(tmp_path, launcher)() == "config of ['x=0.25'], composition 2"
    assert launcher.composed == [["x=0.5"], ["x=0.25"]]


def test_a_warm_job_told_a_trial_that_does_not_compose_tries_it_once_and_its_trial_reports_the_error(
    tmp_path: Path,
) -> None:
    launcher = LauncherOfConfigs(tmp_path / "claim.json", {"number": 4, "overrides": ["y=1"]}, fails=True)
    tell_next_trial(tmp_path / "claim.json", ["y=1"])
    with pytest.raises(ValueError, match="Could not override 'y'"):
        warm_job(tmp_path, launcher)()
    assert launcher.composed == [["y=1"], ["y=1"]]  # ahead (quietly), then in the trial's own start


def test_the_warm_job_told_a_trial_is_the_one_that_gets_it(tmp_path: Path) -> None:
    launcher = SimpleNamespace(_EXECUTOR="local")
    pool = WarmPool(executor=None, launcher=launcher, size=2, claims_dir=tmp_path, max_wait_s=60)
    jobs = [SimpleNamespace(job_id=str(i), done=lambda: False) for i in range(2)]
    pool._waiting.extend(_Waiting(job, tmp_path / f"{job.job_id}.json") for job in jobs)
    pool.prepare([["x=1"], ["x=2"]])
    assert read_next_trial(tmp_path / "1.json") == ["x=2"]
    assert pool.take(7, ["x=2"]) is jobs[1]  # not the one waiting longest: it composed x=1
    assert read_claim(tmp_path / "1.json") == {"number": 7, "overrides": ["x=2"]}
    assert pool.take(8, ["x=3"]) is jobs[0]


def test_a_hint_the_disk_refuses_is_left_unsaid_and_the_trial_still_gets_its_job(tmp_path: Path) -> None:
    """The hint is only a head start: one the disk refuses (here its folder is a file: NotADirectoryError,
    as root ignores permissions) stopped the whole sweep with an OSError."""
    launcher = SimpleNamespace(_EXECUTOR="local")
    pool = WarmPool(executor=None, launcher=launcher, size=1, claims_dir=tmp_path, max_wait_s=60)
    job = SimpleNamespace(job_id="0", done=lambda: False)
    (tmp_path / "gone").write_text("a file where the claims' folder was")
    pool._waiting.append(_Waiting(job, tmp_path / "gone" / "0.json"))
    pool.prepare([["x=1"]])
    assert read_next_trial(tmp_path / "gone" / "0.json") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone"]  # no half-written hint left behind


# ------------------------------------------------------------------ real sweeps


def job_log(sweep_dir: Path, job_id: str) -> str:
    return "".join(p.read_text() for p in (sweep_dir / ".submitit" / job_id).glob("*_log.*"))


def live_jobs_of(sweep_dir: Path) -> list[int]:
    """Processes whose command line names this sweep dir (submitit controllers and tasks)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if str(sweep_dir) in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def wait_until_no_jobs(sweep_dir: Path, timeout: float = 10) -> list[int]:
    deadline = time.time() + timeout
    while (live := live_jobs_of(sweep_dir)) and time.time() < deadline:
        time.sleep(0.2)
    return live


@pytest.fixture(scope="module")
def six_trials_on_two_slots(tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    """One sweep with warm jobs (the default on submitit_local), read by the two tests below."""
    return run_example(
        tmp_path_factory.mktemp("warm"),
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=6",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=1.5",
    ).assert_ok()


@pytest.mark.slow
def test_warm_jobs_take_trials_and_none_is_left_behind(six_trials_on_two_slots: AppRun) -> None:
    run = six_trials_on_two_slots
    trials = run.trials
    assert len(trials) == 6 and {t["state"] for t in trials} == {"completed"}
    assert len({t["job_id"] for t in trials}) == 6
    warm_run = [
        int(t["number"]) for t in trials if f"Warm job runs trial #{t['number']}" in job_log(run.sweep_dir, t["job_id"])
    ]
    # The first trials start cold; later slots are refilled by jobs that were already waiting.
    assert warm_run and 0 not in warm_run, warm_run
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        for t in journal.trials():
            overrides = yaml.safe_load((run.sweep_dir / str(t.number) / ".hydra" / "overrides.yaml").read_text())
            assert overrides == t.overrides
    # No more warm jobs than trials left to start; any that got no trial was told so and ended,
    # and no process of this sweep outlives it.
    assert wait_until_no_jobs(run.sweep_dir) == []
    folders = [p.name for p in (run.sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    unused = [f for f in folders if f not in {t["job_id"] for t in trials}]
    assert all("Warm job not used" in job_log(run.sweep_dir, f) for f in unused)
    assert len(folders) <= 6 + 2


@pytest.mark.slow
def test_a_freed_slot_starts_its_trial_on_a_config_composed_while_the_slots_were_busy(
    six_trials_on_two_slots: AppRun,
) -> None:
    # The suggestion for the next free slot is computed while the trials run; the warm job that will
    # take it composes its config meanwhile, so the slot does not wait for Hydra's composition.
    run = six_trials_on_two_slots
    logs = {int(t["number"]): job_log(run.sweep_dir, t["job_id"]) for t in run.trials}
    ahead = [n for n, text in logs.items() if f"Warm job runs trial #{n} (its config composed ahead)" in text]
    assert ahead, {n: [line for line in text.splitlines() if "Warm job" in line] for n, text in logs.items()}
    # The trial ran on its own config: its number, its overrides, its values.
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        for trial in (journal.trial(n) for n in ahead):
            job_dir = run.sweep_dir / str(trial.number) / ".hydra"
            assert yaml.safe_load((job_dir / "hydra.yaml").read_text())["hydra"]["job"]["num"] == trial.number
            assert yaml.safe_load((job_dir / "overrides.yaml").read_text()) == trial.overrides
            config = yaml.safe_load((job_dir / "config.yaml").read_text())
            assert {k: config[k] for k in trial.assignments} == trial.assignments


@pytest.mark.slow
def test_no_warm_jobs_when_set_to_zero(workdir: Path) -> None:
    run = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "hydra.sweeper.warm_jobs=0",
        "sleep_s=1",
    ).assert_ok()
    folders = [p for p in (run.sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    assert sorted(p.name for p in folders) == sorted(t["job_id"] for t in run.trials)
    assert not (run.sweep_dir / ".submitit" / "warm").exists()


@pytest.mark.slow
def test_warm_jobs_that_gave_up_are_replaced_when_a_trial_starts_not_at_once(workdir: Path) -> None:
    run = run_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.launcher.timeout_min=1",  # a warm job waits at most 3 s (5 % of its time limit)
        "hydra.sweeper.observation_budget=3",
        "hydra.sweeper.parallel_bandwidth=1",
        "hydra.sweeper.warm_jobs=1",
        "sleep_s=8",
    ).assert_ok()
    trial_jobs = {t["job_id"] for t in run.trials}
    unused = [p.name for p in (run.sweep_dir / ".submitit").iterdir() if p.name.isdigit() and p.name not in trial_jobs]
    # One warm job per trial start with trials left, each giving up after 3 s; not a new one every
    # 3 s while a trial runs (with hour-long trials that would be a job a minute for nothing).
    assert len(unused) == 2, unused
    assert all("Warm job not used: no trial within 3 s" in job_log(run.sweep_dir, f) for f in unused)


@pytest.mark.slow
def test_warm_jobs_of_a_killed_sweeper_end_by_themselves(workdir: Path) -> None:
    proc, sweep_dir = start_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=1",
        "sleep_s=30",
        new_session=True,
    )
    claims = sweep_dir / ".submitit" / "warm"
    deadline = time.time() + 60
    while not claims.exists():  # made when the first warm job is submitted
        assert time.time() < deadline, "no warm job was started"
        time.sleep(0.2)
    time.sleep(2.0)  # the warm job is up and waiting
    assert not list(claims.glob("*.json"))  # nothing claimed yet: trial 0 still sleeps
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The trial's own job keeps running (a resumed sweep re-attaches to it); the warm job ends.
    deadline = time.time() + 15
    while time.time() < deadline and not any(claims.glob("*.json")):
        time.sleep(0.2)
    stops = [read_claim(p) for p in claims.glob("*.json")]
    assert stops and all("is gone" in s["stop"] for s in stops), stops
    with Journal.open(sweep_dir, readonly=True) as journal:
        running = [t.job_id for t in journal.trials(["running"])]
    assert len(running) == 1
    assert cancel_local_jobs(running) == running  # the sweeper's own cancel (its controller ignores SIGINT)
    assert wait_until_no_jobs(sweep_dir, timeout=15) == []


@pytest.mark.slow
def test_a_trial_in_a_warm_job_is_requeued_as_that_trial(workdir: Path) -> None:
    """submitit's time-out signal during a trial run by a warm job requeues the trial, not the wait
    (restarts on submitit_local are asked for with max_num_timeout, see test_local_limits.py)."""
    proc, sweep_dir = start_example(
        workdir,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.observation_budget=2",
        "hydra.sweeper.parallel_bandwidth=1",
        "+hydra.launcher.max_num_timeout=3",
        "sleep_s=4",
    )
    deadline = time.time() + 120
    job_id = None
    while job_id is None:
        assert time.time() < deadline, "trial 1 never started"
        try:
            with Journal.open(sweep_dir, readonly=True) as journal:
                job_id = next((t.job_id for t in journal.trials(["running"]) if t.number == 1), None)
        except Exception:
            pass
        time.sleep(0.2)
    time.sleep(1.5)
    assert "Warm job runs trial #1" in job_log(sweep_dir, job_id)
    task = int(Path(f"/proc/{job_id}/task/{job_id}/children").read_text().split()[0])
    os.kill(task, signal.SIGUSR2)
    run = finish_example(proc, sweep_dir).assert_ok()
    assert [(t["number"], t["state"], t["job_id"]) for t in run.trials][1] == ("1", "completed", job_id)
    logs = job_log(sweep_dir, job_id)
    assert "this job is timed-out" in logs and "Requeued job" in logs
    assert f"Trial #1: job {job_id} reached its time limit" in run.output
    overrides = yaml.safe_load((sweep_dir / "1" / ".hydra" / "overrides.yaml").read_text())
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert overrides == journal.trials()[1].overrides


#: The task of an app that writes down what it sees of Hydra: its config, Hydra's config (runtime,
#: job, overrides, logging), its working directory and where its log lines go.
VIEW_TASK = """
import json, logging, time
from omegaconf import OmegaConf
hc = HydraConfig.get()
logging.getLogger(__name__).info("the task ran with x=%s", cfg.x)
view = {
    "cfg": OmegaConf.to_yaml(cfg),
    "hydra": OmegaConf.to_yaml(hc),
    "cwd": os.getcwd(),
    "log_files": sorted(h.baseFilename for h in logging.getLogger().handlers if hasattr(h, "baseFilename")),
}
with open(os.path.join(hc.runtime.output_dir, "view.json"), "w") as f:
    json.dump(view, f)
time.sleep(1.5)
return cfg.x
"""

#: What differs from trial to trial in Hydra's config, by design.
PER_TRIAL = {
    ("job", "num"),
    ("job", "id"),
    ("job", "override_dirname"),
    ("runtime", "output_dir"),
    ("overrides", "task"),
}


def _shared_part(hydra_cfg: dict) -> dict:
    """Hydra's config without what differs from trial to trial."""
    shared = {section: dict(values) if isinstance(values, dict) else values for section, values in hydra_cfg.items()}
    for section, key in PER_TRIAL:
        shared[section].pop(key)
    return shared


@pytest.mark.slow
def test_a_trial_in_a_warm_job_sees_what_a_trial_in_its_own_job_sees(workdir: Path) -> None:
    app = write_app(workdir, VIEW_TASK, budget=6)
    run = run_example(workdir, *SUBMITIT_LOCAL, "hydra.sweeper.parallel_bandwidth=2", app=app).assert_ok()
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        trials = {t.number: t for t in journal.trials()}
    assert len(trials) == 6
    warm = {n for n, t in trials.items() if f"Warm job runs trial #{n}" in job_log(run.sweep_dir, str(t.job_id))}
    assert warm and 0 not in warm, warm  # trial 0 starts in its own job, as every trial would without warm jobs
    shared = {}
    for number, trial in trials.items():
        out = run.sweep_dir / str(number)
        view = json.loads((out / "view.json").read_text())
        cfg, hydra_cfg = yaml.safe_load(view["cfg"]), yaml.safe_load(view["hydra"])
        # The trial's own values: its overrides, number, job id, output dir.
        assert cfg["x"] == float(trial.overrides[-1].split("=")[1])
        assert hydra_cfg["overrides"]["task"] == trial.overrides
        assert (hydra_cfg["job"]["num"], hydra_cfg["job"]["id"]) == (number, trial.job_id)
        assert hydra_cfg["runtime"]["output_dir"] == str(out)
        assert view["cwd"] == hydra_cfg["runtime"]["cwd"] == str(workdir)  # Hydra 1.3: no chdir
        # The files Hydra writes in the job dir say the same.
        assert yaml.safe_load((out / ".hydra" / "config.yaml").read_text()) == cfg
        assert yaml.safe_load((out / ".hydra" / "overrides.yaml").read_text()) == trial.overrides
        saved = yaml.safe_load((out / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert saved["job"]["num"] == number and saved["job"]["id"] == trial.job_id
        assert saved["runtime"]["output_dir"] == str(out)
        # Its log lines go to its own log file in its job dir.
        assert view["log_files"] == [str(out / "app.log")]
        assert f"the task ran with x={cfg['x']}" in (out / "app.log").read_text()
        shared[number] = (_shared_part(hydra_cfg), _shared_part(saved))
    # Everything else is what the trial in its own job saw.
    for number in warm:
        assert shared[number] == shared[0], number
