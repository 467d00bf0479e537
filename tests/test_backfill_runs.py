"""A backfill whose process died is seen (lease), and can be resumed or cancelled from the page and the CLI."""

from __future__ import annotations

from datetime import date, timedelta

from ecomflux_app.models import BackfillRun, SyncRecord, utcnow
from ecomflux_app.work_queue import BULK_QUEUE, get_queue
from ecomflux_app.sync import backfill
from tests.api_fixtures import bearer  # noqa: F401
from tests.helpers import drain
from tests.test_backfill import assert_one_document_per_order, seed


def _died_after_one_page(redis_conn, connected, orders, client, headers) -> tuple[BackfillRun, list]:
    """Start an import from the page; its worker gets through one page and dies (its job gone with it)."""
    week = seed(connected, orders, 200)
    started = client.post("/api/backfill", json={"since": "2026-11-01"}, headers=headers)
    assert started.status_code == 202
    run = BackfillRun.get_by_id(started.get_json()["id"])
    get_queue(redis_conn, BULK_QUEUE).empty()  # the job died with its worker
    run = backfill.run_backfill(run.id, max_pages=1, owner=run.owner)
    assert (run.status, run.seen, run.posted) == ("running", 90, 90)
    return run, week


def _as_if_its_lease_ran_out(run: BackfillRun) -> None:
    """What time does for a dead process: its lease passes and nobody renews it."""
    BackfillRun.update(lease_until=utcnow() - timedelta(seconds=1)).where(BackfillRun.id == run.id).execute()


def test_a_run_whose_worker_died_shows_as_stopped_and_resumes_from_the_page(
        client, redis_conn, connected_shop, orders, bearer):  # noqa: F811
    headers = bearer(connected_shop.shop.domain)
    run, week = _died_after_one_page(redis_conn, connected_shop, orders, client, headers)
    current = client.get("/api/backfill", headers=headers).get_json()["current"]
    assert current["status"] == "running" and current["stalled"] is False  # alive as far as anyone knows
    assert client.post(f"/api/backfill/{run.id}/resume", headers=headers).status_code == 409  # not while alive

    _as_if_its_lease_ran_out(run)
    current = client.get("/api/backfill", headers=headers).get_json()["current"]
    assert current["stalled"] is True
    blocked = client.post("/api/backfill", json={"since": "2026-11-01"}, headers=headers)
    assert blocked.status_code == 409 and "resume or cancel" in blocked.get_json()["error"]
    assert blocked.get_json()["backfill"]["stalled"] is True

    resumed = client.post(f"/api/backfill/{run.id}/resume", headers=headers)
    assert resumed.status_code == 202 and resumed.get_json()["stalled"] is False
    drain(redis_conn)
    current = client.get("/api/backfill", headers=headers).get_json()["current"]
    assert (current["status"], current["seen"], current["posted"]) == ("done", 200, 200)
    assert_one_document_per_order(connected_shop, week)


def test_cancelling_a_stopped_run_from_the_page_frees_history_import(
        client, redis_conn, connected_shop, orders, install_shop, bearer):  # noqa: F811
    headers = bearer(connected_shop.shop.domain)
    run, _week = _died_after_one_page(redis_conn, connected_shop, orders, client, headers)
    _as_if_its_lease_ran_out(run)
    other = bearer(install_shop("other-shop.myshopify.com", name="Other").domain)
    assert client.post(f"/api/backfill/{run.id}/cancel", headers=other).status_code in (404, 409)

    cancelled = client.post(f"/api/backfill/{run.id}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert client.post(f"/api/backfill/{run.id}/resume", headers=headers).status_code == 409
    assert backfill.run_backfill(run.id).status == "cancelled"  # a late job of the cancelled run does nothing
    again = client.post("/api/backfill", json={"since": "2026-11-01"}, headers=headers)
    assert again.status_code == 202
    drain(redis_conn)
    assert BackfillRun.get_by_id(again.get_json()["id"]).status == "done"
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 200


def test_the_cli_leaves_a_live_run_alone_and_resumes_or_cancels_a_dead_one(app, redis_conn, connected_shop, orders):
    from ecomflux_app.cli import cli

    week = seed(connected_shop, orders, 120)
    shop = connected_shop.shop
    cli_run = app.test_cli_runner()
    other = backfill.start_backfill(shop, date(2026, 11, 1), enqueue_job=False, owner="cli:other-host:4242")
    other = backfill.run_backfill(other.id, max_pages=1, requeue=False, owner="cli:other-host:4242")
    assert other.seen == 90

    taken = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--resume", str(other.id)])
    assert taken.exit_code == 1 and "is running and alive" in taken.output
    fresh = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--since", "2026-11-01"])
    assert fresh.exit_code == 1 and "already running" in fresh.output

    _as_if_its_lease_ran_out(other)  # the other terminal was closed mid-run
    fresh = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--since", "2026-11-01"])
    assert fresh.exit_code == 1 and f"--resume {other.id}" in fresh.output and f"--cancel {other.id}" in fresh.output
    resumed = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--resume", str(other.id)])
    assert resumed.exit_code == 0, resumed.output
    assert f"backfill #{other.id}: done; 120 orders read" in resumed.output
    assert_one_document_per_order(connected_shop, week)

    stopped = backfill.start_backfill(shop, date(2026, 11, 1), enqueue_job=False, owner="cli:other-host:4243")
    _as_if_its_lease_ran_out(stopped)
    cancelled = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--cancel", str(stopped.id)])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert BackfillRun.get_by_id(stopped.id).status == "cancelled"
    done_twice = cli_run.invoke(cli, ["backfill", "--shop", shop.domain, "--cancel", str(other.id)])
    assert done_twice.exit_code == 1 and "is done: nothing to cancel" in done_twice.output


def test_the_cli_refuses_a_since_in_the_future(app, connected_shop):
    from ecomflux_app.cli import cli

    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    result = app.test_cli_runner().invoke(cli, ["backfill", "--shop", connected_shop.shop.domain, "--since", tomorrow])
    assert result.exit_code == 1 and "is in the future" in result.output
    assert BackfillRun.select().count() == 0


def test_the_lease_columns_are_added_to_an_existing_database_once(db):
    from ecomflux_app.db import database
    from ecomflux_app.migrations import _v6_backfill_lease

    table = BackfillRun._meta.table_name
    for column in ("owner", "lease_until"):
        database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    assert not {"owner", "lease_until"} & {c.name for c in database.get_columns(table)}
    _v6_backfill_lease(database)
    _v6_backfill_lease(database)  # idempotent: a database created with the columns is left as it is
    assert {"owner", "lease_until"} <= {c.name for c in database.get_columns(table)}
