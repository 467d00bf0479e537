"""Requested query cost the way Shopify computes it: objects 1, scalars 0, connections 2 + first x node."""

from __future__ import annotations

import re

MAX_QUERY_COST = 1000
_TOKEN = re.compile(r'\.\.\.|\$?[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[{}():,!\[\]=@]')
# Connection plumbing costs nothing itself; each node (an object) costs 1 times `first`.
_WRAPPERS = frozenset({"edges", "pageInfo"})


def requested_cost(query: str, variables: dict | None = None) -> int:
    """The requested cost of the operation's selection set (the figure Shopify checks against 1000)."""
    tokens = _TOKEN.findall(query)
    if "{" not in tokens:
        raise ValueError("syntax error: no selection set")
    total, _ = _selection(tokens, tokens.index("{"), variables or {})
    return total


def _arguments(tokens: list[str], i: int, variables: dict) -> tuple[dict, int]:
    args: dict = {}
    i += 1  # "("
    while tokens[i] != ")":
        name, value = tokens[i], tokens[i + 2]
        i += 3
        if value.startswith("$"):
            args[name] = variables.get(value[1:])
        elif re.fullmatch(r"-?\d+", value):
            args[name] = int(value)
        else:
            args[name] = value
        if tokens[i] == ",":
            i += 1
    return args, i + 1


def _selection(tokens: list[str], i: int, variables: dict) -> tuple[int, int]:
    i += 1  # "{"
    total = 0
    while tokens[i] != "}":
        if tokens[i] == "...":
            i += 3 if tokens[i + 1] == "on" else 1
            sub, i = _selection(tokens, i, variables)
            total += sub  # a typed fragment: count its fields like the enclosing object's
            continue
        name = tokens[i]
        i += 1
        if tokens[i] == ":":  # alias
            name = tokens[i + 1]
            i += 2
        args: dict = {}
        if tokens[i] == "(":
            args, i = _arguments(tokens, i, variables)
        if tokens[i] == "{":
            sub, i = _selection(tokens, i, variables)
            first = args.get("first", args.get("last"))
            if isinstance(first, int):
                total += 2 + first * sub
            elif name in _WRAPPERS:
                total += sub
            else:
                total += 1 + sub
    return total, i + 1
