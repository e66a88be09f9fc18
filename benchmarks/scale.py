"""Scale: 300 trials, 8 parallel submitit_local jobs: the sweeper's peak memory and per-trial bookkeeping.

One real multirun of benchmarks/apps/objective.py (problem=zero, a do-nothing task), random
suggestions (dev_run=true), parallel_bandwidth=8, hydra/launcher=submitit_local (async scheduler),
run in-process by scale_driver.py with timers around the sweep loop's steps.

* Peak RSS: VmHWM of the sweeper process itself (polled from /proc/<pid>/status, children excluded).
* Bookkeeping per trial = its finishing work (Results.record: journal, parse; Results.observe:
  posting the observation) + starting it (Sweep._start_trial: journal, submit) + its share of the
  warm-job top-ups after it (the scheduler's KeepWarm command, which starts no trial). Getting the
  suggestion (the engine's work, prefetched in a thread for the async scheduler) is not counted.
  Submission (submitit pickles a trial's or a warm job's function and spawns its process; handing
  a trial to a warm job is a file write) is part of it and also shown apart.

Targets: peak RSS < 300 MB; median bookkeeping over trials 290-300 <= 1.5 x over trials 5-15.

    python benchmarks/scale.py           # full: 300 trials
    python benchmarks/scale.py --quick   # CI smoke: 40 trials (late window: the last 10 trials)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import common

NAME = "scale"
BANDWIDTH = 8


def per_trial(records: dict[str, Any], n_trials: int) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = {n: {} for n in range(n_trials)}
    for f in records["finish"]:
        row = rows[f["trial"]]
        row["finish"] = f["t"]
        row["observe"] = f.get("observe", 0.0)
    # A warm-job top-up starts no trial but does work for the trials just started: its time goes to
    # the trials of the fill before it.
    last: list[int] = []
    for f in records["fill"]:
        started = f["trials"] or last
        last = started
        for n in started:
            row = rows[n]
            share = len(started)
            row["fill"] = row.get("fill", 0.0) + f["t"] / share
            row["submit"] = row.get("submit", 0.0) + f.get("submit", 0.0) / share
    for row in rows.values():
        row["bookkeeping"] = row.get("finish", 0.0) + row.get("fill", 0.0)
        row["bookkeeping_excl_submit"] = row["bookkeeping"] - row.get("submit", 0.0)
    return rows


def window_median(rows: dict[int, dict[str, float]], lo: int, hi: int, key: str) -> float:
    return common.median(rows[n][key] for n in range(lo, hi + 1) if n in rows and key in rows[n])


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    n_trials = 40 if quick else 300
    early = (5, 15)
    late = (n_trials - 10, n_trials - 1) if quick else (290, 299)  # trials are numbered from 0
    out = common.results_dir(NAME)
    facts = common.machine_facts()
    started = time.perf_counter()

    timings = out / "driver_timings.json"
    sweep_dir = out / "runs" / "sweep"
    overrides = [
        "problem=zero",
        "log_trials=false",
        "hydra/sweeper=sigopt",
        "+space=zero",
        "hydra.sweeper.dev_run=true",
        f"hydra.sweeper.observation_budget={n_trials}",
        f"hydra.sweeper.parallel_bandwidth={BANDWIDTH}",
        "hydra.sweeper.seed=0",
        *common.SUBMITIT_LOCAL,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    command = [common.PYTHON, str(common.BENCH / "scale_driver.py"), str(timings), "--", *overrides]
    print(f"{NAME}: {n_trials} do-nothing trials, random suggestions, {BANDWIDTH} submitit_local slots", flush=True)
    run = common.run_app("scale", sweep_dir, [], command=command, poll_rss=True).check()
    records = json.loads(timings.read_text())
    rows = per_trial(records, n_trials)
    missing = [n for n, r in rows.items() if "finish" not in r or "fill" not in r]
    if missing:
        raise RuntimeError(f"no timings for trials {missing[:10]}...")

    keys = ("bookkeeping", "bookkeeping_excl_submit", "finish", "observe", "fill", "submit")
    stats = {k: (window_median(rows, *early, k), window_median(rows, *late, k)) for k in keys}
    compute = records["suggest_compute"]
    suggest_early = common.median(c["t"] for c in compute[early[0] : early[1] + 1])
    suggest_late = common.median(c["t"] for c in compute[late[0] : late[1] + 1])
    idle_fills = [f for f in records["fill"] if not f["trials"]]

    # The trend over the steady middle (between the first fill and the draining tail): least squares.
    middle = [n for n in range(early[1] + 1, late[0]) if n in rows]
    slope = None
    if len(middle) >= 10:
        import statistics

        slope = statistics.linear_regression(middle, [rows[n]["bookkeeping"] * 1000 for n in middle]).slope
    ratio = stats["bookkeeping"][1] / stats["bookkeeping"][0]
    peak = run.peak_rss_mb or float("nan")
    mem_ok = peak < 300
    book_ok = ratio <= 1.5
    elapsed = time.perf_counter() - started

    e_label, l_label = f"trials {early[0]}-{early[1]}", f"trials {late[0]}-{late[1]}"
    headers = ["per trial (ms, median)", e_label, l_label, "late / early"]
    labels = {
        "bookkeeping": "bookkeeping (finish + start)",
        "bookkeeping_excl_submit": "  of which not job submission",
        "finish": "  Results.record + observe",
        "observe": "    of which Backend.observe",
        "fill": "  Sweep._start_trial + warm top-up share",
        "submit": "    of which job submission (trial and warm jobs)",
    }
    table_rows: list[list[Any]] = [
        [labels[k], e * 1000, lt * 1000, lt / e if e else None] for k, (e, lt) in stats.items()
    ]
    table_rows.append(
        [
            "engine suggest (prefetch thread, excluded)",
            suggest_early * 1000,
            suggest_late * 1000,
            suggest_late / suggest_early,
        ]
    )
    table = common.text_table(headers, table_rows)
    targets = [
        f"Target: peak RSS of the sweeper process {peak:.1f} MB < 300 MB -> {common.verdict(mem_ok)}",
        f"Target: bookkeeping late/early {ratio:.2f} <= 1.5 -> {common.verdict(book_ok)}",
    ]
    summary = (
        f"{n_trials} trials, {BANDWIDTH} slots, submitit_local, dev_run; sweep wall {run.wall_s:.1f} s "
        f"({n_trials / (run.wall_s or 1):.2f} trials/s); {len(idle_fills)} warm-job top-ups "
        f"(total {sum(f['t'] for f in idle_fills) * 1000:.0f} ms; counted to the trials just before)"
    )
    if slope is not None:
        summary += (
            f"; bookkeeping trend over trials {middle[0]}-{middle[-1]}: {slope * 100:+.2f} ms per 100 trials "
            "(least squares)"
        )
    print()
    print(summary)
    print(table)
    for t in targets:
        print(t)
    print(f"Wall time of this benchmark: {elapsed:.0f} s")

    png = out / f"{NAME}.png"
    plot(rows, compute, run.extra.get("rss_samples", []), peak, n_trials, png)
    doc = {
        "benchmark": NAME,
        "quick": quick,
        "machine": facts,
        "settings": {"trials": n_trials, "parallel_bandwidth": BANDWIDTH, "early": early, "late": late},
        "command": command,
        "sweep_wall_s": run.wall_s,
        "peak_rss_mb": peak,
        "rss_samples": run.extra.get("rss_samples", []),
        "medians_s": {k: {"early": e, "late": lt} for k, (e, lt) in stats.items()},
        "suggest_compute_s": {"early": suggest_early, "late": suggest_late},
        "per_trial": rows,
        "idle_fill_calls": len(idle_fills),
        "bookkeeping_slope_ms_per_trial": slope,
        "targets": {"memory": mem_ok, "bookkeeping": book_ok, "bookkeeping_ratio": ratio, "lines": targets},
        "wall_s": elapsed,
    }
    common.write_json(out / f"{NAME}.json", doc)
    print(f"Results: {out / (NAME + '.json')}, {png}")
    md = "\n\n".join(
        [
            f"### Scale\n\n{summary}.",
            common.markdown_table(headers, table_rows),
            "\n".join(f"**{t}**  " for t in targets),
            f"Machine: {facts['nproc']} x {facts['cpu_model']}, Python {facts['python']}.",
        ]
    )
    common.publish(NAME, png, md, quick)
    return 1 if (args.strict and not (mem_ok and book_ok)) else 0


def plot(
    rows: dict[int, dict[str, float]], compute: list[dict[str, Any]], rss: list[Any], peak: float, n: int, png: Path
) -> None:
    plt = common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    xs = sorted(rows)
    for key, color in (("bookkeeping", "tab:blue"), ("finish", "tab:green"), ("submit", "tab:orange")):
        ax1.plot(xs, [rows[x].get(key, 0.0) * 1000 for x in xs], ".", ms=3, color=color, label=key)
    ax1.plot(
        range(len(compute)),
        [c["t"] * 1000 for c in compute],
        ".",
        ms=3,
        color="tab:red",
        label="engine suggest (excluded)",
    )
    ax1.set_xlabel("trial")
    ax1.set_ylabel("ms")
    ax1.set_yscale("log")
    ax1.set_title("per-trial sweeper time")
    ax1.legend(fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    if rss:
        ax2.plot([s[0] for s in rss], [s[1] for s in rss], color="tab:purple")
    ax2.axhline(peak, ls="--", color="gray", label=f"peak (VmHWM) {peak:.0f} MB")
    ax2.axhline(300, ls=":", color="red", label="target 300 MB")
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("sweeper RSS (MB)")
    ax2.set_title(f"sweeper process memory, {n} trials")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
