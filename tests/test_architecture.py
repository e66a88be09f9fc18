"""The module structure the README's development section describes: no import cycle, the core never
imports the plugin, and the scheduler imports nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "hydra_sigopt"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


MODULES = {module_name(p): p for p in CORE.rglob("*.py")}
GRAPH = {m: {i for i in imports_of(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def test_no_import_cycle() -> None:
    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(nxt == target or reaches(nxt, target, seen | {nxt}) for nxt in GRAPH[start] - seen)

    assert [m for m in GRAPH if reaches(m, m, set())] == []


def test_the_core_never_imports_the_plugin() -> None:
    assert [m for m, p in MODULES.items() if any(i.startswith("hydra_plugins") for i in imports_of(p))] == []


def test_the_scheduler_only_decides() -> None:
    """No journal, runner, engine, thread, clock or file: it answers events with commands."""
    tree = ast.parse(MODULES["hydra_sigopt.scheduler"].read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules <= {
        "__future__",
        "collections",
        "collections.abc",
        "dataclasses",
        "math",
        "typing",
        "hydra_sigopt.backends.base",
    }


def test_no_class_over_300_lines() -> None:
    """Issue 13: one owner per responsibility; a class past 300 lines holds several."""
    sizes = {
        f"{m}.{n.name}": n.end_lineno - n.lineno + 1  # type: ignore[operator]
        for m, p in MODULES.items()
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ClassDef)
    }
    assert {name: size for name, size in sizes.items() if size > 300} == {}


def test_a_trial_s_job_imports_no_engine_and_no_sweep_settings() -> None:
    """Every trial's job imports what runs it (TimedTask, report) and not the sweeper's side: the
    settings pulled in the engine's modules, some 50 ms of every job's start (issue 13's benchmark)."""
    import subprocess
    import sys

    job_side = (
        "import hydra_sigopt.runners.task, hydra_sigopt.reporting, hydra_sigopt.crashpoints, sys; print(*sys.modules)"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", job_side], capture_output=True, text=True, check=True).stdout.split()
    )
    sweeper_side = {"hydra_sigopt.settings", "hydra_sigopt.backends", "hydra_sigopt.journal", "sigoptlite", "sigopt"}
    assert loaded & sweeper_side == set()
