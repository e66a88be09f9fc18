"""Early stopping at equal resource: regret against the steps (epochs) spent, per problem.

Problems (benchmarks/apps/curves.py): ``digits_mlp`` (scikit-learn's MLPClassifier on the digits
data, epoch by epoch, 5 hyperparameters) and ``hartmann6_fidelity`` (the augmented Hartmann-6 of the
multi-fidelity literature). Every contender gets the same resource, R = FULL x 27 steps (FULL full
trainings), and 4 asynchronous slots:

  sigopt_full      this sweeper, lite engine, every trial trained to the end (FULL trials)
  sigopt_asha      this sweeper, lite engine, early_stopping rule asha (reduction factor 3)
  sigopt_asha_failed  the same, the engine learning a stopped trial as a failed observation
                   (early_stopping.observe_stopped: failed) instead of its last value: which of
                   the two a stopped trial teaches is what this pair decides
  sigopt_tasks     this sweeper, SigOpt multitask: tasks of 3, 9 and 27 steps (costs 1/9, 1/3, 1),
                   observation_budget FULL (it counts costs: FULL full trainings)
  sigopt_tasks_asha  both: the tasks, and ASHA over every trial's reports
  random_asha      this sweeper's random suggestions (dev_run) with the same rule
  optuna_hyperband standalone Optuna TPE with its HyperbandPruner (what users write by hand outside
                   Hydra; 4 threads), reporting and pruning at every step

The sweeper contenders are real Hydra multiruns of benchmarks/apps/curve_app.py with
submitit_local; a contender that stops trials early is given ``early_stopping.step_budget=R``
(what a user writes for "at most the compute of FULL full trainings"). The incumbent after r steps
is the best value of a configuration trained to the last step within the first r steps (by time);
regret = incumbent - optimum (digits: the best full-training value any contender found in this run;
infinite while no configuration was trained to the end).

Targets (issue 17): the full-fidelity sweep's final median regret reached with at most 35 % of its
steps (sigopt_asha); lower median regret than Optuna with HyperbandPruner at R on both problems.

    python benchmarks/multi_fidelity.py           # full: 2 problems x 10 seeds, FULL = 20
    python benchmarks/multi_fidelity.py --quick   # CI smoke: hartmann6_fidelity x 1 seed, FULL = 3

The full run takes hours on 2 cores, so it can be done in parts: every finished cell (problem x
contender x seed) is kept under benchmarks/results/multi_fidelity/full/cells/ with the code it
measured, and a rerun at the same code reuses it, so an interrupted run continues where it stopped.
``--only-cells`` runs cells without publishing; ``--contenders`` runs and publishes a part (under
its own name); a run that has every cell publishes the figures. A cell measured at other code
(hydra_sigopt/, benchmarks/apps/, or an older MEASUREMENT of this script) is run again.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(common.APPS))
import curves

NAME = "multi_fidelity"
SWEEPER_CONTENDERS = (
    "sigopt_full",
    "sigopt_asha",
    "sigopt_asha_failed",
    "sigopt_tasks",
    "sigopt_tasks_asha",
    "random_asha",
)
CONTENDERS = (*SWEEPER_CONTENDERS, "optuna_hyperband")
#: What the targets compare: a part of the run without one of them publishes figures only.
TARGET_CONTENDERS = ("sigopt_full", "sigopt_asha", "sigopt_asha_failed", "optuna_hyperband")
LABELS = {
    "sigopt_full": "SigOpt sweeper, full trainings",
    "sigopt_asha": "SigOpt sweeper + ASHA",
    "sigopt_asha_failed": "SigOpt sweeper + ASHA, stopped = failed",
    "sigopt_tasks": "SigOpt sweeper, multitask (3/9/27 steps)",
    "sigopt_tasks_asha": "SigOpt sweeper, multitask + ASHA",
    "random_asha": "random + ASHA (this sweeper's rule)",
    "optuna_hyperband": "Optuna TPE + HyperbandPruner",
}
SLOTS = 4
REDUCTION = 3
APP = common.APPS / "curve_app.py"
#: What a step takes besides its computation: the analytic problem's steps are given the duration of
#: a small epoch, so that a trial runs long enough to be stopped (the digits epochs take ~0.1 s).
STEP_SECONDS = {"hartmann6_fidelity": 0.1, "digits_mlp": 0.0}
#: ``--step-seconds``: every problem's steps given this duration instead (slot use against the length
#: of an epoch); its cells are kept apart from the default run's.
_STEP_SECONDS_OVERRIDE: dict[str, float] = {}


def step_seconds(problem: str) -> float:
    return _STEP_SECONDS_OVERRIDE.get(problem, STEP_SECONDS[problem])


def cell_group(full: int) -> str:
    """The folder of a run's cells: its resource, and the step duration when it is not the default."""
    override = set(_STEP_SECONDS_OVERRIDE.values())
    return f"full{full}" + "".join(f"_step{s:g}s" for s in override)


#: The multitask contenders' tasks: 3, 9 and 27 steps, costing their share of a full training.
_TASK = "{{name:steps{0},cost:{1!r},max_step:{0},overrides:{{steps:{0}}}}}"
_CHEAP = ",".join(_TASK.format(steps, steps / curves.MAX_STEP) for steps in (3, 9))
TASKS = f"hydra.sweeper.tasks=[{_CHEAP},{{name:full,cost:1}}]"


# ------------------------------------------------------------------ contenders


def sweeper_overrides(contender: str, problem: str, seed: int, full: int) -> list[str]:
    common_part = [
        "hydra/sweeper=sigopt",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=30",
        f"hydra.sweeper.parallel_bandwidth={SLOTS}",
        f"hydra.sweeper.seed={seed}",
        f"problem={problem}",
        f"step_seconds={step_seconds(problem)}",
        *curves.sweeper_params(problem),
    ]
    if contender == "sigopt_full":
        return [*common_part, f"hydra.sweeper.observation_budget={full}"]
    if contender == "sigopt_tasks":
        return [*common_part, TASKS, f"hydra.sweeper.observation_budget={full}"]
    early = [
        "hydra.sweeper.early_stopping.rule=asha",
        "hydra.sweeper.early_stopping.min_step=1",
        f"hydra.sweeper.early_stopping.max_step={curves.MAX_STEP}",
        f"hydra.sweeper.early_stopping.reduction_factor={REDUCTION}",
        f"hydra.sweeper.early_stopping.step_budget={full * curves.MAX_STEP}",
        f"hydra.sweeper.observation_budget={full * curves.MAX_STEP}",  # never reached first: one step a trial at least
    ]
    if contender == "random_asha":
        return [*common_part, *early, "hydra.sweeper.dev_run=true"]
    if contender == "sigopt_asha_failed":
        return [*common_part, *early, "hydra.sweeper.early_stopping.observe_stopped=failed"]
    if contender == "sigopt_tasks_asha":
        # A task here cuts the same curve short (a step means the same in every task): what
        # compare_tasks: together is for. With the default, apart, this problem's median was 0.23
        # against 0.041 (README).
        return [*common_part, *early, TASKS, "hydra.sweeper.early_stopping.compare_tasks=together"]
    return [*common_part, *early]


def run_sweeper(sweep_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """One multirun of the curve app (a folder left by an interrupted run of this cell is set aside)."""
    sweep_dir.parent.mkdir(parents=True, exist_ok=True)
    if sweep_dir.exists():
        sweep_dir.rename(sweep_dir.with_name(f"{sweep_dir.name}.interrupted-{int(time.time())}"))
    cmd = common.app_command(*overrides, f"hydra.sweep.dir={sweep_dir}", app=APP)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.time()
    with open(sweep_dir.parent / f"{sweep_dir.name}.out", "w") as out:
        done = subprocess.run(cmd, cwd=common.APPS, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{sweep_dir}: the sweep failed; see {out.name}")
    return {"cmd": cmd, "returncode": done.returncode, "wall_s": time.time() - started, **slot_use(sweep_dir)}


def slot_use(sweep_dir: Path) -> dict[str, float]:
    """Slot utilisation: the time trials ran (each task's start to its end, stopped ones included)
    over SLOTS x the wall time from the first trial's start to the last one's end."""
    path = sweep_dir / "bench_spans.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    spans = [json.loads(line) for line in lines if line.endswith("}")]
    if not spans:
        return {}
    busy = sum(s["end"] - s["start"] for s in spans)
    wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return {"utilisation": busy / (SLOTS * wall) if wall > 0 else math.nan, "trials": len(spans)}


def read_reports(sweep_dir: Path) -> list[dict[str, Any]]:
    path = sweep_dir / "bench_reports.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def run_optuna(problem: str, seed: int, resource: int) -> list[dict[str, Any]]:
    """Standalone Optuna: TPE + HyperbandPruner, 4 threads; every step logged like the curve app's."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")  # n_jobs: still what users write
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log: list[dict[str, Any]] = []
    lock = threading.Lock()

    def objective(trial: Any) -> float:
        params = {name: suggest(trial, name, spec) for name, spec in curves.SPACES[problem].items()}
        value = math.nan
        for step, value in enumerate(curves.curve(problem, params), start=1):
            time.sleep(step_seconds(problem))
            with lock:
                if len(log) >= resource:
                    trial.study.stop()
                    raise optuna.TrialPruned()
                log.append({"job_num": trial.number, "step": step, "value": value, "time": time.time()})
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=curves.MAX_STEP, reduction_factor=REDUCTION)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    study.optimize(objective, n_jobs=SLOTS, n_trials=10 * resource)
    return log


def suggest(trial: Any, name: str, spec: tuple[str, float, float, bool]) -> float | int:
    kind, low, high, log = spec
    if kind == "int":
        return int(trial.suggest_int(name, int(low), int(high), log=log))
    return float(trial.suggest_float(name, low, high, log=log))


# ------------------------------------------------------------------ resource accounting


def incumbents(reports: list[dict[str, Any]], resource: int) -> list[float]:
    """The best full-training value after each of the first ``resource`` steps (inf before the first)."""
    ordered = sorted(reports, key=lambda r: r["time"])[:resource]
    out, best = [], math.inf
    for r in ordered:
        if r["step"] == curves.MAX_STEP:
            best = min(best, float(r["value"]))
        out.append(best)
    return out + [best] * (resource - len(out))


def steps_to_reach(curve: list[float], target: float) -> int | None:
    if not math.isfinite(target):
        return None
    return next((i + 1 for i, v in enumerate(curve) if v <= target), None)


# ------------------------------------------------------------------ main


def _options(parser: Any) -> None:
    parser.add_argument("--seeds", type=int, help="seeds per problem (default 10; quick 1)")
    parser.add_argument("--problems", nargs="+", choices=curves.PROBLEMS, help="a subset of the problems")
    parser.add_argument("--full", type=int, help="the resource, in full trainings (default 20; quick 3)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, help="a subset (published apart, as a part)")
    parser.add_argument("--only-cells", action="store_true", help="run the cells missing; publish nothing")
    parser.add_argument(
        "--step-seconds", type=float, help="every step's duration, for slot use against epoch length (a part)"
    )


# ------------------------------------------------------------------ cells kept between runs


#: What a cell measures, as far as this script decides it (contenders' settings, slots, steps): bump
#: it with a change that alters a cell, so that cells measured before are run again.
MEASUREMENT = 2  # 2: slot use from the tasks' own start and end (was: first report to last)


def code_version() -> str:
    """What a cell measures: git's hashes of hydra_sigopt/ and the benchmark apps at HEAD, and
    MEASUREMENT; ``+dirty`` when those folders differ from HEAD (a change to the README, to how this
    script publishes or to another benchmark keeps the cells)."""
    measured = ("hydra_sigopt", "benchmarks/apps")

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=common.ROOT, capture_output=True, text=True).stdout.strip()

    hashes = git("rev-parse", *(f"HEAD:{path}" for path in measured)).split()
    version = "-".join([*(h[:8] for h in hashes), f"m{MEASUREMENT}"]) if hashes else "unknown"
    return version + ("+dirty" if git("status", "--porcelain", "--", *measured) else "")


def cell_file(out: Path, problem: str, contender: str, seed: int, full: int) -> Path:
    return out / "cells" / cell_group(full) / problem / contender / f"seed{seed}.json"


def kept_cell(path: Path, version: str) -> dict[str, Any] | None:
    """A finished cell of an earlier run at the same code, or None (``+dirty`` code is never reused)."""
    if not path.exists() or version.endswith("+dirty"):
        return None
    cell: dict[str, Any] = json.loads(path.read_text())
    return cell if cell.get("version") == version else None


def save_cell(path: Path, cell: dict[str, Any]) -> None:
    """Written whole or not at all: a run stopped mid-write leaves no half cell to reuse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    common.write_json(partial, cell)
    partial.replace(path)


def measure_cell(out: Path, problem: str, contender: str, seed: int, full: int, version: str) -> dict[str, Any]:
    started = time.perf_counter()
    cell = run_cell(out, problem, contender, seed, full)
    return {"version": version, "cell_s": time.perf_counter() - started, **cell}


def run_cell(out: Path, problem: str, contender: str, seed: int, full: int) -> dict[str, Any]:
    resource = full * curves.MAX_STEP
    if contender == "optuna_hyperband":
        return {"reports": run_optuna(problem, seed, resource), "run": None}
    sweep_dir = out / "runs" / cell_group(full) / problem / contender / f"seed{seed}"
    run = run_sweeper(sweep_dir, sweeper_overrides(contender, problem, seed, full))
    return {"reports": read_reports(sweep_dir), "run": {"label": f"{problem}/{contender}/seed{seed}", **run}}


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _options)
    quick = args.quick
    if args.step_seconds is not None:
        _STEP_SECONDS_OVERRIDE.update(dict.fromkeys(STEP_SECONDS, args.step_seconds))
    problems = ["hartmann6_fidelity"] if quick else list(args.problems or curves.PROBLEMS)
    seeds = [0] if quick else list(range(args.seeds or 10))
    full = 3 if quick else (args.full or 20)
    # The README's figures come from the default full run; a smaller one is published beside it.
    # The full sweep is the reference of the shares of R: a part is measured against it too.
    contenders = [c for c in CONTENDERS if c in (args.contenders or CONTENDERS) or c == "sigopt_full"]
    standard = not args.seeds and not args.problems and not args.full and not args.contenders
    standard = standard and args.step_seconds is None
    # A part is named by the contenders it adds to the full sweep: parts of other contenders on the
    # same problems and seeds were published under one name, the last overwriting the figures of the
    # one before (which the README quotes).
    added = [c for c in contenders if c != "sigopt_full"] or ["sigopt_full"]
    part = "" if not args.contenders else f"_{'_'.join(added)}_part"
    steps = "" if args.step_seconds is None else f"_step{args.step_seconds:g}s"
    published_name = NAME if standard else f"{NAME}_{len(seeds)}seeds_{full}full_{'_'.join(problems)}{steps}{part}"
    resource = full * curves.MAX_STEP
    out = common.results_dir(NAME) / ("quick" if quick else "full")
    facts = common.machine_facts()
    version = code_version()
    logs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    runs: list[dict[str, Any]] = []
    versions: set[str] = set()
    cells_s = 0.0  # the cells' own time: a run in parts reports the time of all its parts
    for problem in problems:
        for seed in seeds:
            for contender in contenders:
                path = cell_file(out, problem, contender, seed, full)
                cell = None if quick else kept_cell(path, version)
                print(f"  {problem}/{contender}/seed{seed}{' (kept)' if cell else ' ...'}", flush=True)
                if cell is None:
                    cell = measure_cell(out, problem, contender, seed, full, version)
                    save_cell(path, cell)
                logs[(problem, contender, seed)] = cell["reports"]
                runs += [cell["run"]] if cell["run"] else []
                versions.add(cell["version"])
                cells_s += cell["cell_s"]
    if args.only_cells:
        print(f"cells kept under {out / 'cells'}; a run without --only-cells publishes them")
        return 0
    summary = summarize(problems, seeds, logs, resource, contenders)
    for problem in problems:
        for contender in [c for c in contenders if c in SWEEPER_CONTENDERS]:
            used = [r.get("utilisation", math.nan) for r in runs if r["label"].startswith(f"{problem}/{contender}/")]
            summary[problem]["contenders"][contender]["utilisation"] = common.median(used)
    elapsed = cells_s
    common.write_json(out / "results.json", {"facts": facts, "runs": runs, "summary": summary, "elapsed_s": elapsed})
    text, targets = render(summary, problems, seeds, full, resource, facts, quick, elapsed, contenders)
    text += f"\nCode measured: {', '.join(sorted(versions))}"
    print(text)
    png = plot(summary, problems, resource, out / f"{NAME}.png", contenders)
    common.publish(published_name, png, text, quick)
    return 1 if args.strict and not all(targets) else 0


def plot(summary: dict[str, Any], problems: list[str], resource: int, path: Path, contenders: list[str]) -> Path:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        for contender in contenders:
            curve = summary[problem]["contenders"][contender]["median_curve"]
            ax.plot(range(1, resource + 1), [max(v, 1e-6) for v in curve], label=LABELS[contender])
        ax.set_yscale("log")
        ax.set_xlabel(f"steps spent (R = {resource})")
        ax.set_ylabel("median regret of the best full training")
        ax.set_title(problem)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def summarize(
    problems: list[str],
    seeds: list[int],
    logs: dict[tuple[str, str, int], list[dict[str, Any]]],
    resource: int,
    contenders: list[str],
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for problem in problems:
        optimum = curves.OPTIMA[problem]
        if optimum is None:  # this problem's best full training in this run (not another problem's)
            finals = [
                r["value"]
                for (p, _, _), log in logs.items()
                if p == problem
                for r in log
                if r["step"] == curves.MAX_STEP
            ]
            optimum = min(finals) if finals else math.nan
        per = {}
        for contender in contenders:
            regret_curves = [[v - optimum for v in incumbents(logs[(problem, contender, s)], resource)] for s in seeds]
            median_curve = [common.median(c[i] for c in regret_curves) for i in range(resource)]
            per[contender] = {"median_curve": median_curve, "final": [c[-1] for c in regret_curves]}
        target = per["sigopt_full"]["median_curve"][-1]
        for contender in contenders:
            reached = steps_to_reach(per[contender]["median_curve"], target)
            per[contender]["share_to_full_final"] = None if reached is None else reached / resource
        summary[problem] = {"optimum": optimum, "contenders": per}
    return summary


def render(
    summary: dict[str, Any],
    problems: list[str],
    seeds: list[int],
    full: int,
    resource: int,
    facts: dict[str, Any],
    quick: bool,
    elapsed: float,
    contenders: list[str],
) -> tuple[str, list[bool]]:
    headers = ["problem", "contender", "median regret at R [IQR]", "share of R to reach full's final median"]
    headers.append("slot use")
    rows = []
    for problem in problems:
        for contender in contenders:
            entry = summary[problem]["contenders"][contender]
            q1, med, q3 = common.quantiles(entry["final"])
            share = entry["share_to_full_final"]
            rows.append(
                [
                    problem,
                    LABELS[contender],
                    f"{common.fmt(med)} [{common.fmt(q1)}, {common.fmt(q3)}]",
                    "not reached" if share is None else f"{share:.0%}",
                    common.fmt(entry.get("utilisation", "-")),
                ]
            )
    lines = [
        f"{NAME}: R = {full} full trainings x {curves.MAX_STEP} steps = {resource} steps, {len(seeds)} seed(s), "
        f"{SLOTS} slots, on {facts['nproc']} x {facts['cpu_model']} ({elapsed:.0f} s)" + (" [quick]" if quick else ""),
        "Added duration of a step: " + ", ".join(f"{p} {step_seconds(p):g} s" for p in problems),
        common.text_table(headers, rows),
    ]
    targets: list[bool] = []
    if not set(TARGET_CONTENDERS) <= set(contenders):
        return "\n".join(lines), targets  # a part without them: figures only
    for problem in problems:
        per = summary[problem]["contenders"]
        share = per["sigopt_asha"]["share_to_full_final"]
        asha, optuna = common.median(per["sigopt_asha"]["final"]), common.median(per["optuna_hyperband"]["final"])
        use_es = per["sigopt_asha"].get("utilisation", math.nan)
        use_full = per["sigopt_full"].get("utilisation", math.nan)
        checks = [
            (
                f"{problem}: ASHA reaches the full sweep's final median with <= 35% of R",
                share is not None and share <= 0.35,
            ),
            (f"{problem}: ASHA median regret at R < Optuna + HyperbandPruner's", asha < optuna),
            (
                f"{problem}: slot use with early stopping >= without ({common.fmt(use_es)} vs {common.fmt(use_full)})",
                use_es >= use_full,
            ),
        ]
        failed = common.median(per["sigopt_asha_failed"]["final"])
        lines.append(
            f"{problem}: a stopped trial observed with its last value -> median regret at R {common.fmt(asha)};"
            f" as a failed observation -> {common.fmt(failed)}"
        )
        for what, ok in checks:
            lines.append(f"Target: {what} -> {common.verdict(ok)}" + (" (quick mode: smoke only)" if quick else ""))
            targets.append(ok)
    return "\n".join(lines), targets


if __name__ == "__main__":
    sys.exit(main())
