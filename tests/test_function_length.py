"""Functions in translate/ and sync/ stay under 80 lines, so each reads as the named steps of its bookkeeping.

A function that grows to 80 lines (decorators excluded, docstring included) is carved into steps with
names a bookkeeper would recognise, not given a higher limit here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ecomflux_app"
GUARDED = ("translate", "sync")
LIMIT = 80


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    """'path:line name (n lines)' for every function, method or nested function under root of limit lines or more."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length >= limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_guarded_packages_exist():
    for name in GUARDED:
        assert any((PACKAGE / name).glob("*.py")), name


def test_no_function_in_translate_or_sync_reaches_80_lines():
    offenders = [f"{name}/{entry}" for name in GUARDED for entry in long_functions(PACKAGE / name)]
    assert not offenders, "carve these into named steps: " + "; ".join(offenders)


def _nested(tmp_path: Path, inner_lines: int) -> Path:
    """A module whose method f holds a nested function g of inner_lines + 1 lines."""
    inner = "\n".join(f"            x{i} = {i}" for i in range(inner_lines))
    (tmp_path / "m.py").write_text(f"class C:\n    def f(self):\n        def g():\n{inner}\n        return g\n")
    return tmp_path


def test_methods_and_nested_functions_count_from_80_lines(tmp_path):
    assert long_functions(_nested(tmp_path, LIMIT - 1)) == ["m.py:2 f (82 lines)", "m.py:3 g (80 lines)"]
    assert long_functions(_nested(tmp_path, LIMIT - 2)) == ["m.py:2 f (81 lines)"]
    assert long_functions(_nested(tmp_path, LIMIT - 4)) == []
