"""JSON for QBO payloads with Decimal amounts written as exact JSON numbers (never via float)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def dumps(value: Any, indent: int | None = None) -> str:
    """Serialize dicts/lists/str/int/bool/None/Decimal; Decimals keep their exact digits."""
    return _encode(value, indent, 0)


def _encode(value: Any, indent: int | None, level: int) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot encode {value!r}")
        text = format(value, "f")
        return text
    if isinstance(value, float):
        raise TypeError("floats are not allowed in QBO payloads")
    if value is None or isinstance(value, (bool, int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = [(json.dumps(str(k), ensure_ascii=False), _encode(v, indent, level + 1)) for k, v in value.items()]
        if not items:
            return "{}"
        if indent is None:
            return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        pad, inner = " " * indent * level, " " * indent * (level + 1)
        return "{\n" + ",\n".join(f"{inner}{k}: {v}" for k, v in items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)):
        parts = [_encode(v, indent, level + 1) for v in value]
        if not parts:
            return "[]"
        if indent is None:
            return "[" + ", ".join(parts) + "]"
        pad, inner = " " * indent * level, " " * indent * (level + 1)
        return "[\n" + ",\n".join(inner + p for p in parts) + "\n" + pad + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def loads(text: str) -> Any:
    """Parse JSON with numbers as Decimal (ints stay int)."""
    return json.loads(text, parse_float=Decimal)
