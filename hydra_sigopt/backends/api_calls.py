"""Calling a SigOpt API: which failures are worth another try, and one clear line for the others.

A call is retried with capped exponential backoff (:mod:`hydra_sigopt.retry`) while the API is out
of reach (5xx, a 429 past the client's own retries, a dropped, refused or timed-out connection), for
at most ``max_unreachable_s``, counted from the start of the first failed request (a connection
dropped during the TLS handshake too); a refusal (4xx), a TLS certificate the client cannot verify
or a server that does not speak TLS is final at once. No message carries the token.

A retried request's timeout is cut to the time left before that limit, so that a frozen server
does not keep the sweep waiting a whole timeout past it. The client has one timeout per connection
(read at each request), so the cut is set before each retry and undone when the call ends; the
api backend gives each thread its own connection, so a cut applies to its own thread's requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hydra_sigopt.backends.connection_faults import answered_without_tls, not_tls_message, proxy_note
from hydra_sigopt.errors import BackendUnavailableError, SigOptSweeperError
from hydra_sigopt.retry import RetriesExhausted, RetryPolicy, retry
from hydra_sigopt.secrets import Credentials, redact
from hydra_sigopt.sigopt_client import import_sigopt

log = logging.getLogger("hydra_sigopt.backends.api")

T = TypeVar("T")

#: The call that makes the sweep's experiment (see client_error: a 404 on it is about the URL).
CREATE = "create the experiment"
URL_ADVICE = (
    "check SIGOPT_API_URL (or hydra.sweeper.api.api_url): the API root, which the client appends /v1/... to "
    "(e.g. https://sigopt.example.org/api for a sigopt-server, without /v1)"
)

#: First and largest pause between retries of a failed call, in seconds.
BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
#: The least time a retried request is given (or its whole timeout, if shorter): a busy server that
#: is back may need that long to answer, so a shorter last request would only fail again.
MIN_REQUEST_S = 1.0


class ApiError(SigOptSweeperError, RuntimeError):
    """The SigOpt API refused a request in a way retrying will not fix (token, URL, experiment id).

    ``status`` is the HTTP status of the refusal (None when no answer came, e.g. a TLS failure).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnreachableError(BackendUnavailableError):
    """The SigOpt API could not be reached for longer than ``api.max_unreachable_s``."""


def _tls_failure(exc: BaseException) -> bool:
    """Whether a connection failed on TLS in a way retrying cannot fix: a certificate the client cannot
    verify, a CA bundle it cannot read, a server that does not speak TLS or shares no protocol with
    the client. Only a connection dropped during the handshake (reset, closed, timed out: a balancer
    restarting) is a network fault like any other, retried."""
    return _failed_during_tls(exc) and not _in_the_chain(exc, _DROPPED)


def _failed_during_tls(exc: BaseException) -> bool:
    import requests

    return isinstance(exc.__cause__, requests.exceptions.SSLError)


#: What a connection dropped during the TLS handshake raises, somewhere in the chain requests and
#: urllib3 wrap it in. Anything else failing there is final.
_DROPPED = ("SSLEOFError", "SSLZeroReturnError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError")


def _certificate_refused(exc: BaseException) -> bool:
    """Whether ssl refused the server's certificate."""
    return _in_the_chain(exc, ("SSLCertVerificationError",))


def _in_the_chain(exc: BaseException, names: tuple[str, ...]) -> bool:
    """Whether an error of one of these classes (by name, subclasses too) is anywhere in the chain of
    errors requests and urllib3 wrap a failed connection in (as a cause, a context, a reason or an
    argument)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        error = pending.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        if any(kind.__name__ in names for kind in type(error).__mro__):
            return True
        seen.add(id(error))
        pending += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return False


def is_transient(exc: BaseException) -> bool:
    """5xx, 429 past the client's own retries, and dropped or refused connections are worth retrying."""
    sigopt = import_sigopt()
    if isinstance(exc, sigopt.exception.ApiException):
        status = exc.status_code
        return status is None or status >= 500 or status == 429
    if isinstance(exc, sigopt.exception.ConnectionException):
        return not _tls_failure(exc)
    return False


class ApiCalls:
    """Runs one backend's API calls (see the module docstring)."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        max_unreachable_s: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout_s: float,
        set_timeout: Callable[[float], None] | None = None,
        on_not_found: Callable[[], None] | None = None,
        patience: str | None = None,
    ) -> None:
        self.url = url
        self.credentials = credentials
        #: Masked in every message (and, by redact, the password of any URL quoted: requests' errors repeat it).
        self.secrets = tuple(filter(None, (credentials.token,)))
        self.max_unreachable_s = max_unreachable_s
        #: How a message names that limit: the sweep's setting, or a command's own wait (it has no setting).
        self.patience = patience or f"api.max_unreachable_s={max_unreachable_s:g}"
        #: A hydra-sigopt command (it has its own patience) says what it tries once, then how it ended.
        self._command = patience is not None
        self._sleep = sleep
        self._clock = clock
        self.timeout_s = timeout_s
        self._set_timeout = set_timeout
        #: Called on an HTTP 404 before it is reported: may raise a better error (the experiment is gone).
        self._on_not_found = on_not_found
        self._nested = threading.local()  # a call made inside another call's attempt (see __call__)

    def least_request_s(self) -> float:
        """The least time left before ``max_unreachable_s`` for which a retry is still sent.

        A request whose timeout cannot be cut may run its whole timeout: it is not sent with less.
        """
        if self._set_timeout is None:
            return self.timeout_s
        return min(self.timeout_s, MIN_REQUEST_S)

    def __call__(
        self, what: str, fn: Callable[[], T], *, once: bool = False, on_retry: Callable[[], None] | None = None
    ) -> T:
        """Run one API call; one clear error for a refusal; retry transient faults (``once``: never).

        A call made inside another one's attempt (an observation's POST looking on the server first)
        is part of that attempt: its failure is the attempt's, retried under the outer call's limit.
        """
        if getattr(self._nested, "depth", 0) > 0:
            return fn()
        self._nested.depth = 1
        try:
            return self._call(what, fn, once, on_retry)
        finally:
            self._nested.depth = 0
            if getattr(self._nested, "cut", False):
                self._nested.cut = False
                self._cut_timeout(self.timeout_s)  # the next call's first request has its whole timeout

    def _call(self, what: str, fn: Callable[[], T], once: bool, on_retry: Callable[[], None] | None) -> T:
        policy = RetryPolicy(
            BACKOFF_START_S,
            BACKOFF_CAP_S,
            deadline_s=self.max_unreachable_s,
            attempts=1 if once else None,
            min_attempt_s=self.least_request_s(),
        )

        retries_logged = 0

        def log_retry(exc: BaseException, pause: float) -> None:
            nonlocal retries_logged
            if self._command and retries_logged:  # its one line follows: no line per retry in a terminal
                log.debug("SigOpt API: %s failed (%s); retrying in %.1f s", what, self.reason(exc), pause)
            elif self._command:
                log.warning("SigOpt API: %s failed (%s); retrying (%s)", what, self.reason(exc), self.patience)
            else:
                log.warning("SigOpt API: %s failed (%s); retrying in %.1f s", what, self.reason(exc), pause)
            retries_logged += 1
            if on_retry is not None:
                on_retry()

        sigopt = import_sigopt()
        try:
            return retry(
                fn,
                policy,
                is_transient,
                on_retry=log_retry,
                before_retry=lambda left: self._cut_timeout(max(left, policy.min_attempt_s)),
                clock=self._clock,
                sleep=self._sleep,
            )
        except RetriesExhausted as exc:
            raise self.gave_up(what, exc, once) from None
        except sigopt.exception.ApiException as exc:
            if exc.status_code == 404 and self._on_not_found is not None:
                self._on_not_found()
            raise self.client_error(exc.status_code, what, exc) from None
        except sigopt.exception.ConnectionException as exc:  # TLS
            raise self.tls_error(what, exc) from None

    def _cut_timeout(self, seconds: float) -> None:
        """The next requests' timeout: at most the configured one."""
        if self._set_timeout is not None:
            self._nested.cut = seconds < self.timeout_s
            self._set_timeout(min(self.timeout_s, seconds))

    def tls_error(self, what: str, exc: BaseException) -> ApiError:
        """A TLS failure: a certificate the client cannot verify, or an https:// URL for a plain-HTTP server."""
        reason = self.reason(exc)
        if answered_without_tls(reason):
            return ApiError(not_tls_message(what, self.url, reason))
        what_failed = "the TLS certificate check failed" if _certificate_refused(exc) else "the TLS handshake failed"
        return ApiError(
            f"could not {what} at {self.url}: {what_failed} ({reason}); "
            "set hydra.sweeper.api.verify_ssl_certs (or SIGOPT_API_VERIFY_SSL_CERTS) to the server's CA bundle"
            " (a PEM file)"
        )

    def reason(self, exc: BaseException) -> str:
        """One line saying why a call failed (never with the token in it); a failed proxy is named."""
        import requests

        status = getattr(exc, "status_code", None)
        if status is not None:
            return f"HTTP {status}"
        cause = exc.__cause__ or exc
        text = str(cause).splitlines()[-1] if str(cause) else ""
        if isinstance(cause, requests.exceptions.ProxyError):
            text = f"{text} ({proxy_note(self.url)})"
        said = f"{type(cause).__name__}: {text}"
        if _failed_during_tls(exc) and not _tls_failure(exc):  # requests' SSLError read as a certificate's
            said = f"the connection failed during TLS: {said}"
        return redact(said, *self.secrets)

    def gave_up(self, what: str, exc: RetriesExhausted, once: bool) -> SigOptSweeperError:
        if once:
            return ApiError(f"could not {what} at {self.url}: {self.reason(exc.last)}")
        return ApiUnreachableError(
            f"the SigOpt API at {self.url} has been unreachable for {exc.elapsed_s:.1f} s "
            f"({self.patience}) while trying to {what}; "
            f"last error: {self.reason(exc.last)}"
        )

    def client_error(self, status: int, what: str, exc: Exception) -> ApiError:
        """One clear line for a 4xx answer (never with the token in it)."""
        if status in (401, 403):
            return ApiError(
                f"the SigOpt API at {self.url} refused the token from {self.credentials.source} "
                f"(HTTP {status}) while trying to {what}; check the token and the URL",
                status,
            )
        detail = redact(str(getattr(exc, "message", None) or exc), *self.secrets)
        if status == 404 and what == CREATE:  # no experiment id in it: the URL has no such endpoint
            detail += f"; {URL_ADVICE}"
        return ApiError(f"the SigOpt API at {self.url} answered HTTP {status} to {what}: {detail}", status)
