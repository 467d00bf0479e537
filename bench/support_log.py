"""Support log at 1,000,000 deliveries on PostgreSQL: first page, deep pages and every filter through the real view.

Usage: .venv/bin/python -m bench.support_log [--rows 1000000] [--repeat 5]
Creates (and drops) its own database via ECOMFLUX_BENCH_PG, fills it with one INSERT ... SELECT over
generate_series, signs in a staff user and times GET /support/webhooks with the Flask test client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from urllib.parse import parse_qs, urlparse

import psycopg2
from cryptography.fernet import Fernet

from ecomflux_app.config import SHOPIFY_API_VERSION

PG_ADMIN = os.environ.get("ECOMFLUX_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/15"  # db 15 belongs to the benchmarks
SHOPS = 20
TOPICS = ("orders/paid", "orders/fulfilled", "refunds/create", "orders/cancelled", "app/uninstalled")
# Realistic mix: almost everything posted, a little of every trouble state.
STATUS_SQL = ("CASE WHEN mod(g, 100) = 0 THEN 'failed' WHEN mod(g, 100) = 1 THEN 'flagged' WHEN mod(g, 100) = 2 THEN 'pending' "
              "WHEN mod(g, 50) = 3 THEN 'skipped_duplicate' WHEN mod(g, 7) = 0 THEN 'processed' ELSE 'posted' END")


def fill(dsn: str, rows: int) -> float:
    started = time.perf_counter()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    topics = "ARRAY[" + ",".join(f"'{t}'" for t in TOPICS) + "]"
    body = '{"id": 1, "email": "jon@example.com", "name": "#1001", "total_price": "10.00"}'
    with conn.cursor() as cur:
        # received_at spreads the rows over ~1 year, newest last, like a real log.
        cur.execute(f"""
            INSERT INTO webhookdelivery (webhook_id, event_id, topic, shop_domain, api_version, headers, body,
                status, attempts, order_id, order_name, resource_id, received_at, finished_at)
            SELECT 'wh-' || g, 'ev-' || g, ({topics})[1 + mod(g, {len(TOPICS)})],
                   'shop-' || mod(g, {SHOPS}) || '.myshopify.com', '{SHOPIFY_API_VERSION}', '{{}}', %s,
                   {STATUS_SQL}, 1, (5000000000 + g)::text, '#' || (1000 + g), (5000000000 + g)::text,
                   timestamp '2025-11-25' + (g * interval '31 seconds'),
                   timestamp '2025-11-25' + (g * interval '31 seconds') + interval '2 seconds'
            FROM generate_series(1, %s) AS g""", (body, rows))
        cur.execute("ANALYZE webhookdelivery")
    conn.close()
    return time.perf_counter() - started


def timed(client, url: str, repeat: int) -> tuple[float, float, object]:
    times, resp = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, (url, resp.status_code)
    return statistics.median(times), max(times), resp


def next_before(resp) -> int | None:
    """The keyset cursor of the page's "Older" link."""
    import re

    m = re.search(rb'href="([^"]*before=\d+[^"]*)"', resp.data)
    if not m:
        return None
    return int(parse_qs(urlparse(m.group(1).decode().replace("&amp;", "&")).query)["before"][0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    name = f"ecomflux_bench_support_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        from ecomflux_app import create_app
        from ecomflux_app.db import database
        from ecomflux_app.migrations import upgrade
        from ecomflux_app.staff import create_staff

        app = create_app({"INSTANCE_PATH": tempfile.mkdtemp(), "DATABASE_URL": dsn, "REDIS_URL": REDIS_URL,
                          "SECRET_KEY": "bench", "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
                          "TESTING": True})
        with database.connection_context():
            upgrade()
            create_staff("bench@example.com", "bench-password-123", "operator")
        fill_s = fill(dsn, args.rows)
        print(f"inserted {args.rows:,} deliveries in {fill_s:.1f} s")

        client = app.test_client()
        page = client.get("/support/login")
        import re

        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
        resp = client.post("/support/login", data={"email": "bench@example.com", "password": "bench-password-123",
                                                   "csrf_token": token})
        assert resp.status_code == 302, resp.status_code

        def report(label: str, url: str) -> object:
            med, worst, resp = timed(client, url, args.repeat)
            rows = resp.data.count(b'<td><a href="/support/webhooks/')
            print(f"{label:<44} median {med:7.1f} ms   max {worst:7.1f} ms   rows {rows}")
            return resp

        resp = report("first page", "/support/webhooks")
        # Walk 20 pages by the real "Older" links (keyset), then jump deep by cursor.
        before = next_before(resp)
        t0 = time.perf_counter()
        for _ in range(20):
            resp = client.get(f"/support/webhooks?before={before}")
            before = next_before(resp)
        print(f"{'20 consecutive pages (walked, each)':<44} mean   {(time.perf_counter() - t0) * 50:7.1f} ms")
        report("page at id 500,000 (middle)", f"/support/webhooks?before={args.rows // 2}")
        report("page at id 120 (last pages)", "/support/webhooks?before=120")
        report("filter shop", "/support/webhooks?shop=shop-7.myshopify.com")
        report("filter shop, deep", f"/support/webhooks?shop=shop-7.myshopify.com&before={args.rows // 10}")
        report("filter topic", "/support/webhooks?topic=refunds/create")
        report("filter status=failed", "/support/webhooks?status=failed")
        report("filter status=failed, deep", f"/support/webhooks?status=failed&before={args.rows // 10}")
        report("filter status=pending + shop", "/support/webhooks?status=pending&shop=shop-2.myshopify.com")
        report("filter date range (one recent day)", "/support/webhooks?since=2026-03-01&until=2026-03-01")
        report("filter date range (old day)", "/support/webhooks?since=2025-11-26&until=2025-11-26")
        report("search order name", f"/support/webhooks?q=%23{1000 + args.rows // 3}")
        report("search order id", f"/support/webhooks?q={5000000000 + args.rows // 4}")
        report("search no match", "/support/webhooks?q=nothing-like-this")
        report("all filters combined", "/support/webhooks?shop=shop-0.myshopify.com&topic=orders/paid"
                                       "&status=failed&since=2025-12-01&until=2026-06-01")
        database.close()
        if database.obj is not None and hasattr(database.obj, "close_all"):
            database.obj.close_all()
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


if __name__ == "__main__":
    main()
