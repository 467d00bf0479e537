"""Metered reads: QuickBooks change notifications (CloudEvents webhooks) and change data capture keep the
customer and item directories current instead of polling; every read is counted per company and month."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ecomflux_app.models import SyncRecord
from ecomflux_app.quickbooks import metering, notifications
from ecomflux_app.sandbox.intuit_server import cloud_events, sign_notification
from tests.fixtures_flow import simple_order
from tests.helpers import drain, post_webhook
from tests.api_fixtures import bearer  # noqa: F401 - the session-token fixture
from tests.test_support import operator, sign_in  # noqa: F401 - the operator fixture

TOKEN = "verifier-token-for-tests"


@pytest.fixture
def notified(app, monkeypatch):
    """Change notifications on: the app knows its verifier token (as when Intuit's webhooks are configured)."""
    monkeypatch.setitem(app.config, "INTUIT_WEBHOOK_VERIFIER_TOKEN", TOKEN)
    return TOKEN


def send(client, domain, order):
    assert post_webhook(client, "orders/fulfilled", domain, order).status_code == 200


def reads(connected) -> int:
    return connected.intuit.counters(connected.realm)["reads"]


def age_directories(connected, seconds: float) -> None:
    """As if both directories had been read `seconds` earlier (the clock, not a sleep)."""
    from ecomflux_app import runtime
    from ecomflux_app.sync.references import DIRECTORY_AS_OF, directory_key

    conn = runtime.redis()
    for entity in ("Customer", "Item"):
        key = directory_key(connected.realm, connected.shop.id, entity)
        if conn.hexists(key, DIRECTORY_AS_OF):
            conn.hset(key, DIRECTORY_AS_OF, repr(float(conn.hget(key, DIRECTORY_AS_OF)) - seconds))


def new_buyer(n: int) -> dict:
    order = simple_order(9100 + n, f"#{9100 + n}", email=f"buyer{n}@example.com", first=f"Buyer{n}",
                         sku=f"NEW-{n}", title=f"Gadget {n}")
    order["customer"]["id"] = 800 + n
    return order


# -- the Intuit sandbox speaks the protocol -----------------------------------------------------

def test_sandbox_cdc_meters_reads_and_signs_cloudevents(app, intuit_sandbox, connected_shop):
    from ecomflux_app.quickbooks.client import QboClient
    from ecomflux_app.models import QboConnection

    realm = connected_shop.realm
    client = QboClient(QboConnection.get(QboConnection.shop == connected_shop.shop.id))
    start = reads(connected_shop)
    since = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S-00:00")
    ann = intuit_sandbox.put_entity(realm, "Customer", {"DisplayName": "Ann Typed"})
    gone = intuit_sandbox.put_entity(realm, "Customer", {"DisplayName": "Gone Soon"})
    intuit_sandbox.edit_entity(realm, "Customer", gone["Id"], status="Deleted")
    changed, total = client.cdc(["Customer", "Item"], since)
    assert {r["Id"] for r in changed["Customer"]} == {ann["Id"], gone["Id"]}
    assert total == len(changed["Customer"]) + len(changed["Item"])
    assert next(r for r in changed["Customer"] if r["Id"] == gone["Id"]).get("status") == "Deleted"
    assert "DisplayName" not in next(r for r in changed["Customer"] if r["Id"] == gone["Id"])
    client.query("SELECT * FROM Item")
    client.create("Customer", {"DisplayName": "Written"}, "rid-written-1")  # writes are not metered
    assert reads(connected_shop) - start == 2
    too_old = (datetime.now(timezone.utc) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S-00:00")
    with pytest.raises(Exception) as refused:
        client.cdc(["Customer"], too_old)
    assert getattr(refused.value, "element", None) == "changedSince"

    events = cloud_events(realm, [{"entity": "Customer", "id": "7", "operation": "updated", "time": 1.5e9}])
    assert events[0]["type"] == "qbo.customer.updated.v1" and events[0]["intuitaccountid"] == realm
    body = json.dumps(events).encode()
    assert notifications.verify(body, sign_notification(body, TOKEN), TOKEN)
    assert not notifications.verify(body + b" ", sign_notification(body, TOKEN), TOKEN)


# -- the app's endpoint -------------------------------------------------------------------------

def test_notification_endpoint_verifies_the_signature_and_notes_changes(client, notified, redis_conn):
    realm = "9130359999"
    body = json.dumps(cloud_events(realm, [{"entity": "Customer", "id": "12", "operation": "updated", "time": 1.7e9},
                                           {"entity": "SalesReceipt", "id": "40", "operation": "deleted",
                                            "time": 1.7e9}])).encode()
    forged = client.post("/qbo/notifications", data=body, headers={"intuit-signature": sign_notification(body, "x")})
    assert forged.status_code == 401 and notifications.generation(redis_conn, realm) == 0
    unsigned = client.post("/qbo/notifications", data=body)
    assert unsigned.status_code == 401
    ok = client.post("/qbo/notifications", data=body, headers={"intuit-signature": sign_notification(body, TOKEN)})
    assert ok.status_code == 200 and ok.json["directory"] == 1 and ok.json["documents"] == 1
    assert notifications.generation(redis_conn, realm) == 1
    assert redis_conn.hget(notifications.doc_changes_key(realm), "SalesReceipt:40").decode().startswith("deleted@")
    # A customer we created ourselves: its 'created' notification is no news.
    notifications.note_own(redis_conn, realm, "Customer", "13")
    ours = json.dumps(cloud_events(realm, [{"entity": "Customer", "id": "13", "operation": "created",
                                            "time": 1.7e9}])).encode()
    assert client.post("/qbo/notifications", data=ours,
                       headers={"intuit-signature": sign_notification(ours, TOKEN)}).json["ours"] == 1
    assert notifications.generation(redis_conn, realm) == 1
    # The format Intuit sent before its CloudEvents migration is still understood.
    legacy = json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": "Item", "id": "5", "operation": "Merge", "lastUpdated": "2026-12-01T10:00:00.000Z"}]}}]}).encode()
    assert client.post("/qbo/notifications", data=legacy,
                       headers={"intuit-signature": sign_notification(legacy, TOKEN)}).status_code == 200
    assert notifications.generation(redis_conn, realm) == 2
    bad = b'{"hello": 1}'
    assert client.post("/qbo/notifications", data=bad,
                       headers={"intuit-signature": sign_notification(bad, TOKEN)}).status_code == 400


def test_without_a_verifier_token_the_endpoint_is_off(client):
    body = b"[]"
    assert client.post("/qbo/notifications", data=body,
                       headers={"intuit-signature": sign_notification(body, TOKEN)}).status_code == 404


# -- reads per order ----------------------------------------------------------------------------

def test_new_buyers_minutes_apart_cost_no_reads_with_notifications(client, redis_conn, connected_shop, notified):
    """Each order minutes after the last, each with a new buyer and a new product: with notifications
    on, the directories are not polled (the old code ran a change query per directory per order)."""
    domain = connected_shop.shop.domain
    send(client, domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    connected_shop.intuit.notify_app(client, TOKEN)  # our own creates come back as notifications
    before = reads(connected_shop)
    for n in range(4):
        age_directories(connected_shop, 600)  # ten minutes later
        send(client, domain, new_buyer(n))
        drain(redis_conn)
        connected_shop.intuit.notify_app(client, TOKEN)
    assert reads(connected_shop) - before == 0, connected_shop.intuit.counters(connected_shop.realm)["by_endpoint"]
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 5
    assert notifications.generation(redis_conn, connected_shop.realm) == 0  # every notification was of our own


def test_a_companys_first_orders_one_at_a_time_cost_three_reads_in_all(client, redis_conn, connected_shop, notified):
    """A new company's first orders, minutes apart (a new buyer, a guest, a gift card, more new buyers and
    SKUs): the one-time reads are the two directories and ONE read of the chart of accounts. The guest
    customer is settled by the customer directory and the gift-card account by the same chart read (before:
    five reads, with a lookup of the guest and a second account query)."""
    domain, realm, intuit = connected_shop.shop.domain, connected_shop.realm, connected_shop.intuit
    before = intuit.counters(realm)
    before_calls = dict(before["by_endpoint"])
    guest = simple_order(9050, "#9050", email=None, first="", sku="GUEST-1", title="Guest thing")
    gift = simple_order(9051, "#9051", sku="GC-50", title="Gift Card", price="50.00", qty=1, tax="0.00")
    gift["line_items"][0].update(gift_card=True, taxable=False, tax_lines=[])
    gift["tax_lines"] = []
    orders = [simple_order(9001, "#9001"), guest, new_buyer(1), gift, new_buyer(2), new_buyer(3)]
    for order in orders:
        age_directories(connected_shop, 300)  # five minutes later
        send(client, domain, order)
        drain(redis_conn)
        intuit.notify_app(client, TOKEN)
    after = intuit.counters(realm)
    spent = {k: v - before_calls.get(k, 0) for k, v in after["by_endpoint"].items()
             if k.startswith("GET") and v - before_calls.get(k, 0)}
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == len(orders)
    assert after["reads"] - before["reads"] == 3, spent
    assert spent == {"GET query": 3}


def test_a_chosen_income_account_deactivated_in_qbo_is_chosen_again_after_its_notification(
        client, redis_conn, connected_shop, notified):
    """The income account for new items is remembered, not re-read per item; QuickBooks' notification of
    a change to it makes the next new item read the chart again and choose another."""
    domain, realm, intuit = connected_shop.shop.domain, connected_shop.realm, connected_shop.intuit
    send(client, domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    intuit.notify_app(client, TOKEN)
    first = next(i for i in intuit.entities(realm, "Item") if i.get("Sku") == "SKU-1")["IncomeAccountRef"]["value"]
    intuit.edit_entity(realm, "Account", first, Active=False)
    assert intuit.notify_app(client, TOKEN) >= 1
    send(client, domain, new_buyer(1))
    drain(redis_conn)
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 2
    second = next(i for i in intuit.entities(realm, "Item") if i.get("Sku") == "NEW-1")["IncomeAccountRef"]["value"]
    assert second != first


def test_a_customer_typed_into_qbo_is_learnt_from_its_notification_with_one_cdc_read(
        client, redis_conn, connected_shop, notified):
    domain, realm, intuit = connected_shop.shop.domain, connected_shop.realm, connected_shop.intuit
    send(client, domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    typed = intuit.put_entity(realm, "Customer", {"DisplayName": "Bob Ray (wholesale)",
                                                  "PrimaryEmailAddr": {"Address": "bob@example.com"}})
    assert intuit.notify_app(client, TOKEN) >= 1
    before = intuit.counters(realm)
    cdc_before = before["by_endpoint"].get("GET cdc", 0)
    order = simple_order(9002, "#9002", email="bob@example.com", first="Bob", last="Ray")
    order["customer"]["id"] = 777
    send(client, domain, order)
    drain(redis_conn)
    after = intuit.counters(realm)
    doc = next(d for d in intuit.entities(realm, "SalesReceipt") if "9002" in d["DocNumber"])
    assert doc["CustomerRef"]["value"] == typed["Id"]  # the bookkeeper's Bob, no second Bob
    assert after["reads"] - before["reads"] == 1
    assert after["by_endpoint"].get("GET cdc", 0) - cdc_before == 1
    # Nothing changed since: the next new buyer costs no read.
    send(client, domain, new_buyer(1))
    drain(redis_conn)
    assert intuit.counters(realm)["reads"] == after["reads"]


def test_without_any_notification_the_directories_catch_up_after_six_hours(client, redis_conn, connected_shop,
                                                                            notified):
    """Notifications can be lost (our endpoint down longer than Intuit retries): change data capture
    catches up once the directories' last read is six hours old."""
    domain, realm, intuit = connected_shop.shop.domain, connected_shop.realm, connected_shop.intuit
    send(client, domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    typed = intuit.put_entity(realm, "Customer", {"DisplayName": "Cy Lost", "PrimaryEmailAddr": {
        "Address": "cy@example.com"}})  # its notification never reaches the app
    age_directories(connected_shop, 6 * 3600 + 60)
    before = intuit.counters(realm)["by_endpoint"].get("GET cdc", 0)
    order = simple_order(9002, "#9002", email="cy@example.com", first="Cy", last="Lost")
    order["customer"]["id"] = 778
    send(client, domain, order)
    drain(redis_conn)
    assert intuit.counters(realm)["by_endpoint"].get("GET cdc", 0) - before == 1
    doc = next(d for d in intuit.entities(realm, "SalesReceipt") if "9002" in d["DocNumber"])
    assert doc["CustomerRef"]["value"] == typed["Id"]


# -- counting and showing reads ------------------------------------------------------------------

def test_reads_are_counted_per_company_and_month_and_shown_with_a_projection(client, redis_conn, connected_shop,
                                                                            operator):  # noqa: F811
    domain, realm = connected_shop.shop.domain, connected_shop.realm
    redis_conn.delete(metering.reads_key(realm))
    start = reads(connected_shop)
    send(client, domain, simple_order(9001, "#9001"))
    drain(redis_conn)
    spent = reads(connected_shop) - start
    assert spent > 0  # the directories' first reads
    assert int(redis_conn.get(metering.reads_key(realm))) == spent  # what Intuit meters, we count
    assert metering.projection(100, datetime(2026, 12, 11, 0, 0, tzinfo=timezone.utc)) == 310  # 10 of 31 days
    assert metering.projection(5, datetime(2026, 12, 1, 0, 10, tzinfo=timezone.utc)) == 5 * 31 * 24
    sign_in(client, operator.email)
    page = client.get("/support/health").get_data(as_text=True)
    assert 'id="qbo-reads"' in page
    row = page[page.index('id="qbo-reads"'):]
    assert domain in row and f'<td class="reads-mtd">{spent:,}</td>' in row


def test_the_settings_lists_are_read_again_only_after_a_notified_change(client, redis_conn, connected_shop, notified,
                                                                         bearer):  # noqa: F811
    """The settings page's lists (five metered reads) are kept for hours with notifications on, not a
    minute: a change to an account, item, class, location or customer is notified and makes the next
    load read them again."""
    from ecomflux_app.web import qbo_company

    headers, realm, intuit = bearer(connected_shop.shop.domain), connected_shop.realm, connected_shop.intuit
    start = reads(connected_shop)
    assert client.get("/api/options", headers=headers).status_code == 200
    assert reads(connected_shop) - start == 5
    key = next(iter(redis_conn.scan_iter(match="ecomflux:qbo-options:*")))
    assert redis_conn.ttl(key) > 3600  # not re-read after a minute: each read is metered
    assert client.get("/api/options", headers=headers).status_code == 200
    assert reads(connected_shop) - start == 5
    added = intuit.put_entity(realm, "Account", {"Name": "Marketplace sales", "AccountType": "Income"})
    assert intuit.notify_app(client, TOKEN) >= 1
    names = [a["name"] for a in client.get("/api/options", headers=headers).get_json()["income_accounts"]]
    assert added["Name"] in names and reads(connected_shop) - start == 10
    assert qbo_company.OPTIONS_TTL_SECONDS == 60  # without notifications, a minute as before


def test_after_the_settings_page_read_the_accounts_the_first_orders_read_only_the_directories(
        client, redis_conn, connected_shop, notified, bearer):  # noqa: F811
    """The admin connects from the Accounting page, which then lists the company's accounts: that read
    also settles the default accounts, so the first orders read only the two directories."""
    domain, realm, intuit = connected_shop.shop.domain, connected_shop.realm, connected_shop.intuit
    assert client.get("/api/options", headers=bearer(domain)).status_code == 200
    before = intuit.counters(realm)["reads"]
    gift = simple_order(9051, "#9051", sku="GC-50", title="Gift Card", price="50.00", qty=1, tax="0.00")
    gift["line_items"][0].update(gift_card=True, taxable=False, tax_lines=[])
    gift["tax_lines"] = []
    for order in (simple_order(9001, "#9001"), gift, new_buyer(1)):
        age_directories(connected_shop, 300)
        send(client, domain, order)
        drain(redis_conn)
        intuit.notify_app(client, TOKEN)
    assert SyncRecord.select().where(SyncRecord.status == "posted").count() == 3
    assert intuit.counters(realm)["reads"] - before == 2
