"""The Shopify stand-in's reading of a GraphQL field's arguments: literals and $variables."""

from __future__ import annotations

import json
import re

_ARG_RE = re.compile(r'(\w+)\s*:\s*(\$\w+|"(?:[^"\\]|\\.)*"|[\w.+-]+)')


def field_arguments(text: str, variables: dict) -> dict:
    """`name: value` pairs of an argument list (without its parentheses), variables resolved."""
    args = {}
    for name, raw in _ARG_RE.findall(text or ""):
        if raw.startswith("$"):
            value = variables.get(raw[1:])
        elif raw.startswith('"'):
            value = json.loads(raw)
        elif raw in ("true", "false"):
            value = raw == "true"
        elif raw == "null":
            value = None
        elif re.fullmatch(r"-?\d+", raw):
            value = int(raw)
        else:
            value = raw  # enum literal
        args[name] = value
    return args
