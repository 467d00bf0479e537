"""Support console: sign-in, roles, CSRF, lockout, the webhook log, masking, replay and audit."""

from __future__ import annotations

import re

import pytest

from ecomflux_app.models import AuditLog, Shop, StaffUser, WebhookDelivery
from ecomflux_app.queue import get_queue, shop_queue_name
from ecomflux_app.staff import create_staff
from tests.helpers import post_webhook

SHOP = "support-shop.myshopify.com"
PASSWORD = "correct horse battery"


def csrf(client, path="/support/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, email, password=PASSWORD):
    return client.post("/support/login", data={"email": email, "password": password, "csrf_token": csrf(client)})


@pytest.fixture
def operator(db):
    return create_staff("op@ecomflux.test", PASSWORD, role="operator")


@pytest.fixture
def viewer(db):
    return create_staff("viewer@ecomflux.test", PASSWORD, role="viewer")


@pytest.fixture
def delivery(client, db):
    Shop.create(domain=SHOP, access_token="x")
    post_webhook(client, "orders/fulfilled", SHOP, {"id": 77, "name": "#1077", "email": "jane@private.example",
                                                     "customer": {"first_name": "Jane", "email": "jane@private.example"}})
    return WebhookDelivery.get()


def test_unauthenticated_staff_pages_redirect_to_login(client):
    for path in ("/support/webhooks", "/support/health", "/support/audit", "/support/webhooks/1"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/support/login" in resp.headers["Location"]


def test_login_needs_a_csrf_token(client, operator):
    resp = client.post("/support/login", data={"email": operator.email, "password": PASSWORD})
    assert resp.status_code == 400 and b"CSRF" in resp.data
    assert sign_in(client, operator.email).status_code == 302


def test_wrong_password_then_lockout_after_five_failures(client, operator):
    for _ in range(5):
        assert sign_in(client, operator.email, "wrong password!").status_code == 401
    resp = sign_in(client, operator.email)  # right password, but locked now
    assert resp.status_code == 401 and b"locked" in resp.data
    assert StaffUser.get().locked_until is not None
    assert AuditLog.select().where(AuditLog.action == "login_failed").count() == 5


def test_staff_pages_are_never_framed(client, operator):
    sign_in(client, operator.email)
    resp = client.get("/support/webhooks")
    assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_viewer_cannot_replay_or_reveal(client, viewer, delivery):
    sign_in(client, viewer.email)
    token = csrf(client, "/support/webhooks")
    assert client.post(f"/support/webhooks/{delivery.id}/replay", data={"csrf_token": token}).status_code == 403
    assert client.post(f"/support/webhooks/{delivery.id}/reveal", data={"csrf_token": token}).status_code == 403
    assert client.post("/support/replay-failed", data={"csrf_token": token}).status_code == 403
    page = client.get(f"/support/webhooks/{delivery.id}").get_data(as_text=True)
    assert "jane@private.example" not in page and "•••" in page
    assert 'id="replay"' not in page


def test_operator_reveal_is_audited(client, operator, delivery):
    sign_in(client, operator.email)
    token = csrf(client, "/support/webhooks")
    assert "jane@private.example" not in client.get(f"/support/webhooks/{delivery.id}").get_data(as_text=True)
    page = client.post(f"/support/webhooks/{delivery.id}/reveal", data={"csrf_token": token}).get_data(as_text=True)
    assert "jane@private.example" in page
    entry = AuditLog.get(AuditLog.action == "reveal")
    assert entry.staff_email == operator.email and entry.target == f"delivery:{delivery.id}"


def test_operator_replay_requeues_through_the_normal_path(client, operator, delivery, redis_conn):
    WebhookDelivery.update(status="failed", error="boom").execute()
    redis_conn.flushdb()
    sign_in(client, operator.email)
    resp = client.post(f"/support/webhooks/{delivery.id}/replay", data={"csrf_token": csrf(client, "/support/webhooks")})
    assert resp.status_code == 302
    assert WebhookDelivery.get().status == "queued"
    assert [j.args for j in get_queue(redis_conn, shop_queue_name(SHOP)).jobs] == [[delivery.id]]
    assert AuditLog.get(AuditLog.action == "replay").staff_email == operator.email


def test_replay_without_csrf_is_rejected(client, operator, delivery):
    sign_in(client, operator.email)
    assert client.post(f"/support/webhooks/{delivery.id}/replay", data={}).status_code == 400


def test_bulk_replay_of_failed_rows_reports_progress(client, operator, db, redis_conn):
    from tests.helpers import drain

    Shop.create(domain=SHOP, access_token="x")
    for i in range(7):
        post_webhook(client, "orders/fulfilled", SHOP, {"id": i})
    WebhookDelivery.update(status="failed").where(WebhookDelivery.id <= 5).execute()
    redis_conn.flushdb()
    sign_in(client, operator.email)
    resp = client.post("/support/replay-failed", data={"csrf_token": csrf(client, "/support/webhooks"), "shop": SHOP})
    job_page = resp.headers["Location"]
    drain(redis_conn)  # the bulk job runs on the control queue like any worker job
    page = client.get(job_page).get_data(as_text=True)
    assert "5 of 5 deliveries re-queued" in page


def test_log_lists_every_delivery_of_a_burst_once(client, operator, db):
    Shop.create(domain=SHOP, access_token="x")
    sent = {f"burst-{i}" for i in range(300)}
    for wid in sent:
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": wid}, webhook_id=wid).status_code == 200
    sign_in(client, operator.email)
    seen, url = [], "/support/webhooks?shop=" + SHOP
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r'<td class="muted">(burst-\d+)</td>', html)
        found = re.search(r'href="([^"]+)" id="older"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 300 and set(seen) == sent


def test_filters_and_order_search(client, operator, db):
    Shop.create(domain=SHOP, access_token="x")
    post_webhook(client, "orders/fulfilled", SHOP, {"id": 1, "name": "#1001"})
    post_webhook(client, "orders/paid", SHOP, {"id": 2, "name": "#1002"})
    post_webhook(client, "orders/fulfilled", "other.myshopify.com", {"id": 3, "name": "#1003"})
    sign_in(client, operator.email)

    def orders(query: str) -> set[str]:
        return set(re.findall(r"<td>(#10\d\d)</td>", client.get("/support/webhooks?" + query).get_data(as_text=True)))

    assert orders("q=1002") == {"#1002"}
    assert orders("topic=orders/paid") == {"#1002"}
    assert orders(f"shop={SHOP}") == {"#1001", "#1002"}
    assert orders("status=ignored") == {"#1003"}  # unknown shop


def test_health_and_audit_pages_render(client, operator, delivery):
    sign_in(client, operator.email)
    health = client.get("/support/health").get_data(as_text=True)
    assert SHOP in health and "Queue depths" in health
    audit = client.get("/support/audit").get_data(as_text=True)
    assert "login" in audit and operator.email in audit


def test_staff_add_cli_creates_an_operator(app, db):
    runner = app.test_cli_runner()
    from ecomflux_app.cli import cli

    result = runner.invoke(cli, ["staff", "add", "New@Ecomflux.test", "--role", "operator", "--generate"])
    assert result.exit_code == 0, result.output
    user = StaffUser.get(StaffUser.email == "new@ecomflux.test")
    assert user.role == "operator" and user.password_hash.startswith("$argon2")


def test_console_replay_of_a_posted_order_creates_nothing_new_in_qbo(client, operator, redis_conn, connected_shop):
    from ecomflux_app.models import SyncRecord
    from tests.fixtures_flow import simple_order
    from tests.helpers import drain

    post_webhook(client, "orders/fulfilled", connected_shop.shop.domain, simple_order())
    drain(redis_conn)
    delivery = WebhookDelivery.get()
    assert delivery.status == "posted" and len(connected_shop.documents("SalesReceipt")) == 1
    requests_before = connected_shop.intuit.counters(connected_shop.realm)["requests"]
    sign_in(client, operator.email)
    for _ in range(2):  # replayed twice from the console, each through the worker
        resp = client.post(f"/support/webhooks/{delivery.id}/replay",
                           data={"csrf_token": csrf(client, "/support/webhooks")})
        assert resp.status_code == 302
        drain(redis_conn)
        assert WebhookDelivery.get_by_id(delivery.id).status == "skipped_duplicate"
    assert len(connected_shop.documents("SalesReceipt")) == 1
    assert SyncRecord.select().count() == 1
    # The ledger short-circuits: not a single further QBO call.
    assert connected_shop.intuit.counters(connected_shop.realm)["requests"] == requests_before
    detail = client.get(f"/support/webhooks/{delivery.id}").get_data(as_text=True)
    assert "Ledger: order:9001" in detail and "26.60" in detail


def test_health_lists_failed_jobs_with_their_error_and_no_secrets(client, operator, redis_conn, db):
    from ecomflux_app.queue import enqueue
    from tests.helpers import drain

    Shop.create(domain=SHOP, access_token="x")
    enqueue(redis_conn, shop_queue_name(SHOP), "tests.helpers.failing_job",
            "QBO said no; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.secretpart.sig99", job_id="crash-1")
    drain(redis_conn)
    sign_in(client, operator.email)
    page = client.get("/support/health").get_data(as_text=True)
    assert "Failed jobs" in page and "crash-1" in page and "failing_job" in page
    assert "RuntimeError: QBO said no" in page
    assert "secretpart" not in page and "eyJhbGciOiJIUzI1NiJ9" not in page


def test_health_has_no_failed_jobs_table_when_nothing_failed(client, operator, delivery):
    sign_in(client, operator.email)
    assert "Failed jobs</h2>" not in client.get("/support/health").get_data(as_text=True)
