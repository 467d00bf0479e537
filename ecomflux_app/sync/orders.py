"""orders/fulfilled and orders/paid: post ONE Sales Receipt or Invoice per order, exactly once."""

from __future__ import annotations

import json
import logging
from datetime import date
from functools import partial
from typing import Callable

from ..models import QboConnection, Shop, SyncRecord, WebhookDelivery
from ..statuses import DeliveryStatus, RecordStatus
from ..quickbooks.client import QboClient
from ..quickbooks.company_taxes import with_tax_setup
from ..translate.order import Refs, TranslationError, order_marker, plan_order, render_document
from ..translate.settings import SyncSettings
from ..work_results import FatalError, Outcome, RetryLater, WaitingForReconnect
from .posting import BATCH_MAX, BatchItem, Document, PostResult, _update, flag, ledger_row, ledger_rows, post_batch
from .references import ReferenceResolver, post_with_current_references, prepare_references, stale_reference
from .shop_settings import shop_facts
from ..shopify.graphql import fetch_order

log = logging.getLogger(__name__)

TRIGGER_TOPICS = {"fulfilled": "orders/fulfilled", "paid": "orders/paid"}
# With a backlog, one new buyer triggers the reference work of the next orders too (batch calls).
BACKLOG_PREFETCH = 60
PREFETCH_MIN_HEADROOM = 10


def order_day(order: dict) -> date | None:
    """The day the order was placed (processed_at, else created_at), None when unreadable."""
    text = order.get("processed_at") or order.get("created_at")
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def with_transactions(shop: Shop, order: dict, *, always: bool = False) -> dict:
    """Orders paid (partly) with a gift card need their transactions, which webhook bodies lack:
    read them once through the Admin API so the redemption is not posted as money deposited
    (`always`: whatever the gateways). Shopify being unreachable or throttling raises RetryLater
    (it is better to wait than to post a wrong deposit)."""
    gateways = [str(g).lower() for g in order.get("payment_gateway_names") or []]
    if order.get("transactions") is not None or not (always or any("gift" in g for g in gateways)):
        return order
    fetched = fetch_order(shop, order.get("id"))
    if fetched and fetched.get("transactions") is not None:
        return dict(order, transactions=fetched["transactions"])
    return order


def build_order_document(shop: Shop, order: dict, settings: SyncSettings, client: QboClient,
                         record: SyncRecord) -> Document | PostResult:
    """The order's document (references resolved), or the flag when it must not be posted; shared by
    webhooks, refunds, backfill (which batches the writes) and reconciliation."""
    order = with_transactions(shop, order)
    settings = with_tax_setup(settings, client)
    try:
        plan = plan_order(order, settings, shop_facts(shop))
    except TranslationError as exc:
        field = getattr(exc, "field", None)
        reason = f"order cannot be translated: {exc}"
        flag(record, reason)  # visible on the page; a replay after a fix posts it
        raise FatalError(reason, {"field": field}) from None
    figures = {"shopify_total": plan.balance.expected, "qbo_total": plan.document_total,
               "tax_total": plan.tax_total, "shipping_total": plan.shipping_total - plan.shipping_discount_total,
               "discount_total": plan.discount_total}
    # Which refunds this document nets out (edits that moved no money), kept with the document itself.
    ledger = {"currency": plan.currency, "order_date": plan.txn_date,
              "reflected_refunds": ",".join(plan.reflected_refund_ids)}
    if not plan.balance.ok:
        return flag(record, f"not posted: {plan.balance.reason}", shopify_total=plan.balance.expected,
                    qbo_total=plan.balance.computed, tax_total=plan.tax_total, currency=plan.currency)
    resolver = ReferenceResolver(shop, client, settings)
    requests = plan.item_requests(settings.item_type)
    needed = resolver.calls_needed(plan.customer, plan.currency_ref, requests)
    if needed > 1 and resolver.busy():
        prepare_backlog_references(shop, settings, client, plan)
        needed = resolver.calls_needed(plan.customer, plan.currency_ref, requests)
    left, refill = client.limiter.headroom(client.realm)
    if left < needed:
        # Park before spending anything: an order cut off halfway would redo its lookups later.
        raise RetryLater("QuickBooks request budget for this company is used up for this minute",
                         max(refill, 1.0))
    customer_id, items = resolver.resolve(plan.customer, plan.currency_ref, requests)
    payload = render_document(plan, Refs(customer_id=customer_id, items=items))
    return Document(entity=plan.doc_type, payload=payload, doc_number=plan.doc_number, marker=plan.marker,
                    figures=figures, ledger=ledger)


def _backlog_plans(shop: Shop, settings: SyncSettings, limit: int) -> list:
    """Plans of the shop's next waiting order deliveries that would post (trigger topic, start date,
    balanced, not yet posted): whatever is skipped here is resolved by its own order later."""
    topic = TRIGGER_TOPICS.get(settings.trigger, "orders/fulfilled")
    rows = (WebhookDelivery.select(WebhookDelivery.body)
            .where((WebhookDelivery.shop == shop.id) & (WebhookDelivery.topic == topic)
                   & WebhookDelivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.RECEIVED, DeliveryStatus.PENDING)))
            .order_by(WebhookDelivery.id).limit(limit))
    orders = []
    for row in rows:
        try:
            order = json.loads(row.body)
        except ValueError:
            continue
        day = order_day(order) if isinstance(order, dict) else None
        if not isinstance(order, dict) or (settings.sync_start_date and day and day < settings.sync_start_date):
            continue
        orders.append(order)
    posted = {r.source_key for r in SyncRecord.select(SyncRecord.source_key).where(
        (SyncRecord.shop == shop.id) & (SyncRecord.status == RecordStatus.POSTED)
        & SyncRecord.source_key.in_([f"order:{o.get('id')}" for o in orders]))}
    facts, plans = shop_facts(shop), []
    for order in orders:
        if f"order:{order.get('id')}" in posted:
            continue
        try:
            plan = plan_order(order, settings, facts)
        except TranslationError:
            continue
        if plan.balance.ok:
            plans.append(plan)
    return plans


def prepare_backlog_references(shop: Shop, settings: SyncSettings, client: QboClient, plan) -> None:
    """While the shop has a backlog, create the customers and items of its next orders together
    (a few batch calls for up to BACKLOG_PREFETCH orders) rather than one lookup and one create per
    new buyer. Best effort: anything it leaves unresolved is resolved by the order itself."""
    left, _refill = client.limiter.headroom(client.realm)
    if left < PREFETCH_MIN_HEADROOM:
        return  # keep this minute's budget for documents; each order resolves its own references
    try:
        prepare_references(shop, client, settings, [plan, *_backlog_plans(shop, settings, BACKLOG_PREFETCH)])
    except Exception as exc:  # noqa: BLE001 - the order's own resolve() meets any real error again
        log.warning("backlog reference prefetch for %s skipped: %s", shop.domain, exc)


CANCELLED_UNPOSTED = "order cancelled before it was posted, and no money went back: nothing to post"


def cancelled_unposted(shop: Shop, order_id: str) -> bool:
    """Was the order cancelled (with no money sent back) before any document was posted for it?"""
    row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"cancel:{order_id}"))
    return row is not None and row.status == RecordStatus.SKIPPED and row.reason == CANCELLED_UNPOSTED


def post_order(shop: Shop, order: dict, settings: SyncSettings, conn: QboConnection,
               delivery: WebhookDelivery | None = None, client: QboClient | None = None,
               for_money: bool = False) -> Outcome:
    """Post the order's document through the ledger; reused by replays, backfill and reconciliation.

    An order cancelled before it was posted stays unposted (decided under the order's ledger lock, the
    one the cancellation takes too), unless a refund that moved money needs its sale (for_money)."""
    order_id = order.get("id")
    if order_id in (None, ""):
        raise FatalError("order payload has no id")
    record = ledger_row(shop, f"order:{order_id}", kind="order", order_id=str(order_id),
                        order_name=order.get("name"), delivery=delivery)
    if record.status == RecordStatus.POSTED:
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, f"already posted as {record.document_type} {record.qbo_doc_number}")
    client = client or QboClient(conn)
    result = post_with_current_references(
        shop, client, record, partial(build_unless_cancelled, shop, order, settings, client, record, for_money),
        delivery)
    return _order_outcome(result)


def build_unless_cancelled(shop: Shop, order: dict, settings: SyncSettings, client: QboClient,
                           record: SyncRecord, for_money: bool = False) -> Document | PostResult:
    """The order's document, unless it was cancelled unposted with no money back (then the row is skipped)."""
    if not for_money and cancelled_unposted(shop, str(order.get("id"))):
        _update(record, status=RecordStatus.SKIPPED, reason=CANCELLED_UNPOSTED)
        return PostResult(DeliveryStatus.SKIPPED_DUPLICATE, record)
    return build_order_document(shop, order, settings, client, record)


def prepare_order_references(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient) -> None:
    """The customers and items of many orders resolved together (batch creates), before their documents."""
    plans = []
    for order in orders:
        try:
            plans.append(plan_order(order, settings, shop_facts(shop)))
        except TranslationError:
            pass  # build_order_document flags it
    prepare_references(shop, client, settings, [p for p in plans if p.balance.ok])


def post_orders(shop: Shop, orders: list[dict], settings: SyncSettings, client: QboClient,
                each: Callable[[dict, Outcome | Exception], None] | None = None,
                deliveries: list[WebhookDelivery | None] | None = None,
                prepared: bool = False) -> list[Outcome | Exception]:
    """post_order for many orders (a backfill page, a backlog's drain): their customers and items resolved
    together (unless `prepared`), their documents written BATCH_MAX per QBO batch through the same ledger
    path (posting.post_batch); `deliveries` (one per order) are the webhook rows they came from.

    Returns per order its Outcome or the error post_order would have raised; `each` hears every result
    as it is known. A batch whose outcome is uncertain raises RetryLater (its rows are looked up next time)."""
    deliveries = deliveries or [None] * len(orders)
    records = ledger_rows(shop, [{"source_key": f"order:{order['id']}", "kind": "order", "order_id": str(order["id"]),
                                  "order_name": order.get("name"), "delivery": delivery.id if delivery else None}
                                 for order, delivery in zip(orders, deliveries)])
    if not prepared:
        prepare_order_references(shop, orders, settings, client)
    outcomes: list[Outcome | Exception] = []
    for start in range(0, len(orders), BATCH_MAX):
        chunk = list(zip(orders[start:start + BATCH_MAX], records[start:start + BATCH_MAX]))
        items = [BatchItem(record, partial(build_unless_cancelled, shop, order, settings, client, record),
                           delivery=delivery, marker=order_marker(str(order["id"])))
                 for (order, record), delivery in zip(chunk, deliveries[start:start + BATCH_MAX])]
        for (order, _record), item, result in zip(chunk, items, post_batch(shop, client, items)):
            if isinstance(result, FatalError) and stale_reference(result.detail):
                try:  # a cached customer or item QBO no longer takes: built again, as post_order would
                    result = post_order(shop, order, settings, client.conn, delivery=item.delivery, client=client)
                except (FatalError, RetryLater, WaitingForReconnect) as exc:
                    result = exc
            outcome = _order_outcome(result) if isinstance(result, PostResult) else result
            outcomes.append(outcome)
            if each is not None:
                each(order, outcome)
    return outcomes


def _order_outcome(result: PostResult) -> Outcome:
    rec = result.record
    if rec.status == RecordStatus.SKIPPED:
        return Outcome(DeliveryStatus.PROCESSED, rec.reason)
    if result.status == DeliveryStatus.FLAGGED:
        return Outcome(DeliveryStatus.FLAGGED, rec.reason, {"shopify_total": str(rec.shopify_total), "qbo_total": str(rec.qbo_total)})
    if result.status == DeliveryStatus.SKIPPED_DUPLICATE:
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, f"already posted as {rec.document_type} {rec.qbo_doc_number}")
    return Outcome(DeliveryStatus.POSTED, None, {"qbo_id": rec.qbo_id, "doc_number": rec.qbo_doc_number,
                                    "document_type": rec.document_type, "adopted": result.adopted})
