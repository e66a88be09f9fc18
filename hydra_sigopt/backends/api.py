"""A SigOpt API (a self-hosted sigopt-server, or any SigOpt-compatible API) through the official client.

The server serves parallel suggestions itself (``parallel_bandwidth`` open suggestions). Calls
that fail on 5xx or a dropped connection are retried with capped exponential backoff; an
observation whose POST outcome is unknown is looked up on the server before it is sent again, so
no result is recorded twice. Once the API has been unreachable for ``max_unreachable_s`` the sweep
stops with its journal intact (:class:`ApiUnreachableError`), ready to be resumed.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra_sigopt import __version__
from hydra_sigopt.backends.base import Backend, PastObservation, Suggestion
from hydra_sigopt.errors import BackendUnavailableError, ConfigError, SigOptSweeperError
from hydra_sigopt.experiment import ExperimentDefinition
from hydra_sigopt.metrics import MetricValue
from hydra_sigopt.secrets import Credentials, known_tokens, mask_credential_overrides, redact, resolve_token
from hydra_sigopt.sigopt_client import import_sigopt, plain

log = logging.getLogger(__name__)

T = TypeVar("T")

#: First and largest pause between retries of a failed call, in seconds.
BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
#: The observation metadata key that ties a server observation to a journal trial.
JOB_NUMBER_KEY = "job_number"


class ApiError(SigOptSweeperError, RuntimeError):
    """The SigOpt API refused a request in a way retrying will not fix (token, URL, experiment id)."""


class ApiUnreachableError(BackendUnavailableError):
    """The SigOpt API could not be reached for longer than ``api.max_unreachable_s``."""


def _parse_verify(raw: Any) -> bool | str:
    """``verify_ssl_certs``: true/false or the path of a CA bundle."""
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
    ) -> None:
        settings = dict(settings or {})
        url = settings.get("api_url") or os.environ.get("SIGOPT_API_URL")
        if not url:
            raise ConfigError(
                "api.api_url",
                "backend: api needs the URL of a SigOpt API (e.g. https://sigopt.example.org/api); "
                "set hydra.sweeper.api.api_url or SIGOPT_API_URL",
            )
        self.url = str(url).rstrip("/")
        verify = settings.get("verify_ssl_certs")
        if verify is None:
            verify = os.environ.get("SIGOPT_API_VERIFY_SSL_CERTS")
        self.verify = _parse_verify(verify)
        self.timeout = float(settings.get("timeout") or 30.0)
        self.project = settings.get("project") or os.environ.get("SIGOPT_PROJECT")
        self.attach_id = settings.get("experiment_id")
        self.max_unreachable_s = float(settings.get("max_unreachable_s") or 600.0)
        self.dev_run = dev_run
        self.credentials = resolve_token(dev_run=dev_run)
        self._sleep = sleep
        factory = connection_factory or self._default_connection
        self.connection = factory(self.credentials)
        self.experiment_id: str | None = None
        self._observed_jobs: dict[int, str] = {}

    # ------------------------------------------------------------------ plumbing

    def _default_connection(self, credentials: Credentials) -> Any:
        sigopt = import_sigopt()
        conn = sigopt.Connection(client_token=credentials.token)
        conn.set_api_url(self.url)
        conn.set_timeout(self.timeout)
        conn.set_verify_ssl_certs(self.verify)
        return conn

    def _experiment(self) -> Any:
        return self.connection.experiments(self.experiment_id)

    def _call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run one API call; clear errors for 4xx; retry 5xx and connection faults with backoff."""
        sigopt = import_sigopt()
        ApiException = sigopt.exception.ApiException
        ConnectionException = sigopt.exception.ConnectionException
        first_failure: float | None = None
        pause = BACKOFF_START_S
        while True:
            try:
                return fn()
            except ApiException as exc:
                status = getattr(exc, "status_code", None)
                if status is not None and status < 500:
                    raise self._client_error(status, what, exc) from None
                reason = f"HTTP {status}"
            except ConnectionException as exc:
                cause = exc.__cause__ or exc
                reason = redact(
                    f"{type(cause).__name__}: {str(cause).splitlines()[-1] if str(cause) else ''}",
                    self.credentials.token,
                )
            if not retry:
                raise ApiUnreachableError(f"could not {what} at {self.url}: {reason}")
            now = time.monotonic()
            first_failure = first_failure if first_failure is not None else now
            if now - first_failure >= self.max_unreachable_s:
                raise ApiUnreachableError(
                    f"the SigOpt API at {self.url} has been unreachable for {now - first_failure:.0f} s "
                    f"(api.max_unreachable_s={self.max_unreachable_s:g}) while trying to {what}; last error: {reason}"
                )
            log.warning("SigOpt API: %s failed (%s); retrying in %.1f s", what, reason, pause)
            self._sleep(pause)
            pause = min(pause * 2, BACKOFF_CAP_S)

    def _client_error(self, status: int, what: str, exc: Exception) -> ApiError:
        """One clear line for a 4xx answer (never with the token in it)."""
        if status in (401, 403):
            return ApiError(
                f"the SigOpt API at {self.url} refused the token from {self.credentials.source} "
                f"(HTTP {status}) while trying to {what}; check the token and the URL"
            )
        detail = redact(str(getattr(exc, "message", None) or exc), self.credentials.token)
        return ApiError(f"the SigOpt API at {self.url} answered HTTP {status} to {what}: {detail}")

    def public_settings(self) -> dict[str, Any]:
        return {
            "api_url": self.url,
            "verify_ssl_certs": self.verify,
            "timeout": self.timeout,
            "project": self.project,
            "max_unreachable_s": self.max_unreachable_s,
        }

    # ------------------------------------------------------------------ contract

    def start(self, definition: ExperimentDefinition, resume_id: str | None = None) -> str:
        experiment_id = resume_id or self.attach_id
        if experiment_id:
            self.experiment_id = str(experiment_id)
            experiment = self._fetch_experiment()
            self._check_matches(experiment, definition)
            return self.experiment_id
        body = definition.to_sigopt()
        if self.project:
            body["project"] = self.project
        body["metadata"] = experiment_metadata()
        experiment = self._call("create the experiment", lambda: self.connection.experiments().create(**body))
        self.experiment_id = str(experiment.id)
        log.info("Created SigOpt experiment %s at %s", self.experiment_id, self.url)
        return self.experiment_id

    def _fetch_experiment(self) -> Any:
        try:
            return self._call(f"fetch experiment {self.experiment_id}", lambda: self._experiment().fetch())
        except ApiError as exc:
            if "HTTP 404" in str(exc):
                raise ApiError(
                    f"experiment {self.experiment_id} was not found at {self.url} (HTTP 404); "
                    "check hydra.sweeper.api.experiment_id"
                ) from None
            raise

    def _check_matches(self, experiment: Any, definition: ExperimentDefinition) -> None:
        """Refuse to attach to an experiment whose parameters or metrics differ from the config."""
        server_params = sorted(p.name for p in experiment.parameters or [])
        server_metrics = sorted(m.name for m in experiment.metrics or [])
        ours_params = sorted(definition.space.names)
        ours_metrics = sorted(m.name for m in definition.metrics)
        if server_params != ours_params or server_metrics != ours_metrics:
            raise ApiError(
                f"experiment {self.experiment_id} at {self.url} has parameters {server_params} and metrics "
                f"{server_metrics}, but the sweep declares parameters {ours_params} and metrics {ours_metrics}"
            )

    def restore(self, observations: Sequence[PastObservation], open_suggestion_ids: Sequence[str] = ()) -> None:
        """The server keeps its own observations; reconcile open suggestions with the journal."""
        for obs in self._call(
            "list observations", lambda: list(self._experiment().observations().fetch().iterate_pages())
        ):
            number = (obs.metadata or {}).get(JOB_NUMBER_KEY) if obs.metadata is not None else None
            if number is not None:
                self._observed_jobs[int(number)] = str(obs.id)
        keep = set(open_suggestion_ids)
        open_now = self._call(
            "list open suggestions",
            lambda: list(self._experiment().suggestions().fetch(state="open").iterate_pages()),
        )
        for s in open_now:
            if str(s.id) not in keep:
                log.info(
                    "Deleting open suggestion %s left by a stopped sweeper (no trial of the journal uses it)", s.id
                )
                self.discard(Suggestion(str(s.id), {}))

    def suggest(self, pending: Sequence[Mapping[str, Any]]) -> Suggestion:
        s = self._call("create a suggestion", lambda: self._experiment().suggestions().create())
        return Suggestion(str(s.id), {str(k): plain(v) for k, v in dict(s.assignments).items()})

    def observe(
        self,
        suggestion: Suggestion,
        values: Sequence[MetricValue] = (),
        failed: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        metadata = dict(metadata or {})
        number = metadata.get(JOB_NUMBER_KEY)
        if number is not None and int(number) in self._observed_jobs:
            return self._observed_jobs[int(number)]  # recorded by an earlier sweeper process
        body: dict[str, Any] = {"metadata": {k: v for k, v in metadata.items() if v is not None}}
        if failed:
            body["failed"] = True
        else:
            body["values"] = [v.to_sigopt() for v in values]
        observation_id = self._post_observation(suggestion, body, number)
        if number is not None:
            self._observed_jobs[int(number)] = observation_id
        return observation_id

    def _post_observation(self, suggestion: Suggestion, body: dict[str, Any], number: Any) -> str:
        """POST once; if the outcome is unknown, look it up on the server before trying again."""
        sigopt = import_sigopt()
        first_failure = time.monotonic()
        pause = BACKOFF_START_S
        by_suggestion = True
        while True:
            target = {"suggestion": suggestion.id} if by_suggestion else {"assignments": dict(suggestion.assignments)}
            try:
                return str(self._experiment().observations().create(**target, **body).id)
            except sigopt.exception.ApiException as exc:
                status = getattr(exc, "status_code", None)
                if status in (400, 404) and by_suggestion:
                    # The suggestion is closed or gone (deleted, or observed by a request whose answer was lost).
                    existing = self._find_observation(suggestion.id, number)
                    if existing is not None:
                        return existing
                    by_suggestion = False
                    continue
                if status is not None and status < 500:
                    raise self._client_error(status, f"record the observation of trial {number}", exc) from None
            except sigopt.exception.ConnectionException:
                pass
            existing = self._find_observation(suggestion.id, number)
            if existing is not None:
                return existing
            if time.monotonic() - first_failure >= self.max_unreachable_s:
                raise ApiUnreachableError(
                    f"could not record the observation of trial {number} at {self.url} for "
                    f"{self.max_unreachable_s:g} s (api.max_unreachable_s)"
                )
            log.warning("SigOpt API: recording trial %s failed; retrying in %.1f s", number, pause)
            self._sleep(pause)
            pause = min(pause * 2, BACKOFF_CAP_S)

    def _find_observation(self, suggestion_id: str, number: Any) -> str | None:
        """The id of a server observation for this suggestion or job number, if one exists."""
        observations = self._call(
            "look up observations", lambda: list(self._experiment().observations().fetch().iterate_pages())
        )
        for obs in observations:
            meta = dict(obs.metadata or {}) if obs.metadata is not None else {}
            if str(getattr(obs, "suggestion", None)) == str(suggestion_id) or (
                number is not None and str(meta.get(JOB_NUMBER_KEY)) == str(number)
            ):
                return str(obs.id)
        return None

    def discard(self, suggestion: Suggestion) -> None:
        try:
            self._call(
                f"delete suggestion {suggestion.id}", lambda: self._experiment().suggestions(suggestion.id).delete()
            )
        except ApiError:
            pass  # already closed or deleted

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

    def attach(self, experiment_id: str) -> None:
        """Point at an existing experiment without checking it (for ``hydra-sigopt delete``)."""
        self.experiment_id = str(experiment_id)

    def delete(self) -> None:
        self._call(f"delete experiment {self.experiment_id}", lambda: self._experiment().delete())


def experiment_metadata() -> dict[str, str]:
    """Where the sweep came from: the app's git commit, the command line, host and versions."""
    meta = {
        "command": _public_command()[:500],
        "cwd": os.getcwd()[:500],
        "host": socket.gethostname(),
        "user": _safe(getpass.getuser),
        "hydra_sigopt_sweeper": __version__,
    }
    code = _git_identity()
    if code:
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
