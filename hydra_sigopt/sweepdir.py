"""What a sweep dir holds: the files the sweep wrote, and everything else (the user's).

A sweep dir may be a project folder (``hydra.sweep.dir=.``): ``hydra-sigopt delete`` removes only
what the sweep wrote, and a new sweep refuses a folder holding an earlier sweep's results.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hydra_sigopt.driver import DRIVER_DIR
from hydra_sigopt.errors import ConfigError, JournalError
from hydra_sigopt.journal import JOURNAL_NAME, KILL_MARKER_NAME, LOCK_NAME, journal_path
from hydra_sigopt.report_files import CHANNEL_DIR
from hydra_sigopt.reports import RESULTS_NAME, TRIALS_NAME
from hydra_sigopt.snapshot import SNAPSHOT_DIR

# Written by the sweeper, SQLite, Hydra (multirun.yaml) and ``hydra-sigopt plot`` (sweep.png).
_SWEEP_NAMES = {
    JOURNAL_NAME,
    *(JOURNAL_NAME + suffix for suffix in ("-wal", "-shm", "-journal", ".creating", ".recovered")),
    LOCK_NAME,
    KILL_MARKER_NAME,
    TRIALS_NAME,
    RESULTS_NAME,
    "multirun.yaml",
    "sweep.png",
    # Not ".hydra": a sweep writes it in each trial's folder only; one at the top is a plain run's
    # record (hydra.run.dir the same folder as hydra.sweep.dir).
    ".submitit",
    DRIVER_DIR,  # hydra-sigopt submit's driver job: its script, record and log
    SNAPSHOT_DIR,  # the code snapshot (hydra.sweeper.code_snapshot), and one a kill left half-made
    f".{SNAPSHOT_DIR}.partial",
    CHANNEL_DIR,  # the trials' reports and stop markers (early stopping)
}
# write_atomic's temporary files, left behind only by a kill at the wrong instant.
_SWEEP_PREFIXES = (f".{TRIALS_NAME}.", f".{RESULTS_NAME}.")


@dataclass(frozen=True)
class SweepDirContents:
    """The entries of a sweep dir: ``sweep`` wrote them, ``other`` it did not."""

    sweep: list[Path]
    other: list[Path]


def contents(
    sweep_dir: Path, trial_numbers: Iterable[int], meta: Mapping[str, Any], noted: Iterable[str] = ()
) -> SweepDirContents:
    """Split the sweep dir's entries into the sweep's (its files, trial folders, submitit folder) and others.

    Trial folders are named by ``hydra.sweep.subdir``: the default is the trial's number; other names
    (``${hydra.job.override_dirname}``, nested folders) are the sweep's when the trial noted it as its
    output folder (``noted``: relative to the sweep dir, see report_files.write_output_dir), or when
    Hydra's own record in the folder says it is the output dir of one of its trials (see
    :func:`_is_trial_folder`; a trial started before the note was written).
    """
    numbers = set(trial_numbers)
    noted_dirs = {Path(n) for n in noted}
    trial_dirs = {str(n) for n in numbers}
    submitit = _submitit_folder_name(sweep_dir, meta.get("submitit_folder"))
    sweep: list[Path] = []
    other: list[Path] = []
    for entry in sorted(sweep_dir.iterdir()):
        name = entry.name
        ours = name in _SWEEP_NAMES or name.startswith(_SWEEP_PREFIXES) or name == submitit
        if ours or (name in trial_dirs and entry.is_dir()):
            sweep.append(entry)
            continue
        trials, kept = _trial_folders(
            entry, lambda f: _noted(f, noted_dirs, sweep_dir) or _is_trial_folder(f, numbers, sweep_dir), SUBDIR_DEPTH
        )
        sweep += trials
        other += kept
    return SweepDirContents(sweep, other)


#: How deep below the sweep dir a trial folder named by ``hydra.sweep.subdir`` is looked for.
SUBDIR_DEPTH = 3


def _trial_folders(entry: Path, is_trial: Callable[[Path], bool], depth: int) -> tuple[list[Path], list[Path]]:
    """``entry``'s trial folders, and what else it holds: a folder holding only trial folders is one."""
    if is_trial(entry):
        return [entry], []
    if depth <= 1 or entry.is_symlink() or not entry.is_dir():
        return [], [entry]
    trials: list[Path] = []
    kept: list[Path] = []
    for child in sorted(entry.iterdir()):
        child_trials, child_kept = _trial_folders(child, is_trial, depth - 1)
        trials += child_trials
        kept += child_kept
    if not trials:
        return [], [entry]
    return ([entry], []) if not kept else (trials, [entry])


def _noted(folder: Path, noted: set[Path], sweep_dir: Path) -> bool:
    """Whether a trial of the sweep noted ``folder`` as its output folder (a symlink never is)."""
    return not folder.is_symlink() and folder.is_dir() and folder.relative_to(sweep_dir) in noted


def _is_trial_folder(folder: Path, numbers: set[int], sweep_dir: Path) -> bool:
    """Whether Hydra's record in ``folder`` (``.hydra/hydra.yaml``) says it is the output dir of trial
    N of the sweep in ``sweep_dir``, N one of ``numbers``: a folder moved there, or another sweep's
    nested in it, is not."""
    record = folder / ".hydra" / "hydra.yaml"
    if folder.is_symlink() or not record.is_file():
        return False
    try:
        hydra = yaml.safe_load(record.read_text())["hydra"]
        number = int(hydra["job"]["num"])
        output_dir = Path(str(hydra["runtime"]["output_dir"]))
        swept = Path(str(hydra["runtime"]["cwd"])) / str(hydra["sweep"]["dir"])
    except Exception:  # not Hydra's record, or another version's: not known to be the sweep's
        return False
    return number in numbers and _same(output_dir, folder) and _same(swept, sweep_dir)


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _submitit_folder_name(sweep_dir: Path, folder: Any) -> str | None:
    """The name of the submitit folder when it sits directly in the sweep dir (``.submitit/%j``)."""
    if not folder:
        return None
    top = Path(str(folder).split("%", 1)[0])
    try:
        relative = top.resolve().relative_to(sweep_dir.resolve())
    except ValueError:
        return None
    return relative.parts[0] if relative.parts else None


def describe(entries: Iterable[Path]) -> str:
    """``a, b, trial folders 0-19 (20)``: names, with the trial folders folded into one item."""
    names = [e.name for e in entries]
    numbers = sorted(int(n) for n in names if n.isdigit())
    words = [n for n in names if not n.isdigit()]
    if len(words) > NAMED_ENTRIES:  # trial folders named by hydra.sweep.subdir, say
        words = [*words[:NAMED_ENTRIES], f"{len(words) - NAMED_ENTRIES} more"]
    if numbers:
        span = f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
        words.append(f"trial folder{'s' if len(numbers) > 1 else ''} {span} ({len(numbers)})")
    return ", ".join(words) if words else "nothing"


#: At most this many entries are named in a message; the others are counted.
NAMED_ENTRIES = 12


def remove(entries: Iterable[Path]) -> None:
    """Delete files and folders; a symlink is removed, never followed."""
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def remove_if_empty(folder: Path) -> bool:
    """Remove ``folder`` if nothing is left in it; whether it was removed."""
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------- a new sweep's dir

_RESULT_NAMES = (TRIALS_NAME, RESULTS_NAME)


def earlier_results(sweep_dir: Path) -> list[str]:
    """Results of an earlier sweep in a dir without a journal: result files and Hydra job folders."""
    if not sweep_dir.is_dir() or journal_path(sweep_dir).exists():
        return []
    found = [n for n in _RESULT_NAMES if (sweep_dir / n).exists()]
    jobs = [e for e in sorted(sweep_dir.iterdir()) if _holds_hydra_jobs(e, SUBDIR_DEPTH)]
    if jobs:
        found.append(describe(jobs))
    return found + _earlier_reports(sweep_dir)


def _holds_hydra_jobs(entry: Path, depth: int) -> bool:
    """Whether ``entry`` is, or holds within ``depth`` levels, the output dir of a Hydra job (one
    with ``.hydra/``): an earlier sweep's trial folder, whatever ``hydra.sweep.subdir`` named it
    (``trial_${hydra.job.num}``, ``${hydra.job.override_dirname}``), a new sweep's may overwrite."""
    if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
        return False
    if (entry / ".hydra").is_dir():
        return True
    try:
        return depth > 1 and any(_holds_hydra_jobs(child, depth - 1) for child in entry.iterdir())
    except OSError:
        return False


def _earlier_reports(sweep_dir: Path) -> list[str]:
    """The trials' folders an earlier sweep left (``rm -rf <dir>/*`` leaves the hidden folder): a new
    sweep would take their reports, stop files and run records for those of its own trials of those numbers."""
    root = sweep_dir / CHANNEL_DIR / "trials"
    try:
        folders = [e for e in root.iterdir() if e.name.isdigit() and e.is_dir() and any(e.iterdir())]
    except OSError:  # no such folder, or not one
        return []
    numbers = sorted(int(e.name) for e in folders)
    if not numbers:
        return []
    span = f"{numbers[0]}-{numbers[-1]} ({len(numbers)})" if len(numbers) > 1 else f"{numbers[0]}"
    return [f"{CHANNEL_DIR}/trials: the files (reports, run records) of trial{'s' if len(numbers) > 1 else ''} {span}"]


def refuse_earlier_results(sweep_dir: Path) -> None:
    """A new sweep does not overwrite an earlier one's results (a sweep dir whose journal is gone),
    nor write into what has the names of its own files and folders."""
    found = earlier_results(sweep_dir)
    if found:
        raise JournalError(
            f"hydra.sweep.dir={sweep_dir} holds an earlier sweep's results ({', '.join(found)}) but no "
            f"{JOURNAL_NAME}, so it cannot be resumed, and a new sweep would overwrite them; "
            "use another hydra.sweep.dir, or move those files away first"
        )
    clashing = _named_as_the_sweeps(sweep_dir)
    if clashing:
        shown = [*clashing[:NAMED_ENTRIES], f"{len(clashing) - NAMED_ENTRIES} more"][: len(clashing)]
        raise JournalError(
            f"hydra.sweep.dir={sweep_dir} holds {', '.join(shown)}, which a sweep writes (its trial folders are "
            "numbered): the trials would write into them, and hydra-sigopt delete would take them for the "
            "sweep's; use another hydra.sweep.dir, or move them away first"
        )


#: What a new sweep writes in its dir once its journal exists, and ``hydra-sigopt delete`` takes for
#: its own: not the journal's files and the lock (made first), nor ``hydra-sigopt submit``'s driver
#: folder (made before the sweep starts), submitit's (made as its launcher is set up; its entries
#: are named by job ids) and the trials' channel (see _earlier_reports).
_MADE_BEFORE = {LOCK_NAME, DRIVER_DIR, CHANNEL_DIR, ".submitit"}
_WRITTEN_AFTER_THE_JOURNAL = _SWEEP_NAMES - _MADE_BEFORE - {n for n in _SWEEP_NAMES if n.startswith(JOURNAL_NAME)}


def _named_as_the_sweeps(sweep_dir: Path) -> list[str]:
    """The entries of a folder without a journal named as what a new sweep writes there: numbered
    ones (its trial folders), ``sweep.png``, ``multirun.yaml`` (a user's folds 0/ 1/ 2/ took trial 0's
    files, and delete then took them for the trials')."""
    if not sweep_dir.is_dir():
        return []
    names = [e.name for e in sweep_dir.iterdir()]
    numbered = [n for n in names if n.isascii() and n.isdigit()]  # '²'.isdigit() is True too
    return sorted(numbered, key=int) + sorted(n for n in names if n in _WRITTEN_AFTER_THE_JOURNAL)


def refuse_missing_journal(sweep_dir: Path) -> None:
    """``hydra.sweeper.resume=<dir>`` asks for a sweep that must exist."""
    if not sweep_dir.is_dir():
        raise ConfigError("resume", f"there is no folder {sweep_dir}; nothing to resume")
    if not journal_path(sweep_dir).exists():
        raise ConfigError(
            "resume",
            f"{sweep_dir} is not a hydra-sigopt sweep dir (no {JOURNAL_NAME} in it); nothing to resume. "
            "To start a new sweep, leave out hydra.sweeper.resume",
        )


# ---------------------------------------------------------------------- creating the dir


def missing_ancestor(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None: it exists)."""
    folder = Path(os.path.abspath(folder))
    top = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        top = candidate
    return top


def remove_created(folder: Path, top: Path | None) -> None:
    """Undo ``mkdir -p``: remove ``folder`` and its parents up to ``top`` while they are empty."""
    if top is None:
        return
    folder = Path(os.path.abspath(folder))
    for candidate in (folder, *folder.parents):
        if not remove_if_empty(candidate) or candidate == top:
            return
