"""The package's layers: no two of ``ablate``'s packages (or root modules) import each other, directly or round a
longer loop. Walked with ``ast`` over every module, entry points (``__main__.py``, ``if __name__ == "__main__":``) and
lazy imports inside functions included; left out are imports for type checkers only (``if TYPE_CHECKING:``)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ablate"


def _unit(module: str) -> str:
    """The layer a module belongs to: its package under ``ablate`` (``ablate.tune``), or itself at the root."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return f"ablate.{parts[1]}"
    return ".".join(parts[:2])


def _skipped(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` blocks."""
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imports(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if _skipped(node):
            yield from (n for child in node.orelse for n in _imports(ast.Module([child], [])))
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        yield from _imports(node)


def import_graph() -> dict[str, dict[str, set[str]]]:
    """Layer → layer it imports → the files that do."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        source = _unit(module)
        for name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name.startswith("ablate.") and _unit(name) not in (source, "ablate"):
                graph.setdefault(source, {}).setdefault(_unit(name), set()).add(str(path.relative_to(PACKAGE.parent)))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one layer (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_packages():
    graph = import_graph()
    loops = cycles(graph)
    where = [f"{a} → {b}: {sorted(graph[a][b])}" for loop in loops for a in loop for b in loop
             if b in graph.get(a, {})]
    assert not loops, "\n".join(where)


def test_the_walk_sees_a_cycle_when_there_is_one():
    """The check itself can fail: a loop added to the real graph is found, lazy imports count, type-only ones don't."""
    graph = import_graph()
    assert "ablate.models" in graph.get("ablate.tune", {})  # tune builds models: the walk sees real imports
    graph.setdefault("ablate.models", {})["ablate.tune"] = {"made-up"}
    assert any({"ablate.models", "ablate.tune"} <= set(loop) for loop in cycles(graph))
    lazy = ast.parse("def f():\n    from ablate.tune import x\nif TYPE_CHECKING:\n    from ablate.report import y\n")
    assert set(_imports(lazy)) == {"ablate.tune", "ablate.tune.x"}
