"""The layers hold: no import cycle among the project's modules (imports inside functions
included), and the import-linter contracts of pyproject.toml are kept."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workflows", "workflows_cli", "approvals", "connections", "resources", "ops",
            "config")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            modules[_module_name(path)] = path
    return modules


def _imported(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The project modules an import statement loads. `from a.b import c` loads a.b.c when that
    is a module, else a.b (whose __init__ re-exports c); relative imports are resolved."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                anchor = anchor.rpartition(".")[0]
            base = f"{anchor}.{base}" if base else anchor
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if candidate in modules:
                found.add(candidate)
            elif base in modules:
                found.add(base)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (functions included)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(node, module, is_package, modules)
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function():
    source = "def f():\n    from workflows.b import x\n"
    modules = {"workflows.a": Path("a.py"), "workflows.b": Path("b.py")}
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom))
    assert _imported(node, "workflows.a", False, modules) == {"workflows.b"}
    assert find_cycles({"workflows.a": {"workflows.b"}, "workflows.b": {"workflows.a"},
                        "workflows.c": {"workflows.a"}}) == [["workflows.a", "workflows.b"]]


def test_a_package_init_that_re_exports_counts_as_importing_its_modules():
    modules = {"workflows.engine": Path("__init__.py"),
               "workflows.engine.progress": Path("progress.py")}
    node = ast.parse("from workflows.engine import lock_run").body[0]
    assert _imported(node, "workflows.services.x", False, modules) == {"workflows.engine"}
    node = ast.parse("from workflows.engine import progress").body[0]
    assert _imported(node, "workflows.services.x", False, modules) == {
        "workflows.engine.progress"}
    node = ast.parse("from .progress import lock_run").body[0]
    assert _imported(node, "workflows.engine", True, modules) == {"workflows.engine.progress"}


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    assert "workflows.engine.progress" in graph  # the walk found the project
    assert "ops.metrics" in graph  # every app, ops included
    assert find_cycles(graph) == []


def test_the_engine_door_offers_verbs_not_the_order_of_their_writes():
    """Approvals, callbacks and the sweeper end a step with `step_resolve`: the steps of the
    exactly-once sequence are not on the door, so no service can write them in its own order
    (and the import-linter contract keeps services out of the engine's modules)."""
    from workflows import engine

    sequence = {"step_transition", "run_transition", "attempt_finish", "load_steps",
                "queue_ready", "run_settle", "enqueue", "wait_complete"}
    assert sequence.isdisjoint(engine.__all__)
    assert all(hasattr(engine, name) for name in engine.__all__)
    assert {"run_admit", "run_cancel", "run_rewind", "step_resolve"} <= set(engine.__all__)


def test_the_import_linter_contracts_are_kept():
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint_imports).exists():
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
