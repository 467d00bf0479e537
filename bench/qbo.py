"""QBO-side benchmarks against the throttling sandbox: calls per order, throughput vs Intuit's limits,
end-to-end latency and fairness across shops.

Everything runs on this machine: the Intuit and Shopify sandboxes are served over loopback HTTP
by this process, the app's workers run as real `ecomflux worker` processes against PostgreSQL
and Redis, webhooks come through the real (signed) endpoint.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("ECOMFLUX_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
# db 15 by default; on a machine where several checkouts run benchmarks at once, give each its own
# (a Bench flushes its db at start).
REDIS_URL = os.environ.get("ECOMFLUX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


class Bench:
    """A fresh database, both sandboxes and the app, wired through the configuration contract."""

    def __init__(self, db: str = "postgres", label: str = "qbo"):
        from ecomflux_app.config import (
            DEV_INTUIT_CLIENT_ID,
            DEV_INTUIT_CLIENT_SECRET,
            DEV_SHOPIFY_API_KEY,
            DEV_SHOPIFY_API_SECRET,
        )
        from ecomflux_app.sandbox.intuit_server import create_intuit_sandbox
        from ecomflux_app.sandbox.serving import BackgroundServer
        from ecomflux_app.sandbox.shopify_server import create_shopify_sandbox

        label += os.environ.get("ECOMFLUX_BENCH_SUFFIX", "")  # its own database and files beside other checkouts
        self.workdir = Path(f"/tmp/ecomflux-bench-{label}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if db == "postgres":
            name = f"ecomflux_bench_{label}"
            admin = psycopg2.connect(PG_ADMIN)
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
                cur.execute(f"CREATE DATABASE {name}")
            admin.close()
            db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        else:
            for suffix in ("", "-wal", "-shm"):
                (self.workdir / f"bench.db{suffix}").unlink(missing_ok=True)
            db_url = f"sqlite:///{self.workdir / 'bench.db'}"
        self.shopify_app = create_shopify_sandbox(DEV_SHOPIFY_API_KEY, DEV_SHOPIFY_API_SECRET)
        self.intuit_app = create_intuit_sandbox(DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET)
        self.servers = [BackgroundServer(self.shopify_app).start(), BackgroundServer(self.intuit_app).start()]
        shopify_url, intuit_url = self.servers[0].url, self.servers[1].url
        self.env = dict(
            os.environ, DATABASE_URL=db_url, REDIS_URL=REDIS_URL, ECOMFLUX_INSTANCE=str(self.workdir),
            ENCRYPTION_KEYS=Fernet.generate_key().decode(), SECRET_KEY="bench",
            SHOPIFY_SHOP_BASE_URL=f"{shopify_url}/{{shop}}",
            INTUIT_ENVIRONMENT=f"{intuit_url}/.well-known/openid_configuration", QBO_API_BASE_URL=f"{intuit_url}/v3",
            PYTHONPATH=str(ROOT),
        )
        os.environ.update({k: v for k, v in self.env.items() if k != "PYTHONPATH"})
        from ecomflux_app import create_app, runtime
        from ecomflux_app.db import database
        from ecomflux_app.migrations import upgrade

        self.app = create_app()
        runtime.redis().flushdb()
        with database.connection_context():
            upgrade()
        self.client = self.app.test_client()
        self.intuit = self.intuit_app.sandbox
        self.shopify = self.shopify_app.sandbox
        self.workers: list[subprocess.Popen] = []

    def shop(self, domain: str, latency: float = 0.0, item_latency: float = 0.0) -> tuple[object, str]:
        from ecomflux_app.db import database
        from ecomflux_app.sandbox.harness import connect_to_sandbox_company, install_sandbox_shop

        realm = self.intuit.create_company(name=f"{domain} books")
        self.intuit.companies[realm].latency = latency
        self.intuit.companies[realm].item_latency = item_latency  # a batch takes this per item
        with database.connection_context():
            shop = install_sandbox_shop(self.app.config, self.shopify, domain, currency="USD",
                                        timezone="America/New_York", country="US")
            connect_to_sandbox_company(shop, self.intuit, realm)
        return shop, realm

    def send(self, shop_domain: str, orders: list[dict], senders: int = 1) -> None:
        """Post signed webhooks; several senders make the intake group-commit them into batch jobs."""
        from concurrent.futures import ThreadPoolExecutor

        from tests.helpers import post_webhook

        def one(order: dict) -> None:
            with self.app.test_client() as client:
                resp = post_webhook(client, "orders/fulfilled", shop_domain, order)
            assert resp.status_code == 200, resp.data

        with ThreadPoolExecutor(max_workers=senders) as pool:
            list(pool.map(one, orders))

    def drain_in_process(self, until_done: bool = False, deadline_s: float = 600) -> None:
        """Run queued jobs here; with until_done, keep sweeping retries (throttled work) until all posted."""
        from ecomflux_app import runtime
        from ecomflux_app.db import database
        from ecomflux_app.models import WebhookDelivery
        from ecomflux_app.sync.sweeper import sweep
        from tests.helpers import drain

        deadline = time.time() + deadline_s
        with database.connection_context():
            while True:
                drain(runtime.redis())
                waiting = WebhookDelivery.select().where(WebhookDelivery.status.in_(("pending", "queued"))).count()
                if not until_done or not waiting or time.time() > deadline:
                    return
                time.sleep(1.0)  # wait for the per-minute QBO budget to refill (benchmark pacing)
                sweep(runtime.redis(), 0)

    def start_workers(self, count: int) -> None:
        for n in range(count):
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "ecomflux_app.cli", "worker", "--name", f"bench-{os.getpid()}-{n}"]
                + (["--fork"] if os.environ.get("ECOMFLUX_BENCH_FORK_WORKERS") == "1" else []),
                env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        """Until `count` workers have registered as alive (their first dequeue), at most `timeout` seconds."""
        from ecomflux_app import runtime
        from ecomflux_app.work_queue import LIVE_WORKERS_KEY

        deadline = time.time() + timeout
        while runtime.redis().zcard(LIVE_WORKERS_KEY) < count and time.time() < deadline:
            time.sleep(0.2)  # benchmark pacing: the worker processes start up

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        for server in self.servers:
            server.stop()

    def posted(self, shop=None) -> list:
        from ecomflux_app.db import database
        from ecomflux_app.models import SyncRecord

        with database.connection_context():
            query = SyncRecord.select().where(SyncRecord.status == "posted")
            if shop is not None:
                query = query.where(SyncRecord.shop == shop.id)
            return list(query)

    def latencies(self, shop) -> list[float]:
        """Seconds from webhook receipt to the QBO document being recorded, per posted order."""
        from ecomflux_app.db import database
        from ecomflux_app.models import SyncRecord, WebhookDelivery

        with database.connection_context():
            rows = (SyncRecord.select(SyncRecord.posted_at, WebhookDelivery.received_at)
                    .join(WebhookDelivery, on=(SyncRecord.delivery == WebhookDelivery.id))
                    .where((SyncRecord.shop == shop.id) & (SyncRecord.status == "posted")).tuples())
            return [(posted - received).total_seconds() for posted, received in rows]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)


def efficiency(orders: int = 600, customers: int = 150, one_at_a_time: bool = False) -> dict:
    """QBO calls per posted order on a realistic week (repeat buyers, Zipf SKUs), one worker: the week
    queued at once, or (one_at_a_time) each order posted before the next arrives, as on a quiet day."""
    from ecomflux_app.sandbox.demo_orders import OrderGenerator

    label = f"efficiency-{customers}" + ("-each" if one_at_a_time else "")
    bench = Bench(db="sqlite", label=label)  # own file: several runs in one process
    try:
        shop, realm = bench.shop("week-shop.myshopify.com")
        corpus = OrderGenerator(seed=42, customers=customers).week(orders)
        started = time.perf_counter()
        if one_at_a_time:
            for order in corpus:
                bench.send(shop.domain, [order])
                bench.drain_in_process(until_done=True)
        else:
            bench.send(shop.domain, corpus)
            started = time.perf_counter()
            bench.drain_in_process(until_done=True)
        seconds = time.perf_counter() - started
        posted = len(bench.posted(shop))
        counters = bench.intuit.companies[realm].counters
        return {"orders": orders, "posted": posted, "qbo_calls": counters["requests"],
                "calls_per_order": round(counters["requests"] / max(posted, 1), 3),
                "customers_created": counters["created"].get("Customer", 0),
                "items_created": counters["created"].get("Item", 0), "by_endpoint": counters["by_endpoint"],
                "seconds": round(seconds, 1),
                "corpus": f"1 week, {customers} customers (Zipf repeat buyers), Zipf SKUs",
                "arrival": "one at a time, each posted before the next" if one_at_a_time else "all queued, then drained"}
    finally:
        bench.stop()


def throughput(realms: int, workers: int = 6, seconds: int = 60, backlog_per_realm: int = 1100,
               settle: int = 60) -> dict:
    """Orders posted per minute per realm with several worker processes against the throttling sandbox.

    Measured over `seconds` of steady state after `settle` seconds: a rolling-minute budget lets the
    first minute burst, so a window that starts with the workers would overstate the rate.
    """
    from ecomflux_app.sandbox.demo_orders import OrderGenerator

    bench = Bench(db="postgres", label=f"throughput{realms}")
    try:
        shops = [bench.shop(f"tp{n}-shop.myshopify.com") for n in range(realms)]
        for n, (shop, _realm) in enumerate(shops):
            gen = OrderGenerator(seed=100 + n, customers=20)
            warm = gen.week(20)  # caches warm (customers/items exist): steady state is one call per order
            bench.send(shop.domain, warm)
        bench.drain_in_process()
        for n, (shop, _realm) in enumerate(shops):
            bench.send(shop.domain, OrderGenerator(seed=100 + n, customers=20).week(backlog_per_realm)[20:])
        bench.start_workers(workers)
        time.sleep(settle)  # let the first (burst) minute pass: benchmark pacing, not synchronisation
        start_counts = {realm: bench.intuit.companies[realm].counters["requests"] for _, realm in shops}
        start_posted = {realm: len(bench.posted(shop)) for shop, realm in shops}
        t0 = time.time()
        time.sleep(seconds)  # the measurement window
        elapsed = time.time() - t0
        per_realm = {}
        for shop, realm in shops:
            counters = bench.intuit.companies[realm].counters
            calls = counters["requests"] - start_counts[realm]
            per_realm[realm] = {"orders_posted": len(bench.posted(shop)) - start_posted[realm], "qbo_calls": calls,
                                "calls_per_min": round(calls * 60 / elapsed, 1),
                                "throttled_429": counters["throttled"]}
        total_posted = sum(v["orders_posted"] for v in per_realm.values())
        return {"realms": realms, "workers": workers, "window_s": round(elapsed, 1),
                "orders_per_min_total": round(total_posted * 60 / elapsed, 1),
                "orders_per_min_per_realm": round(total_posted * 60 / elapsed / realms, 1),
                "share_of_500_per_min": round(total_posted * 60 / elapsed / realms / 500, 3),
                "throttled_429_total": sum(v["throttled_429"] for v in per_realm.values()),
                "per_realm": per_realm}
    finally:
        bench.stop()


def latency(orders: int = 120, per_second: float = 2.0, workers: int = 2, qbo_latency: float = 0.2) -> dict:
    """Fulfilled -> posted with no backlog: a steady stream of orders (new and repeat buyers, new and
    known SKUs), QBO answering each request in `qbo_latency` seconds, real worker processes."""
    from ecomflux_app.sandbox.demo_orders import OrderGenerator

    bench = Bench(db="postgres", label="latency")
    try:
        shop, realm = bench.shop("steady-shop.myshopify.com", latency=qbo_latency)
        bench.start_workers(workers)
        stream = OrderGenerator(seed=7, customers=60).week(orders)
        started = time.perf_counter()
        for n, order in enumerate(stream):
            bench.send(shop.domain, [order])
            # Open loop: each order is sent at its scheduled time, whatever the app is doing.
            time.sleep(max(0.0, started + (n + 1) / per_second - time.perf_counter()))
        deadline = time.time() + 120
        while len(bench.posted(shop)) < orders and time.time() < deadline:
            time.sleep(0.5)  # benchmark pacing: poll the ledger until every order is posted
        seconds = bench.latencies(shop)
        counters = bench.intuit.companies[realm].counters
        return {"orders": orders, "rate_per_s": per_second, "workers": workers, "qbo_latency_s": qbo_latency,
                "posted": len(seconds), "latency_p50_s": pct(seconds, 50), "latency_p90_s": pct(seconds, 90),
                "latency_p99_s": pct(seconds, 99), "latency_max_s": round(max(seconds), 3) if seconds else None,
                "qbo_calls": counters["requests"], "customers_created": counters["created"].get("Customer", 0),
                "measured": "webhook received -> QBO document recorded in the ledger"}
    finally:
        bench.stop()


def latency_and_fairness(backlog: int = 900, fresh: int = 40, workers: int = 4, qbo_latency: float = 0.0,
                         item_latency: float = 0.2) -> dict:
    """Shop A has a burst backlog; shop B's new orders arrive one a second: B's p50/p99 and A's rate.

    QBO answers each operation in `item_latency` seconds (plus `qbo_latency` per request), so a batch
    of 30 creates takes 30 times as long as a single call, as QBO works through a batch's items in turn."""
    from ecomflux_app.sandbox.demo_orders import OrderGenerator

    bench = Bench(db="postgres", label="fairness")
    try:
        shop_a, realm_a = bench.shop("busy-shop.myshopify.com", latency=qbo_latency, item_latency=item_latency)
        shop_b, _ = bench.shop("quiet-shop.myshopify.com", latency=qbo_latency, item_latency=item_latency)
        # The backlog arrives as a burst, so it sits in the queue as batch jobs of many orders each.
        bench.send(shop_a.domain, OrderGenerator(seed=1, customers=200).week(backlog), senders=32)
        from ecomflux_app import runtime
        from ecomflux_app.work_queue import get_queue, shop_queue_name

        a_jobs = get_queue(runtime.redis(), shop_queue_name(shop_a.domain)).count
        bench.start_workers(workers)
        gen_b = OrderGenerator(seed=2, customers=10)
        a_before, t0 = len(bench.posted(shop_a)), time.time()
        for order in gen_b.week(fresh):
            bench.send(shop_b.domain, [order])
            time.sleep(1.0)  # B's orders arrive at one a second while A's backlog drains
        deadline = time.time() + 60
        while len(bench.posted(shop_b)) < fresh and time.time() < deadline:
            time.sleep(0.5)
        a_window, a_after = time.time() - t0, len(bench.posted(shop_a))
        b_latency = bench.latencies(shop_b)
        a_latency = bench.latencies(shop_a)
        return {"shop_b_latencies_s_in_order_posted": [round(s, 1) for s in b_latency],
                "qbo_latency_s": qbo_latency, "qbo_item_latency_s": item_latency, "workers": workers,
                "shop_a_backlog": backlog, "shop_a_posted_meanwhile": len(a_latency),
                "shop_a_orders_per_min": round((a_after - a_before) * 60 / a_window, 1),
                "shop_a_rate_window_s": round(a_window, 1), "shop_a_batch_jobs_at_start": a_jobs,
                "shop_b_orders": fresh, "shop_b_posted": len(b_latency),
                "shop_b_latency_p50_s": pct(b_latency, 50), "shop_b_latency_p99_s": pct(b_latency, 99),
                "shop_b_latency_max_s": round(max(b_latency), 3) if b_latency else None,
                "shop_a_latency_median_s": round(statistics.median(a_latency), 1) if a_latency else None,
                "shop_a_qbo_calls": bench.intuit.companies[realm_a].counters["by_endpoint"]}
    finally:
        bench.stop()


def batch_drain(backlog: int = 3000, workers: int = 4, item_latency: float = 0.2, fresh_per_s: float = 1.0,
                deadline_s: float = 900) -> dict:
    """One company's backlog of `backlog` orders drained through batch requests while shop B's fresh orders
    arrive one a second: A's documents per minute, responses 429, metered reads per order, B's p50/p99.

    QBO answers each operation in `item_latency` seconds, one after another within a batch (a 30-item
    batch takes 30 times as long); real worker processes, PostgreSQL, the strict sandbox's limits."""
    from ecomflux_app.sandbox.demo_orders import OrderGenerator

    bench = Bench(db="postgres", label="drain")
    try:
        shop_a, realm_a = bench.shop("backlog-shop.myshopify.com", item_latency=item_latency)
        shop_b, realm_b = bench.shop("fresh-shop.myshopify.com", item_latency=item_latency)
        # The backlog sits in the queue as when a company comes back: many jobs of many orders each.
        bench.send(shop_a.domain, OrderGenerator(seed=1, customers=300).week(backlog), senders=32)
        bench.start_workers(workers)
        bench.wait_for_workers(workers)  # B's latency is measured from a running system, not its start-up
        gen_b, sent_b, t0 = OrderGenerator(seed=2, customers=10), 0, time.time()
        stream_b = gen_b.week(int(deadline_s * fresh_per_s))
        while len(bench.posted(shop_a)) < backlog and time.time() - t0 < deadline_s:
            bench.send(shop_b.domain, [stream_b[sent_b]])
            sent_b += 1
            time.sleep(1.0 / fresh_per_s)  # B's orders arrive at their pace while A's backlog drains
        a_done_at = time.time()
        while len(bench.posted(shop_b)) < sent_b and time.time() - a_done_at < 60:
            time.sleep(0.5)  # benchmark pacing: B's last orders
        from ecomflux_app.db import database
        from ecomflux_app.models import SyncRecord

        with database.connection_context():
            stamps = sorted(r.posted_at for r in SyncRecord.select(SyncRecord.posted_at).where(
                (SyncRecord.shop == shop_a.id) & (SyncRecord.status == "posted") & (SyncRecord.kind == "order")))
        span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else 0.0
        # Steady state: the minutes after the first (the rolling budgets let the first minute burst).
        later = [s for s in stamps if (s - stamps[0]).total_seconds() >= 60] if stamps else []
        steady = (later[-1] - later[0]).total_seconds() if len(later) > 1 else 0.0
        company_a, company_b = bench.intuit.companies[realm_a], bench.intuit.companies[realm_b]
        b_latency = bench.latencies(shop_b)
        return {"backlog": backlog, "workers": workers, "qbo_item_latency_s": item_latency,
                "posted": len(stamps), "drain_seconds": round(span, 1),
                "documents_per_min": round(len(stamps) * 60 / span, 1) if span else None,
                "documents_per_min_after_first_minute": round(len(later) * 60 / steady, 1) if steady else None,
                "throttled_429": company_a.counters["throttled"] + company_b.counters["throttled"],
                "qbo_requests": company_a.counters["requests"], "reads": company_a.counters["reads"],
                "reads_per_order": round(company_a.counters["reads"] / max(len(stamps), 1), 4),
                "calls_per_order": round(company_a.counters["requests"] / max(len(stamps), 1), 4),
                "documents_in_qbo": len(company_a.entities["SalesReceipt"]) + len(company_a.entities["Invoice"]),
                "by_endpoint": dict(company_a.counters["by_endpoint"]),
                "shop_b_orders": sent_b, "shop_b_posted": len(b_latency),
                "shop_b_latency_p50_s": pct(b_latency, 50), "shop_b_latency_p99_s": pct(b_latency, 99),
                "shop_b_latency_max_s": round(max(b_latency), 3) if b_latency else None}
    finally:
        bench.stop()


def _notify_app(bench: Bench, token: str | None) -> None:
    """Point the Intuit sandbox's change notifications at the app (in-process) and tell the app its token."""
    def post(body: bytes, headers: dict) -> int:
        with bench.app.test_client() as client:
            return client.post("/qbo/notifications", data=body, headers=headers).status_code

    bench.app.config["INTUIT_WEBHOOK_VERIFIER_TOKEN"] = token
    bench.intuit.notification_target, bench.intuit.verifier_token = (post, token) if token else (None, None)


def _age_directories(realm: str, seconds: float) -> None:
    """Time passes for the app's directories: their last read moves `seconds` into the past."""
    from ecomflux_app import runtime
    from ecomflux_app.sync.references import DIRECTORY_AS_OF

    conn = runtime.redis()
    for key in conn.scan_iter(f"ecomflux:qbo-directory:{realm}:*"):
        if conn.type(key) in (b"hash", "hash") and conn.hexists(key, DIRECTORY_AS_OF):
            conn.hset(key, DIRECTORY_AS_OF, repr(float(conn.hget(key, DIRECTORY_AS_OF)) - seconds))


def _pass_time(bench: Bench, realm: str, seconds: float) -> None:
    """Time passes for everything that remembers QBO answers by the clock: the directories, the page's
    company check (per process and shared), the settings page's lists, the last successful call."""
    from datetime import timedelta

    from ecomflux_app import runtime
    from ecomflux_app.db import database
    from ecomflux_app.models import QboConnection
    from ecomflux_app.quickbooks import connection

    _age_directories(realm, seconds)
    conn = runtime.redis()
    if seconds >= connection.CHECK_SECONDS:
        connection._checked.clear()
        if hasattr(connection, "checked_key"):  # shared by every process since 2026-12-04
            conn.delete(connection.checked_key(realm))
    for key in conn.scan_iter("ecomflux:qbo-options:*"):
        left = conn.ttl(key)
        if 0 <= left <= seconds:
            conn.delete(key)
        elif left > seconds:
            conn.expire(key, int(left - seconds))
    with database.connection_context():
        for row in QboConnection.select().where((QboConnection.realm_id == realm)
                                                & QboConnection.last_success_at.is_null(False)):
            QboConnection.update(last_success_at=row.last_success_at - timedelta(seconds=seconds)).where(
                QboConnection.id == row.id).execute()


def _page_visit(bench: Bench, domain: str, realm: str, minutes: int = 30, refresh_every: int = 5,
                save: bool = False) -> None:
    """The admin opens the Accounting page and keeps it open `minutes`: the page's own calls (status,
    settings, the lists for the settings and payouts cards), Refresh every `refresh_every` minutes,
    optionally a settings save (its ids are checked against the company's lists)."""
    headers = {"Authorization": f"Bearer {bench.shopify.session_token(domain, expires_in=300)}"}
    with bench.app.test_client() as client:
        for path in ("/api/status", "/api/settings", "/api/options", "/api/options"):  # app.js, then payouts.js
            assert client.get(path, headers=headers).status_code == 200, path
        if save:
            settings = client.get("/api/settings", headers=headers).get_json()["settings"]
            answer = client.put("/api/settings", json={"document_type": settings["document_type"]}, headers=headers)
            assert answer.status_code == 200, answer.data
        for _ in range(minutes // refresh_every):
            _pass_time(bench, realm, refresh_every * 60)
            assert client.get("/api/status", headers=headers).status_code == 200


def reads(orders: int = 1000, customers: int = 150, spacing_minutes: float = 5.0, one_at_a_time_orders: int = 400,
          notified: bool = True) -> dict:
    """Metered QBO reads (counted by the Intuit sandbox as Intuit meters them: GET reads, queries, CDC,
    queries inside batches) per posted order, with QuickBooks change notifications on (or off: polling):
    a week queued at once; orders one at a time `spacing_minutes` apart (the directories age between
    orders, as the clock would move them); and an idle company's day (keepalive every 6 h, the daily
    reconciliation, the bookkeeper editing customers and items in QuickBooks)."""
    from datetime import timedelta

    from ecomflux_app.db import database
    from ecomflux_app.quickbooks.keepalive import keep_connections_alive
    from ecomflux_app.sandbox.demo_orders import OrderGenerator
    from ecomflux_app.sync.reconcile import reconcile_range, shop_today

    bench = Bench(db="sqlite", label="reads" + ("" if notified else "-polling"))
    token = "bench-verifier-token" if notified else None
    _notify_app(bench, token)
    out: dict = {"notifications": notified, "corpus": f"1 week, {customers} customers (Zipf repeat buyers), Zipf SKUs"}
    try:
        # A burst: the week queued at once, notifications delivered every second while it drains.
        shop, realm = bench.shop("burst-shop.myshopify.com")
        stop = bench.intuit.start_notifier(1.0)
        bench.send(shop.domain, OrderGenerator(seed=42, customers=customers).week(orders), senders=8)
        bench.drain_in_process(until_done=True)
        stop.set()
        bench.intuit.deliver_notifications()
        company = bench.intuit.companies[realm]
        posted = len(bench.posted(shop))
        out["burst"] = {"orders": orders, "posted": posted, "reads": company.counters["reads"],
                        "reads_per_order": round(company.counters["reads"] / max(posted, 1), 4),
                        "by_endpoint": dict(company.counters["by_endpoint"])}

        # One at a time, minutes apart: a company's first orders, from its connect on.
        shop, realm = bench.shop("quiet-day-shop.myshopify.com")
        company = bench.intuit.companies[realm]
        from ecomflux_app.models import QboConnection
        from ecomflux_app.quickbooks.connection import _read_company
        with database.connection_context():  # what the OAuth callback reads (CompanyInfo, Preferences)
            _read_company(QboConnection.get(QboConnection.realm_id == realm))
        connect_reads = company.counters["reads"]
        corpus = OrderGenerator(seed=42, customers=customers).week(one_at_a_time_orders)
        after: dict[int, int] = {}
        for n, order in enumerate(corpus, 1):
            bench.send(shop.domain, [order])
            bench.drain_in_process(until_done=True)
            bench.intuit.deliver_notifications()
            _age_directories(realm, spacing_minutes * 60)
            after[n] = company.counters["reads"] - connect_reads
        posted = len(bench.posted(shop))
        reads_orders = company.counters["reads"] - connect_reads
        first = {n: {"reads": after[n], "reads_per_order": round(after[n] / n, 4)}
                 for n in (1, 10, 20, 50, 60, 100, 400) if n in after}
        out["one_at_a_time"] = {"orders": len(corpus), "spacing_minutes": spacing_minutes, "posted": posted,
                                "reads": reads_orders, "reads_per_order": round(reads_orders / max(posted, 1), 4),
                                "first_orders": first, "connect_reads": connect_reads,
                                "reads_per_order_with_connect": round(company.counters["reads"] / max(posted, 1), 4),
                                "by_endpoint": dict(company.counters["by_endpoint"])}

        # The same first orders for a company connected from the Accounting page, as admins do: the page
        # then lists the company's accounts, items, classes, locations and customers.
        shop, realm = bench.shop("page-setup-shop.myshopify.com")
        company = bench.intuit.companies[realm]
        with database.connection_context():
            _read_company(QboConnection.get(QboConnection.realm_id == realm))
        connect_reads = company.counters["reads"]
        _page_visit(bench, shop.domain, realm, minutes=0)
        page_reads = company.counters["reads"] - connect_reads
        for order in corpus[:50]:
            bench.send(shop.domain, [order])
            bench.drain_in_process(until_done=True)
            bench.intuit.deliver_notifications()
            _age_directories(realm, spacing_minutes * 60)
        order_reads = company.counters["reads"] - connect_reads - page_reads
        out["first_50_after_page"] = {"orders": 50, "posted": len(bench.posted(shop)), "connect_reads": connect_reads,
                                      "page_reads": page_reads, "order_reads": order_reads,
                                      "reads_per_order": round(order_reads / 50, 4),
                                      "by_endpoint": dict(company.counters["by_endpoint"])}

        # An idle company's day: connected, its directories read by an earlier order, no orders today.
        shop, realm = bench.shop("idle-shop.myshopify.com")
        bench.send(shop.domain, OrderGenerator(seed=5, customers=5).week(1))
        bench.drain_in_process(until_done=True)
        bench.intuit.deliver_notifications()
        company = bench.intuit.companies[realm]
        start = company.counters["reads"]
        customer = next(iter(company.entities["Customer"].values()))
        item = next(i for i in company.entities["Item"].values() if i.get("Name") != "Shipping")
        from ecomflux_app.models import QboConnection
        page_reads = 0
        with database.connection_context():
            for hour in range(24):
                _pass_time(bench, realm, 3600)
                if hour in (9, 13, 17):  # the admin opens the Accounting page for half an hour
                    before_visit = company.counters["reads"]
                    _page_visit(bench, shop.domain, realm, save=hour == 9)
                    page_reads += company.counters["reads"] - before_visit
                if hour % 6 == 0:  # the scheduler's keepalive (every 6 h): token care, no API reads
                    from ecomflux_app.models import utcnow
                    QboConnection.update(last_refresh_at=utcnow() - timedelta(days=2)).execute()
                    keep_connections_alive()
                if hour in (9, 11, 14, 16):  # the bookkeeper edits records in QuickBooks
                    bench.intuit.user_change(realm, "Customer", customer["Id"], Notes=f"edited at {hour}:00")
                    bench.intuit.user_change(realm, "Item", item["Id"], Description=f"edited at {hour}:00")
                    bench.intuit.deliver_notifications()
            from ecomflux_app.models import Shop
            idle = Shop.get(Shop.domain == shop.domain)
            today = shop_today(idle)
            run = reconcile_range(idle, today - timedelta(days=3), today, heal=True, trigger="scheduled")
        out["idle_company_day"] = {"reads": company.counters["reads"] - start, "reconciliation": run.status,
                                   "bookkeeper_edits": 8, "keepalives": 4, "page_reads": page_reads,
                                   "page": "opened at 9, 13 and 17 h for 30 min each, Refresh every 5 min, "
                                           "one settings save (US company: no tax codes card)",
                                   "by_endpoint": dict(company.counters["by_endpoint"])}
        out["notification_posts"] = dict(bench.intuit.notification_stats)
        return out
    finally:
        bench.stop()


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "efficiency"
    result = {"efficiency": efficiency, "fairness": latency_and_fairness}.get(which, efficiency)()
    print(json.dumps(result, indent=2, default=str))


def payouts(orders: int = 240, per_payout: int = 12, clearing: str = "undeposited") -> dict:
    """QBO calls per Shopify Payments payout: a week of orders posted, then paid out in payouts of
    `per_payout` charges (card fee on each, a refund in every fourth payout), synced in one run.
    clearing: "undeposited" (receipts linked from Undeposited Funds) or "dedicated" (account lines)."""
    from decimal import Decimal

    from ecomflux_app.db import database
    from ecomflux_app.models import ShopSettings
    from ecomflux_app.sandbox.demo_orders import OrderGenerator
    from ecomflux_app.sandbox.shopify_payouts import card_fee
    from ecomflux_app.sync.payouts import sync_payouts

    bench = Bench(db="sqlite", label=f"payouts-{clearing}")
    try:
        shop, realm = bench.shop("payout-shop.myshopify.com")
        company = bench.intuit.companies[realm]
        fees = company.add("Account", {"Name": "Shopify Payments fees", "AccountType": "Expense"})
        if clearing == "dedicated":
            target = company.add("Account", {"Name": "Shopify Payments clearing", "AccountType": "Other Current Asset"})
        else:
            target = company.find("Account", "AccountSubType", "UndepositedFunds")
        bank = company.find("Account", "Name", "Checking")
        with database.connection_context():
            ShopSettings.create(shop=shop, values={"payout_clearing_account_id": target["Id"],
                                                   "payout_bank_account_id": bank["Id"],
                                                   "payout_fee_account_id": fees["Id"]})
        corpus = OrderGenerator(seed=42, customers=150).week(orders)
        for order in corpus:
            order["payment_gateway_names"] = ["shopify_payments"]
        bench.send(shop.domain, corpus)
        bench.drain_in_process(until_done=True)
        count = 0
        for start in range(0, len(corpus), per_payout):
            chunk = corpus[start:start + per_payout]
            txns = [{"type": "CHARGE", "amount": o["current_total_price"],
                     "fee": card_fee(Decimal(o["current_total_price"])), "order_id": o["id"],
                     "order_name": o["name"], "processed_at": o["processed_at"]} for o in chunk]
            if count % 4 == 3:
                txns.append({"type": "ADJUSTMENT", "amount": "-1.25", "adjustment_reason": "fee correction"})
            bench.shopify.put_payout(shop.domain, {"issued_at": "2026-11-28T09:00:00Z", "status": "PAID"}, txns)
            count += 1
        before = dict(company.counters["by_endpoint"])
        requests_before = company.counters["requests"]
        started = time.perf_counter()
        with database.connection_context():
            result = sync_payouts(shop, since=__import__("datetime").date(2026, 11, 1))
        seconds = time.perf_counter() - started
        calls = company.counters["requests"] - requests_before
        by_endpoint = {k: v - before.get(k, 0) for k, v in company.counters["by_endpoint"].items()
                       if v - before.get(k, 0)}
        deposits = len([d for d in company.entities["Deposit"].values()])
        return {"payouts": count, "deposits": deposits, "posted": result.get("posted"),
                "qbo_calls": calls, "calls_per_payout": round(calls / max(count, 1), 3),
                "writes_per_payout": round(by_endpoint.get("POST deposit", 0) / max(count, 1), 3),
                "by_endpoint": by_endpoint, "seconds": round(seconds, 1),
                "corpus": f"{orders} orders in payouts of {per_payout} charges; clearing = {clearing}"}
    finally:
        bench.stop()
