"""RQ job functions: each initialises the runtime and calls one function in ecomflux_app."""

from __future__ import annotations

from datetime import date

from ecomflux_app import runtime
from ecomflux_app.db import database
from ecomflux_app.models import Shop
from ecomflux_app.quickbooks.keepalive import keep_connections_alive
from ecomflux_app.sync import backfill, drain, payouts, reconcile, replay, sweeper


def process_delivery(delivery_id: int, force: bool = False):
    runtime.config()
    return drain.process_one(delivery_id, force=force)


def process_deliveries(shop_domain: str, delivery_ids: list[int]):
    runtime.config()
    return drain.process_shop_jobs(shop_domain, delivery_ids)


def process_inbox(shop_domain: str, job_id: str):
    runtime.config()
    return drain.process_inbox(shop_domain, job_id)


def sweep():
    cfg = runtime.config()
    with database.connection_context():
        return sweeper.sweep(runtime.redis(), cfg["SWEEP_AFTER_SECONDS"])


def qbo_keepalive():
    runtime.config()
    with database.connection_context():
        return keep_connections_alive()


def daily_reconcile():
    runtime.config()
    with database.connection_context():
        return reconcile.reconcile_all_shops()


def run_backfill(backfill_id: int, owner: str = "worker"):
    runtime.config()
    with database.connection_context():
        return backfill.run_backfill(backfill_id, owner=owner)


def replay_deliveries(delivery_ids: list[int], job_key: str | None = None, actor: str | None = None):
    runtime.config()
    with database.connection_context():
        return replay.replay_many(delivery_ids, job_key=job_key, actor=actor)


def sync_payouts(shop_id: int, since: str | None = None):
    runtime.config()
    with database.connection_context():
        shop = Shop.get_by_id(shop_id)
        return payouts.sync_payouts(shop, date.fromisoformat(since) if since else None)


def sync_all_payouts():
    runtime.config()
    with database.connection_context():
        return payouts.sync_all_shops()


def retry_waiting_payouts():
    runtime.config()
    with database.connection_context():
        return payouts.retry_waiting()
