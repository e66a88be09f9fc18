"""A sweep's experiment id may name another experiment by now: a server that lost its data (restored
from a backup, redeployed, another server at the URL) numbers its experiments from 1 again.

Real Hydra multiruns and the real CLI in subprocesses, against the stand-in server over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppRun, run_example
from sigopt_server import SigOptTestServer
from test_api_real_server import hydra_sigopt

from hydra_sigopt.backends.api import ApiBackend
from hydra_sigopt.backends.base import Suggestion
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue, parse_metrics
from hydra_sigopt.space import build_space

pytestmark = pytest.mark.slow

TOKEN = "tok-identity-5d21"
API = "hydra.sweeper.backend=api"
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}) as s:
        yield s


def env_of(server: SigOptTestServer) -> dict[str, str]:
    return {"SIGOPT_API_TOKEN": TOKEN, "SIGOPT_API_URL": server.url, "SIGOPT_ENV_FILE": "", "SIGOPT_DEV_TOKEN": ""}


@pytest.fixture
def api_env(server: SigOptTestServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("SIGOPT_PROJECT", raising=False)
    return env_of(server)


def folder(root: Path, name: str) -> Path:
    (root / name).mkdir(exist_ok=True)
    return root / name


def writes(server: SigOptTestServer) -> int:
    return sum(1 for r in server.requests if r.method in WRITES)


def sweep(root: Path, env: dict[str, str], budget: int, *overrides: str) -> AppRun:
    return run_example(root, API, f"hydra.sweeper.observation_budget={budget}", *overrides, env=env)


def a_new_server_at_the_same_url(old: SigOptTestServer) -> SigOptTestServer:
    """The server's state is lost: a new one answers at the same port, experiments numbered from 1 again."""
    port = old.port
    old.stop()
    time.sleep(1.1)  # the server's ``created`` counts seconds: the next experiment is made in another one
    return SigOptTestServer(tokens={TOKEN}, port=port).start()


def assert_one_clear_line(run: AppRun) -> None:
    assert run.proc.returncode != 0
    assert "Traceback" not in run.proc.stderr and TOKEN not in run.output


def test_a_resume_on_a_server_that_lost_its_data_does_not_take_over_the_experiment_now_at_its_id(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Resumed, sweep A updated colleague B's experiment 1 (``{'observation_budget': 5}``) and ran its trials in it."""
    a = sweep(folder(tmp_path, "a"), api_env, 3).assert_ok()
    assert str(a.results["experiment_id"]) == "1"
    new = a_new_server_at_the_same_url(server)
    try:
        b = sweep(folder(tmp_path, "b"), api_env, 2).assert_ok()
        assert str(b.results["experiment_id"]) == "1"
        theirs = new.experiments["1"]
        observations, written = len(theirs.observations), writes(new)
        resumed = sweep(tmp_path / "a", api_env, 5)
        assert_one_clear_line(resumed)
        assert "SigOpt experiment 1 at" in resumed.output and "is not this sweep's: it was created" in resumed.output
        assert f"hydra-sigopt delete {a.sweep_dir} --local-only" in resumed.output, resumed.output
        assert "updated" not in resumed.output and "Continue this sweep with" not in resumed.output
        # Nothing was sent to B's experiment: no observation, no budget, no suggestion.
        assert writes(new) == written
        assert len(theirs.observations) == observations and theirs.data["observation_budget"] == 2
        assert [t["state"] for t in resumed.trials] == ["completed"] * 3  # A's journal as it was
    finally:
        new.stop()


def test_a_resume_whose_experiment_is_gone_says_so_and_what_the_journal_keeps(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Said: 'experiment 1 was not found ... check hydra.sweeper.api.experiment_id. Running trials were
    cancelled.', though the user never set api.experiment_id and no trial ran."""
    a = sweep(tmp_path, api_env, 2).assert_ok()
    new = a_new_server_at_the_same_url(server)
    try:
        resumed = sweep(tmp_path, api_env, 3)
        assert_one_clear_line(resumed)
        out = resumed.output
        assert "this sweep's SigOpt experiment 1 is not at" in out and "any more (HTTP 404" in out, out
        assert "trials.csv" in out and f"hydra-sigopt delete {a.sweep_dir} --local-only" in out
        assert "api.experiment_id" not in out and "cancelled" not in out and "Continue this sweep" not in out
        assert writes(new) == 0
    finally:
        new.stop()


def test_find_observation_ignores_another_sweeps_observation_of_the_same_suggestion_id(
    server: SigOptTestServer, api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that lost its data gives suggestion ids again: B's observation of suggestion 1 is not A's."""
    for key, value in api_env.items():
        monkeypatch.setenv(key, value)
    space = build_space({"x": "interval(0, 1)"})
    definition = ExperimentDefinition("t", space, parse_metrics([{"name": "y", "objective": "minimize"}]), 5, 1)
    other = ApiBackend()
    other.sweep_id = "sweep-b"
    eid = other.start(definition)
    s = other.suggest([])
    other.observe(s, [MetricValue("y", 1.0)])
    mine = ApiBackend()
    mine.sweep_id = "sweep-a"
    mine.start(definition, resume_id=eid)
    assert mine.find_observation(Suggestion(s.id, {"x": 0.5})) is None
    mine.restore([])
    assert mine.find_observation(Suggestion(s.id, {"x": 0.5})) is None
    assert other.find_observation(Suggestion(s.id, {"x": 0.5})) is not None


def test_attach_refuses_an_experiment_of_another_search_naming_each_difference(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Only names were compared: the sweep logged ``alpha ... log scale`` while the server searched
    linearly in other bounds, and ``mse: minimize`` while the server maximized it."""
    own = sweep(folder(tmp_path, "a"), api_env, 2).assert_ok()
    eid = str(own.results["experiment_id"])
    attached = f"hydra.sweeper.api.experiment_id={eid}"
    other = (
        "hydra.sweeper.params.alpha='interval(0.0001, 10)'",
        "hydra.sweeper.params.l1_ratio='interval(0.0, 2.0)'",
        "hydra.sweeper.metrics.0.objective=maximize",
    )
    written = writes(server)
    refused = sweep(folder(tmp_path, "b"), api_env, 2, attached, *other)
    assert_one_clear_line(refused)
    out = refused.output
    assert f"experiment {eid} at {server.url} is another search than the sweep's config" in out, out
    assert "parameter alpha is double in [0.0001, 10], log scale there, double in [0.0001, 10] here" in out
    assert "parameter l1_ratio is double in [0, 1] there, double in [0, 2] here" in out
    assert "metric mse is to minimize there, to maximize here" in out
    assert "metric fit_seconds" not in out  # the same
    assert writes(server) == written and not (tmp_path / "b" / "sweep").exists()
    grid = sweep(folder(tmp_path, "c"), api_env, 2, attached, "hydra.sweeper.params.l1_ratio='choice(0.25, 0.5)'")
    assert_one_clear_line(grid)
    assert "parameter l1_ratio is double in [0, 1] there, double on the grid [0.25, 0.5] here" in grid.output
    same = sweep(folder(tmp_path, "d"), api_env, 3, attached).assert_ok()  # the same search: attached
    assert str(same.results["experiment_id"]) == eid


def test_delete_of_the_sweep_that_created_a_shared_experiment_keeps_it_for_the_others(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """``hydra-sigopt delete --yes`` of the creating sweep deleted the experiment other sweeps attached to."""
    a = sweep(folder(tmp_path, "a"), api_env, 2).assert_ok()
    eid = str(a.results["experiment_id"])
    sweep(folder(tmp_path, "b"), api_env, 2, f"hydra.sweeper.api.experiment_id={eid}").assert_ok()
    deleted = hydra_sigopt("delete", "--yes", str(a.sweep_dir), env=api_env)
    assert deleted.returncode == 0, deleted.stderr
    assert (
        f"SigOpt experiment {eid} is left as it is: 2 observations and 0 open suggestions of other sweeps are in it"
        in deleted.stdout
    ), deleted.stdout
    assert "Deleted SigOpt experiment" not in deleted.stdout and TOKEN not in deleted.stdout + deleted.stderr
    assert not server.experiments[eid].deleted and len(server.experiments[eid].observations) == 4
    assert not a.sweep_dir.exists()


def test_delete_of_an_attached_sweep_whose_experiment_is_gone_says_so(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Said: 'SigOpt experiment 1 is left as it is ... its open suggestions were released' of an experiment
    the server no longer had."""
    a = sweep(folder(tmp_path, "a"), api_env, 2).assert_ok()
    eid = str(a.results["experiment_id"])
    b = sweep(folder(tmp_path, "b"), api_env, 2, f"hydra.sweeper.api.experiment_id={eid}").assert_ok()
    new = a_new_server_at_the_same_url(server)
    try:
        refused = hydra_sigopt("delete", "--yes", str(b.sweep_dir), env=api_env)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        said = refused.stdout + refused.stderr
        assert f"SigOpt experiment {eid} is not at {new.url} any more (HTTP 404" in said, said
        assert "left as it is" not in said and "released" not in said
        assert "hydra-sigopt delete --local-only" in said and (b.sweep_dir / "trials.csv").is_file()
        local = hydra_sigopt("delete", "--yes", "--local-only", str(b.sweep_dir), env=api_env)
        assert local.returncode == 0, local.stderr
        assert not b.sweep_dir.exists()
    finally:
        new.stop()


def test_delete_after_the_server_lost_its_data_leaves_the_experiment_now_at_the_id(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """A colleague's new experiment 1 is not the deleted sweep's experiment 1."""
    a = sweep(folder(tmp_path, "a"), api_env, 2).assert_ok()
    new = a_new_server_at_the_same_url(server)
    try:
        sweep(folder(tmp_path, "b"), api_env, 2).assert_ok()
        deleted = hydra_sigopt("delete", "--yes", str(a.sweep_dir), env=api_env)
        assert deleted.returncode == 0, deleted.stderr
        assert "SigOpt experiment 1 at" in deleted.stdout and "is not this sweep's" in deleted.stdout
        assert "it is left as it is" in deleted.stdout and "Deleted SigOpt experiment" not in deleted.stdout
        assert not new.experiments["1"].deleted and len(new.experiments["1"].observations) == 2
        assert not a.sweep_dir.exists()
    finally:
        new.stop()


def test_a_sweep_whose_experiment_the_server_lost_meanwhile_says_so_not_continue(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """Said 'Trial #1's result is not posted yet (...HTTP 404...); a resumed sweep posts it' and 'Continue this
    sweep with: ...', and the resume failed forever."""
    from conftest import start_example

    proc, sweep_dir = start_example(
        tmp_path, API, "hydra.sweeper.observation_budget=6", "sleep_s=1.5", env={**api_env, "SIGOPT_ENV_FILE": ""}
    )
    deadline = time.time() + 120
    while not (server.experiments and server.experiments["1"].observations) and time.time() < deadline:
        time.sleep(0.1)
    new = a_new_server_at_the_same_url(server)
    try:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode != 0 and "Traceback" not in out and TOKEN not in out
        assert f"this sweep's SigOpt experiment 1 is not at {new.url} any more (HTTP 404" in out, out
        assert "keeps every result of this sweep (trials.csv, hydra-sigopt best)" in out
        assert f"hydra-sigopt delete {sweep_dir} --local-only" in out
        assert "a resumed sweep" not in out and "Continue this sweep" not in out and "api.experiment_id" not in out
        assert "not deleted" not in out  # no open suggestion to release on a server that has none of the sweep's
    finally:
        new.stop()
        if proc.poll() is None:
            proc.kill()


def test_a_resume_tells_its_experiment_from_one_created_in_the_same_second_at_its_id(
    tmp_path: Path, server: SigOptTestServer, api_env: dict[str, str]
) -> None:
    """The check compared ``created``, which a server gives in whole seconds: colleague B's experiment
    1, made in the same second as A's on a server that lost its data, passed for A's, and the
    resumed sweep A updated it (``{'observation_budget': 5}``) and ran its trials in it."""
    sweep(folder(tmp_path, "a"), api_env, 3).assert_ok()
    created = server.experiments["1"].data["created"]
    new = a_new_server_at_the_same_url(server)
    try:
        sweep(folder(tmp_path, "b"), api_env, 2).assert_ok()
        theirs = new.experiments["1"]
        theirs.data["created"] = created  # made within the same second as A's
        observations, written = len(theirs.observations), writes(new)
        resumed = sweep(tmp_path / "a", api_env, 5)
        assert_one_clear_line(resumed)
        assert "SigOpt experiment 1 at" in resumed.output and "is not this sweep's" in resumed.output, resumed.output
        assert writes(new) == written and len(theirs.observations) == observations
        assert theirs.data["observation_budget"] == 2
    finally:
        new.stop()
