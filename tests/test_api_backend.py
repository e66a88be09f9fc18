"""backend: api through the real sigopt client over real HTTP, against tests/sigopt_server.py."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SUBMITIT_LOCAL, run_example
from sigopt_server import SigOptTestServer
from small_apps import write_app

from hydra_sigopt.backends.api import ApiBackend, ApiError, ApiUnreachableError
from hydra_sigopt.crashpoints import ENV_VAR
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.secrets import (
    MissingTokenError,
    mask_credential_overrides,
    redact,
    resolve_token,
    tokens_withheld,
    withheld_tokens,
)
from hydra_sigopt.space import build_space
from hydra_sigopt.tasks import Task

TOKEN = "tok-5f2d9c1e-never-written-anywhere"


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN, "dev-" + TOKEN}) as s:
        yield s


@pytest.fixture
def api_env(server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SIGOPT_ENV_FILE", raising=False)
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # a server refuses a project it does not have
    return env


def definition(budget: int = 5) -> ExperimentDefinition:
    space = build_space({"x": "interval(0, 1)", "opt": "choice(sgd, adam)"})
    return ExperimentDefinition("t", space, parse_metrics([{"name": "y", "objective": "minimize"}]), budget, 3)


def backend(**settings: object) -> ApiBackend:
    return ApiBackend(settings={"timeout": 5, "max_unreachable_s": 5, **settings}, sleep=lambda s: None)


def test_parallel_suggestions_come_from_the_server(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    b = backend()
    eid = b.start(definition())
    suggestions = [b.suggest([]) for _ in range(3)]
    assert len({s.id for s in suggestions}) == 3
    assert len(server.experiments[eid].open_suggestions) == 3
    b.observe(suggestions[0], [MetricValue("y", 1.0)], metadata={"job_number": 0, "host": "h"})
    observation = server.experiments[eid].observations[0]
    assert observation["metadata"]["job_number"] == 0 and observation["suggestion"] == suggestions[0].id
    # The experiment records where it came from; never the token.
    metadata = server.experiments[eid].data["metadata"]
    assert {"command", "host", "hydra_sigopt_sweeper"} <= set(metadata)
    assert TOKEN not in str(server.experiments[eid].data)


def test_bad_token_is_one_clear_line_without_the_token(
    server: SigOptTestServer, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGOPT_API_TOKEN", "wrong-" + TOKEN)
    with pytest.raises(ApiError) as info:
        backend().start(definition())
    message = str(info.value)
    assert "refused the token from SIGOPT_API_TOKEN (HTTP 401)" in message and server.url in message
    assert TOKEN not in message and "\n" not in message


def test_403_is_about_the_token_too(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    server.faults.add("POST", r"/v1/experiments", "403")
    with pytest.raises(ApiError, match=r"refused the token .*HTTP 403"):
        backend().start(definition())


def test_unknown_experiment_id_is_named(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    with pytest.raises(ApiError, match=r"experiment 987 was not found at .* \(HTTP 404\).*api.experiment_id"):
        backend(experiment_id="987").start(definition())


def test_attach_to_an_existing_experiment(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    first = backend()
    eid = first.start(definition())
    attached = backend(experiment_id=eid)
    assert attached.start(definition()) == eid
    attached.observe(attached.suggest([]), [MetricValue("y", 2.0)], metadata={"job_number": 0})
    assert len(server.experiments[eid].observations) == 1
    other = ExperimentDefinition("t", build_space({"z": "interval(0,1)"}), definition().metrics, 5, 1)
    with pytest.raises(ApiError, match=r"has parameters \['opt', 'x'\].*declares parameters \['z'\]"):
        backend(experiment_id=eid).start(other)


def test_attach_refuses_an_experiment_with_other_tasks(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    """The server picks each suggestion's task. Attached without the experiment's tasks, a sweep
    trained every trial in full and posted cheap-task results; with other costs, one task's name
    mixed two trainings; with tasks on a plain experiment, the sweep failed at its first suggestion."""
    short, full = Task("short", 0.25, ("epochs=3",)), Task("full", 1.0)
    multitask = dataclasses.replace(definition(), tasks=(short, full))
    multitask_id = backend().start(multitask)
    plain_id = backend().start(definition())
    cases = [
        (multitask_id, definition(), r"has tasks full \(cost 1\), short \(cost 0.25\), but the sweep declares none"),
        (
            multitask_id,
            dataclasses.replace(multitask, tasks=(Task("short", 0.5), full)),
            r"declares full \(cost 1\), short \(cost 0.5\)",
        ),
        (plain_id, multitask, r"has tasks none, but the sweep declares full \(cost 1\), short \(cost 0.25\)"),
    ]
    for experiment_id, declared, says in cases:
        with pytest.raises(ApiError, match=says):
            backend(experiment_id=experiment_id).start(declared)
    assert backend(experiment_id=multitask_id).start(multitask) == multitask_id  # the same tasks, in any order
    assert (
        backend(experiment_id=multitask_id).start(dataclasses.replace(multitask, tasks=(full, short))) == multitask_id
    )


def test_connection_refused_before_the_experiment_exists_fails_at_once_with_the_reason(
    api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: it was retried as "unreachable" for max_unreachable_s (600 s by default)."""
    monkeypatch.setenv("SIGOPT_API_URL", "http://127.0.0.1:9/api")  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"could not create the experiment at http://127.0.0.1:9/api: .*refused"):
        ApiBackend(settings={"timeout": 1, "max_unreachable_s": 600}).start(definition())
    assert time.monotonic() - started < 5


def unreachable_for(error: pytest.ExceptionInfo[ApiUnreachableError]) -> float:
    """The time the error says the API was out of reach."""
    found = re.search(r"has been unreachable for ([0-9.]+) s \(api.max_unreachable_s=2.5\)", str(error.value))
    assert found, str(error.value)
    return float(found.group(1))


def test_an_outage_mid_sweep_gives_up_at_max_unreachable_not_later(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 15: a limit of 8 s was reported as 16 s (the last pause slept past the limit).

    Refused requests fail at once: the last one is sent while a request's least time (1 s here)
    is still left, so the sweep stops at most that much before the limit.
    """
    b = ApiBackend(settings={"timeout": 1, "max_unreachable_s": 2.5})
    b.start(definition())
    server.stop()  # refused connections from now on
    started = time.monotonic()
    with pytest.raises(ApiUnreachableError) as info:
        b.suggest([])
    wall = time.monotonic() - started
    assert 1.5 <= wall < 2.6
    assert unreachable_for(info) == pytest.approx(wall, abs=0.2)


def test_a_frozen_server_is_given_up_on_at_max_unreachable_counted_from_the_first_request(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 15: with requests that time out, the limit was counted from the end of the first one and
    the last request ran a whole timeout past it (timeout 3, limit 8: "11 s" after 14 s)."""
    b = ApiBackend(settings={"timeout": 1, "max_unreachable_s": 2.5})
    b.start(definition())
    server.freeze()  # every request waits past the client's timeout
    started = time.monotonic()
    with pytest.raises(ApiUnreachableError) as info:
        b.suggest([])
    wall = time.monotonic() - started
    assert 2.4 <= wall < 3.5
    assert unreachable_for(info) == pytest.approx(wall, abs=0.2)
    server.thaw()
    assert b.connection.impl.driver.timeout == 1  # the cut timeout is not kept for the next call


def test_429_is_retried_by_the_client(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    b = backend()
    b.start(definition())
    server.faults.add("POST", r"/v1/experiments/\d+/suggestions", "429")
    assert b.suggest([]).id
    assert len(server.requests_to("POST", r"/v1/experiments/\d+/suggestions")) == 2


def test_5xx_is_retried_with_backoff(
    server: SigOptTestServer, api_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pauses: list[float] = []
    b = ApiBackend(settings={"timeout": 5, "max_unreachable_s": 600}, sleep=pauses.append)
    b.start(definition())
    server.faults.add("POST", r"/v1/experiments/\d+/suggestions", "500", times=3)
    server.faults.add("POST", r"/v1/experiments/\d+/suggestions", "503", times=1)
    with caplog.at_level(logging.WARNING):
        assert b.suggest([]).id
    assert pauses == [0.5, 1.0, 2.0, 4.0]  # capped exponential backoff
    assert "create a suggestion failed (HTTP 500); retrying" in caplog.text


def test_dropped_observation_post_is_checked_on_the_server_not_recorded_twice(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    b = backend()
    eid = b.start(definition())
    s = b.suggest([])
    server.faults.add("POST", r"/v1/experiments/\d+/observations", "drop_after_commit")
    oid = b.observe(s, [MetricValue("y", 1.0)], metadata={"job_number": 7})
    observations = server.experiments[eid].observations
    assert len(observations) == 1 and str(observations[0]["id"]) == oid
    # Dropped before the server recorded it: sent again, recorded once.
    s2 = b.suggest([])
    server.faults.add("POST", r"/v1/experiments/\d+/observations", "drop_before_commit")
    b.observe(s2, [MetricValue("y", 2.0)], metadata={"job_number": 8})
    assert len(server.experiments[eid].observations) == 2


def test_slow_answer_past_the_timeout_is_not_recorded_twice(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    b = ApiBackend(settings={"timeout": 0.5, "max_unreachable_s": 30}, sleep=lambda s: __import__("time").sleep(1))
    eid = b.start(definition())
    s = b.suggest([])
    server.faults.add("POST", r"/v1/experiments/\d+/observations", ("slow", 1.0))
    b.observe(s, [MetricValue("y", 1.0)], metadata={"job_number": 1})
    assert len(server.experiments[eid].observations) == 1


def test_resume_reuses_known_open_suggestions_and_deletes_the_others(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    first = backend()
    eid = first.start(definition())
    known, stray = first.suggest([]), first.suggest([])
    posted = first.suggest([])
    oid = first.observe(posted, [MetricValue("y", 1.0)], metadata={"job_number": 0})
    second = backend()
    assert second.start(definition(), resume_id=eid) == eid
    second.restore([], open_suggestion_ids=[known.id])
    assert [s["id"] for s in server.experiments[eid].open_suggestions] == [known.id]
    assert stray.id in server.experiments[eid].deleted_suggestions
    # A result posted just before a crash (the journal did not learn it) is found, not posted again.
    assert second.find_observation(posted) == oid
    assert second.observe(posted, [MetricValue("y", 3.0)], metadata={"job_number": 0}) == oid
    assert len(server.experiments[eid].observations) == 1


def test_token_sources(tmp_path: Path) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text("# tokens\nexport SIGOPT_TOKEN='real-token'\nSIGOPT_DEV_TOKEN=dev-token\n")
    assert resolve_token(environ={"SIGOPT_API_TOKEN": "t"}).token == "t"
    creds = resolve_token(environ={"SIGOPT_ENV_FILE": str(env_file)})
    assert creds.token == "real-token" and creds.source == f"SIGOPT_TOKEN in {env_file}"
    assert resolve_token(dev_run=True, environ={"SIGOPT_ENV_FILE": str(env_file)}).token == "dev-token"
    assert "real-token" not in repr(creds)
    with pytest.raises(MissingTokenError, match="SIGOPT_API_TOKEN"):
        resolve_token(environ={"HOME": str(tmp_path)})


@pytest.mark.parametrize(
    "line",
    [
        "SIGOPT_TOKEN=real-token  # the lab's token",
        "SIGOPT_TOKEN='real-token' # quoted, then a comment",
        'export SIGOPT_TOKEN="real-token"\t# after a tab',
        "SIGOPT_TOKEN=real-token",
    ],
)
def test_a_comment_after_the_token_in_the_env_file_is_not_part_of_it(tmp_path: Path, line: str) -> None:
    """As a shell reads it: the comment was sent to the server as part of the token, which refused it."""
    env_file = tmp_path / "sigopt.env"
    env_file.write_text(line + "\n")
    assert resolve_token(environ={"SIGOPT_ENV_FILE": str(env_file)}).token == "real-token"


def test_a_hash_inside_a_value_is_kept(tmp_path: Path) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text("SIGOPT_TOKEN=ab#cd\nSIGOPT_DEV_TOKEN='x # y'\n")
    assert resolve_token(environ={"SIGOPT_ENV_FILE": str(env_file)}).token == "ab#cd"
    assert resolve_token(dev_run=True, environ={"SIGOPT_ENV_FILE": str(env_file)}).token == "x # y"


def test_an_empty_value_with_a_comment_is_empty_and_an_unclosed_quote_is_dropped(tmp_path: Path) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text('SIGOPT_DEV_TOKEN= # none yet\nSIGOPT_TOKEN="real-token\n')
    assert resolve_token(dev_run=True, environ={"SIGOPT_ENV_FILE": str(env_file)}).token == "real-token"


def test_tokens_are_withheld_from_the_environment_while_a_sweep_runs_and_masked(tmp_path: Path) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text("SIGOPT_TOKEN=from-file\nSIGOPT_DEV_TOKEN=dev-from-file\n")
    env = {"SIGOPT_API_TOKEN": "tok", "SIGOPT_ENV_FILE": str(env_file), "SIGOPT_API_URL": "http://x/api"}
    before = dict(env)
    with tokens_withheld(also=["from-config"], environ=env) as tokens:
        assert env == {"SIGOPT_API_URL": "http://x/api"}
        assert tokens == {"tok", "from-file", "dev-from-file", "from-config"} == withheld_tokens()
        assert redact("tok dev-from-file from-config", *tokens) == "*** *** ***"
    assert env == before and withheld_tokens() == set()


def test_credential_looking_overrides_are_masked_the_rest_kept() -> None:
    argv = ["train.py", "-m", "+sigopt_token=a", "~db.password=b", "++x.API_KEY=c", "lr=0.1", "secret_sauce", "token"]
    masked = ["train.py", "-m", "+sigopt_token=***", "~db.password=***", "++x.API_KEY=***", "lr=0.1"]
    assert mask_credential_overrides(argv) == [*masked, "secret_sauce", "token"]


@pytest.mark.slow
def test_token_in_hydra_config_is_refused_before_anything_is_written(tmp_path: Path, api_env: dict[str, str]) -> None:
    run = run_example(tmp_path, "hydra.sweeper.backend=api", f"hydra.sweeper.api.token={TOKEN}")
    assert run.proc.returncode != 0
    assert "hydra.sweeper.api.token: looks like a credential and is refused" in run.output
    assert "SIGOPT_API_TOKEN" in run.output
    assert not run.sweep_dir.exists()


def _files_containing(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.slow
def test_example_sweep_through_the_api_with_submitit_local_leaks_no_token(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    run = run_example(
        tmp_path,
        *SUBMITIT_LOCAL,
        "hydra.sweeper.backend=api",
        "hydra.sweeper.observation_budget=5",
        "hydra.sweeper.parallel_bandwidth=2",
        env=api_env,
    ).assert_ok()
    eid = str(run.results["experiment_id"])
    observations = server.experiments[eid].observations
    assert len(observations) == 5 and run.results["engine_observations"] == 5
    assert sorted(o["metadata"]["job_number"] for o in observations) == [0, 1, 2, 3, 4]
    assert all(o["metadata"].get("job_id") and o["metadata"].get("host") for o in observations)
    # The server's best agrees with the sweep's own.
    assert run.results["engine_best"][0]["values"]["mse"] == pytest.approx(run.results["best_value"])
    # The token is in no file of the sweep dir (configs, logs, journal, results) and not in the output.
    assert _files_containing(run.sweep_dir, TOKEN) == []
    assert TOKEN not in run.output


LEAKY_TASK = """
print("my environment:", dict(os.environ))
if job_num() % 2 == 1:
    raise RuntimeError(f"my environment: {dict(os.environ)}")
return cfg.x
"""


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_trials_get_no_token_so_an_app_showing_its_environment_leaks_none(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], launcher: str
) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text(f"SIGOPT_TOKEN=file-{TOKEN}\nSIGOPT_DEV_TOKEN=filedev-{TOKEN}\n")
    # Every place a token is read from at once; the dev token in the environment is the one used (dev_run).
    env = {**api_env, "SIGOPT_DEV_TOKEN": "dev-" + TOKEN, "SIGOPT_ENV_FILE": str(env_file)}
    app = write_app(tmp_path, LEAKY_TASK)
    launcher_overrides = SUBMITIT_LOCAL if launcher == "submitit_local" else ()
    run = run_example(tmp_path, *launcher_overrides, "hydra.sweeper.backend=api", app=app, env=env).assert_ok()
    assert [t["state"] for t in run.trials] == ["completed", "failed", "completed", "failed"]
    assert "my environment: {" in run.trials[1]["failure_reason"]
    assert len(server.experiments[str(run.results["experiment_id"])].observations) == 4
    # Not in the console, the journal, trials.csv, the job logs, submitit's logs or its result pickles.
    assert _files_containing(run.sweep_dir, TOKEN) == []
    assert TOKEN not in run.output


@pytest.mark.slow
def test_a_password_in_the_api_url_is_kept_like_a_token(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGOPT_API_URL=http://user:pw123@host/api (a server behind basic auth): a connection error
    printed user:pw123 as it was; the journal kept it, and every trial's environment had it."""
    password = "pw123-" + TOKEN[:8]
    url = server.url.replace("://", f"://user:{password}@")
    env = {**api_env, "SIGOPT_API_URL": url}
    app = write_app(tmp_path, LEAKY_TASK)
    run = run_example(tmp_path, "hydra.sweeper.backend=api", app=app, env=env).assert_ok()
    assert "my environment: {" in run.trials[1]["failure_reason"]
    assert _files_containing(run.sweep_dir, password) == [] and password not in run.output
    server.stop()  # the error names the URL: masked
    more_overrides = ("hydra.sweeper.observation_budget=6", "hydra.sweeper.api.max_unreachable_s=1")
    more = run_example(tmp_path, "hydra.sweeper.backend=api", *more_overrides, app=app, env=env)
    assert more.proc.returncode != 0 and "user:***@127.0.0.1" in more.output, more.output[-3000:]
    assert password not in more.output and _files_containing(run.sweep_dir, password) == []
    (tmp_path / "other").mkdir()
    configured = run_example(
        tmp_path / "other", "hydra.sweeper.backend=api", f"hydra.sweeper.api.api_url={url}", app=app, env=api_env
    )
    assert configured.proc.returncode != 0 and "set SIGOPT_API_URL instead" in configured.output
    assert not configured.sweep_dir.exists() and password not in configured.output
    # requests repeats a URL it cannot use in its error (here its port): as hydra-sigopt delete meets it.
    monkeypatch.setenv("SIGOPT_API_URL", f"https://u:{password}@localhost:99999/api")
    unusable = ApiBackend(settings={"timeout": 1, "max_unreachable_s": 1})
    unusable.attach("1")
    with pytest.raises(Exception) as error:
        unusable.delete()
    assert "u:***@localhost:99999" in str(error.value) and password not in str(error.value)


TOKEN_READING_TASK = """
secret = open(cfg.token_file).read()
print("read", len(secret), "characters")
raise RuntimeError(f"the file holds {secret}")
"""


@pytest.mark.slow
def test_a_token_a_trial_found_itself_is_masked_in_everything_the_sweep_writes(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    env_file = tmp_path / "sigopt.env"
    env_file.write_text(f"SIGOPT_TOKEN={TOKEN}\n")
    env = {"SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": "", "SIGOPT_ENV_FILE": str(env_file)}
    app = write_app(tmp_path, TOKEN_READING_TASK)
    overrides = ("hydra.sweeper.backend=api", "hydra.sweeper.dev_run=false", f"+token_file={env_file}")
    run = run_example(tmp_path, *overrides, app=app, env=env).assert_ok()
    assert [t["state"] for t in run.trials] == ["failed"] * 4
    assert "RuntimeError: the file holds SIGOPT_TOKEN=***" in run.trials[0]["failure_reason"]
    assert _files_containing(run.sweep_dir, TOKEN) == []
    assert TOKEN not in run.output


#: Trial #0 fails quoting the token it read; trial #1 then kills the sweeper's process (the trials run
#: in it), so trial #0's failure stays kept beside it for the resume (see kept_returns).
TOKEN_READING_TASK_THEN_KILLED = """
secret = open(cfg.token_file).read()
if job_num() == 0:
    raise RuntimeError(f"the file holds {secret}")
if not os.path.exists(cfg.token_file + ".killed"):
    open(cfg.token_file + ".killed", "w").close()
    os.kill(os.getpid(), 9)
return cfg.x
"""


@pytest.mark.slow
def test_a_token_in_a_failure_kept_through_a_kill_is_masked_in_the_kept_file_and_after_the_resume(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The failure an in-process trial keeps beside it until the journal records it (a kill in
    between must not lose it) is a file the sweep writes: the token must not reach it either."""
    env_file = tmp_path / "sigopt.env"
    env_file.write_text(f"SIGOPT_TOKEN={TOKEN}\n")
    env = {**os.environ, "SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": "", "SIGOPT_ENV_FILE": str(env_file)}
    app, sweep_dir = write_app(tmp_path, TOKEN_READING_TASK_THEN_KILLED, budget=3), tmp_path / "sweep"
    cmd = [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.parallel_bandwidth=3"]
    cmd += ["hydra.sweeper.backend=api", "hydra.sweeper.dev_run=false", f"+token_file={env_file}"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    kept = [p for p in sweep_dir.rglob("raised.json")]
    assert len(kept) == 1 and "the file holds SIGOPT_TOKEN=***" in kept[0].read_text(), kept
    assert _files_containing(sweep_dir, TOKEN) == []

    cli = [sys.executable, "-m", "hydra_sigopt.cli", "continue", str(sweep_dir), "--run"]
    resumed = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "Trial #0 had failed before the sweeper's process ended" in resumed.stdout + resumed.stderr
    assert _files_containing(sweep_dir, TOKEN) == [] and TOKEN not in resumed.stdout + resumed.stderr


@pytest.mark.slow
def test_credentials_passed_as_app_overrides_are_masked_in_the_experiments_metadata(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    secrets = ["+sigopt_token=s3cret-one", "+api_key=s3cret-two", "+db.password=s3cret-three"]
    run = run_example(
        tmp_path, "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=1", *secrets, env=api_env
    ).assert_ok()
    metadata = server.experiments[str(run.results["experiment_id"])].data["metadata"]
    assert "+sigopt_token=*** +api_key=*** +db.password=***" in metadata["command"]
    assert "s3cret" not in str(server.experiments[str(run.results["experiment_id"])].data)


@pytest.mark.slow
def test_killed_api_sweep_resumes_on_the_same_experiment(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    overrides = (
        "hydra.sweeper.backend=api",
        "hydra.sweeper.observation_budget=5",
        "hydra.sweeper.parallel_bandwidth=2",
    )
    first = run_example(tmp_path, *overrides, env={**api_env, ENV_VAR: "after_observe:3"})
    assert first.proc.returncode != 0
    (eid,) = server.experiments
    assert len(server.experiments[eid].observations) == 3  # the third was posted, not yet journaled
    second = run_example(tmp_path, *overrides, env=api_env).assert_ok()
    assert str(second.results["experiment_id"]) == eid and len(server.experiments) == 1
    observations = server.experiments[eid].observations
    # The batch of trials 2 and 3 was journaled before its observations were posted; the kill came
    # after posting trial 2's. Trial 2 is not posted again, trial 3's result is posted on resume
    # (not re-run), and trial 4 completes the budget.
    assert sorted(o["metadata"]["job_number"] for o in observations) == [0, 1, 2, 3, 4]
    assert "Trial #3 finished before the restart; posting its observation now" in second.output
    # Trial 2's observation was on the server already: found by its suggestion, not announced as posted now.
    assert "Trial #2 finished before the restart" not in second.output
    assert "Trial #2's observation was posted before the restart" in second.output
    assert [t["state"] for t in second.trials] == ["completed"] * 5
    assert server.experiments[eid].open_suggestions == []
    assert _files_containing(second.sweep_dir, TOKEN) == []


@pytest.mark.slow
def test_delete_removes_the_server_experiment_and_the_sweep_dir(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    from hydra_sigopt.cli import main

    run = run_example(tmp_path, "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", env=api_env)
    run.assert_ok()
    eid = str(run.results["experiment_id"])
    assert main(["delete", "--yes", str(run.sweep_dir)]) == 0
    assert server.experiments[eid].deleted and not run.sweep_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("journal_from", ["this version", "an earlier version"])
def test_delete_of_a_sweep_attached_to_a_shared_experiment_leaves_the_experiment(
    tmp_path: Path,
    server: SigOptTestServer,
    api_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    journal_from: str,
) -> None:
    """Sweep B attached to sweep A's experiment (hydra.sweeper.api.experiment_id); deleting B
    deleted the experiment for everyone: A could not be resumed ("experiment 6 was not found").
    A journal of an earlier version does not record whether its sweep attached to the experiment."""
    import sqlite3

    from hydra_sigopt.cli import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_example(tmp_path / "a", "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", env=api_env)
    eid = str(first.assert_ok().results["experiment_id"])
    attached = ("hydra.sweeper.backend=api", f"hydra.sweeper.api.experiment_id={eid}")
    second = run_example(tmp_path / "b", *attached, "hydra.sweeper.observation_budget=2", env=api_env).assert_ok()
    if journal_from == "an earlier version":
        with sqlite3.connect(second.sweep_dir / "sigopt_journal.sqlite") as db:
            db.execute("DELETE FROM meta WHERE key = 'experiment_shared'")
        db.close()
    assert main(["delete", "--yes", str(second.sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert not server.experiments[eid].deleted and not second.sweep_dir.exists()
    assert f"SigOpt experiment {eid} is left as it is: this sweep attached to it" in out, out
    resumed = run_example(
        tmp_path / "a", "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=3", env=api_env
    ).assert_ok()
    assert [t["state"] for t in resumed.trials] == ["completed"] * 3


@pytest.mark.slow
def test_delete_of_a_gone_experiment_or_an_unreachable_server_offers_local_only(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    import subprocess
    import sys

    def delete(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hydra_sigopt.cli", "delete", "--yes", *flags, str(run.sweep_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    run = run_example(tmp_path, "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", env=api_env)
    run.assert_ok()
    server.faults.add("DELETE", r".*", "404", times=None)
    gone = delete()
    assert gone.returncode != 0 and "Traceback" not in gone.stderr
    assert "HTTP 404" in gone.stderr and "hydra-sigopt delete --local-only" in gone.stderr
    assert (run.sweep_dir / "trials.csv").is_file()  # nothing local was deleted
    server.stop()
    unreachable = delete()
    assert unreachable.returncode != 0 and "hydra-sigopt delete --local-only" in unreachable.stderr
    assert TOKEN not in unreachable.stderr
    local = delete("--local-only")
    assert local.returncode == 0, local.stderr
    assert not run.sweep_dir.exists()


@pytest.mark.slow
def test_two_new_sweeps_started_at_once_on_one_dir_make_one_experiment(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    from conftest import finish_example, start_example

    # A slow create keeps the first sweeper inside its start-up while the second one starts.
    server.faults.add("POST", r"/v1/experiments$", ("slow", 3.0), times=None)
    overrides = ("hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2", "sleep_s=2")
    started = [start_example(tmp_path, *overrides, env=api_env) for _ in range(2)]
    runs = [finish_example(proc, sweep_dir) for proc, sweep_dir in started]
    assert sorted(r.proc.returncode == 0 for r in runs) == [False, True], [r.output[-2000:] for r in runs]
    loser = next(r for r in runs if r.proc.returncode != 0)
    # Two new sweeps: the loser is told to take its own sweep dir, not to stop the other (hydra-sigopt kill).
    assert "is taken by another sweep (pid" in loser.output and "hydra-sigopt kill" not in loser.output
    assert len(server.experiments) == 1  # the loser created none, so none is orphaned
    winner = next(r for r in runs if r.proc.returncode == 0)
    assert str(winner.results["experiment_id"]) in server.experiments


@pytest.mark.slow
def test_missing_or_refused_token_leaves_no_sweep_dir(tmp_path: Path, server: SigOptTestServer) -> None:
    base = {"SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": "", "SIGOPT_ENV_FILE": ""}
    missing = run_example(tmp_path, "hydra.sweeper.backend=api", env=base)
    assert missing.proc.returncode != 0
    assert "backend: api needs a SigOpt API token and none was found" in missing.output
    assert not missing.sweep_dir.exists()
    refused = run_example(tmp_path, "hydra.sweeper.backend=api", env={**base, "SIGOPT_API_TOKEN": "nope-" + TOKEN})
    assert refused.proc.returncode != 0
    assert "refused the token from SIGOPT_API_TOKEN (HTTP 401)" in refused.output
    assert TOKEN not in refused.output
    assert not refused.sweep_dir.exists()


@pytest.mark.slow
def test_unreachable_api_stops_the_sweep_resumably(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    overrides = (
        "hydra.sweeper.backend=api",
        "hydra.sweeper.observation_budget=4",
        "hydra.sweeper.api.max_unreachable_s=2",
    )
    server.faults.add("POST", r"/v1/experiments/\d+/observations", "503", times=None)
    stopped = run_example(tmp_path, *overrides, env=api_env)
    assert stopped.proc.returncode != 0
    assert "has been unreachable" in stopped.output or "could not record the observation" in stopped.output
    assert "Continue this sweep with:" in stopped.output
    assert stopped.trials[0]["state"] == "completed"  # the result is in the journal, only the post is missing
    server.faults.clear()
    resumed = run_example(tmp_path, *overrides, env=api_env).assert_ok()
    (eid,) = server.experiments
    assert len(server.experiments[eid].observations) == 4
    assert sorted(o["metadata"]["job_number"] for o in server.experiments[eid].observations) == [0, 1, 2, 3]
    assert resumed.results["trials"]["completed"] == 4


@pytest.mark.slow
def test_a_frozen_server_stops_the_sweep_after_max_unreachable_s_not_once_per_unposted_result(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The server frozen (kill -STOP) while a batch of 4 ran, api.max_unreachable_s=5: the sweep
    stopped after 24 s, not 5: each result not yet posted waited a whole max_unreachable_s again."""
    import time

    from conftest import start_example

    overrides = [
        "hydra.sweeper.backend=api",
        "hydra.sweeper.observation_budget=8",
        "hydra.sweeper.parallel_bandwidth=4",
    ]
    overrides += ["hydra.sweeper.api.max_unreachable_s=6", "hydra.sweeper.api.timeout=1", "sleep_s=1"]
    proc, sweep_dir = start_example(tmp_path, *overrides, env=api_env)
    try:
        deadline = time.time() + 120
        while not (sweep_dir / "0" / ".hydra").is_dir() and time.time() < deadline:
            time.sleep(0.1)
        server.freeze()  # the batch's 4 suggestions were taken: its results cannot be posted
        frozen_at = time.time()
        out, _ = proc.communicate(timeout=300)
        took = time.time() - frozen_at
    finally:
        proc.kill()
        server.thaw()
    assert proc.returncode != 0 and "has been unreachable" in out, out[-3000:]
    # The batch's 4 trials (about 4 s) and one whole max_unreachable_s; with one per unposted
    # result it took 4 + 4 x 6 s and more (the bound leaves room for a loaded machine).
    assert took < 4 + 2 * 6 + 6, (took, out[-6000:])
    print(out)
    assert "Trials [0, 1, 2, 3] are not posted yet (the engine is out of reach)" in out, out[-3000:]


# -- issue 15: what a real sigopt-server does to the backend -------------------------------------------------------


def sweep_backend(sweep_id: str, **settings: object) -> ApiBackend:
    b = backend(**settings)
    b.sweep_id = sweep_id
    return b


def shared_experiment_with_another_sweeps_results(server: SigOptTestServer) -> str:
    """An experiment on which sweep A posted trials #0 and #1 (the job numbers any sweep starts with)."""
    a = sweep_backend("sweep-a")
    eid = a.start(definition())
    for number in (0, 1):
        a.observe(a.suggest([]), [MetricValue("y", 10.0 + number)], metadata={"job_number": number})
    return eid


def test_attached_sweeps_results_are_not_mistaken_for_another_sweeps_on_resume(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 15, defect 1: B's results were matched to A's observations by job number and never posted."""
    eid = shared_experiment_with_another_sweeps_results(server)
    b = sweep_backend("sweep-b", experiment_id=eid)
    b.start(definition())
    pending = b.suggest([])
    resumed = sweep_backend("sweep-b", experiment_id=eid)  # B's sweeper restarted
    resumed.start(definition(), resume_id=eid)
    resumed.restore([], open_suggestion_ids=[pending.id])
    oid = resumed.observe(pending, [MetricValue("y", 1.0)], metadata={"job_number": 0})
    observations = server.experiments[eid].observations
    assert len(observations) == 3 and observations[-1]["id"] == oid
    assert observations[-1]["suggestion"] == pending.id and observations[-1]["metadata"]["sweep_id"] == "sweep-b"
    assert resumed.find_observation(pending) == oid


def test_a_lost_post_on_a_shared_experiment_is_sent_again_not_matched_to_another_sweeps(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 15, defect 1 without a resume: the lookup of a POST whose outcome is unknown matched job numbers."""
    eid = shared_experiment_with_another_sweeps_results(server)
    b = sweep_backend("sweep-b", experiment_id=eid)
    b.start(definition())
    s = b.suggest([])
    server.faults.add("POST", r"/v1/experiments/\d+/observations", "drop_before_commit")
    b.observe(s, [MetricValue("y", 1.0)], metadata={"job_number": 1})
    observations = server.experiments[eid].observations
    assert len(observations) == 3 and observations[-1]["suggestion"] == s.id


def test_a_retried_suggestion_create_leaves_no_orphan_open_suggestion(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 15, defect 3: the server carries out a create the client gave up on; its suggestion stayed open."""
    b = sweep_backend("sweep-a", timeout=0.5)
    eid = b.start(definition())
    kept = b.suggest([])
    server.faults.add("POST", r"/v1/experiments/\d+/suggestions", ("late", 1.5), times=2)
    s = b.suggest([])
    assert sorted(o["id"] for o in server.experiments[eid].open_suggestions) == sorted([kept.id, s.id])
    assert len(server.experiments[eid].suggestions) == 4  # two were made for requests the client gave up on


def test_reconcile_deletes_only_this_sweeps_unused_open_suggestions(
    server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    a = sweep_backend("sweep-a")
    eid = a.start(definition())
    b = sweep_backend("sweep-b", experiment_id=eid)
    b.start(definition())
    others, used, unused = a.suggest([]), b.suggest([]), b.suggest([])
    b.reconcile([used.id])
    assert sorted(s["id"] for s in server.experiments[eid].open_suggestions) == sorted([others.id, used.id])
    assert unused.id in server.experiments[eid].deleted_suggestions


def test_a_budget_raised_on_resume_reaches_the_server(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    """Issue 15: sigopt-server plans multi-metric and constraint searches by the experiment's budget."""
    eid = backend().start(definition(budget=5))
    raised = ExperimentDefinition("t", definition().space, definition().metrics, 9, 4)
    backend().start(raised, resume_id=eid)
    assert server.experiments[eid].data["observation_budget"] == 9
    assert server.experiments[eid].data["parallel_bandwidth"] == 4
    # An attached experiment's budget is shared with other sweeps: left alone.
    backend(experiment_id=eid).start(definition(budget=3), resume_id=eid)
    assert server.experiments[eid].data["observation_budget"] == 9


def test_a_project_that_does_not_exist_is_refused_before_the_experiment(
    server: SigOptTestServer, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGOPT_PROJECT", "no-such-project")
    with pytest.raises(ConfigError, match=r"^SIGOPT_PROJECT .*: project 'no-such-project' does not exist at "):
        backend().start(definition())
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.api.project: project 'typo' does not exist"):
        backend(project="typo").start(definition())
    assert server.experiments == {}
    server.projects["no-such-project"] = {"object": "project", "id": "no-such-project", "client": "1"}
    eid = backend().start(definition())
    assert server.experiments[eid].data["project"] == "no-such-project"


def test_metadata_is_fit_to_the_servers_limits(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    b = backend()
    eid = b.start(definition())
    reason = "RuntimeError: " + "x" * 2000
    b.observe(b.suggest([]), failed=True, metadata={"job_number": 0, "failure_reason": reason, "k" * 101: 1})
    (observation,) = server.experiments[eid].observations
    assert observation["failed"] and observation["metadata"]["job_number"] == 0
    assert len(observation["metadata"]["failure_reason"]) == 500
    assert observation["metadata"]["failure_reason"].startswith("RuntimeError: xxx")


def test_api_errors_carry_their_status(server: SigOptTestServer, api_env: dict[str, str]) -> None:
    with pytest.raises(ApiError) as info:
        backend(experiment_id="987").start(definition())
    assert info.value.status == 404
    server.faults.add("POST", r"/v1/experiments", "403")
    with pytest.raises(ApiError) as refused:
        backend().start(definition())
    assert refused.value.status == 403


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_self_signed_certificate_fails_at_once_with_the_reason(
    tmp_path: Path, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: a TLS verification failure was retried as "unreachable" for max_unreachable_s."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with SigOptTestServer(tokens={TOKEN}, ssl_context=context) as tls:
        monkeypatch.setenv("SIGOPT_API_URL", tls.url)
        started = time.monotonic()
        with pytest.raises(
            ApiError, match=r"TLS certificate check failed .*CERTIFICATE_VERIFY_FAILED.*verify_ssl_certs"
        ):
            ApiBackend(settings={"max_unreachable_s": 600}).start(definition())
        assert time.monotonic() - started < 5
        assert ApiBackend(settings={"verify_ssl_certs": str(cert)}).start(definition()) == "1"


def test_a_ca_bundle_that_is_not_pem_is_named_at_once_not_retried_as_a_dropped_connection(
    tmp_path: Path, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_ssl_certs set to a file that is not a PEM bundle (a DER certificate, a key): ssl cannot
    load it, an error no retry fixes. Read as a connection dropped during the TLS handshake, it was
    said without the setting to fix, and retried for max_unreachable_s on the calls that retry."""
    cert, key = self_signed_certificate(tmp_path)
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"0\x82\x01\x0a not a PEM bundle")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with SigOptTestServer(tokens={TOKEN}, ssl_context=context) as tls:
        monkeypatch.setenv("SIGOPT_API_URL", tls.url)
        with pytest.raises(ApiError, match=r"the TLS handshake failed .*verify_ssl_certs.*PEM") as refused:
            ApiBackend(settings={"verify_ssl_certs": str(not_pem), "max_unreachable_s": 600}).start(definition())
        assert "connection failed during TLS" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize("observe_stopped", ["last_value", "failed"])
def test_trials_stopped_early_are_posted_with_the_step_they_reached(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], observe_stopped: str
) -> None:
    """Issue 17: the api backend posts stopped trials like the others and records the step reached;
    with ``observe_stopped: failed`` as failed observations, which are no failures of the app: a
    max_failure_rate that most stopped trials would exceed does not stop the sweep."""
    epochs_app = ROOT / "example_app" / "train_epochs.py"
    run = run_example(
        tmp_path,
        "hydra.sweeper.backend=api",
        "hydra.sweeper.observation_budget=8",
        f"hydra.sweeper.early_stopping.observe_stopped={observe_stopped}",
        "hydra.sweeper.max_failure_rate=0.1",
        env=api_env,
        app=epochs_app,
    ).assert_ok()
    states = {int(t["number"]): (t["state"], int(t["step"])) for t in run.trials}
    observations = server.experiments[str(run.results["experiment_id"])].observations
    assert len(observations) == 8
    by_job = {o["metadata"]["job_number"]: o for o in observations}
    stopped = [n for n, (state, _) in states.items() if state == "stopped"]
    assert stopped, states
    for n, (state, step) in states.items():
        metadata = by_job[n]["metadata"]
        assert metadata["step"] == step
        assert by_job[n]["failed"] == (state == "stopped" and observe_stopped == "failed"), by_job[n]
        assert metadata.get("stopped_at_step") == (step if state == "stopped" else None), metadata
    # What the user reads: each stopped trial keeps its last value, and no trial failed.
    assert all(t["value.val_error"] for t in run.trials)
    assert f"trials done, 0 running, 0 failed, {len(stopped)} stopped early" in run.output, run.output[-2000:]


SLOW_LEARNER_OF_STEPS = """\
import time
from hydra_sigopt import report
for step in range(1, 11):  # 10 steps of {step_s} s: each trial after the first is worse at every step
    time.sleep({step_s})
    report(step, value=float(job_num()))
return float(job_num())
"""
SLOW_LEARNER = SLOW_LEARNER_OF_STEPS.format(step_s=0.3)

#: The api backend, 2 slots.
SLOW_LEARNER_API = (*SUBMITIT_LOCAL, "hydra.sweeper.backend=api", "hydra.sweeper.parallel_bandwidth=2")
#: The same with ASHA over the 10 steps of SLOW_LEARNER.
SLOW_LEARNER_ASHA = (
    *SLOW_LEARNER_API,
    "hydra.sweeper.early_stopping.rule=asha",
    "hydra.sweeper.early_stopping.max_step=10",
)


def assert_each_trial_after_the_first_stopped_at_once(
    tmp_path: Path, api_env: dict[str, str], step_s: float = 0.3, last_step: int = 4
) -> None:
    """A sweep of SLOW_LEARNER_OF_STEPS: the first trial completes, and each later one is stopped at
    step 1 and ends by ``last_step`` (its stop marker seen at its next report, or a few steps later on
    a loaded machine); a loop held for the whole of a slow call lets it train 10 steps."""
    app = write_app(tmp_path, SLOW_LEARNER_OF_STEPS.format(step_s=step_s), budget=5)
    run = run_example(tmp_path, *SLOW_LEARNER_ASHA, "hydra.sweeper.api.timeout=30", env=api_env, app=app)
    steps = {int(t["number"]): (t["state"], int(t["step"])) for t in run.assert_ok().trials}
    assert steps[0] == ("completed", 10), steps
    late = {n: step for n, (state, step) in steps.items() if n > 0 and (state != "stopped" or step > last_step)}
    assert not late, steps


@pytest.mark.slow
def test_a_stop_decision_does_not_wait_for_the_engines_next_suggestion(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 17 (and 16: the engine's work must not block the loop): while the sweeper waited for a
    suggestion to refill a free slot, it read no reports, so a trial it should stop at step 1 ran on.
    Measured in the multi-fidelity benchmark: with GP suggestions of seconds and short epochs, trials
    condemned at step 1 ran all 27 steps. Here each suggestion takes 4 s (a slow server, as a GP
    suggestion of a few seconds would) and a trial 3 s: every trial after the first is worse than it
    at step 1, so ASHA stops each of them there, and it must end at its next report or soon after.
    (Steps of 0.6 s and suggestions of 6 s, as its sibling below: a loop held for a whole suggestion
    still lets a trial train 10 steps, past the 5 allowed, and a loaded machine has room.)"""
    server.faults.add("POST", r"/v1/experiments/\d+/suggestions", ("slow", 6.0), times=None)
    assert_each_trial_after_the_first_stopped_at_once(tmp_path, api_env, step_s=0.6, last_step=5)


@pytest.mark.slow
def test_a_stop_decision_does_not_wait_for_an_observation_to_be_posted(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Issue 17 with the api backend: the sweeper posted each result to the server in its loop and
    read no report until the server answered. A server that takes 4 s to record an observation (a
    busy sigopt-server, a request retried through a lagging worker) let a trial the rule had
    condemned at step 1 train its whole 3 s meanwhile. Reports are read while a result is posted.
    (Steps of 0.6 s and a post of 6 s: with 0.3 s steps it failed in two runs of the whole suite on a
    machine loaded to 8-10 on 2 cores, and passed alone.)"""
    server.faults.add("POST", r"/v1/experiments/\d+/observations", ("slow", 6.0), times=None)
    assert_each_trial_after_the_first_stopped_at_once(tmp_path, api_env, step_s=0.6, last_step=5)
    assert len(server.requests_to("POST", r"/v1/experiments/\d+/observations")) == 5  # each posted once


def interrupted_inside_the_first_post(
    tmp_path: Path, server: SigOptTestServer, overrides: list[str], api_env: dict[str, str], app: Path
) -> tuple[subprocess.Popen[str], Path]:
    """The sweep started, and sent Ctrl-C half a second into its first post (which the server holds)."""
    from conftest import start_example

    proc, sweep_dir = start_example(tmp_path, *overrides, env=api_env, app=app)
    deadline = time.time() + 120
    while not server.requests_to("POST", r"/v1/experiments/\d+/observations") and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    return proc, sweep_dir


@pytest.mark.slow
@pytest.mark.parametrize("rule", [SLOW_LEARNER_ASHA, SLOW_LEARNER_API], ids=["asha", "no_early_stopping"])
def test_a_sweep_interrupted_while_a_result_is_posted_aside_posts_each_result_once(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], rule: tuple[str, ...]
) -> None:
    """The post above runs aside while reports are read (and trials end): Ctrl-C during it (the server
    slow to answer) must neither lose that result nor post it twice, on this run or on the resumed one."""
    from conftest import finish_example

    server.faults.add("POST", r"/v1/experiments/\d+/observations", ("slow", 3.0), times=None)
    app = write_app(tmp_path, SLOW_LEARNER, budget=5)
    overrides = [*rule, "hydra.sweeper.api.timeout=30"]
    proc, sweep_dir = interrupted_inside_the_first_post(tmp_path, server, overrides, api_env, app)
    stopped = finish_example(proc, sweep_dir)
    assert stopped.proc.returncode != 0 and "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    (eid,) = server.experiments
    assert len(server.experiments[eid].observations) >= 1, stopped.output[-3000:]  # the one under way landed
    resumed = run_example(tmp_path, *overrides, sweep_dir=sweep_dir, env=api_env, app=app).assert_ok()
    posted = sorted(o["metadata"]["job_number"] for o in server.experiments[eid].observations)
    # Trials running at the Ctrl-C were cancelled (abandoned) and new suggestions took their place.
    ended = sorted(int(t["number"]) for t in resumed.trials if t["state"] != "abandoned")
    assert posted == ended and len(ended) == 5, (posted, resumed.trials)


@pytest.mark.slow
@pytest.mark.parametrize("rule", [SLOW_LEARNER_ASHA, SLOW_LEARNER_API], ids=["asha", "no_early_stopping"])
def test_a_sweep_interrupted_while_the_server_holds_a_post_exits_without_waiting_for_it(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], rule: tuple[str, ...]
) -> None:
    """A review found it: the post running aside was a worker Python joins at exit, so a sweeper
    stopped (Ctrl-C, Slurm's SIGTERM) while the server held its post stayed up after its stop message
    until the post ended: minutes against a hung server, and `hydra-sigopt kill` then SIGKILLed it."""
    from conftest import finish_example

    server.faults.add("POST", r"/v1/experiments/\d+/observations", ("slow", 90.0), times=1)
    app = write_app(tmp_path, SLOW_LEARNER, budget=5)
    overrides = [*rule, "hydra.sweeper.api.timeout=120"]
    proc, sweep_dir = interrupted_inside_the_first_post(tmp_path, server, overrides, api_env, app)
    stopped = finish_example(proc, sweep_dir, timeout=200)  # a hang guard, past the 90 s of the post
    held_at_exit = server.holding()
    assert "Continue this sweep with" in stopped.output, stopped.output[-3000:]
    # The sweeper had exited before the server let its post go (the server still holds it).
    assert held_at_exit == 1, stopped.output[-3000:]


def test_a_prefetch_retrying_through_a_lagging_model_worker_leaves_the_main_threads_timeout_whole(
    server: SigOptTestServer, api_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15's leftover: the client has one timeout per connection. A suggestion retried in the
    prefetch thread (the model worker lags) cut it, and an observation the main thread posted meanwhile
    was sent with the cut timeout: a server that answered it in 2 s, within the 4 s configured, failed it."""
    from concurrent.futures import ThreadPoolExecutor

    b = ApiBackend(settings={"timeout": 4, "max_unreachable_s": 6})
    b.start(definition())
    first = b.suggest([])
    suggestions = r"/v1/experiments/\d+/suggestions"
    server.faults.add("POST", suggestions, ("slow", 30), times=None)  # the model worker lags
    with ThreadPoolExecutor(1, thread_name_prefix="sigopt-suggest") as pool:
        prefetch = pool.submit(b.suggest, [])
        deadline = time.monotonic() + 15
        while len(server.requests_to("POST", suggestions)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # until the prefetch's retry (cut to 1.5 s, the time left) is in flight
        assert len(server.requests_to("POST", suggestions)) >= 3, "the prefetch never retried: nothing was cut"
        server.faults.add("POST", r"/v1/experiments/\d+/observations", ("slow", 2))  # busy, not down
        b.observe(first, [MetricValue("y", 1.0)], metadata={"job_number": 0})
        with pytest.raises(ApiUnreachableError):
            prefetch.result(timeout=30)
    assert "record the observation of trial 0 failed" not in caplog.text
    assert len(server.requests_to("POST", r"/v1/experiments/\d+/observations")) == 1


OVERFITTING_TASK = """
from hydra_sigopt import report

for step in range(1, 9):
    loss = (cfg.x - 0.3) ** 2 + (step - 3) ** 2 / 10  # the best epoch is the third: it overfits after
    report(step, y=loss)
return loss
"""


@pytest.mark.slow
def test_the_engine_s_best_leaves_out_the_partial_values_of_stopped_trials(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """A stopped trial is posted with its last value (observe_stopped: last_value); where the loss
    rises late in training, that partial value beat every full training on the server, and
    ``engine_best`` named the stopped trial beside a ``best_trial`` that was another one."""
    app = write_app(tmp_path, OVERFITTING_TASK, budget=8)
    server._rng.seed(0)  # its random suggestions: a draw in improving order stopped no trial (CI, once)
    run = run_example(
        tmp_path,
        "hydra.sweeper.backend=api",
        "hydra.sweeper.metrics=[{name:y,objective:minimize}]",
        "hydra.sweeper.early_stopping.rule=median",
        "hydra.sweeper.early_stopping.max_step=8",
        app=app,
        env=api_env,
    ).assert_ok()
    stopped = [t for t in run.trials if t["state"] == "stopped"]
    assert stopped and any(t["state"] == "completed" for t in run.trials), run.trials
    best = next(t for t in run.trials if int(t["number"]) == run.results["best_trial"])
    for entry in run.results.get("engine_best", []):
        assert entry["assignments"] == {"x": pytest.approx(float(best["param.x"]))}, (entry, run.trials)


def test_a_short_url_password_is_masked_in_urls_without_mangling_other_text() -> None:
    """Masked wherever it occurred, a one-letter password turned the host into '***igopt' (so no
    command could connect) and would have masked every 's' of every message."""
    from hydra_sigopt.secrets import known_tokens, redact, shown_url

    url = "https://ab:s@sigopt.example.org/api"
    assert shown_url(url) == "https://ab:***@sigopt.example.org/api"
    assert (
        redact(f"failed: {url}/v1/experiments is slow")
        == "failed: https://ab:***@sigopt.example.org/api/v1/experiments is slow"
    )
    assert known_tokens({"SIGOPT_API_URL": url}) == set()
    assert known_tokens({"SIGOPT_API_URL": "https://ab:longer-secret@host/api"}) == {"longer-secret"}


@pytest.mark.slow
def test_an_env_file_that_cannot_be_read_is_named_not_taken_for_a_missing_url(
    tmp_path: Path, server: SigOptTestServer
) -> None:
    """A typo in SIGOPT_ENV_FILE (the file holding the URL and the token) was reported as "backend:
    api needs the URL of a SigOpt API ... set SIGOPT_API_URL": the user looked for a URL problem."""
    missing = tmp_path / "sigpot.env"
    env = {"SIGOPT_API_URL": "", "SIGOPT_API_TOKEN": "", "SIGOPT_ENV_FILE": str(missing)}
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env=env)
    assert run.proc.returncode != 0
    assert f"SIGOPT_ENV_FILE={missing} cannot be read: No such file or directory" in run.output
    assert "Traceback" not in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.slow
def test_https_to_a_plain_http_server_says_so_not_that_a_certificate_failed(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """https:// for a server that speaks plain HTTP was "the TLS certificate check failed ...; set
    verify_ssl_certs to the server's CA bundle": the user hunted for a certificate that was not the problem."""
    https_url = server.url.replace("http://", "https://")
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env={**api_env, "SIGOPT_API_URL": https_url})
    assert run.proc.returncode != 0
    assert "CA bundle" not in run.output
    assert f"{https_url} does not answer in TLS (https)" in run.output
    assert "SIGOPT_API_URL" in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.slow
def test_an_unreachable_proxy_is_named_with_its_variable(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy variable pointing at a dead proxy gave urllib3's "ProxyError: HTTPConnectionPool(...)" only:
    nothing said which variable sent the request there, or that NO_PROXY exempts the server."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # a port nothing listens on
    proxy = f"http://alice:proxy-pw-77@127.0.0.1:{port}"
    for name in ("http_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the user set HTTP_PROXY only
    env = {**api_env, "HTTP_PROXY": proxy}
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env=env)
    assert run.proc.returncode != 0
    assert f"through the proxy http://alice:***@127.0.0.1:{port} (HTTP_PROXY)" in run.output
    assert "NO_PROXY" in run.output
    assert "proxy-pw-77" not in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("dev_run", [True, False])
def test_attaching_across_token_kinds_says_the_server_hides_the_experiment_not_that_the_token_is_bad(
    tmp_path: Path, dev_run: bool
) -> None:
    """dev_run with api.experiment_id of an experiment made without it (or the reverse) said "refused the
    token from SIGOPT_DEV_TOKEN (HTTP 403) ...; check the token and the URL": both were right; the server
    hides an experiment made with one kind of token from the other."""
    import sigopt

    dev_token = "dev-" + TOKEN
    with SigOptTestServer(tokens={TOKEN}, dev_tokens={dev_token}) as server:
        conn = sigopt.Connection(client_token=TOKEN if dev_run else dev_token)
        conn.set_api_url(server.url)
        made = conn.experiments().create(
            name="by hand",
            parameters=[{"name": "lr", "type": "double", "bounds": {"min": 0.001, "max": 1}}],
            metrics=[{"name": "mse", "objective": "minimize"}],
        )
        env = {"SIGOPT_API_URL": server.url, "SIGOPT_API_TOKEN": TOKEN, "SIGOPT_DEV_TOKEN": dev_token}
        run = run_example(
            tmp_path,
            "hydra.sweeper.backend=api",
            f"hydra.sweeper.api.experiment_id={made.id}",
            f"hydra.sweeper.dev_run={str(dev_run).lower()}",
            env={**env, "SIGOPT_ENV_FILE": ""},
        )
    assert run.proc.returncode != 0
    assert "check the token and the URL" not in run.output
    assert f"experiment {made.id}" in run.output and "HTTP 403" in run.output
    advice = "leave hydra.sweeper.dev_run out" if dev_run else "attach with hydra.sweeper.dev_run=true"
    assert advice in run.output
    assert TOKEN not in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.slow
def test_attaching_to_an_experiment_made_by_hand_with_other_parameters_says_what_to_change(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """An experiment made on the server by hand with other parameter names was refused with "experiment 1
    ... has parameters [...] ..., but the sweep declares ...", naming neither the key nor what to do
    (a different type or bounds did say: "attach to an experiment of the same search, or leave ... out")."""
    import sigopt

    conn = sigopt.Connection(client_token=TOKEN)
    conn.set_api_url(server.url)
    made = conn.experiments().create(
        name="by hand",
        parameters=[{"name": "momentum", "type": "double", "bounds": {"min": 0, "max": 1}}],
        metrics=[{"name": "accuracy", "objective": "maximize"}],
    )
    run = run_example(tmp_path, "hydra.sweeper.backend=api", f"hydra.sweeper.api.experiment_id={made.id}", env=api_env)
    assert run.proc.returncode != 0
    assert "has parameters ['momentum'] and metrics ['accuracy']" in run.output
    assert "leave hydra.sweeper.api.experiment_id out to create one" in run.output
    assert not run.sweep_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("wrong", ["/v1", "/apu", "-no-api-prefix"])
def test_a_url_that_is_not_the_api_root_is_refused_saying_what_the_root_is(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], wrong: str
) -> None:
    """A URL with /v1 at its end (copied from a request), a typo in its path, or without the server's /api
    was "answered HTTP 404 to create the experiment: Endpoint not found: /api/v1/v1/experiments": nothing
    said that SIGOPT_API_URL is the API root the client appends /v1/... to."""
    url = (
        server.url.removesuffix("/api")
        if wrong == "-no-api-prefix"
        else server.url.removesuffix("/api") + ("/api/v1" if wrong == "/v1" else wrong)
    )
    run = run_example(tmp_path, "hydra.sweeper.backend=api", env={**api_env, "SIGOPT_API_URL": url})
    assert run.proc.returncode != 0
    assert "HTTP 404" in run.output
    assert "check SIGOPT_API_URL (or hydra.sweeper.api.api_url): the API root" in run.output
    assert not run.sweep_dir.exists()


class DroppingTlsFront:
    """A TLS endpoint as a load balancer in trouble shows it: the next connections, one per entry of
    ``drops``, are reset (RST) or closed (FIN) during the TLS handshake (after the client's hello,
    before the server's); the others are piped to the TLS server at ``backend_port`` byte for byte."""

    def __init__(self, backend_port: int, drops: list[str]) -> None:
        self.backend_port = backend_port
        self.drops = drops
        self.piped: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}/api"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            if self.drops:
                client.recv(65536)  # the ClientHello
                if self.drops.pop(0) == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.backend_port))
            self.piped += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def restart(self, drops: list[str]) -> None:
        """Drop the open connections (the client's kept-alive one), then the next handshakes."""
        self.drops = drops
        for end in self.piped:
            with contextlib.suppress(OSError):  # closed already, by its pipe
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tls_server(tmp_path: Path, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SigOptTestServer]:
    """The stand-in server over TLS, its certificate trusted (SIGOPT_API_VERIFY_SSL_CERTS)."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SIGOPT_API_VERIFY_SSL_CERTS", str(cert))
    with SigOptTestServer(tokens={TOKEN}, ssl_context=context) as tls:
        yield tls


def tls_front(tls: SigOptTestServer, drops: list[str], monkeypatch: pytest.MonkeyPatch) -> DroppingTlsFront:
    front = DroppingTlsFront(int(tls.url.split(":")[2].split("/")[0]), drops)
    monkeypatch.setenv("SIGOPT_API_URL", front.url)
    return front


@pytest.mark.slow
def test_a_connection_closed_during_the_tls_handshake_is_not_called_a_certificate_failure(
    tmp_path: Path, tls_server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load balancer closed connections during the TLS handshake: the sweep said "the TLS certificate check
    failed ...; set hydra.sweeper.api.verify_ssl_certs to the server's CA bundle", and the user went after a
    certificate that was fine."""
    front = tls_front(tls_server, ["close"] * 100, monkeypatch)
    try:
        run = run_example(tmp_path, "hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=2")
    finally:
        front.close()
    assert run.proc.returncode != 0
    assert "certificate" not in run.output and "CA bundle" not in run.output, run.output[-3000:]
    said = f"could not create the experiment at {front.url}: the connection failed during TLS: SSLError: "
    assert said in run.output, run.output[-3000:]
    assert "Traceback" not in run.output


def test_a_connection_dropped_during_the_tls_handshake_is_retried_like_other_network_faults(
    tls_server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Mid-sweep, the balancer restarted: its first handshakes were reset or closed. A reset was retried, a
    close ended the sweep at once as a certificate failure; the next connection would have worked."""
    front = tls_front(tls_server, [], monkeypatch)
    try:
        b = backend(max_unreachable_s=600)
        b.start(definition())
        front.restart(["reset", "close", "close"])
        with caplog.at_level(logging.WARNING, logger="hydra_sigopt.backends.api"):
            suggestion = b.suggest([])
    finally:
        front.close()
    assert suggestion.id and front.drops == []
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    # One more when the client saw its kept-alive connection dropped only on using it.
    assert len(retried) in (3, 4) and all("certificate" not in line for line in retried), retried
    assert sum("the connection failed during TLS: SSLError" in line for line in retried) >= 2, retried


@pytest.mark.slow
def test_a_ctrl_c_inside_an_in_process_trial_leaves_the_stop_lines_in_the_sweeps_log_format(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Ctrl-C inside a trial of the basic launcher: Hydra's launcher sets the sweep's logging again only
    after a trial returns, so the stop's lines came out in the app's log format
    (``[hydra_sigopt.backends.api][INFO] - Deleting open suggestion 1: ...``) and went into the
    interrupted trial's own log file."""
    from conftest import finish_example, start_example

    overrides = ("hydra.sweeper.backend=api", "hydra.sweeper.observation_budget=3", "sleep_s=5")
    proc, sweep_dir = start_example(tmp_path, *overrides, env=api_env)
    trial_log = sweep_dir / "0" / "train.log"
    deadline = time.time() + 120
    while not trial_log.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the trial's 5 s
    proc.send_signal(signal.SIGINT)
    stopped = finish_example(proc, sweep_dir)
    lines = stopped.output.splitlines()
    assert any(re.match(r"\[[^]]+\]\[HYDRA\] Interrupted\. ", line) for line in lines), stopped.output[-3000:]
    assert any(re.match(r"\[[^]]+\]\[HYDRA\] Deleting open suggestion ", line) for line in lines), stopped.output[
        -3000:
    ]
    assert not [line for line in lines if "][hydra_sigopt" in line], stopped.output[-3000:]
    assert "Interrupted" not in trial_log.read_text() and "Deleting" not in trial_log.read_text()
