"""Exceptions users see. Each message names the config key or argument and what would be valid."""

import os
from typing import NoReturn

from hydra.errors import CompactHydraException


def full_error_requested() -> bool:
    """Whether the user asked for full tracebacks: then Hydra re-raises instead of printing the message.

    Hydra's own test (``hydra._internal.utils._is_env_set``): the variable set to exactly ``1``.
    """
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


class SigOptSweeperError(CompactHydraException):
    """Base class of every error raised by hydra-sigopt-sweeper.

    Hydra prints a compact exception as its message alone (the traceback only with
    HYDRA_FULL_ERROR=1): each of these is a refusal or a stop the user acts on, not a bug.
    """


class ConfigError(SigOptSweeperError, ValueError):
    """A sweeper setting is invalid; raised before any job runs or experiment is created.

    ``key`` is a path under ``hydra.sweeper`` (``params.lr``), a full path from ``hydra.`` on
    (``hydra.sweep.mode``), or, for command-line overrides, a phrase such as
    ``command-line override 'lr=interval(1,0)'`` (those contain a space).
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        where = key if " " in key or key.startswith("hydra.") else f"hydra.sweeper.{key}"
        super().__init__(f"{where}: {problem}")


class EngineUnavailableError(SigOptSweeperError, RuntimeError):
    """The selected SigOpt engine cannot be imported or does not work."""


class SweepAbortedError(SigOptSweeperError, RuntimeError):
    """The sweep stopped on purpose (failure rate exceeded, interrupted); its state is kept."""


class JournalError(SigOptSweeperError, RuntimeError):
    """A sweep directory's journal is missing, corrupt, locked or of another format."""


class SweepDirTaken(JournalError):
    """Another live sweeper holds the sweep dir's lock: ``pid`` on ``host`` (empty: not known)."""

    def __init__(self, message: str, pid: str, host: str) -> None:
        super().__init__(message)
        self.pid, self.host = pid, host


class EngineLostError(SigOptSweeperError, RuntimeError):
    """The engine no longer has the sweep's experiment (a server that lost its data): the sweep cannot go on
    there; its journal keeps every result. ``advice(sweep_dir)`` says what the user can do instead."""

    @staticmethod
    def advice(sweep_dir: object) -> str:
        return (
            f"the journal in {sweep_dir} keeps every result of this sweep (trials.csv, hydra-sigopt best); start a "
            f"new sweep (another hydra.sweep.dir), or drop this one with hydra-sigopt delete {sweep_dir} --local-only"
        )


class BackendUnavailableError(SweepAbortedError):
    """The engine could not be reached long enough that the sweep stopped; the journal is intact."""


#: What Hydra prints after a compact error's one line.
FULL_ERROR_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


def exit_with_refusal(exc: ConfigError) -> NoReturn:
    """End the process on a refusal made while Hydra instantiates the sweeper, printed as Hydra prints
    any other refusal: its one line and Hydra's hint. Hydra wraps whatever an instantiated target
    raises in "Error in call to target '...':", the exception's repr and a "full_key:" line; a
    SystemExit is the one way past that wrapping (as argparse exits). With HYDRA_FULL_ERROR=1 the
    ConfigError is raised as it is, for its traceback."""
    if full_error_requested():
        raise exc
    raise SystemExit(f"{exc}\n\n{FULL_ERROR_HINT}") from None
