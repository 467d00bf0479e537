"""orders/cancelled: void the order's unpaid Invoice / Sales Receipt when no money went back, else post
the refunds; QBO void keeps the document (history), nothing is ever deleted. Once per order (cancel:<id>).

Whatever order the deliveries come in, the books end the same: money that went back is a refund
document next to its sale (posted as sold first if it never was); an order cancelled before it was
posted with no money sent back gets nothing, and a late orders/fulfilled posts nothing either (the
decision is taken under the order's ledger lock, which posting the order takes too)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from ..models import QboConnection, Shop, SyncRecord, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus, RecordStatus
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.errors import QboError
from ..translate.document_kinds import kind_of, read_totals
from ..translate.requestid import request_id
from ..translate.settings import SyncSettings
from .dispatch import DeliveryContext
from .uninstall import ensure_shop_active
from .orders import CANCELLED_UNPOSTED
from .shop_settings import shop_settings
from ..work_results import FatalError, Outcome, RetryLater, WaitingForReconnect
from .posting import _update, ledger_lock, ledger_row, record_attempt, translate_error
from .refunds import _moved_money, post_refund

log = logging.getLogger(__name__)


def handle_cancelled(ctx: DeliveryContext) -> Outcome:
    shop = ensure_shop_active(ctx.shop)
    conn = connection_for(shop)
    return cancel_order(shop, ctx.payload, shop_settings(shop, conn), conn, delivery=ctx.delivery)


def cancel_order(shop: Shop, order: dict, settings: SyncSettings, conn: QboConnection,
                 delivery: WebhookDelivery | None = None, client: QboClient | None = None) -> Outcome:
    order_id = str(order.get("id") or "")
    if not order_id:
        raise FatalError("order payload has no id")
    record = ledger_row(shop, f"cancel:{order_id}", kind="cancel", order_id=order_id, order_name=order.get("name"),
                        delivery=delivery)
    if record.status in (RecordStatus.POSTED, RecordStatus.SKIPPED):
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, record.reason or "cancellation already handled")
    client = client or QboClient(conn)
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict) and r.get("id")]
    if any(_moved_money(r) for r in refunds):
        # Money went back: the refunds carry the cancellation (each exactly once under refund:<id>).
        results = [post_refund(shop, dict(r, order_id=r.get("order_id") or order_id), settings, conn,
                               client=client, order=order) for r in refunds]
        _update(record, status=RecordStatus.SKIPPED, reason="cancelled with refunds: the refund documents record it")
        return Outcome(DeliveryStatus.PROCESSED, record.reason, {"refunds": [o.status for o in results]})
    doc = ledger_row(shop, f"order:{order_id}", kind="order", order_id=order_id, order_name=order.get("name"))
    with ledger_lock(shop, doc, busy="the order's document is being posted by another worker"):
        doc = SyncRecord.get_by_id(doc.id)
        if doc.status == RecordStatus.POSTING:
            raise RetryLater("the order's document is being written (outcome not known yet): the cancellation "
                             "waits for it", 60)
        if doc.status not in (RecordStatus.POSTED, RecordStatus.VOIDED):
            # Before any document: none will be posted now (post_order reads this under the same lock).
            _update(record, status=RecordStatus.SKIPPED, reason=CANCELLED_UNPOSTED)
            _update(doc, status=RecordStatus.SKIPPED, reason=CANCELLED_UNPOSTED)
            return Outcome(DeliveryStatus.PROCESSED, record.reason)
    if doc.status == RecordStatus.VOIDED:
        _update(record, status=RecordStatus.POSTED, qbo_id=doc.qbo_id, document_type=doc.document_type, reason="already voided")
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, "document already voided")
    with ledger_lock(shop, record, busy="this cancellation is being handled by another worker"):
        return _void_locked(shop, client, record, doc, delivery)


def _void_locked(shop: Shop, client: QboClient, record: SyncRecord, doc: SyncRecord,
                 delivery: WebhookDelivery | None) -> Outcome:
    record = SyncRecord.get_by_id(record.id)
    if record.status in (RecordStatus.POSTED, RecordStatus.SKIPPED):
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, record.reason or "cancellation already handled")
    started = time.perf_counter()
    entity = doc.document_type
    try:
        current = client.read(entity, doc.qbo_id)
        totals = read_totals(current)
        total = totals.total if totals.total is not None else Decimal("0.00")
        if "Voided" in (current.get("PrivateNote") or "")[:8] and total == 0:
            voided = current  # an earlier attempt voided it; its answer was lost
        else:
            paid = totals.balance is not None and totals.balance != total
            if kind_of(entity).takes_payments and paid:
                _update(record, status=RecordStatus.FLAGGED, document_type=entity, qbo_id=doc.qbo_id,
                     reason=f"{kind_of(entity).label.lower()} {doc.qbo_doc_number} is (partly) paid and the "
                            "cancellation refunded nothing: left as is for the bookkeeper")
                return Outcome(DeliveryStatus.FLAGGED, record.reason)
            _update(record, status=RecordStatus.POSTING, attempts=record.attempts + 1, document_type=entity, qbo_id=doc.qbo_id,
                 request_id=request_id(shop.domain, record.source_key, "void"))
            voided = client.void(entity, doc.qbo_id, str(current.get("SyncToken", "0")), record.request_id)
    except WaitingForReconnect:
        raise
    except QboError as exc:
        record_attempt(record, delivery, client, "error", exc, started)
        mapped = translate_error(exc, record)
        _update(record, status=RecordStatus.FAILED if isinstance(mapped, FatalError) else record.status,
             reason=exc.describe(), error_code=exc.code)
        raise mapped from None
    _update(record, status=RecordStatus.POSTED, qbo_id=str(voided.get("Id")), qbo_sync_token=str(voided.get("SyncToken", "")),
         qbo_doc_number=doc.qbo_doc_number, posted_at=utcnow(), reason=f"voided {entity} {doc.qbo_doc_number}",
         shopify_total=doc.shopify_total, qbo_total=Decimal("0.00"))
    _update(doc, status=RecordStatus.VOIDED, qbo_sync_token=str(voided.get("SyncToken", "")),
         reason="order cancelled: document voided in QuickBooks")
    record_attempt(record, delivery, client, "posted", None, started)
    return Outcome(DeliveryStatus.POSTED, None, {"voided": entity, "qbo_id": doc.qbo_id, "doc_number": doc.qbo_doc_number})
