"""Reconciliation: Shopify orders (GraphQL) vs the ledger vs the QBO documents over a date range.

Differences: missing_in_qbo (an order that should be posted has no document and no posted ledger
row), missing_refund (a Shopify refund of a posted order with no refund document), deleted_in_qbo (the ledger says posted, QBO has no document with our marker), duplicated_in_qbo
(two or more documents carry one order's marker), mismatch (document total / tax / shipping /
discount differ from what the order implies). The report is stored on models.ReconciliationRun;
heal=True posts what is missing through the same exactly-once path (deleted documents are only
reported: a bookkeeper may have removed them on purpose).

On request (fix_difference, the page's Fix button), a difference gets the action that fixes it, each
exactly once through the ledger: a missing order or refund is posted; a document the bookkeeper
deleted is posted again (a new requestid generation, only while QBO still lacks it); a total that
differs gets an adjustment document for the difference (translate.adjustment), which later runs
count in, so the order then balances.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from ..models import QboConnection, ReconciliationRun, Shop, SyncRecord, utcnow
from ..statuses import ConnectionStatus, DeliveryStatus, RecordStatus, RunStatus
from ..quickbooks.client import QboClient, connection_for
from ..translate.document_kinds import SALE, entities, kind_or_none, read_totals
from ..translate.money import ZERO, format_money, quantize, sum_money
from ..translate.order import SHIPPING_ITEM_ID, TranslationError, plan_order
from ..translate.plan import SHIPPING
from ..translate.query import quote
from .backfill import eligible
from .orders import post_order
from .shop_settings import shop_facts, shop_settings
from ..work_results import FatalError, RetryLater, WaitingForReconnect
from .posting import Document, PostResult, _update, flag, ledger_lock, ledger_row, post_document, translate_error
from .refunds import _moved_money, mark_reflected, post_refund, reflected_ids, refund_ids_in
from .payout_reconcile import reconcile_payouts  # Shopify Payments payouts vs QBO Deposits
from .references import ReferenceResolver
from .. import runtime
from ..db import database
from ..work_queue import BULK_QUEUE, enqueue
from ..quickbooks.errors import QboError
from ..shopify.graphql import fetch_order, fetch_orders
from ..translate.adjustment import plan_adjustment, render_adjustment
from ..translate.reading import identity_for

log = logging.getLogger(__name__)

MARKER = re.compile(r"ecomflux:order:([0-9A-Za-z_-]+)")
DOCUMENT_ENTITIES = entities(SALE)  # an order's own document, whichever kind the settings chose
CSV_FIELDS = ("kind", "order_id", "order_name", "doc_number", "document_type", "field", "shopify", "qbo", "refund_id",
              "detail")


def _dec(value: Any) -> Decimal:
    return quantize(Decimal(str(value if value not in (None, "") else 0)))


def document_facts(doc: dict, shipping_item_id: str | None = None) -> dict:
    """What a QBO document adds up to: total, tax, shipping lines, discount lines."""
    totals = read_totals(doc, {SHIPPING_ITEM_ID} | ({shipping_item_id} if shipping_item_id else set()))
    return {"total": totals.total if totals.total is not None else ZERO, "tax": totals.tax,
            "shipping": quantize(totals.shipping), "discount": quantize(totals.discounts)}


def compare(expected: list[dict], ledger: dict[str, dict], documents: dict[str, list[dict]]) -> list[dict]:
    """The differences (pure): expected = per order {order_id, order_name, doc_number, total, tax, shipping,
    discount, compare_lines}; ledger = order_id -> {status, doc_number, document_type}; documents =
    order_id -> [{id, doc_number, document_type, total, tax, shipping, discount}]."""
    out: list[dict] = []
    for order in expected:
        oid = order["order_id"]
        docs = documents.get(oid, [])
        row = ledger.get(oid) or {}
        base = {"order_id": oid, "order_name": order.get("order_name"), "doc_number": order.get("doc_number"),
                "document_type": row.get("document_type")}
        if row.get("status") in (RecordStatus.VOIDED, RecordStatus.SKIPPED):
            continue
        if not docs:
            if row.get("status") == RecordStatus.POSTED:
                out.append(dict(base, kind="deleted_in_qbo", doc_number=row.get("doc_number") or base["doc_number"],
                                detail="the ledger says posted but QuickBooks has no document for this order"))
            else:
                out.append(dict(base, kind="missing_in_qbo",
                                detail=f"not in QuickBooks (ledger: {row.get('status') or 'no record'})"))
            continue
        for refund_id in order.get("missing_refunds") or ():
            out.append(dict(base, kind="missing_refund", refund_id=refund_id, document_type=None,
                            detail=f"refund {refund_id} is in Shopify but not in QuickBooks"))
        if len(docs) > 1:
            out.append(dict(base, kind="duplicated_in_qbo", doc_number=", ".join(d["doc_number"] or "" for d in docs),
                            document_type=docs[0]["document_type"],
                            detail=f"{len(docs)} documents carry this order's marker (ids "
                                   f"{', '.join(str(d['id']) for d in docs)})"))
        if order.get("total") is None or order.get("missing_refunds"):
            continue  # totals are compared once the missing refunds are posted
        fields = ("total", "tax") + (("shipping", "discount") if order.get("compare_lines") else ())
        for doc in docs:
            for field in fields:
                if doc[field] != order[field]:
                    out.append(dict(base, kind="mismatch", field=field, doc_number=doc["doc_number"],
                                    qbo_id=doc.get("id"), document_type=doc["document_type"],
                                    shopify=format_money(order[field]),
                                    qbo=format_money(doc[field]),
                                    detail=f"{field}: Shopify implies {format_money(order[field])}, QuickBooks "
                                           f"document {doc['doc_number']} has {format_money(doc[field])}"))
    return out


def _shopify_orders(shop: Shop, start: date, end: date) -> list[dict]:
    orders, cursor = [], None
    while True:
        page, cursor = fetch_orders(shop, start, end, cursor=cursor, page_size=100)
        orders.extend(page)
        if not cursor:
            return orders


def _qbo_documents(client: QboClient, start: date, end: date) -> dict[str, list[dict]]:
    """order id -> our documents (by marker) dated in [start - 1, end + 1] (timezone slack)."""
    out: dict[str, list[dict]] = {}
    lo, hi = (start - timedelta(days=1)).isoformat(), (end + timedelta(days=1)).isoformat()
    for entity in DOCUMENT_ENTITIES:
        for doc in client.query(f"SELECT * FROM {entity} WHERE TxnDate >= {quote(lo)} AND TxnDate <= {quote(hi)}"):
            match = MARKER.search(doc.get("PrivateNote") or "")
            if match:
                out.setdefault(match.group(1), []).append(dict(doc, _entity=entity))
    return out


def _refund_totals(shop: Shop, edits: dict[str, set[str]]) -> dict[str, dict]:
    """Documents posted separately for edits Shopify's current figures are net of (refunds that moved no
    money, keyed order id -> refund ids): the order's own document keeps those amounts. Refunds that
    moved money need nothing here: Shopify's order is planned as sold, like its document."""
    out: dict[str, dict] = {}
    keys = [f"refund:{rid}" for ids in edits.values() for rid in ids]
    if not keys:
        return out
    for row in SyncRecord.select().where((SyncRecord.shop == shop.id) & (SyncRecord.kind == "refund")
                                         & (SyncRecord.status == RecordStatus.POSTED) & SyncRecord.source_key.in_(keys)):
        bucket = out.setdefault(row.order_id, {"total": ZERO, "tax": ZERO})
        bucket["total"] += row.qbo_total or ZERO
        bucket["tax"] += row.tax_total or ZERO
    return out


def _legacy_netted(order: dict, order_row: SyncRecord | None) -> dict:
    """Money refunds a document posted before the ledger kept reflected_refunds nets out (it was
    posted from a body already net of them, and the refunds were never posted): its total is compared
    net of them, as it was posted, instead of offering a fix that would count them twice."""
    out = {"total": ZERO, "tax": ZERO}
    if order_row is None or order_row.status != RecordStatus.POSTED or order_row.reflected_refunds is not None:
        return out
    netted = reflected_ids(order_row)
    for refund in order.get("refunds") or []:
        if not isinstance(refund, dict) or str(refund.get("id")) not in netted or not _moved_money(refund):
            continue
        out["total"] += sum((_dec(t.get("amount")) for t in refund.get("transactions") or []
                             if t.get("kind") == "refund" and t.get("status") in ("success", None)), ZERO)
        out["tax"] += sum((_dec(r.get("total_tax")) for r in refund.get("refund_line_items") or []), ZERO)
        out["tax"] += sum((-_dec(a.get("tax_amount")) for a in refund.get("order_adjustments") or []), ZERO)
    return out


def _adjustment_totals(shop: Shop, order_ids: Iterable[str]) -> dict[str, Decimal]:
    """Posted reconciliation adjustments per order, signed: + a sales document, - a credit memo."""
    out: dict[str, Decimal] = {}
    ids = list(order_ids)
    if not ids:
        return out
    for row in SyncRecord.select().where((SyncRecord.shop == shop.id) & (SyncRecord.kind == "adjust")
                                         & (SyncRecord.status == RecordStatus.POSTED) & SyncRecord.order_id.in_(ids)):
        adjusted_as = kind_or_none(row.document_type)
        sign = adjusted_as.sign if adjusted_as else 1
        out[row.order_id] = out.get(row.order_id, ZERO) + sign * (row.qbo_total or ZERO)
    return out


def _missing_refunds(shop: Shop, order: dict, order_row: SyncRecord | None) -> list[str]:
    """Refunds Shopify lists for a posted order that the ledger neither posted nor knows as reflected
    in the order's own document (as its ledger row recorded when it was written)."""
    ids = {str(r.get("id")) for r in order.get("refunds") or [] if isinstance(r, dict) and r.get("id")}
    if not ids or order_row is None or order_row.status != RecordStatus.POSTED:
        return []
    reflected = reflected_ids(order_row)
    done = {r.source_key.split(":", 1)[1] for r in SyncRecord.select(SyncRecord.source_key).where(
        (SyncRecord.shop == shop.id) & SyncRecord.source_key.in_([f"refund:{i}" for i in ids])
        & SyncRecord.status.in_((RecordStatus.POSTED, RecordStatus.SKIPPED, RecordStatus.VOIDED)))}
    return sorted(ids - reflected - done)


def reconcile_range(shop: Shop, start: date, end: date, heal: bool = False, trigger: str = "manual",
                    client: QboClient | None = None, run: ReconciliationRun | None = None) -> ReconciliationRun:
    """Compare and store the report (and post what is missing when heal); run: a queued row to fill."""
    if run is None:
        run = ReconciliationRun.create(shop=shop, start_date=start, end_date=end, trigger=trigger, status=RunStatus.RUNNING)
    else:
        ReconciliationRun.update(status=RunStatus.RUNNING).where(ReconciliationRun.id == run.id).execute()
    try:
        conn = connection_for(shop)
        client = client or QboClient(conn)
        settings = shop_settings(shop, conn)
        orders = _shopify_orders(shop, start, end)
        documents = _qbo_documents(client, start, end)
        ledger_rows = {r.order_id: r for r in SyncRecord.select().where(
            (SyncRecord.shop == shop.id) & (SyncRecord.kind == "order")
            & SyncRecord.order_id.in_([str(o.get("id")) for o in orders] or ["-"]))}
        refunds = _refund_totals(shop, {str(o.get("id")): refund_ids_in(o) for o in orders})
        adjusted = _adjustment_totals(shop, ledger_rows)
        expected, by_id, skipped = [], {}, 0
        for order in orders:
            oid = str(order.get("id"))
            ok, _why = eligible(order, settings)
            row = ledger_rows.get(oid)
            if not ok and not (row and row.status == RecordStatus.POSTED) and oid not in documents:
                skipped += 1
                continue
            by_id[oid] = order
            entry: dict[str, Any] = {"order_id": oid, "order_name": order.get("name"), "total": None}
            try:
                plan = plan_order(order, settings, shop_facts(shop))
            except TranslationError as exc:
                entry["detail"] = str(exc)
                expected.append(entry)
                continue
            entry["missing_refunds"] = _missing_refunds(shop, order, ledger_rows.get(oid))
            extra = dict(refunds.get(oid, {"total": ZERO, "tax": ZERO}))
            netted = _legacy_netted(order, ledger_rows.get(oid))
            if netted["total"]:  # posted net of a money refund before sales were posted as sold
                extra = {"total": extra["total"] - netted["total"], "tax": extra["tax"] - netted["tax"]}
                refunds.setdefault(oid, extra)
            # Adjustments already posted close part of the difference: the document keeps the rest.
            entry.update(doc_number=plan.doc_number, total=plan.document_total + extra["total"] - adjusted.get(oid, ZERO),
                         tax=plan.tax_total + extra["tax"],
                         shipping=sum_money(l.amount for l in plan.lines if l.kind == SHIPPING),
                         discount=plan.discount_line_amount, compare_lines=oid not in refunds and oid not in adjusted)
            expected.append(entry)
        facts = {oid: [dict(document_facts(d, settings.shipping_item_id), id=d.get("Id"), doc_number=d.get("DocNumber"),
                            document_type=d["_entity"]) for d in docs] for oid, docs in documents.items()}
        ledger = {oid: {"status": r.status, "doc_number": r.qbo_doc_number, "document_type": r.document_type}
                  for oid, r in ledger_rows.items()}
        differences = [dict(d, fixable=fixable(d)) for d in compare(expected, ledger, facts)]
        payouts = reconcile_payouts(shop, client, settings, start, end)
        differences += payouts["differences"]
        healed = heal_missing(shop, [d for d in differences if d["kind"] in ("missing_in_qbo", "missing_refund")],
                              by_id, settings, conn, client) if heal else []
        report = {
            "start": start.isoformat(), "end": end.isoformat(), "shopify_orders": len(orders),
            "compared": len(expected), "not_due": skipped,
            "qbo_documents": sum(len(v) for v in documents.values()),
            "counts": {k: sum(1 for d in differences if d["kind"] == k)
                       for k in ("missing_in_qbo", "deleted_in_qbo", "duplicated_in_qbo", "mismatch",
                                 "missing_refund")},
            "differences": differences, "healed": healed,
        }
        report["counts"].update(payouts["counts"])
        report["payouts"] = {k: v for k, v in payouts.items() if k != "differences"}
        ReconciliationRun.update(status=RunStatus.DONE, report=report,
                                 healed=len([h for h in healed if h["status"] == DeliveryStatus.POSTED]),
                                 finished_at=utcnow()).where(ReconciliationRun.id == run.id).execute()
    except (RetryLater, WaitingForReconnect, FatalError) as exc:
        ReconciliationRun.update(status=RunStatus.FAILED, report={"error": getattr(exc, "reason", str(exc))},
                                 finished_at=utcnow()).where(ReconciliationRun.id == run.id).execute()
    return ReconciliationRun.get_by_id(run.id)


def heal_missing(shop: Shop, missing: list[dict], orders: dict[str, dict], settings, conn: QboConnection,
                 client: QboClient) -> list[dict]:
    """Post each missing order through the exactly-once path; returns what happened to each."""
    out = []
    for diff in missing:
        order = orders.get(diff["order_id"])
        if order is None:
            order = fetch_order(shop, diff["order_id"])
        if order is None:
            out.append({"order_id": diff["order_id"], "status": DeliveryStatus.FAILED, "detail": "order not found in Shopify"})
            continue
        try:
            if diff["kind"] == "missing_refund":
                refund = next(r for r in order.get("refunds") or [] if str(r.get("id")) == diff["refund_id"])
                outcome = post_refund(shop, dict(refund, order_id=refund.get("order_id") or order.get("id")),
                                      settings, conn, client=client, order=order)
            else:
                outcome = post_order(shop, order, settings, conn, client=client)
        except (RetryLater, FatalError) as exc:
            out.append({"order_id": diff["order_id"], "order_name": order.get("name"), "status": DeliveryStatus.FAILED,
                        "detail": exc.reason})
            continue
        if outcome.status == DeliveryStatus.POSTED and diff["kind"] == "missing_in_qbo":
            mark_reflected(shop, order)
        out.append({"order_id": diff["order_id"], "order_name": order.get("name"), "kind": diff["kind"],
                    "refund_id": diff.get("refund_id"), "status": outcome.status,
                    "detail": outcome.error or (outcome.detail or {}).get("doc_number")})
    return out


FIXABLE = ("missing_in_qbo", "missing_refund", "deleted_in_qbo")


def fixable(diff: dict) -> bool:
    """Whether EcomFlux has an action that fixes this difference (a duplicate is the bookkeeper's call)."""
    return diff.get("kind") in FIXABLE or (diff.get("kind") == "mismatch" and diff.get("field") == "total")


def fix_difference(shop: Shop, diff: dict, settings, conn: QboConnection, client: QboClient) -> dict:
    """The action that fixes one reported difference, exactly once; returns what happened."""
    base = {"order_id": diff.get("order_id"), "order_name": diff.get("order_name"), "kind": diff.get("kind"),
            "refund_id": diff.get("refund_id"), "field": diff.get("field")}
    try:
        if diff.get("kind") in ("missing_in_qbo", "missing_refund"):
            return dict(base, **heal_missing(shop, [diff], {}, settings, conn, client)[0])
        if diff.get("kind") == "deleted_in_qbo":
            return dict(base, **repost_deleted(shop, str(diff["order_id"]), settings, conn, client))
        if diff.get("kind") == "mismatch" and diff.get("field") == "total":
            return dict(base, **post_adjustment(shop, diff, settings, client))
    except (RetryLater, FatalError) as exc:
        return dict(base, status=DeliveryStatus.FAILED, detail=exc.reason)
    return dict(base, status=DeliveryStatus.FAILED, detail="no action of EcomFlux fixes this difference")


def _in_qbo(client: QboClient, entity: str, qbo_id: str) -> bool:
    """Whether QBO still holds the document (a deleted one reads as not found)."""
    try:
        found = client.read(entity, qbo_id)
    except QboError as exc:
        if exc.status == 404 or exc.code in ("610", "2500"):  # Object Not Found / deleted reference
            return False
        raise translate_error(exc, SyncRecord()) from None
    return bool(found) and found.get("status") != "Deleted"


def repost_deleted(shop: Shop, order_id: str, settings, conn: QboConnection, client: QboClient) -> dict:
    """Post again the order document the bookkeeper deleted: only while QBO lacks it (checked under the
    ledger lock), with the next requestid generation (a replay of the first create would answer with
    the deleted document), so any number of requests make one new document."""
    row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order_id}"))
    if row is None:
        return {"status": DeliveryStatus.FAILED, "detail": "EcomFlux never posted this order"}
    order = fetch_order(shop, order_id)
    if order is None:
        return {"status": DeliveryStatus.FAILED, "detail": "order not found in Shopify"}
    with ledger_lock(shop, row):
        row = SyncRecord.get_by_id(row.id)
        if row.status == RecordStatus.POSTED:
            if _in_qbo(client, row.document_type, row.qbo_id):
                return {"status": DeliveryStatus.SKIPPED_DUPLICATE,
                        "detail": f"{row.document_type} {row.qbo_doc_number} is in QuickBooks"}
            _update(row, status=RecordStatus.PENDING, request_generation=row.request_generation + 1,
                    reason=f"re-posting: {row.document_type} {row.qbo_doc_number} (id {row.qbo_id}) was deleted "
                           "in QuickBooks")
    outcome = post_order(shop, order, settings, conn, client=client)
    row = SyncRecord.get_by_id(row.id)
    return {"status": outcome.status if outcome.status != DeliveryStatus.SKIPPED_DUPLICATE else DeliveryStatus.POSTED,
            "detail": outcome.error or f"{row.document_type} {row.qbo_doc_number}"}


def post_adjustment(shop: Shop, diff: dict, settings, client: QboClient) -> dict:
    """Close a total difference with an adjustment document (translate.adjustment), exactly once."""
    order_id, qbo_id = str(diff["order_id"]), str(diff.get("qbo_id") or "")
    order_row = SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == f"order:{order_id}"))
    if not qbo_id or order_row is None or order_row.status != RecordStatus.POSTED:
        return {"status": DeliveryStatus.FAILED, "detail": "the order's document is not known to EcomFlux: check again first"}
    entity = diff.get("document_type") or order_row.document_type
    shopify_total, qbo_total = _dec(diff["shopify"]), _dec(diff["qbo"])
    current = client.read(entity, qbo_id)
    try:
        plan = plan_adjustment(order_id, diff.get("order_name") or order_row.order_name or f"#{order_id}", entity,
                               qbo_id, current.get("DocNumber") or diff.get("doc_number") or order_id,
                               date.fromisoformat(str(current["TxnDate"])), qbo_total, shopify_total,
                               us_company=settings.company.is_us, exempt_tax_code_id=settings.exempt_tax_code_id,
                               currency_ref=(current.get("CurrencyRef") or {}).get("value")
                               if settings.company.multicurrency else None)
    except TranslationError as exc:
        return {"status": DeliveryStatus.FAILED, "detail": str(exc)}
    record = ledger_row(shop, plan.source_key, kind="adjust", order_id=order_id, order_name=order_row.order_name)

    def build() -> Document | PostResult:
        now = document_facts(current)["total"]
        if now != qbo_total:
            return flag(record, f"{entity} {current.get('DocNumber')} changed since the check "
                                f"({format_money(now)}): check again")
        order = fetch_order(shop, order_id) or {"id": order_id}
        _customer, items = ReferenceResolver(shop, client, settings).resolve(
            identity_for(order), plan.currency_ref, plan.item_requests())
        payload = render_adjustment(plan, current["CustomerRef"]["value"], items[plan.lines[0].item_key],
                                    settings.deposit_account_id)
        return Document(entity=plan.entity, payload=payload, doc_number=plan.doc_number, marker=plan.marker,
                        figures={"shopify_total": plan.amount, "qbo_total": plan.amount},
                        ledger={"order_date": plan.txn_date})

    result = post_document(shop, client, record, build)
    rec = result.record
    if rec.status != RecordStatus.POSTED:
        return {"status": rec.status, "detail": rec.reason}
    return {"status": DeliveryStatus.POSTED if result.status == DeliveryStatus.POSTED else DeliveryStatus.SKIPPED_DUPLICATE,
            "detail": f"{rec.document_type} {rec.qbo_doc_number} for {format_money(plan.amount)}",
            "document_type": rec.document_type, "qbo_id": rec.qbo_id}


def fix(run_id: int, index: int) -> ReconciliationRun:
    """The page's Fix on one difference of a stored report; its outcome is kept on that difference."""
    run = ReconciliationRun.get_by_id(run_id)
    report = dict(run.report or {})
    differences = list(report.get("differences") or [])
    diff = dict(differences[index])
    conn = connection_for(run.shop)
    client = QboClient(conn)
    outcome = fix_difference(run.shop, diff, shop_settings(run.shop, conn), conn, client)
    diff["fix"] = outcome
    differences[index] = diff
    report["differences"] = differences
    report["healed"] = list(report.get("healed") or []) + [outcome]
    ReconciliationRun.update(report=report, healed=run.healed + (1 if outcome.get("status") == DeliveryStatus.POSTED else 0)) \
        .where(ReconciliationRun.id == run.id).execute()
    return ReconciliationRun.get_by_id(run.id)


def post_missing(run_id: int) -> ReconciliationRun:
    """The page's "post what is missing": heal a stored report's missing orders (fetched again from Shopify)."""
    run = ReconciliationRun.get_by_id(run_id)
    report = dict(run.report or {})
    missing = [d for d in report.get("differences", []) if d["kind"] in ("missing_in_qbo", "missing_refund")]
    conn = connection_for(run.shop)
    client = QboClient(conn)
    healed = heal_missing(run.shop, missing, {}, shop_settings(run.shop, conn), conn, client)
    report["healed"] = list(report.get("healed") or []) + healed
    ReconciliationRun.update(report=report, healed=run.healed + sum(1 for h in healed if h["status"] == DeliveryStatus.POSTED)) \
        .where(ReconciliationRun.id == run.id).execute()
    return ReconciliationRun.get_by_id(run.id)


def report_csv(run: ReconciliationRun) -> str:
    """The differences as CSV (one row per difference)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for diff in (run.report or {}).get("differences", []):
        writer.writerow({k: diff.get(k, "") for k in CSV_FIELDS})
    return buf.getvalue()


def report_json(run: ReconciliationRun) -> dict:
    return {"id": run.id, "start": run.start_date.isoformat(), "end": run.end_date.isoformat(),
            "trigger": run.trigger, "status": run.status, "healed": run.healed,
            "created_at": run.created_at.isoformat() if run.created_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None, "report": run.report}


def shop_today(shop: Shop) -> date:
    """Today's date where the shop is: a merchant's "last week" ends at their midnight, not the server's."""
    return datetime.now(ZoneInfo(shop.timezone or "UTC")).date()


def reconcile_all_shops(days: int = 3) -> list[dict]:
    """Daily job: each connected shop's last `days` days, healing gaps (missed webhooks); what it fixed."""
    results = []
    shops = Shop.select().join(QboConnection, on=(QboConnection.shop == Shop.id)).where(
        QboConnection.status == ConnectionStatus.CONNECTED)
    for shop in shops:
        if not shop.is_active:
            continue
        today = shop_today(shop)
        try:
            run = reconcile_range(shop, today - timedelta(days=days), today, heal=True, trigger="scheduled")
        except Exception as exc:  # one shop's trouble must not stop the others
            log.exception("scheduled reconciliation failed for %s", shop.domain)
            results.append({"shop": shop.domain, "status": RunStatus.FAILED, "error": str(exc)})
            continue
        report = run.report or {}
        results.append({"shop": shop.domain, "run": run.id, "status": run.status, "healed": run.healed,
                        "fixed": [h for h in report.get("healed", []) if h.get("status") == DeliveryStatus.POSTED],
                        "counts": report.get("counts")})
    return results


def queue_reconciliation(shop: Shop, start: date, end: date) -> ReconciliationRun:
    """The page's request: a queued run, computed on the bulk queue (Shopify and QBO reads take a while)."""
    run = ReconciliationRun.create(shop=shop, start_date=start, end_date=end, trigger="manual", status=RunStatus.QUEUED)
    enqueue(runtime.redis(), BULK_QUEUE, "ecomflux_app.sync.reconcile.reconcile_job", run.id,
            job_id=f"reconcile-{run.id}")
    return run


def queue_fix(run: ReconciliationRun, index: int) -> None:
    """One difference's fix on the bulk queue (a repeated click is the same ledger work: once in QBO)."""
    enqueue(runtime.redis(), BULK_QUEUE, "ecomflux_app.sync.reconcile.fix_job", run.id, index)


def fix_job(run_id: int, index: int) -> str:
    runtime.config()
    with database.connection_context():
        run = fix(run_id, index)
        return str(((run.report or {}).get("differences") or [{}])[index].get("fix", {}).get("status"))


def queue_post_missing(run: ReconciliationRun) -> None:
    enqueue(runtime.redis(), BULK_QUEUE, "ecomflux_app.sync.reconcile.post_missing_job", run.id)


def reconcile_job(run_id: int) -> str:
    """RQ entry point for a queued run."""
    runtime.config()
    with database.connection_context():
        run = ReconciliationRun.get_by_id(run_id)
        return reconcile_range(run.shop, run.start_date, run.end_date, run=run).status


def post_missing_job(run_id: int) -> int:
    runtime.config()
    with database.connection_context():
        return post_missing(run_id).healed
