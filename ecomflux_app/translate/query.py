"""Safe literals for QBO query strings (single quotes escaped as \\')."""

from __future__ import annotations

import re

_ENTITY = re.compile(r"^[A-Za-z]+$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")
MAX_RESULTS = 1000


def escape(value: str) -> str:
    """Escape a value for use inside '...' in a QBO query (Intuit documents \\' for a quote)."""
    return value.replace("'", "\\'")


def quote(value: str) -> str:
    """A quoted query literal."""
    return "'" + escape(value) + "'"


def select_eq(entity: str, field: str, value: str, *, max_results: int | None = None,
              active_any: bool = False) -> str:
    """SELECT * FROM entity WHERE field = 'value' (optionally matching inactive records too)."""
    if not _ENTITY.match(entity) or not _FIELD.match(field):
        raise ValueError(f"bad entity/field name: {entity!r} {field!r}")
    where = f"{field} = {quote(value)}"
    if active_any:
        # Inactive customers/items are hidden unless asked for: reactivating beats a duplicate.
        where += " AND Active IN (true, false)"
    sql = f"SELECT * FROM {entity} WHERE {where}"
    if max_results is not None:
        sql += f" MAXRESULTS {min(max(1, max_results), MAX_RESULTS)}"
    return sql
