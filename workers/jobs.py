"""RQ job functions: each initialises the runtime and calls one function in ecomflux_app."""

from __future__ import annotations

from ecomflux_app import runtime
from ecomflux_app.db import database


def process_delivery(delivery_id: int, force: bool = False):
    runtime.config()
    from ecomflux_app.sync.drain import process_one

    return process_one(delivery_id, force=force)


def process_deliveries(shop_domain: str, delivery_ids: list[int]):
    runtime.config()
    from ecomflux_app.sync.drain import process_shop_jobs

    return process_shop_jobs(shop_domain, delivery_ids)


def sweep():
    cfg = runtime.config()
    from ecomflux_app.sync.sweeper import sweep as run

    with database.connection_context():
        return run(runtime.redis(), cfg["SWEEP_AFTER_SECONDS"])


def qbo_keepalive():
    runtime.config()
    from ecomflux_app.quickbooks.keepalive import keep_connections_alive

    with database.connection_context():
        return keep_connections_alive()


def daily_reconcile():
    runtime.config()
    from ecomflux_app.sync.reconcile import reconcile_all_shops

    with database.connection_context():
        return reconcile_all_shops()


def run_backfill(backfill_id: int, owner: str = "worker"):
    runtime.config()
    from ecomflux_app.sync.backfill import run_backfill as run

    with database.connection_context():
        return run(backfill_id, owner=owner)


def replay_deliveries(delivery_ids: list[int], job_key: str | None = None, actor: str | None = None):
    runtime.config()
    from ecomflux_app.sync.replay import replay_many

    with database.connection_context():
        return replay_many(delivery_ids, job_key=job_key, actor=actor)


def sync_payouts(shop_id: int, since: str | None = None):
    runtime.config()
    from datetime import date

    from ecomflux_app.models import Shop
    from ecomflux_app.sync.payouts import sync_payouts as run

    with database.connection_context():
        shop = Shop.get_by_id(shop_id)
        return run(shop, date.fromisoformat(since) if since else None)


def sync_all_payouts():
    runtime.config()
    from ecomflux_app.sync.payouts import sync_all_shops

    with database.connection_context():
        return sync_all_shops()


def retry_waiting_payouts():
    runtime.config()
    from ecomflux_app.sync.payouts import retry_waiting

    with database.connection_context():
        return retry_waiting()
