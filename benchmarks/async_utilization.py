"""Async scheduling: slot utilisation with 4 submitit_local slots and trials of uneven length.

Real multiruns of benchmarks/apps/objective.py (problem=branin, trivial) whose trials sleep first: a
duration drawn from a lognormal (median 2 s, sigma 0.8) keyed by the job number, so every contender
runs the same durations for the same job numbers. 32 trials, 4 slots, hydra/launcher=submitit_local:
  sigopt_async        this sweeper, scheduler=async, parallel_bandwidth=4, dev_run=true (random)
  sigopt_async_cold   the same without warm jobs (warm_jobs=0: every trial starts its own job; full mode only)
  sigopt_batch        this sweeper, scheduler=batch, parallel_bandwidth=4, dev_run=true
  sigopt_async_engine this sweeper, scheduler=async, default engine (full mode only)
  optuna              hydra-optuna-sweeper, n_jobs=4 (batches of 4 through the launcher)

utilisation = sum of trial durations (the task's own time) / (4 x wall of the whole process).
Targets: sigopt_async utilisation >= 0.9; sigopt_async wall <= 0.65 x optuna's wall. Where time
goes is decomposed from timestamps: the journal (trial recorded just before submission), and the
app's record of when its process and its parent (submitit's local controller) started.

    python benchmarks/async_utilization.py           # full: 32 trials, median 2 s, 3 repeats
    python benchmarks/async_utilization.py --quick   # CI smoke: 8 trials, median 0.5 s, 1 repeat
    python benchmarks/async_utilization.py --median-s 10 --repeats 1 --contenders sigopt_async optuna
                                                     # longer trials: how the fixed costs shrink
"""

from __future__ import annotations

import heapq
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import common

NAME = "async_utilization"
SLOTS = 4
SIGMA = 0.8
DELAY_SEED = 0
LABELS = {
    "sigopt_async": "SigOpt async (dev_run)",
    "sigopt_async_cold": "SigOpt async, warm_jobs=0 (dev_run)",
    "sigopt_batch": "SigOpt batch (dev_run)",
    "sigopt_async_engine": "SigOpt async (engine)",
    "optuna": "Optuna n_jobs=4",
}


def contender_overrides(name: str, n_trials: int, median_s: float, seed: int) -> list[str]:
    app = [
        "problem=branin",
        "+space=branin",
        f"delay={median_s}",
        f"delay_sigma={SIGMA}",
        f"delay_seed={DELAY_SEED}",
        *common.SUBMITIT_LOCAL,
    ]
    sigopt = [
        "hydra/sweeper=sigopt",
        f"hydra.sweeper.parallel_bandwidth={SLOTS}",
        f"hydra.sweeper.observation_budget={n_trials}",
        f"hydra.sweeper.seed={seed}",
    ]
    if name == "sigopt_async":
        return [*app, *sigopt, "hydra.sweeper.scheduler=async", "hydra.sweeper.dev_run=true"]
    if name == "sigopt_async_cold":
        cold = ["hydra.sweeper.warm_jobs=0"]
        return [*app, *sigopt, "hydra.sweeper.scheduler=async", "hydra.sweeper.dev_run=true", *cold]
    if name == "sigopt_batch":
        return [*app, *sigopt, "hydra.sweeper.scheduler=batch", "hydra.sweeper.dev_run=true"]
    if name == "sigopt_async_engine":
        return [*app, *sigopt, "hydra.sweeper.scheduler=async"]
    if name == "optuna":
        return [
            *app,
            "hydra/sweeper=optuna",
            "hydra.sweeper.direction=minimize",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.n_jobs={SLOTS}",
            f"hydra.sweeper.sampler.seed={seed}",
        ]
    raise ValueError(name)


def journal_times(sweep_dir: Path) -> dict[int, tuple[float, float | None, str | None]]:
    """(created_at, observed_at, job_id) per trial from the SigOpt sweeper's journal: when it
    recorded the trial (just before submitting it), when it had posted the trial's result to the
    engine, and the submitit job id."""
    path = sweep_dir / "sigopt_journal.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        query = "SELECT number, created_at, observed_at, job_id FROM trials"
        return {int(n): (float(c), o, j) for n, c, o, j in db.execute(query)}
    finally:
        db.close()


def result_written(sweep_dir: Path, job_id: str | None) -> float | None:
    """When submitit's job wrote its result file (written to a temporary name, then moved)."""
    if not job_id:
        return None
    path = sweep_dir / ".submitit" / job_id / f"{job_id}_0_result.pkl"
    return path.stat().st_mtime if path.exists() else None


def warm_job_trials(sweep_dir: Path, job_ids: dict[int, str | None]) -> list[int]:
    """The trials that ran in a warm job (started before its trial was known), from the job logs."""
    found = []
    for number, job_id in job_ids.items():
        logs = "".join(p.read_text(errors="replace") for p in (sweep_dir / ".submitit" / str(job_id)).glob("*_log.*"))
        if f"Warm job runs trial #{number}" in logs:
            found.append(number)
    return found


def list_schedule(durations: list[float], slots: int) -> float:
    """Makespan with zero overhead when each job starts as soon as a slot frees (job order kept)."""
    free = [0.0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def batch_schedule(durations: list[float], slots: int) -> float:
    return sum(max(durations[i : i + slots]) for i in range(0, len(durations), slots))


def analyse(run: common.Run, n_trials: int) -> dict[str, Any]:
    trials = run.trials()
    if [t["job_num"] for t in trials] != list(range(n_trials)):
        raise RuntimeError(f"{run.label}: expected jobs 0..{n_trials - 1}, got {[t['job_num'] for t in trials]}")
    wall = run.wall_s or float("nan")
    t0 = run.extra["started_epoch"]
    t_end = t0 + wall
    durations = [t["ended"] - t["started"] for t in trials]
    busy = sum(durations)
    first_launch = min(t["parent_started"] for t in trials)
    last_end = max(t["ended"] for t in trials)
    doc: dict[str, Any] = {
        "wall_s": wall,
        "busy_s": busy,
        "utilisation": busy / (SLOTS * wall),
        "utilisation_span": busy / (SLOTS * (last_end - first_launch)),
        "ideal_async_s": list_schedule(durations, SLOTS),
        "ideal_batch_s": batch_schedule(durations, SLOTS),
        "overhead_per_trial_s": (SLOTS * wall - busy) / n_trials,
        "sweeper_startup_s": first_launch - t0,
        "tail_s": t_end - last_end,
        "launch_latency_s": common.median(t["started"] - t["parent_started"] for t in trials),
        "durations": durations,
        "trials": trials,
    }
    journal = journal_times(run.sweep_dir)
    if journal:
        created = {n: c for n, (c, _o, _j) in journal.items()}
        for t in trials:  # a warm job starts before its trial exists: its trial's launch starts at the record
            t["launch_from"] = max(t["parent_started"], created[t["job_num"]])
        warm = warm_job_trials(run.sweep_dir, {n: j for n, (_c, _o, j) in journal.items()})
        doc["warm_trials"] = len(warm)
        doc["first_wave_record_to_task_s"] = common.median(trials[n]["started"] - created[n] for n in range(SLOTS))
        doc["refill_record_to_task_s"] = common.median(
            trials[n]["started"] - created[n] for n in range(SLOTS, n_trials)
        )
        # Refill: the k-th refill (trial SLOTS + k) follows the k-th trial end. Split at the moment
        # the ended job's result file appeared: before it, the job saving its result; after it, the
        # sweeper noticing, journaling, waiting for the suggestion and recording the next trial
        # (the observation is posted after the refill).
        written = {n: result_written(run.sweep_dir, journal[n][2]) for n in journal}
        by_end = sorted(trials, key=lambda t: t["ended"])
        gaps, to_file, file_to_next = [], [], []
        for k in range(n_trials - SLOTS):
            freed, refill = by_end[k], SLOTS + k
            if refill not in created:
                continue
            gaps.append(created[refill] - freed["ended"])
            w = written.get(freed["job_num"])
            if w is not None:
                to_file.append(w - freed["ended"])
                file_to_next.append(created[refill] - w)
        doc["refill_gap_s"] = common.median(gaps) if gaps else None
        doc["end_to_result_file_s"] = common.median(to_file) if to_file else None
        doc["result_file_to_next_recorded_s"] = common.median(file_to_next) if file_to_next else None
        doc["refill_gaps"] = gaps
    return doc


def import_profile(out: Path, n_trials: int, median_s: float) -> dict[str, Any]:
    """One extra sigopt_async run (not timed, without warm jobs) with PYTHONPROFILEIMPORTTIME=1: how
    much of a job's start-up is spent importing modules, read from the jobs' own stderr logs."""
    run = common.run_app(
        "import-time profile",
        out / "runs" / "importtime",
        # cold jobs only: a warm job's process start -> task includes its wait for a trial
        [*contender_overrides("sigopt_async", n_trials, median_s, seed=0), "hydra.sweeper.warm_jobs=0"],
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    ).check()
    per_job: list[float] = []
    by_package: dict[str, list[float]] = {}
    for err in sorted((run.sweep_dir / ".submitit").glob("*/*_0_log.err")):
        total, packages = 0.0, {}
        for line in err.read_text(errors="replace").splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            _, cumulative, name = line[len("import time:") :].split("|")
            if name.startswith("  "):  # nested import: counted in its top-level importer
                continue
            seconds = int(cumulative) / 1e6
            total += seconds
            root = name.strip().split(".")[0]
            packages[root] = packages.get(root, 0.0) + seconds
        per_job.append(total)
        for root, seconds in packages.items():
            by_package.setdefault(root, []).append(seconds)
    trials = run.trials()
    top = sorted(((common.median(v), k) for k, v in by_package.items()), reverse=True)[:8]
    return {
        "jobs": len(per_job),
        "import_s_per_job": common.median(per_job) if per_job else None,
        "task_process_to_task_s": common.median(t["started"] - t["process_started"] for t in trials),
        "top_packages_s": [{"package": k, "median_s": v} for v, k in top],
    }


def _options(parser: Any) -> None:
    parser.add_argument("--median-s", type=float, help="median trial duration (default 2, quick 0.5)")
    parser.add_argument("--repeats", type=int, help="repeats per contender (default 3, quick 1)")
    parser.add_argument(
        "--contenders", nargs="+", choices=list(LABELS), help="a subset; sigopt_async and optuna are always run"
    )


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], _options)
    quick = args.quick
    n_trials = 8 if quick else 32
    median_s = args.median_s or (0.5 if quick else 2.0)
    repeats = args.repeats or (1 if quick else 3)
    names = ["sigopt_async", "sigopt_batch", "optuna"] + ([] if quick else ["sigopt_async_cold", "sigopt_async_engine"])
    if args.contenders:
        names = [n for n in names if n in {*args.contenders, "sigopt_async", "optuna"}]
    # The README's figures come from the default full run; a variant is published beside it.
    standard = not args.median_s and not args.repeats and not args.contenders
    published_name = NAME if standard else f"{NAME}_median{median_s:g}s"
    out = common.results_dir(NAME)
    facts = common.machine_facts()
    started = time.perf_counter()
    print(
        f"{NAME}: {n_trials} trials, {SLOTS} submitit_local slots, lognormal durations (median {median_s} s, "
        f"sigma {SIGMA}), {repeats} repeat(s), contenders one at a time, interleaved",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names:
            run = common.run_app(
                f"{name}#{r}", out / "runs" / f"{name}_{r}", contender_overrides(name, n_trials, median_s, seed=r)
            ).check()
            a = analyse(run, n_trials)
            a["command"] = run.args
            results[name].append(a)
            print(f"  {run.label}: wall {a['wall_s']:.1f} s, utilisation {a['utilisation']:.3f}", flush=True)
    imports = import_profile(out, n_trials, median_s) if standard else None
    elapsed = time.perf_counter() - started

    def med(name: str, key: str) -> float | None:
        vals = [a[key] for a in results[name] if a.get(key) is not None]
        return common.median(vals) if vals else None

    optuna_wall = med("optuna", "wall_s") or float("nan")
    headers = [
        "contender",
        "wall (s)",
        "walls per repeat",
        "sum of durations (s)",
        "utilisation",
        "util. (first launch..last end)",
        "wall / optuna",
        "zero-overhead wall (s)",
    ]
    rows = []
    for name in names:
        ideal_key = "ideal_batch_s" if name in ("sigopt_batch", "optuna") else "ideal_async_s"
        rows.append(
            [
                LABELS[name],
                med(name, "wall_s"),
                " ".join(f"{a['wall_s']:.1f}" for a in results[name]),
                med(name, "busy_s"),
                med(name, "utilisation"),
                med(name, "utilisation_span"),
                (med(name, "wall_s") or 0) / optuna_wall,
                med(name, ideal_key),
            ]
        )
    diag_headers = [
        "contender",
        "sweeper start-up",
        "first trials: recorded -> task",
        "job start -> task",
        "task end -> next recorded",
        "  end -> result file",
        "  result file -> next recorded",
        "next recorded -> its task",
        "trials in warm jobs",
        "tail",
        "lost slot-s per trial",
    ]
    diag_rows = []
    for name in names:
        diag_rows.append(
            [
                LABELS[name],
                med(name, "sweeper_startup_s"),
                med(name, "first_wave_record_to_task_s"),
                med(name, "launch_latency_s") if name == "optuna" else None,
                med(name, "refill_gap_s"),
                med(name, "end_to_result_file_s"),
                med(name, "result_file_to_next_recorded_s"),
                med(name, "refill_record_to_task_s"),
                med(name, "warm_trials"),
                med(name, "tail_s"),
                med(name, "overhead_per_trial_s"),
            ]
        )
    util = med("sigopt_async", "utilisation") or 0.0
    wall_ratio = (med("sigopt_async", "wall_s") or float("nan")) / optuna_wall
    ideal_util = common.median(a["busy_s"] / (SLOTS * a["ideal_async_s"]) for a in results["sigopt_async"])
    # What this machine's fixed costs alone allow: the zero-overhead schedule, started only once the
    # sweeper is up (Python, Hydra, the engine import) and its first jobs have started their tasks.
    startup_bound = common.median(
        a["busy_s"] / (SLOTS * (a["ideal_async_s"] + a["sweeper_startup_s"] + a["first_wave_record_to_task_s"]))
        for a in results["sigopt_async"]
    )
    util_ok = util >= 0.9
    ratio_ok = wall_ratio <= 0.65
    targets = [
        f"Target: sigopt async utilisation {util:.3f} >= 0.9 -> {common.verdict(util_ok)} "
        f"(with zero overhead these durations allow at most {ideal_util:.3f}; with this run's start-up and "
        f"first job starts, and no other overhead, {startup_bound:.3f})",
        f"Target: sigopt async wall / optuna wall {wall_ratio:.3f} <= 0.65 -> {common.verdict(ratio_ok)}",
    ]
    table = common.text_table(headers, rows)
    diag = common.text_table(diag_headers, diag_rows)
    setup = (
        f"{n_trials} trials, {SLOTS} submitit_local slots, sleep per trial lognormal(median {median_s} s, "
        f"sigma {SIGMA}) by job number, median of {repeats} repeat(s)"
    )
    print()
    print(setup)
    print(table)
    print()
    print("Where the time goes (seconds, medians; per trial unless noted; start-up and tail per run):")
    print(diag)
    print()
    import_line = (
        (
            f"Job start-up (import-time run, sigopt_async): task process start -> task "
            f"{imports['task_process_to_task_s']:.2f} s, of which module imports {imports['import_s_per_job']:.2f} s "
            f"(medians over {imports['jobs']} jobs; top: "
            + ", ".join(f"{p['package']} {p['median_s']:.2f} s" for p in imports["top_packages_s"][:5])
            + "); the rest is unpickling the launcher and Hydra's per-job config composition, output dir and logging"
        )
        if imports
        else "Job start-up: import-time run skipped (only in the default full run)"
    )
    print(import_line)
    print()
    for t in targets:
        print(t)
    print(f"Wall time of this benchmark: {elapsed:.0f} s")

    png = out / f"{NAME}.png"
    plot({n: results[n][0] for n in names}, png)
    doc = {
        "benchmark": NAME,
        "quick": quick,
        "machine": facts,
        "settings": {"trials": n_trials, "slots": SLOTS, "median_s": median_s, "sigma": SIGMA, "repeats": repeats},
        "results": results,
        "import_profile": imports,
        "targets": {
            "utilisation": util,
            "utilisation_pass": util_ok,
            "wall_ratio": wall_ratio,
            "wall_ratio_pass": ratio_ok,
            "zero_overhead_bound": ideal_util,
            "startup_bound": startup_bound,
        },
        "wall_s": elapsed,
    }
    common.write_json(out / f"{NAME}.json", doc)
    print(f"Results: {out / (NAME + '.json')}, {png}")
    md = "\n\n".join(
        [
            f"### Async utilisation\n\n{setup}.",
            common.markdown_table(headers, rows),
            "Where the time goes (seconds, medians):",
            common.markdown_table(diag_headers, diag_rows),
            import_line + ".",
            "\n".join(f"**{t}**  " for t in targets),
            f"Machine: {facts['nproc']} x {facts['cpu_model']}, Python {facts['python']}.",
        ]
    )
    common.publish(published_name, png, md, quick)
    return 1 if (args.strict and not (util_ok and ratio_ok)) else 0


def plot(first: dict[str, dict[str, Any]], png: Path) -> None:
    """Gantt chart of each contender's first repeat: launch (light) and task (dark) per slot."""
    plt = common.pyplot()
    fig, axes = plt.subplots(len(first), 1, figsize=(12, 1.6 * len(first) + 1), sharex=True, squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], first.items()):
        t0 = min(t["parent_started"] for t in a["trials"])
        lanes: list[float] = []
        for t in sorted(a["trials"], key=lambda t: t.get("launch_from", t["parent_started"])):
            launch = t.get("launch_from", t["parent_started"])
            lane = next((i for i, end in enumerate(lanes) if end <= launch), None)
            if lane is None:
                lanes.append(0.0)
                lane = len(lanes) - 1
            lanes[lane] = t["ended"]
            ax.barh(lane, t["started"] - launch, left=launch - t0, color="tab:orange", alpha=0.5)
            ax.barh(lane, t["ended"] - t["started"], left=t["started"] - t0, color="tab:blue")
        ax.set_yticks(range(len(lanes)))
        ax.set_ylabel("slot")
        ax.set_title(f"{LABELS[name]}: wall {a['wall_s']:.1f} s, utilisation {a['utilisation']:.2f}", fontsize=9)
    axes[-1, 0].set_xlabel(
        "seconds since the first job's launch (orange: from the trial's record, or its job's start, to the task; "
        "blue: the task)"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
