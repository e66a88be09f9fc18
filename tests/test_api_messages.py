"""What a user of ``backend: api`` reads when the sweeper refuses: one line that says what to change.

Real Hydra multiruns and the real CLI in subprocesses, through the real ``sigopt`` client over HTTP
against the stand-in server (tests/sigopt_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppRun, run_example, write_app
from sigopt_server import SigOptTestServer
from test_api_real_server import hydra_sigopt

from hydra_sigopt.crashpoints import ENV_VAR

pytestmark = pytest.mark.slow

TOKEN = "tok-messages-93c1-never-shown"
API = "hydra.sweeper.backend=api"
HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}) as s:
        yield s


@pytest.fixture
def api_env(server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)  # a server refuses a project it does not have
    return {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": "", "SIGOPT_DEV_TOKEN": ""}


def error_lines(stderr: str) -> list[str]:
    """What a run printed on stderr, without blank lines and Hydra's usual hint."""
    return [line for line in stderr.splitlines() if line.strip() and line != HYDRA_HINT]


def folder(root: Path, name: str) -> Path:
    (root / name).mkdir(exist_ok=True)
    return root / name


def test_continuing_without_the_url_names_the_server_the_sweep_used(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The refusal said to set hydra.sweeper.api.api_url or SIGOPT_API_URL, and the user had to dig
    the URL out of the journal (a new SSH session has none of the old one's environment)."""
    first = run_example(
        tmp_path, API, "hydra.sweeper.observation_budget=3", env={**api_env, ENV_VAR: "after_observe:1"}
    )
    assert first.proc.returncode != 0  # killed after its first result: the sweep is unfinished
    journal = (first.sweep_dir / "sigopt_journal.sqlite").read_bytes()
    requests = len(server.requests)

    continued = hydra_sigopt("continue", str(first.sweep_dir), "--run", env={**api_env, "SIGOPT_API_URL": ""})
    assert continued.returncode != 0
    lines = error_lines(continued.stderr)
    assert len(lines) == 1, continued.stderr[-3000:]
    assert f"this sweep used the sigopt-server at {server.url}" in lines[0], lines[0]
    assert f"set SIGOPT_API_URL={server.url} (and its token) to continue" in lines[0], lines[0]
    assert TOKEN not in continued.stdout + continued.stderr
    assert (first.sweep_dir / "sigopt_journal.sqlite").read_bytes() == journal and len(server.requests) == requests


VALID_API_KEYS = (
    "valid settings are ['api_url', 'verify_ssl_certs', 'timeout', 'project', 'experiment_id', 'max_unreachable_s']"
)


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_misspelt_api_key_is_one_line_naming_the_valid_keys(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str], where: str
) -> None:
    """Hydra refused it while composing, with its structured-config dump (``Key 'projet' not in
    'ApiConf'``, ``full_key:``, ``reference_type=ApiConf``, ``object_type=ApiConf``)."""
    if where == "command line":
        run = run_example(tmp_path, API, "hydra.sweeper.api.projet=x", env=api_env)
    else:
        app = write_app(tmp_path, "backend: api\nparams:\n  x: interval(-5, 5)\napi:\n  projet: x")
        run = run_example(tmp_path, app=app, env=api_env)
    assert run.proc.returncode != 0
    assert error_lines(run.proc.stderr) == [f"hydra.sweeper.api.projet: unknown setting; {VALID_API_KEYS}"], run.output[
        -3000:
    ]
    assert "Traceback" not in run.output
    assert not run.sweep_dir.exists() and server.requests == []


WRITES = ("POST", "PUT", "DELETE")


def writes(server: SigOptTestServer) -> int:
    return sum(1 for r in server.requests if r.method in WRITES)


def an_experiment_made_by_a_sweep(root: Path, env: dict[str, str], *overrides: str) -> str:
    """The id of the experiment a colleague's finished sweep made (one trial)."""
    made = run_example(folder(root, "colleague"), API, "hydra.sweeper.observation_budget=1", *overrides, env=env)
    return str(made.assert_ok().results["experiment_id"])


def assert_refused_in_one_line(run: AppRun) -> str:
    """Non-zero exit, one line on stderr, no traceback nor token, no sweep dir."""
    assert run.proc.returncode != 0, run.output[-3000:]
    lines = error_lines(run.proc.stderr)
    assert len(lines) == 1, run.proc.stderr[-3000:]
    assert "Traceback" not in run.output and TOKEN not in run.output
    assert not run.sweep_dir.exists()
    return lines[0]


def test_attaching_to_an_experiment_of_other_tasks_says_that_leaving_the_id_out_makes_a_new_one(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Other parameters or metrics got "attach to an experiment of the same search, or leave
    hydra.sweeper.api.experiment_id out to create one"; other tasks ended at "(hydra.sweeper.tasks: the
    same names and costs)", as if the only way on were to change the sweep's tasks."""
    eid = an_experiment_made_by_a_sweep(tmp_path, api_env)
    written = writes(server)
    tasks = "hydra.sweeper.tasks=[{name:short,cost:0.5,overrides:{max_iter:100}},{name:full,cost:1}]"
    run = run_example(folder(tmp_path, "mine"), API, f"hydra.sweeper.api.experiment_id={eid}", tasks, env=api_env)
    line = assert_refused_in_one_line(run)
    assert "has tasks none, but the sweep declares full (cost 1), short (cost 0.5)" in line, line
    assert "leave hydra.sweeper.api.experiment_id out to create one" in line, line
    assert writes(server) == written


@pytest.mark.parametrize("given_by", ["api.project", "SIGOPT_PROJECT"])
def test_attaching_with_another_project_than_the_experiments_is_refused_naming_both(
    tmp_path: Path, api_env: dict[str, str], given_by: str
) -> None:
    """``api.project`` was ignored with ``api.experiment_id``: the sweep ran in the experiment's own
    project, and the user, who had named another, looked for its results there."""
    with SigOptTestServer(tokens={TOKEN}, projects={"vision", "nlp"}) as server:
        env = {**api_env, "SIGOPT_API_URL": server.url}
        eid = an_experiment_made_by_a_sweep(tmp_path, env, "hydra.sweeper.api.project=vision")
        written = writes(server)
        attach = (API, f"hydra.sweeper.api.experiment_id={eid}", "hydra.sweeper.observation_budget=1")
        if given_by == "api.project":
            run = run_example(folder(tmp_path, "mine"), *attach, "hydra.sweeper.api.project=nlp", env=env)
        else:
            run = run_example(folder(tmp_path, "mine"), *attach, env={**env, "SIGOPT_PROJECT": "nlp"})
        line = assert_refused_in_one_line(run)
        assert writes(server) == written
        # The same project, or none (SIGOPT_PROJECT empty as in many shells' setups): attached.
        same = run_example(folder(tmp_path, "same"), *attach, "hydra.sweeper.api.project=vision", env=env)
        same.assert_ok()
        run_example(folder(tmp_path, "none"), *attach, env={**env, "SIGOPT_PROJECT": ""}).assert_ok()
        url = server.url
    key = "hydra.sweeper.api.project" if given_by == "api.project" else "SIGOPT_PROJECT"
    assert line.startswith(key), line
    assert f"experiment {eid} at {url} is in project 'vision', not 'nlp'" in line, line
    assert "set it to vision or leave it out to attach" in line, line
    assert "leave hydra.sweeper.api.experiment_id out to create an experiment in 'nlp'" in line, line


def test_attaching_with_a_project_to_an_experiment_in_none_is_refused(tmp_path: Path, api_env: dict[str, str]) -> None:
    with SigOptTestServer(tokens={TOKEN}, projects={"nlp"}) as server:
        env = {**api_env, "SIGOPT_API_URL": server.url}
        eid = an_experiment_made_by_a_sweep(tmp_path, env)
        attach = (
            API,
            f"hydra.sweeper.api.experiment_id={eid}",
            "hydra.sweeper.api.project=nlp",
            "hydra.sweeper.observation_budget=1",
        )
        line = assert_refused_in_one_line(run_example(folder(tmp_path, "mine"), *attach, env=env))
        url = server.url
    assert f"experiment {eid} at {url} is in no project, not 'nlp'" in line, line
    assert "; leave it out to attach, or leave hydra.sweeper.api.experiment_id out" in line, line
