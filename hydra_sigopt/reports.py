"""Views of the journal: the best trial(s), ``optimization_results.yaml`` and ``trials.csv``.

Everything here reads only the journal, so the ``hydra-sigopt`` command shows the same results
as the sweep that wrote them, during or after the sweep.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shlex
import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from hydra_sigopt.continuation import needs_run_mode, program_size, rerun_flags, rerun_program
from hydra_sigopt.errors import SigOptSweeperError
from hydra_sigopt.journal import COMPLETED, FAILED, STOPPED, Journal, Trial
from hydra_sigopt.metrics import Metric, meets_constraints
from hydra_sigopt.unsubmitted import never_submitted

log = logging.getLogger("hydra_sigopt")

RESULTS_NAME = "optimization_results.yaml"
#: A line width no value reaches: the strings to paste (best_command, best_overrides) stay one line each.
UNFOLDED = 2**31 - 1
TRIALS_NAME = "trials.csv"


def metrics_from_meta(meta: Mapping[str, Any]) -> tuple[Metric, ...]:
    """The metrics stored in a journal's meta."""
    return tuple(
        Metric(m["name"], m.get("objective", "maximize"), m.get("strategy", "optimize"), m.get("threshold"))
        for m in meta["identity"]["metrics"]
    )


def shared_overrides(meta: Mapping[str, Any]) -> list[str]:
    """The overrides every trial shares that a plain run of the app gets too: the command line's
    (the sweep's fixed overrides, without those declared in ``hydra.sweeper.params``)."""
    declared = set(meta.get("declared_fixed") or ())
    return [o for o in meta["identity"].get("fixed_overrides", []) if o not in declared]


def swept_overrides(trial: Trial, fixed: Sequence[str]) -> list[str]:
    """The trial's overrides without the ones every trial shares."""
    fixed_set = set(fixed)
    return [o for o in trial.overrides if o not in fixed_set]


def pasteable_overrides(trial: Trial, fixed: Sequence[str]) -> str:
    """The trial's swept overrides, ready to paste after ``python train.py`` in a shell: each quoted
    for it (unquoted, ``label=$HOME`` gave the app the home dir, ``label='true'`` a boolean and a
    dict choice ``opt={a:3,b:4}`` two overrides by brace expansion). Plain numbers stay as they are."""
    return " ".join(shlex.quote(o) for o in swept_overrides(trial, fixed))


def rerun_overrides(trial: Trial, meta: Mapping[str, Any]) -> str:
    """What to paste after ``python train.py`` (no ``-m``) to train ``trial`` again with the config it
    had: every override it got, the sweep's command line's (``experiment=example``) before its own
    values, ``hydra.mode=RUN`` where the sweep's config turned multirun on (the template's
    ``hparams_search=...``: pasted without it, the command starts a new sweep), and first the
    command's options (``-cn train_long``). Quoted for the shell."""
    return " ".join(map(shlex.quote, rerun_arguments(trial, meta)))


def rerun_arguments(trial: Trial, meta: Mapping[str, Any]) -> list[str]:
    """:func:`rerun_overrides` as the app's arguments, one by one, not quoted for a shell (each
    override's value is written in Hydra's own quoting: ``label='a b'``)."""
    command = meta.get("command") or {}
    run_mode = ["hydra.mode=RUN"] if needs_run_mode(command) else []
    return [*rerun_flags(command), *run_mode, *trial.overrides]


def rerun_command(trial: Trial, meta: Mapping[str, Any]) -> str:
    """The command that trains ``trial`` again: ``python train.py`` and :func:`rerun_overrides`."""
    return f"{rerun_program(meta.get('command') or {})} {rerun_overrides(trial, meta)}".rstrip()


def trial_params(trial: Trial, fixed: Sequence[str]) -> dict[str, Any]:
    """The trial's swept values as Hydra reads them, by config key."""
    from hydra_sigopt.overrides import read_override

    return dict(read_override(text) for text in swept_overrides(trial, fixed))


def is_feasible(trial: Trial, metrics: Sequence[Metric]) -> bool:
    """Completed and within every constraint metric's threshold."""
    return trial.state == COMPLETED and meets_constraints(trial.values, metrics)


def best_trials(trials: Sequence[Trial], metrics: Sequence[Metric]) -> list[Trial]:
    """The best trial (one optimized metric) or the Pareto-optimal trials (two)."""
    optimized = [m for m in metrics if m.strategy == "optimize"]
    feasible = [t for t in trials if is_feasible(t, metrics)]
    if len(optimized) == 2:
        # Thresholds on optimized metrics bound the region of interest: outside it no trial is an
        # answer, as in SigOpt (sigoptlite's BestAssignmentsLogger keeps only observations within
        # every threshold, and returns none when none is). See front_ignoring_thresholds.
        return pareto_front(within_thresholds(feasible, optimized), optimized)
    if not feasible or not optimized:
        return []
    metric = optimized[0]
    best = feasible[0]
    for t in feasible[1:]:
        if metric.better(_v(t, metric), _v(best, metric)):
            best = t
    return [best]


def within_thresholds(trials: Sequence[Trial], optimized: Sequence[Metric]) -> list[Trial]:
    """The trials whose optimized metrics each meet its threshold (those without one always do)."""
    return [t for t in trials if all((v := t.value(m.name)) is not None and m.satisfies(v) for m in optimized)]


def front_ignoring_thresholds(trials: Sequence[Trial], metrics: Sequence[Metric]) -> list[Trial]:
    """With two optimized metrics and no trial within their thresholds: the Pareto front of the
    feasible trials regardless of them. Not an answer (the thresholds say what is good enough);
    shown apart, as how far the sweep got."""
    optimized = [m for m in metrics if m.strategy == "optimize"]
    feasible = [t for t in trials if is_feasible(t, metrics)]
    if len(optimized) != 2 or within_thresholds(feasible, optimized):
        return []
    return pareto_front(feasible, optimized)


def why_no_best(trials: Sequence[Trial], metrics: Sequence[Metric], cheaper: Collection[str] = ()) -> str:
    """Why a sweep has no best trial, in a few words: none completed; (multitask) only trials of
    cheaper tasks did, which are never the best; or the completed ones are outside the thresholds
    (``5 completed, none within mem <= 0.62``), which ``trials.completed`` alone does not tell."""
    completed = [t for t in trials if t.state == COMPLETED]
    full = [t for t in completed if t.task not in cheaper]
    if not completed:
        return "No trial completed"
    if not full:
        return f"No trial of the full task completed ({len(completed)} of cheaper tasks did; those are never the best)"
    constraints = [m for m in metrics if m.strategy == "constraint"]
    feasible = [t for t in full if is_feasible(t, metrics)]
    missed = constraints if not feasible else [m for m in metrics if m.strategy == "optimize"]
    bounds = ", ".join(m.bound() for m in missed if m.threshold is not None)
    of_task = " of the full task" if len(full) < len(completed) else ""
    return f"{len(full)}{of_task} completed, none within {bounds}"


def _v(trial: Trial, metric: Metric) -> float:
    value = trial.value(metric.name)
    assert value is not None
    return value


def pareto_front(trials: Sequence[Trial], metrics: Sequence[Metric]) -> list[Trial]:
    """Trials no other trial dominates (at least as good on all metrics, better on one)."""

    def dominates(a: Trial, b: Trial) -> bool:
        no_worse = all(not m.better(_v(b, m), _v(a, m)) for m in metrics)
        better = any(m.better(_v(a, m), _v(b, m)) for m in metrics)
        return no_worse and better

    return [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]


@dataclass(frozen=True)
class Summary:
    total: int
    completed: int
    failed: int
    running: int
    best: list[Trial]
    stopped: int = 0  # stopped early (hydra.sweeper.early_stopping)

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.stopped


def cheaper_tasks(meta: Mapping[str, Any]) -> frozenset[str]:
    """The names of a multitask sweep's tasks cheaper than the full training: their trials are never the best."""
    return frozenset(t["name"] for t in meta["identity"].get("tasks", []) if t["cost"] < 1)


def budget_spent(meta: Mapping[str, Any], trials: Sequence[Trial]) -> float:
    """What the finished trials spent of ``observation_budget``: their number, or with tasks their costs."""
    costs = {t["name"]: float(t["cost"]) for t in meta["identity"].get("tasks", [])}
    finished = [t for t in trials if t.state in (COMPLETED, FAILED, STOPPED)]
    return math.fsum(costs.get(t.task or "", 1.0) for t in finished)


def summarize(trials: Sequence[Trial], metrics: Sequence[Metric], cheaper: Collection[str] = ()) -> Summary:
    """Counts by state, and the best trial(s) among full trainings (``cheaper``: the other tasks' names)."""
    counted = [t for t in trials if t.state != "abandoned"]
    return Summary(
        total=len(counted),
        completed=sum(t.state == COMPLETED for t in counted),
        failed=sum(t.state == FAILED for t in counted),
        running=sum(t.state in ("pending", "running") for t in counted),
        best=best_trials([t for t in counted if t.task not in cheaper], metrics),
        stopped=sum(t.state == STOPPED for t in counted),
    )


def _engine_best(meta: Mapping[str, Any], trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """The server's own best assignments, but those of this sweep's stopped trials: posted with a
    partial value (``observe_stopped: last_value``), one may beat every full training there (a loss
    that rises late in training), and a stopped trial is never the best."""
    stopped = [(t.assignments, {v.name: v.value for v in t.values}) for t in trials if t.state == STOPPED]
    # By assignments and values: a full training of the same assignments (a small grid) stays.
    return [b for b in meta.get("engine_best") or [] if (b.get("assignments"), b.get("values")) not in stopped]


def _unfinished_counts(meta: Mapping[str, Any], trials: Sequence[Trial], summary: Summary) -> dict[str, int]:
    """The unfinished trials as ``hydra-sigopt status`` counts them: a trial whose job sbatch refused
    when the sweep stopped is pending, but nothing of it runs: ``never_submitted`` (only where there
    are such trials), not ``running``."""
    unsubmitted = sum(never_submitted(meta, t) is not None for t in trials)
    return {"running": summary.running - unsubmitted, **({"never_submitted": unsubmitted} if unsubmitted else {})}


def results_document(meta: Mapping[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """The content of ``optimization_results.yaml``, in the shape of Hydra's Optuna sweeper."""
    metrics = metrics_from_meta(meta)
    fixed = shared_overrides(meta)
    summary = summarize(trials, metrics, cheaper_tasks(meta))
    optimized = [m for m in metrics if m.strategy == "optimize"]
    doc: dict[str, Any] = {
        "name": "sigopt",
        "experiment": meta.get("name"),
        "backend": meta.get("backend"),
        "experiment_id": meta.get("experiment_id"),
        "metrics": [m.to_sigopt() for m in metrics],
        "engine_observations": meta.get("engine_observation_count"),
        **({"engine_best": engine_best} if (engine_best := _engine_best(meta, trials)) else {}),
        "trials": {
            "total": summary.total,
            "completed": summary.completed,
            "failed": summary.failed,
            "stopped": summary.stopped,
            **_unfinished_counts(meta, trials, summary),
        },
    }
    if meta["identity"].get("tasks"):  # multitask: what the budget counts, and each task's trials
        doc["trials"]["budget_spent"] = budget_spent(meta, trials)
        doc["trials"]["by_task"] = dict(Counter(t.task for t in trials if t.state != "abandoned"))
    if len(optimized) == 1:
        if summary.best:
            best = summary.best[0]
            doc["best_trial"] = best.number
            doc["best_params"] = trial_params(best, fixed)
            doc["best_value"] = best.value(optimized[0].name)
            doc["best_values"] = {v.name: v.value for v in best.values}
            doc["best_overrides"] = pasteable_overrides(best, fixed)
            doc["best_command"] = rerun_command(best, meta)
        else:
            doc["best_params"] = None
            doc["best_value"] = None
    else:
        doc["solutions"] = [_solution(t, fixed, meta) for t in summary.best]
        full = [t for t in trials if t.task not in cheaper_tasks(meta) and t.state != "abandoned"]
        if outside := front_ignoring_thresholds(full, metrics):
            doc["front_ignoring_thresholds"] = [_solution(t, fixed, meta) for t in outside]
    if not summary.best:
        doc["no_best"] = why_no_best(trials, metrics, cheaper_tasks(meta))
    return doc


def _solution(trial: Trial, fixed: Sequence[str], meta: Mapping[str, Any]) -> dict[str, Any]:
    """A Pareto-optimal trial as ``optimization_results.yaml`` lists it."""
    return {
        "trial": trial.number,
        "params": trial_params(trial, fixed),
        "values": {v.name: v.value for v in trial.values},
        "overrides": pasteable_overrides(trial, fixed),
        "command": rerun_command(trial, meta),
    }


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    # Created 0666 minus the umask (as the journal is), not mkstemp's 0600: teammates read results.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trials_table(
    meta: Mapping[str, Any], trials: Sequence[Trial], steps: Mapping[int, int] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of ``trials.csv``: one row per trial; ``steps``: the last step each trial reported."""
    steps = steps or {}
    metrics = metrics_from_meta(meta)
    fixed = shared_overrides(meta)
    param_names = [p["name"] for p in meta["identity"]["parameters"]]
    param_names += [c["name"] for c in meta["identity"].get("conditionals", [])]
    tasks = bool(meta["identity"].get("tasks"))  # the column only in multitask sweeps
    header = [
        "number",
        "state",
        *(["task"] if tasks else []),
        "step",
        "job_id",
        *[_metric_column(m.name) for m in metrics],
        *[f"param.{n}" for n in param_names],
        "failure_reason",
        "duration_s",
        "started_at",
        "host",
        "overrides",
    ]
    rows = []
    for t in trials:
        rows.append(
            [
                t.number,
                t.state,
                *([t.task or ""] if tasks else []),
                steps.get(t.number, ""),
                t.job_id or "",
                *["" if t.value(m.name) is None else repr(t.value(m.name)) for m in metrics],
                *_param_cells(t, param_names),
                t.failure_reason or "",
                "" if t.duration is None else f"{t.duration:.3f}",
                _iso(t.started_at),
                t.host or "",
                " ".join(swept_overrides(t, fixed)),
            ]
        )
    return header, rows


def _metric_column(name: str) -> str:
    """``value.loss`` for a metric ``loss``; the default metric ``value`` is just ``value``, not ``value.value``."""
    return name if name == "value" else f"value.{name}"


def _param_cells(trial: Trial, names: Sequence[str]) -> list[str]:
    """Each parameter's value as the trial ran with it: its override's value, in Hydra's spelling.

    The engine's assignment is not what the trial got where the sweeper maps it: a log-scaled int
    is rounded (``167.024...`` ran as ``167``), a conditional's ``'False'`` is the boolean ``false``.
    The override's text is kept as written rather than parsed: reports are rewritten after every
    trial, and Hydra's parser costs about 0.1 ms per value. A quoted one is a string the engine
    gave as it is: its cell is that string, not the override's shell-safe quoting (``'a b'``).
    """
    ran = _override_values(trial.overrides)
    cells = []
    for name in names:
        text = ran.get(name)
        cells.append(text if text and text[0] not in "'\"" else _cell(trial.assignments.get(name)))
    return cells


def _override_values(overrides: Sequence[str]) -> dict[str, str]:
    """The value text of each ``key=value`` override, by bare key (no ``+``/``~`` prefix)."""
    from hydra_sigopt.overrides import bare_key

    out: dict[str, str] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        if sep:
            out[bare_key(key)] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def write_reports(
    sweep_dir: Path, meta: Mapping[str, Any], trials: Sequence[Trial], steps: Mapping[int, int] | None = None
) -> dict[str, Any]:
    """Rewrite ``trials.csv`` and ``optimization_results.yaml``; return the results document."""
    header, rows = trials_table(meta, trials, steps)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(sweep_dir / TRIALS_NAME, buf.getvalue())
    doc = results_document(meta, trials)
    # No line width: YAML folds a string longer than 80 characters onto the next line, and a user who
    # copied the best_command line into a shell ran the app without the values folded away.
    text = yaml.dump(_pasteable(doc), Dumper=_ResultsDumper, sort_keys=False, allow_unicode=True, width=UNFOLDED)
    write_atomic(sweep_dir / RESULTS_NAME, text)
    return doc


#: The keys of ``optimization_results.yaml`` whose values are pasted into a shell or a command line.
PASTE_KEYS = frozenset({"best_command", "best_overrides", "command", "overrides"})


class _PasteLine(str):
    """A value to paste: written as it is, on a line of its own where YAML would quote it."""


class _ResultsDumper(yaml.SafeDumper):
    pass


def _represent_paste_line(dumper: yaml.SafeDumper, data: _PasteLine) -> yaml.ScalarNode:
    """Plain where YAML allows it; else a literal block (``|-``, the line below the key as it is), not
    the quoted form a shell does not take: ``": "`` in an override quoted the whole command, its own
    quotes doubled."""
    text = str(data)
    plain = dumper.analyze_scalar(text).allow_block_plain  # type: ignore[attr-defined]
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=None if plain else "|")


_ResultsDumper.add_representer(_PasteLine, _represent_paste_line)


def _pasteable(value: Any, key: str | None = None) -> Any:
    """``value`` with the strings to paste marked (see :data:`PASTE_KEYS`)."""
    if isinstance(value, Mapping):
        return {k: _pasteable(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_pasteable(v) for v in value]
    return _PasteLine(value) if key in PASTE_KEYS and isinstance(value, str) and "\n" not in value else value


class ResultsNotWritten(SigOptSweeperError):
    """The sweep dir refused ``trials.csv`` or ``optimization_results.yaml`` (read-only, full, removed)."""


def write_final_reports(sweep_dir: Path, journal: Journal) -> dict[str, Any] | ResultsNotWritten:
    """The reports at a sweep's end; when the sweep dir refuses them, the one line that says so, logged at
    once (a stop under way is raised instead of it: its line then comes before this one)."""
    try:
        return write_reports(sweep_dir, journal.meta(), journal.trials(), journal.reports.last_steps())
    except OSError as exc:
        message = (
            f"could not write {TRIALS_NAME} and {RESULTS_NAME} in the sweep dir {sweep_dir} ({exc.strerror}); "
            f"the journal keeps every result: hydra-sigopt best {sweep_dir} prints them, and running the sweep's "
            "command again once the folder can be written writes the files"
        )
        log.error("%s", message)
        return ResultsNotWritten(message)


def log_results(sweep_dir: Path, doc: Mapping[str, Any]) -> None:
    """The last lines of a sweep's log: where the results are, then the best overrides to paste."""
    log.info("Results: %s", sweep_dir / RESULTS_NAME)
    if doc.get("best_overrides") is not None:
        log.info("Best trial #%s: %s", doc.get("best_trial"), doc.get("best_values"))
        log.info("Best overrides: %s", doc["best_overrides"])
        if _more_than_the_best_overrides(doc["best_command"], doc["best_overrides"]):
            log.info("Train it again: %s", doc["best_command"])
    elif doc.get("solutions"):
        log.info("Pareto-optimal trials (%d), overrides:", len(doc["solutions"]))
        for s in doc["solutions"]:
            log.info("  #%s %s: %s", s["trial"], s["values"], s["overrides"])
            if _more_than_the_best_overrides(s["command"], s["overrides"]):
                log.info("    train it again: %s", s["command"])
    else:
        log.info("%s; see %s", no_best(doc), sweep_dir / TRIALS_NAME)
        _log_front_ignoring_thresholds(doc)


def _more_than_the_best_overrides(command: str, overrides: str) -> bool:
    """Whether training the best trial again needs more than ``python train.py`` and its best
    overrides: the sweep's command line (``experiment=example``) or ``hydra.mode=RUN``, which come
    before them (see :func:`rerun_overrides`)."""
    if overrides and not command.endswith(f" {overrides}"):
        return True
    program = command[: len(command) - len(overrides)].split()
    return len(program) > program_size(program)


def _log_front_ignoring_thresholds(doc: Mapping[str, Any]) -> None:
    """The front regardless of the thresholds, when no trial met them: how far the sweep got, labelled as no answer."""
    if doc.get("front_ignoring_thresholds"):
        log.info("Pareto front ignoring the thresholds (not within them, so no answer):")
        for s in doc["front_ignoring_thresholds"]:
            log.info("  #%s %s: %s", s["trial"], s["values"], s["overrides"])


def no_best(doc: Mapping[str, Any]) -> str:
    """Why a results document has no best trial, in a few words (see :func:`why_no_best`)."""
    if doc.get("no_best"):
        return str(doc["no_best"])
    completed = (doc.get("trials") or {}).get("completed") or 0
    if completed and "by_task" in (doc.get("trials") or {}):
        return f"No trial of the full task completed ({completed} of cheaper tasks did; those are never the best)"
    return "No trial completed"
