"""orders/paid in invoice mode: a QBO Payment applied to the order's Invoice (LinkedTxn), once per payment."""

from __future__ import annotations

import logging
from decimal import Decimal

from ..models import Shop, SyncRecord, WebhookDelivery
from ..statuses import DeliveryStatus, RecordStatus
from ..quickbooks.client import QboClient, connection_for
from ..translate.document_kinds import PAYMENT_DOC, read_totals, takes_payments
from ..translate.money import ZERO
from ..translate.order import TranslationError
from ..translate.payment import deposit_account_for, payment_method_for, plan_payments, render_payment
from ..translate.settings import SyncSettings
from .orders import post_order, with_transactions
from .shop_settings import shop_facts
from ..work_results import FatalError, Outcome, RetryLater
from .posting import Document, PostResult, find_payment, flag, ledger_lock, ledger_row, post_document, read_once

log = logging.getLogger(__name__)


def recorded_payments(shop: Shop, order_id: str) -> Decimal:
    """What is already recorded as paid for this order (posted Payment rows)."""
    rows = SyncRecord.select(SyncRecord.shopify_total).where(
        (SyncRecord.shop == shop.id) & (SyncRecord.kind == "payment") & (SyncRecord.order_id == str(order_id))
        & (SyncRecord.status == RecordStatus.POSTED))
    return sum((r.shopify_total or ZERO for r in rows), ZERO)


def paid_moment(delivery: WebhookDelivery | None) -> str | None:
    """When Shopify says the order was paid: an orders/paid delivery's X-Shopify-Triggered-At."""
    if delivery is not None and delivery.topic == "orders/paid" and delivery.triggered_at:
        return str(delivery.triggered_at)
    return None


def post_payment_for_order(shop: Shop, order: dict, settings: SyncSettings, delivery: WebhookDelivery | None = None,
                           client: QboClient | None = None) -> Outcome:
    """Record the order's payments against its invoice (posting the invoice first if it never was).

    Payments are planned from the order's transactions (read from Shopify when the webhook body has
    none), so each is dated the day its money came in; one order's payments are planned and written
    under one lock, so concurrent deliveries never both pay the same open balance."""
    order_id = str(order.get("id") or "")
    if not order_id:
        raise FatalError("order payload has no id")
    conn = connection_for(shop)
    client = client or QboClient(conn)
    invoice_row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order_id}"))
    if invoice_row is None or invoice_row.status != RecordStatus.POSTED:
        outcome = post_order(shop, order, settings, conn, delivery=delivery, client=client)
        invoice_row = SyncRecord.get_or_none((SyncRecord.shop == shop.id)
                                             & (SyncRecord.source_key == f"order:{order_id}"))
        if invoice_row is None or invoice_row.status != RecordStatus.POSTED:
            if outcome.status in (DeliveryStatus.FLAGGED, DeliveryStatus.PROCESSED):
                return Outcome(outcome.status, f"invoice not posted, payment not recorded: {outcome.error}")
            raise RetryLater(f"invoice for order {order_id} is not posted yet: {outcome.error}", 300)
    if not takes_payments(invoice_row.document_type):
        return Outcome(DeliveryStatus.PROCESSED, f"order was posted as a {invoice_row.document_type}: it is paid already")
    order = with_transactions(shop, order, always=True)
    with ledger_lock(shop, invoice_row, key=f"payments:{order_id}",
                     busy="this order's payments are being recorded by another worker"):
        return _post_payments(shop, order, settings, delivery, client, invoice_row)


def _post_payments(shop: Shop, order: dict, settings: SyncSettings, delivery: WebhookDelivery | None,
                   client: QboClient, invoice_row: SyncRecord) -> Outcome:
    order_id = str(order.get("id"))
    try:
        plans = plan_payments(order, settings, shop_facts(shop), recorded_payments(shop, order_id),
                              paid_at=paid_moment(delivery))
    except TranslationError as exc:
        raise FatalError(f"payment cannot be translated: {exc}", {"field": exc.field}) from None
    if not plans:
        return Outcome(DeliveryStatus.PROCESSED, "no new payment on this order")
    posted, flagged = [], []
    for plan in plans:
        record = ledger_row(shop, plan.source_key, kind="payment", order_id=order_id, order_name=plan.order_name,
                            delivery=delivery)
        if record.status in (RecordStatus.POSTED, RecordStatus.SKIPPED, RecordStatus.VOIDED):
            continue

        invoice_now = read_once(client, invoice_row.document_type, str(invoice_row.qbo_id))

        def find(plan=plan, record=record, invoice_now=invoice_now) -> dict | None:
            # The date the uncertain attempt wrote (a later plan may date an amount-based payment otherwise).
            written = SyncRecord.get_by_id(record.id).order_date or plan.txn_date
            return find_payment(client, invoice_now()["CustomerRef"]["value"], written, plan.payment_marker)

        def build(plan=plan, record=record, invoice_now=invoice_now) -> Document | PostResult:
            invoice = invoice_now()
            balance = read_totals(invoice).balance or ZERO
            if plan.amount > balance:
                return flag(record, f"payment {plan.amount} is more than the invoice's open balance {balance}",
                            shopify_total=plan.amount)
            payload = render_payment(plan, invoice["CustomerRef"]["value"], str(invoice_row.qbo_id),
                                     deposit_account_for(settings, plan.gateway),
                                     payment_method_for(settings, plan.gateway))
            return Document(entity=PAYMENT_DOC.entity, payload=payload, doc_number=None, marker=plan.payment_marker,
                            figures={"shopify_total": plan.amount, "qbo_total": plan.amount},
                            ledger={"order_date": plan.txn_date})

        result = post_document(shop, client, record, build, delivery, find=find)
        (flagged if result.status == DeliveryStatus.FLAGGED else posted).append(result.record)
    if flagged:
        return Outcome(DeliveryStatus.FLAGGED, "; ".join(r.reason or "" for r in flagged))
    if not posted:
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, "payments already recorded")
    return Outcome(DeliveryStatus.POSTED, None, {"payments": [{"qbo_id": r.qbo_id, "amount": str(r.shopify_total)} for r in posted],
                                    "invoice": invoice_row.qbo_doc_number})
