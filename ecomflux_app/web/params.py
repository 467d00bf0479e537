"""Route, query, form and JSON parameters parsed in one place: a bad value is a 400 (an id no row can
have, a 404), answered as JSON under /api and as the console's own page under /support, never a 500."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.routing import IntegerConverter

# Row ids are PostgreSQL `integer` (peewee's AutoField): a larger one can name no row, and the
# database would refuse to compare with it (a 500) rather than find nothing.
MAX_ROW_ID = 2**31 - 1
# Dates the product can mean (orders, filters, reconciliations); beyond them datetime arithmetic
# overflows (year 9999 + 1 day) and nobody sells anything.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


class RowIdConverter(IntegerConverter):
    """`<id:name>`: a positive row id the database can hold; anything else matches no route (404)."""

    def __init__(self, url_map, **_kwargs):
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


class BadParameter(BadRequest):
    """A parameter that cannot mean anything: 400 with the field it came from."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field


def _text(source, name: str) -> str:
    return (source.get(name) or "").strip() if source is not None else ""


def query_int(name: str, *, low: int = 1, high: int = MAX_ROW_ID, source=None) -> int | None:
    """A whole number from the query (or `source`), None when absent; 400 when not one or out of range."""
    raw = _text(request.args if source is None else source, name)
    if not raw:
        return None
    # Digits only, and few enough to convert: int() alone would take "1_000", " 7" and 5,000 digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or not low <= int(raw) <= high:
        raise BadParameter(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def clamped_int(name: str, default: int, low: int, high: int) -> int:
    """A paging number from the query, forgiving: absent or unreadable is the default, out of range is clamped."""
    raw = _text(request.args, name)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return default
    return max(low, min(high, int(raw)))


def day(value, name: str) -> date | None:
    """A calendar day (YYYY-MM-DD, or the day of an ISO timestamp) within FIRST_DAY..LAST_DAY; None when empty."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, "must be a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= parsed <= LAST_DAY:
        raise BadParameter(name, f"must be a date from {FIRST_DAY} to {LAST_DAY}")
    return parsed


def query_day(name: str, source=None) -> date | None:
    """A day from the query (or `source`, e.g. request.form)."""
    return day(_text(request.args if source is None else source, name), name)


def _reject_nul() -> None:
    """No parameter may carry a NUL: PostgreSQL text cannot hold one, so any lookup with it fails."""
    parts = [*(request.view_args or {}).values(), *request.args.keys(), *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        parts += [*request.form.keys(), *request.form.values()]
    for part in parts:
        if isinstance(part, str) and "\x00" in part:
            raise BadRequest("parameters cannot contain a NUL character")


def _error_page(exc: HTTPException):
    """Errors of requests no blueprint answered (no route matched, or raised before the view): the
    area's own format (JSON under /api, the console's page under /support), else Flask's default."""
    path = request.path
    if path.startswith("/api/"):
        body = {"error": exc.description if exc.code == 400 else exc.name.lower()}
        if getattr(exc, "field", None):
            body["field"] = exc.field
        return jsonify(body), exc.code
    if path.startswith("/support/"):
        return render_template("support/error.html", code=exc.code, message=exc.description), exc.code
    return exc


def install(app: Flask) -> None:
    """Register the id converter, the NUL guard and the per-area error answers on the app."""
    app.url_map.converters["id"] = RowIdConverter
    app.before_request(_reject_nul)
    for code in (400, 404, 405):
        app.register_error_handler(code, _error_page)
