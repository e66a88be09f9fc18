"""Sweeper overhead: (a) 100 do-nothing trials, this sweeper vs Hydra's basic sweeper; (b) engine time per suggestion.

(a) Real multiruns of benchmarks/apps/objective.py (problem=zero: returns 0.0), basic launcher:
      sigopt  hydra/sweeper=sigopt hydra.sweeper.dev_run=true (random suggestions) observation_budget=100
      basic   hydra/sweeper=basic with the same kind of 100 override sets: x1=v1,v2,...,v100
    Wall time of each whole process, interleaved, median of 3 repeats. Target: sigopt / basic <= 1.25.
    Each contender is also profiled once (cProfile, not timed; full mode, or quick mode when the
    target fails): a breakdown of where each process spends its time is printed.
(b) The lite engine's time per suggestion after 10, 50, 100 and 200 observations on a 2-D (branin)
    and a 6-D (hartmann6) problem, compute_mode default and kde_only, by driving
    hydra_sigopt.backends.create_backend("lite") directly; the part spent copying the engine for
    the constant liar (LiteBackend.suggest deep-copies the driver) is shown apart.

    python benchmarks/overhead.py           # full
    python benchmarks/overhead.py --quick   # CI smoke: 1 repeat, 100 trials; (b) up to 50 observations
"""

from __future__ import annotations

import copy
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(common.APPS))
import problems

NAME = "overhead"
N_TRIALS = 100


# ------------------------------------------------------------------ (a) sweeper vs basic sweeper


def sigopt_overrides(seed: int) -> list[str]:
    return [
        "problem=zero",
        "log_trials=false",
        "hydra/sweeper=sigopt",
        "+space=zero",
        "hydra.sweeper.dev_run=true",
        f"hydra.sweeper.observation_budget={N_TRIALS}",
        f"hydra.sweeper.seed={seed}",
    ]


def basic_overrides(seed: int) -> list[str]:
    rng = random.Random(seed)
    values = ",".join(repr(round(rng.random(), 12)) for _ in range(N_TRIALS))
    return ["problem=zero", "log_trials=false", "hydra/sweeper=basic", f"x1={values}"]


def count_jobs(sweep_dir: Path) -> int:
    return sum(1 for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def part_a(out: Path, repeats: int, quick: bool) -> dict[str, Any]:
    walls: dict[str, list[float]] = {"sigopt": [], "basic": []}
    for r in range(repeats):
        for contender in ("basic", "sigopt"):  # interleaved, one at a time: timing, not throughput
            overrides = sigopt_overrides(r) if contender == "sigopt" else basic_overrides(r)
            run = common.run_app(f"{contender}#{r}", out / "runs" / f"{contender}_{r}", overrides).check()
            jobs = count_jobs(run.sweep_dir)
            if jobs != N_TRIALS:
                raise RuntimeError(f"{run.label}: {jobs} job dirs, expected {N_TRIALS}")
            walls[contender].append(run.wall_s or 0.0)
            print(f"  (a) {run.label}: {run.wall_s:.2f} s", flush=True)
    sig, bas = common.median(walls["sigopt"]), common.median(walls["basic"])
    ratio = sig / bas
    doc: dict[str, Any] = {
        "walls": walls,
        "median_sigopt_s": sig,
        "median_basic_s": bas,
        "ratio": ratio,
        "per_trial_overhead_ms": (sig - bas) / N_TRIALS * 1000,
        "pass": ratio <= 1.25,
    }
    # Profiled runs (cProfile, not part of the timing): where each process spends its time.
    # Full mode profiles both; quick mode only the sweeper, and only when the target fails.
    to_profile = ["sigopt", "basic"] if not quick else (["sigopt"] if not doc["pass"] else [])
    doc["profiles"] = {}
    for contender in to_profile:
        prof = out / f"{contender}_profile.prof"
        overrides = sigopt_overrides(99) if contender == "sigopt" else basic_overrides(99)
        run = common.run_app(
            f"{contender} (cProfile)",
            out / "runs" / f"{contender}_profiled",
            overrides,
            python_args=["-m", "cProfile", "-o", str(prof)],
        ).check()
        print(f"  (a) {run.label}: {run.wall_s:.2f} s (profiled, not timed)", flush=True)
        doc["profiles"][contender] = {
            "file": str(prof),
            "wall_s": run.wall_s,
            "breakdown": breakdown(prof, PROFILE_ITEMS[contender]),
            "top_cumulative": top_costs(prof, "cumulative", 30),
            "top_self": top_costs(prof, "tottime", 20),
        }
    return doc


# (label, file suffix, function): cumulative time of these functions in each profiled process.
PROFILE_ITEMS = {
    "sigopt": [
        ("whole process", "objective.py", "<module>"),
        ("  sweeper (SigOptSweeperImpl.sweep)", "hydra_sigopt/hydra_sweeper.py", "sweep"),
        ("    running the jobs (BasicLauncher.launch)", "core_plugins/basic_launcher.py", "launch"),
        ("      of which composing job configs", "config_loader_impl.py", "load_sweep_config"),
        ("    engine suggest (LiteBackend.suggest)", "hydra_sigopt/backends/lite.py", "suggest"),
        ("    engine observe (LiteBackend.observe)", "hydra_sigopt/backends/lite.py", "observe"),
        ("    journal: add_trial", "hydra_sigopt/journal.py", "add_trial"),
        ("    journal: mark_running", "hydra_sigopt/journal.py", "mark_running"),
        ("    journal: record_result", "hydra_sigopt/journal.py", "record_result"),
        ("    journal: mark_observed", "hydra_sigopt/journal.py", "mark_observed"),
        ("    reports (write_reports)", "hydra_sigopt/reports.py", "write_reports"),
    ],
    "basic": [
        ("whole process", "objective.py", "<module>"),
        ("  sweeper (BasicSweeper.sweep)", "core_plugins/basic_sweeper.py", "sweep"),
        ("    running the jobs (BasicLauncher.launch)", "core_plugins/basic_launcher.py", "launch"),
        (
            "    validate_batch_is_legal (composes every job's config once more)",
            "plugins/sweeper.py",
            "validate_batch_is_legal",
        ),
        ("    of both: composing job configs", "config_loader_impl.py", "load_sweep_config"),
    ],
}


def breakdown(prof: Path, items: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    stats = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    out = []
    for label, suffix, name in items:
        matches = [(v[1], v[3]) for (f, _line, fn), v in stats.items() if f.endswith(suffix) and fn == name]
        out.append({"item": label, "calls": sum(m[0] for m in matches), "cumtime_s": sum(m[1] for m in matches)})
    return out


def top_costs(prof: Path, key: str, n: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(str(prof))
    rows = []
    for func, (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{func[0]}:{func[1]}({func[2]})", "calls": nc, "tottime_s": tt, "cumtime_s": ct})
    sort = "cumtime_s" if key == "cumulative" else "tottime_s"
    rows.sort(key=lambda r: r[sort], reverse=True)
    root = str(common.ROOT)
    for r in rows:
        r["function"] = r["function"].replace(root + "/", "").replace(str(Path(sys.prefix)) + "/", "")
    return rows[:n]


# ------------------------------------------------------------------ (b) engine time per suggestion


def definition(dim: int, budget: int) -> Any:
    from hydra_sigopt.experiment import ExperimentDefinition
    from hydra_sigopt.metrics import parse_metrics
    from hydra_sigopt.space import build_space

    params = {f"x{i}": "interval(0.0, 1.0)" for i in range(1, dim + 1)}
    metrics = parse_metrics([{"name": "value", "objective": "minimize"}])
    return ExperimentDefinition(f"engine-{dim}d", build_space(params), metrics, budget, 1)


def objective(dim: int, a: dict[str, float]) -> float:
    if dim == 2:  # branin on the unit square
        return problems.branin(-5 + 15 * a["x1"], 15 * a["x2"])
    return problems.hartmann6(*(a[f"x{i}"] for i in range(1, 7)))


def time_suggestions(dim: int, mode: str, n_obs: int, repeats: int, budget: int) -> dict[str, Any]:
    from hydra_sigopt.backends import PastObservation, create_backend
    from hydra_sigopt.metrics import MetricValue

    backend: Any = create_backend("lite", compute_mode=mode, seed=n_obs)
    backend.start(definition(dim, budget))
    rng = random.Random(1000 * dim + n_obs)
    past = []
    for _ in range(n_obs):
        a = {f"x{i}": rng.random() for i in range(1, dim + 1)}
        past.append(PastObservation(a, (MetricValue("value", objective(dim, a)),)))
    t0 = time.perf_counter()
    backend.restore(past)
    restore_s = time.perf_counter() - t0
    suggest, copies = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        copy.deepcopy(backend._driver)  # what LiteBackend.suggest copies first
        copies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        backend.suggest([])
        suggest.append(time.perf_counter() - t0)
    backend.close()
    return {
        "dim": dim,
        "mode": mode,
        "observations": n_obs,
        "suggest_s": suggest,
        "median_s": common.median(suggest),
        "min_s": min(suggest),
        "max_s": max(suggest),
        "deepcopy_median_s": common.median(copies),
        "restore_s_per_observation": restore_s / max(n_obs, 1),
    }


def part_b(quick: bool) -> list[dict[str, Any]]:
    counts = (10, 50) if quick else (10, 50, 100, 200)
    repeats = 2 if quick else 5
    rows = []
    for dim in (2, 6):
        for mode in ("default", "kde_only"):
            for n in counts:
                r = time_suggestions(dim, mode, n, repeats, budget=300)
                print(
                    f"  (b) {dim}-D {mode:8s} {n:4d} observations: median {r['median_s'] * 1000:.0f} ms "
                    f"(min {r['min_s'] * 1000:.0f}, max {r['max_s'] * 1000:.0f})",
                    flush=True,
                )
                rows.append(r)
    return rows


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    out = common.results_dir(NAME)
    facts = common.machine_facts()
    started = time.perf_counter()
    repeats = 1 if quick else 3
    print(f"{NAME} (a): {N_TRIALS} do-nothing trials, basic launcher, {repeats} repeat(s), interleaved", flush=True)
    a = part_a(out, repeats, quick)
    print(f"{NAME} (b): lite engine time per suggestion", flush=True)
    b = part_b(quick)
    elapsed = time.perf_counter() - started

    a_headers = ["contender", "wall per repeat (s)", "median wall (s)", "per trial (ms)"]
    a_rows = [
        [
            "Hydra basic sweeper",
            " ".join(f"{w:.2f}" for w in a["walls"]["basic"]),
            a["median_basic_s"],
            a["median_basic_s"] / N_TRIALS * 1000,
        ],
        [
            "SigOpt sweeper, dev_run",
            " ".join(f"{w:.2f}" for w in a["walls"]["sigopt"]),
            a["median_sigopt_s"],
            a["median_sigopt_s"] / N_TRIALS * 1000,
        ],
    ]
    a_target = (
        f"Target (a): sigopt/basic wall ratio {a['ratio']:.3f} <= 1.25 -> {common.verdict(a['pass'])} "
        f"(sweeper overhead {a['per_trial_overhead_ms']:+.1f} ms per trial)"
    )
    b_headers = [
        "dims",
        "compute_mode",
        "observations",
        "suggest median (ms)",
        "min (ms)",
        "max (ms)",
        "of which deepcopy (ms)",
    ]
    b_rows = [
        [
            f"{r['dim']}-D",
            r["mode"],
            r["observations"],
            r["median_s"] * 1000,
            r["min_s"] * 1000,
            r["max_s"] * 1000,
            r["deepcopy_median_s"] * 1000,
        ]
        for r in b
    ]
    a_table = common.text_table(a_headers, a_rows)
    b_table = common.text_table(b_headers, b_rows)
    print()
    print(f"(a) {N_TRIALS} do-nothing trials, basic launcher (whole-process wall time, median of {repeats}):")
    print(a_table)
    print(a_target)
    profile_tables = []
    for contender, p in a["profiles"].items():
        total = p["breakdown"][0]["cumtime_s"] or 1.0
        rows = [[r["item"], r["calls"], r["cumtime_s"], f"{100 * r['cumtime_s'] / total:.1f}%"] for r in p["breakdown"]]
        headers = [f"{contender} under cProfile", "calls", "cumulative (s)", "share"]
        profile_tables.append((contender, headers, rows))
        print()
        print(common.text_table(headers, rows))
    if not a["pass"] and "sigopt" in a["profiles"]:
        print("Top cumulative costs of the profiled sigopt run:")
        for r in a["profiles"]["sigopt"]["top_cumulative"][:20]:
            print(f"  {r['cumtime_s']:8.3f} s  {r['calls']:7d} calls  {r['function']}")
    print()
    print("(b) lite engine time per suggestion (no pending trials), seconds as ms:")
    print(b_table)
    print(f"Wall time of this benchmark: {elapsed:.0f} s")

    png = out / f"{NAME}.png"
    plot(a, b, png)
    doc = {"benchmark": NAME, "quick": quick, "machine": facts, "a": a, "b": b, "wall_s": elapsed}
    common.write_json(out / f"{NAME}.json", doc)
    print(f"Results: {out / (NAME + '.json')}, {png}")
    md = "\n\n".join(
        [
            f"### Overhead\n\n(a) {N_TRIALS} do-nothing trials, basic launcher, "
            f"whole-process wall time (median of {repeats}):",
            common.markdown_table(a_headers, a_rows),
            f"**{a_target}**",
            *[common.markdown_table(h, r) for _c, h, r in profile_tables],
            "(b) lite engine time per suggestion (no pending trials):",
            common.markdown_table(b_headers, b_rows),
            f"Machine: {facts['nproc']} x {facts['cpu_model']}, Python {facts['python']}.",
        ]
    )
    common.publish(NAME, png, md, quick)
    return 1 if (args.strict and not a["pass"]) else 0


def plot(a: dict[str, Any], b: list[dict[str, Any]], png: Path) -> None:
    plt = common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["Hydra basic sweeper", "SigOpt sweeper\n(dev_run)"]
    ax1.bar(names, [a["median_basic_s"], a["median_sigopt_s"]], color=["tab:gray", "tab:blue"])
    for i, key in enumerate(("basic", "sigopt")):
        ax1.scatter([i] * len(a["walls"][key]), a["walls"][key], color="black", zorder=3, s=12)
    ax1.set_ylabel("wall time (s)")
    ax1.set_title(f"{N_TRIALS} do-nothing trials (ratio {a['ratio']:.2f})")
    for (dim, mode), style in zip(
        ((2, "default"), (2, "kde_only"), (6, "default"), (6, "kde_only")), ("-o", "--o", "-s", "--s")
    ):
        rs = [r for r in b if r["dim"] == dim and r["mode"] == mode]
        ax2.plot([r["observations"] for r in rs], [r["median_s"] for r in rs], style, label=f"{dim}-D {mode}")
    ax2.set_xlabel("observations")
    ax2.set_ylabel("time per suggestion (s, median)")
    ax2.set_yscale("log")
    ax2.set_title("lite engine: time per suggestion")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
