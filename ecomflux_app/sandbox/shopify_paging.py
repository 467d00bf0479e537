"""Connection paging of the Shopify stand-in (orders, payouts, balance transactions): sort, cursor, pageInfo."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable

_TERM_RE = re.compile(r"(\w+):(<=|>=|<|>)?('(?:[^']*)'|\"(?:[^\"]*)\"|\S+)")


def parse_search(text: str) -> list[tuple[str, str, str]]:
    """Shopify search syntax, the subset our queries use: `field:value`, `field:>=value`, ANDed."""
    return [(name, op or "=", value.strip("'\"")) for name, op, value in _TERM_RE.findall(text)]


def cursor(key: tuple) -> str:
    """An opaque cursor: the row's sort key, so `after` resumes past it whatever was added meanwhile."""
    return base64.b64encode(json.dumps(list(key)).encode()).decode()


def connection_page(rows: list[tuple[tuple, Any]], args: dict, render: Callable[[Any], dict]) -> tuple[dict, int]:
    """One page of a connection over (sort key, object) rows as the arguments ask (`first`, `after`,
    `reverse`): the connection (edges, nodes, pageInfo) and how many objects it holds."""
    first, after, reverse = int(args.get("first") or 0), args.get("after"), bool(args.get("reverse"))
    rows = sorted(rows, key=lambda r: r[0], reverse=reverse)
    if after:
        position = tuple(json.loads(base64.b64decode(after)))
        rows = [r for r in rows if (r[0] < position if reverse else r[0] > position)]
    page, more = rows[:first], len(rows) > first
    edges = [{"cursor": cursor(k), "node": render(o)} for k, o in page]
    return {"edges": edges, "nodes": [e["node"] for e in edges],
            "pageInfo": {"hasNextPage": more, "hasPreviousPage": bool(after),
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None}}, len(page)
