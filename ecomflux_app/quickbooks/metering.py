"""Intuit meters read calls (GET reads, queries, CDC) per app per month; writes are free. We count
every read we send, per company and month, in Redis, so support sees each company's share."""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, timezone

import redis

log = logging.getLogger(__name__)

KEEP_SECONDS = 40 * 24 * 3600  # a month's counter outlives its month by about ten days


def reads_key(realm: str, when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return f"ecomflux:qbo:reads:{realm}:{when:%Y-%m}"


def reads_in(method: str, path: str, body) -> int:
    """Metered reads one request costs: a GET is one; a batch counts each query it carries."""
    if method == "GET":
        return 1
    if path == "batch" and isinstance(body, dict):
        return sum(1 for item in body.get("BatchItemRequest") or [] if isinstance(item, dict) and "Query" in item)
    return 0


def count_reads(conn: redis.Redis, realm: str, reads: int) -> None:
    """Add to the company's month-to-date reads; a Redis hiccup never fails the QBO call itself."""
    if reads <= 0:
        return
    key = reads_key(realm)
    try:
        with conn.pipeline() as pipe:
            pipe.incrby(key, reads)
            pipe.expire(key, KEEP_SECONDS)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("read count for realm %s not kept: %s", realm, exc)


def projection(reads: int, now: datetime) -> int:
    """The month's reads at this month's pace so far (at least an hour of it counted)."""
    days = calendar.monthrange(now.year, now.month)[1]
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elapsed = max((now - start).total_seconds(), 3600.0)
    return int(round(reads * days * 86400 / elapsed))


def month_to_date(conn: redis.Redis, realms: list[str], now: datetime | None = None) -> dict[str, dict]:
    """realm -> {"reads": month-to-date reads, "projected": the month's reads at this pace}."""
    now = now or datetime.now(timezone.utc)
    realms = [r for r in realms if r]
    if not realms:
        return {}
    values = conn.mget([reads_key(r, now) for r in realms])
    out = {}
    for realm, value in zip(realms, values):
        reads = int(value or 0)
        out[realm] = {"reads": reads, "projected": projection(reads, now)}
    return out
