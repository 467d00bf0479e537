"""Support console: sign-in, roles, CSRF, lockout, the webhook log, masking, replay and audit."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from ecomflux_app.models import AuditLog, Shop, StaffUser, WebhookDelivery
from ecomflux_app.work_queue import get_queue, shop_queue_name
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


def _answer(resp) -> tuple[int, str]:
    """What a sign-in attempt tells the person at the keyboard (CSRF value and wait seconds aside)."""
    html = re.sub(r'name="csrf_token" value="[^"]+"', "", resp.get_data(as_text=True))
    return resp.status_code, re.sub(r"Try again in \d+ (seconds|minutes)", "Try again in N", html)


def test_unknown_email_and_wrong_password_get_the_same_answers_including_throttling(client, operator):
    """Issue 16.8: the old lockout told a real account ("locked") from an unknown email ("not right")."""
    answers = {}
    for email in (operator.email, "nobody@ecomflux.test"):
        answers[email] = [_answer(sign_in(client, email, "wrong password!")) for _ in range(7)]
    assert answers[operator.email] == answers["nobody@ecomflux.test"]
    statuses = [status for status, _ in answers[operator.email]]
    assert statuses == [401] * 5 + [429] * 2  # five free tries, then a wait (nothing counted while waiting)
    assert "Email or password is not right." in answers[operator.email][0][1]
    assert "Too many sign-in attempts. Try again in N" in answers[operator.email][-1][1]
    assert AuditLog.select().where(AuditLog.action == "login_failed").count() == 10
    assert AuditLog.select().where(AuditLog.action == "login_throttled").count() == 4
    assert StaffUser.get().locked_until is None  # no lock on the account itself


def test_throttle_slows_but_never_locks_a_staff_member_out_for_long(client, operator, redis_conn):
    from ecomflux_app import login_throttle

    for _ in range(5):
        assert sign_in(client, operator.email, "wrong password!").status_code == 401
    resp = sign_in(client, operator.email)  # right password, inside the wait: refused, not checked
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 5
    # However many attempts pile up, one wait is at most the cap (minutes).
    keys = login_throttle.keys(operator.email, "127.0.0.1")
    for key in keys.values():
        redis_conn.hset(key, mapping={"n": 1000, "until": 0})
    assert login_throttle.reserve(operator.email, "127.0.0.1") == 0
    wait = login_throttle.reserve(operator.email, "127.0.0.1")
    assert 0 < wait <= max(limit.cap for limit in keys) <= 300
    resp = sign_in(client, operator.email)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) <= 300
    for key in keys.values():  # the wait is over (as if its minutes had passed)
        redis_conn.hset(key, "until", 0)
    assert sign_in(client, operator.email).status_code == 302
    assert not redis_conn.exists(keys[login_throttle.PAIR], keys[login_throttle.ACCOUNT])  # a success clears them


def test_throttle_per_client_address_spans_emails_and_spares_other_addresses(app, client, operator):
    from ecomflux_app import login_throttle

    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    token = csrf(client)
    answers = [client.post("/support/login", environ_base=attacker, data={
        "email": f"guess{i}@ecomflux.test", "password": "wrong password!", "csrf_token": token}).status_code
        for i in range(login_throttle.ADDRESS.free + 1)]
    assert answers[:-1] == [401] * login_throttle.ADDRESS.free and answers[-1] == 429
    refused = client.post("/support/login", environ_base=attacker, data={
        "email": operator.email, "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 429
    assert sign_in(client, operator.email).status_code == 302  # from the staff member's own address


def _session_cookie(app, client):
    return client.get_cookie(app.config["SESSION_COOKIE_NAME"], path=app.config["SESSION_COOKIE_PATH"] or "/")


def _expires_in(header: str) -> timedelta:
    from email.utils import parsedate_to_datetime

    expires = re.search(r"Expires=([^;]+)", header).group(1)
    return parsedate_to_datetime(expires) - datetime.now(timezone.utc)


def test_console_cookie_settings_apply(app, client, operator):
    """Issue 16.6: setdefault() left Flask's own defaults (HttpOnly; Path=/ only, 31 days)."""
    resp = sign_in(client, operator.email)
    [header] = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith(app.config["SESSION_COOKIE_NAME"] + "=")]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/support" in header
    assert "Secure" not in header  # APP_URL is http here
    assert timedelta(hours=7, minutes=55) < _expires_in(header) <= timedelta(hours=8)


def test_console_cookie_is_secure_under_https(app, base_config, operator):
    from ecomflux_app import create_app, runtime

    https_app = create_app({**base_config, "APP_URL": "https://ecomflux.example.com"})
    try:
        client = https_app.test_client()
        base = "https://ecomflux.example.com"
        html = client.get("/support/login", base_url=base).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        resp = client.post("/support/login", base_url=base,
                           data={"email": operator.email, "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 302
        [header] = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("ecomflux_support=")]
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
        assert _expires_in(header) <= timedelta(hours=8)
    finally:
        runtime.init(app.config)


def test_sign_out_ends_the_session_on_the_server(app, client, operator):
    """Issue 16.7: a copy of the cookie taken before sign-out kept working after it."""
    sign_in(client, operator.email)
    assert client.get("/support/webhooks").status_code == 200
    stolen = _session_cookie(app, client).value
    resp = client.post("/support/logout", data={"csrf_token": csrf(client, "/support/webhooks")})
    assert resp.status_code == 302 and "/support/login" in resp.headers["Location"]
    thief = app.test_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen, path=app.config["SESSION_COOKIE_PATH"] or "/")
    resp = thief.get("/support/webhooks")
    assert resp.status_code == 302 and "/support/login" in resp.headers["Location"]
    assert client.get("/support/webhooks").status_code == 302


def test_disabling_role_change_and_password_reset_end_open_sessions(app, client, viewer):
    from ecomflux_app.staff import disable_staff, enable_staff, reset_password, set_role

    def signed_in() -> bool:
        return client.get("/support/webhooks").status_code == 200

    sign_in(client, viewer.email)
    assert signed_in()
    disable_staff(viewer.email, actor="cli")
    assert not signed_in()
    assert sign_in(client, viewer.email).status_code == 401  # the same answer as a wrong password
    enable_staff(viewer.email, actor="cli")
    assert sign_in(client, viewer.email).status_code == 302 and signed_in()
    set_role(viewer.email, "operator", actor="cli")
    assert not signed_in()
    sign_in(client, viewer.email)
    assert 'id="replay-failed"' in client.get("/support/webhooks").get_data(as_text=True)  # now an operator
    reset_password(viewer.email, "a brand new password", actor="cli")
    assert not signed_in()
    assert sign_in(client, viewer.email).status_code == 401
    assert sign_in(client, viewer.email, "a brand new password").status_code == 302 and signed_in()


def test_sessions_end_after_eight_hours_whatever_the_cookie_says(app, client, operator):
    from ecomflux_app.models import StaffSession, utcnow

    sign_in(client, operator.email)
    session = StaffSession.get()
    assert timedelta(hours=7, minutes=55) < session.expires_at - utcnow() <= timedelta(hours=8)
    StaffSession.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert client.get("/support/webhooks").status_code == 302
    StaffSession.update(expires_at=utcnow() - timedelta(days=31)).execute()
    sign_in(client, operator.email)  # long-ended rows are pruned at the next sign-in
    [fresh] = StaffSession.select()
    assert fresh.expires_at > utcnow() and fresh.revoked_at is None


def test_staff_pages_are_never_framed(client, operator):
    sign_in(client, operator.email)
    resp = client.get("/support/webhooks")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_console_pages_are_not_stored_and_run_only_their_own_scripts(client, operator, delivery, redis_conn):
    """Issue 16.10: Cache-Control no-store (the reveal page shows personal data) and a CSP without inline code."""
    from ecomflux_app.sync.replay import BULK_PROGRESS_KEY

    redis_conn.hset(BULK_PROGRESS_KEY.format(job="job1"), mapping={"total": 3, "done": 1})
    assert client.get("/support/login").headers["Cache-Control"] == "no-store"
    sign_in(client, operator.email)
    token = csrf(client, "/support/webhooks")
    pages = [client.get(path) for path in ("/support/login", "/support/webhooks", f"/support/webhooks/{delivery.id}",
                                           "/support/health", "/support/audit", "/support/bulk/job1")]
    pages.append(client.post(f"/support/webhooks/{delivery.id}/reveal", data={"csrf_token": token}))
    for resp in pages:
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
        policy = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";"))
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
        html = resp.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
        assert "<style" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html)
    assert 'data-reload-after="2000"' in pages[5].get_data(as_text=True)  # the bulk page still refreshes itself
    assert "jane@private.example" in pages[-1].get_data(as_text=True)


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


def test_staff_cli_manages_accounts_audited_with_readable_errors(app, client, db):
    """Issue 16.9: list, disable, enable, remove, role, reset-password; errors as one line, never a traceback."""
    from ecomflux_app.cli import cli

    runner = app.test_cli_runner()

    def run(*args, stdin=None):
        result = runner.invoke(cli, ["staff", *args], input=stdin)
        # A refused change ends with click's one-line error (SystemExit), never an exception.
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    assert run("add", "ann@ecomflux.test", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    again = run("add", "Ann@Ecomflux.test", "--generate")
    assert again.exit_code == 1 and "a staff account for ann@ecomflux.test already exists" in again.output
    bad = run("add", "not-an-email", "--generate")
    assert bad.exit_code == 1 and "not-an-email is not a valid email address" in bad.output
    short = run("add", "bo@ecomflux.test", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    for command in (["disable"], ["enable"], ["remove", "--yes"], ["role"], ["reset-password", "--generate"]):
        args = command[:1] + ["ghost@ecomflux.test"] + command[1:] + (["operator"] if command == ["role"] else [])
        unknown = run(*args)
        assert unknown.exit_code == 1 and "no staff account for ghost@ecomflux.test" in unknown.output, args

    listing = run("list")
    assert listing.exit_code == 0 and re.search(r"ann@ecomflux.test\s+viewer\s+active\s+never\s+0", listing.output)
    sign_in(client, "ann@ecomflux.test")
    assert re.search(r"ann@ecomflux.test\s+viewer\s+active\s+\S+ \S+\s+1", run("list").output)

    assert run("disable", "ann@ecomflux.test").exit_code == 0
    assert client.get("/support/webhooks").status_code == 302  # its session ended with it
    assert "disabled" in run("list").output
    assert sign_in(client, "ann@ecomflux.test").status_code == 401
    assert run("enable", "ann@ecomflux.test").exit_code == 0
    assert run("role", "ann@ecomflux.test", "operator").exit_code == 0
    assert StaffUser.get().role == "operator"
    assert run("role", "ann@ecomflux.test", "admin").exit_code == 2  # click names the choices
    reset = run("reset-password", "ann@ecomflux.test", "--generate")
    new_password = reset.output.split(": ")[1].split(";")[0]
    assert reset.exit_code == 0 and sign_in(client, "ann@ecomflux.test", new_password).status_code == 302
    assert run("remove", "ann@ecomflux.test", "--yes").exit_code == 0
    assert StaffUser.select().count() == 0 and "no staff accounts" in run("list").output

    trail = [(a.action, a.target) for a in AuditLog.select().where(AuditLog.action.startswith("staff_"))
             .order_by(AuditLog.id)]
    assert trail == [("staff_created", "ann@ecomflux.test"), ("staff_disabled", "ann@ecomflux.test"),
                     ("staff_enabled", "ann@ecomflux.test"), ("staff_role_changed", "ann@ecomflux.test"),
                     ("staff_password_reset", "ann@ecomflux.test"), ("staff_removed", "ann@ecomflux.test")]
    assert all(a.staff_email.startswith("cli") for a in AuditLog.select().where(AuditLog.action.startswith("staff_")))
    # The member's own sign-ins stay in the trail after the account is gone.
    assert AuditLog.select().where((AuditLog.action == "login") & (AuditLog.staff_email == "ann@ecomflux.test")).count() == 2


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
    from ecomflux_app.work_queue import enqueue
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
