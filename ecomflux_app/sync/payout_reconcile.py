"""Reconciliation of payouts: every paid payout in a range has one Deposit equal to its net; clearing explained."""

from __future__ import annotations

import logging
import re
from datetime import date

from ..models import Payout, Shop, SyncRecord
from ..statuses import RecordStatus
from ..quickbooks.client import QboClient
from ..shopify.errors import ShopifyError
from ..shopify.payouts import fetch_payouts
from ..translate.document_kinds import DEPOSIT_DOC, read_totals
from ..translate.money import ZERO, money
from ..translate.query import quote
from ..translate.settings import SyncSettings
from .payouts import ENDED, store_payout

log = logging.getLogger(__name__)
KINDS = ("payout_missing", "payout_duplicated", "payout_mismatch", "payout_not_paid_out")
_MARKER = re.compile(r"\[ecomflux:payout:([^\]]+)\]")


def _deposits(client: QboClient, start: date, end: date) -> dict[str, list[dict]]:
    rows = client.query(f"SELECT * FROM Deposit WHERE TxnDate >= {quote(start.isoformat())} "
                        f"AND TxnDate <= {quote(end.isoformat())}")
    out: dict[str, list[dict]] = {}
    for row in rows:
        found = _MARKER.search(row.get("PrivateNote") or "")
        if found:
            out.setdefault(found.group(1), []).append(row)
    return out


def reconcile_payouts(shop: Shop, client: QboClient, settings: SyncSettings, start: date, end: date) -> dict:
    """Differences (payout_missing / _duplicated / _mismatch / _not_paid_out) and the clearing explanation."""
    if not settings.payouts_enabled:
        return {"checked": False, "differences": [], "counts": {}}
    cursor = None
    try:  # the payouts as Shopify has them now (a late failure shows up here)
        while True:
            page, cursor = fetch_payouts(shop, start, end, cursor)
            for payout in page:
                store_payout(shop, payout)
            if not cursor:
                break
    except ShopifyError as exc:
        log.info("payouts for %s not refreshed before reconciling: %s", shop.domain, exc)
    deposits = _deposits(client, start, end)
    rows = list(Payout.select().where((Payout.shop == shop.id) & (Payout.payout_date >= start)
                                      & (Payout.payout_date <= end)).order_by(Payout.payout_date))
    differences = []
    for row in rows:
        found = deposits.get(row.payout_id, [])
        base = {"order_id": row.payout_id, "order_name": f"Payout {row.payout_id}", "document_type": DEPOSIT_DOC.entity,
                "doc_number": None, "shopify": str(row.net)}
        record = SyncRecord.get_or_none((SyncRecord.shop == shop.id)
                                        & (SyncRecord.source_key == f"payout:{row.payout_id}"))
        if row.status in ENDED:
            if found:
                differences.append(dict(base, kind="payout_not_paid_out", field="status",
                                        qbo=", ".join(str(d["TotalAmt"]) for d in found),
                                        detail=f"payout {row.status.lower()}, but a Deposit is in QuickBooks"))
            continue
        if row.status != "PAID":
            continue
        if not found:
            why = (record.reason if record is not None and record.reason else None) or row.wait_reason
            differences.append(dict(base, kind="payout_missing", field="total", qbo=None,
                                    detail=why or "no Deposit in QuickBooks"))
        elif len(found) > 1:
            differences.append(dict(base, kind="payout_duplicated", field="total",
                                    qbo=", ".join(str(d["TotalAmt"]) for d in found),
                                    doc_number=", ".join(str(d["Id"]) for d in found)))
        elif (read_totals(found[0]).total or ZERO) != row.net:
            differences.append(dict(base, kind="payout_mismatch", field="total", qbo=str(found[0]["TotalAmt"]),
                                    doc_number=str(found[0]["Id"]),
                                    detail="the Deposit was edited in QuickBooks or differs from the bank"))
    counts = {k: sum(1 for d in differences if d["kind"] == k) for k in KINDS}
    return {"checked": True, "differences": differences, "counts": counts,
            "paid": sum(1 for r in rows if r.status == "PAID"), "clearing": clearing_explained(shop)}


def clearing_explained(shop: Shop) -> dict:
    """What the clearing account should hold: paid but not yet paid out (payouts not deposited) and reserves held."""
    pending = [r for r in Payout.select().where((Payout.shop == shop.id) & Payout.status.in_(
        ("SCHEDULED", "IN_TRANSIT", "PAID")))]
    keys = {r.source_key: r.status for r in SyncRecord.select(SyncRecord.source_key, SyncRecord.status).where(
        (SyncRecord.shop == shop.id) & (SyncRecord.kind == "payout"))}
    not_deposited = [r for r in pending if keys.get(f"payout:{r.payout_id}") != RecordStatus.POSTED]
    reserve = ZERO
    for row in pending:
        if keys.get(f"payout:{row.payout_id}") == RecordStatus.POSTED:
            for t in row.transactions or []:
                if str(t.get("type", "")).startswith("RESERVED_FUNDS"):
                    reserve -= money(t.get("amount") or "0")
    return {"payouts_not_deposited": len(not_deposited),
            "not_yet_deposited": str(sum((r.net or ZERO for r in not_deposited), ZERO)),
            "reserve_held": str(reserve)}
