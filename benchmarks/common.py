"""Shared plumbing of the benchmark scripts: running Hydra multiruns, tables, results, machine facts."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
APP = APPS / "objective.py"
RESULTS = BENCH / "results"
PUBLISHED = BENCH / "published"
PYTHON = sys.executable

PACKAGES = (
    "hydra-sigopt-sweeper",
    "hydra-core",
    "omegaconf",
    "hydra-submitit-launcher",
    "submitit",
    "hydra-optuna-sweeper",
    "optuna",
    "sigoptlite",
    "libsigopt",
    "sigopt",
    "numpy",
    "scipy",
    "scikit-learn",
    "matplotlib",
)

SUBMITIT_LOCAL = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="CI smoke run: small budgets, under 2 minutes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails (default: report only)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


# ------------------------------------------------------------------ machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _diff_hash() -> str | None:
    import hashlib

    diff = _git("diff", "HEAD", "--", "hydra_sigopt", "hydra_plugins")
    return hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None


def machine_facts() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError):
        nproc = os.cpu_count()
    return {
        "nproc": nproc,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "loadavg_at_start": list(os.getloadavg()),
        "mem_total_mb": _meminfo_mb("MemTotal"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "hydra_sigopt", "hydra_plugins")),
        # the sweeper's uncommitted changes, if any, identified by a hash of their diff
        "git_diff_sha1": _diff_hash(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _meminfo_mb(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ running the app


@dataclass
class Run:
    """One ``python objective.py -m ...`` subprocess."""

    label: str
    args: list[str]
    sweep_dir: Path
    returncode: int | None = None
    wall_s: float | None = None
    output: str = ""
    peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> Run:
        if self.returncode != 0:
            raise RuntimeError(
                f"run {self.label} failed (exit {self.returncode}): {' '.join(self.args)}\n{self.output[-4000:]}"
            )
        return self

    def trials(self) -> list[dict[str, Any]]:
        """The app's per-trial records (bench_trials.jsonl), ordered by job number."""
        return read_trials(self.sweep_dir)


def read_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    path = Path(sweep_dir) / "bench_trials.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["job_num"])


def app_command(*overrides: str, app: Path = APP, python_args: Sequence[str] = ()) -> list[str]:
    return [PYTHON, *python_args, str(app), "-m", *overrides]


def run_app(
    label: str,
    sweep_dir: Path,
    overrides: Sequence[str],
    *,
    timeout: float = 3600,
    python_args: Sequence[str] = (),
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    poll_rss: bool = False,
) -> Run:
    """Run one multirun of the benchmark app in a subprocess (cwd: benchmarks/apps), timed.

    A fresh sweep dir every time (an existing one is removed: the SigOpt sweeper would resume it).
    With ``poll_rss`` the subprocess's own VmHWM (peak RSS, not its children's) and VmRSS are read
    every 0.1 s.
    """
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    sweep_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = command or app_command(*overrides, f"hydra.sweep.dir={sweep_dir}", python_args=python_args)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    run = Run(label, cmd, sweep_dir)
    log_path = sweep_dir.parent / f"{sweep_dir.name}.out"
    run.extra["started_epoch"] = time.time()
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=APPS, stdout=log, stderr=subprocess.STDOUT, env=full_env, text=True)
        peak = [0.0]
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        poller = None
        if poll_rss:

            def poll() -> None:
                while not stop.is_set():
                    status = proc_status_mb(proc.pid)
                    if "VmHWM" in status:
                        peak[0] = max(peak[0], status["VmHWM"])
                        samples.append((time.perf_counter() - started, status.get("VmRSS", 0.0)))
                    stop.wait(0.1)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        run.wall_s = time.perf_counter() - started
        stop.set()
        if poller is not None:
            poller.join()
            run.peak_rss_mb = peak[0] or None
            run.extra["rss_samples"] = samples
    run.returncode = proc.returncode
    run.output = log_path.read_text(errors="replace")
    return run


def proc_status_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set size) and VmRSS of one process (not its children), in MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


def run_parallel(jobs: Sequence[Callable[[], Any]], workers: int = 2, progress: str = "") -> list[Any]:
    """Run independent jobs at most ``workers`` at a time (the machine has 2 cores); results in order."""
    done = [0]
    lock = threading.Lock()

    def wrapped(job: Callable[[], Any]) -> Any:
        result = job()
        with lock:
            done[0] += 1
            label = getattr(result, "label", "")
            wall = getattr(result, "wall_s", None)
            extra = f" ({wall:.1f}s)" if wall is not None else ""
            print(f"  [{progress}{done[0]}/{len(jobs)}] {label}{extra}", flush=True)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(wrapped, jobs))


# ------------------------------------------------------------------ statistics and tables


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile), linear interpolation; any sample size >= 1."""
    xs = sorted(values)
    if not xs:
        return (float("nan"),) * 3  # type: ignore[return-value]

    def q(p: float) -> float:
        pos = p * (len(xs) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == 0:
            return "0"
        if abs(value) >= 10**digits or abs(value) < 10 ** -(digits - 1):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        out.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |")
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# ------------------------------------------------------------------ results


def results_dir(name: str) -> Path:
    path = RESULTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def publish(name: str, png: Path | None, markdown: str, quick: bool) -> None:
    """Full mode only: copy the PNG and write the markdown table to benchmarks/published/."""
    if quick:
        return
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    if png is not None and png.exists():
        shutil.copy2(png, PUBLISHED / f"{name}.png")
    (PUBLISHED / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(f"Published: {PUBLISHED / (name + '.md')}" + (f" and {PUBLISHED / (name + '.png')}" if png else ""))


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
