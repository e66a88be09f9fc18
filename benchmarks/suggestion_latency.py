"""Suggestion latency: how long a free slot waits for the lite engine, by observations, bandwidth and mode.

Drives hydra_sigopt.backends.create_backend("lite") directly (no Hydra, no trials) on a 2-D problem
(branin on the unit square; --dims 6: hartmann6). For each cell (observations n, bandwidth b,
compute_mode m) the engine is given n observations of random points and b - 1 running trials, then:

  first   the first suggestion, with the b - 1 running trials pending (placeholders)
  refill  a trial ends and its slot is refilled by the asynchronous scheduler: its result is
          observed and a suggestion asked with the other b - 1 trials still running, none of them
          pending (they were suggested on earlier results: the scheduler's rule); median over the
          repeats (--repeats)
  batch   the same engine asked with all b - 1 running trials pending: the last suggestion of a
          synchronous batch of b (scheduler: batch), and the most an asynchronous refill can see
          when b - 1 slots free during one computation

(In the GP phase a suggestion with trials pending copies the engine, adds them as placeholders and
fits the GP's hyperparameters again. One with nothing pending reuses the last fit past 50 results
until they grow by a tenth: the first suggestion of a cell fits, its refills mostly do not.)

and, per bandwidth, "fill": the first b suggestions of a new sweep (no observations yet), the
wait before every slot of the sweep is busy.

Cells run cheapest first within a time budget; a cell is skipped when a cheaper cell of the same
mode (fewer or as many observations and bandwidth) took longer than --cell-cap-s, or when the budget
is spent. Skipped cells are reported as "not measured", never estimated.

    python benchmarks/suggestion_latency.py           # full grid: 10..500 obs x bandwidth 1..256 x 2 modes
    python benchmarks/suggestion_latency.py --quick   # CI smoke: 10 and 50 obs x bandwidth 1 and 4, under 2 minutes
    python benchmarks/suggestion_latency.py --profile --dims 6 --observations 50 --bandwidths 4
                                                      # where one cell's time goes, by phase
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(common.APPS))
import problems

NAME = "suggestion_latency"
MODES = ("default", "kde_only")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dims", type=int, choices=(2, 6), default=2, help="2: branin, 6: hartmann6")
    parser.add_argument("--repeats", type=int, default=None, help="refills per cell (default 3; quick 1)")
    parser.add_argument("--budget-min", type=float, default=None, help="stop starting cells after this (default 40)")
    parser.add_argument("--cell-cap-s", type=float, default=120.0, help="skip cells beyond one that took longer")
    parser.add_argument("--observations", type=int, nargs="*", default=None, help="observation counts to measure")
    parser.add_argument("--bandwidths", type=int, nargs="*", default=None, help="bandwidths to measure")
    parser.add_argument("--modes", nargs="*", choices=MODES, default=None, help="compute modes to measure")
    parser.add_argument(
        "--refit-always",
        action="store_true",
        help="refit the GP's hyperparameters at every suggestion (the engine before it kept its fit past 50 results)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the grid: where one cell's time goes, under cProfile (first --observations and --bandwidths)",
    )


# ------------------------------------------------------------------ the engine, driven directly

_AFO = "libsigopt.compute.acquisition_function_optimization"
#: Where a suggestion's time goes: the functions of sigoptlite, libsigopt and the copy route whose
#: cumulative time the profile reports (each includes what it calls), by "module:qualified name".
PHASES = (
    ("hyperparameter fit", "sigoptlite.sources:GPSource.update_hyperparameters"),
    ("engine copy for the constant liar (copy route)", "copy:deepcopy"),
    (
        "acquisition optimisation, whole",
        "libsigopt.compute.acquisition_function_optimization:vectorized_acquisition_optimization",
    ),
    ("  of it: evolution strategy, 500 starts", "libsigopt.compute.vectorized_optimizers:DEOptimizer._optimize"),
    ("  of it: gradient ascent (Adam), 200 starts", "libsigopt.compute.vectorized_optimizers:AdamOptimizer._optimize"),
    ("  of it: GP posterior at candidate points", "libsigopt.compute.predictor:HasPredictor.compute_core_components"),
)


def definition(dim: int) -> Any:
    from hydra_sigopt.experiment import ExperimentDefinition
    from hydra_sigopt.metrics import parse_metrics
    from hydra_sigopt.space import build_space

    params = {f"x{i}": "interval(0.0, 1.0)" for i in range(1, dim + 1)}
    metrics = parse_metrics([{"name": "value", "objective": "minimize"}])
    return ExperimentDefinition(f"latency-{dim}d", build_space(params), metrics, 10_000, 1)


def objective(dim: int, a: dict[str, Any]) -> float:
    if dim == 2:  # branin on the unit square
        return problems.branin(-5 + 15 * a["x1"], 15 * a["x2"])
    return problems.hartmann6(*(a[f"x{i}"] for i in range(1, 7)))


def random_point(rng: random.Random, dim: int) -> dict[str, float]:
    return {f"x{i}": rng.random() for i in range(1, dim + 1)}


def engine(dim: int, mode: str, n_obs: int, rng: random.Random) -> Any:
    """A lite backend that has observed ``n_obs`` random points."""
    from hydra_sigopt.backends import PastObservation, create_backend
    from hydra_sigopt.metrics import MetricValue

    backend: Any = create_backend("lite", compute_mode=mode, seed=n_obs)
    backend.start(definition(dim))
    past = []
    for _ in range(n_obs):
        a = random_point(rng, dim)
        past.append(PastObservation(a, (MetricValue("value", objective(dim, a)),)))
    backend.restore(past)
    return backend


def measure_cell(dim: int, mode: str, n_obs: int, bandwidth: int, repeats: int) -> dict[str, Any]:
    """The first suggestion and ``repeats`` refills with ``bandwidth - 1`` trials running."""
    from hydra_sigopt.backends import Suggestion
    from hydra_sigopt.metrics import MetricValue

    rng = random.Random(1000 * dim + n_obs + 7 * bandwidth)
    backend = engine(dim, mode, n_obs, rng)
    running = [Suggestion(f"running-{i}", random_point(rng, dim)) for i in range(bandwidth - 1)]
    started = time.perf_counter()
    suggestion = backend.suggest([s.assignments for s in running])
    first_s = time.perf_counter() - started
    running.append(suggestion)
    refills, batches = [], []
    for _ in range(repeats):
        ended = running.pop(0)  # the oldest trial ends: its slot is refilled
        started = time.perf_counter()
        backend.observe(ended, [MetricValue("value", objective(dim, dict(ended.assignments)))])
        refill = backend.suggest([])
        refills.append(time.perf_counter() - started)
        started = time.perf_counter()
        backend.suggest([s.assignments for s in running])
        batches.append(time.perf_counter() - started)
        running.append(refill)
    backend.close()
    return {
        "mode": mode,
        "observations": n_obs,
        "bandwidth": bandwidth,
        "first_s": first_s,
        "refill_s": refills,
        "refill_median_s": common.median(refills) if refills else None,
        "batch_s": batches,
        "batch_median_s": common.median(batches) if batches else None,
    }


def profile_cell(dim: int, n_obs: int, bandwidth: int, repeats: int) -> dict[str, Any]:
    """The first suggestion and ``repeats`` refills of one default-mode cell, under cProfile: the
    seconds of each phase of PHASES, apart for the first suggestion (with the fit) and the refills."""
    import cProfile

    from hydra_sigopt.backends import Suggestion
    from hydra_sigopt.metrics import MetricValue

    rng = random.Random(1000 * dim + n_obs + 7 * bandwidth)
    backend = engine(dim, "default", n_obs, rng)
    running = [Suggestion(f"running-{i}", random_point(rng, dim)) for i in range(bandwidth - 1)]
    first, refills = cProfile.Profile(), cProfile.Profile()
    started = time.perf_counter()
    running.append(first.runcall(backend.suggest, [s.assignments for s in running]))
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(repeats):
        ended = running.pop(0)
        values = [MetricValue("value", objective(dim, dict(ended.assignments)))]
        refills.runcall(backend.observe, ended, values)
        running.append(refills.runcall(backend.suggest, [s.assignments for s in running]))
    refill_s = (time.perf_counter() - started) / repeats
    backend.close()
    return {
        "observations": n_obs,
        "bandwidth": bandwidth,
        "first_s": first_s,
        "refill_s": refill_s,
        "first": phase_seconds(first, 1),
        "refill": phase_seconds(refills, repeats),
    }


def phase_seconds(profile: Any, calls: int) -> dict[str, float]:
    """Cumulative seconds per call of each phase of PHASES in ``profile``."""
    import importlib
    import inspect
    import pstats

    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    by_code = {(Path(file).resolve(), line): cumulative for (file, line, _), (_, _, _, cumulative, _) in stats.items()}
    out = {}
    for label, where in PHASES:
        module_name, qualified = where.split(":")
        target: Any = importlib.import_module(module_name)
        for part in qualified.split("."):
            target = getattr(target, part)
        key = (Path(inspect.getsourcefile(target) or "").resolve(), inspect.getsourcelines(target)[1])
        out[label] = by_code.get(key, 0.0) / calls
    return out


def profile_text(cell: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "phase",
        f"first suggestion ({seconds(cell['first_s'])})",
        f"refill, b - 1 pending ({seconds(cell['refill_s'])})",
    ]
    rows = [[label, seconds(cell["first"][label]), seconds(cell["refill"][label])] for label, _ in PHASES]
    return headers, rows


def measure_fill(dim: int, mode: str, bandwidth: int) -> dict[str, Any]:
    """The first ``bandwidth`` suggestions of a new sweep, each aware of the ones before it."""
    backend = engine(dim, mode, 0, random.Random(bandwidth))
    pending: list[dict[str, Any]] = []
    started = time.perf_counter()
    for _ in range(bandwidth):
        pending.append(dict(backend.suggest(pending).assignments))
    fill_s = time.perf_counter() - started
    backend.close()
    return {"mode": mode, "bandwidth": bandwidth, "fill_s": fill_s}


# ------------------------------------------------------------------ the grid, cheapest first


class Schedule:
    """Which cells still fit: the time budget, and no cell beyond a cheaper one that took too long."""

    def __init__(self, budget_s: float, cell_cap_s: float) -> None:
        self.started = time.perf_counter()
        self.budget_s = budget_s
        self.cell_cap_s = cell_cap_s
        self.too_slow: list[tuple[str, int, int, float]] = []  # (mode, observations, bandwidth, seconds)

    def why_not(self, mode: str, n_obs: int, bandwidth: int) -> str | None:
        if time.perf_counter() - self.started > self.budget_s:
            return "time budget spent"
        for m, n, b, s in self.too_slow:
            if m == mode and n <= n_obs and b <= bandwidth:
                return f"the cell {n} obs x bandwidth {b} took {s:.0f} s (cap {self.cell_cap_s:.0f} s)"
        return None

    def took(self, mode: str, n_obs: int, bandwidth: int, seconds: float) -> None:
        if seconds > self.cell_cap_s:
            self.too_slow.append((mode, n_obs, bandwidth, seconds))


def run_grid(
    dim: int, modes: list[str], counts: list[int], bandwidths: list[int], repeats: int, schedule: Schedule
) -> list[dict[str, Any]]:
    cells = []
    for mode in modes:
        for n_obs in counts:
            for bandwidth in bandwidths:
                reason = schedule.why_not(mode, n_obs, bandwidth)
                if reason is not None:
                    cells.append({"mode": mode, "observations": n_obs, "bandwidth": bandwidth, "not_measured": reason})
                    print(f"  {mode:8s} {n_obs:4d} obs, bandwidth {bandwidth:3d}: not measured ({reason})", flush=True)
                    continue
                started = time.perf_counter()
                cell = measure_cell(dim, mode, n_obs, bandwidth, repeats)
                cell["cell_s"] = time.perf_counter() - started
                schedule.took(mode, n_obs, bandwidth, cell["cell_s"])
                cells.append(cell)
                print(
                    f"  {mode:8s} {n_obs:4d} obs, bandwidth {bandwidth:3d}: first {cell['first_s']:.2f} s, "
                    f"refill median {seconds(cell['refill_median_s'])}",
                    flush=True,
                )
    return cells


def run_fills(dim: int, bandwidths: list[int], schedule: Schedule) -> list[dict[str, Any]]:
    """Start-of-sweep fills (random phase: the same engine path in both modes, so default mode only)."""
    fills = []
    for bandwidth in bandwidths:
        reason = schedule.why_not("fill", 0, bandwidth)
        if reason is not None:
            fills.append({"mode": "default", "bandwidth": bandwidth, "not_measured": reason})
            print(f"  fill, bandwidth {bandwidth:3d}: not measured ({reason})", flush=True)
            continue
        fill = measure_fill(dim, "default", bandwidth)
        schedule.took("fill", 0, bandwidth, fill["fill_s"])
        fills.append(fill)
        print(f"  fill, bandwidth {bandwidth:3d}: {fill['fill_s']:.2f} s", flush=True)
    return fills


# ------------------------------------------------------------------ report


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None or "not_measured" in cell:
        return "not measured"
    if cell["bandwidth"] == 1:  # nothing else runs: a batch of one is the refill
        return f"{seconds(cell['refill_median_s'])} (first {seconds(cell['first_s'])})"
    return f"{seconds(cell['refill_median_s'])}, batch {seconds(cell['batch_median_s'])}"


def seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"


def find(cells: list[dict[str, Any]], mode: str, n_obs: int, bandwidth: int) -> dict[str, Any] | None:
    return next(
        (c for c in cells if c["mode"] == mode and c["observations"] == n_obs and c["bandwidth"] == bandwidth), None
    )


def measured(cell: dict[str, Any] | None) -> bool:
    return cell is not None and "not_measured" not in cell


def targets(cells: list[dict[str, Any]], fills: list[dict[str, Any]]) -> list[str]:
    """The issue's latency targets that this run measured; the others said to be unmeasured."""
    lines = []
    cell = find(cells, "default", 200, 64)
    if measured(cell):
        assert cell is not None
        ok = cell["refill_median_s"] < 1.0
        refill, batch = cell["refill_median_s"], cell["batch_median_s"]
        lines.append(
            f"refill at 200 obs, bandwidth 64, default: {refill:.2f} s < 1 s -> {common.verdict(ok)} "
            f"(with the 63 others pending, the last of a batch: {batch:.2f} s)"
        )
    else:
        lines.append("refill at 200 obs, bandwidth 64, default (< 1 s): not measured")
    low, high = find(cells, "kde_only", 50, 1), find(cells, "kde_only", 500, 1)
    if measured(low) and measured(high):
        assert low is not None and high is not None
        ratio = high["refill_median_s"] / low["refill_median_s"]
        ok = ratio <= 2
        lines.append(f"kde_only refill 500 obs / 50 obs (bandwidth 1): {ratio:.2f} <= 2 -> {common.verdict(ok)}")
    else:
        lines.append("kde_only flat within 2x from 50 to 500 obs: not measured")
    fill = next((f for f in fills if f["bandwidth"] == 256 and "fill_s" in f), None)
    if fill is not None:
        ok = fill["fill_s"] < 30
        lines.append(f"first 256 suggestions at bandwidth 256: {fill['fill_s']:.1f} s < 30 s -> {common.verdict(ok)}")
    else:
        lines.append("first 256 suggestions at bandwidth 256 (< 30 s): not measured")
    return lines


def grid_tables(cells: list[dict[str, Any]], modes: list[str], counts: list[int], bandwidths: list[int]) -> list[Any]:
    headers = ["observations", *[f"bandwidth {b}" for b in bandwidths]]
    tables = []
    for mode in modes:
        rows = [[n, *[cell_text(find(cells, mode, n, b)) for b in bandwidths]] for n in counts]
        tables.append((mode, headers, rows))
    return tables


def plot(cells: list[dict[str, Any]], modes: list[str], bandwidths: list[int], png: Path) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes.flat, modes):
        for bandwidth in bandwidths:
            points = [c for c in cells if c["mode"] == mode and c["bandwidth"] == bandwidth and measured(c)]
            if points:
                xs = [c["observations"] for c in points]
                ax.plot(xs, [c["refill_median_s"] for c in points], "-o", label=f"bandwidth {bandwidth}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("observations")
        ax.set_ylabel("refill: observe + suggest (s, median)")
        ax.set_title(f"compute_mode: {mode}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], options)
    quick = args.quick
    counts = args.observations or ([10, 50] if quick else [10, 50, 100, 200, 500])
    bandwidths = args.bandwidths or ([1, 4] if quick else [1, 4, 16, 64, 256])
    modes = args.modes or list(MODES)
    repeats = args.repeats or (1 if quick else 3)
    budget_s = 60 * (args.budget_min or (1.5 if quick else 40))
    out = common.results_dir(NAME)
    facts = common.machine_facts()
    schedule = Schedule(budget_s, args.cell_cap_s)
    if args.refit_always:
        from hydra_sigopt.backends import lite

        lite.FIT_EVERY_SUGGESTION_UNTIL = sys.maxsize
    if args.profile:
        return profile_main(args.dims, counts[0], bandwidths[0], repeats, facts)
    print(f"{NAME}: {args.dims}-D, modes {modes}, observations {counts}, bandwidths {bandwidths}", flush=True)
    cells = run_grid(args.dims, modes, counts, bandwidths, repeats, schedule)
    fills = run_fills(args.dims, bandwidths, schedule)
    elapsed = time.perf_counter() - schedule.started

    setup = (
        f"{args.dims}-D ({'branin' if args.dims == 2 else 'hartmann6'}), lite engine driven directly; cell = "
        f"asynchronous refill, median over {repeats} (observe one result + suggest with bandwidth - 1 trials "
        "running, none pending), then `batch`: the same with the bandwidth - 1 running trials pending (the last "
        f"suggestion of a synchronous batch); bandwidth 1: the first suggestion in brackets; "
        f"{facts['nproc']} x {facts['cpu_model']}"
    )
    tables = grid_tables(cells, modes, counts, bandwidths)
    fill_rows = [[f["bandwidth"], seconds(f["fill_s"]) if "fill_s" in f else "not measured"] for f in fills]
    target_lines = targets(cells, fills)
    print()
    print(setup)
    for mode, headers, rows in tables:
        print(f"\ncompute_mode: {mode}")
        print(common.text_table(headers, rows))
    print("\nFirst `bandwidth` suggestions of a new sweep (no observations):")
    print(common.text_table(["bandwidth", "fill"], fill_rows))
    print()
    for line in target_lines:
        print("Target: " + line)
    print(f"Wall time of this benchmark: {elapsed:.0f} s")

    png = out / f"{NAME}.png"
    plot(cells, modes, bandwidths, png)
    doc = {
        "benchmark": NAME,
        "quick": quick,
        "machine": facts,
        "settings": {"dims": args.dims, "observations": counts, "bandwidths": bandwidths, "modes": modes},
        "cells": cells,
        "fills": fills,
        "targets": target_lines,
        "wall_s": elapsed,
    }
    common.write_json(out / f"{NAME}.json", doc)
    print(f"Results: {out / (NAME + '.json')}, {png}")
    md = "\n\n".join(
        [
            f"### Suggestion latency\n\n{setup}.",
            *[f"compute_mode: {mode}\n\n" + common.markdown_table(h, r) for mode, h, r in tables],
            "First `bandwidth` suggestions of a new sweep:\n\n"
            + common.markdown_table(["bandwidth", "fill"], fill_rows),
            *[f"**Target: {line}**" for line in target_lines],
            f"Machine: {facts['nproc']} x {facts['cpu_model']}, Python {facts['python']}; "
            f"benchmark wall time {elapsed / 60:.1f} min.",
        ]
    )
    common.publish(f"{NAME}_refit_always" if args.refit_always else NAME, png, md, quick)
    strict_fail = any("FAIL" in line for line in target_lines)
    return 1 if (args.strict and strict_fail) else 0


def profile_main(dim: int, n_obs: int, bandwidth: int, repeats: int, facts: dict[str, Any]) -> int:
    """Print where one cell's time goes (the engine's default mode, under cProfile: slower than timed)."""
    print(f"{NAME} --profile: {dim}-D, {n_obs} observations, bandwidth {bandwidth}, {repeats} refills", flush=True)
    cell = profile_cell(dim, n_obs, bandwidth, repeats)
    headers, rows = profile_text(cell)
    print(common.text_table(headers, rows))
    print(f"(seconds per suggestion under cProfile; {facts['nproc']} x {facts['cpu_model']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
