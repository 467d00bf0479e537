"""refunds/create: one RefundReceipt (receipt mode) or CreditMemo (invoice mode) per Shopify refund, exactly once.

A CreditMemo is then applied to the order's Invoice while it is open (a zero Payment, ledger key
apply:<refund id>), so the invoice's A/R drops by the credit instead of leaving it unapplied.
"""

from __future__ import annotations

import json
import logging

from ..models import QboConnection, Shop, SyncRecord, WebhookDelivery, utcnow
from ..statuses import DeliveryStatus, RecordStatus
from ..quickbooks.client import QboClient, connection_for
from ..translate.document_kinds import PAYMENT_DOC, kind_of, leaves_credit, takes_payments
from ..translate.order import Refs, TranslationError
from ..translate.payment import APPLY_KEY_PREFIX, CreditApplication, plan_credit_application, render_credit_application
from ..translate.refund import moved_money, plan_refund, render_refund
from ..translate.settings import SyncSettings
from .dispatch import DeliveryContext
from .uninstall import ensure_shop_active
from .orders import post_order, with_transactions
from .shop_settings import shop_facts, shop_settings
from ..work_results import FatalError, Outcome, RetryLater
from .posting import Document, PostResult, _update, find_payment, flag, ledger_row, post_document, read_once
from .references import ReferenceResolver, post_with_current_references
from .payments import post_payment_for_order
from ..shopify.graphql import fetch_order

log = logging.getLogger(__name__)


def order_record(shop: Shop, order_id: str) -> SyncRecord | None:
    return SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order_id}"))


def _delivery_body(delivery: WebhookDelivery | None) -> dict | None:
    if delivery is None:
        return None
    try:
        body = json.loads(delivery.body)
    except (TypeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def order_body(shop: Shop, order_id: str) -> dict | None:
    """The order JSON: its latest orders/* delivery, else read from Shopify (None if Shopify has none)."""
    latest = (WebhookDelivery.select()
              .where((WebhookDelivery.shop == shop.id) & (WebhookDelivery.order_id == str(order_id))
                     & WebhookDelivery.topic.startswith("orders/"))
              .order_by(WebhookDelivery.id.desc()).first())
    body = _delivery_body(latest)
    if body is not None and str(body.get("id")) == str(order_id):
        return body
    return fetch_order(shop, order_id)


def refund_ids_in(order: dict | None) -> set[str]:
    """Refunds an order body lists that moved no money: a document posted from this body nets them out
    (a refund that sent money back is always a document of its own, whatever body the sale came from)."""
    return {str(r.get("id")) for r in (order or {}).get("refunds") or []
            if isinstance(r, dict) and r.get("id") and not _moved_money(r)}


def reflected_ids(record: SyncRecord | None) -> set[str]:
    """The refunds an order's posted document nets out, as the ledger recorded them with the document:
    the one answer every worker reads, whatever body each of them fetched."""
    if record is None or record.status != RecordStatus.POSTED:
        return set()
    if record.reflected_refunds is not None:
        return {i for i in record.reflected_refunds.split(",") if i}
    # Posted before the ledger kept them: that document netted every refund its delivery body listed.
    body = _delivery_body(record.delivery) if record.delivery_id else None
    return {str(r.get("id")) for r in (body or {}).get("refunds") or [] if isinstance(r, dict) and r.get("id")}


def mark_reflected(shop: Shop, order: dict) -> None:
    """Refunds the order's posted document nets out (per its ledger row, not per this body): ledger
    them as skipped, never post them."""
    record = order_record(shop, str(order.get("id")))
    for refund_id in sorted(reflected_ids(record)):
        row = ledger_row(shop, f"refund:{refund_id}", kind="refund", order_id=str(order.get("id")),
                         order_name=order.get("name"))
        if row.status in (RecordStatus.PENDING, RecordStatus.FAILED, RecordStatus.FLAGGED):
            SyncRecord.update(status=RecordStatus.SKIPPED, reason="already reflected in the order's document",
                              updated_at=utcnow()).where(SyncRecord.id == row.id).execute()


def ensure_order_posted(shop: Shop, order_id: str, settings: SyncSettings, conn: QboConnection,
                        client: QboClient, for_money: bool = False) -> tuple[SyncRecord, dict | None, set[str]]:
    """The order's posted ledger row (posting it first when it never was), its body, and the refunds
    its document reflects. RetryLater while the order cannot be read or posted yet."""
    record = order_record(shop, order_id)
    if record is not None and record.status == RecordStatus.POSTED:
        return record, None, reflected_ids(record)
    body = order_body(shop, order_id)
    if body is None:
        raise RetryLater(f"order {order_id} is not known yet: waiting for it before its refund", 60)
    outcome = post_order(shop, body, settings, conn, client=client, for_money=for_money)
    record = order_record(shop, order_id)
    if record is None or record.status != RecordStatus.POSTED:
        raise RetryLater(f"order {order_id} is not posted ({outcome.status}: {outcome.error}); "
                         "its refund waits for it", 300)
    # Whoever posted it (this worker or another one meanwhile), the ledger row says what it nets.
    mark_reflected(shop, body)
    return record, body, reflected_ids(record)


def refund_account(client: QboClient, settings: SyncSettings, refund: dict | None = None) -> str:
    """Shopify Payments' clearing account for a refund through it (when set), else settings.refund_account_id,
    else the company's first Bank account (where the money left from)."""
    gateways = {str(t.get("gateway") or "") for t in (refund or {}).get("transactions") or []
                if isinstance(t, dict) and t.get("kind") in ("refund", None)}
    clearing = next((settings.clearing_account_for(g) for g in sorted(gateways) if settings.clearing_account_for(g)),
                    None)
    if clearing:
        return clearing
    if settings.refund_account_id:
        return settings.refund_account_id
    rows = client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
    if not rows:
        raise FatalError("no refund account: set one in settings (the company has no Bank account)")
    return str(sorted(rows, key=lambda r: int(r["Id"]) if str(r["Id"]).isdigit() else 0)[0]["Id"])


def _moved_money(refund: dict) -> bool:
    """Whether the refund sent money back; a malformed transactions list is left to plan_refund to report."""
    try:
        return moved_money(refund)
    except TranslationError:
        return False


def record_payment_first(shop: Shop, order_id: str, body: dict, settings: SyncSettings,
                         delivery: WebhookDelivery | None, client: QboClient) -> None:
    """Money can only go back after it came in: record the order's payment on its invoice before the
    refund (orders/paid may arrive later, Shopify keeps no order), so the refund is a RefundReceipt
    out of the bank and the invoice closes, not a credit memo that would leave the cash unrecorded."""
    # Per-transaction amounts when Shopify has them: the body may already be net of this refund.
    outcome = post_payment_for_order(shop, with_transactions(shop, body, always=True), settings, delivery, client)
    if outcome.status == DeliveryStatus.FLAGGED:
        log.warning("order %s: payment not recorded before its refund (%s)", order_id, outcome.error)


def _invoice_paid(shop: Shop, order_rec: SyncRecord) -> bool:
    """Has a Payment been recorded against the order's invoice (money came in through QBO)?"""
    if not takes_payments(order_rec.document_type):
        return False
    return SyncRecord.select().where((SyncRecord.shop == shop.id) & (SyncRecord.kind == "payment")
                                     & (SyncRecord.order_id == order_rec.order_id)
                                     & (SyncRecord.status == RecordStatus.POSTED)).exists()


def apply_key(refund_record: SyncRecord) -> str:
    """apply:<refund id> for the ledger row refund:<refund id>."""
    return APPLY_KEY_PREFIX + refund_record.source_key.split(":", 1)[1]


def credit_to_apply(shop: Shop, refund_record: SyncRecord) -> bool:
    """A posted credit memo whose application to the invoice has not finished (or never started)."""
    if refund_record.status != RecordStatus.POSTED or not leaves_credit(refund_record.document_type):
        return False
    row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == apply_key(refund_record)))
    return row is None or row.status not in (RecordStatus.POSTED, RecordStatus.SKIPPED)


def apply_credit(shop: Shop, client: QboClient, memo_record: SyncRecord, order_rec: SyncRecord | None,
                 delivery: WebhookDelivery | None = None) -> PostResult | None:
    """Apply a posted credit memo to the order's open invoice with a zero Payment, exactly once."""
    if not credit_to_apply(shop, memo_record) or order_rec is None or not takes_payments(order_rec.document_type) \
            or not order_rec.qbo_id or not memo_record.qbo_id:
        return None
    record = ledger_row(shop, apply_key(memo_record), kind="apply", order_id=memo_record.order_id,
                        order_name=memo_record.order_name or order_rec.order_name, delivery=delivery)
    memo_now = read_once(client, memo_record.document_type, str(memo_record.qbo_id))
    invoice_now = read_once(client, order_rec.document_type, str(order_rec.qbo_id))
    planned: list[CreditApplication] = []

    def plan() -> CreditApplication:
        if not planned:
            try:
                planned.append(plan_credit_application(
                    memo_record.source_key.split(":", 1)[1], memo_record.order_id,
                    order_rec.order_name or f"#{memo_record.order_id}", memo_now(), invoice_now()))
            except TranslationError as exc:
                reason = f"credit memo {memo_record.qbo_doc_number} cannot be applied: {exc}"
                # The status stays: a row left 'posting' must still be looked up before any create.
                _update(record, reason=reason)
                raise FatalError(reason, {"field": exc.field}) from None
        return planned[0]

    def find() -> dict | None:
        application = plan()
        if not application.customer_id:
            return None
        return find_payment(client, application.customer_id, application.txn_date, application.payment_marker)

    def build() -> Document | PostResult:
        application = plan()
        if application.skip_reason:
            _update(record, status=RecordStatus.SKIPPED, reason=application.skip_reason)
            return PostResult(DeliveryStatus.SKIPPED_DUPLICATE, record)
        return Document(entity=PAYMENT_DOC.entity, payload=render_credit_application(application), doc_number=None,
                        marker=application.payment_marker,
                        figures={"shopify_total": application.amount, "qbo_total": application.amount},
                        ledger={"order_date": application.txn_date, "currency": memo_record.currency})

    try:
        return post_document(shop, client, record, build, delivery, find=find)
    except FatalError as exc:
        raise FatalError(f"credit memo {memo_record.qbo_doc_number} is posted, but applying it to invoice "
                         f"{order_rec.qbo_doc_number} failed: {exc.reason}", exc.detail) from None


def _applied(result: PostResult | None) -> dict | None:
    """The application's part of the refund's outcome detail."""
    if result is None:
        return None
    rec = result.record
    if rec.status != RecordStatus.POSTED:
        return {"status": rec.status, "reason": rec.reason}
    return {"status": RecordStatus.POSTED, "qbo_id": rec.qbo_id, "amount": str(rec.qbo_total)}


def handle_refund(ctx: DeliveryContext) -> Outcome:
    shop = ensure_shop_active(ctx.shop)
    conn = connection_for(shop)
    return post_refund(shop, ctx.payload, shop_settings(shop, conn), conn, delivery=ctx.delivery)


def post_refund(shop: Shop, refund: dict, settings: SyncSettings, conn: QboConnection,
                delivery: WebhookDelivery | None = None, client: QboClient | None = None,
                order: dict | None = None) -> Outcome:
    """Post one Shopify refund through the ledger (key refund:<id>), after its order's document."""
    refund_id, order_id = refund.get("id"), refund.get("order_id") or (order or {}).get("id")
    if refund_id in (None, "") or order_id in (None, ""):
        raise FatalError("refund payload has no id or order_id")
    record = ledger_row(shop, f"refund:{refund_id}", kind="refund", order_id=str(order_id), delivery=delivery)
    if record.status in (RecordStatus.POSTED, RecordStatus.VOIDED, RecordStatus.SKIPPED):
        return _already_booked(shop, record, str(order_id), conn, client, delivery)
    money = _moved_money(refund)
    not_booked = _not_to_book(shop, record, str(order_id), money)
    if not_booked is not None:
        return not_booked
    client = client or QboClient(conn)
    order_rec, body, reflected = ensure_order_posted(shop, str(order_id), settings, conn, client, for_money=money)
    if str(refund_id) in reflected:
        SyncRecord.update(status=RecordStatus.SKIPPED, reason=f"already reflected in {order_rec.document_type} "
                                                   f"{order_rec.qbo_doc_number}", order_name=order_rec.order_name,
                          updated_at=utcnow()).where(SyncRecord.id == record.id).execute()
        return Outcome(DeliveryStatus.PROCESSED, f"the order's document {order_rec.qbo_doc_number} already reflects this refund")
    body = order or body or order_body(shop, str(order_id)) or {"id": order_id, "name": order_rec.order_name}
    if takes_payments(order_rec.document_type) and _moved_money(refund) and not _invoice_paid(shop, order_rec):
        record_payment_first(shop, str(order_id), body, settings, delivery, client)

    def build() -> Document | PostResult:
        return _refund_document(shop, client, record, refund, body, settings, order_rec)

    result = post_with_current_references(shop, client, record, build, delivery)
    return _refund_outcome(shop, client, result, order_rec, delivery)


def _already_booked(shop: Shop, record: SyncRecord, order_id: str, conn: QboConnection, client: QboClient | None,
                    delivery: WebhookDelivery | None) -> Outcome:
    """A refund already in the ledger: its credit memo's application finished if it was cut short, else
    nothing to do."""
    if credit_to_apply(shop, record):
        # The credit memo is in QBO but its application did not finish (transient error, crash).
        applied = apply_credit(shop, client or QboClient(conn), record, order_record(shop, order_id), delivery)
        if applied is not None and applied.status == RecordStatus.POSTED:
            return Outcome(DeliveryStatus.POSTED, None, {"qbo_id": record.qbo_id, "doc_number": record.qbo_doc_number,
                                            "document_type": record.document_type, "applied": _applied(applied)})
    return Outcome(DeliveryStatus.SKIPPED_DUPLICATE, record.reason or f"already posted as {record.document_type} "
                                                         f"{record.qbo_doc_number}")


def _not_to_book(shop: Shop, record: SyncRecord, order_id: str, money: bool) -> Outcome | None:
    """Why a refund of a cancelled order is not booked (money back after its sale was voided: flagged for
    the bookkeeper; an edit of an order cancelled before it was posted: skipped), else None."""
    existing = order_record(shop, order_id)
    cancelled = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"cancel:{order_id}"))
    if money and existing is not None and existing.status == RecordStatus.VOIDED:
        reason = (f"money went back for an order whose {existing.document_type} {existing.qbo_doc_number} was "
                  "voided when it was cancelled: left for the bookkeeper")
        flag(record, reason)
        return Outcome(DeliveryStatus.FLAGGED, reason)
    if cancelled is not None and not money and (existing is None or existing.status != RecordStatus.POSTED):
        # Money that went back is always booked (with its sale, posted as sold first, cancelled or not);
        # an edit of an order cancelled before it was posted is not.
        SyncRecord.update(status=RecordStatus.SKIPPED, reason="order cancelled before it was posted: nothing to refund in "
                          "QuickBooks", updated_at=utcnow()).where(SyncRecord.id == record.id).execute()
        return Outcome(DeliveryStatus.PROCESSED, "order cancelled before it was posted: nothing to refund in QuickBooks")
    return None


def _refund_document(shop: Shop, client: QboClient, record: SyncRecord, refund: dict, body: dict,
                     settings: SyncSettings, order_rec: SyncRecord) -> Document | PostResult:
    """The refund's QBO document (RefundReceipt or CreditMemo) against the order's customer and items;
    flagged when it does not balance, skipped when it moved neither money nor lines."""
    try:
        plan = plan_refund(refund, body, settings, shop_facts(shop), order_rec.qbo_doc_number,
                           order_rec.document_type, invoice_paid=_invoice_paid(shop, order_rec))
    except TranslationError as exc:
        reason = f"refund cannot be translated: {exc}"
        flag(record, reason)
        raise FatalError(reason, {"field": exc.field}) from None
    if not plan.balance.ok:
        return flag(record, f"not posted: {plan.balance.reason}", shopify_total=plan.balance.expected,
                    qbo_total=plan.balance.computed, tax_total=plan.tax_total, currency=plan.currency)
    if plan.empty:
        SyncRecord.update(status=RecordStatus.SKIPPED, reason="refund moved no money and no lines (restock only)",
                          updated_at=utcnow()).where(SyncRecord.id == record.id).execute()
        record.status = RecordStatus.SKIPPED
        return PostResult(DeliveryStatus.SKIPPED_DUPLICATE, record)
    customer_id, items = ReferenceResolver(shop, client, settings).resolve(
        plan.customer, plan.currency_ref, plan.item_requests(settings.item_type))
    if plan.customer.guest and body.get("customer") is None and order_rec.qbo_id and not body.get("line_items"):
        # No order body at hand: the refund goes to the customer of the order's document.
        customer_id = client.read(order_rec.document_type, order_rec.qbo_id)["CustomerRef"]["value"]
    account = refund_account(client, settings, refund) if kind_of(plan.doc_type).carries_deposit_account \
        else None
    try:
        payload = render_refund(plan, Refs(customer_id=customer_id, items=items), account)
    except TranslationError as exc:
        flag(record, f"refund cannot be rendered: {exc}")
        raise FatalError(str(exc), {"field": exc.field}) from None
    return Document(entity=plan.doc_type, payload=payload, doc_number=plan.doc_number, marker=plan.marker,
                    figures={"shopify_total": plan.balance.expected, "qbo_total": plan.document_total,
                             "tax_total": plan.tax_total, "shipping_total": plan.shipping_total},
                    ledger={"currency": plan.currency, "order_date": plan.txn_date,
                            "order_name": plan.order_name})


def _refund_outcome(shop: Shop, client: QboClient, result: PostResult, order_rec: SyncRecord,
                    delivery: WebhookDelivery | None) -> Outcome:
    """What posting the refund came to; a posted credit memo is first applied to the order's invoice."""
    rec = result.record
    if result.status == DeliveryStatus.FLAGGED:
        return Outcome(DeliveryStatus.FLAGGED, rec.reason, {"shopify_total": str(rec.shopify_total),
                                               "qbo_total": str(rec.qbo_total)})
    applied = apply_credit(shop, client, rec, order_rec, delivery) if rec.status == RecordStatus.POSTED else None
    if result.status == DeliveryStatus.SKIPPED_DUPLICATE:
        return Outcome(DeliveryStatus.SKIPPED_DUPLICATE if rec.status != RecordStatus.SKIPPED else DeliveryStatus.PROCESSED,
                       rec.reason,
                       {"applied": _applied(applied)} if applied else None)
    return Outcome(DeliveryStatus.POSTED, None, {"qbo_id": rec.qbo_id, "doc_number": rec.qbo_doc_number,
                                    "document_type": rec.document_type, "linked_to": order_rec.qbo_doc_number,
                                    "applied": _applied(applied)})
