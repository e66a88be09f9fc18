"""``hydra-sigopt plot``: the objective per trial with the best so far, and one panel per parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra_sigopt.journal import COMPLETED, FAILED, Trial
from hydra_sigopt.reports import is_feasible, metrics_from_meta


def plot_sweep(meta: Mapping[str, Any], trials: Sequence[Trial], out: Path) -> None:
    """Write a PNG: objective vs trial (failed trials marked), then value vs objective per parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metrics_from_meta(meta)
    metric = next(m for m in metrics if m.strategy == "optimize")
    parameters = meta["identity"]["parameters"]
    panels = 1 + len(parameters)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)

    done = [t for t in trials if t.state == COMPLETED and t.value(metric.name) is not None]
    failed = [t for t in trials if t.state == FAILED]
    ax = flat[0]
    ax.scatter([t.number for t in done], [t.value(metric.name) for t in done], s=18, label="completed")
    best: list[tuple[int, float]] = []
    current: float | None = None
    for t in sorted(trials, key=lambda t: t.number):
        v = t.value(metric.name)
        if v is not None and is_feasible(t, metrics) and (current is None or metric.better(v, current)):
            current = v
        if current is not None:
            best.append((t.number, current))
    if best:
        ax.step([b[0] for b in best], [b[1] for b in best], where="post", color="C1", label="best so far")
    if failed:
        bottom = min((t.value(metric.name) or 0.0 for t in done), default=0.0)
        ax.scatter([t.number for t in failed], [bottom] * len(failed), marker="x", color="C3", label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric.name} ({metric.objective})")
    ax.set_title(f"{meta.get('name')}: {len(done)} completed, {len(failed)} failed")
    ax.legend(fontsize=8)

    for ax, p in zip(flat[1:], parameters):
        name = p["name"]
        points = [(t.assignments[name], t.value(metric.name)) for t in done if t.assignments.get(name) is not None]
        xs: list[float]
        if p["type"] == "categorical":
            labels = [c["name"] for c in p.get("categorical_values", [])]
            xs = [float(labels.index(str(x))) if str(x) in labels else -1.0 for x, _ in points]
            ax.set_xticks(range(len(labels)), labels)
        else:
            xs = [float(x) for x, _ in points]
            if p.get("transformation") == "log":
                ax.set_xscale("log")
        ax.scatter(xs, [y for _, y in points], s=18)
        ax.set_xlabel(name)
        ax.set_ylabel(metric.name)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
