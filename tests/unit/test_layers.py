"""The package's layers, read from its source: no import cycles, and imports only go down.

Every import counts, wherever it is written (module level, inside a function, under
`if TYPE_CHECKING:`): a lazy import is still a dependency, and a cycle hidden in a function
is still a cycle. The order, lowest first (see docs/layout.md):

- foundation: errors, masking, logfiles, logs, settings, feeds, wording, retry, timestamps;
- trestle/ (the HTTP client), then store/ (the database), then coordination/ (locks, quota,
  window gate);
- sync/ (the use cases) and monitoring/ (metrics, drift, alert rules) side by side: each
  may read the layers below, neither imports the other;
- the Celery and command layer: every other top-level module (tasks, celery_app, cli*,
  demo*, factory, runtime, dispatch, local, alert_hooks, status, metrics_http, health,
  preflight).

simulator/ stands apart: it imports nothing of the pipeline (foundation at most), and only
the top layer starts it.
"""

from __future__ import annotations

import ast
import collections
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "trestle_tasks"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / ROOT

FOUNDATION = {"errors", "masking", "logfiles", "logs", "settings", "feeds", "wording", "retry",
              "timestamps"}
BELOW_COORDINATION = {"coordination", "store", "trestle", "foundation"}
# What each layer may import besides itself; "app" (the top) may import anything.
MAY_IMPORT: dict[str, set[str]] = {
    "foundation": set(),
    "simulator": {"foundation"},
    "trestle": {"foundation"},
    "store": {"trestle", "foundation"},
    "coordination": {"store", "trestle", "foundation"},
    "sync": BELOW_COORDINATION,
    "monitoring": BELOW_COORDINATION,
}
SUBPACKAGES = {"trestle", "store", "coordination", "sync", "monitoring", "simulator"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (ROOT, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Each import of a package module by another, anywhere in the file."""
    edges = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # `from p import m` imports the module p.m when there is one, else p.
                targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules
                           else origin for alias in node.names]
            for target in dict.fromkeys(targets):
                if target in modules and target != name:
                    edges.append(Edge(name, target, node.lineno))
    return edges


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "app"  # the package itself: its __init__ only builds the Celery app on demand
    if parts[1] in FOUNDATION and len(parts) == 2:
        return "foundation"
    if parts[1] in SUBPACKAGES:
        return parts[1]
    if len(parts) == 2:
        return "app"
    raise AssertionError(f"{module}: a new subpackage; give it a layer in {__file__}")


def layer_violations(edges: list[Edge]) -> list[str]:
    wrong = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source == "app" or source == target or target in MAY_IMPORT[source]:
            continue
        wrong.append(f"{edge}: {source} may import only "
                     f"{', '.join(sorted(MAY_IMPORT[source] | {source}))}, not {target}")
    return wrong


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle through each strongly connected group of modules, as its import chain."""
    graph: dict[str, dict[str, Edge]] = collections.defaultdict(dict)
    for edge in edges:
        graph[edge.source].setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in groups:
        start = min(group)
        # The shortest way back to `start` inside the group (breadth first).
        came_by: dict[str, Edge] = {}
        queue = collections.deque([start])
        while queue:
            node = queue.popleft()
            for nxt, edge in sorted(graph[node].items()):
                if nxt not in group or nxt in came_by:
                    continue
                came_by[nxt] = edge
                queue.append(nxt)
        chain = [came_by[start]]
        while chain[0].source != start:
            chain.insert(0, came_by[chain[0].source])
        found.append(chain)
    return found


def describe(chain: list[Edge]) -> str:
    return " -> ".join([chain[0].source] + [e.target for e in chain]) + "\n    " + \
        "\n    ".join(str(e) for e in chain)


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(module_files())


def test_no_module_imports_another_that_imports_it_back(edges):
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(describe(c) for c in found)


def test_imports_only_go_down_the_layers(edges):
    wrong = layer_violations(edges)
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_every_foundation_module_exists():
    modules = module_files()
    assert {f"{ROOT}.{name}" for name in FOUNDATION} <= set(modules)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    made_up = [Edge("trestle_tasks.sync.a", "trestle_tasks.sync.b", 3),
               Edge("trestle_tasks.sync.b", "trestle_tasks.monitoring.c", 5),
               Edge("trestle_tasks.monitoring.c", "trestle_tasks.sync.a", 7),
               Edge("trestle_tasks.store.d", "trestle_tasks.factory", 9)]
    [chain] = cycles(made_up)
    assert describe(chain).startswith("trestle_tasks.monitoring.c -> trestle_tasks.sync.a"
                                      " -> trestle_tasks.sync.b -> trestle_tasks.monitoring.c")
    wrong = layer_violations(made_up)
    assert len(wrong) == 3
    assert wrong[-1].startswith("trestle_tasks.store.d (line 9) imports trestle_tasks.factory")
