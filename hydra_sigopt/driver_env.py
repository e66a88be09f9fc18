"""The environment of the sweep's driver job (``hydra-sigopt submit``): no SigOpt token it does not need.

sbatch gives a job the whole environment it was started with, and slurmctld keeps that environment
in its state dir as long as the job exists (and the job's processes carry it in /proc/<pid>/environ).
So a token in the user's shell would sit there even with ``backend: lite``, which never reads one.
The driver gets the user's environment without the SigOpt secrets (:func:`hydra_sigopt.secrets.
secret_variables`, the set the sweeper withholds from its trials), except where its backend needs
them: ``backend: api`` reads its token (and ``SIGOPT_API_URL``, whose password is a secret too) from
the token file (``SIGOPT_ENV_FILE``) when the user has one, so a variable the file covers is
dropped; one it does not cover has to go with the job, and submit says so.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra_sigopt.secrets import (
    DEV_TOKEN_VARIABLE,
    URL_VARIABLE,
    env_file_settings,
    url_password,
    without_secrets,
)

#: The backends the sweeper knows (``hydra.sweeper.backend``).
BACKENDS = ("lite", "api")
#: The regular token's variables; the token file's ``SIGOPT_TOKEN`` or ``SIGOPT_API_TOKEN`` stands for them.
REGULAR_TOKEN_VARIABLES = ("SIGOPT_API_TOKEN", "SIGOPT_TOKEN")
#: How long Hydra may take to compose the command's config (an app importing a large framework).
PROBE_TIMEOUT_S = 120.0


def sweep_backend(command: Sequence[str], cwd: Path, environ: Mapping[str, str]) -> str | None:
    """The command's ``hydra.sweeper.backend`` as Hydra composes its config (``--cfg``: no job runs);
    None when it cannot be read (not a Python command, whose arguments could mean anything else; a
    config that does not compose)."""
    probe = _config_probe(command)
    if probe is None:
        return None
    try:
        done = subprocess.run(
            probe, cwd=cwd, env=without_secrets(environ), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    backend = lines[-1].strip().strip("'\"") if done.returncode == 0 and lines else None
    return backend if backend in BACKENDS else None


def _config_probe(command: Sequence[str]) -> list[str] | None:
    """The command printing its sweeper's backend instead of sweeping (``--cfg`` excludes ``-m``)."""
    argv = list(command)
    if not argv:
        return None
    if Path(argv[0]).name.startswith("python"):
        size = 3 if argv[1:2] == ["-m"] else 2  # the interpreter, and the script or ``-m module``
    elif argv[0].endswith(".py"):
        size = 1  # ./train.py, run by its shebang
    else:
        return None
    args = [a for a in argv[size:] if a not in ("-m", "--multirun")]
    return [*argv[:size], *args, "--cfg", "hydra", "-p", "hydra.sweeper.backend"]


def driver_environment(backend: str | None, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment for sbatch, and the secret variables it still carries (to be said).

    ``backend`` None (not known): kept as for ``api``, whose driver would fail without its token.
    """
    if backend == "lite":
        return without_secrets(environ), []
    env = dict(environ)
    for name in _covered_by_token_file(env):
        env.pop(name, None)
    secret_url = [URL_VARIABLE] if url_password(env.get(URL_VARIABLE, "")) else []
    return env, [n for n in (*REGULAR_TOKEN_VARIABLES, DEV_TOKEN_VARIABLE, *secret_url) if env.get(n)]


def _covered_by_token_file(environ: Mapping[str, str]) -> list[str]:
    """The token variables whose token the ``SIGOPT_ENV_FILE`` file holds as well (the driver reads it there)."""
    held = env_file_settings(environ)  # unreadable: none, as the driver could not read it either
    covered = list(REGULAR_TOKEN_VARIABLES) if any(held.get(n) for n in REGULAR_TOKEN_VARIABLES) else []
    # The URL only where the file's is the same: the variable is the one the user's shell uses.
    same_url = held.get(URL_VARIABLE) and held.get(URL_VARIABLE) == environ.get(URL_VARIABLE)
    return (
        covered + ([DEV_TOKEN_VARIABLE] if held.get(DEV_TOKEN_VARIABLE) else []) + ([URL_VARIABLE] if same_url else [])
    )


def carried_note(backend: str | None, carried: Sequence[str]) -> str:
    """One line saying which secrets go with the driver job, and how to keep them out of it (a
    password in ``SIGOPT_API_URL`` is one; the URL is shown nowhere, only the variable's name)."""
    url = URL_VARIABLE in carried
    tokens = len(carried) > int(url)
    needs = " and ".join([*(["the token"] if tokens else []), *(["the URL's password"] if url else [])])
    why = f"backend: api needs {needs}" if backend == "api" else "the sweep's backend could not be read"
    lines = [*(["SIGOPT_TOKEN=..."] if tokens else []), *([f"{URL_VARIABLE}=..."] if url else [])]
    return (
        f"Note: the driver job's environment carries {', '.join(carried)} ({why}); slurmctld keeps a job's "
        f"environment in its state dir while the job exists. To keep {'them' if len(lines) > 1 else 'it'} out, "
        f"put {'them' if len(lines) > 1 else 'it'} in a file named by SIGOPT_ENV_FILE ({', '.join(lines)}) instead."
    )
