"""Dependencies point one way: web/CLI/workers -> sync -> adapters (quickbooks/, shopify/) -> models/translate.

Every import counts, at module level or inside a function. The lists of known exceptions are empty
(issue 20 removed the last); one added back has to be listed here by name, and the test fails when
one listed is gone.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ecomflux_app", "workers")
ADAPTERS = ("quickbooks", "shopify")
# The entry points: HTTP, the console script, the RQ jobs and the dev tooling that start the others.
ENTRY_POINTS = ("web", "cli", "workers", "wsgi", "webserver", "intake", "backfill_command", "devserver", "devseed")
ABOVE_ADAPTERS = ("sync",) + ENTRY_POINTS
# What everything stands on: settings, storage, secrets, the queue's plumbing, staff accounts, the
# vocabulary of work results. It imports only itself (and the pure core).
FOUNDATION = ("config", "crypto", "db", "models", "migrations", "work_queue", "runtime", "logging_setup", "work_results", "statuses",
              "login_throttle", "staff", "staff_sessions", "oauth_state")

KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = (package,) + path.relative_to(ROOT / package).with_suffix("").parts
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
    if parts[0] != "ecomflux_app":
        return parts[0]
    return parts[1] if len(parts) > 1 else ""


def _arrows(from_layers: tuple[str, ...], to_layers: tuple[str, ...]) -> set[tuple[str, str]]:
    edges = _edges(_modules())
    return {(a, b) for a, targets in edges.items() if _layer(a) in from_layers
            for b in targets if _layer(b) in to_layers}


def test_translate_imports_nothing_else_of_the_app():
    edges = _edges(_modules())
    outside = {(a, b) for a, targets in edges.items() if _layer(a) == "translate"
               for b in targets if _layer(b) != "translate"}
    assert outside == set()


def test_adapters_do_not_reach_up_into_sync_or_web_beyond_the_known_list():
    upward = _arrows(ADAPTERS, ABOVE_ADAPTERS)
    assert upward - KNOWN_UPWARD == set(), "a new arrow up from an adapter"
    assert KNOWN_UPWARD - upward == set(), "an arrow is gone: remove it from KNOWN_UPWARD"


def test_no_import_cycle_beyond_the_known_list():
    cycles = _cycles(_edges(_modules()))
    assert cycles - KNOWN_CYCLES == set(), "a new import cycle"
    assert KNOWN_CYCLES - cycles == set(), "a cycle is gone: remove it from KNOWN_CYCLES"


def test_one_adapter_does_not_reach_into_the_other():
    """QuickBooks and Shopify meet in sync/: what both need (state nonces, statuses) lives below them."""
    edges = _edges(_modules())
    across = {(a, b) for a, targets in edges.items() if _layer(a) in ADAPTERS
              for b in targets if _layer(b) in ADAPTERS and _layer(b) != _layer(a)}
    assert across == set()


def test_sync_does_not_reach_up_into_web_cli_or_workers():
    assert _arrows(("sync",), ENTRY_POINTS) == set()


def test_the_foundation_imports_only_itself_and_the_pure_core():
    edges = _edges(_modules())
    outside = {(a, b) for a, targets in edges.items() if _layer(a) in FOUNDATION
               for b in targets if _layer(b) not in FOUNDATION + ("translate",)}
    assert outside == set()


def test_the_rules_see_every_kind_of_import():
    """The graph is read from the source: a module-level, a function-level and a relative import all count."""
    edges = _edges(_modules())
    assert "ecomflux_app.sync.sweeper" in edges["ecomflux_app.intake"]
    assert "ecomflux_app.web.security" in edges["ecomflux_app"]  # inside create_app
    assert "ecomflux_app.quickbooks.client" in edges["ecomflux_app.quickbooks.connection"]  # from .client
    assert {"ecomflux_app.db", "ecomflux_app.runtime"} <= edges["workers.jobs"]
