"""``backend: api`` while the SigOpt server is out of reach for a while, with no early stopping.

Real Hydra multiruns on submitit_local in subprocesses, the real ``hydra-sigopt status``, the real
sigopt client against the stand-in server (tests/sigopt_server.py), taken down mid-sweep and
brought back on its port.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    SUBMITIT_LOCAL,
    AppRun,
    finish_example,
    run_example,
    running_job_ids,
    start_example,
    trial_states,
)
from sigopt_server import SigOptTestServer
from small_apps import write_app
from test_api_real_server import hydra_sigopt
from test_resume import _seconds

pytestmark = pytest.mark.slow

TOKEN = "tok-outage-93e1"


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}) as s:
        yield s


@pytest.fixture
def api_env(server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # a server refuses a project it does not have
    return {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": "", "SIGOPT_DEV_TOKEN": ""}


#: Trial #0 ends first, and its post meets the server down; #1 ends seconds later, during that post.
STAGGERED = """\
import time
time.sleep({0: 1.0, 1: 5.0}.get(job_num(), 0.5))
return float(cfg.x)
"""

OVERRIDES = (
    *SUBMITIT_LOCAL,
    "hydra.sweeper.backend=api",
    "hydra.sweeper.parallel_bandwidth=2",
    "hydra.sweeper.api.timeout=5",
)
SUGGESTIONS = r"/v1/experiments/\d+/suggestions"


def started_then_server_down(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], *overrides: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    """A sweep of STAGGERED with trials #0 and #1 running and the next suggestion computed ahead;
    then the server goes down (connections refused)."""
    app = write_app(tmp_path, STAGGERED, budget=4)
    proc, sweep_dir = start_example(tmp_path, *OVERRIDES, *overrides, env=api_env, app=app)
    running_job_ids(sweep_dir, 2)
    deadline = time.time() + 60
    while len(server.requests_to("POST", SUGGESTIONS)) < 3 and time.time() < deadline:
        time.sleep(0.05)  # the two trials' suggestions and the one computed ahead
    time.sleep(0.5)  # its answer is on the way
    server.go_down()
    return proc, sweep_dir, app


def when(condition: object, timeout: float = 60) -> None:
    """Wait until ``condition()`` holds (or the timeout passes: the assertion after it says what is wrong)."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:  # type: ignore[operator]
        time.sleep(0.2)


def status_lines(sweep_dir: Path, env: dict[str, str]) -> list[str]:
    done = hydra_sigopt("status", str(sweep_dir), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def listed_as_running(lines: list[str], number: int) -> bool:
    return any(re.match(rf"\s+#{number}\s+job \S+\s+running", line) for line in lines)


def posted_job_numbers(server: SigOptTestServer) -> list[int]:
    (eid,) = server.experiments
    return sorted(o["metadata"]["job_number"] for o in server.experiments[eid].observations)


def test_trials_that_end_while_the_server_is_down_are_recorded_and_posted_once_it_is_back(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The post of trial #0's result met the server down and retried (up to api.max_unreachable_s)
    in the sweep's loop, which read no trial meanwhile: trial #1, ended seconds later, stayed
    'running' in `hydra-sigopt status` and unrecorded in the journal until the server answered."""
    proc, sweep_dir, _ = started_then_server_down(tmp_path, server, api_env, "hydra.sweeper.api.max_unreachable_s=300")
    try:
        when(lambda: {0, 1} <= {n for n, (state, _, _) in trial_states(sweep_dir).items() if state == "completed"})
        states = trial_states(sweep_dir)
        lines = status_lines(sweep_dir, api_env)
    finally:
        server.come_back()
    # Both ended while the server was down: their results are in the journal (a crash now loses
    # neither), not posted yet, and the status says so rather than that they run.
    assert [(states[n][0], states[n][2]) for n in (0, 1)] == [("completed", False)] * 2, states
    assert not listed_as_running(lines, 0) and not listed_as_running(lines, 1), "\n".join(lines)
    (unposted,) = [line for line in lines if line.startswith("Unposted:")]
    assert "#0" in unposted and "#1" in unposted, unposted
    run = finish_example(proc, sweep_dir, timeout=300).assert_ok()
    assert posted_job_numbers(server) == [0, 1, 2, 3], run.output[-3000:]  # each once
    assert run.results["trials"]["completed"] == 4
    assert not any(line.startswith("Unposted:") for line in status_lines(sweep_dir, api_env))


def stopped_by_ctrl_c(proc: subprocess.Popen[str], sweep_dir: Path) -> AppRun:
    """Ctrl-C to the sweeper; its end (the server stays down: a stop must not wait for it)."""
    proc.send_signal(signal.SIGINT)
    try:
        return finish_example(proc, sweep_dir, timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"still up 120 s after its Ctrl-C, waiting for the server:\n{out[-3000:]}") from None


def test_ctrl_c_while_a_post_waits_for_the_server_stops_at_once_and_a_resume_posts_each_result_once(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Ctrl-C while the server was down and a result's post retried: the stop posted what it had
    recorded first, retrying each for a whole api.max_unreachable_s (10 minutes by default)."""
    proc, sweep_dir, app = started_then_server_down(tmp_path, server, api_env)
    try:
        when(lambda: trial_states(sweep_dir).get(0, ("",))[0] == "completed")
        time.sleep(1.0)  # its post is retrying
        stopped = stopped_by_ctrl_c(proc, sweep_dir)
    finally:
        server.come_back()
    assert stopped.proc.returncode != 0 and "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    assert "not posted yet" in stopped.output and "a resumed sweep posts" in stopped.output, stopped.output[-3000:]
    assert trial_states(sweep_dir)[0][0] == "completed"
    resumed = run_example(tmp_path, *OVERRIDES, sweep_dir=sweep_dir, env=api_env, app=app).assert_ok()
    ended = sorted(n for n, (state, _, _) in trial_states(sweep_dir).items() if state != "abandoned")
    assert posted_job_numbers(server) == ended and len(ended) == 4, (posted_job_numbers(server), resumed.trials)


#: Trial #0 ends first; the others run until they are cancelled.
ONE_QUICK = """\
import time
time.sleep(1.0 if job_num() == 0 else 300.0)
return float(cfg.x)
"""


def outage(server: SigOptTestServer, kind: str) -> None:
    """The server out of reach: gone (connections refused), answering 5xx, or holding every request
    (the client's requests time out)."""
    if kind == "down":
        server.go_down()
    elif kind == "5xx":
        server.faults.add(None, r".*", "503", times=None)
    else:
        server.freeze()


def restore(server: SigOptTestServer) -> None:
    server.faults.clear()
    server.thaw()
    server.come_back()


@pytest.mark.parametrize("kind", ["down", "5xx", "timing_out"])
def test_ctrl_c_while_a_suggestion_request_is_retried_stops_at_once_and_cancels_the_trials(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], kind: str
) -> None:
    """Ctrl-C while the request for the next suggestion retried (the server out of reach): the stop
    waited 30 s for that request, then tidied the sweep's open suggestions on the server, retrying
    for a whole api.max_unreachable_s (10 minutes by default)."""
    app = write_app(tmp_path, ONE_QUICK, budget=6)
    proc, sweep_dir = start_example(tmp_path, *OVERRIDES, env=api_env, app=app)
    try:
        running_job_ids(sweep_dir, 2)
        when(lambda: len(server.requests_to("POST", SUGGESTIONS)) >= 3)  # trials #0, #1 and the one computed ahead
        server.faults.add("POST", SUGGESTIONS, "503", times=None)
        # #0 ended and was posted; #2 took its slot, and the suggestion after it is retried.
        when(lambda: len(server.requests_to("POST", SUGGESTIONS)) >= 5)
        outage(server, kind)
        time.sleep(1.0)
        stopped = stopped_by_ctrl_c(proc, sweep_dir)
    finally:
        restore(server)
    assert stopped.proc.returncode != 0, stopped.output[-3000:]
    assert "Interrupted. Running trials were cancelled: [1, 2]" in stopped.output, stopped.output[-3000:]
    assert "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    states = trial_states(sweep_dir)
    assert {n: s[0] for n, s in states.items()} == {0: "completed", 1: "abandoned", 2: "abandoned"}, states
    assert posted_job_numbers(server) == [0]


#: Trials #0 and #1 fail after 3 s; the others run until they are cancelled, or end at once on
#: the resumed sweep (QUICK set).
TWO_FAIL = """\
import time
if job_num() in (0, 1):
    time.sleep(3.0)
    raise RuntimeError("diverged")
time.sleep(0.5 if os.environ.get("QUICK") else 300.0)
return float(cfg.x)
"""


def test_a_stop_for_failures_while_the_server_is_down_stops_at_once_and_a_resume_posts_each_result_once(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Too many trials failed while the server was down: the stop first waited for their posts,
    retried for a whole api.max_unreachable_s (10 minutes by default), before it stopped."""
    app = write_app(tmp_path, TWO_FAIL, budget=4)
    overrides = (*OVERRIDES, "hydra.sweeper.max_failure_rate=0.2")  # 2 failures of at least 5 trials: 0.4
    proc, sweep_dir = start_example(tmp_path, *overrides, env=api_env, app=app)
    try:
        running_job_ids(sweep_dir, 2)
        when(lambda: len(server.requests_to("POST", SUGGESTIONS)) >= 3)  # trials #0, #1 and the one computed ahead
        server.go_down()
        try:
            stopped = finish_example(proc, sweep_dir, timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
            raise AssertionError(f"still up 120 s on, waiting for the server:\n{out[-3000:]}") from None
    finally:
        server.come_back()
    out = stopped.output
    assert stopped.proc.returncode != 0 and "max_failure_rate=0.2 exceeded: 2 of 2 trials failed" in out, out[-3000:]
    assert "Trials [0, 1] are not posted: the engine did not answer; a resumed sweep posts them" in out, out[-3000:]
    assert "Continue this sweep with" in out, out[-3000:]
    states = trial_states(sweep_dir)
    assert [(states[n][0], states[n][2]) for n in (0, 1)] == [("failed", False)] * 2, states  # journaled, unposted
    assert posted_job_numbers(server) == []
    quick = {**api_env, "QUICK": "1"}
    resumed = run_example(tmp_path, *overrides, sweep_dir=sweep_dir, env=quick, app=app).assert_ok()
    ended = sorted(n for n, (state, _, _) in trial_states(sweep_dir).items() if state != "abandoned")
    assert posted_job_numbers(server) == ended and len(ended) == 4, (posted_job_numbers(server), resumed.trials)


#: How long the server takes to answer the sweep's request for the best assignments, after its last trial.
WRAP_UP_DELAY_S = 15.0


def test_the_elapsed_time_counts_the_sweeps_wrap_up(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The engine's last calls after the last trial (its best assignments, here 15 s on a slow
    server) and the results files were left out of `hydra-sigopt status`'s Elapsed and the sweep's
    last line: they ended at the last trial's."""
    server.faults.add("GET", r"/v1/experiments/\d+/best_assignments", ("slow", WRAP_UP_DELAY_S), times=None)
    began = time.monotonic()
    run = run_example(tmp_path, "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", env=api_env)
    wall = time.monotonic() - began
    run.assert_ok()
    (line,) = [line for line in status_lines(run.sweep_dir, api_env) if line.startswith("Elapsed:")]
    shown = _seconds(re.search(r"Elapsed:\s+(\S+)", line))
    assert WRAP_UP_DELAY_S <= shown <= wall + 1, (line, wall)  # + 1: each figure is rounded to the second
    last = [line for line in run.output.splitlines() if "Progress:" in line][-1]
    assert _seconds(re.search(r"elapsed (\S+)", last)) >= WRAP_UP_DELAY_S, last
