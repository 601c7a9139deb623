"""The import rules of the layout (docs/architecture.md): imports point down only, and no
package import cycle.

The graph is read from the source with ``ast``, every ``import`` anywhere in a module
(inside functions and ``if TYPE_CHECKING:`` blocks too), so a lazy import cannot hide an
upward arrow. Each rule is a function of that graph, and each is also fed a graph with one
bad edge added, to show that it can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "cleanroom": ROOT / "cleanroom",
    "cleanroom_client": ROOT / "clients" / "cleanroom_client",
}

# Top to bottom; a module may import from its own layer or any layer below it.
LAYERS: list[tuple[str, ...]] = [
    ("cleanroom_client", "cleanroom.brand"),
    ("cleanroom.transport",),
    ("cleanroom.store", "cleanroom.lists"),
    ("cleanroom.protocol",),
    ("cleanroom.report", "cleanroom.privacy", "cleanroom.identity"),
    # The engine runs the crypto kernels on threads; native.py describes the extension.
    ("cleanroom.crypto",),
    ("cleanroom.contract",),
    ("cleanroom.identifiers",),
    # The generated wire messages and the Rust extension import nothing of cleanroom (the
    # identifiers' digests call the extension's batch SHA-256 directly); the root package's
    # __init__ is empty.
    (
        "cleanroom.arrow_values",
        "cleanroom.errors",
        "cleanroom.faults",
        "cleanroom.cli_support",
        "cleanroom.proto",
        "cleanroom._native",
    ),
]

Graph = dict[str, set[str]]  # module -> every module it imports, ours and others'


def _module_name(package: str, directory: Path, path: Path) -> str:
    parts = [package, *path.relative_to(directory).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from cleanroom import errors` imports the module cleanroom.errors
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found


def import_graph() -> Graph:
    sources = {
        _module_name(package, directory, path): path
        for package, directory in PACKAGES.items()
        for path in sorted(directory.rglob("*.py"))
    }
    known = set(sources) | {"cleanroom._native"}  # the Rust extension, built into the tree
    graph: Graph = {"cleanroom._native": set()}
    for module, path in sources.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = _imports(tree, module, path.name == "__init__.py", known)
    return graph


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    if module == "cleanroom":
        return len(LAYERS) - 1
    for number, prefixes in enumerate(LAYERS):
        if any(within(module, prefix) for prefix in prefixes):
            return number
    return None


def ours(graph: Graph, module: str) -> bool:
    return module in graph


def packages_of(module: str) -> list[str]:
    """The packages whose ``__init__`` Python runs before the module itself."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def reachable(graph: Graph, starts: Iterable[str]) -> set[str]:
    """Our modules that importing ``starts`` loads, ``starts`` and their packages included."""
    seen: set[str] = set()
    todo = [start for start in starts if ours(graph, start)]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            targets = [*graph[module], *packages_of(module)]
            todo.extend(target for target in targets if ours(graph, target))
    return seen


def modules_under(graph: Graph, prefix: str) -> list[str]:
    return sorted(module for module in graph if within(module, prefix))


# -- the rules: each returns what breaks it -------------------------------------------------


def unlayered(graph: Graph) -> list[str]:
    return sorted(module for module in graph if layer_of(module) is None)


def upward_imports(graph: Graph) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(t for t in targets if ours(graph, t)):
            source_layer, target_layer = layer_of(module), layer_of(target)
            if (
                source_layer is not None
                and target_layer is not None
                and target_layer < source_layer
            ):
                found.append(
                    f"{module} (layer {source_layer + 1}) imports {target} (layer {target_layer + 1})"
                )
    return found


def forbidden_reach(graph: Graph, source: str, forbidden: Iterable[str]) -> list[str]:
    """Every module under ``source`` loads, directly or not, that imports one of ``forbidden``
    (ours or a third party's): each such import, as ``loaded module -> forbidden module``."""
    loaded = reachable(graph, modules_under(graph, source))
    return sorted(
        f"{module} -> {target}"
        for module in loaded
        for target in graph[module]
        if any(within(target, name) for name in forbidden)
    )


def package_of(module: str) -> str:
    """The unit a cycle is counted between: cleanroom.X, or cleanroom_client."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "cleanroom" and len(parts) > 1 else parts[0]


def package_cycle(graph: Graph) -> list[str]:
    """One cycle between packages, as the packages along it, or [] if there is none."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            if ours(graph, target) and package_of(target) != package_of(module):
                edges.setdefault(package_of(module), set()).add(package_of(target))
    state: dict[str, str] = {}

    def visit(package: str, path: list[str]) -> Iterator[list[str]]:
        state[package] = "open"
        for target in sorted(edges.get(package, ())):
            if state.get(target) == "open":
                yield [*path[path.index(target) :], target]
            elif target not in state:
                yield from visit(target, [*path, target])
        state[package] = "done"

    for package in sorted(edges):
        if package not in state:
            for cycle in visit(package, [package]):
                return cycle
    return []


RULES = {
    "client never loads the brand": lambda g: forbidden_reach(
        g, "cleanroom_client", ["cleanroom.brand"]
    ),
    "brand never loads the client": lambda g: forbidden_reach(
        g, "cleanroom.brand", ["cleanroom_client"]
    ),
    # The package cycle issue 11 names: cleanroom.brand.demo imported cleanroom_client.
    "cleanroom never loads the client": lambda g: forbidden_reach(
        g, "cleanroom", ["cleanroom_client"]
    ),
    "protocol loads no grpc or sqlite3": lambda g: forbidden_reach(
        g, "cleanroom.protocol", ["grpc", "sqlite3"]
    ),
    "store loads no report rendering": lambda g: forbidden_reach(
        g, "cleanroom.store", ["cleanroom.report.render", "cleanroom.report.plot"]
    ),
    "contract loads no privacy code": lambda g: forbidden_reach(
        g, "cleanroom.contract", ["cleanroom.privacy"]
    ),
    # `audit verify`, `report verify` and the other commands that only read the state
    # database start in a fraction of the time without them (docs/design-decisions.md).
    "state store loads no Arrow or NumPy": lambda g: forbidden_reach(
        g, "cleanroom.store", ["pyarrow", "numpy"]
    ),
    "imports point down only": upward_imports,
    "no package import cycle": package_cycle,
}


GRAPH = import_graph()


def test_the_graph_holds_every_package_and_sees_imports_inside_functions():
    assert {"cleanroom.protocol.brand", "cleanroom.transport.grpc", "cleanroom_client.cli"} <= set(
        GRAPH
    )
    assert "grpc" in GRAPH["cleanroom.transport.grpc"]
    # cleanroom/brand/demo.py imports the servicer inside run_demo only
    assert "cleanroom.brand.servicer" in GRAPH["cleanroom.brand.demo"]
    assert "cleanroom.errors" in GRAPH["cleanroom.transport.pump"]  # `from cleanroom.errors import`


def test_every_module_has_a_layer():
    assert unlayered(GRAPH) == []


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_holds(rule):
    assert RULES[rule](GRAPH) == []


# One bad edge per rule, added to the real graph: each rule must report it.
BAD_EDGES = {
    "client never loads the brand": ("cleanroom_client.client", "cleanroom.brand.config"),
    "brand never loads the client": ("cleanroom.brand.cli", "cleanroom_client"),
    "cleanroom never loads the client": ("cleanroom.brand.demo", "cleanroom_client.client"),
    "protocol loads no grpc or sqlite3": ("cleanroom.protocol.common", "sqlite3"),
    "store loads no report rendering": ("cleanroom.store.state", "cleanroom.report.plot"),
    "contract loads no privacy code": ("cleanroom.contract", "cleanroom.privacy.noise"),
    # through a package's __init__, which Python runs before any module in it
    "state store loads no Arrow or NumPy": ("cleanroom.identifiers", "numpy"),
    "imports point down only": ("cleanroom.crypto.signing", "cleanroom.transport.pump"),
    "no package import cycle": ("cleanroom.errors", "cleanroom.faults"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_reports_a_bad_edge(rule):
    source, target = BAD_EDGES[rule]
    graph = {module: set(targets) for module, targets in GRAPH.items()}
    graph[source].add(target)
    if rule == "no package import cycle":  # errors <-> faults: both ways makes the cycle
        graph["cleanroom.faults"].add("cleanroom.errors")
    assert RULES[rule](graph) != []


def test_a_rule_sees_through_a_module_in_between():
    graph: Graph = {
        "cleanroom.protocol.brand": {"cleanroom.protocol.helper"},
        "cleanroom.protocol.helper": {"cleanroom.faults"},
        "cleanroom.faults": {"grpc.aio"},
    }
    assert forbidden_reach(graph, "cleanroom.protocol", ["grpc"]) == [
        "cleanroom.faults -> grpc.aio"
    ]


def test_a_lazy_import_counts():
    tree = ast.parse("def f():\n    from cleanroom.brand import servicer\n")
    known = {"cleanroom.brand", "cleanroom.brand.servicer"}
    assert _imports(tree, "cleanroom_client.cli", False, known) == {"cleanroom.brand.servicer"}
