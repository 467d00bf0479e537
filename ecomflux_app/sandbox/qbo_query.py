"""The subset of QBO's query language the sandbox answers: SELECT * | COUNT(*) FROM E [WHERE ...] [ORDERBY ...]."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MAX_RESULTS = 1000

_QUERY = re.compile(
    r"^\s*select\s+(?P<what>\*|count\(\*\))\s+from\s+(?P<entity>\w+)"
    r"(?:\s+where\s+(?P<where>.+?))?"
    r"(?:\s+orderby\s+(?P<order>\w+)(?:\s+(?P<dir>asc|desc))?)?"
    r"(?:\s+startposition\s+(?P<start>\d+))?"
    r"(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)


# Entities whose WHERE clause QBO limits to a few properties (the rest answer 4001). Payment: no
# DocNumber, and neither PrivateNote nor PaymentRefNum is filterable.
FILTERABLE: dict[str, frozenset[str]] = {
    "Payment": frozenset({"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "TxnDate", "CustomerRef"}),
    "Deposit": frozenset({"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "TxnDate"}),
}


class QueryError(ValueError):
    """Not a query QBO would accept."""


class QueryValidationError(QueryError):
    """A well-formed query QBO still refuses (a property it cannot filter on)."""


@dataclass
class Query:
    entity: str
    count: bool
    conditions: list[tuple[str, str, Any]]
    order: str | None
    descending: bool
    start: int
    max_results: int


def _value(token: str) -> Any:
    token = token.strip()
    if token.startswith("'"):
        if not token.endswith("'") or len(token) < 2:
            raise QueryError(f"unterminated string {token!r}")
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    try:
        return float(token) if "." in token else int(token)
    except ValueError:
        raise QueryError(f"bad value {token!r}") from None


def _split_top(text: str, separator: str) -> list[str]:
    """Split on a separator (case-insensitive) that stands outside quotes and parentheses."""
    parts, current, depth, quote, i = [], [], 0, False, 0
    sep, width = separator.lower(), len(separator)
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
            current.append(ch)
        elif depth == 0 and text[i:i + width].lower() == sep:
            parts.append("".join(current))
            current = []
            i += width - 1
        else:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            current.append(ch)
        i += 1
    if quote:
        raise QueryError("unterminated string literal")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_COND = re.compile(r"^(?P<field>[\w.]+)\s*(?P<op><=|>=|!=|=|<|>|\blike\b|\bin\b)\s*(?P<value>.+)$", re.I | re.S)


def parse(text: str) -> Query:
    m = _QUERY.match(text or "")
    if not m:
        raise QueryError(f"QueryParserError: could not parse {text!r}")
    conditions = []
    if m.group("where"):
        for part in _split_top(m.group("where"), " and "):
            c = _COND.match(part)
            if not c:
                raise QueryError(f"QueryParserError: bad condition {part!r}")
            op = c.group("op").lower()
            raw = c.group("value").strip()
            if op == "in":
                if not (raw.startswith("(") and raw.endswith(")")):
                    raise QueryError("IN needs a parenthesised list")
                value: Any = [_value(v) for v in _split_top(raw[1:-1], ",")]
            else:
                value = _value(raw)
            conditions.append((c.group("field"), op, value))
    max_results = int(m.group("max") or 100)
    if max_results > MAX_RESULTS:
        raise QueryError(f"MAXRESULTS must be at most {MAX_RESULTS}")
    return Query(entity=m.group("entity"), count=m.group("what") != "*", conditions=conditions,
                 order=m.group("order"), descending=(m.group("dir") or "").lower() == "desc",
                 start=max(1, int(m.group("start") or 1)), max_results=max_results)


def check_filterable(entity: str, query: Query) -> None:
    """Raise QueryValidationError for a condition on a property QBO cannot filter this entity by."""
    allowed = FILTERABLE.get(entity)
    if allowed is None:
        return
    lowered = {name.lower() for name in allowed}
    for field, _op, _value in query.conditions:
        if field.lower() not in lowered:
            raise QueryValidationError(f"QueryValidationError: property '{field}' is not queryable")


def _field(obj: dict, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict):  # PrimaryEmailAddr = 'x' matches .Address; CustomerRef = '1' matches .value
        value = value.get("Address", value.get("value", value.get("FreeFormNumber")))
    return value


def _matches(obj: dict, field: str, op: str, value: Any) -> bool:
    actual = _field(obj, field)
    if op == "in":
        return any(_eq(actual, v) for v in value)
    if op == "like":
        pattern = "^" + re.escape(str(value)).replace("%", ".*") + "$"
        return actual is not None and re.match(pattern, str(actual), re.I | re.S) is not None
    if op == "=":
        return _eq(actual, value)
    if op == "!=":
        return not _eq(actual, value)
    if actual is None:
        return False
    if field.startswith("MetaData.") and isinstance(value, str):
        # Timestamps compare as instants, whatever offset each is written with (QBO parses both).
        a, b = _instant(str(actual)), _instant(value)
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    a, b = (str(actual), str(value)) if isinstance(value, str) else (float(actual), float(value))
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _instant(text: str):
    """An ISO 8601 timestamp as an aware datetime (no offset: UTC); unreadable -> QueryValidationError."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryValidationError(f"QueryValidationError: {text!r} is not a date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _eq(actual: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return (actual if actual is not None else True) is value
    if isinstance(value, (int, float)) and actual is not None:
        try:
            return float(actual) == float(value)
        except (TypeError, ValueError):
            return False
    # QBO string comparison is case-insensitive.
    return actual is not None and str(actual).lower() == str(value).lower()


def run(query: Query, rows: list[dict]) -> tuple[list[dict], int]:
    """(the page of rows, total matching count)."""
    mentions_active = any(f == "Active" for f, _, _ in query.conditions)
    out = [r for r in rows if (mentions_active or r.get("Active", True) is not False)
           and all(_matches(r, f, op, v) for f, op, v in query.conditions)]
    if query.order:
        out.sort(key=lambda r: (_field(r, query.order) is None, str(_field(r, query.order) or "")),
                 reverse=query.descending)
    total = len(out)
    return out[query.start - 1: query.start - 1 + query.max_results], total
