"""`ecomflux backfill`: start, resume or cancel a shop's historical import from a terminal, with progress."""

from __future__ import annotations

import os
import socket
import time
from datetime import date

import click
import redis

from . import runtime
from .models import BackfillRun, Shop
from .statuses import RunStatus
from .shopify.errors import ShopifyUnreachable
from .sync import backfill
from .work_results import RetryLater
from .sync.reconcile import shop_today


def owner_token() -> str:
    """This process as a run's owner: another command or the page sees who holds the run."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def _check_redis() -> None:
    """Fail at once, not on the first ledger lock, when the Redis the app uses cannot be reached."""
    try:
        runtime.redis().ping()
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis at {runtime.config().get('REDIS_URL')} is unreachable ({exc}); "
                                   "start it (in the dev setup: `make dev`) and run the command again") from None


def _describe(run: BackfillRun) -> str:
    runner = backfill.progress(run).get("runner") or "nobody"
    return f"backfill #{run.id} (since {run.since}, {run.seen} read, {run.posted} posted, run by {runner})"


def cancel(shop: Shop, run_id: int) -> None:
    run = BackfillRun.get_or_none((BackfillRun.id == run_id) & (BackfillRun.shop == shop.id))
    if run is None:
        raise click.ClickException(f"no backfill run {run_id} for {shop.domain}")
    if run.status not in backfill.RESUMABLE:
        raise click.ClickException(f"backfill #{run.id} is {run.status}: nothing to cancel")
    run = backfill.cancel_backfill(run, f"the command line ({owner_token()})")
    click.echo(f"backfill #{run.id} cancelled: {run.seen} orders read, {run.posted} posted (they stay posted)")


def _resumable(shop: Shop, run_id: int, me: str) -> BackfillRun:
    run = BackfillRun.get_or_none((BackfillRun.id == run_id) & (BackfillRun.shop == shop.id))
    if run is None:
        raise click.ClickException(f"no backfill run {run_id} for {shop.domain}")
    if run.status not in backfill.RESUMABLE:
        raise click.ClickException(f"backfill #{run.id} is {run.status}: nothing to resume")
    if not backfill.claim(run.id, me):
        raise click.ClickException(f"{_describe(run)} is running and alive (lease until {run.lease_until:%H:%M:%S} "
                                   f"UTC): wait for it, or stop it with --cancel {run.id}")
    return BackfillRun.get_by_id(run.id)


def _new_run(shop: Shop, since: date | None, until: date | None, me: str) -> BackfillRun:
    if since is None:
        raise click.ClickException("--since is required to start a backfill (or --resume / --cancel a run)")
    today = shop_today(shop)
    if since > today:
        raise click.ClickException(f"--since {since} is in the future (today is {today} in the shop's timezone "
                                   f"{shop.timezone or 'UTC'}): nothing to import")
    if until is not None and until < since:
        raise click.ClickException(f"--until {until} is before --since {since}")
    current = backfill.active_run(shop)
    if current is not None and backfill.stalled(current):
        raise click.ClickException(f"{_describe(current)} stopped before it finished (its process ended): "
                                   f"continue it with --resume {current.id} or drop it with --cancel {current.id}")
    if current is not None:
        raise click.ClickException(f"{_describe(current)} is already running: wait for it, or stop it with "
                                   f"--cancel {current.id}")
    return backfill.start_backfill(shop, since, until, enqueue_job=False, owner=me)


def run(shop: Shop, since: date | None, until: date | None, resume_id: int | None) -> None:
    """Start (or resume) a run and drive it page by page in this process, holding its lease."""
    _check_redis()
    me = owner_token()
    started_here = resume_id is None
    run = _resumable(shop, resume_id, me) if resume_id is not None else _new_run(shop, since, until, me)
    hint = f"resume with: ecomflux backfill --shop {shop.domain} --resume {run.id}"

    def pages():
        current = run
        while current.status == RunStatus.RUNNING and current.owner == me:
            try:
                current = backfill.run_backfill(current.id, max_pages=1, requeue=False, owner=me)
            except ShopifyUnreachable:
                raise  # no answer at all: tell the person now instead of retrying forever
            except RetryLater as exc:  # throttled: wait as asked (the lease covers the wait), then continue
                time.sleep(max(1.0, float(exc.delay_seconds)))
                current = BackfillRun.get_by_id(run.id)
            yield current

    last = run
    try:
        with click.progressbar(pages(), label=f"backfill #{run.id} {shop.domain}",
                               item_show_func=lambda r: r and f"{r.seen} read, {r.posted} posted, {r.failed} failed"
                               ) as bar:
            for last in bar:
                pass
    except ShopifyUnreachable as exc:
        last = BackfillRun.get_by_id(run.id)
        where = runtime.config().get("DEV_ENVIRONMENT_FILE")
        advice = (f" This is the dev setup's Shopify sandbox (from {where}): is `make dev` running?" if where
                  else " Check SHOPIFY_SHOP_BASE_URL and the network.")
        if started_here and last.seen == 0:
            BackfillRun.delete().where(BackfillRun.id == run.id).execute()  # nothing happened: leave no run
            raise click.ClickException(f"{exc.reason}: nothing was imported.{advice}") from None
        backfill.pause_backfill(run.id, exc.reason)
        raise click.ClickException(f"{exc.reason}: backfill #{run.id} paused after {last.seen} orders.{advice} "
                                   f"Then {hint}") from None
    except KeyboardInterrupt:
        backfill.pause_backfill(run.id, "interrupted on the command line")
        raise click.ClickException(f"interrupted: backfill #{run.id} paused; {hint}") from None
    last = BackfillRun.get_by_id(run.id)
    click.echo(f"backfill #{last.id}: {last.status}; {last.seen} orders read, {last.posted} posted, "
               f"{last.failed} failed or flagged" + (f" ({last.error})" if last.error else ""))
    if last.status in (RunStatus.PAUSED, RunStatus.FAILED) or (last.status == RunStatus.RUNNING and last.owner != me):
        click.echo(hint)
