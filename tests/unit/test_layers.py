"""The package's layers, read from its source: no import cycles, and imports only go down.

Every import counts, wherever it is written (module level, inside a function, under
`if TYPE_CHECKING:`): a lazy import is still a dependency, and a cycle hidden in a function
is still a cycle. A module's layer is its folder (see docs/layout.md), lowest first:

- core/ (errors, settings, logs, masking, timestamps…);
- edm/ (the `$metadata` model, which the client fetches and the store builds tables from);
- trestle/ (the HTTP client), then store/ (the database), then coordination/ (locks, quota,
  window gate);
- sync/ (the use cases) and monitoring/ (metrics, drift, alert rules) side by side: each
  may read the layers below, neither imports the other;
- worker/ (Celery: the app, the tasks, the runtime), then cli/ (the commands).

The package root holds only `__init__` (which builds the Celery app when asked) and
`__main__`. The simulator is a package of its own, `trestle_simulator`: it imports nothing
of `trestle_tasks`, and only cli/ starts it.
"""

from __future__ import annotations

import ast
import collections
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "trestle_tasks"
SIMULATOR = "trestle_simulator"
REPO_DIR = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_DIR / ROOT

BELOW_COORDINATION = {"coordination", "store", "trestle", "edm", "core"}
BELOW_WORKER = BELOW_COORDINATION | {"sync", "monitoring"}
# What each folder may import besides itself; the root (`__init__`, `__main__`) anything.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "edm": {"core"},
    "trestle": {"edm", "core"},
    "store": {"trestle", "edm", "core"},
    "coordination": {"store", "trestle", "edm", "core"},
    "sync": BELOW_COORDINATION,
    "monitoring": BELOW_COORDINATION,
    "worker": BELOW_WORKER,
    "cli": BELOW_WORKER | {"worker", "simulator"},
    "simulator": set(),
}
ROOT_MODULES = {ROOT, f"{ROOT}.__main__"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def module_files(package_dirs: tuple[Path, ...] = (PACKAGE_DIR, REPO_DIR / SIMULATOR),
                 ) -> dict[str, Path]:
    modules = {}
    for package_dir in package_dirs:
        for path in sorted(package_dir.rglob("*.py")):
            parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
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
    if parts[0] == SIMULATOR:
        return "simulator"
    if module in ROOT_MODULES:
        return "root"
    if len(parts) >= 2 and parts[1] in MAY_IMPORT:
        return parts[1]
    raise AssertionError(f"{module}: not in a layer's folder; give it one "
                         f"({', '.join(sorted(MAY_IMPORT))}) or a new layer in {__file__}")


def layer_violations(edges: list[Edge]) -> list[str]:
    wrong = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source == "root" or source == target or target in MAY_IMPORT[source]:
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


def test_every_module_is_in_a_layer_s_folder():
    modules = module_files()
    assert f"{ROOT}.core.errors" in modules and f"{SIMULATOR}.server" in modules
    for module in modules:
        layer_of(module)  # raises for a module outside every folder
    with pytest.raises(AssertionError, match="not in a layer's folder"):
        layer_of(f"{ROOT}.heap")


def test_the_checks_catch_a_cycle_and_an_upward_import():
    made_up = [Edge("trestle_tasks.sync.a", "trestle_tasks.sync.b", 3),
               Edge("trestle_tasks.sync.b", "trestle_tasks.monitoring.c", 5),
               Edge("trestle_tasks.monitoring.c", "trestle_tasks.sync.a", 7),
               Edge("trestle_tasks.store.d", "trestle_tasks.worker.factory", 9)]
    [chain] = cycles(made_up)
    assert describe(chain).startswith("trestle_tasks.monitoring.c -> trestle_tasks.sync.a"
                                      " -> trestle_tasks.sync.b -> trestle_tasks.monitoring.c")
    wrong = layer_violations(made_up)
    assert len(wrong) == 3
    assert wrong[-1].startswith(
        "trestle_tasks.store.d (line 9) imports trestle_tasks.worker.factory")
