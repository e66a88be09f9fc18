"""SigOpt tokens: read from the environment or files only, and kept out of everything written.

Where a token comes from, in order:

1. with ``dev_run``, ``SIGOPT_DEV_TOKEN`` (environment, or the ``SIGOPT_ENV_FILE`` file);
2. ``SIGOPT_API_TOKEN`` in the environment;
3. ``SIGOPT_TOKEN=`` (or ``SIGOPT_API_TOKEN=``) in the file named by ``SIGOPT_ENV_FILE``, the
   original Sigopt-Hyperopt tool's format;
4. the sigopt client's own config file (written by ``sigopt config``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.errors import ConfigError, SigOptSweeperError

_TOKEN_WORDS = ("token", "secret", "password", "api_key", "apikey")
#: The environment variables (and ``SIGOPT_ENV_FILE`` keys) that hold SigOpt tokens.
TOKEN_VARIABLES = ("SIGOPT_API_TOKEN", "SIGOPT_TOKEN", "SIGOPT_DEV_TOKEN")
#: The development token's variable (environment or ``SIGOPT_ENV_FILE``); a Credentials source starts with it.
DEV_TOKEN_VARIABLE = "SIGOPT_DEV_TOKEN"
TOKEN_HELP = (
    "SigOpt tokens are never read from the Hydra config, because Hydra writes every job's config to "
    "disk (.hydra/config.yaml, multirun.yaml). Set SIGOPT_API_TOKEN in the environment, or point "
    "SIGOPT_ENV_FILE at a file with SIGOPT_TOKEN=... (and SIGOPT_DEV_TOKEN=... for dev_run)."
)


class MissingTokenError(SigOptSweeperError, RuntimeError):
    """No SigOpt API token could be found where tokens are read from."""


@dataclass(frozen=True)
class Credentials:
    token: str = ""
    #: Where the token came from, for messages (never the token itself).
    source: str = ""

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"Credentials(source={self.source!r})"


def looks_like_credential(key: str) -> bool:
    """Whether a config key or override key names a credential (``api_token``, ``db.password``)."""
    return any(word in key.lower() for word in _TOKEN_WORDS)


def refuse_tokens_in_config(raw: Mapping[str, Any], where: str = "") -> None:
    """Raise ConfigError if any key under hydra.sweeper that looks like a credential is set."""
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if value is not None and looks_like_credential(str(key)):
            raise ConfigError(path, f"looks like a credential and is refused. {TOKEN_HELP}")
        if isinstance(value, Mapping) and key != "params":
            refuse_tokens_in_config(value, path)


def mask_credential_overrides(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with the value of every credential-looking override masked.

    ``+sigopt_token=abc`` becomes ``+sigopt_token=***``, for what is sent off this machine.
    """
    masked = []
    for arg in argv:
        key, equals, _ = arg.partition("=")
        masked.append(f"{key}=***" if equals and looks_like_credential(key) else arg)
    return masked


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefixes, quotes and ``#`` comments allowed)."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MissingTokenError(f"SIGOPT_ENV_FILE={path} cannot be read: {exc.strerror}") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = _shell_value(value.strip())
    return values


def _shell_value(value: str) -> str:
    """A value as a shell reads it: a quoted one up to its closing quote; an unquoted one up to a
    ``#`` after a blank (a comment); a ``#`` inside a word is part of it."""
    if value[:1] in ("'", '"') and value.find(value[0], 1) > 0:
        return value[1 : value.find(value[0], 1)]
    if value.startswith("#"):
        return ""  # KEY= # a comment: empty, as in a shell
    return re.split(r"\s#", value, maxsplit=1)[0].strip().strip("'\"")  # an unclosed quote is dropped


def resolve_token(dev_run: bool = False, environ: Mapping[str, str] | None = None) -> Credentials:
    """The SigOpt API token, from the places listed in this module's docstring."""
    env = os.environ if environ is None else environ
    env_file_path = env.get("SIGOPT_ENV_FILE")
    env_file = read_env_file(env_file_path) if env_file_path else {}
    if dev_run:
        if env.get("SIGOPT_DEV_TOKEN"):
            return Credentials(env["SIGOPT_DEV_TOKEN"], "SIGOPT_DEV_TOKEN")
        if env_file.get("SIGOPT_DEV_TOKEN"):
            return Credentials(env_file["SIGOPT_DEV_TOKEN"], f"SIGOPT_DEV_TOKEN in {env_file_path}")
    if env.get("SIGOPT_API_TOKEN"):
        return Credentials(env["SIGOPT_API_TOKEN"], "SIGOPT_API_TOKEN")
    for key in ("SIGOPT_TOKEN", "SIGOPT_API_TOKEN"):
        if env_file.get(key):
            return Credentials(env_file[key], f"{key} in {env_file_path}")
    from hydra_sigopt.sigopt_client import import_sigopt

    config_token = getattr(import_sigopt().config, "api_token", None)
    if config_token:
        return Credentials(str(config_token), "the sigopt client's config file")
    raise MissingTokenError(
        "backend: api needs a SigOpt API token and none was found. "
        + TOKEN_HELP.split(". ", 1)[1]
        + (" dev_run looks for SIGOPT_DEV_TOKEN first." if dev_run else "")
    )


def has_development_token(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a ``dev_run`` would find the development token (else it falls back to the regular one)."""
    try:
        return resolve_token(dev_run=True, environ=environ).source.startswith(DEV_TOKEN_VARIABLE)
    except MissingTokenError:
        return False


#: The SigOpt API's URL, which may carry a password (``https://user:password@host/api``).
URL_VARIABLE = "SIGOPT_API_URL"


def api_url_setting(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The API's URL the environment gives, and where from: ``SIGOPT_API_URL``, else the
    ``SIGOPT_ENV_FILE`` file's ``SIGOPT_API_URL`` (a URL with a password is a secret like the
    token: the file keeps it out of a driver job's environment); ``""`` if neither has one."""
    env = os.environ if environ is None else environ
    if env.get(URL_VARIABLE):
        return env[URL_VARIABLE], URL_VARIABLE
    held = env_file_settings(env)
    if held.get(URL_VARIABLE):
        return held[URL_VARIABLE], f"{URL_VARIABLE} in {env['SIGOPT_ENV_FILE']}"
    return "", URL_VARIABLE


def check_env_file(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`MissingTokenError` naming ``SIGOPT_ENV_FILE`` if it names a file that cannot be
    read: a typo in its path must not read as a setting missing from it (the URL, the token)."""
    path = (os.environ if environ is None else environ).get("SIGOPT_ENV_FILE")
    if path:
        read_env_file(path)


def env_file_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``SIGOPT_ENV_FILE`` file's settings; none when it is not set or cannot be read (which
    :func:`resolve_token` says, where the token is looked for)."""
    path = environ.get("SIGOPT_ENV_FILE")
    try:
        return read_env_file(path) if path else {}
    except MissingTokenError:
        return {}


def _maskable_password(url: str) -> str:
    """The URL's password if it is long enough to be masked wherever it occurs (else "")."""
    password = url_password(url) or ""
    return password if len(password) >= MIN_MASKED_PASSWORD else ""


def url_password(url: str) -> str | None:
    """The password in a URL's user info (``https://user:password@host``), if it has one: a secret
    like a token, never written, logged or passed to a trial."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password or None
    except ValueError:  # not a URL the sweep can use anyway
        return None


def shown_url(url: str) -> str:
    """``url`` fit to be written or logged: its password masked (in the user info only: a password
    that also occurs in the host or path leaves them as they are)."""
    from urllib.parse import urlsplit, urlunsplit

    if not url_password(url):
        return url
    parts = urlsplit(url)
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def known_tokens(environ: Mapping[str, str] | None = None) -> set[str]:
    """Every token this process could use: the token variables and the ``SIGOPT_ENV_FILE`` file's."""
    env = os.environ if environ is None else environ
    found = {env.get(name, "") for name in TOKEN_VARIABLES} | {_maskable_password(env.get(URL_VARIABLE, ""))}
    env_file = env_file_settings(env)
    found |= {env_file.get(name, "") for name in TOKEN_VARIABLES}
    found.add(_maskable_password(env_file.get(URL_VARIABLE, "")))
    return {token for token in found if token}


def secret_variables(environ: Mapping[str, str]) -> list[str]:
    """The variables of ``environ`` that hold a token or lead to one: the token variables, the token
    file's path, and ``SIGOPT_API_URL`` where it carries a password."""
    secret_url = [URL_VARIABLE] if url_password(environ.get(URL_VARIABLE, "")) else []
    return [name for name in (*TOKEN_VARIABLES, "SIGOPT_ENV_FILE", *secret_url) if name in environ]


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without :func:`secret_variables`: for a process that needs no token."""
    secret = set(secret_variables(environ))
    return {name: value for name, value in environ.items() if name not in secret}


#: The tokens withheld from this process's environment while a sweep runs (see :func:`tokens_withheld`).
_withheld: set[str] = set()


@contextmanager
def tokens_withheld(also: Iterable[str] = (), environ: MutableMapping[str, str] | None = None) -> Iterator[set[str]]:
    """Remove the token variables (and the token file's path) from the environment meanwhile.

    Trials inherit the sweeper's environment (in-process ones share it; submitit jobs get a copy
    when they are submitted) and never need a token: an app that prints or raises with its
    environment must not carry one into logs, results or the journal. The backend has read its
    token before this. Yields every known token (those removed, the token file's, ``also``), to
    be masked in whatever is written meanwhile.
    """
    env = os.environ if environ is None else environ
    tokens = known_tokens(env) | set(filter(None, also))
    removed = {name: env.pop(name) for name in secret_variables(env)}
    _withheld.update(tokens)
    try:
        yield tokens
    finally:
        env.update(removed)
        _withheld.difference_update(tokens)


def withheld_tokens() -> set[str]:
    """The tokens a running sweep in this process withholds (none in a trial's own process)."""
    return set(_withheld)


#: The password of a URL's user info, wherever a URL is quoted (``https://user:password@host``).
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")
#: A URL's password shorter than this is masked in URLs only: masked wherever it occurs, a password
#: of one letter would mangle every message.
MIN_MASKED_PASSWORD = 4


def redact(text: str, *tokens: str) -> str:
    """``text`` with every occurrence of each token masked, and the password of every URL in it."""
    for token in sorted(filter(None, tokens), key=len, reverse=True):  # longest first: one may hold another
        text = text.replace(token, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


def tokens_of(backend: Any) -> tuple[str, ...]:
    """The token a backend uses (``backend: api``'s may come from the sigopt client's config file)."""
    credentials = getattr(backend, "credentials", None)
    token = (credentials.token,) if credentials is not None and credentials.token else ()
    password = _maskable_password(str(getattr(backend, "url", "") or ""))
    return (*token, password) if password else token
