"""``hydra-sigopt plot``: the objective per trial with the best so far, each trial's learning curve
where trials reported (with where early stopping stopped them), and one panel per parameter."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra_sigopt.journal import COMPLETED, FAILED, STOPPED, Trial
from hydra_sigopt.journal_reports import Report
from hydra_sigopt.metrics import Metric
from hydra_sigopt.reports import best_trials, cheaper_tasks, is_feasible, metrics_from_meta


def plot_sweep(
    meta: Mapping[str, Any], trials: Sequence[Trial], out: Path, reports: Sequence[Report] = ()
) -> list[str]:
    """Write a PNG: objective vs trial (failed and stopped trials marked), the learning curves if
    trials reported, then value vs objective per parameter. Returns the panels' titles."""
    import matplotlib

    matplotlib.use("Agg")

    return _plot(meta, trials, out, reports)


def _plot(meta: Mapping[str, Any], trials: Sequence[Trial], out: Path, reports: Sequence[Report]) -> list[str]:
    import matplotlib.pyplot as plt

    metrics = metrics_from_meta(meta)
    optimized = [m for m in metrics if m.strategy == "optimize"]
    metric = optimized[0]
    cheaper = cheaper_tasks(meta)
    parameters = meta["identity"]["parameters"]
    curved = _curves_metric(metric, metrics, reports, meta.get("judged_metric"))
    curves = 1 if curved is not None else 0
    pareto = 1 if len(optimized) == 2 else 0  # the second metric was nowhere to be seen
    panels = 1 + pareto + curves + len(parameters)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)

    groups = _Groups.of(trials, metric, metrics, cheaper)
    _objective_panel(
        flat[0], str(meta.get("name")), metric, groups, _best_so_far(trials, metric, metrics, cheaper), pareto
    )
    if pareto:
        _pareto_panel(flat[1], optimized, groups.within, best_trials(groups.within, metrics))
    if curved is not None:
        _learning_curves(flat[1 + pareto], curved, trials, reports, cheaper)
    empty = None if groups.done else f"no trial completed:\n{_nothing_but(groups)}"
    for ax, p in zip(flat[1 + pareto + curves :], parameters):
        _parameter_panel(ax, p, metric, groups.full, groups.cheap)
        if empty:  # a panel with no point and no word looked like a broken plot
            ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="C3")
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return [ax.get_title() or ax.get_xlabel() for ax in flat[:panels]]


def empty_parameters_note(meta: Mapping[str, Any], trials: Sequence[Trial]) -> str | None:
    """Why the parameter panels are empty (no trial completed with a value), in a few words; None
    when they are not."""
    metric = next(m for m in metrics_from_meta(meta) if m.strategy == "optimize")
    groups = _Groups.of(trials, metric, metrics_from_meta(meta), cheaper_tasks(meta))
    if groups.done:
        return None
    counts = [f"{len(groups.stopped)} stopped early"] if groups.stopped else []
    counts += [f"{len(groups.failed)} failed"] if groups.failed else []
    return f"no trial completed: {_nothing_but(groups)}, {', '.join(counts)}"


def _nothing_but(groups: _Groups) -> str:
    kinds = ["the trials stopped early"] if groups.stopped else []
    kinds += ["the failures"] if groups.failed else []
    return f"nothing to plot but {' and '.join(kinds)}" if kinds else "nothing to plot"


@dataclass(frozen=True)
class _Groups:
    """The trials as the objective panel tells them apart, by the optimized ``metric``."""

    done: list[Trial]  # completed with a value
    full: list[Trial]  # of those, the full task's
    within: list[Trial]  # of those, within every constraint
    cheap: list[Trial]  # completed on a cheaper task (multitask): partial trainings, never the best
    stopped: list[Trial]  # stopped early
    failed: list[Trial]

    @classmethod
    def of(cls, trials: Sequence[Trial], metric: Metric, metrics: Sequence[Metric], cheaper: Iterable[str]) -> _Groups:
        cheaper = set(cheaper)
        done = [t for t in trials if t.state == COMPLETED and t.value(metric.name) is not None]
        full = [t for t in done if t.task not in cheaper]
        return cls(
            done=done,
            full=full,
            within=[t for t in full if is_feasible(t, metrics)],
            cheap=[t for t in done if t.task in cheaper],
            stopped=[t for t in trials if t.state == STOPPED],
            failed=[t for t in trials if t.state == FAILED],
        )


def _objective_panel(
    ax: Any, name: str, metric: Metric, groups: _Groups, best: list[tuple[int, float]], pareto: int
) -> None:
    """The optimized metric per trial, each kind of trial drawn apart, and the best so far."""
    from matplotlib.ticker import MaxNLocator

    value = metric.name
    ax.scatter([t.number for t in groups.within], [t.value(value) for t in groups.within], s=18, label="completed")
    outside = [t for t in groups.full if t not in groups.within]
    if outside:  # drawn as the others, they looked like candidates for the best
        style = {"facecolors": "none", "edgecolors": "C0", "label": "completed, outside a constraint"}
        ax.scatter([t.number for t in outside], [t.value(value) for t in outside], s=18, **style)
    if groups.cheap:
        style = {"marker": "s", "color": "C2", "label": "completed, cheaper task"}
        ax.scatter([t.number for t in groups.cheap], [t.value(value) for t in groups.cheap], s=18, **style)
    valued = [t for t in groups.stopped if t.value(value) is not None]
    if valued:
        style = {"marker": "v", "color": "C7", "label": "stopped early (last report)"}
        ax.scatter([t.number for t in valued], [t.value(value) for t in valued], s=18, **style)
    if best:
        label = f"best {value} so far" if pareto else "best so far"  # with two metrics, one of them
        ax.step([b[0] for b in best], [b[1] for b in best], where="post", color="C1", label=_shown(label))
    if groups.failed:
        numbers = [t.number for t in groups.failed]
        _on_worse_edge(ax, metric, numbers, marker="x", color="C3", label="failed (no value)")
    unvalued = [t.number for t in groups.stopped if t.value(value) is None]
    if unvalued:  # stopped before reporting this metric (the rule judges another one)
        _on_worse_edge(ax, metric, unvalued, marker="v", color="C7", label=_shown(f"stopped early, no {value}"))
    ax.set_xlabel("trial")
    _span_the_trials(ax, [t.number for t in (*groups.done, *groups.stopped, *groups.failed)])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial 0.5 is no trial
    ax.set_ylabel(_shown(f"{value} ({metric.objective})"))
    stopped_note = f", {len(groups.stopped)} stopped early" if groups.stopped else ""
    cheap_note = f" ({len(groups.cheap)} of cheaper tasks)" if groups.cheap else ""
    ax.set_title(_shown(f"{name}: {len(groups.done)} completed{cheap_note}{stopped_note}, {len(groups.failed)} failed"))
    ax.legend(fontsize=8)


def _span_the_trials(ax: Any, numbers: list[int]) -> None:
    """A trial axis that holds every trial drawn. The marks on the panel's edge (failed trials) do not
    widen it by themselves: the trials that failed before the first completed one, or all of them,
    fell outside it, under a title that counted them."""
    if numbers:
        low, high = min(numbers), max(numbers)
        margin = max(0.5, 0.05 * (high - low))
        ax.set_xlim(low - margin, high + margin)


def _best_so_far(
    trials: Sequence[Trial], metric: Metric, metrics: Sequence[Metric], cheaper: Iterable[str]
) -> list[tuple[int, float]]:
    """The best value after each trial. A stopped trial's value is a partial one, so is a cheaper
    task's: never the best (as in optimization_results.yaml); nor a trial outside a constraint."""
    cheaper = set(cheaper)
    best: list[tuple[int, float]] = []
    current: float | None = None
    for t in sorted(trials, key=lambda t: t.number):
        v = t.value(metric.name)
        counted = t.state == COMPLETED and is_feasible(t, metrics) and t.task not in cheaper
        if v is not None and counted and (current is None or metric.better(v, current)):
            current = v
        if current is not None:
            best.append((t.number, current))
    return best


def _on_worse_edge(ax: Any, metric: Metric, numbers: list[int], **style: Any) -> None:
    """Trials without a value, on the panel's edge of worse values (the top, minimizing): at the
    lowest value drawn, a failed trial of a minimized metric looked like the sweep's best."""
    y = 0.97 if metric.objective == "minimize" else 0.03
    ax.scatter(numbers, [y] * len(numbers), transform=ax.get_xaxis_transform(), clip_on=False, **style)


def _pareto_panel(ax: Any, optimized: Sequence[Metric], trials: Sequence[Trial], front: Sequence[Trial]) -> None:
    """The two optimized metrics against each other, the Pareto-optimal trials (``hydra-sigopt
    best``'s lines) marked and numbered: with two metrics, the first panel shows the first only."""
    first, second = optimized
    ax.scatter([t.value(first.name) for t in trials], [t.value(second.name) for t in trials], s=18, label="completed")
    if front:
        xs, ys = [t.value(first.name) for t in front], [t.value(second.name) for t in front]
        ax.scatter(xs, ys, s=40, color="C1", label="Pareto-optimal (hydra-sigopt best)")
        for t, x, y in zip(front, xs, ys):
            ax.annotate(f"#{t.number}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(_shown(f"{first.name} ({first.objective})"))
    ax.set_ylabel(_shown(f"{second.name} ({second.objective})"))
    ax.set_title(_shown(f"Pareto front: {len(front)} of {len(trials)} trials"))
    ax.legend(fontsize=8)


def _parameter_panel(ax: Any, p: Mapping[str, Any], metric: Metric, full: list[Trial], cheap: list[Trial]) -> None:
    """The metric against one parameter; a cheaper task's trials apart, as in the first panel (a
    value after fewer epochs, drawn as a full training's, looked like the sweep's best region)."""
    name = p["name"]
    labels = [c["name"] for c in p.get("categorical_values", [])]
    if p["type"] == "categorical":
        ax.set_xticks(range(len(labels)), [_shown(label) for label in labels])
    elif p.get("transformation") == "log":
        ax.set_xscale("log")
    for trials, style in (
        (full, {"label": "completed"}),
        (cheap, {"marker": "s", "color": "C2", "label": "cheaper task"}),
    ):
        points = [(t.assignments[name], t.value(metric.name)) for t in trials if t.assignments.get(name) is not None]
        if p["type"] == "categorical":
            xs = [float(labels.index(str(x))) if str(x) in labels else -1.0 for x, _ in points]
        else:
            xs = [float(x) for x, _ in points]
        ax.scatter(xs, [y for _, y in points], s=18, **style)
    if cheap:
        ax.legend(fontsize=8)
    ax.set_xlabel(_shown(name))
    ax.set_ylabel(_shown(metric.name))


def _shown(text: str) -> str:
    """The user's text (names of metrics, parameters, choices) drawn as written: an unescaped ``$``
    starts matplotlib's mathtext (a metric named cost_$_per_$_sample failed the plot). Escaped per
    text, not switched off for the figure, whose log-scale ticks are mathtext (10^-2)."""
    return text.replace("$", r"\$")


def _curves_metric(
    optimized: Metric, metrics: Sequence[Metric], reports: Sequence[Report], judged: str | None
) -> Metric | None:
    """The metric whose learning curves are drawn (its x where a trial was stopped): the one the
    early-stopping rule judged (early_stopping.metric, a stored one, say), else the optimized one,
    else the first declared metric, as far as trials report it; None where they report none."""
    reported = {name for r in reports for name in r.metrics}
    judged_first = [m for m in metrics if m.name == judged]
    return next((m for m in (*judged_first, optimized, *metrics) if m.name in reported), None)


def _learning_curves(
    ax: Any, metric: Metric, trials: Sequence[Trial], reports: Sequence[Report], cheaper: Iterable[str] = ()
) -> None:
    """Each trial's reported values by step; a stopped trial's curve ends with an x where it was
    stopped; a cheaper task's curves are green (dashed)."""
    cheaper = frozenset(cheaper)
    cheap = {t.number for t in trials if t.task in cheaper}
    by_trial: dict[int, list[tuple[int, float]]] = {}
    for r in reports:
        if metric.name in r.metrics:
            by_trial.setdefault(r.number, []).append((r.step, r.metrics[metric.name]))
    states = {t.number: t.state for t in trials}
    for number, points in sorted(by_trial.items()):
        steps, values = zip(*sorted(points))
        was_stopped = states.get(number) == STOPPED
        style = {"color": "C2", "ls": "--"} if number in cheap else {"color": "C7" if was_stopped else "C0"}
        ax.plot(steps, values, lw=1, alpha=0.6, **style)
        if was_stopped:
            ax.scatter([steps[-1]], [values[-1]], marker="x", color="C3", s=24, zorder=3)
    ax.set_xlabel("step")
    ax.set_ylabel(_shown(metric.name))
    stopped = sum(states.get(n) == STOPPED for n in by_trial)
    cheap_note = ", cheaper tasks dashed" if cheap & set(by_trial) else ""
    ax.set_title(f"learning curves ({stopped} stopped early: x{cheap_note})")
