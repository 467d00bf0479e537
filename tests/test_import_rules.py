"""Dependencies point one way: web/CLI/workers -> sync -> adapters (quickbooks/, shopify/) -> models/translate.

The arrows still pointing up and the import cycles left are listed here by name, so none is added
unnoticed; each entry is work to remove (issue 20), and the test fails when one is gone but still listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ecomflux_app"
ADAPTERS = ("quickbooks", "shopify")
ABOVE_ADAPTERS = ("sync", "web")

KNOWN_UPWARD = {
    ("ecomflux_app.quickbooks.connection", "ecomflux_app.sync.sweeper"),
    ("ecomflux_app.quickbooks.connection", "ecomflux_app.sync.tax_setup"),
    ("ecomflux_app.shopify.oauth", "ecomflux_app.sync.sweeper"),
}
KNOWN_CYCLES = {
    frozenset({"ecomflux_app.shopify.tokens", "ecomflux_app.shopify.graphql", "ecomflux_app.shopify.oauth"}),
    frozenset({"ecomflux_app.sync.payments", "ecomflux_app.sync.orders"}),
    frozenset({"ecomflux_app.sandbox.qbo_deposit", "ecomflux_app.sandbox.intuit_server"}),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("ecomflux_app",) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every import of one of the package's modules, at module level or inside a function."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{alias.name}" for alias in node.names]
                targets = [n if n in modules else target for n in names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in modules and t != name)
    return edges


def _cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_translate_imports_nothing_else_of_the_app():
    edges = _edges(_modules())
    outside = {(a, b) for a, targets in edges.items() if _layer(a) == "translate"
               for b in targets if _layer(b) != "translate"}
    assert outside == set()


def test_adapters_do_not_reach_up_into_sync_or_web_beyond_the_known_list():
    edges = _edges(_modules())
    upward = {(a, b) for a, targets in edges.items() if _layer(a) in ADAPTERS
              for b in targets if _layer(b) in ABOVE_ADAPTERS}
    assert upward - KNOWN_UPWARD == set(), "a new arrow up from an adapter"
    assert KNOWN_UPWARD - upward == set(), "an arrow is gone: remove it from KNOWN_UPWARD"


def test_no_import_cycle_beyond_the_known_list():
    cycles = _cycles(_edges(_modules()))
    assert cycles - KNOWN_CYCLES == set(), "a new import cycle"
    assert KNOWN_CYCLES - cycles == set(), "a cycle is gone: remove it from KNOWN_CYCLES"
