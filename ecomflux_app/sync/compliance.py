"""Mandatory compliance topics: export a customer's data, erase a customer's or a whole shop's personal data.

Accounting facts stay: ids, amounts, dates, statuses and QuickBooks ids are kept so the books still
reconcile; names, emails, phones, addresses and free-text notes are erased wherever we stored them
(webhook bodies, QuickBooks request/response logs, customer-map display names, earlier exports).
"""

from __future__ import annotations

import json
import logging
import re

from ..db import database
from ..models import ComplianceRequest, CustomerMap, ProcessingAttempt, Shop, SyncRecord, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus, ShopStatus
from ..shopify.topics import COMPLIANCE_TOPICS, CUSTOMER_TOPICS, ORDER_TOPICS
from .dispatch import DeliveryContext
from ..work_results import Outcome

log = logging.getLogger(__name__)

# Keys whose values are personal wherever they appear (Shopify REST bodies and QBO entities).
PERSONAL_KEYS = frozenset({
    "email", "contact_email", "phone", "first_name", "last_name", "address1", "address2", "city", "zip",
    "company", "latitude", "longitude", "browser_ip", "client_details", "note", "note_attributes",
    "landing_site", "referring_site", "customer_locale",
    "DisplayName", "GivenName", "FamilyName", "MiddleName", "Title", "Suffix", "FullyQualifiedName",
    "PrintOnCheckName", "CompanyName", "PrimaryEmailAddr", "PrimaryPhone", "Mobile", "AlternatePhone", "Fax",
    "BillEmail", "BillEmailCc", "BillEmailBcc", "Line1", "Line2", "Line3", "Line4", "Line5", "City",
    "PostalCode", "Lat", "Long", "CustomerMemo", "PrivateNote", "Notes",
})
# Inside these objects `name` is a person's name (elsewhere it is an order number or product name).
PERSON_CONTAINERS = frozenset({"customer", "billing_address", "shipping_address", "default_address",
                               "addresses", "destination", "CustomerRef", "BillAddr", "ShipAddr"})


def scrub(value, in_person: bool = False):
    """A copy of a JSON value with personal data replaced by None (ids and amounts untouched)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in PERSONAL_KEYS or (in_person and key == "name"):
                out[key] = None
            else:
                out[key] = scrub(item, in_person or key in PERSON_CONTAINERS)
        return out
    if isinstance(value, list):
        return [scrub(item, in_person) for item in value]
    return value


UNREADABLE_ERASED = "[unparseable body erased by shop/redact]"


def _scrub_text(text: str | None, needles: list[str] | None) -> str | None:
    """Scrub a stored JSON body; a body that is not JSON loses the known identifiers (or everything)."""
    if text is None:
        return None
    try:
        return json.dumps(scrub(json.loads(text)))
    except ValueError:
        if needles is None:
            return UNREADABLE_ERASED
        for needle in needles:
            if needle:
                text = re.sub(re.escape(needle), "[redacted]", text, flags=re.IGNORECASE)
        return text


def _customer_ids(payload: dict) -> tuple[str | None, str | None, set[str]]:
    customer = payload.get("customer") or {}
    cid = str(customer["id"]) if customer.get("id") is not None else None
    email = (customer.get("email") or "").strip().lower() or None
    orders = payload.get("orders_requested") or payload.get("orders_to_redact") or []
    return cid, email, {str(o) for o in orders}


def _customer_deliveries(shop_domain: str, cid: str | None, email: str | None,
                         order_ids: set[str]) -> tuple[list[WebhookDelivery], set[str]]:
    """Every stored delivery about the customer: their orders, those orders' refunds, their compliance requests."""
    cond = WebhookDelivery.order_id.in_(list(order_ids)) if order_ids else None
    for needle in (cid, email):
        if needle:
            term = WebhookDelivery.body.contains(needle)
            cond = term if cond is None else cond | term
    if cond is None:
        return [], set()
    candidates = list(WebhookDelivery.select().where((WebhookDelivery.shop_domain == shop_domain) & cond)
                      .order_by(WebhookDelivery.id))
    orders = set(order_ids)
    mine: list[WebhookDelivery] = []
    for d in candidates:
        try:
            payload = json.loads(d.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            # Unreadable body that still names the customer: it must be scrubbed as text.
            if email and email in (d.body or "").lower():
                mine.append(d)
            continue
        if d.topic in ORDER_TOPICS:
            customer = payload.get("customer") or {}
            same_customer = cid is not None and str(customer.get("id")) == cid
            same_email = email is not None and (payload.get("email") or customer.get("email") or "").lower() == email
            if str(payload.get("id")) in orders or same_customer or same_email:
                orders.add(str(payload.get("id")))
                mine.append(d)
    order_list = list(orders)
    extra = WebhookDelivery.select().where(
        (WebhookDelivery.shop_domain == shop_domain)
        & (((WebhookDelivery.topic == "refunds/create") & WebhookDelivery.order_id.in_(order_list or [""]))
           | (WebhookDelivery.topic.in_(sorted(CUSTOMER_TOPICS)) & (WebhookDelivery.resource_id == (cid or ""))))
    )
    seen = {d.id for d in mine}
    mine += [d for d in extra if d.id not in seen]
    return mine, orders


def _ledger_rows(shop: Shop | None, order_ids: set[str]) -> list[SyncRecord]:
    if shop is None or not order_ids:
        return []
    return list(SyncRecord.select().where((SyncRecord.shop == shop.id) & SyncRecord.order_id.in_(list(order_ids)))
                .order_by(SyncRecord.id))


def _attempts(deliveries: list[WebhookDelivery], records: list[SyncRecord]):
    delivery_ids = [d.id for d in deliveries] or [0]
    record_ids = [r.id for r in records] or [0]
    return ProcessingAttempt.select().where(ProcessingAttempt.delivery.in_(delivery_ids)
                                            | ProcessingAttempt.sync_record.in_(record_ids))


def _payload_or_text(body: str):
    try:
        return json.loads(body)
    except ValueError:
        return body


def handle_data_request(ctx: DeliveryContext) -> Outcome:
    """customers/data_request: a ComplianceRequest holding everything we store about the customer."""
    cid, email, order_ids = _customer_ids(ctx.payload)
    domain = ctx.delivery.shop_domain
    deliveries, orders = _customer_deliveries(domain, cid, email, order_ids)
    deliveries = [d for d in deliveries if d.id != ctx.delivery.id and d.topic not in COMPLIANCE_TOPICS]
    records = _ledger_rows(ctx.shop, orders)
    maps = list(CustomerMap.select().where((CustomerMap.shop == ctx.shop.id) & (CustomerMap.shopify_customer_id == cid))
                ) if ctx.shop is not None and cid else []
    export = {
        "shop": domain,
        "customer": {"id": cid, "email": email},
        "data_request_id": (ctx.payload.get("data_request") or {}).get("id"),
        "generated_at": utcnow().isoformat() + "Z",
        "orders": sorted(orders),
        "webhook_deliveries": [
            {"webhook_id": d.webhook_id, "topic": d.topic, "received_at": d.received_at.isoformat(),
             "status": d.status, "order_id": d.order_id, "payload": _payload_or_text(d.body)}
            for d in deliveries
        ],
        "ledger": [
            {"source_key": r.source_key, "order_id": r.order_id, "order_name": r.order_name, "status": r.status,
             "document_type": r.document_type, "qbo_id": r.qbo_id, "qbo_doc_number": r.qbo_doc_number,
             "currency": r.currency, "shopify_total": str(r.shopify_total) if r.shopify_total is not None else None,
             "posted_at": r.posted_at.isoformat() if r.posted_at else None}
            for r in records
        ],
        "quickbooks_customers": [
            {"qbo_customer_id": m.qbo_customer_id, "display_name": m.display_name} for m in maps
        ],
    }
    summary = (f"exported {len(export['webhook_deliveries'])} deliveries, {len(records)} ledger rows, "
               f"{len(maps)} customer mappings for customer {cid}")
    ComplianceRequest.create(shop_domain=domain, kind="customers/data_request", customer_id=cid, export=export,
                             summary=summary)
    log.info("data request for a customer of %s: %s", domain, summary)
    return Outcome(DeliveryStatus.PROCESSED, None, {"summary": summary})


def handle_customer_redact(ctx: DeliveryContext) -> Outcome:
    """customers/redact: erase the customer's personal data; ids, amounts and QBO ids stay."""
    cid, email, order_ids = _customer_ids(ctx.payload)
    domain = ctx.delivery.shop_domain
    phone = (ctx.payload.get("customer") or {}).get("phone")
    needles = [n for n in (email, phone) if n]
    with database.atomic():
        deliveries, orders = _customer_deliveries(domain, cid, email, order_ids)
        if ctx.delivery.id not in {d.id for d in deliveries}:
            deliveries.append(ctx.delivery)  # this very request carries the email and phone too
        for d in deliveries:
            WebhookDelivery.update(body=_scrub_text(d.body, needles), headers=scrub(d.headers or {})).where(
                WebhookDelivery.id == d.id).execute()
        records = _ledger_rows(ctx.shop, orders)
        attempts = 0
        for a in _attempts(deliveries, records):
            ProcessingAttempt.update(request=scrub(a.request), response=scrub(a.response)).where(
                ProcessingAttempt.id == a.id).execute()
            attempts += 1
        maps = 0
        if ctx.shop is not None and cid:
            maps = CustomerMap.update(display_name=None).where(
                (CustomerMap.shop == ctx.shop.id) & (CustomerMap.shopify_customer_id == cid)).execute()
        exports = ComplianceRequest.update(export=None).where(
            (ComplianceRequest.shop_domain == domain) & (ComplianceRequest.customer_id == cid)
            & ComplianceRequest.export.is_null(False)).execute() if cid else 0
        summary = (f"redacted customer {cid}: {len(deliveries)} deliveries, {attempts} QuickBooks exchanges, "
                   f"{maps} customer mappings, {exports} earlier exports; kept {len(records)} ledger rows "
                   f"(ids, amounts, QuickBooks ids)")
        ComplianceRequest.create(shop_domain=domain, kind="customers/redact", customer_id=cid, summary=summary)
    log.info("customer redaction for %s: %s", domain, summary)
    return Outcome(DeliveryStatus.PROCESSED, None, {"summary": summary})


def handle_shop_redact(ctx: DeliveryContext) -> Outcome:
    """shop/redact (48 h after uninstall): erase all personal data held for the shop; keep accounting ids."""
    domain = ctx.delivery.shop_domain
    shop = ctx.shop
    if shop is not None and shop.status == ShopStatus.ACTIVE:
        # Shopify sends shop/redact only for a shop still gone 48 h after uninstall; it came back.
        return Outcome(DeliveryStatus.IGNORED, "shop is installed again: nothing redacted")
    now = utcnow()
    with database.atomic():
        count = 0
        for d in WebhookDelivery.select().where(WebhookDelivery.shop_domain == domain):
            WebhookDelivery.update(body=_scrub_text(d.body, None), headers=scrub(d.headers or {})).where(
                WebhookDelivery.id == d.id).execute()
            count += 1
        attempts = maps = 0
        if shop is not None:
            delivery_ids = WebhookDelivery.select(WebhookDelivery.id).where(WebhookDelivery.shop_domain == domain)
            record_ids = SyncRecord.select(SyncRecord.id).where(SyncRecord.shop == shop.id)
            for a in ProcessingAttempt.select().where(ProcessingAttempt.delivery.in_(delivery_ids)
                                                      | ProcessingAttempt.sync_record.in_(record_ids)):
                ProcessingAttempt.update(request=scrub(a.request), response=scrub(a.response)).where(
                    ProcessingAttempt.id == a.id).execute()
                attempts += 1
            maps = CustomerMap.update(display_name=None).where(CustomerMap.shop == shop.id).execute()
            Shop.update(email=None, access_token=None, refresh_token=None, access_token_expires_at=None,
                        refresh_token_expires_at=None, status=ShopStatus.REDACTED, redacted_at=now,
                        token_version=Shop.token_version + 1, updated_at=now).where(Shop.id == shop.id).execute()
        exports = ComplianceRequest.update(export=None).where(
            (ComplianceRequest.shop_domain == domain) & ComplianceRequest.export.is_null(False)).execute()
        summary = (f"redacted shop {domain}: {count} deliveries, {attempts} QuickBooks exchanges, {maps} customer "
                   f"mappings, {exports} exports; ledger kept")
        ComplianceRequest.create(shop_domain=domain, kind="shop/redact", summary=summary)
    log.info("%s", summary)
    return Outcome(DeliveryStatus.PROCESSED, None, {"summary": summary})
