"""A copy of the app's code per sweep, so that every trial runs the code the sweep started with.

A Slurm sweep runs for hours; each submitit job imports the app's modules when it starts. Without
a snapshot, an edit, a ``git pull`` or a checkout under a running sweep silently changes the program
of the remaining trials. ``hydra.sweeper.code_snapshot``:

- ``git``: the repository's tracked files as they are in the working tree (HEAD plus uncommitted
  changes of tracked files); untracked and ignored files are left out.
- ``copy``: the app's directory, honouring ``.gitignore`` (inside a git repository, as git does).

:func:`plan_snapshot` checks what would be copied (raising :class:`ConfigError` before anything is
written); :func:`make_snapshot` copies it into the sweep dir once; :class:`Snapshot` says where a
job runs from. :class:`CodeWatch` is what a sweep without a snapshot gets: a warning, once, when the
app's files change under it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.errors import ConfigError, JournalError

log = logging.getLogger("hydra_sigopt")

SNAPSHOT_MODES = ("none", "git", "copy")
#: The snapshot's folder in the sweep dir.
SNAPSHOT_DIR = "sigopt_code"
#: A snapshot is code, not data: a tree larger than this is refused, naming its largest files.
MAX_SNAPSHOT_BYTES = 100 * 2**20
#: Files named when a snapshot is too large, or when files changed under a sweep.
NAMED_FILES = 5
GIT_TIMEOUT_S = 60


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.1f} KB"


# ---------------------------------------------------------------------- what the app is


def app_dir_of(task_function: Any) -> Path:
    """The folder of the task function's source file (the app), else the current directory."""
    try:
        source = inspect.getsourcefile(inspect.unwrap(task_function))
    except TypeError:
        source = None
    return Path(source).resolve().parent if source else Path.cwd()


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["git", *args], 1, b"", str(exc).encode())


def _git_text(cwd: Path, *args: str) -> str | None:
    done = _git(cwd, *args)
    return done.stdout.decode().strip() if done.returncode == 0 else None


def git_identity(app_dir: Path) -> dict[str, Any]:
    """The commit of the repository holding ``app_dir``, whether tracked files differ from it, and
    the sha256 of that difference (``git diff HEAD --binary``); empty outside a git repository."""
    commit = _git_text(app_dir, "rev-parse", "HEAD")
    if not commit:
        return {}
    diff = _git(app_dir, "diff", "HEAD", "--binary").stdout
    return {
        "commit": commit,
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None,
    }


# ---------------------------------------------------------------------- planning (no writes)


@dataclass(frozen=True)
class CodeSource:
    """What a snapshot copies: ``files`` (relative to ``root``), checked, not yet copied."""

    mode: str
    root: Path
    files: tuple[str, ...]
    size: int
    identity: Mapping[str, Any]

    def record(self) -> dict[str, Any]:
        """The journal's record of the snapshot (``hydra-sigopt status`` shows it)."""
        return {
            "mode": self.mode,
            "dir": SNAPSHOT_DIR,
            "root": str(self.root),
            "files": len(self.files),
            "bytes": self.size,
            "made_at": time.time(),
            **self.identity,
        }


def plan_snapshot(mode: str, app_dir: Path) -> CodeSource | None:
    """The files ``mode`` would copy for the app in ``app_dir``; None for ``none``.

    Raises :class:`ConfigError` for what cannot be snapshotted: not a git repository (``git``), a
    submodule, or more than :data:`MAX_SNAPSHOT_BYTES`.
    """
    if mode == "none":
        return None
    if mode == "git":
        root, files = _git_files(app_dir)
    else:
        _refuse_a_start_folder_above(app_dir, Path.cwd())
        root, files = _copy_files(app_dir)
    size = _checked_size(root, files)
    return CodeSource(mode, root, tuple(files), size, git_identity(app_dir))


def _refuse_a_start_folder_above(app_dir: Path, start: Path) -> None:
    """``copy`` of an app run from a folder above its own (lightning-hydra-template: ``src/train.py``
    from the project root, ``from src.utils import ...``, configs in ``../configs``): what the app
    takes from that folder is not copied, and its trials failed to import it, or imported the
    working tree's, which the snapshot is there to prevent."""
    app, start = app_dir.resolve(), start.resolve()
    if app != start and app.is_relative_to(start):
        raise ConfigError(
            "code_snapshot",
            f"copy copies the app's folder {app}, but the sweep starts from {start} above it, whose modules "
            "and configs the app may use (src.* and ../configs in lightning-hydra-template's layout): they "
            "would not be in the snapshot; use code_snapshot: git (the whole repository), or start the "
            "sweep from the app's folder",
        )


def _git_files(app_dir: Path) -> tuple[Path, list[str]]:
    """The repository's top level and its tracked files that exist in the working tree."""
    top = _git_text(app_dir, "rev-parse", "--show-toplevel")
    if top is None:
        raise ConfigError(
            "code_snapshot",
            f"git snapshots the app's git repository, and {app_dir} is not in one (or git is not installed); "
            "use code_snapshot: copy (the app's folder) or none",
        )
    root = Path(top)
    if _git_text(root, "rev-parse", "--verify", "-q", "HEAD") is None:
        raise ConfigError("code_snapshot", f"the git repository {root} has no commit yet; commit the app, or use copy")
    _refuse_submodules(root)
    return root, [f for f in _ls_files(root, "--cached") if (root / f).is_file() or (root / f).is_symlink()]


def _ls_files(where: Path, *options: str) -> list[str]:
    done = _git(where, "ls-files", "-z", *options)
    return [name for name in done.stdout.decode().split("\0") if name]


def _refuse_submodules(root: Path) -> None:
    """A submodule's code is another repository's: copying its folder would miss its own changes."""
    staged = _git(root, "ls-files", "-s", "-z").stdout.decode().split("\0")
    submodules = [line.split("\t", 1)[1] for line in staged if line.startswith("160000 ")]
    if submodules:
        raise ConfigError(
            "code_snapshot",
            f"the repository {root} has submodules ({', '.join(submodules[:NAMED_FILES])}), which a snapshot "
            "cannot copy faithfully; use code_snapshot: none",
        )


def _copy_files(app_dir: Path) -> tuple[Path, list[str]]:
    """The app folder's files that ``.gitignore`` does not exclude (git's own rules where it can)."""
    top = _git_text(app_dir, "rev-parse", "--show-toplevel")
    if top is not None:
        _refuse_submodules(Path(top))
        untracked = _ls_files(app_dir, "--others", "--exclude-standard")
        outputs = _RunFolders(app_dir)
        listed = _ls_files(app_dir, "--cached") + [f for f in untracked if not outputs.holds(f)]
        return app_dir, [f for f in listed if (app_dir / f).is_file() or (app_dir / f).is_symlink()]
    return app_dir, sorted(_walk_not_ignored(app_dir))


#: Never part of the code: version control, virtual environments, caches and Hydra's output folders.
ALWAYS_SKIPPED = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    "multirun",
    SNAPSHOT_DIR,
)
#: Hydra's default output folder, skipped only at the top of the app folder: a package of the app
#: may have a module folder named so (``mypkg/outputs/heads.py``).
TOP_OUTPUTS = "outputs"


class _RunFolders:
    """Which untracked files are a run's output, not code: under a folder of :data:`ALWAYS_SKIPPED`
    or under a Hydra run or sweep folder, whatever its name (one holding ``.hydra`` or
    ``multirun.yaml``). Git lists them all when nothing ignores them: each snapshot copied every
    earlier sweep's folder, its snapshot included, and doubled in size (a tester's repo)."""

    def __init__(self, app_dir: Path) -> None:
        self.app_dir = app_dir
        self._known: dict[Path, bool] = {}

    def holds(self, name: str) -> bool:
        folders = [folder for folder in Path(name).parents if folder != Path(".")]
        return Path(name).parts[0] == TOP_OUTPUTS or any(
            folder.name in ALWAYS_SKIPPED or self._is_output(folder) for folder in folders
        )

    def _is_output(self, folder: Path) -> bool:
        if folder not in self._known:
            self._known[folder] = is_run_output(self.app_dir / folder)
        return self._known[folder]


def is_run_output(folder: Path) -> bool:
    """A Hydra run's folder (``.hydra``) or a sweep's (``multirun.yaml``)."""
    return (folder / ".hydra").is_dir() or (folder / "multirun.yaml").is_file()


def _walk_not_ignored(app_dir: Path) -> Iterable[str]:
    """Files under ``app_dir`` outside a git repository: ``.gitignore``'s patterns (of the app folder)
    applied the way ``git check-ignore --no-index`` applies them."""
    patterns = _gitignore_patterns(app_dir)
    for folder, dirs, files in os.walk(app_dir):
        rel = Path(folder).relative_to(app_dir)
        dirs[:] = [d for d in dirs if not _skipped(Path(folder) / d, rel / d, patterns)]
        yield from (str(rel / f) for f in files if not _ignored(rel / f, patterns, False))


def _skipped(folder: Path, rel: Path, patterns: Sequence[str]) -> bool:
    output = folder.name in ALWAYS_SKIPPED or rel == Path(TOP_OUTPUTS) or is_run_output(folder)
    return output or _ignored(rel, patterns, True)


def _gitignore_patterns(app_dir: Path) -> list[str]:
    path = app_dir / ".gitignore"
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(rel: Path, patterns: Sequence[str], is_dir: bool) -> bool:
    """Whether the last matching .gitignore pattern ignores ``rel`` (a simplified git: ``!`` negates, a
    trailing ``/`` matches folders only, a pattern with a ``/`` matches the path from the app folder)."""
    import fnmatch

    ignored = False
    for raw in patterns:
        negate, pattern = raw.startswith("!"), raw.lstrip("!")
        if pattern.endswith("/") and not is_dir:
            continue
        pattern = pattern.rstrip("/")
        target = rel.as_posix() if "/" in pattern else rel.name
        if fnmatch.fnmatch(target, pattern.lstrip("/")):
            ignored = not negate
    return ignored


def _checked_size(root: Path, files: Sequence[str]) -> int:
    """The snapshot's size; refused above :data:`MAX_SNAPSHOT_BYTES`, naming the largest files."""
    sizes = {f: (root / f).lstat().st_size for f in files}
    total = sum(sizes.values())
    if total > MAX_SNAPSHOT_BYTES:
        largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:NAMED_FILES]
        raise ConfigError(
            "code_snapshot",
            f"the snapshot of {root} would copy {len(files)} files, {_mb(total)} (limit {_mb(MAX_SNAPSHOT_BYTES)}); "
            f"largest: {', '.join(f'{f} ({_mb(sizes[f])})' for f in largest)}. A snapshot is for code: keep data "
            "out of the copied files (untrack it or add it to .gitignore) or use code_snapshot: none",
        )
    return total


# ---------------------------------------------------------------------- making it, and running from it


@dataclass(frozen=True)
class Snapshot:
    """A made snapshot: its folder, its journal record, and the original folder it mirrors."""

    dir: Path
    record: Mapping[str, Any]

    @property
    def root(self) -> Path:
        return Path(str(self.record["root"]))

    def inside(self, path: Path) -> Path | None:
        """Where ``path`` (under the original folder) is in the snapshot; None if outside it. A path
        in the snapshot already (a resume run from its copy of the script) is itself."""
        resolved = Path(path).resolve()
        for base, mapped in ((self.dir.resolve(), self.dir), (self.root, self.dir)):
            try:
                return mapped / resolved.relative_to(base)
            except ValueError:
                continue
        return None

    def job_cwd(self, cwd: Path, app_dir: Path) -> Path:
        """The job's working directory: the sweeper's, in the snapshot (else the app's folder there)."""
        inside = self.inside(cwd) or self.inside(app_dir) or self.dir
        inside.mkdir(parents=True, exist_ok=True)  # a folder with no copied file in it: still the cwd
        return inside

    def import_path(self, app_dir: Path, sys_path: Sequence[str]) -> list[str]:
        """The app's folder and the sweeper's import path entries under the original folder, in the snapshot."""
        mapped = [self.inside(app_dir), *(self.inside(Path(p)) for p in sys_path if p)]
        found: list[str] = []
        for path in mapped:
            if path is not None and path.is_dir() and str(path) not in found:
                found.append(str(path))
        return found

    def describe(self) -> str:
        rec = self.record
        return f"{self.dir} ({rec.get('files')} files, {_mb(int(rec.get('bytes') or 0))}; {describe_identity(rec)})"


def configs_from_snapshot(hydra_context: Any, snapshot: Snapshot) -> Any:
    """A copy of ``hydra_context`` whose config search path reads the snapshot's config folders.

    A job composes its trial's config itself, from the search path it was pickled with: the app's
    ``conf/`` under the original folder. Its YAML is part of the program the sweep started with.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra.types import HydraContext

    mapped = ConfigSearchPathImpl()
    for element in hydra_context.config_loader.config_search_path.get_path():
        mapped.append(element.provider, _in_snapshot(element.path, snapshot))
    return HydraContext(config_loader=ConfigLoaderImpl(config_search_path=mapped), callbacks=hydra_context.callbacks)


def _in_snapshot(search_path: str, snapshot: Snapshot) -> str:
    """A file search path (``file://<dir>`` or a plain folder) under the original folder, in the
    snapshot; any other (``pkg://``, ``structured://``, outside the folder) unchanged."""
    scheme, _, rest = search_path.rpartition("://")
    if scheme not in ("", "file"):
        return search_path
    inside = snapshot.inside(Path(rest))
    if inside is None or not inside.is_dir():
        return search_path
    return f"file://{inside}" if scheme else str(inside)


def describe_identity(record: Mapping[str, Any]) -> str:
    """``commit 1a2b3c4d5e6f, with uncommitted changes (diff sha256 9f8e...)``, or what is known."""
    if not record.get("commit"):
        return "not a git checkout"
    text = f"commit {str(record['commit'])[:12]}"
    if record.get("dirty"):
        return f"{text}, with uncommitted changes (diff sha256 {str(record.get('diff_sha256'))[:12]})"
    return f"{text}, clean"


def make_snapshot(source: CodeSource, sweep_dir: Path) -> Snapshot:
    """Copy ``source``'s files into the sweep dir's :data:`SNAPSHOT_DIR` (a new folder: nothing is overwritten)."""
    target = sweep_dir / SNAPSHOT_DIR
    partial = sweep_dir / f".{SNAPSHOT_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # ours: a copy a killed sweeper left half-made
    for name in source.files:
        _copy_one(source.root / name, partial / name)
    partial.rename(target)  # fails if the folder exists: an earlier snapshot is never replaced
    return Snapshot(target, source.record())


def _copy_one(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst, follow_symlinks=False)


def existing_snapshot(sweep_dir: Path, record: Mapping[str, Any]) -> Snapshot:
    """The snapshot a journal records, for a resumed sweep; refused when its folder is gone."""
    folder = sweep_dir / str(record.get("dir", SNAPSHOT_DIR))
    if not folder.is_dir():
        raise JournalError(
            f"the sweep in {sweep_dir} runs its trials from the code snapshot {folder}, which is gone; "
            "its trials would run other code. Restore the folder, or start a new sweep"
        )
    return Snapshot(folder, dict(record))


def edited_entry_script(task_function: Any, sweep_dir: Path, stored: Mapping[str, Any] | None) -> Path | None:
    """For a resumed sweep whose trials run from a snapshot (``stored``, the journal's code record):
    the snapshot's copy of the script that defines the task function, when the script was edited
    since. Python sends a function defined in the script it runs (``__main__``) by value, with the
    globals it uses (``__file__`` too), from this process: its trials would run the edited script.
    """
    function = inspect.unwrap(task_function)
    latest = _latest_code(stored)
    if getattr(function, "__module__", None) != "__main__" or not latest or latest.get("mode", "none") == "none":
        return None
    try:
        script = Path(inspect.getsourcefile(function) or "").resolve()
    except TypeError:
        return None
    copy = existing_snapshot(sweep_dir, latest).inside(script)
    if copy is None or copy.resolve() == script or not copy.is_file() or not script.is_file():
        return None
    return copy if copy.read_bytes() != script.read_bytes() else None


def job_command(python: str, cwd: Path, import_path: Sequence[str]) -> str:
    """``python`` run from ``cwd`` with ``import_path`` first on its import path.

    submitit appends ``-u -m submitit.core._submit <folder>`` to this. ``python -m`` puts the working
    directory first on ``sys.path`` and PYTHONPATH next, before site-packages (and an editable
    install's path): unpickling the task imports the snapshot's modules. ``exec`` keeps the pid
    (Slurm's step and submitit's local controller watch it).
    """
    import shlex

    path = os.pathsep.join(import_path)
    export = f"export PYTHONPATH={shlex.quote(path)}${{PYTHONPATH:+:$PYTHONPATH}}"
    script = f'cd {shlex.quote(str(cwd))} && {export} && exec "$@"'
    return f"/bin/sh -c {shlex.quote(script)} sh {python}"


@dataclass(frozen=True)
class CodePlan:
    """The sweep's code: ``code_snapshot``'s mode and what it copies (checked), the app's folder, and
    for a sweep of submitit jobs without a snapshot the files watched for edits.

    ``not_from_snapshot`` says why this launcher's trials cannot run from a snapshot (``BasicLauncher:
    trials run in the sweeper's process, ...``); None for submitit's jobs.
    """

    mode: str
    source: CodeSource | None
    app_dir: Path
    watch: CodeWatch | None = None
    not_from_snapshot: str | None = None

    def identity(self) -> dict[str, Any]:
        """The commit, dirtiness and diff hash of the code a new sweep's trials run."""
        return dict(self.source.identity) if self.source else git_identity(self.app_dir)


def code_for_sweep(
    plan: CodePlan, stored: Mapping[str, Any] | None, sweep_dir: Path, runner: Any, first_trial: int = 0
) -> tuple[bool, dict[str, Any]]:
    """Have the runner's jobs run from the sweep's snapshot (the journal's, else a new one) where it
    can: whether they do, and the journal's record of the code.

    A resumed sweep keeps the snapshot it started with, whatever ``code_snapshot`` says now, and the
    record of the code its earlier trials ran; trials from ``first_trial`` on run this resume's.
    """
    latest = _latest_code(stored)
    if latest and latest.get("mode", "none") != "none":
        if _resume_snapshot(plan, latest, sweep_dir, runner):
            return True, dict(stored or {})
        return False, working_tree_record(plan.app_dir, stored, first_trial)
    if plan.source is None:
        if plan.mode != "none" and plan.not_from_snapshot:
            log.info("hydra.sweeper.code_snapshot=%s does nothing with %s", plan.mode, plan.not_from_snapshot)
        return False, working_tree_record(plan.app_dir, stored, first_trial)
    snapshot = make_snapshot(plan.source, sweep_dir)
    runs = run_trials_from(snapshot, plan.app_dir, runner)  # True: a source is planned for submitit's jobs only
    earlier = " (its earlier trials ran from the working tree)" if stored else ""
    log.info("Code snapshot%s: trials run from %s", earlier, snapshot.describe())
    if not stored:
        return runs, dict(snapshot.record)
    # The earlier trials ran the working tree: their record stays, the snapshot is what runs from here on.
    return runs, _resumed_with(stored, snapshot.record, first_trial)


def _latest_code(stored: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The code the journal says the sweep's latest trials ran: the last resume's, else the start's."""
    if not stored:
        return None
    resumes: list[Mapping[str, Any]] = list(stored.get("resumed_with", []))
    return resumes[-1] if resumes else stored


def _resumed_with(stored: Mapping[str, Any], code: Mapping[str, Any], first_trial: int) -> dict[str, Any]:
    """``stored`` with ``code`` added as what trials from ``first_trial`` on run."""
    entry = {**code, "from_trial": first_trial, "resumed_at": time.time()}
    return {**stored, "resumed_with": [*stored.get("resumed_with", []), entry]}


def _resume_snapshot(plan: CodePlan, stored: Mapping[str, Any], sweep_dir: Path, runner: Any) -> bool:
    """Run the resumed sweep's trials from its snapshot where the runner can, and say which it is:
    the runner, not the journal, decides where trials run (in-process ones run the imported code,
    so they neither use the snapshot nor need its folder)."""
    if plan.not_from_snapshot:
        folder = sweep_dir / str(stored.get("dir", SNAPSHOT_DIR))
        log.info("Resumed sweep's code snapshot %s is not used with %s", folder, plan.not_from_snapshot)
        return False
    snapshot = existing_snapshot(sweep_dir, stored)
    if run_trials_from(snapshot, plan.app_dir, runner):
        log.info("Resumed sweep runs from its code snapshot %s", snapshot.describe())
        return True
    log.info("Resumed sweep's code snapshot %s is not used with %s", snapshot.dir, _not_from_snapshot(plan, runner))
    return False


def _not_from_snapshot(plan: CodePlan, runner: Any) -> str:
    return plan.not_from_snapshot or f"{type(runner).__name__}: it starts no jobs of its own"


#: What tells two versions of the app's code apart in the journal's record.
IDENTITY_KEYS = ("commit", "dirty", "diff_sha256")


def working_tree_record(app_dir: Path, stored: Mapping[str, Any] | None, first_trial: int) -> dict[str, Any]:
    """The journal's record of trials that run the working tree's code.

    A new sweep's is the code now. A resumed sweep keeps its record, which says what its earlier
    trials ran: code that differs now is added under ``resumed_with`` (with the first trial that
    runs it) and warned of, rather than written over the start.
    """
    current = git_identity(app_dir)
    if not stored:
        return {"mode": "none", **current}
    resumed = list(stored.get("resumed_with", []))
    ran = [stored, *resumed]
    if all(ran[-1].get(key) == current.get(key) for key in IDENTITY_KEYS):
        return dict(stored)
    _warn_other_code(ran, current, first_trial)
    return _resumed_with(stored, {"mode": "none", **current}, first_trial)


def _warn_other_code(ran: Sequence[Mapping[str, Any]], current: Mapping[str, Any], first_trial: int) -> None:
    log.warning(
        "This resumed sweep runs other code than its earlier trials: the earlier trials ran %s; the resumed ones "
        "(trial #%d on) run %s. Its results mix programs (hydra-sigopt status shows each); "
        "hydra.sweeper.code_snapshot=git in a new sweep runs every trial from one copy of the code",
        ", then ".join(describe_identity(r) for r in ran),
        first_trial,
        describe_identity(current),
    )


# ---------------------------------------------------------------------- without a snapshot: noticing edits


#: At most this many files are watched (a huge tree is not stat'ed at every trial start).
MAX_WATCHED_FILES = 2000
#: Seconds between two looks at the watched files.
WATCH_INTERVAL_S = 1.0


class CodeWatch:
    """The task module's file and the Python files of the package it belongs to, as they were at
    the start; :meth:`check` warns once, naming the files, when they changed."""

    def __init__(self, files: Sequence[Path], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._stamps = {f: _stamp(f) for f in files[:MAX_WATCHED_FILES]}
        self._next_look = 0.0
        self.warned = False

    @classmethod
    def for_task(cls, task_function: Any, skip: Path | None = None) -> CodeWatch:
        return cls(watched_files(task_function, skip))

    def check(self) -> None:
        if self.warned or self.clock() < self._next_look:
            return
        self._next_look = self.clock() + WATCH_INTERVAL_S
        changed = [f for f, stamp in self._stamps.items() if _stamp(f) != stamp]
        if changed:
            self.warned = True
            named = ", ".join(str(f) for f in changed[:NAMED_FILES])
            more = f" and {len(changed) - NAMED_FILES} more" if len(changed) > NAMED_FILES else ""
            log.warning(
                "The app's code changed while the sweep runs: %s%s. Trials started from now on import the changed "
                "files, so this sweep's results mix two programs; hydra.sweeper.code_snapshot=git (or copy) runs "
                "every trial from a copy made at the start (README: 'Trials run the code the sweep started with')",
                named,
                more,
            )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def watched_files(task_function: Any, skip: Path | None = None) -> list[Path]:
    """The task module's file and the ``.py`` files of its package (its top-level package folder,
    or the script's folder), skipping hidden folders, virtual environments and ``skip``."""
    app_dir = app_dir_of(task_function)
    top = app_dir
    while (top / "__init__.py").is_file() and (top.parent / "__init__.py").is_file():
        top = top.parent
    found: list[Path] = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = [
            d for d in dirs if not d.startswith(".") and d not in ALWAYS_SKIPPED and not is_run_output(Path(folder) / d)
        ]
        if skip is not None and Path(folder).resolve() == skip.resolve():
            dirs[:] = []
            continue
        found += [Path(folder, f) for f in sorted(files) if f.endswith(".py")]
        if len(found) >= MAX_WATCHED_FILES:
            break
    return found


def run_trials_from(snapshot: Snapshot, app_dir: Path, runner: Any) -> bool:
    """Have the runner's jobs start in the snapshot (working dir, import path) and compose their
    configs from it; False for runners that start no jobs of their own (left as they are)."""
    cwd = snapshot.job_cwd(Path.cwd(), app_dir)
    import_path = snapshot.import_path(app_dir, sys.path)
    if not runner.run_from(lambda python: job_command(python, cwd, import_path)):
        return False
    runner.launcher.hydra_context = configs_from_snapshot(runner.launcher.hydra_context, snapshot)
    return True
