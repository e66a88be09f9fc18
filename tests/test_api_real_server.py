"""Issue 15: ``backend: api`` as a user of a self-hosted sigopt-server runs it (real Hydra multiruns in subprocesses).

The stand-in (tests/sigopt_server.py) behaves like the real server in the ways that matter here: an
experiment shared by several sweeps, requests carried out after the client gave up, development
experiments hidden from the regular token, projects that must exist, length limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SUBMITIT_LOCAL, AppRun, run_example, running_job_ids, start_example
from sigopt_server import SigOptTestServer
from small_apps import write_app

from hydra_sigopt.crashpoints import ENV_VAR, TRIAL_POINTS
from hydra_sigopt.journal import Journal

pytestmark = pytest.mark.slow

TOKEN = "tok-real-server-0b7c"
DEV_TOKEN = "dev-tok-real-server-41aa"
API = "hydra.sweeper.backend=api"
OBSERVATIONS = r"/v1/experiments/\d+/observations"
SUGGESTIONS = r"/v1/experiments/\d+/suggestions"


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}, dev_tokens={DEV_TOKEN}) as s:
        yield s


@pytest.fixture
def api_env(server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # the sweeps inherit the environment
    return {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": "", "SIGOPT_DEV_TOKEN": ""}


def folder(root: Path, name: str) -> Path:
    (root / name).mkdir()
    return root / name


def suggestion_ids(run: AppRun) -> set[str]:
    with Journal.open(run.sweep_dir, readonly=True) as journal:
        return {t.suggestion_id for t in journal.trials() if t.suggestion_id and t.observed}


def observations_of(server: SigOptTestServer, eid: str, run: AppRun) -> list[dict[str, Any]]:
    """The server's observations that belong to this sweep's journal (by suggestion)."""
    mine = suggestion_ids(run)
    return [o for o in server.experiments[eid].observations if o["suggestion"] in mine]


def assert_linked_with_full_metadata(observations: list[dict[str, Any]]) -> None:
    for o in observations:
        assert o["suggestion"] is not None, o
        assert {"job_number", "host", "duration_s", "sweep_id"} <= set(o["metadata"]), o["metadata"]


@pytest.mark.parametrize("point", TRIAL_POINTS)
def test_an_attached_sweep_killed_and_resumed_posts_every_result_of_its_own(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], point: str
) -> None:
    """Defect 1: the rerun exited 0 and reported every trial done, but the server gained none of them.

    Killed (SIGKILL) at each crash point of the second trial, the resumed sweep leaves the server
    with exactly the other sweep's observations plus its own budget, no open suggestion, and each
    of its observations linked to its suggestion with full metadata.
    """
    first = run_example(folder(tmp_path, "a"), API, "hydra.sweeper.observation_budget=3", env=api_env).assert_ok()
    eid = str(first.results["experiment_id"])
    attached = (API, f"hydra.sweeper.api.experiment_id={eid}", "hydra.sweeper.observation_budget=4")
    b = folder(tmp_path, "b")
    killed = run_example(b, *attached, env={**api_env, ENV_VAR: f"{point}:2"})
    assert killed.proc.returncode == -signal.SIGKILL
    if point == "after_suggest":  # made on the server, not journaled: only the sweep id tells it is ours
        with Journal.open(b / "sweep", readonly=True) as journal:
            journaled = {t.suggestion_id for t in journal.trials()}
        assert [s["id"] for s in server.experiments[eid].open_suggestions if s["id"] not in journaled]
    resumed = run_example(b, *attached, env=api_env).assert_ok()
    assert resumed.results["trials"]["completed"] == 4
    exp = server.experiments[eid]
    assert len(exp.observations) == 3 + 4 and exp.open_suggestions == []
    mine = observations_of(server, eid, resumed)
    assert len(mine) == 4 and len({o["metadata"]["job_number"] for o in mine}) == 4
    assert_linked_with_full_metadata(mine)
    assert len({o["metadata"]["sweep_id"] for o in mine}) == 1
    if point == "after_observe":  # posted, not journaled as posted: found, not posted again
        assert "Trial #1's observation was posted before the restart" in resumed.output


def test_results_left_unposted_by_an_outage_keep_their_suggestions_and_metadata(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Defect 2: resume deleted their open suggestions and posted them by assignments with {job_number} only."""
    overrides = (API, "hydra.sweeper.observation_budget=3", "hydra.sweeper.api.max_unreachable_s=2")
    server.faults.add("POST", OBSERVATIONS, "503", times=None)
    stopped = run_example(tmp_path, *overrides, env=api_env)
    assert stopped.proc.returncode != 0 and stopped.trials[0]["state"] == "completed"
    server.faults.clear()
    resumed = run_example(tmp_path, *overrides, env=api_env).assert_ok()
    (eid,) = server.experiments
    exp = server.experiments[eid]
    assert len(exp.observations) == 3 and exp.open_suggestions == []
    assert_linked_with_full_metadata(exp.observations)
    assert "Trial #0 finished before the restart; posting its observation now" in resumed.output


def test_suggestion_creates_the_client_gave_up_on_leave_no_open_suggestion(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Defect 3: the server carries out a timed-out create; the sweep ended with unused open suggestions."""
    server.faults.add("POST", SUGGESTIONS, ("late", 2.5), times=3)
    run = run_example(
        tmp_path, API, "hydra.sweeper.observation_budget=3", "hydra.sweeper.api.timeout=1", env=api_env
    ).assert_ok()
    exp = server.experiments[str(run.results["experiment_id"])]
    assert len(exp.suggestions) >= 6  # three suggestions were made for requests the client gave up on
    assert len(exp.observations) == 3 and exp.open_suggestions == []


def test_a_frozen_server_leaves_no_open_suggestion_once_the_sweep_ends(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Defect 3 as seen: an API frozen for a while with a short api.timeout left unused open suggestions."""

    def freeze_after_the_first_result() -> None:
        deadline = time.time() + 120
        while not any(e.observations for e in server.experiments.values()) and time.time() < deadline:
            time.sleep(0.02)
        server.freeze()
        time.sleep(4)
        server.thaw()

    freezer = threading.Thread(target=freeze_after_the_first_result, daemon=True)
    freezer.start()
    run = run_example(
        tmp_path, API, "hydra.sweeper.observation_budget=3", "hydra.sweeper.api.timeout=1", env=api_env
    ).assert_ok()
    freezer.join()
    exp = server.experiments[str(run.results["experiment_id"])]
    assert len(exp.observations) == 3 and exp.open_suggestions == []
    assert "retrying" in run.output  # the freeze was felt


def test_ctrl_c_leaves_no_open_suggestion_the_journal_does_not_own(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Defect 3: after Ctrl-C the cancelled trials' suggestions stayed open (pending work to the server)."""
    overrides = (
        *SUBMITIT_LOCAL,
        API,
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=60",
        "sleep_jobs=[0,1]",  # the resumed sweep's trials are numbered from 2 on
    )
    proc, sweep_dir = start_example(tmp_path, *overrides, env=api_env)
    running_job_ids(sweep_dir, 2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Interrupted. Running trials were cancelled" in output
    (eid,) = server.experiments
    assert server.experiments[eid].open_suggestions == []
    resumed = run_example(tmp_path, *overrides, env=api_env).assert_ok()
    assert len(server.experiments[eid].observations) == 4 and server.experiments[eid].open_suggestions == []
    assert resumed.results["trials"]["completed"] == 4


def open_suggestion_of_another_sweep(server: SigOptTestServer, eid: str) -> str:
    """An open suggestion another sweep attached to the experiment holds (tagged with its sweep id)."""
    from hydra_sigopt.sigopt_client import import_sigopt

    connection = import_sigopt().Connection(client_token=TOKEN)
    connection.set_api_url(server.url)
    return str(connection.experiments(eid).suggestions().create(metadata={"sweep_id": "another-sweep"}).id)


def hydra_sigopt(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hydra_sigopt.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_kill_after_the_sweeper_died_deletes_its_open_suggestions_and_no_other_sweeps(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """After ``kill -9`` of the sweeper, ``hydra-sigopt kill`` cancelled the jobs but left the sweep's
    suggestions open on the server (pending work to it) until a resume."""
    first = run_example(folder(tmp_path, "a"), API, "hydra.sweeper.observation_budget=2", env=api_env).assert_ok()
    eid = str(first.results["experiment_id"])
    theirs = open_suggestion_of_another_sweep(server, eid)
    overrides = (
        *SUBMITIT_LOCAL,
        API,
        f"hydra.sweeper.api.experiment_id={eid}",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.parallel_bandwidth=2",
        "sleep_s=60",
        "sleep_jobs=[0]",  # trial #1's job, whose id the journal never learns, ends soon by itself
    )
    # Waited for by its exit, not its output: the orphaned job holds the output pipe until it is cancelled.
    proc, sweep_dir = start_example(folder(tmp_path, "b"), *overrides, env={**api_env, ENV_VAR: "after_submit:2"})
    assert proc.wait(timeout=300) == -signal.SIGKILL
    assert len(server.experiments[eid].open_suggestions) == 3  # the dead sweeper's two, and theirs
    done = hydra_sigopt("kill", str(sweep_dir), env=api_env)
    proc.communicate(timeout=60)
    assert done.returncode == 0, done.stderr
    assert "trial #0 job" in done.stdout and "cancelled" in done.stdout, done.stdout
    assert [s["id"] for s in server.experiments[eid].open_suggestions] == [theirs], done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_kill_with_the_server_out_of_reach_says_so_in_one_line_and_still_kills(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    overrides = (*SUBMITIT_LOCAL, API, "hydra.sweeper.observation_budget=2")
    killed = run_example(tmp_path, *overrides, env={**api_env, ENV_VAR: "after_record_trial:1"})
    assert killed.proc.returncode == -signal.SIGKILL
    server.stop()
    done = hydra_sigopt("kill", str(killed.sweep_dir), env=api_env)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "open suggestions" in line]
    assert "were not deleted" in line and "a resumed sweep does it" in line
    with Journal.open(killed.sweep_dir, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["abandoned"]


def test_kill_with_the_server_out_of_reach_shows_one_line_in_the_terminal_not_one_per_retry(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The README promises one line for a server out of reach; the terminal (stderr too) showed a
    "SigOpt API: list open suggestions failed (ConnectionError: ...); retrying in ..." line for each of
    the command's 5 retries before it."""
    killed = run_example(tmp_path, API, "hydra.sweeper.observation_budget=2", env={**api_env, ENV_VAR: "in_task:1"})
    assert killed.proc.returncode == -signal.SIGKILL
    server.stop()
    done = hydra_sigopt("kill", str(killed.sweep_dir), env=api_env)
    assert done.returncode == 0, done.stderr
    about_the_server = [line for line in (done.stdout + done.stderr).splitlines() if "open suggestions" in line]
    assert len(about_the_server) <= 2, about_the_server  # what it tries now and for how long; the outcome
    (outcome,) = [line for line in done.stdout.splitlines() if "open suggestions" in line]
    assert "were not deleted" in outcome and "a resumed sweep does it" in outcome, outcome
    assert all("hydra-sigopt gives up after 10 s" in line for line in about_the_server), about_the_server


def test_commands_with_the_server_out_of_reach_name_their_own_wait_not_a_setting_the_sweep_did_not_have(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """A sweep with api.max_unreachable_s=3, the server down: kill and delete said
    "(api.max_unreachable_s=10)", a value the sweep never had (the command's own patience)."""
    overrides = (API, "hydra.sweeper.observation_budget=2", "hydra.sweeper.api.max_unreachable_s=3")
    killed = run_example(tmp_path, *overrides, env={**api_env, ENV_VAR: "after_record_trial:1"})
    assert killed.proc.returncode == -signal.SIGKILL
    server.stop()
    kill = hydra_sigopt("kill", str(killed.sweep_dir), env=api_env)
    delete = hydra_sigopt("delete", "--yes", str(killed.sweep_dir), env=api_env)
    assert kill.returncode == 0 and delete.returncode != 0, kill.stderr + delete.stderr
    (kill_line,) = [line for line in kill.stdout.splitlines() if "open suggestions" in line]
    (delete_line,) = [line for line in delete.stderr.splitlines() if "unreachable" in line]
    for line in (kill_line, delete_line):
        assert "max_unreachable_s=10" not in line, line
        assert "(hydra-sigopt gives up after 10 s)" in line, line
    assert "hydra-sigopt delete --local-only" in delete_line, delete_line


def test_kill_and_local_delete_of_a_finished_sweep_leave_the_gone_server_alone(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The server taken down after the sweep ended (the hosted service gone, a self-hosted one
    retired): ``hydra-sigopt kill`` and ``delete --local-only`` tried to release open suggestions the
    sweep's wrap-up had released already, and each printed five retries and a failure, 9 s later."""
    run = run_example(tmp_path, API, "hydra.sweeper.observation_budget=2", env=api_env).assert_ok()
    server.stop()
    for args in (("kill",), ("delete", "--yes", "--local-only")):
        done = hydra_sigopt(*args, str(run.sweep_dir), env=api_env)
        assert done.returncode == 0, done.stderr
        assert "SigOpt" not in done.stdout + done.stderr, (args, done.stdout + done.stderr)
    assert not run.sweep_dir.exists()


def test_kill_after_a_detached_stop_releases_the_suggestions_of_the_trials_it_cancels(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """A reviewer: Ctrl-C with on_interrupt: detach left two trials running, their suggestions open
    (the journal needs them); hydra-sigopt kill then cancelled the trials, and skipped the release
    because that wrap-up had released the others: the two stayed open on the server for good."""
    import signal

    overrides = (*SUBMITIT_LOCAL, API, "hydra.sweeper.observation_budget=4", "hydra.sweeper.parallel_bandwidth=2")
    proc, sweep_dir = start_example(
        tmp_path, *overrides, "hydra.sweeper.on_interrupt=detach", "sleep_s=60", env=api_env
    )
    jobs = running_job_ids(sweep_dir, 2)
    proc.send_signal(signal.SIGINT)
    # Waited for by its exit, not its output: the jobs left running hold the output pipe.
    assert proc.wait(timeout=120) != 0
    with Journal.open(sweep_dir, readonly=True) as journal:
        assert [t.state for t in journal.trials()] == ["running", "running"]
    (eid,) = server.experiments
    assert len(server.experiments[eid].open_suggestions) == 2  # the running trials' own
    done = hydra_sigopt("kill", str(sweep_dir), env=api_env)
    output, _ = proc.communicate(timeout=60)
    assert "were left running (on_interrupt: detach)" in output, output[-2000:]
    for number, job_id in jobs.items():
        assert f"trial #{number} job {job_id}: cancelled" in done.stdout, done.stdout + done.stderr
    assert server.experiments[eid].open_suggestions == [], done.stdout


def test_delete_of_a_dev_run_sweep_uses_the_development_token(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Defect 4: delete used the regular token; the server hides development experiments from it (403)."""
    env = {**api_env, "SIGOPT_DEV_TOKEN": DEV_TOKEN}
    run = run_example(tmp_path, API, "hydra.sweeper.dev_run=true", "hydra.sweeper.observation_budget=2", env=env)
    eid = str(run.assert_ok().results["experiment_id"])
    assert server.experiments[eid].development
    done = hydra_sigopt("delete", "--yes", str(run.sweep_dir), env=env)
    assert done.returncode == 0, done.stderr
    assert server.experiments[eid].deleted and not run.sweep_dir.exists()
    assert DEV_TOKEN not in done.stdout + done.stderr


def test_delete_of_a_dev_run_sweep_without_the_development_token_says_which_token_in_one_line(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """With only the regular token at hand, delete said the server "refused the token from
    SIGOPT_API_TOKEN (HTTP 403) ...; check the token and the URL": the token was fine, for another
    kind of experiment (the server hides a development one from the regular token)."""
    run = run_example(
        tmp_path,
        API,
        "hydra.sweeper.dev_run=true",
        "hydra.sweeper.observation_budget=2",
        env={**api_env, "SIGOPT_DEV_TOKEN": DEV_TOKEN},
    )
    eid = str(run.assert_ok().results["experiment_id"])
    assert server.experiments[eid].development
    done = hydra_sigopt("delete", "--yes", str(run.sweep_dir), env=api_env)  # SIGOPT_DEV_TOKEN empty
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"SigOpt experiment {eid} was created with the development token" in line, line
    assert "SIGOPT_DEV_TOKEN" in line and "SIGOPT_ENV_FILE" in line, line
    assert "Nothing was deleted" in line and "check the token" not in line, line
    assert not server.experiments[eid].deleted and (run.sweep_dir / "trials.csv").is_file()
    assert DEV_TOKEN not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr


def test_a_project_that_does_not_exist_is_refused_before_anything_is_written(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    run = run_example(tmp_path, API, env={**api_env, "SIGOPT_PROJECT": "no-such-project"})
    assert run.proc.returncode != 0
    assert "SIGOPT_PROJECT (environment variable): project 'no-such-project' does not exist at" in run.output
    assert "Traceback" not in run.output
    assert not run.sweep_dir.exists() and server.experiments == {}


FAILING_TASK = """
import time
time.sleep(0.2)
if job_num() == 1:
    raise RuntimeError("diverged: " + "x" * 3000)
return cfg.x
"""


def test_failed_observations_carry_host_duration_and_a_reason_cut_to_the_servers_limit(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    app = write_app(tmp_path, FAILING_TASK, budget=3)
    run = run_example(tmp_path, API, "hydra.sweeper.dev_run=false", app=app, env=api_env).assert_ok()
    exp = server.experiments[str(run.results["experiment_id"])]
    assert [o["failed"] for o in exp.observations] == [False, True, False]
    assert_linked_with_full_metadata(exp.observations)
    failed = exp.observations[1]["metadata"]
    assert failed["duration_s"] >= 0.2
    assert failed["failure_reason"].startswith("RuntimeError: diverged: xxx") and len(failed["failure_reason"]) <= 500
