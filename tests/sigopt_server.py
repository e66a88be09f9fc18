"""A small SigOpt-compatible HTTP API server for tests (standard library only).

The real ``sigopt`` client (``sigopt.Connection``, HTTP driver) talks to it over real HTTP::

    with SigOptTestServer(tokens={"good-token"}) as server:
        conn = sigopt.Connection(client_token="good-token")
        conn.set_api_url(server.url)  # "http://127.0.0.1:PORT/api"; the client appends "/v1/..."
        experiment = conn.experiments().create(name="x", parameters=[...], metrics=[...])

What the client sends (sigopt 8.8.3, ``sigopt/request_driver.py``): HTTP basic auth with the API token as
user name and an empty password; ``Content-Type: application/json``; POST and PUT bodies as JSON; GET and
DELETE arguments as query parameters (``str(value)``, dicts and lists JSON-encoded, ``None`` dropped). It
parses every 2xx body as JSON except 204, and turns any other status into ``ApiException(body, status)``,
reading ``body["message"]``. Error bodies here are shaped like sigopt-server's: ``{"message", "status"}``.

Fault injection: ``server.faults.add(method="POST", path=r"/v1/experiments/\\d+/observations", kind="500")``.
``path`` is a regex matched against the whole path below ``/api`` (``/v1/...``; the raw path with the
``/api`` prefix also matches). Faults are checked before authentication, in the order added, and each fires
``times`` times (``None``: forever). Kinds: ``"401" "403" "404" "429" "500" "502" "503"`` (an error answer
with a JSON body), ``("slow", seconds)`` (sleep, then handle the request normally), ``("late", seconds)``
(handle the request, then hold the answer back), ``"drop_after_commit"``
(handle the request, then close the connection without any response) and ``"drop_before_commit"`` (close the
connection without doing anything). Every request, faulted or not, is appended to ``server.requests``;
``server.holding()`` counts the requests a ``slow`` or ``late`` fault holds now.

What the real sigopt-server does and this one does too (issue 15: a kinder stand-in let defects through):

* Experiments made with a development token (``dev_tokens=``) are invisible to the regular token, and the
  reverse: HTTP 403 with the real server's message. Development experiments get random suggestions.
* ``project`` must name a project that exists (``projects=``, or ``POST /v1/clients/1/projects``), else 400
  ``Could not assign to project `x`, the project does not exist.``; ``GET /v1/tokens/self`` names the client.
* Experiment names of at most 100 characters; metadata (experiment, suggestion, observation) of at most 100
  keys, keys of at most 100 characters, string values of at most 500.
* A request the client gave up on is still carried out: the fault kind ``("late", seconds)`` handles the
  request, then holds the answer back; ``server.freeze()`` holds every request until ``server.thaw()``, then
  carries them all out, as a stopped (SIGSTOP) API process does with the requests queued meanwhile.
* ``model_step_s=``: the optimization worker lags. A suggestion request is answered at once: with the point
  the worker computed last if one is queued, else with random filler. The worker takes ``model_step_s`` per
  point and starts after each new observation (the real one: 4.5 s median, up to 38 s, on 2 cores).
  ``server.suggestion_sources[id]`` says which ("model" or "filler"). Without it, every suggestion comes from
  the model at once (kinder than the real server; fine where the test is not about that).
* Several clients may share one experiment (``experiment_id`` attach): nothing but their metadata tells their
  observations apart.

Suggestions: ``suggestions="random"`` samples uniformly (log-uniformly for ``transformation: log``) within the
bounds, from ``grid`` or ``categorical_values``, honours conditionals and linear constraints (by rejection), and
avoids repeating an open suggestion. ``suggestions="lite"`` asks sigoptlite (imported lazily); several open
suggestions are served by the constant-liar method: a deep copy of the experiment's ``LocalDriver`` gets a
placeholder observation (the mean of the observed values) for each open suggestion and is asked for one more.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "ApiError",
    "ExperimentState",
    "Fault",
    "FaultSet",
    "RecordedRequest",
    "SigOptTestServer",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api"
CLIENT_ID = "1"  # the one client (team) every token here belongs to
ERROR_KINDS = frozenset({"400", "401", "403", "404", "409", "429", "500", "502", "503", "504"})
DROP_KINDS = frozenset({"drop_after_commit", "drop_before_commit"})
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000


class ApiError(Exception):
    """An error answer: ``{"message": message, "status": status}`` with that HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "status": self.status}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


class RecordedRequest(NamedTuple):
    method: str
    path: str  # below /api, e.g. "/v1/experiments/1/observations"
    query: dict[str, str]
    body: Any  # parsed JSON body, or None
    token: str | None  # the basic-auth user name the client sent, or None


@dataclass
class Fault:
    method: str | None
    path: re.Pattern[str]
    kind: Any
    times: int | None = 1
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, api_path: str, raw_path: str) -> bool:
        if self.method not in (None, "*") and self.method.upper() != method:
            return False
        return bool(self.path.fullmatch(api_path) or self.path.fullmatch(raw_path))


class FaultSet:
    """Injected faults, matched by method and full-path regex, consumed in the order added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, method: str | None = None, path: str = r".*", kind: Any = "500", times: int | None = 1) -> Fault:
        kind = _check_kind(kind)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None (forever)")
        fault = Fault(method=method.upper() if method else None, path=re.compile(path), kind=kind, times=times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, api_path: str, raw_path: str) -> Any:
        """Return the kind of the first live fault matching this request (consuming one firing), else None."""
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(method, api_path, raw_path):
                    fault.fired += 1
                    return fault.kind
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def __len__(self) -> int:
        return len(self.pending)


def _check_kind(kind: Any) -> Any:
    if isinstance(kind, int):
        kind = str(kind)
    if isinstance(kind, str):
        if kind in ERROR_KINDS or kind in DROP_KINDS:
            return kind
        if kind in ("slow", "late"):
            return (kind, 1.0)
    elif isinstance(kind, (tuple, list)) and len(kind) == 2 and kind[0] in ("slow", "late"):
        seconds = float(kind[1])
        if seconds < 0:
            raise ValueError(f"{kind[0]} fault needs a non-negative number of seconds")
        return (kind[0], seconds)
    raise ValueError(f"unknown fault kind: {kind!r}")


@dataclass
class ExperimentState:
    """Server-side state of one experiment; inspect it from tests through ``server.experiments[id]``."""

    id: str
    data: dict[str, Any]  # the experiment as served, without "progress"
    observations: list[dict[str, Any]] = field(default_factory=list)
    suggestions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> suggestion, includes closed
    deleted_suggestions: set[str] = field(default_factory=set)
    deleted: bool = False
    driver: Any = None  # sigoptlite LocalDriver in "lite" mode
    model_queue: list[dict[str, Any]] = field(default_factory=list)  # points the lagging worker computed

    @property
    def development(self) -> bool:
        return bool(self.data.get("development"))

    @property
    def open_suggestions(self) -> list[dict[str, Any]]:
        return [
            s for sid, s in self.suggestions.items() if s["state"] == "open" and sid not in self.deleted_suggestions
        ]

    @property
    def parameters(self) -> list[dict[str, Any]]:
        return self.data["parameters"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return self.data["metrics"]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.data.get("tasks") or []

    def task(self, given: Any, what: str) -> dict[str, Any] | None:
        """The experiment's task named by ``given`` (a name, or a task object), required in a multitask one."""
        if not self.tasks:
            if given is not None:
                raise _bad(f"{what}: this experiment has no tasks")
            return None
        name = given.get("name") if isinstance(given, dict) else given
        found = [t for t in self.tasks if t["name"] == name]
        if not found:
            raise _bad(f"{what} needs a task of this experiment: one of {[t['name'] for t in self.tasks]}")
        return copy.deepcopy(found[0])

    @property
    def full_task(self) -> dict[str, Any] | None:
        return next(({"name": t["name"], "cost": t["cost"]} for t in self.tasks if t["cost"] == 1.0), None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _jsonable(value: Any) -> Any:
    """Plain JSON types (sigoptlite can hand back numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Experiment validation and normalisation
# ---------------------------------------------------------------------------------------------------------------------

PARAMETER_TYPES = ("double", "int", "categorical")
EXPERIMENT_TYPES = (None, "offline", "random")
OBJECTIVES = ("maximize", "minimize")
STRATEGIES = ("optimize", "store", "constraint")


#: sigopt-server's Experiment limits (NAME_MAX_LENGTH, CLIENT_PROVIDED_DATA_MAX_*).
NAME_MAX_LENGTH = 100
METADATA_MAX_KEYS = 100
METADATA_MAX_KEY_LENGTH = 100
METADATA_MAX_LENGTH = 500


def _check_metadata(metadata: Any, what: str = "metadata") -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad(f"Invalid type for {what}: expected an object")
    if len(metadata) > METADATA_MAX_KEYS:
        raise _bad(f"{what} has more than {METADATA_MAX_KEYS} properties")
    for key, value in metadata.items():
        if not (value is None or isinstance(value, str) or _is_number(value)):
            raise _bad(f"Invalid {what} value for key {key!r}: metadata values must be strings, numbers or null")
        if isinstance(value, str) and len(value) > METADATA_MAX_LENGTH:
            raise _bad(f"{value[:20]!r}... is too long (more than {METADATA_MAX_LENGTH} characters)")
        if len(key) > METADATA_MAX_KEY_LENGTH:
            key_str = f"{key[:10]}...{key[-10:]}"
            raise _bad(f"The length of the metadata key '{key_str}' must be less than {METADATA_MAX_KEY_LENGTH}")
    return {k: v for k, v in metadata.items() if v is not None}


def _normalize_conditionals(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("Invalid type for conditionals: expected an array")
    out, seen = [], set()
    for c in raw:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise _bad("Each conditional needs a string name")
        values = c.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise _bad(f"Conditional {c['name']} needs a non-empty array of string values")
        if c["name"] in seen:
            raise _bad(f"Duplicate conditional name: {c['name']}")
        seen.add(c["name"])
        out.append({"object": "conditional", "name": c["name"], "values": list(values)})
    return out


def _normalize_parameter(p: Any, conditionals: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise _bad("Each parameter must be an object")
    name, ptype = p.get("name"), p.get("type")
    if not isinstance(name, str) or not name:
        raise _bad("Each parameter needs a string name")
    if ptype not in PARAMETER_TYPES:
        raise _bad(f"Invalid type for parameter {name}: {ptype!r} (expected one of {', '.join(PARAMETER_TYPES)})")
    out: dict[str, Any] = {
        "object": "parameter",
        "name": name,
        "type": ptype,
        "bounds": None,
        "categorical_values": None,
        "conditions": {},
        "default_value": p.get("default_value"),
        "grid": [],
        "precision": p.get("precision"),
        "prior": p.get("prior"),
        "transformation": p.get("transformation"),
    }
    bounds, grid = p.get("bounds"), p.get("grid")
    if ptype == "categorical":
        values = p.get("categorical_values")
        if not isinstance(values, list) or len(values) < 2:
            raise _bad(f"Categorical parameter {name} needs at least 2 categorical_values")
        names = [v.get("name") if isinstance(v, dict) else v for v in values]
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise _bad(f"Categorical parameter {name} needs distinct string categorical_values")
        out["categorical_values"] = [
            {"object": "categorical_value", "name": n, "enum_index": i + 1} for i, n in enumerate(names)
        ]
        if bounds is not None or grid:
            raise _bad(f"Categorical parameter {name} cannot have bounds or grid")
    elif grid:
        if bounds is not None:
            raise _bad(f"Parameter {name} cannot have both bounds and grid")
        if not isinstance(grid, list) or len(grid) < 2 or not all(_is_number(g) for g in grid):
            raise _bad(f"Grid for parameter {name} needs at least 2 numbers")
        if len(set(grid)) != len(grid):
            raise _bad(f"Grid for parameter {name} has duplicate values")
        if ptype == "int":
            if not all(_is_int(g) for g in grid):
                raise _bad(f"Grid for int parameter {name} must hold integers")
            grid = [int(g) for g in grid]
        out["grid"] = sorted(grid)
    else:
        if not isinstance(bounds, dict) or not _is_number(bounds.get("min")) or not _is_number(bounds.get("max")):
            raise _bad(f"Parameter {name} of type {ptype} needs bounds with numeric min and max")
        lo, hi = bounds["min"], bounds["max"]
        if ptype == "int":
            if not (_is_int(lo) and _is_int(hi)):
                raise _bad(f"Bounds for int parameter {name} must be integers")
            lo, hi = int(lo), int(hi)
        if not lo < hi:
            raise _bad(f"Invalid bounds for parameter {name}: min must be less than max")
        out["bounds"] = {"object": "bounds", "min": lo, "max": hi}
    transformation = out["transformation"]
    if transformation not in (None, "none", "log"):
        raise _bad(f"Invalid transformation for parameter {name}: {transformation!r}")
    if transformation == "log":
        if ptype != "double":
            raise _bad(f"Log transformation is only supported for double parameters ({name})")
        low = out["bounds"]["min"] if out["bounds"] else min(out["grid"])
        if low <= 0:
            raise _bad(f"Log-transformed parameter {name} needs strictly positive bounds")
    conditions = p.get("conditions") or {}
    if not isinstance(conditions, dict):
        raise _bad(f"Conditions of parameter {name} must be an object")
    for cond_name, cond_values in conditions.items():
        if cond_name not in conditionals:
            raise _bad(f"Parameter {name} has a condition on unknown conditional {cond_name}")
        values = [cond_values] if isinstance(cond_values, str) else cond_values
        if not isinstance(values, list) or not values or any(v not in conditionals[cond_name] for v in values):
            raise _bad(f"Parameter {name} has invalid values for conditional {cond_name}")
        out["conditions"][cond_name] = list(values)
    return out


def _normalize_metrics(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _bad("Experiments need a non-empty array of metrics")
    out, seen = [], set()
    for m in raw:
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
            raise _bad("Each metric needs a string name")
        objective = m.get("objective") or "maximize"
        strategy = m.get("strategy") or "optimize"
        threshold = m.get("threshold")
        if objective not in OBJECTIVES:
            raise _bad(f"Invalid objective for metric {m['name']}: {objective!r}")
        if strategy not in STRATEGIES:
            raise _bad(f"Invalid strategy for metric {m['name']}: {strategy!r}")
        if threshold is not None and not _is_number(threshold):
            raise _bad(f"Invalid threshold for metric {m['name']}")
        if m["name"] in seen:
            raise _bad(f"Duplicate metric name: {m['name']}")
        seen.add(m["name"])
        out.append(
            {
                "object": "metric",
                "name": m["name"],
                "objective": objective,
                "strategy": strategy,
                "threshold": threshold,
            }
        )
    optimized = [m for m in out if m["strategy"] == "optimize"]
    if len(optimized) > 2:
        raise _bad("Experiments can have at most 2 optimized metrics")
    if not optimized and not any(m["strategy"] == "constraint" for m in out):
        raise _bad("Experiments need at least one optimized or constraint metric")
    if any(m["strategy"] == "constraint" and m["threshold"] is None for m in out):
        raise _bad("Constraint metrics need a threshold")
    return out


def _normalize_linear_constraints(raw: Any, parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("Invalid type for linear_constraints: expected an array")
    by_name = {p["name"]: p for p in parameters}
    out = []
    for c in raw:
        if not isinstance(c, dict) or c.get("type") not in ("greater_than", "less_than"):
            raise _bad("Each linear constraint needs type greater_than or less_than")
        if not _is_number(c.get("threshold")):
            raise _bad("Each linear constraint needs a numeric threshold")
        terms = c.get("terms")
        if not isinstance(terms, list) or not terms:
            raise _bad("Each linear constraint needs terms")
        for t in terms:
            if not isinstance(t, dict) or t.get("name") not in by_name or not _is_number(t.get("weight")):
                raise _bad("Linear constraint terms need a known parameter name and a numeric weight")
            if by_name[t["name"]]["type"] == "categorical":
                raise _bad("Linear constraints cannot use categorical parameters")
        out.append(
            {
                "object": "linear_constraint",
                "type": c["type"],
                "threshold": c["threshold"],
                "terms": [{"object": "constraint_term", "name": t["name"], "weight": t["weight"]} for t in terms],
            }
        )
    return out


def _normalize_tasks(raw: Any, budget: Any) -> list[dict[str, Any]]:
    """Multitask, as sigopt-server's integration tests (test_multitask_experiments.py) check it: at
    least two tasks, each named and costed, distinct names and costs in (0, 1], one costing 1, and a budget."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) < 2:
        raise _bad("A multitask experiment needs at least 2 tasks")
    tasks = []
    for t in raw:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not _is_number(t.get("cost")):
            raise _bad(f"Invalid task {t!r}: a task needs a name and a cost")
        if not 0 < t["cost"] <= 1:
            raise _bad(f"Invalid cost for task {t['name']}: must be in (0, 1]")
        tasks.append({"object": "task", "name": t["name"], "cost": float(t["cost"])})
    if len({t["name"] for t in tasks}) != len(tasks) or len({t["cost"] for t in tasks}) != len(tasks):
        raise _bad("Task names and costs must be unique")
    if 1.0 not in {t["cost"] for t in tasks}:
        raise _bad("One task must have cost 1")
    if budget is None:
        raise _bad("observation_budget is required for a multitask experiment")
    return tasks


def _build_experiment(body: Any, experiment_id: str, now: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("Experiment create needs a JSON object body")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("Missing required json key `name`")
    if len(name) > NAME_MAX_LENGTH:
        raise _bad(f"Experiment names must be less than {NAME_MAX_LENGTH} characters")
    conditionals = _normalize_conditionals(body.get("conditionals"))
    cond_map = {c["name"]: c["values"] for c in conditionals}
    raw_params = body.get("parameters")
    if not isinstance(raw_params, list) or not raw_params:
        raise _bad("Experiments need a non-empty array of parameters")
    parameters = [_normalize_parameter(p, cond_map) for p in raw_params]
    names = [p["name"] for p in parameters] + list(cond_map)
    if len(set(names)) != len(names):
        raise _bad("Parameter and conditional names must be unique")
    metrics = _normalize_metrics(body.get("metrics"))
    budget = body.get("observation_budget")
    if budget is not None and not (_is_int(budget) and budget > 0):
        raise _bad("observation_budget must be a positive integer")
    bandwidth = body.get("parallel_bandwidth")
    if bandwidth is not None and not (_is_int(bandwidth) and bandwidth >= 1):
        raise _bad("parallel_bandwidth must be a positive integer")
    exp_type = body.get("type")
    if exp_type not in EXPERIMENT_TYPES:
        raise _bad(f"Invalid experiment type: {exp_type!r}")
    project = body.get("project")
    if project is not None and not isinstance(project, str):
        raise _bad("project must be a string")
    known = {
        "name",
        "parameters",
        "metrics",
        "observation_budget",
        "parallel_bandwidth",
        "type",
        "metadata",
        "project",
        "conditionals",
        "linear_constraints",
        "tasks",
    }
    data: dict[str, Any] = {k: v for k, v in body.items() if k not in known}  # tolerated, echoed back
    data.update(
        {
            "object": "experiment",
            "id": experiment_id,
            "name": name,
            "type": exp_type or "offline",
            "state": "active",
            "created": now,
            "updated": now,
            "client": "1",
            "user": "1",
            "development": False,
            "project": project,
            "parameters": parameters,
            "metrics": metrics,
            "conditionals": conditionals,
            "linear_constraints": _normalize_linear_constraints(body.get("linear_constraints"), parameters),
            "observation_budget": int(budget) if budget is not None else None,
            "parallel_bandwidth": int(bandwidth) if bandwidth is not None else 1,
            "metadata": _check_metadata(body.get("metadata")),
            "num_solutions": 1,
            "tasks": _normalize_tasks(body.get("tasks"), budget),
        }
    )
    return data


def _lite_experiment_body(body: dict[str, Any]) -> dict[str, Any]:
    """The part of an experiment create body sigoptlite accepts (it rejects metadata, project, bandwidth)."""
    keep = ("name", "parameters", "metrics", "observation_budget", "conditionals", "linear_constraints", "type")
    out = {k: copy.deepcopy(body[k]) for k in keep if body.get(k) is not None}
    if body.get("tasks"):
        out["tasks"] = [{"name": t["name"], "cost": t["cost"]} for t in body["tasks"]]
    return out


def _conditions_hold(parameter: dict[str, Any], assignments: dict[str, Any]) -> bool:
    return all(assignments.get(c) in values for c, values in parameter["conditions"].items())


def _constraints_hold(exp: dict[str, Any], assignments: dict[str, Any]) -> bool:
    for c in exp["linear_constraints"]:
        if any(t["name"] not in assignments for t in c["terms"]):
            continue
        total = sum(t["weight"] * assignments[t["name"]] for t in c["terms"])
        if c["type"] == "greater_than" and total < c["threshold"]:
            return False
        if c["type"] == "less_than" and total > c["threshold"]:
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real deployment behind a proxy
    timeout = 60  # seconds an idle keep-alive connection may hold a thread
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body writes
    wbufsize = 64 * 1024  # headers and body leave in one write (flushed after each request)
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.app._lock:
            self.server.app._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.app._lock:
                self.server.app._connections.discard(self.connection)

    def do_GET(self) -> None:
        self.server.app._handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # never log headers (they carry the token)
        logger.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes open keep-alive connections itself instead of waiting on them
    allow_reuse_address = True
    app: SigOptTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error while handling a request from %s", client_address, exc_info=True)


class SigOptTestServer:
    """A SigOpt-compatible API on 127.0.0.1 with an ephemeral port, served from a background thread."""

    def __init__(
        self,
        tokens: set[str] | frozenset[str] | list[str] | tuple[str, ...] = ("good-token",),
        suggestions: str = "random",
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        dev_tokens: set[str] | frozenset[str] | list[str] | tuple[str, ...] = (),
        projects: set[str] | frozenset[str] | list[str] | tuple[str, ...] = (),
        model_step_s: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if suggestions not in ("random", "lite"):
            raise ValueError("suggestions must be 'random' or 'lite'")
        self.tokens = set(tokens)
        self.dev_tokens = set(dev_tokens)
        self.projects: dict[str, dict[str, Any]] = {}
        for project in projects:
            self._add_project(project, project)
        self.model_step_s = model_step_s
        self.suggestion_sources: dict[str, str] = {}
        self._ssl_context = ssl_context
        self._thawed = threading.Event()
        self._thawed.set()
        self._model_jobs: set[str] = set()
        self._worker: threading.Thread | None = None
        self._development = False  # the token kind of the request being routed (under self._lock)
        self.suggestions_mode = suggestions
        self.faults = FaultSet()
        self.requests: list[RecordedRequest] = []
        self.experiments: dict[str, ExperimentState] = {}
        self._host, self._port = host, port
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._ids = {"experiment": 0, "suggestion": 0, "observation": 0}
        self._connections: set[socket.socket] = set()
        self._holding = 0  # requests a "slow" or "late" fault holds now
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    def start(self) -> SigOptTestServer:
        if self._httpd is not None:
            return self
        if self.suggestions_mode == "lite":
            _import_lite()  # fail early, in the caller's thread
        self._stopping.clear()
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.app = self
        if self._ssl_context is not None:
            httpd.socket = self._ssl_context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        if self.model_step_s is not None:
            self._worker = threading.Thread(target=self._model_worker, daemon=True, name="sigopt-test-model-worker")
            self._worker.start()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.name = f"sigopt-test-server-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes "slow" faults, frozen requests and the model worker
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections of the client
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SigOptTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}{API_PREFIX}"

    def go_down(self) -> None:
        """Refuse connections from now on (the server process gone) until :meth:`come_back`; its
        experiments are kept, and its port: the clients find it again where they left it."""
        self._port = self.port
        self.stop()

    def come_back(self) -> None:
        self.start()

    def freeze(self) -> None:
        """Hold every request from now on (as a stopped API process does); :meth:`thaw` carries them out."""
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    # -- inspection helpers --------------------------------------------------------------------------------------------

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests whose method and path (below /api) match."""
        pattern = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and pattern.fullmatch(r.path)]

    def holding(self) -> int:
        """How many requests a ``slow`` or ``late`` fault holds right now (not answered yet): a
        client that went away meanwhile did not wait for them."""
        with self._lock:
            return self._holding

    @contextmanager
    def _held(self) -> Iterator[None]:
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1

    # -- HTTP plumbing -------------------------------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        method = h.command.upper()
        split = urlsplit(h.path)
        raw_path = split.path
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw_body = h.rfile.read(length) if length > 0 else b""
        body: Any = None
        body_error: str | None = None
        if raw_body.strip():
            try:
                body = json.loads(raw_body.decode("utf-8"), parse_constant=_reject_constant)
            except (ValueError, UnicodeDecodeError) as e:
                body_error = f"Invalid JSON body: {e}"
        token = _basic_auth_user(h.headers.get("Authorization"))
        api_path = raw_path[len(API_PREFIX) :] if raw_path.startswith(API_PREFIX + "/") else raw_path
        with self._lock:
            self.requests.append(RecordedRequest(method, api_path, query, body, token))
        while not self._thawed.wait(0.05) and not self._stopping.is_set():
            pass  # frozen: the request waits in the server, and is carried out once thawed

        kind = self.faults.take(method, api_path, raw_path)
        if kind == "drop_before_commit":
            self._drop(h)
            return
        if isinstance(kind, str) and kind in ERROR_KINDS:
            status = int(kind)
            message = f"Injected fault: {HTTPStatus(status).phrase}"
            self._send(h, status, ApiError(status, message).body())
            return
        if isinstance(kind, tuple) and kind[0] == "slow":
            with self._held():
                self._stopping.wait(kind[1])

        try:
            if not raw_path.startswith(API_PREFIX + "/"):
                raise ApiError(404, f"Endpoint not found: {raw_path}")
            if token is None or token not in self.tokens | self.dev_tokens:
                # Never echo the token, not even a wrong one.
                raise ApiError(401, "Invalid API token. Please provide a valid client token to access this resource.")
            if body_error is not None:
                raise _bad(body_error)
            with self._lock:
                self._development = token in self.dev_tokens
                status, payload = self._route(method, api_path, query, body)
        except ApiError as e:
            status, payload = e.status, e.body()
        except Exception as e:  # a bug here: answer like a server would, and keep serving
            logger.exception("sigopt test server error")
            status, payload = 500, ApiError(500, f"An unexpected server error has occurred: {type(e).__name__}").body()

        if kind == "drop_after_commit":
            self._drop(h)
            return
        if isinstance(kind, tuple) and kind[0] == "late":
            with self._held():
                self._stopping.wait(kind[1])  # carried out; the answer comes after the client gave up
        self._send(h, status, payload)

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _send(h: _Handler, status: int, payload: Any) -> None:
        try:
            if status == 204:
                h.send_response(204)
                h.end_headers()
                h.wfile.flush()
                return
            data = json.dumps(payload).encode("utf-8")
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            if status == 401:
                h.send_header("WWW-Authenticate", 'Basic realm="SigOpt API"')
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:  # the client went away (timed out) before the answer
            h.close_connection = True

    # -- routing -------------------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "v1":
            raise ApiError(404, f"Endpoint not found: {path}. (Endpoint paths must begin with /v1)")
        parts = parts[1:]
        not_found = ApiError(404, f"Endpoint not found: {path}")
        if parts[:1] in (["tokens"], ["clients"]):
            return self._route_account(method, path, parts, body, query)
        if not parts or parts[0] != "experiments":
            raise not_found
        if len(parts) == 1:
            return self._dispatch(
                method, path, {"GET": self._list_experiments, "POST": self._create_experiment}, body, query
            )
        exp = self._experiment(parts[1])
        if len(parts) == 2:
            handlers = {
                "GET": lambda b, q: (200, self._experiment_json(exp)),
                "PUT": lambda b, q: self._update_experiment(exp, b),
                "DELETE": lambda b, q: self._delete_experiment(exp),
            }
            return self._dispatch(method, path, handlers, body, query)
        sub = parts[2]
        if sub == "suggestions" and len(parts) == 3:
            handlers = {
                "POST": lambda b, q: self._create_suggestion(exp, b),
                "GET": lambda b, q: self._list_suggestions(exp, q),
                "DELETE": lambda b, q: self._delete_suggestions(exp, q),
            }
            return self._dispatch(method, path, handlers, body, query)
        if sub == "suggestions" and len(parts) == 4:
            sid = parts[3]
            handlers = {
                "GET": lambda b, q: (200, self._suggestion(exp, sid)),
                "DELETE": lambda b, q: self._delete_suggestion(exp, sid),
            }
            return self._dispatch(method, path, handlers, body, query)
        if sub == "observations" and len(parts) == 3:
            handlers = {
                "POST": lambda b, q: self._create_observation(exp, b),
                "GET": lambda b, q: (200, self._paginate(exp.observations, q)),
            }
            return self._dispatch(method, path, handlers, body, query)
        if sub == "observations" and len(parts) == 4:
            oid = parts[3]
            handlers = {
                "GET": lambda b, q: (200, self._observation(exp, oid)),
                "DELETE": lambda b, q: self._delete_observation(exp, oid),
            }
            return self._dispatch(method, path, handlers, body, query)
        if sub == "best_assignments" and len(parts) == 3:
            return self._dispatch(method, path, {"GET": lambda b, q: (200, self._best_assignments(exp))}, body, query)
        raise not_found

    @staticmethod
    def _dispatch(method: str, path: str, handlers: dict[str, Any], body: Any, query: dict[str, str]) -> Any:
        handler = handlers.get(method)
        if handler is None:
            raise ApiError(405, f"This endpoint accepts only the following methods: {sorted(handlers)}")
        return handler(body, query)

    def _next_id(self, kind: str) -> str:
        self._ids[kind] += 1
        return str(self._ids[kind])

    def _experiment(self, experiment_id: str) -> ExperimentState:
        exp = self.experiments.get(experiment_id)
        if exp is None or exp.deleted:
            raise ApiError(404, f"No experiment {experiment_id}")
        if exp.development != self._development:  # sigopt-server's maybe_raise_for_incorrect_development_access
            kind = "development" if exp.development else "production"
            given, needed = ("a development", "api") if self._development else ("an api", "development")
            raise ApiError(
                403,
                f"Attempting to access {kind} experiment {exp.id} with {given} token."
                f" Please reauthenticate with your {needed} token and try again.",
            )
        return exp

    # -- tokens and projects -------------------------------------------------------------------------------------------

    def _route_account(
        self, method: str, path: str, parts: list[str], body: Any, query: dict[str, str]
    ) -> tuple[int, Any]:
        if parts == ["tokens", "self"]:
            token = {"object": "token", "client": CLIENT_ID, "development": self._development, "permission": "write"}
            return self._dispatch(method, path, {"GET": lambda b, q: (200, token)}, body, query)
        if len(parts) < 3 or parts[1] != CLIENT_ID or parts[2] != "projects":
            raise ApiError(404, f"Endpoint not found: {path}")
        if len(parts) == 3:
            return self._dispatch(method, path, {"POST": lambda b, q: self._create_project(b)}, body, query)
        if len(parts) == 4:
            project = self.projects.get(parts[3])
            if project is None:
                raise ApiError(404, f"No project {parts[3]}")
            return self._dispatch(method, path, {"GET": lambda b, q: (200, copy.deepcopy(project))}, body, query)
        raise ApiError(404, f"Endpoint not found: {path}")

    def _create_project(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise _bad("Missing required json key `id`")
        if body["id"] in self.projects:
            raise ApiError(409, f"Project with id {body['id']} already exists")
        return 200, copy.deepcopy(self._add_project(body["id"], str(body.get("name") or body["id"])))

    def _add_project(self, project_id: str, name: str) -> dict[str, Any]:
        project = {"object": "project", "id": project_id, "name": name, "client": CLIENT_ID}
        self.projects[project_id] = project
        return project

    # -- experiments ---------------------------------------------------------------------------------------------------

    def _experiment_json(self, exp: ExperimentState) -> dict[str, Any]:
        out = copy.deepcopy(exp.data)
        out["state"] = "deleted" if exp.deleted else out["state"]
        count = len(exp.observations)
        consumed = math.fsum(o["task"]["cost"] if o.get("task") else 1.0 for o in exp.observations)
        progress: dict[str, Any] = {
            "object": "progress",
            "observation_count": count,
            "observation_budget_consumed": consumed,
            "first_observation": None,
            "last_observation": None,
        }
        if exp.observations:
            progress["first_observation"] = copy.deepcopy(exp.observations[0])
            progress["last_observation"] = copy.deepcopy(exp.observations[-1])
        out["progress"] = progress
        return out

    def _list_experiments(self, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        return 200, self._paginate(
            [self._experiment_json(e) for e in self.experiments.values() if not e.deleted], query
        )

    def _create_experiment(self, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        experiment_id = str(self._ids["experiment"] + 1)
        data = _build_experiment(body, experiment_id, int(time.time()))
        data["development"] = self._development
        if data["project"] is not None and data["project"] not in self.projects:
            raise _bad(f"Could not assign to project `{data['project']}`, the project does not exist.")
        driver = None
        if self.suggestions_mode == "lite":
            local_driver_cls = _import_lite()
            driver = local_driver_cls()
            try:
                driver.request("POST", ["experiments"], _lite_experiment_body(body), None)
            except Exception as e:
                raise _bad(f"sigoptlite rejected the experiment: {e}") from e
        self._ids["experiment"] += 1
        exp = ExperimentState(id=experiment_id, data=data, driver=driver)
        self.experiments[experiment_id] = exp
        return 200, self._experiment_json(exp)

    def _update_experiment(self, exp: ExperimentState, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise _bad("Experiment update needs a JSON object body")
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _bad("name must be a non-empty string")
                exp.data["name"] = value
            elif key == "metadata":
                exp.data["metadata"] = _check_metadata(value)
            elif key == "observation_budget":
                if value is not None and not (_is_int(value) and value > 0):
                    raise _bad("observation_budget must be a positive integer")
                exp.data["observation_budget"] = value
            elif key == "parallel_bandwidth":
                if value is not None and not (_is_int(value) and value >= 1):
                    raise _bad("parallel_bandwidth must be a positive integer")
                exp.data["parallel_bandwidth"] = value
            elif key == "state":
                if value not in ("active", "deleted"):
                    raise _bad(f"Invalid state: {value!r}")
                if value == "deleted":
                    exp.deleted = True
            else:
                raise _bad(f"Unknown or read-only key for experiment update: {key}")
        exp.data["updated"] = int(time.time())
        return 200, self._experiment_json(exp)

    def _delete_experiment(self, exp: ExperimentState) -> tuple[int, Any]:
        exp.deleted = True
        return 204, None

    # -- suggestions ---------------------------------------------------------------------------------------------------

    def _suggestion(self, exp: ExperimentState, sid: str) -> dict[str, Any]:
        s = exp.suggestions.get(sid)
        if s is None or sid in exp.deleted_suggestions:
            raise ApiError(404, f"No suggestion {sid} for experiment {exp.id}")
        return copy.deepcopy(s)

    def _list_suggestions(self, exp: ExperimentState, query: dict[str, str]) -> tuple[int, Any]:
        state = query.get("state", "all")
        if state not in ("open", "closed", "all"):
            raise _bad(f"Invalid state: {state!r}")
        items = [
            s
            for sid, s in exp.suggestions.items()
            if sid not in exp.deleted_suggestions and state in ("all", s["state"])
        ]
        return 200, self._paginate(items, query)

    def _delete_suggestion(self, exp: ExperimentState, sid: str) -> tuple[int, Any]:
        self._suggestion(exp, sid)
        exp.deleted_suggestions.add(sid)
        return 204, None

    def _delete_suggestions(self, exp: ExperimentState, query: dict[str, str]) -> tuple[int, Any]:
        state = query.get("state", "all")
        if state not in ("open", "closed", "all"):
            raise _bad(f"Invalid state: {state!r}")
        for sid, s in exp.suggestions.items():
            if state in ("all", s["state"]):
                exp.deleted_suggestions.add(sid)
        return 204, None

    def _create_suggestion(self, exp: ExperimentState, body: Any) -> tuple[int, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise _bad("Suggestion create needs a JSON object body")
        metadata = _check_metadata(body.get("metadata"))
        source = "model"
        if body.get("assignments") is not None:  # a user-provided suggestion
            assignments, source = self._check_assignments(exp, body["assignments"]), "user"
            task = exp.task(body.get("task"), "A suggestion with assignments")
        else:
            if body.get("task") is not None:
                raise _bad("A task can only be given with assignments")
            assignments, source = self._served_assignments(exp)
            task = self._rng.choice(copy.deepcopy(exp.tasks)) if exp.tasks else None  # the model's pick of a task
        sid = self._next_id("suggestion")
        self.suggestion_sources[sid] = source
        suggestion = {
            "object": "suggestion",
            "id": sid,
            "experiment": exp.id,
            "assignments": assignments,
            "state": "open",
            "created": int(time.time()),
            "metadata": metadata,
            "task": task,
        }
        exp.suggestions[sid] = suggestion
        return 200, copy.deepcopy(suggestion)

    def _served_assignments(self, exp: ExperimentState) -> tuple[dict[str, Any], str]:
        """At once: a point the (lagging) worker queued, else random filler; without lag, the model's point."""
        if exp.development:
            return self._random_assignments(exp), "filler"
        if self.model_step_s is None:
            return self._model_assignments(exp), "model"
        open_assignments = [s["assignments"] for s in exp.open_suggestions]
        while exp.model_queue:
            point = exp.model_queue.pop(0)
            if point not in open_assignments:
                return point, "model"
        return self._random_assignments(exp), "filler"

    def _model_assignments(self, exp: ExperimentState) -> dict[str, Any]:
        return self._lite_assignments(exp) if self.suggestions_mode == "lite" else self._random_assignments(exp)

    def _model_worker(self) -> None:
        """The optimization worker: after each new observation, one step of ``model_step_s``, then one point."""
        while not self._stopping.is_set():
            with self._lock:
                job = min(self._model_jobs, default=None)
                self._model_jobs.discard(job or "")
            if job is None:
                self._stopping.wait(0.02)
                continue
            if self._stopping.wait(self.model_step_s or 0.0):
                return
            with self._lock:
                exp = self.experiments.get(job)
                if exp is not None and not exp.deleted:
                    exp.model_queue[:] = [self._model_assignments(exp)]  # the newest model replaces older points

    def _sample_parameter(self, p: dict[str, Any]) -> Any:
        rng = self._rng
        if p["type"] == "categorical":
            return rng.choice(p["categorical_values"])["name"]
        if p["grid"]:
            return rng.choice(p["grid"])
        lo, hi = p["bounds"]["min"], p["bounds"]["max"]
        if p["type"] == "int":
            return rng.randint(lo, hi)
        if p["transformation"] == "log":
            return min(hi, max(lo, math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        return rng.uniform(lo, hi)

    def _random_assignments(self, exp: ExperimentState) -> dict[str, Any]:
        open_assignments = [s["assignments"] for s in exp.open_suggestions]
        candidate: dict[str, Any] = {}
        for _ in range(200):
            candidate = {c["name"]: self._rng.choice(c["values"]) for c in exp.data["conditionals"]}
            for p in exp.parameters:
                if _conditions_hold(p, candidate):
                    candidate[p["name"]] = self._sample_parameter(p)
            if _constraints_hold(exp.data, candidate) and candidate not in open_assignments:
                break
        return candidate

    def _lite_assignments(self, exp: ExperimentState) -> dict[str, Any]:
        """Constant liar: a copy of the driver sees a placeholder observation for every open suggestion."""
        pending = [s["assignments"] for s in exp.open_suggestions]
        placeholder_values = self._placeholder_values(exp)
        assignments: dict[str, Any] = {}
        for _ in range(3):
            driver = copy.deepcopy(exp.driver)
            for a in pending:
                driver.request(
                    "POST",
                    ["experiments", "-1", "observations"],
                    {"assignments": copy.deepcopy(a), "values": copy.deepcopy(placeholder_values)}
                    | ({"task": exp.full_task} if exp.tasks else {}),
                    None,
                )
            suggestion = driver.request("POST", ["experiments", "-1", "suggestions"], {}, None)
            assignments = _jsonable(dict(suggestion["assignments"]))
            if assignments not in pending:
                break
        return assignments

    @staticmethod
    def _placeholder_values(exp: ExperimentState) -> list[dict[str, Any]]:
        values = []
        for m in exp.metrics:
            seen = [
                v["value"]
                for o in exp.observations
                if not o["failed"]
                for v in o["values"] or []
                if v["name"] == m["name"]
            ]
            values.append({"name": m["name"], "value": sum(seen) / len(seen) if seen else 0.0})
        return values

    # -- observations --------------------------------------------------------------------------------------------------

    def _observation(self, exp: ExperimentState, oid: str) -> dict[str, Any]:
        for o in exp.observations:
            if o["id"] == oid:
                return copy.deepcopy(o)
        raise ApiError(404, f"No observation {oid} for experiment {exp.id}")

    def _delete_observation(self, exp: ExperimentState, oid: str) -> tuple[int, Any]:
        self._observation(exp, oid)
        if exp.driver is not None:
            raise _bad("Deleting observations is not supported with suggestions='lite'")
        exp.observations = [o for o in exp.observations if o["id"] != oid]
        return 204, None

    def _check_assignments(self, exp: ExperimentState, assignments: Any) -> dict[str, Any]:
        if not isinstance(assignments, dict) or not assignments:
            raise _bad("Cannot provide null or empty `assignments`")
        known = {p["name"]: p for p in exp.parameters}
        conditionals = {c["name"]: c["values"] for c in exp.data["conditionals"]}
        for key in assignments:
            if key not in known and key not in conditionals:
                raise _bad(f"Unknown parameter in assignments: {key}")
        for name, values in conditionals.items():
            if assignments.get(name) not in values:
                raise _bad(f"Invalid or missing value for conditional {name}")
        out = {}
        for name, value in assignments.items():
            if name in conditionals:
                out[name] = value
                continue
            p = known[name]
            if not _conditions_hold(p, assignments):
                raise _bad(f"Parameter {name} should not be assigned: its conditions are not satisfied")
            out[name] = self._check_value(p, value)
        for p in exp.parameters:
            if p["name"] not in assignments and _conditions_hold(p, assignments):
                raise _bad(f"Missing assignment for parameter {p['name']}")
        return out

    @staticmethod
    def _check_value(p: dict[str, Any], value: Any) -> Any:
        name = p["name"]
        if p["type"] == "categorical":
            if value not in [c["name"] for c in p["categorical_values"]]:
                raise _bad(f"Invalid categorical value for parameter {name}: {value!r}")
            return value
        if not _is_number(value):
            raise _bad(f"Invalid value for parameter {name}: {value!r}")
        if p["type"] == "int":
            if not _is_int(value):
                raise _bad(f"Invalid value for int parameter {name}: {value!r}")
            value = int(value)
        if p["grid"]:
            if value not in p["grid"]:
                raise _bad(f"Value for parameter {name} is not in its grid: {value!r}")
        else:
            lo, hi = p["bounds"]["min"], p["bounds"]["max"]
            eps = 1e-9 * max(1.0, abs(hi - lo))
            if not lo - eps <= value <= hi + eps:
                raise _bad(f"Value for parameter {name} is out of bounds: {value!r}")
        return value

    def _check_values(self, exp: ExperimentState, body: dict[str, Any], failed: bool) -> list[dict[str, Any]] | None:
        values = body.get("values")
        if body.get("value") is not None:
            if values is not None:
                raise _bad("Both 'value' and 'values' should not be specified.")
            values = [{"value": body["value"], "value_stddev": body.get("value_stddev")}]
        if failed:
            if values:
                raise _bad("Cannot provide `values` if observation has failed")
            return None
        if not values:
            raise _bad("Missing required json key `values`")
        if not isinstance(values, list):
            raise _bad("Invalid type for values: expected an array")
        metric_names = [m["name"] for m in exp.metrics]
        out: dict[str, dict[str, Any]] = {}
        for v in values:
            if not isinstance(v, dict):
                raise _bad("Each value must be an object")
            name = v.get("name")
            if name is None and len(metric_names) == 1:
                name = metric_names[0]
            if name not in metric_names:
                raise _bad(f"Unknown metric name in values: {name!r}")
            if name in out:
                raise _bad(f"Duplicate value for metric {name}")
            if not _is_number(v.get("value")):
                raise _bad(f"Invalid value for metric {name}: {v.get('value')!r}")
            stddev = v.get("value_stddev")
            if stddev is not None and not (_is_number(stddev) and stddev >= 0):
                raise _bad(f"Invalid value_stddev for metric {name}: {stddev!r}")
            out[name] = {"object": "metric_evaluation", "name": name, "value": v["value"], "value_stddev": stddev}
        missing = [n for n in metric_names if n not in out]
        if missing:
            raise _bad(f"Missing values for metrics: {', '.join(missing)}")
        return [out[n] for n in metric_names]

    def _create_observation(self, exp: ExperimentState, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise _bad("Observation create needs a JSON object body")
        allowed = {"suggestion", "assignments", "values", "value", "value_stddev", "failed", "metadata", "task"}
        allowed |= {"no_optimize"}
        unknown = set(body) - allowed
        if unknown:
            raise _bad(f"Unknown keys were provided for observation create: {sorted(unknown)}")
        failed = body.get("failed")
        if failed is not None and not isinstance(failed, bool):
            raise _bad("Invalid type for failed: expected a boolean")
        failed = bool(failed)
        metadata = _check_metadata(body.get("metadata"))
        sid = body.get("suggestion")
        if sid is not None and body.get("assignments") is not None:
            raise _bad("Cannot provide values for both `suggestion` and `assignments`")
        if sid is None and body.get("assignments") is None:
            raise _bad("Must provide values for one of `suggestion` or `assignments`")
        values = self._check_values(exp, body, failed)
        suggestion = None
        if sid is not None:
            sid = str(sid)
            suggestion = exp.suggestions.get(sid)
            if suggestion is None or sid in exp.deleted_suggestions:
                raise _bad(f"No suggestion: {sid} for experiment: {exp.id}")
            if suggestion["state"] != "open":
                raise _bad(f"Suggestion {sid} has already been observed")
            if body.get("task") is not None:
                raise _bad("Cannot provide a task with a suggestion: the suggestion's task is the observation's")
            assignments = copy.deepcopy(suggestion["assignments"])
            task = copy.deepcopy(suggestion.get("task"))
        else:
            assignments = self._check_assignments(exp, body["assignments"])
            task = exp.task(body.get("task"), "An observation with assignments")
        if exp.driver is not None:
            lite_body: dict[str, Any] = {"assignments": copy.deepcopy(assignments), "failed": failed}
            if task is not None:
                lite_body["task"] = {"name": task["name"], "cost": task["cost"]}
            if values:
                lite_body["values"] = [
                    {k: v[k] for k in ("name", "value", "value_stddev") if v[k] is not None} for v in values
                ]
            try:
                exp.driver.request("POST", ["experiments", "-1", "observations"], lite_body, None)
            except Exception as e:
                raise _bad(f"sigoptlite rejected the observation: {e}") from e
        observation: dict[str, Any] = {
            "object": "observation",
            "id": self._next_id("observation"),
            "experiment": exp.id,
            "suggestion": sid,
            "assignments": assignments,
            "values": values or [],
            "failed": failed,
            "metadata": metadata,
            "created": int(time.time()),
            "task": task,
        }
        if len(exp.metrics) == 1:  # the legacy single-metric fields, as the real API served them
            observation["value"] = values[0]["value"] if values else None
            observation["value_stddev"] = values[0]["value_stddev"] if values else None
        exp.observations.append(observation)
        if self.model_step_s is not None:
            self._model_jobs.add(exp.id)  # the worker learns of it when it gets to it
        if suggestion is not None:
            suggestion["state"] = "closed"
        exp.data["updated"] = int(time.time())
        return 200, copy.deepcopy(observation)

    # -- best assignments ----------------------------------------------------------------------------------------------

    def _best_assignments(self, exp: ExperimentState) -> dict[str, Any]:
        metrics = exp.metrics
        optimized = [m for m in metrics if m["strategy"] == "optimize"]

        def value(o: dict[str, Any], m: dict[str, Any]) -> float:
            v = next(v["value"] for v in o["values"] if v["name"] == m["name"])
            return v if m["objective"] == "maximize" else -v

        def satisfies_thresholds(o: dict[str, Any]) -> bool:
            for m in metrics:
                if m["threshold"] is None or m["strategy"] == "store":
                    continue
                t = m["threshold"] if m["objective"] == "maximize" else -m["threshold"]
                if value(o, m) < t:
                    return False
            return True

        full = [o for o in exp.observations if not o.get("task") or o["task"]["cost"] == 1.0]  # as the server's
        valid = [o for o in full if not o["failed"] and satisfies_thresholds(o)]
        if not valid:
            best: list[dict[str, Any]] = []
        elif not optimized:  # all-constraint ("search") experiment
            best = valid
        elif len(optimized) == 1:
            best = [max(valid, key=lambda o: value(o, optimized[0]))]
        else:
            points = [tuple(value(o, m) for m in optimized) for o in valid]

            def dominated(p: tuple[float, ...]) -> bool:
                return any(all(a >= b for a, b in zip(q, p)) and q != p for q in points)

            best, seen = [], set()
            for o, p in zip(valid, points):
                if not dominated(p) and p not in seen:
                    seen.add(p)
                    best.append(o)
        items = []
        for o in best:
            item = {
                "object": "best_assignments",
                "id": o["id"],
                "assignments": copy.deepcopy(o["assignments"]),
                "values": copy.deepcopy(o["values"]),
            }
            if len(metrics) == 1:
                item["value"] = o["values"][0]["value"]
                item["value_stddev"] = o["values"][0]["value_stddev"]
            items.append(item)
        return {"object": "pagination", "data": items, "count": len(items), "paging": {"before": None, "after": None}}

    # -- pagination ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _paginate(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        """Newest first; ``limit`` (default 100), ``before``/``after`` take an id, as sigopt's paging does."""
        try:
            limit = int(query.get("limit", DEFAULT_PAGE_LIMIT))
        except ValueError:
            raise _bad(f"Invalid limit: {query.get('limit')!r}") from None
        if not 0 < limit <= MAX_PAGE_LIMIT:
            raise _bad(f"limit must be between 1 and {MAX_PAGE_LIMIT}")
        ordered = sorted(items, key=lambda i: int(i["id"]), reverse=True)
        count = len(ordered)
        paging: dict[str, Any] = {"object": "paging", "before": None, "after": None}
        try:
            if query.get("after") is not None:
                after = int(query["after"])
                newer = [i for i in ordered if int(i["id"]) > after]
                page = newer[-limit:]
                if len(newer) > limit:
                    paging["after"] = page[0]["id"]
            else:
                before = int(query["before"]) if query.get("before") is not None else None
                older = [i for i in ordered if before is None or int(i["id"]) < before]
                page = older[:limit]
                if len(older) > limit:
                    paging["before"] = page[-1]["id"]
        except ValueError:
            raise _bad("Invalid paging id") from None
        return {"object": "pagination", "count": count, "data": copy.deepcopy(page), "paging": paging}


def _basic_auth_user(header: str | None) -> str | None:
    """The user name of an HTTP basic ``Authorization`` header (sigopt sends ``token:`` base64-encoded)."""
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


_LITE_LOCK = threading.Lock()


def _import_lite() -> Any:
    with _LITE_LOCK:
        import numpy

        if not hasattr(numpy, "product"):  # removed in numpy 2, still called by sigoptlite/libsigopt
            numpy.product = numpy.prod
        from sigoptlite import LocalDriver

    return LocalDriver
