"""What a failed connection to a SigOpt API means for the user: the setting that sent it astray.

requests' own errors name urllib3's connection pools, not the URL scheme or the proxy variable the
user set; these notes name them, so that the one line a user reads says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from hydra_sigopt.secrets import shown_url

#: OpenSSL's words for a TLS handshake answered by something that is not TLS (a plain-HTTP server).
_NOT_TLS_MARKERS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure")


def answered_without_tls(reason: str) -> bool:
    """Whether a TLS failure came from a server that does not speak TLS (an https:// URL for http)."""
    return any(marker in reason for marker in _NOT_TLS_MARKERS)


def not_tls_message(what: str, url: str, reason: str) -> str:
    return (
        f"could not {what}: {url} does not answer in TLS (https) ({reason}); if the server speaks plain "
        "HTTP, give its http:// URL in SIGOPT_API_URL (or hydra.sweeper.api.api_url), else check the port"
    )


def proxy_variable(url: str, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The proxy variable requests sends ``url``'s requests through, and its value, if one is set.

    As urllib reads them (requests does the same): a lower-case variable wins over its upper-case
    twin, and ``ALL_PROXY`` applies where the scheme has none. ``NO_PROXY`` is requests' to apply.
    """
    env = os.environ if environ is None else environ
    scheme = urlsplit(url).scheme or "http"
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if env.get(name):
            return name, env[name]
    return None


def proxy_note(url: str, environ: Mapping[str, str] | None = None) -> str:
    """Which proxy a request that failed on its proxy went through, and what to change (password masked)."""
    found = proxy_variable(url, environ)
    if found is None:
        return "through a proxy; check the proxy variables (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)"
    name, value = found
    return (
        f"through the proxy {shown_url(value)} ({name}); fix {name}, or list the API's host in NO_PROXY "
        "to reach it directly"
    )
