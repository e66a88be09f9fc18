"""A SigOpt API (a self-hosted sigopt-server, or any SigOpt-compatible API) through the official client.

The server serves parallel suggestions itself (``parallel_bandwidth`` open suggestions). Calls
that fail on 5xx or a dropped connection are retried with capped exponential backoff
(:mod:`hydra_sigopt.backends.api_calls`); a TLS verification failure, or any failure before the experiment
exists, stops at once with its reason. Once the API has been unreachable for
``max_unreachable_s`` the sweep stops with its journal intact (:class:`ApiUnreachableError`).

An experiment may be shared by several sweeps (``api.experiment_id``), so everything here is
matched by what only this sweep holds: an observation by its suggestion's id (the journal keeps
it), an open suggestion by the sweep id it was created with (``sweep_id`` in its metadata). A
request that timed out may still have been carried out by the server: an observation whose POST
outcome is unknown is looked up before it is sent again, and a suggestion create that was retried
is followed by deleting this sweep's open suggestions that nothing uses.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt import __version__
from hydra_sigopt.backends.api_calls import CREATE, ApiCalls, ApiError, ApiUnreachableError
from hydra_sigopt.backends.api_identity import (
    CREATED_KEY,
    SWEEP_ID_KEY,
    TAG_KEY,
    check_same_experiment,
    created_of,
    experiment_gone,
    raise_if_gone,
    tag_of,
)
from hydra_sigopt.backends.api_matching import check_matches, check_project
from hydra_sigopt.backends.base import Backend, PastObservation, Pending, Suggestion
from hydra_sigopt.backends.server_limits import fit_metadata
from hydra_sigopt.errors import ConfigError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue
from hydra_sigopt.secrets import (
    DEV_TOKEN_VARIABLE,
    URL_VARIABLE,
    Credentials,
    api_url_setting,
    check_env_file,
    known_tokens,
    mask_credential_overrides,
    redact,
    resolve_token,
    shown_url,
    url_password,
)
from hydra_sigopt.sigopt_client import import_sigopt, plain

log = logging.getLogger(__name__)

__all__ = ["ApiBackend", "ApiError", "ApiUnreachableError", "experiment_metadata"]

#: Metadata keys the sweeper writes on the server to tell its own objects from another sweep's.
SUGGESTION_ID_KEY = "suggestion_id"


def _parse_verify(raw: Any) -> bool | str:
    """``verify_ssl_certs``: true/false or the path of a CA bundle (unset: ``$SIGOPT_API_VERIFY_SSL_CERTS``)."""
    if raw is None:
        raw = os.environ.get("SIGOPT_API_VERIFY_SSL_CERTS")
    if raw is None or raw == "":
        return True
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    if not os.path.exists(text):
        raise ConfigError(
            "api.verify_ssl_certs", f"expected true, false or the path of a CA bundle; {text!r} does not exist"
        )
    return text


class ApiBackend(Backend):
    """SigOpt experiments on a server, driven through ``sigopt.Connection`` over HTTP."""

    name = "api"

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        dev_run: bool = False,
        connection_factory: Callable[[Credentials], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        patience: str | None = None,
        recorded_url: str | None = None,
    ) -> None:
        settings = dict(settings or {})
        self.url = _api_url(settings.get("api_url"), recorded_url)
        #: The URL as messages, logs and the journal show it (a password in it masked).
        self.shown_url = shown_url(self.url)
        self.verify = _parse_verify(settings.get("verify_ssl_certs"))
        self.timeout = float(settings.get("timeout") or 30.0)
        self.project = settings.get("project") or os.environ.get("SIGOPT_PROJECT")
        self._project_key = "api.project" if settings.get("project") else "SIGOPT_PROJECT (environment variable)"
        self.attach_id = settings.get("experiment_id")
        self.max_unreachable_s = float(settings.get("max_unreachable_s") or 600.0)
        self.dev_run = dev_run
        self.credentials = resolve_token(dev_run=dev_run)
        self._connection_factory = connection_factory or self._default_connection
        self._connections = threading.local()
        self._call = ApiCalls(
            self.shown_url,
            self.credentials,
            self.max_unreachable_s,
            sleep,
            clock,
            timeout_s=self.timeout,
            set_timeout=self._set_timeout if hasattr(self.connection, "set_timeout") else None,
            on_not_found=lambda: raise_if_gone(self),
            patience=patience,  # a hydra-sigopt command's own wait, named in its messages
        )
        self.experiment_id: str | None = None
        #: Observation ids by suggestion id: what this sweep's trials already have on the server.
        self._observed: dict[str, str] = {}
        #: Suggestions this process handed out or kept, not yet observed or discarded.
        self._in_use: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    @property
    def connection(self) -> Any:
        """This thread's connection to the API. The client reads its timeout from the connection, and
        a retried call cuts it (api_calls): the prefetch thread's cut must not apply to the requests
        the main thread sends meanwhile, so each thread has its own."""
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            connection = self._connections.connection = self._connection_factory(self.credentials)
        return connection

    def _set_timeout(self, seconds: float) -> None:
        self.connection.set_timeout(seconds)

    def _default_connection(self, credentials: Credentials) -> Any:
        sigopt = import_sigopt()
        conn = sigopt.Connection(client_token=credentials.token)
        conn.set_api_url(self.url)
        conn.set_timeout(self.timeout)
        conn.set_verify_ssl_certs(self.verify)
        return conn

    def _experiment(self) -> Any:
        return self.connection.experiments(self.experiment_id)

    def public_settings(self) -> dict[str, Any]:
        return {
            "api_url": self.shown_url,
            "verify_ssl_certs": self.verify,
            "timeout": self.timeout,
            "project": self.project,
            "max_unreachable_s": self.max_unreachable_s,
            # Which token reaches the experiment: a server hides development experiments from the regular one.
            "dev_run": self.dev_run,
            "development_token": self.credentials.source.startswith(DEV_TOKEN_VARIABLE),
        }

    def _tagged(self, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Metadata with this sweep's id, fit to the server's limits."""
        tag = {SWEEP_ID_KEY: self.sweep_id} if self.sweep_id else {}
        return fit_metadata({**(metadata or {}), **tag})

    # ------------------------------------------------------------------ start

    def start(self, definition: ExperimentDefinition, resume_id: str | None = None) -> str:
        if self.experiment_id is not None:
            return self.experiment_id  # started already: the same experiment
        experiment_id = resume_id or self.attach_id
        if experiment_id:
            self._attach_checked(str(experiment_id), definition, resumed=resume_id is not None)
            self.experiment_shared = resume_id is None
        else:
            self._create(definition)
        assert self.experiment_id is not None
        return self.experiment_id

    def _create(self, definition: ExperimentDefinition) -> None:
        """A new experiment; any failure stops at once (a retried create could leave a second experiment)."""
        body = definition.to_sigopt()
        if self.project:
            self._check_project()
            body["project"] = self.project
        body["metadata"] = self._tagged(experiment_metadata(self.code))  # the sweep id: see api_identity
        experiment = self._call(CREATE, lambda: self.connection.experiments().create(**body), once=True)
        self.experiment_id = str(experiment.id)
        self.experiment_created, self.experiment_tag = created_of(experiment), tag_of(experiment)
        log.info("Created SigOpt experiment %s at %s", self.experiment_id, self.shown_url)

    def _check_project(self) -> None:
        """Refuse, before anything is written, a project the server does not have (it is not created here)."""
        client = self._call("read the token's client", lambda: self.connection.tokens("self").fetch().client, once=True)
        try:
            self._call(
                f"fetch project {self.project}",
                lambda: self.connection.clients(client).projects(self.project).fetch(),
                once=True,
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise ConfigError(
                self._project_key,
                f"project {self.project!r} does not exist at {self.shown_url}; create it on the server first, "
                "or name an existing project (or none)",
            ) from None

    def _attach_checked(self, experiment_id: str, definition: ExperimentDefinition, resumed: bool) -> None:
        self.experiment_id = experiment_id
        experiment = self._fetch_experiment(resumed)
        if resumed:  # before anything is sent: the id may name another experiment by now
            expected = {CREATED_KEY: self.expected_created, TAG_KEY: self.expected_tag}
            check_same_experiment(experiment, expected, experiment_id, self.shown_url, "nothing was sent to it")
        self.experiment_created, self.experiment_tag = created_of(experiment), tag_of(experiment)
        where = f"experiment {experiment_id} at {self.shown_url}"
        if self.attach_id:  # the sweep's own experiment was created in its project
            check_project(experiment, self.project, self._project_key, where)
        check_matches(experiment, definition, where)
        if resumed and not self.attach_id:
            self._send_budget(experiment, definition)

    def _fetch_experiment(self, resumed: bool = False) -> Any:
        try:
            return self._call(f"fetch experiment {self.experiment_id}", lambda: self._experiment().fetch())
        except ApiError as exc:
            if exc.status == 404 and resumed and not self.attach_id:  # the sweep's own, not an id the user gave
                raise experiment_gone(str(self.experiment_id), self.shown_url) from None
            if exc.status == 404:
                raise ApiError(
                    f"experiment {self.experiment_id} was not found at {self.shown_url} (HTTP 404); "
                    "check hydra.sweeper.api.experiment_id",
                    404,
                ) from None
            if exc.status == 403 and self.attach_id:
                raise attach_refused(str(self.experiment_id), self.shown_url, self.credentials) from None
            raise

    def _send_budget(self, experiment: Any, definition: ExperimentDefinition) -> None:
        """A budget or bandwidth changed on resume goes to the server too (it plans multi-metric searches by it).

        Only for the sweep's own experiment: an attached one's budget is shared with other sweeps.
        """
        wanted = {
            "observation_budget": definition.engine_budget,
            "parallel_bandwidth": definition.parallel_bandwidth,
        }
        changed = {k: v for k, v in wanted.items() if getattr(experiment, k, None) != v}
        if changed:
            self._call("update the experiment's budget", lambda: self._experiment().update(**changed))
            log.info("SigOpt experiment %s updated: %s", self.experiment_id, changed)

    def attach(self, experiment_id: str) -> None:
        """Point at an existing experiment without checking it (for ``hydra-sigopt delete``)."""
        self.experiment_id = str(experiment_id)

    # ------------------------------------------------------------------ suggestions and observations

    def restore(
        self,
        observations: Sequence[PastObservation],
        open_suggestion_ids: Sequence[str] = (),
        used_suggestion_ids: Sequence[str] = (),
    ) -> None:
        """The server keeps its own observations: learn which of this sweep's are there; tidy its open suggestions."""
        for obs in self._call("list observations", self._all_observations):
            suggestion_id = _suggestion_of(obs, self.sweep_id)
            if suggestion_id is not None:
                self._observed[suggestion_id] = str(obs.id)
        self._in_use.update(str(s) for s in open_suggestion_ids)
        self.reconcile(open_suggestion_ids)

    def reconcile(self, keep_suggestion_ids: Sequence[str]) -> None:
        """Delete this sweep's open suggestions but ``keep_suggestion_ids`` (the server counts them as work)."""
        if self.experiment_id is None:  # refused at start: not this sweep's experiment
            return
        keep = {str(s) for s in keep_suggestion_ids}
        for sid in self._own_open_suggestions():
            if sid not in keep:
                log.info("Deleting open suggestion %s: no trial of this sweep uses it", sid)
                self.discard(Suggestion(sid, {}))

    def _own_open_suggestions(self) -> list[str]:
        """Ids of the open suggestions this sweep created (another sweep's on a shared experiment stay)."""
        open_now = self._call(
            "list open suggestions",
            lambda: list(self._experiment().suggestions().fetch(state="open").iterate_pages()),
        )
        return [str(s.id) for s in open_now if _metadata(s).get(SWEEP_ID_KEY) == self.sweep_id]

    def suggest(self, pending: Sequence[Pending]) -> Suggestion:
        retried: list[bool] = []
        body = {"metadata": self._tagged()} if self.sweep_id else {}
        s = self._call(
            "create a suggestion",
            lambda: self._experiment().suggestions().create(**body),
            on_retry=lambda: retried.append(True),
        )
        sid = str(s.id)
        self._in_use.add(sid)
        if retried:
            # A create that timed out may have been carried out too: its suggestion would stay open.
            self.reconcile(sorted(self._in_use))
        task = getattr(s, "task", None)  # multitask: the task the server chose
        assignments = {str(k): plain(v) for k, v in dict(s.assignments).items()}
        return Suggestion(sid, assignments, None if task is None else str(task.name))

    def observe(
        self,
        suggestion: Suggestion,
        values: Sequence[MetricValue] = (),
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        if suggestion.id in self._observed:
            return self._observed[suggestion.id]  # recorded by an earlier sweeper process
        body: dict[str, Any] = {"metadata": self._tagged(metadata)}
        if failed:
            body["failed"] = True
        else:
            body["values"] = [v.to_sigopt() for v in values]
        number = (metadata or {}).get("job_number")
        post = _ObservationPost(self, suggestion, body)
        observation_id = self._call(f"record the observation of trial {number}", post.attempt)
        self._observed[suggestion.id] = observation_id
        self._in_use.discard(suggestion.id)
        return observation_id

    def find_observation(self, suggestion: Suggestion) -> str | None:
        """The id of the server's observation of this suggestion (posted by this sweep), if any."""
        if suggestion.id in self._observed:
            return self._observed[suggestion.id]
        for obs in self._call("look up observations", self._all_observations):
            if _suggestion_of(obs, self.sweep_id) == suggestion.id:
                self._observed[suggestion.id] = str(obs.id)
                return str(obs.id)
        return None

    def _all_observations(self) -> list[Any]:
        return list(self._experiment().observations().fetch().iterate_pages())

    def discard(self, suggestion: Suggestion) -> None:
        self._in_use.discard(suggestion.id)
        try:
            self._call(
                f"delete suggestion {suggestion.id}", lambda: self._experiment().suggestions(suggestion.id).delete()
            )
        except ApiError as exc:
            if exc.status not in (400, 404):  # already closed or deleted
                raise

    def observation_count(self) -> int | None:
        experiment = self._call("fetch the experiment", lambda: self._experiment().fetch())
        return int(experiment.progress.observation_count)

    def best_assignments(self) -> list[dict[str, Any]]:
        """The server's best assignments (the Pareto front for two metrics)."""
        best = self._call(
            "fetch best assignments", lambda: list(self._experiment().best_assignments().fetch().iterate_pages())
        )
        return [
            {
                "assignments": {str(k): plain(v) for k, v in dict(b.assignments).items()},
                "values": {v.name: v.value for v in b.values or []},
            }
            for b in best
        ]

    def fetch(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """One call on the experiment's endpoint (``fn`` gets it), with this backend's retries and errors."""
        return self._call(what, lambda: fn(self._experiment()))

    def delete(self) -> None:
        self._call(f"delete experiment {self.experiment_id}", lambda: self._experiment().delete())


class _ObservationPost:
    """One observation's POST, safe to repeat: after an attempt whose outcome is unknown, look first.

    By its suggestion; if the server no longer has that suggestion open (deleted, or observed by a
    request whose answer was lost) and holds no observation of it, by its assignments, with the
    suggestion's id in the metadata so that it is still found as this trial's.
    """

    def __init__(self, backend: ApiBackend, suggestion: Suggestion, body: dict[str, Any]) -> None:
        self.backend = backend
        self.suggestion = suggestion
        self.body = body
        self.attempted = False

    def attempt(self) -> str:
        if self.attempted:
            existing = self.backend.find_observation(self.suggestion)
            if existing is not None:
                return existing
        self.attempted = True
        sigopt = import_sigopt()
        try:
            return self._post({"suggestion": self.suggestion.id}, self.body)
        except sigopt.exception.ApiException as exc:
            if exc.status_code not in (400, 404):
                raise
        existing = self.backend.find_observation(self.suggestion)
        if existing is not None:
            return existing
        metadata = fit_metadata({**self.body["metadata"], SUGGESTION_ID_KEY: self.suggestion.id})
        target: dict[str, Any] = {"assignments": dict(self.suggestion.assignments)}
        if self.suggestion.task is not None:  # by assignments, a multitask observation names its task
            target["task"] = {"name": self.suggestion.task}
        return self._post(target, {**self.body, "metadata": metadata})

    def _post(self, target: dict[str, Any], body: dict[str, Any]) -> str:
        return str(self.backend._experiment().observations().create(**target, **body).id)


def _metadata(obj: Any) -> dict[str, Any]:
    return dict(obj.metadata or {}) if getattr(obj, "metadata", None) is not None else {}


def _suggestion_of(observation: Any, sweep_id: str | None) -> str | None:
    """The suggestion an observation on the server belongs to: its link, else the id the sweeper wrote.

    None for another sweep's (another ``sweep_id`` in its metadata): suggestion ids are the server's, and
    a server that lost its data gives them again. One without a ``sweep_id`` (an older sweeper's) is kept.
    """
    theirs = _metadata(observation).get(SWEEP_ID_KEY)
    if sweep_id and theirs is not None and str(theirs) != sweep_id:
        return None
    linked = getattr(observation, "suggestion", None)
    if linked is not None:
        return str(linked)
    written = _metadata(observation).get(SUGGESTION_ID_KEY)
    return None if written is None else str(written)


def attach_refused(experiment_id: str, url: str, credentials: Credentials) -> ApiError:
    """HTTP 403 on the experiment ``api.experiment_id`` names: most often not a bad token (it was not
    refused on anything else) but the other kind: a server hides an experiment made with the
    development token (a dev_run sweep) from the regular token, and the reverse."""
    development = credentials.source.startswith(DEV_TOKEN_VARIABLE)
    advice = (
        "this sweep uses the development token (dev_run: true); to attach to an experiment made without "
        "dev_run, leave hydra.sweeper.dev_run out"
        if development
        else f"if experiment {experiment_id} was made by a dev_run sweep, attach with hydra.sweeper.dev_run=true "
        f"and {DEV_TOKEN_VARIABLE} set"
    )
    return ApiError(
        f"the SigOpt API at {url} refused experiment {experiment_id} to the token from {credentials.source} "
        "(HTTP 403); a server hides an experiment made with the development token from the regular token, "
        f"and the reverse: {advice}; else check hydra.sweeper.api.experiment_id and the token's rights",
        403,
    )


def _api_url(configured: Any, recorded: str | None = None) -> str:
    """The API's URL: ``hydra.sweeper.api.api_url``, else ``SIGOPT_API_URL`` (from the environment,
    else from the ``SIGOPT_ENV_FILE`` file). A password in it comes from there only (Hydra writes its
    config to disk); the journal keeps it masked, and a ``hydra-sigopt`` command finds it there again.
    ``recorded``: the URL a resumed sweep's journal holds, named if none is set now."""
    env, _ = api_url_setting()
    url = str(configured or env).rstrip("/")
    if not url:
        check_env_file()  # where the URL was to come from
        if recorded:
            raise ConfigError("api.api_url", _url_to_continue(recorded))
        raise ConfigError(
            "api.api_url",
            "backend: api needs the URL of a SigOpt API (e.g. https://sigopt.example.org/api); "
            f"set hydra.sweeper.api.api_url or {URL_VARIABLE}",
        )
    if configured and url_password(url) == "***":  # as the journal keeps it
        if shown_url(env.rstrip("/")) != url:
            raise ConfigError(
                "api.api_url", f"the URL {url} had a password: set {URL_VARIABLE} to it, password included"
            )
        return env.rstrip("/")
    if configured and url_password(url):
        raise ConfigError(
            "api.api_url",
            f"the URL carries a password, and Hydra writes its config to disk; set {URL_VARIABLE} instead",
        )
    return url


def _url_to_continue(recorded: str) -> str:
    """What a resumed sweep needs, with the URL its journal recorded (a password there is masked)."""
    password = " with its password in place of ***" if url_password(recorded) else ""
    return (
        f"this sweep used the sigopt-server at {recorded}: set {URL_VARIABLE}={recorded}{password} "
        "(and its token) to continue"
    )


def experiment_metadata(code: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Where the sweep came from: the app's git commit (``code``, the journal's record of what the
    trials run; else the git checkout of the script started), the command line, host and versions."""
    meta = {
        "command": _public_command(),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "user": _safe(getpass.getuser),
        "hydra_sigopt_sweeper": __version__,
    }
    code = _git_identity() if code is None else code
    if code.get("commit"):
        meta["git_commit"] = code["commit"]
        meta["git_dirty"] = str(code["dirty"]).lower()
        meta["git_diff_sha256"] = code["diff_sha256"] or ""
    return {k: v for k, v in meta.items() if v}


def _public_command() -> str:
    """The command line, without the values of credential-looking overrides (``+db.password=...``) or tokens.

    What refuse_tokens_in_config keeps out of ``hydra.sweeper`` must not leave the machine through an app override.
    """
    argv = [os.path.basename(sys.executable), *mask_credential_overrides(sys.argv)]
    return redact(" ".join(argv), *known_tokens())


def _safe(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception:
        return ""


def _git_identity() -> dict[str, Any]:
    """The commit of the git checkout holding the app, whether it was dirty and the diff's hash, if any."""
    from hydra_sigopt.snapshot import git_identity

    app_dir = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else os.getcwd()
    return git_identity(Path(app_dir))
