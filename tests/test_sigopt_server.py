"""The SigOpt test server, driven only through the real ``sigopt`` client (HTTP driver) over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hydra_sigopt.sigopt_client import import_sigopt

# `import sigopt` needs a project name outside a normal directory: set for the import only, not for the
# rest of the test session (the sweeper reads SIGOPT_PROJECT, and a server refuses a project it lacks).
import_sigopt()

import requests  # noqa: E402
from sigopt import Connection  # noqa: E402
from sigopt.exception import ApiException, ConnectionException  # noqa: E402
from sigopt_server import SigOptTestServer  # noqa: E402

TOKEN = "good-token"
EXP = r"/v1/experiments/\d+"
OBS = r"/v1/experiments/\d+/observations"
SUG = r"/v1/experiments/\d+/suggestions"


@pytest.fixture
def server() -> Iterator[SigOptTestServer]:
    with SigOptTestServer(tokens={TOKEN}, seed=0) as srv:
        yield srv


@pytest.fixture
def conn(server: SigOptTestServer) -> Connection:
    c = Connection(client_token=TOKEN)
    c.set_api_url(server.url)
    c.set_timeout(10)
    return c


def make_experiment(conn: Connection, **overrides):
    body = dict(
        name="test experiment",
        parameters=[
            dict(name="x", type="double", bounds=dict(min=0.0, max=1.0)),
            dict(name="n", type="int", bounds=dict(min=1, max=1000)),
        ],
        metrics=[dict(name="loss", objective="minimize")],
        observation_budget=10,
        parallel_bandwidth=3,
    )
    body.update(overrides)
    return conn.experiments().create(**body)


def all_observations(conn: Connection, experiment_id: str, **params) -> list:
    return list(conn.experiments(experiment_id).observations().fetch(**params).iterate_pages())


# -- experiments -------------------------------------------------------------------------------------------------------


def test_create_fetch_delete_experiment(server: SigOptTestServer, conn: Connection) -> None:
    conn.clients("1").projects().create(id="proj", name="Project")
    e = make_experiment(
        conn,
        metadata={"sweeper": "hydra", "seed": 3},
        project="proj",
        type="offline",
        conditionals=[dict(name="opt", values=["sgd", "adam"])],
        parameters=[
            dict(name="lr", type="double", bounds=dict(min=1e-5, max=1.0), transformation="log"),
            dict(name="momentum", type="double", bounds=dict(min=0, max=1), conditions=dict(opt=["sgd"])),
            dict(name="layers", type="int", grid=[1, 2, 4]),
            dict(name="act", type="categorical", categorical_values=["relu", dict(name="tanh")]),
        ],
        linear_constraints=[dict(type="less_than", threshold=1.5, terms=[dict(name="lr", weight=1)])],
    )
    assert e.id == "1"
    assert e.state == "active"
    assert dict(e.metadata) == {"sweeper": "hydra", "seed": 3}  # Metadata == dict is False: compare dicts
    assert e.project == "proj"
    assert e.parallel_bandwidth == 3
    assert e.observation_budget == 10
    assert e.progress.observation_count == 0
    assert [p.name for p in e.parameters] == ["lr", "momentum", "layers", "act"]
    assert [c.name for c in e.parameters[3].categorical_values] == ["relu", "tanh"]
    assert e.metrics[0].objective == "minimize" and e.metrics[0].strategy == "optimize"

    fetched = conn.experiments(e.id).fetch()
    assert fetched.to_json() == e.to_json()

    assert conn.experiments(e.id).delete() is None  # 204, no body
    assert server.experiments[e.id].deleted
    for call in (
        lambda: conn.experiments(e.id).fetch(),
        lambda: conn.experiments(e.id).suggestions().create(),
        lambda: conn.experiments(e.id).observations().fetch(),
    ):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status_code == 404
        assert e.id in err.value.message
        assert err.value.to_json() == {"message": err.value.message, "status": 404}

    second = make_experiment(conn)
    assert second.id == "2"
    ids = [x.id for x in conn.experiments().fetch().iterate_pages()]
    assert ids == ["2"]


def test_invalid_experiment_is_rejected_with_400(server: SigOptTestServer, conn: Connection) -> None:
    bad_parameter_sets = [
        [dict(name="x", type="double", bounds=dict(min=1, max=0))],
        [dict(name="x", type="int", bounds=dict(min=0.5, max=3))],
        [dict(name="x", type="categorical", categorical_values=["only"])],
        [dict(name="x", type="double", bounds=dict(min=0, max=1), transformation="log")],
        [dict(name="x", type="float", bounds=dict(min=0, max=1))],
    ]
    for parameters in bad_parameter_sets:
        with pytest.raises(ApiException) as err:
            make_experiment(conn, parameters=parameters)
        assert err.value.status_code == 400, parameters
        make_experiment(conn)  # a success in between keeps the client's failure back-off counter at zero
    with pytest.raises(ApiException) as err:
        make_experiment(conn, metrics=[dict(name="a"), dict(name="b"), dict(name="c")])
    assert err.value.status_code == 400
    assert all(not e.deleted for e in server.experiments.values())


def test_unknown_experiment_and_unknown_route(server: SigOptTestServer, conn: Connection) -> None:
    with pytest.raises(ApiException) as err:
        conn.experiments("999").fetch()
    assert err.value.status_code == 404
    assert "999" in str(err.value)
    e = make_experiment(conn)
    with pytest.raises(ApiException) as err:
        conn.experiments(e.id).importances().fetch()
    assert err.value.status_code == 404
    assert "Endpoint not found" in err.value.message


# -- suggestions and observations --------------------------------------------------------------------------------------


def test_parallel_open_suggestions_are_distinct(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    suggestions = [conn.experiments(e.id).suggestions().create() for _ in range(3)]
    assignments = [dict(s.assignments) for s in suggestions]
    assert len({tuple(sorted(a.items())) for a in assignments}) == 3
    assert len({s.id for s in suggestions}) == 3
    for s in suggestions:
        assert s.state == "open" and s.experiment == e.id
        assert 0.0 <= s.assignments["x"] <= 1.0
        assert isinstance(s.assignments["n"], int) and 1 <= s.assignments["n"] <= 1000
    assert [s["id"] for s in server.experiments[e.id].open_suggestions] == [s.id for s in suggestions]

    fetched = conn.experiments(e.id).suggestions(suggestions[1].id).fetch()
    assert fetched.to_json() == suggestions[1].to_json()


def test_observation_by_suggestion_closes_it(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s = conn.experiments(e.id).suggestions().create()
    o = (
        conn.experiments(e.id)
        .observations()
        .create(suggestion=s.id, values=[dict(name="loss", value=0.25, value_stddev=0.01)], metadata={"run": "a"})
    )
    assert o.suggestion == s.id
    assert o.assignments == s.assignments
    assert [(v.name, v.value, v.value_stddev) for v in o.values] == [("loss", 0.25, 0.01)]
    assert o.failed is False
    assert dict(o.metadata) == {"run": "a"}
    assert conn.experiments(e.id).suggestions(s.id).fetch().state == "closed"
    assert server.experiments[e.id].open_suggestions == []
    assert conn.experiments(e.id).fetch().progress.observation_count == 1

    # The same suggestion cannot be observed twice; an unknown suggestion is a bad parameter too.
    for sid in (s.id, "12345"):
        with pytest.raises(ApiException) as err:
            conn.experiments(e.id).observations().create(suggestion=sid, values=[dict(name="loss", value=1.0)])
        assert err.value.status_code == 400
        assert sid in err.value.message
        conn.experiments(e.id).fetch()  # reset the client's consecutive-failure counter
    assert len(server.experiments[e.id].observations) == 1

    # Observations by explicit assignments are validated against the parameters.
    ok = conn.experiments(e.id).observations().create(assignments={"x": 0.5, "n": 7}, values=[{"value": 2.0}])
    assert ok.suggestion is None and ok.values[0].name == "loss"
    with pytest.raises(ApiException) as err:
        conn.experiments(e.id).observations().create(assignments={"x": 5.0, "n": 7}, values=[{"value": 2.0}])
    assert err.value.status_code == 400


def test_failed_observation_and_listing_with_metadata(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s1 = conn.experiments(e.id).suggestions().create()
    s2 = conn.experiments(e.id).suggestions().create()
    conn.experiments(e.id).observations().create(
        suggestion=s1.id, values=[dict(name="loss", value=1.5)], metadata={"trial": 0, "host": "a"}
    )
    failed = conn.experiments(e.id).observations().create(suggestion=s2.id, failed=True, metadata={"trial": 1})
    assert failed.failed is True
    assert failed.values == []

    listed = all_observations(conn, e.id)
    assert [o.suggestion for o in listed] == [s2.id, s1.id]  # newest first, like the real API
    assert [o.failed for o in listed] == [True, False]
    assert [dict(o.metadata) for o in listed] == [{"trial": 1}, {"trial": 0, "host": "a"}]
    assert listed[1].values[0].value == 1.5
    assert conn.experiments(e.id).fetch().progress.observation_count == 2

    s3 = conn.experiments(e.id).suggestions().create()
    with pytest.raises(ApiException) as err:  # a failed observation cannot carry values
        conn.experiments(e.id).observations().create(suggestion=s3.id, failed=True, values=[dict(value=1.0)])
    assert err.value.status_code == 400
    conn.experiments(e.id).fetch()
    with pytest.raises(ApiException) as err:  # a successful one needs them
        conn.experiments(e.id).observations().create(suggestion=s3.id)
    assert err.value.status_code == 400
    assert [s["id"] for s in server.experiments[e.id].open_suggestions] == [s3.id]


def test_client_pages_through_observations(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    for i in range(5):
        conn.experiments(e.id).observations().create(assignments={"x": i / 10, "n": i + 1}, values=[dict(value=i)])
    listed = all_observations(conn, e.id, limit=2)
    assert [o.values[0].value for o in listed] == [4, 3, 2, 1, 0]
    pages = server.requests_to("GET", OBS)
    assert [r.query for r in pages] == [{"limit": "2"}, {"limit": "2", "before": "4"}, {"limit": "2", "before": "2"}]


def test_best_assignments_single_metric(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    with_no_data = list(conn.experiments(e.id).best_assignments().fetch().iterate_pages())
    assert with_no_data == []
    observed = {}
    for x, loss in [(0.1, 3.0), (0.2, 0.5), (0.3, 2.0)]:
        o = conn.experiments(e.id).observations().create(assignments={"x": x, "n": 1}, values=[dict(value=loss)])
        observed[x] = o.id
    conn.experiments(e.id).observations().create(assignments={"x": 0.9, "n": 1}, failed=True)
    best = list(conn.experiments(e.id).best_assignments().fetch().iterate_pages())
    assert len(best) == 1
    assert best[0].id == observed[0.2]
    assert dict(best[0].assignments) == {"x": 0.2, "n": 1}
    assert best[0].values[0].value == 0.5


def test_best_assignments_pareto_front(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(
        conn,
        metrics=[
            dict(name="acc", objective="maximize"),
            dict(name="latency", objective="minimize", threshold=100.0),
            dict(name="mem", objective="minimize", strategy="constraint", threshold=8.0),
            dict(name="note", strategy="store"),
        ],
    )
    points = {
        0.1: (0.90, 50.0, 4.0),  # front
        0.2: (0.95, 80.0, 4.0),  # front
        0.3: (0.85, 60.0, 4.0),  # dominated by 0.1
        0.4: (0.99, 150.0, 4.0),  # best accuracy, but latency misses its threshold
        0.5: (0.98, 40.0, 9.0),  # would dominate, but the memory constraint fails
        0.6: (0.80, 10.0, 2.0),  # front
    }
    for x, (acc, lat, mem) in points.items():
        conn.experiments(e.id).observations().create(
            assignments={"x": x, "n": 1},
            values=[
                dict(name="acc", value=acc),
                dict(name="latency", value=lat),
                dict(name="mem", value=mem),
                dict(name="note", value=0),
            ],
        )
    conn.experiments(e.id).observations().create(assignments={"x": 0.7, "n": 1}, failed=True)
    best = list(conn.experiments(e.id).best_assignments().fetch().iterate_pages())
    assert sorted(b.assignments["x"] for b in best) == [0.1, 0.2, 0.6]
    assert all({v.name for v in b.values} == {"acc", "latency", "mem", "note"} for b in best)


def test_open_suggestion_listing_and_deletion(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s1, s2, s3, s4 = (conn.experiments(e.id).suggestions().create() for _ in range(4))
    conn.experiments(e.id).observations().create(suggestion=s1.id, values=[dict(value=1.0)])

    open_ids = [s.id for s in conn.experiments(e.id).suggestions().fetch(state="open").iterate_pages()]
    assert sorted(open_ids) == sorted([s2.id, s3.id, s4.id])
    assert server.requests_to("GET", SUG)[-1].query == {"state": "open"}

    assert conn.experiments(e.id).suggestions(s2.id).delete() is None
    with pytest.raises(ApiException) as err:
        conn.experiments(e.id).suggestions(s2.id).fetch()
    assert err.value.status_code == 404

    conn.experiments(e.id).suggestions().delete(state="open")
    delete_all = server.requests_to("DELETE", SUG)
    assert [(r.query, r.body) for r in delete_all] == [({"state": "open"}, None)]
    assert list(conn.experiments(e.id).suggestions().fetch(state="open").iterate_pages()) == []
    assert server.experiments[e.id].open_suggestions == []
    remaining = [s.id for s in conn.experiments(e.id).suggestions().fetch().iterate_pages()]
    assert remaining == [s1.id]
    with pytest.raises(ApiException) as err:  # a deleted suggestion cannot be observed
        conn.experiments(e.id).observations().create(suggestion=s3.id, values=[dict(value=1.0)])
    assert err.value.status_code == 400


# -- authentication ----------------------------------------------------------------------------------------------------


def test_bad_token_is_401_and_never_echoed(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    secret = "bad-token-0123456789-secret"
    bad = Connection(client_token=secret)
    bad.set_api_url(server.url)
    with pytest.raises(ApiException) as err:
        bad.experiments(e.id).fetch()
    exc = err.value
    assert exc.status_code == 401
    assert secret not in str(exc) and secret not in repr(exc) and secret not in str(exc.to_json())
    assert exc.to_json()["status"] == 401
    # The client authenticates with HTTP basic auth, the token as user name; every request carries it.
    assert [r.token for r in server.requests] == [TOKEN, secret]
    with pytest.raises(ValueError):  # no token at all is refused by the client before any request
        Connection(client_token="")


# -- injected faults ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 500, 502, 503])
def test_injected_error_status_raises_api_exception_without_retry(
    server: SigOptTestServer, conn: Connection, status: int
) -> None:
    e = make_experiment(conn)
    server.faults.add(method="GET", path=EXP, kind=str(status))
    with pytest.raises(ApiException) as err:
        conn.experiments(e.id).fetch()
    assert err.value.status_code == status
    assert err.value.to_json()["status"] == status
    assert len(server.requests_to("GET", EXP)) == 1  # no retry
    assert conn.experiments(e.id).fetch().id == e.id  # the fault fired once
    assert len(server.faults) == 0


def test_429_is_retried_by_the_client(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    server.faults.add(method="GET", path=EXP, kind="429", times=1)
    start = time.monotonic()
    assert conn.experiments(e.id).fetch().id == e.id
    assert time.monotonic() - start < 3  # full-jitter exponential back-off: the first wait is uniform(0, 1) s
    assert len(server.requests_to("GET", EXP)) == 2


def test_persistent_429_gives_up_after_the_timeout(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    conn.set_timeout(1)  # also the retry budget (backoff max_time) of the client
    server.faults.add(method="GET", path=EXP, kind="429", times=None)
    start = time.monotonic()
    with pytest.raises(ApiException) as err:
        conn.experiments(e.id).fetch()
    elapsed = time.monotonic() - start
    assert err.value.status_code == 429
    assert 0.9 <= elapsed < 3
    assert len(server.requests_to("GET", EXP)) >= 2


def test_faults_fire_in_order_added(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    server.faults.add(method="POST", path=SUG, kind="500")
    server.faults.add(method="POST", path=SUG, kind="503")
    server.faults.add(method="GET", path=SUG, kind="500")  # another route: not consumed below
    statuses = []
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            conn.experiments(e.id).suggestions().create()
        statuses.append(err.value.status_code)
    assert statuses == [500, 503]
    assert conn.experiments(e.id).suggestions().create().state == "open"
    assert len(server.faults) == 1
    assert len(server.experiments[e.id].open_suggestions) == 1


def test_slow_answer_past_client_timeout(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    conn.set_timeout(0.5)
    server.faults.add(method="GET", path=EXP, kind=("slow", 2))
    start = time.monotonic()
    with pytest.raises(ConnectionException) as err:
        conn.experiments(e.id).fetch()
    assert time.monotonic() - start < 1.9  # gave up at the 0.5 s timeout, not after the 2 s answer
    assert isinstance(err.value.__cause__, requests.exceptions.ReadTimeout)
    assert "Read timed out" in str(err.value)
    assert conn.experiments(e.id).fetch().id == e.id  # a new connection; the slow one is abandoned


def test_slow_observation_is_committed_after_the_client_gave_up(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s = conn.experiments(e.id).suggestions().create()
    conn.set_timeout(0.3)
    server.faults.add(method="POST", path=OBS, kind=("slow", 0.8))
    with pytest.raises(ConnectionException):
        conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=1.0)])
    deadline = time.monotonic() + 5
    while not server.experiments[e.id].observations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.experiments[e.id].observations) == 1


def test_drop_after_commit_records_the_observation(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s = conn.experiments(e.id).suggestions().create()
    server.faults.add(method="POST", path=OBS, kind="drop_after_commit")
    with pytest.raises(ConnectionException) as err:
        conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=1.0)])
    assert isinstance(err.value.__cause__, requests.exceptions.ConnectionError)
    assert "Remote end closed connection without response" in str(err.value)
    assert len(server.requests_to("POST", OBS)) == 1  # the client did not retry
    listed = all_observations(conn, e.id)
    assert [o.suggestion for o in listed] == [s.id]
    assert conn.experiments(e.id).suggestions(s.id).fetch().state == "closed"
    with pytest.raises(ApiException) as retry:  # a naive retry of the same suggestion is refused
        conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=1.0)])
    assert retry.value.status_code == 400
    assert len(all_observations(conn, e.id)) == 1


def test_drop_before_commit_records_nothing(server: SigOptTestServer, conn: Connection) -> None:
    e = make_experiment(conn)
    s = conn.experiments(e.id).suggestions().create()
    server.faults.add(method="POST", path=OBS, kind="drop_before_commit")
    with pytest.raises(ConnectionException):
        conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=1.0)])
    assert all_observations(conn, e.id) == []
    assert conn.experiments(e.id).suggestions(s.id).fetch().state == "open"
    conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=1.0)])  # the retry works
    assert len(all_observations(conn, e.id)) == 1


# -- sigoptlite behind the server --------------------------------------------------------------------------------------


def test_lite_suggestions_smoke() -> None:
    with SigOptTestServer(tokens={TOKEN}, suggestions="lite", projects={"p"}) as server:
        conn = Connection(client_token=TOKEN)
        conn.set_api_url(server.url)
        e = make_experiment(
            conn,
            parameters=[
                dict(name="x", type="double", bounds=dict(min=-2.0, max=2.0)),
                dict(name="y", type="double", bounds=dict(min=-2.0, max=2.0)),
            ],
            metadata={"k": "v"},  # stripped before sigoptlite sees it
            project="p",
        )
        for _ in range(6):
            s = conn.experiments(e.id).suggestions().create()
            x, y = s.assignments["x"], s.assignments["y"]
            assert -2.0 <= x <= 2.0 and -2.0 <= y <= 2.0
            conn.experiments(e.id).observations().create(suggestion=s.id, values=[dict(value=x * x + y * y)])
        pending = [conn.experiments(e.id).suggestions().create() for _ in range(2)]
        assert dict(pending[0].assignments) != dict(pending[1].assignments)  # constant liar
        assert conn.experiments(e.id).fetch().progress.observation_count == 6
        best = list(conn.experiments(e.id).best_assignments().fetch().iterate_pages())
        losses = [o.values[0].value for o in all_observations(conn, e.id)]
        assert len(best) == 1 and best[0].values[0].value == min(losses)


# -- what the real sigopt-server does (issue 15) ---------------------------------------------------------------------


def connect(server: SigOptTestServer, token: str = TOKEN, timeout: float = 10) -> Connection:
    c = Connection(client_token=token)
    c.set_api_url(server.url)
    c.set_timeout(timeout)
    return c


def test_development_experiments_are_invisible_to_the_regular_token_and_the_reverse() -> None:
    with SigOptTestServer(tokens={TOKEN}, dev_tokens={"dev-token"}) as server:
        regular, dev = connect(server), connect(server, "dev-token")
        dev_experiment, regular_experiment = make_experiment(dev), make_experiment(regular)
        assert dev_experiment.development and not regular_experiment.development
        for conn, eid, message in (
            (regular, dev_experiment.id, "development experiment .* with an api token"),
            (dev, regular_experiment.id, "production experiment .* with a development token"),
        ):
            with pytest.raises(ApiException, match=message) as info:
                conn.experiments(eid).delete()
            assert info.value.status_code == 403
        dev.experiments(dev_experiment.id).delete()
        assert server.experiments[dev_experiment.id].deleted


def test_a_project_must_exist(server: SigOptTestServer, conn: Connection) -> None:
    with pytest.raises(ApiException, match="Could not assign to project `nope`, the project does not exist") as info:
        make_experiment(conn, project="nope")
    assert info.value.status_code == 400 and not server.experiments
    client = conn.tokens("self").fetch().client
    with pytest.raises(ApiException) as missing:
        conn.clients(client).projects("nope").fetch()
    assert missing.value.status_code == 404
    conn.clients(client).projects().create(id="nope", name="Now it exists")
    assert conn.clients(client).projects("nope").fetch().name == "Now it exists"
    assert make_experiment(conn, project="nope").project == "nope"


@pytest.mark.parametrize(
    "where",
    ["name", "metadata value", "metadata key", "metadata keys"],
)
def test_the_servers_length_limits(server: SigOptTestServer, conn: Connection, where: str) -> None:
    at_limit = {
        "name": {"name": "n" * 100},
        "metadata value": {"metadata": {"k": "v" * 500}},
        "metadata key": {"metadata": {"k" * 100: 1}},
        "metadata keys": {"metadata": {f"k{i}": i for i in range(100)}},
    }[where]
    past_limit = {
        "name": {"name": "n" * 101},
        "metadata value": {"metadata": {"k": "v" * 501}},
        "metadata key": {"metadata": {"k" * 101: 1}},
        "metadata keys": {"metadata": {f"k{i}": i for i in range(101)}},
    }[where]
    e = make_experiment(conn, **at_limit)
    with pytest.raises(ApiException) as info:
        make_experiment(conn, **past_limit)
    assert info.value.status_code == 400
    if where != "name":  # suggestions and observations take the same metadata limits
        with pytest.raises(ApiException):
            conn.experiments(e.id).suggestions().create(**past_limit)
        s = conn.experiments(e.id).suggestions().create(**at_limit)
        with pytest.raises(ApiException):
            conn.experiments(e.id).observations().create(suggestion=s.id, values=[{"value": 1.0}], **past_limit)


def test_a_request_the_client_gave_up_on_is_carried_out(server: SigOptTestServer) -> None:
    e = make_experiment(connect(server))
    impatient = connect(server, timeout=0.5)
    server.faults.add("POST", SUG, ("late", 2.0))
    with pytest.raises(ConnectionException):
        impatient.experiments(e.id).suggestions().create()
    assert len(server.experiments[e.id].open_suggestions) == 1  # at once, not after the answer


def test_a_frozen_server_carries_out_every_held_request_once_thawed(server: SigOptTestServer) -> None:
    e = make_experiment(connect(server))
    impatient = connect(server, timeout=0.3)
    server.freeze()
    for _ in range(3):
        with pytest.raises(ConnectionException):
            impatient.experiments(e.id).suggestions().create()
    assert server.experiments[e.id].open_suggestions == []
    server.thaw()
    deadline = time.time() + 5
    while len(server.experiments[e.id].open_suggestions) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(server.experiments[e.id].open_suggestions) == 3


def test_a_lagging_model_worker_leaves_short_trials_with_filler_and_steers_long_ones() -> None:
    """As measured on the real server: suggestions come at once; the model's only once its worker caught up."""
    # A worker's step of 1 s: an answer that waited for it stands out from one slowed by a loaded machine.
    with SigOptTestServer(tokens={TOKEN}, model_step_s=1.0, seed=1) as server:
        conn = connect(server)
        e = make_experiment(conn)

        def trials(count: int, trial_s: float) -> list[str]:
            sources = []
            for _ in range(count):
                started = time.time()
                s = conn.experiments(e.id).suggestions().create()
                assert time.time() - started < 0.8  # answered at once, never waiting for the worker
                time.sleep(trial_s)
                conn.experiments(e.id).observations().create(suggestion=s.id, values=[{"value": 1.0}])
                sources.append(server.suggestion_sources[s.id])
            return sources

        started = time.time()
        fast = trials(10, 0.0)
        caught_up = (time.time() - started) / 1.0 + 1  # the model points the worker can have made meanwhile
        assert fast.count("model") <= caught_up and fast.count("filler") >= 5, (fast, caught_up)
        slow = trials(4, 3.0)  # trials three times the worker's step
        assert slow[1:].count("model") == 3, slow


# -- multitask, as sigopt-server's own integration tests (test_multitask_experiments.py) describe it ----------------

TASKS = [{"name": "cheapest", "cost": 0.1}, {"name": "expensive", "cost": 1.0}]


@pytest.mark.parametrize(
    "tasks",
    [
        [{"name": "only", "cost": 1.0}],
        [{"name": "a"}, {"name": "b"}],
        [{"name": "t", "cost": 1.0}, {"name": "t", "cost": 0.3}],
        [{"name": "t", "cost": 0.5}, {"name": "u", "cost": 0.3}],
        [{"name": "t", "cost": 1.0}, {"name": "u", "cost": 0.0}],
    ],
)
def test_bad_tasks_are_refused(conn: Connection, tasks: list) -> None:
    with pytest.raises(ApiException) as info:
        make_experiment(conn, tasks=tasks)
    assert info.value.status_code == 400


def test_a_multitask_experiment_needs_a_budget(conn: Connection) -> None:
    with pytest.raises(ApiException):
        make_experiment(conn, tasks=TASKS, observation_budget=None)


def test_multitask_suggestions_observations_and_best_assignments(conn: Connection) -> None:
    e = make_experiment(conn, tasks=TASKS, observation_budget=60)
    assert [(t.name, t.cost) for t in e.tasks] == [("cheapest", 0.1), ("expensive", 1.0)]
    s = conn.experiments(e.id).suggestions().create()
    assert s.task.name in ("cheapest", "expensive")
    o = conn.experiments(e.id).observations().create(suggestion=s.id, values=[{"value": 0.5}])
    assert o.task.name == s.task.name  # the suggestion's task
    with pytest.raises(ApiException):  # by assignments, a task is required
        conn.experiments(e.id).observations().create(assignments=s.assignments, values=[{"value": 0.1}])
    cheap = (
        conn.experiments(e.id)
        .observations()
        .create(assignments=s.assignments, values=[{"value": 0.1}], task={"name": "cheapest"})
    )
    assert cheap.task.name == "cheapest"
    full = (
        conn.experiments(e.id)
        .observations()
        .create(assignments=s.assignments, values=[{"value": 0.3}], task="expensive")
    )
    assert full.task.cost == 1.0
    best = conn.experiments(e.id).best_assignments().fetch()
    assert [b.value for b in best.data] == [0.3]  # the full task's only: 0.1 was the cheap task's
    progress = conn.experiments(e.id).fetch().progress
    assert progress.observation_budget_consumed == pytest.approx(0.1 + 1.0 + (s.task.cost))
    with pytest.raises(ApiException):  # tasks cannot be changed
        conn.experiments(e.id).update(tasks=TASKS)
