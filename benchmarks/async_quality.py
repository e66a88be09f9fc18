"""Async quality: what the asynchronous scheduler's suggestions cost the search, in simulated time.

An asynchronous sweep keeps suggestions ready for the slots about to free (issue 16): up to as many
as slots freed per computation lately (counted from when the queue was last full). A suggestion
computed ahead has not seen the results that arrive while it waits. And the engine is told which
suggestions are pending: it records them as placeholders at the mean value (constant liar) so as
not to suggest them again.
This measures what both cost or bring in regret, policy against policy, everything else equal
(see POLICIES).

The sweeper's real scheduler (hydra_sigopt.scheduler.Scheduler) and the real lite engine run in
simulated time, as Syne Tune's simulator backend runs its schedulers: trial durations are drawn
from a lognormal (median 1, sigma 0.8) keyed by trial number, each suggestion costs the engine
--engine-cost time units, nothing waits for real. So the order of events, and the regret, do not
depend on this machine's speed or load; only the engine's own arithmetic runs for real.

    python benchmarks/async_quality.py                      # branin and hartmann6, 10 seeds, 30 trials
    python benchmarks/async_quality.py --quick              # CI smoke: branin, 2 seeds, 10 trials
    python benchmarks/async_quality.py --engine-cost 0.1    # a faster engine against the trials
    python benchmarks/async_quality.py --slots 16 --trials 48 --seeds 5 --problems branin

Reported per problem and policy: median simple regret after the budget, [quartiles], and the
simulated makespan (the time until the last trial ended) with the slots' utilisation.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import common
import suggestion_latency

from hydra_sigopt.backends import Suggestion, create_backend, lite
from hydra_sigopt.metrics import MetricValue
from hydra_sigopt.scheduler import Ended, Posted, Recorded, Scheduler, Submitted, SuggestionReady, drive

NAME = "async_quality"
OPTIMA = {2: 0.397887, 6: -3.32237}
PROBLEMS = {"branin": 2, "hartmann6": 6}
#: queue: this sweeper (as many suggestions ready as slots freed per computation lately, counted
#: from when the queue was last full with the engine idle; pending for the engine: the suggestions
#: computed on the results it has now);
#: ends_while_computing: the queue sized by the slots freed while the engine computed only (this
#: sweeper before issue 17's round: the end that set the engine computing was not counted);
#: all_placeholders: the same, with every running trial and ready suggestion pending;
#: previous: at most one ready, every running trial pending (this sweeper before issue 16's round);
#: no_placeholders: the queue, the engine told nothing of the running trials (a naive async loop);
#: fit_every_suggestion: the queue, the GP's hyperparameters refitted at every suggestion however
#: many results (this sweeper before it kept the fit past 50 results; differs only past 50 trials).
POLICIES = ("queue", "ends_while_computing", "all_placeholders", "previous", "no_placeholders", "fit_every_suggestion")
SIGMA = 0.8
FIT_EVERY_SUGGESTION_UNTIL = lite.FIT_EVERY_SUGGESTION_UNTIL


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", nargs="*", choices=list(PROBLEMS), default=None)
    parser.add_argument("--seeds", type=int, default=None, help="seeds per problem and policy (default 10)")
    parser.add_argument("--trials", type=int, default=None, help="budget per sweep (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="simulations at a time")
    parser.add_argument("--slots", type=int, default=4, help="parallel_bandwidth")
    parser.add_argument("--policies", nargs="*", choices=POLICIES, default=None, help="a subset (default: all)")
    parser.add_argument(
        "--engine-cost", type=float, default=0.25, help="simulated time per suggestion (a trial's median is 1)"
    )


class AllPlaceholdersScheduler(Scheduler):
    """Every running trial and ready suggestion pending for the engine."""

    def pending(self) -> tuple[Suggestion, ...]:
        made = [f.suggestion for f in self.in_flight.values()] + [s for s, _ in self._ready]
        return tuple(made)


class EndsWhileComputingScheduler(Scheduler):
    """The queue's depth before issue 17's round: only the slots freed while the engine computed
    counted, not the end that set it computing."""

    def _count_freed(self, ended: int) -> None:
        if self._computing:
            super()._count_freed(ended)


class PreviousScheduler(AllPlaceholdersScheduler):
    """This sweeper before issue 16's round: also at most one suggestion computed ahead."""

    @property
    def ready_depth(self) -> int:
        return 1


def duration(seed: int, number: int) -> float:
    return random.Random(f"{seed}-{number}").lognormvariate(0.0, SIGMA)


@dataclass
class Simulation:
    """One asynchronous sweep: the real scheduler's commands carried out in simulated time."""

    dim: int
    seed: int
    budget: int
    engine_cost: float
    policy: str
    slots: int = 4
    now: float = 0.0
    running: dict[int, tuple[float, Any]] = field(default_factory=dict)  # number -> (end time, suggestion)
    computing: tuple[float, Any] | None = None  # (ready at, suggestion) of the prefetch under way
    values: list[tuple[float, float]] = field(default_factory=list)  # (end time, value) per trial
    busy: float = 0.0

    def run(self) -> dict[str, Any]:
        # Set for every simulation: a worker process runs several, of any policy.
        refit_always = self.policy == "fit_every_suggestion"
        lite.FIT_EVERY_SUGGESTION_UNTIL = sys.maxsize if refit_always else FIT_EVERY_SUGGESTION_UNTIL
        self.backend: Any = create_backend("lite", seed=self.seed)
        # The engine's budget is the sweep's: SigOpt explores longer the larger it is.
        definition = dataclasses.replace(
            suggestion_latency.definition(self.dim), observation_budget=self.budget, parallel_bandwidth=self.slots
        )
        self.backend.start(definition)
        policies = {
            "all_placeholders": AllPlaceholdersScheduler,
            "previous": PreviousScheduler,
            "ends_while_computing": EndsWhileComputingScheduler,
        }
        kind = policies.get(self.policy, Scheduler)
        scheduler = kind(self.budget, self.slots, True, lambda failed, done: False)
        most_ready = 0

        def carry_out(command: Any) -> list[Any]:
            nonlocal most_ready
            most_ready = max(most_ready, len(scheduler._ready))
            return self.carry_out(command)

        drive(scheduler, carry_out)
        self.backend.close()
        best = min(v for _, v in self.values)
        return {
            "regret": best - OPTIMA[self.dim],
            "makespan": self.now,
            "utilisation": self.busy / (self.slots * self.now),
            "most_ready": most_ready,
        }

    def carry_out(self, command: Any) -> list[Any]:
        kind = type(command).__name__
        if kind == "Ask":  # the slot waits while the engine computes
            suggestion = self.backend.suggest(self.pending(command))
            self.now += self.engine_cost
            return [SuggestionReady(suggestion)]
        if kind == "Prefetch":  # computed now, with what the engine knows now; ready later
            self.computing = (self.now + self.engine_cost, self.backend.suggest(self.pending(command)))
        elif kind == "AwaitPrefetch":
            return [self.take_prefetch()]
        elif kind == "StartTrial":
            length = duration(self.seed, command.number)
            self.busy += length
            self.running[command.number] = (self.now + length, command.suggestion)
            return [Submitted(command.number, f"job-{command.number}")]
        elif kind == "Wait":
            return self.wait()
        elif kind == "Record":
            return [Recorded({n: False for n in command.numbers})]
        elif kind == "Post":  # posted at once here (the engine's time is the suggestion's)
            for n in command.numbers:
                self.post(n)
            return [Posted(command.numbers)]
        elif kind == "AwaitPosts":
            return [Posted(())]
        return []

    def pending(self, command: Any) -> list[Any]:
        return [] if self.policy == "no_placeholders" else list(command.pending)

    def take_prefetch(self) -> Any:
        assert self.computing is not None
        ready_at, suggestion = self.computing
        self.computing = None
        self.now = max(self.now, ready_at)
        return SuggestionReady(suggestion)

    def wait(self) -> list[Any]:
        """Until the next trial ends or the prefetch is ready, whichever comes first."""
        next_end = min((end for end, _ in self.running.values()), default=math.inf)
        if self.computing is not None and self.computing[0] <= next_end:
            return [Ended(()), self.take_prefetch()]
        self.now = max(self.now, next_end)
        ended = tuple(sorted(n for n, (end, _) in self.running.items() if end <= self.now))
        return [Ended(ended)]

    def post(self, number: int) -> None:
        end, suggestion = self.running.pop(number)
        value = suggestion_latency.objective(self.dim, dict(suggestion.assignments))
        self.values.append((end, value))
        self.backend.observe(suggestion, [MetricValue("value", value)])


def simulate(problem: str, seed: int, budget: int, engine_cost: float, policy: str, slots: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = Simulation(PROBLEMS[problem], seed, budget, engine_cost, policy, slots).run()
    return {"problem": problem, "seed": seed, "policy": policy, "wall_s": time.perf_counter() - started, **result}


def summary_rows(results: list[dict[str, Any]], problems: list[str], policies: list[str]) -> list[list[Any]]:
    rows = []
    for problem in problems:
        for policy in policies:
            mine = [r for r in results if r["problem"] == problem and r["policy"] == policy]
            q1, med, q3 = common.quantiles([r["regret"] for r in mine])
            makespan = common.median(r["makespan"] for r in mine)
            util = common.median(r["utilisation"] for r in mine)
            most = max(r["most_ready"] for r in mine)
            regret = f"{common.fmt(med)} [{common.fmt(q1)}, {common.fmt(q3)}]"
            rows.append([problem, policy, regret, makespan, util, most])
    return rows


def paired(results: list[dict[str, Any]], problem: str, mine: str, other: str) -> tuple[int, int]:
    """Seeds on which ``mine``'s regret is lower, and on which it is higher, than ``other``'s."""
    by = {(r["policy"], r["seed"]): r["regret"] for r in results if r["problem"] == problem}
    seeds = sorted({s for _, s in by})
    better = sum(by[(mine, s)] < by[(other, s)] for s in seeds)
    worse = sum(by[(mine, s)] > by[(other, s)] for s in seeds)
    return better, worse


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0], options)
    problems = args.problems or (["branin"] if args.quick else list(PROBLEMS))
    seeds = args.seeds or (2 if args.quick else 10)
    budget = args.trials or (10 if args.quick else 30)
    out = common.results_dir(NAME)
    started = time.perf_counter()
    print(f"{NAME}: {problems}, {seeds} seeds, {budget} trials, {args.slots} slots, engine cost {args.engine_cost}")
    policies = args.policies or list(POLICIES)
    cells = [
        (p, s, budget, args.engine_cost, pol, args.slots) for p in problems for s in range(seeds) for pol in policies
    ]
    results = []
    # Simulated time: running two at a time (2 cores) changes no result.
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, r in enumerate(pool.map(simulate, *zip(*cells)), 1):
            results.append(r)
            label = f"{r['problem']} seed {r['seed']} {r['policy']}"
            print(f"  [{i}/{len(cells)}] {label}: regret {r['regret']:.4g}, makespan {r['makespan']:.1f}", flush=True)
    headers = ["problem", "policy", "median regret [q1, q3]", "makespan (median)", "utilisation (median)", "most ready"]
    rows = summary_rows(results, problems, policies)
    print()
    print(common.text_table(headers, rows))
    lines = [
        f"{p}: {mine}'s regret lower than {other}'s on {b}, higher on {w} of {seeds} seeds"
        for p in problems
        for mine, other in itertools.combinations(policies, 2)
        for b, w in [paired(results, p, mine, other)]
    ]
    print("\n".join(lines))
    elapsed = time.perf_counter() - started
    doc = {"machine": common.machine_facts(), "results": results, "engine_cost": args.engine_cost, "elapsed_s": elapsed}
    common.write_json(out / f"{NAME}.json", doc)
    markdown = "\n".join(
        [
            "### Async quality: what the asynchronous scheduler's suggestions cost the search",
            "",
            f"Real scheduler and lite engine in simulated time: {args.slots} slots, {budget} trials, trial durations "
            f"lognormal (median 1, sigma {SIGMA}), {args.engine_cost} time units per suggestion, {seeds} seeds.",
            "`queue`: this sweeper (as many suggestions kept ready as slots freed per computation lately that "
            "counted from the queue last full; placeholders at the mean value for the suggestions computed "
            "on the results the engine has now); `all_placeholders`: the same with every running trial and "
            "ready suggestion a placeholder; `ends_while_computing`: the queue sized by the slots freed while "
            "the engine computed only (before issue 17's round); `previous`: at most one ready and every "
            "running trial a placeholder (before issue 16's round); `no_placeholders`: the queue, the engine "
            "told nothing of running trials; `fit_every_suggestion`: the queue, the GP's hyperparameters "
            "refitted at every suggestion (before the fit was kept past 50 results).",
            "",
            common.markdown_table(headers, rows),
            "",
            *[f"- {line}" for line in lines],
            "",
            f"Command: `python {' '.join(sys.argv)}`; {elapsed / 60:.1f} min.",
        ]
    )
    # A variant is named by all that sets it apart, so that no run overwrites another's published figures.
    apart = [
        "" if budget == 30 else f"_{budget}trials",
        "" if seeds == 10 else f"_{seeds}seeds",
        "" if problems == list(PROBLEMS) else "_" + "_".join(problems),
        "" if args.engine_cost == 0.25 else f"_cost{args.engine_cost:g}",
        "" if policies == list(POLICIES) else "_" + "_".join(policies),
    ]
    standard = args.slots == 4 and not "".join(apart)
    common.publish(NAME if standard else f"{NAME}_{args.slots}slots" + "".join(apart), None, markdown, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
