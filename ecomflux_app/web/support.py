"""Support console for staff (flask-login, CSRF-protected forms): webhook log, traces, replay, health, audit."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from peewee import fn
from wtforms import ValidationError

from .. import runtime
from . import params
from ..models import (
    AuditLog,
    ProcessingAttempt,
    QboConnection,
    Shop,
    StaffUser,
    SyncRecord,
    WebhookDelivery,
    utcnow,
)
from ..statuses import DeliveryStatus
from ..work_queue import CONTROL_QUEUE, enqueue, get_queue, queue_depths
from ..quickbooks.expiry import authorization_end
from ..staff import LoginError, LoginThrottled, authenticate
from ..staff_sessions import SESSION_LIFETIME, load_session, open_session, revoke_session
from ..sync.compliance import PERSON_CONTAINERS, PERSONAL_KEYS
from ..shopify.topics import SUBSCRIBED_TOPICS
from ..sync.dispatch import TOPIC_HANDLERS
from ..sync.replay import BULK_PROGRESS_KEY, replay_delivery
from ..logging_setup import scrub
from ..quickbooks.metering import month_to_date
from ..shopify import api_versions

bp = Blueprint("support", __name__, url_prefix="/support")
login_manager = LoginManager()
login_manager.login_view = "support.login"
login_manager.login_message = "Sign in to use the support console."

PAGE_SIZE = 50
STATUSES = tuple(DeliveryStatus)
BULK_LIMIT = 10_000


class Staff(UserMixin):
    """flask-login's view of a StaffUser row, identified by its server-side session token."""

    def __init__(self, row: StaffUser, token: str):
        self.row = row
        self.id = str(row.id)
        self.token = token
        self.email = row.email
        self.role = row.role

    def get_id(self) -> str:
        # The cookie names the session, not the account: revoking the row ends it everywhere.
        return self.token

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@login_manager.user_loader
def _load(token: str):
    row = load_session(token)
    return Staff(row, token) if row else None


def cookie_settings(app_url: str) -> dict:
    """The console's session cookie: HttpOnly, SameSite=Lax, Secure under https, 8 hours, only under /support."""
    return {
        "SESSION_COOKIE_NAME": "ecomflux_support",
        "SESSION_COOKIE_PATH": "/support",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": app_url.startswith("https://"),
        "PERMANENT_SESSION_LIFETIME": SESSION_LIFETIME,
    }


@bp.record_once
def _setup(state):
    app = state.app
    login_manager.init_app(app)
    # Flask predefines these keys, so setdefault() would leave its defaults (31 days, no SameSite).
    app.config.update(cookie_settings(app.config.get("APP_URL", "")))
    app.jinja_env.globals["csrf_token"] = generate_csrf


@bp.before_request
def _csrf():
    """Every state-changing staff form carries a CSRF token bound to the staff session."""
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token"))
        except (ValidationError, CSRFError) as exc:
            abort(400, f"CSRF check failed: {exc}")


def operator_required(view):
    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_operator:
            abort(403, "operators only")
        return view(*args, **kwargs)

    return wrapper


def audit(action: str, target: str | None = None, **detail) -> None:
    AuditLog.create(staff=int(current_user.id), staff_email=current_user.email, action=action, target=target,
                    detail=detail or None, ip=request.remote_addr)


# -- sign in ---------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            user = authenticate(request.form.get("email", ""), request.form.get("password", ""), request.remote_addr)
        except LoginError as exc:
            error, status = str(exc), exc.status
            if isinstance(exc, LoginThrottled):
                headers["Retry-After"] = str(exc.wait)
        else:
            session.clear()  # a fresh session (and CSRF token) for the signed-in staff member
            session.permanent = True
            login_user(Staff(user, open_session(user, request.remote_addr)))
            target = request.args.get("next", "")
            # Only local paths: an open redirect would hand a staff session to any site.
            return redirect(target if target.startswith("/support") else url_for("support.webhooks"))
    return render_template("support/login.html", error=error), status, headers


@bp.post("/logout")
@login_required
def logout():
    audit("logout")
    revoke_session(current_user.token, "signed_out")  # a copy of the cookie is worthless from now on
    logout_user()
    session.clear()
    return redirect(url_for("support.login"))


@bp.get("/")
@login_required
def index():
    return redirect(url_for("support.webhooks"))


# -- webhook log -----------------------------------------------------------------------------
def _filters() -> dict:
    args = request.args
    return {k: args.get(k, "").strip() for k in ("shop", "topic", "status", "since", "until", "q")}


def _parse_day(text: str, name: str) -> datetime | None:
    """The start of a filter's day (400 when it is not a date the log can hold)."""
    parsed = params.day(text, name)
    return datetime.combine(parsed, datetime.min.time()) if parsed else None


def filtered(filters: dict):
    query = WebhookDelivery.select()
    if filters["shop"]:
        query = query.where(WebhookDelivery.shop_domain == filters["shop"].lower())
    if filters["topic"]:
        query = query.where(WebhookDelivery.topic == filters["topic"])
    if filters["status"] in STATUSES:
        query = query.where(WebhookDelivery.status == filters["status"])
    since, until = _parse_day(filters["since"], "since"), _parse_day(filters["until"], "until")
    if since:
        query = query.where(WebhookDelivery.received_at >= since)
    if until:
        query = query.where(WebhookDelivery.received_at < until + timedelta(days=1))
    q = filters["q"]
    if q:
        name = q if q.startswith("#") else f"#{q}"
        query = query.where((WebhookDelivery.order_name == name) | (WebhookDelivery.order_name == q)
                            | (WebhookDelivery.order_id == q) | (WebhookDelivery.webhook_id == q)
                            | (WebhookDelivery.event_id == q)
                            | (WebhookDelivery.resource_id == q))
    return query


@bp.get("/webhooks")
@login_required
def webhooks():
    filters = _filters()
    query = filtered(filters)
    before = params.query_int("before")
    if before:
        query = query.where(WebhookDelivery.id < before)  # keyset: stays fast on deep pages
    rows = list(query.order_by(WebhookDelivery.id.desc()).limit(PAGE_SIZE + 1))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    # The known topics, not SELECT DISTINCT: that would scan the whole log on every page view.
    topics = sorted(SUBSCRIBED_TOPICS | set(TOPIC_HANDLERS))
    next_args = {k: v for k, v in filters.items() if v}
    return render_template("support/webhooks.html", rows=rows, filters=filters, statuses=STATUSES, topics=topics,
                           next_url=url_for("support.webhooks", before=rows[-1].id, **next_args) if more else None,
                           first_url=url_for("support.webhooks", **next_args) if before else None)


def mask(value, in_person: bool = False):
    """Personal data shown as bullets (same keys the compliance eraser treats as personal)."""
    if isinstance(value, dict):
        return {k: ("•••" if v not in (None, "") and (k in PERSONAL_KEYS or (in_person and k == "name")) else
                    mask(v, in_person or k in PERSON_CONTAINERS)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, in_person) for v in value]
    return value


def _detail(delivery_id: int, reveal: bool):
    delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id) or abort(404)
    try:
        payload = json.loads(delivery.body)
        shown = payload if reveal else mask(payload)
        body_text = json.dumps(shown, indent=2, ensure_ascii=False)
    except ValueError:
        body_text = delivery.body if reveal else "(not JSON; reveal to see the raw body)"
    records = []
    if delivery.shop_id and delivery.order_id:
        records = list(SyncRecord.select().where((SyncRecord.shop == delivery.shop_id)
                                                 & (SyncRecord.order_id == delivery.order_id)))
    condition = ProcessingAttempt.delivery == delivery.id
    if records:
        condition |= ProcessingAttempt.sync_record.in_([r.id for r in records])
    attempts = list(ProcessingAttempt.select().where(condition).order_by(ProcessingAttempt.id))
    for attempt in attempts:
        attempt.request_text = json.dumps(attempt.request if reveal else mask(attempt.request), indent=2,
                                          ensure_ascii=False) if attempt.request else ""
        attempt.response_text = _response_text(attempt.response, reveal)
    return render_template("support/detail.html", d=delivery, body_text=body_text, revealed=reveal,
                           records=records, attempts=attempts)


def _response_text(response: dict | None, reveal: bool) -> str:
    if not response:
        return ""
    text = response.get("response") or ""
    try:
        parsed = json.loads(text)
        text = json.dumps(parsed if reveal else mask(parsed), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    return f"HTTP {response.get('status')} in {response.get('duration_ms')} ms\n{text}"


@bp.get("/webhooks/<id:delivery_id>")
@login_required
def detail(delivery_id: int):
    return _detail(delivery_id, reveal=False)


@bp.post("/webhooks/<id:delivery_id>/reveal")
@operator_required
def reveal(delivery_id: int):
    audit("reveal", f"delivery:{delivery_id}")
    return _detail(delivery_id, reveal=True)


@bp.post("/webhooks/<id:delivery_id>/replay")
@operator_required
def replay(delivery_id: int):
    result = replay_delivery(delivery_id, actor=current_user.email)
    flash({"queued": "Replay queued: it goes through the same exactly-once path.",
           "scheduled": "Redis is unreachable: the replay will be queued by the sweeper.",
           "busy": "This delivery is being processed right now; try again in a moment."}[result])
    return redirect(url_for("support.detail", delivery_id=delivery_id))


@bp.post("/replay-failed")
@operator_required
def replay_failed():
    filters = {k: request.form.get(k, "").strip() for k in ("shop", "topic", "since", "until", "q")}
    filters["status"] = DeliveryStatus.FAILED
    ids = [d.id for d in filtered(filters).select(WebhookDelivery.id).order_by(WebhookDelivery.id).limit(BULK_LIMIT)]
    job_key = uuid.uuid4().hex[:12]
    conn = runtime.redis()
    conn.hset(BULK_PROGRESS_KEY.format(job=job_key), mapping={"total": len(ids), "done": 0})
    conn.expire(BULK_PROGRESS_KEY.format(job=job_key), 24 * 3600)
    enqueue(conn, CONTROL_QUEUE, "workers.jobs.replay_deliveries", ids, job_key, current_user.email)
    audit("bulk_replay_started", None, count=len(ids), filters=filters, job=job_key)
    return redirect(url_for("support.bulk", job_key=job_key))


@bp.get("/bulk/<job_key>")
@login_required
def bulk(job_key: str):
    raw = runtime.redis().hgetall(BULK_PROGRESS_KEY.format(job=job_key))
    progress = {k.decode(): int(v) for k, v in raw.items()}
    if not progress:
        abort(404)
    return render_template("support/bulk.html", progress=progress, job_key=job_key)


# -- health and audit ------------------------------------------------------------------------
@bp.get("/health")
@login_required
def health():
    from rq import Worker
    from rq.registry import FailedJobRegistry

    conn = runtime.redis()
    depths = queue_depths(conn)
    failed = {name: FailedJobRegistry(queue=get_queue(conn, name)).count for name in depths}
    recent_failures = failed_jobs(conn, [name for name, n in failed.items() if n])
    workers = [{"name": w.name, "state": w.get_state(), "queues": len(w.queues),
                "last_heartbeat": w.last_heartbeat} for w in Worker.all(connection=conn)]
    shops = []
    for shop in Shop.select().order_by(Shop.domain):
        qbo = QboConnection.get_or_none(QboConnection.shop == shop.id)
        counts = dict(SyncRecord.select(SyncRecord.status, fn.COUNT(SyncRecord.id)).where(SyncRecord.shop == shop.id)
                      .group_by(SyncRecord.status).tuples())
        shops.append({"shop": shop, "qbo": qbo, "counts": counts, "authorization": authorization_end(qbo)})
    reads = month_to_date(conn, [s["qbo"].realm_id for s in shops if s["qbo"] and s["qbo"].realm_id])
    return render_template("support/health.html", depths=depths, failed=failed, workers=workers, shops=shops,
                           recent_failures=recent_failures, now=utcnow(), qbo_reads=reads, **shopify_api_health())


def shopify_api_health(days: int = 7) -> dict:
    """The pinned Shopify API version's support window, and webhooks of the last week sent with another
    version (a subscription left on an old version, or shopify.app.toml not deployed)."""
    pinned = runtime.config()["SHOPIFY_API_VERSION"]
    since = utcnow() - timedelta(days=days)
    others = (WebhookDelivery.select(WebhookDelivery.api_version, fn.COUNT(WebhookDelivery.id))
              .where(WebhookDelivery.received_at >= since, WebhookDelivery.api_version != pinned)
              .group_by(WebhookDelivery.api_version).order_by(WebhookDelivery.api_version).tuples())
    return {"shopify_api": api_versions.status(pinned), "webhook_versions": list(others), "version_days": days}


def failed_jobs(conn, queue_names: list[str], per_queue: int = 20) -> list[dict]:
    """The newest failed RQ jobs (a crash outside a delivery's own error handling): what ran, on
    which deliveries, and the exception's last line, scrubbed of anything token-like."""
    from rq.job import Job
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    out = []
    for name in queue_names:
        ids = FailedJobRegistry(queue=get_queue(conn, name)).get_job_ids(0, per_queue - 1, desc=True)
        for job in Job.fetch_many(ids, connection=conn, serializer=JSONSerializer):
            if job is None:
                continue
            try:
                result = job.latest_result()
                lines = ((result.exc_string if result else None) or "").strip().splitlines()
            except Exception:  # noqa: BLE001 - a result we cannot read still shows the job
                lines = []
            out.append({"queue": name, "id": job.id, "func": job.func_name.rsplit(".", 1)[-1],
                        "args": scrub(json.dumps(job.args))[:200], "ended_at": job.ended_at,
                        "error": scrub(lines[-1])[:300] if lines else "(no exception recorded)"})
    return sorted(out, key=lambda f: f["ended_at"].timestamp() if f["ended_at"] else 0, reverse=True)


@bp.get("/audit")
@login_required
def audit_log():
    before = params.query_int("before")
    query = AuditLog.select()
    if before:
        query = query.where(AuditLog.id < before)
    rows = list(query.order_by(AuditLog.id.desc()).limit(PAGE_SIZE + 1))
    more = len(rows) > PAGE_SIZE
    return render_template("support/audit.html", rows=rows[:PAGE_SIZE],
                           next_url=url_for("support.audit_log", before=rows[PAGE_SIZE - 1].id) if more else None)


@bp.errorhandler(403)
def _forbidden(exc):
    return render_template("support/error.html", code=403, message=getattr(exc, "description", "Forbidden")), 403


@bp.errorhandler(400)
def _bad(exc):
    current_app.logger.info("support request rejected: %s", getattr(exc, "description", exc))
    return render_template("support/error.html", code=400, message=getattr(exc, "description", "Bad request")), 400
