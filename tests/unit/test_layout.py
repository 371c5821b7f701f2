"""The package layout of DESIGN §2, checked from the source: no import cycle, views and
commands on top.

Every import statement of ``src/infbench`` is read with ``ast`` (lazy imports inside functions and
``TYPE_CHECKING`` blocks included, since a cycle through either still ties the modules together),
and cycles are looked for as strongly connected components of the module and package graphs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import infbench

SRC = Path(infbench.__file__).resolve().parent
TOP_MODULES_MAX = 10
# Only the face and the command layer may import the views or the commands.
UPPER = {"commands", "report"}
MAY_IMPORT_UPPER = {"cli", "commands", "__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The infbench modules a file imports (``from a import b`` counts a.b if it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("infbench"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("infbench"):
            found.add(str(node.module))
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in modules
            )
    return {name for name in found if name in modules}


def module_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in SRC.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) - {name} for name, path in files.items()}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in modules.items():
        edges = graph.setdefault(package_of(name), set())
        edges.update(package_of(target) for target in targets)
    for name, edges in graph.items():
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_cycle() -> None:
    assert cycles(module_graph()) == []


def test_no_package_cycle() -> None:
    assert cycles(package_graph(module_graph())) == []


def test_library_packages_never_import_commands_or_views() -> None:
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in module_graph().items()
        for target in targets
        if package_of(target) in UPPER
        and package_of(name) not in MAY_IMPORT_UPPER
        and package_of(name) != package_of(target)
        and not (package_of(name) == "report" and package_of(target) == "report")
    )
    assert offenders == []


def test_top_level_holds_the_face_and_leaves() -> None:
    top = sorted(path.name for path in SRC.glob("*.py"))
    assert len(top) <= TOP_MODULES_MAX, top
    assert not (SRC / "target").exists(), "target/ is a build-output folder name: use targets/"
