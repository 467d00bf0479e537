"""Shopify Payments payouts -> one QBO Deposit each, exactly once (ledger key payout:<id>).

A run reads the payouts issued in its window (GraphQL, within the cost limits), stores each one
(models.Payout), then posts a Deposit for every PAID payout not yet posted, oldest first, through
posting.post_document (ledger row under a Redis lock, deterministic requestid, a lookup by TxnDate +
our marker after an uncertain failure). A payout whose orders are not in QuickBooks yet waits (its
row says for which orders) and is tried again by the 15-minute retry job; after WAIT_DAYS it posts
with clearing-account lines, which move the same money. A payout that failed or was cancelled posts
nothing, and a Deposit posted before Shopify reported the failure is deleted (ledger 'voided').
Resumable: each payout's state is in the database, and the next window starts at the oldest payout
not done.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

from .. import runtime
from ..models import Payout, QboConnection, Shop, ShopSettings, SyncRecord, utcnow
from ..statuses import DeliveryStatus, RecordStatus, ShopStatus
from ..work_queue import BULK_QUEUE, enqueue, shop_queue_name
from ..quickbooks.client import QboClient, connection_for
from ..quickbooks.errors import QboError
from ..shopify.errors import ShopifyError, ShopifyThrottled, ShopifyUnavailable
from ..shopify.payouts import NoPaymentsAccount, fetch_payout_transactions, fetch_payouts
from ..translate.deposit import (RETURNED_TYPES, DepositError, LinkableDoc, PayoutAccounts, payout_date,
                                 payout_fees, plan_deposit, render_deposit)
from ..translate.document_kinds import DEPOSIT_DOC, entities, kind_of, read_totals
from ..translate.money import ZERO, money
from ..translate.query import quote
from ..translate.requestid import request_id as make_request_id
from ..translate.settings import SyncSettings
from .shop_settings import shop_settings
from ..work_results import FatalError, RetryLater, WaitingForReconnect
from .posting import Document, PostResult, _update, flag, ledger_row, post_document, record_attempt, translate_error

log = logging.getLogger(__name__)

WAIT_DAYS = 7  # a payout waits this long for its orders' documents before posting clearing lines
DEFAULT_HISTORY_DAYS = 30  # first run without a start date
OVERLAP_DAYS = 7  # re-read this far behind the newest posted payout (late status changes)
DONE = (RecordStatus.POSTED, RecordStatus.VOIDED, RecordStatus.SKIPPED)
ORDER_DONE = (RecordStatus.POSTED, RecordStatus.VOIDED, RecordStatus.SKIPPED)
ENDED = ("FAILED", "CANCELED")


def source_key(payout_id: str) -> str:
    return f"payout:{payout_id}"


def payout_record(shop: Shop, payout_id: str) -> SyncRecord | None:
    return SyncRecord.get_or_none((SyncRecord.shop == shop.id) & (SyncRecord.source_key == source_key(payout_id)))


def _issued(text) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).replace(
        tzinfo=None)


def store_payout(shop: Shop, payout: dict) -> Payout:
    """Insert or refresh the payout's row from Shopify's answer (status and net may change)."""
    try:
        day = payout_date(payout.get("issued_at"), shop.timezone or "UTC")
    except DepositError:
        day = None
    values = {"issued_at": _issued(payout.get("issued_at")), "payout_date": day,
              "status": str(payout.get("status") or "").upper(), "currency": payout.get("currency"),
              "net": money(payout.get("net") or "0"), "read_at": utcnow(), "updated_at": utcnow()}
    row = Payout.get_or_none((Payout.shop == shop.id) & (Payout.payout_id == str(payout["id"])))
    if row is None:
        Payout.insert(shop=shop, payout_id=str(payout["id"]), **values).on_conflict_ignore().execute()
        row = Payout.get((Payout.shop == shop.id) & (Payout.payout_id == str(payout["id"])))
    if row.status != values["status"] and values["status"] in ENDED:
        values["transactions"] = None  # re-read: a failed payout's contents come back in a later one
    Payout.update(**values).where(Payout.id == row.id).execute()
    return Payout.get_by_id(row.id)


def payout_transactions(shop: Shop, row: Payout) -> list[dict]:
    """The payout's balance transactions: stored once read (they do not change once paid)."""
    if row.transactions is None:
        txns = fetch_payout_transactions(shop, row.payout_id)
        fees = payout_fees(txns)
        Payout.update(transactions=txns, fees=fees, updated_at=utcnow()).where(Payout.id == row.id).execute()
        row.transactions, row.fees = txns, fees
    return row.transactions


def window_start(shop: Shop, settings: SyncSettings) -> date:
    """Where the next run reads from: the oldest payout not done, else a week behind the newest done one."""
    floor = settings.payouts_start_date
    keys = {r.source_key for r in SyncRecord.select(SyncRecord.source_key).where(
        (SyncRecord.shop == shop.id) & (SyncRecord.kind == "payout") & SyncRecord.status.in_(DONE))}
    start = None
    newest_done = None
    for row in Payout.select().where((Payout.shop == shop.id) & Payout.payout_date.is_null(False)):
        done = source_key(row.payout_id) in keys or row.status in ENDED
        if not done and row.status not in ("SCHEDULED", "IN_TRANSIT", "PAID"):
            continue
        if not done and (start is None or row.payout_date < start):
            start = row.payout_date
        if done and (newest_done is None or row.payout_date > newest_done):
            newest_done = row.payout_date
    if start is None:
        start = (newest_done - timedelta(days=OVERLAP_DAYS)) if newest_done else None
    if start is None:
        start = floor or (date.today() - timedelta(days=DEFAULT_HISTORY_DAYS))
    return max(start, floor) if floor else start


# -- QBO side --------------------------------------------------------------------------------------
def payout_accounts(client: QboClient, settings: SyncSettings) -> PayoutAccounts:
    """The accounts from settings, checked in QBO with one query (they exist, are active, have usable types)."""
    ids = {settings.payout_clearing_account_id, settings.payout_bank_account_id, settings.payout_fee_account_id,
           settings.payout_chargeback_account_id, settings.payout_adjustment_account_id} - {None}
    rows = {str(r["Id"]): r for r in client.query(
        "SELECT * FROM Account WHERE Id IN (" + ", ".join(quote(i) for i in sorted(ids)) + ")")}
    for name in ("payout_clearing_account_id", "payout_bank_account_id", "payout_fee_account_id",
                 "payout_chargeback_account_id", "payout_adjustment_account_id"):
        value = getattr(settings, name)
        if value and (value not in rows or rows[value].get("Active") is False):
            raise FatalError(f"{name.replace('_', ' ')} {value} is not an active account in QuickBooks: fix the "
                             f"payout settings", {"field": name})
    bank = rows[settings.payout_bank_account_id]
    if bank.get("AccountType") not in ("Bank", "Other Current Asset") or \
            bank.get("AccountSubType") == "UndepositedFunds":
        raise FatalError(f"payout bank account {bank.get('Name')} is a {bank.get('AccountType')} account: a "
                         f"deposit goes into a Bank account", {"field": "payout_bank_account_id"})
    clearing = rows[settings.payout_clearing_account_id]
    return PayoutAccounts(clearing_id=str(clearing["Id"]), bank_id=str(bank["Id"]),
                          fee_id=settings.payout_fee_account_id,
                          clearing_is_undeposited=clearing.get("AccountSubType") == "UndepositedFunds",
                          chargeback_id=settings.payout_chargeback_account_id,
                          adjustment_id=settings.payout_adjustment_account_id)


def _order_ids(txns: list[dict]) -> list[str]:
    out: list[str] = []
    for t in txns:
        if t.get("order_id") and t.get("type") in ("CHARGE", "REFUND") and str(t["order_id"]) not in out:
            out.append(str(t["order_id"]))
    return out


def linkable_documents(shop: Shop, client: QboClient, order_ids: list[str],
                       undeposited_id: str) -> dict[str, list[LinkableDoc]]:
    """The orders' Sales Receipts, Payments and Refund Receipts with where they sit (one query per entity in
    the payout: the ledger knows which documents exist, QBO says where each sits and whether it was deposited)."""
    if not order_ids:
        return {}
    rows = list(SyncRecord.select().where((SyncRecord.shop == shop.id) & SyncRecord.order_id.in_(order_ids)
                                          & (SyncRecord.status == RecordStatus.POSTED) & SyncRecord.qbo_id.is_null(False)
                                          & SyncRecord.document_type.in_(entities(cleared_by_deposit=True))))
    by_entity: dict[str, dict[str, SyncRecord]] = {}
    for rec in rows:
        by_entity.setdefault(rec.document_type, {})[str(rec.qbo_id)] = rec
    undeposited = {str(undeposited_id)}
    out: dict[str, list[LinkableDoc]] = {}
    for entity, recs in by_entity.items():
        ids = sorted(recs)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for doc in client.query(f"SELECT * FROM {entity} WHERE Id IN ("
                                    + ", ".join(quote(i) for i in chunk) + ")"):
                rec = recs.get(str(doc["Id"]))
                if rec is None:
                    continue
                account = (doc.get("DepositToAccountRef") or {}).get("value")
                in_uf = (str(account) in undeposited) if account else kind_of(entity).clearing_by_default
                deposited = any(link.get("TxnType") == DEPOSIT_DOC.entity for link in doc.get("LinkedTxn") or [])
                total = read_totals(doc).total or ZERO
                out.setdefault(rec.order_id, []).append(LinkableDoc(
                    entity=entity, qbo_id=str(doc["Id"]), amount=kind_of(entity).sign * total,
                    in_undeposited=in_uf and not deposited and doc.get("status") != "Deleted"))
    return out


def find_deposit(client: QboClient, txn_date: date, marker: str) -> dict | None:
    """Our Deposit, if an earlier attempt created it: QBO filters Deposits by TxnDate, the marker is matched here."""
    rows = client.query(f"SELECT * FROM Deposit WHERE TxnDate = {quote(txn_date.isoformat())}")
    return next((r for r in rows if f"[{marker}]" in (r.get("PrivateNote") or "")), None)


# -- one payout ------------------------------------------------------------------------------------
def waiting_orders(shop: Shop, order_ids: list[str]) -> list[str]:
    """Orders whose documents are not in QuickBooks yet (no posted ledger row)."""
    done = {r.order_id for r in SyncRecord.select(SyncRecord.order_id).where(
        (SyncRecord.shop == shop.id) & (SyncRecord.kind == "order") & SyncRecord.order_id.in_(order_ids)
        & SyncRecord.status.in_(ORDER_DONE))}
    return [o for o in order_ids if o not in done]


def _names(txns: list[dict], order_ids: list[str]) -> str:
    names = {str(t.get("order_id")): t.get("order_name") for t in txns if t.get("order_id")}
    shown = [names.get(o) or o for o in order_ids[:5]]
    return ", ".join(shown) + (f" and {len(order_ids) - 5} more" if len(order_ids) > 5 else "")


def returned_transactions(shop: Shop, txns: list[dict]) -> dict[str, list[dict]]:
    """For each failed/cancelled payout whose money this one returns, that payout's own transactions."""
    out: dict[str, list[dict]] = {}
    for t in txns:
        if t.get("type") in RETURNED_TYPES and t.get("source_id"):
            source = str(t["source_id"])
            row = Payout.get_or_none((Payout.shop == shop.id) & (Payout.payout_id == source))
            if row is not None and row.transactions is not None:
                out[source] = row.transactions
            else:
                out[source] = fetch_payout_transactions(shop, source)
    return out


def post_payout(shop: Shop, client: QboClient, settings: SyncSettings, accounts: PayoutAccounts, row: Payout,
                conn: QboConnection) -> PostResult:
    """One Deposit for one PAID payout, exactly once; RetryLater while its orders are not in QuickBooks."""
    record = ledger_row(shop, source_key(row.payout_id), kind="payout", order_id=row.payout_id,
                        order_name=f"Payout {row.payout_id}")
    if record.status in DONE:
        return PostResult(DeliveryStatus.SKIPPED_DUPLICATE, record)
    txns = payout_transactions(shop, row)
    returned = returned_transactions(shop, txns)
    inner = [t for group in returned.values() for t in group]
    orders = _order_ids(txns + inner)
    missing = waiting_orders(shop, orders)
    if missing:
        since = row.waiting_since or utcnow()
        if utcnow() - since < timedelta(days=WAIT_DAYS):
            reason = f"waiting for orders {_names(txns + inner, missing)} to be posted to QuickBooks"
            Payout.update(wait_reason=reason, waiting_since=since, updated_at=utcnow()).where(
                Payout.id == row.id).execute()
            if record.status != RecordStatus.POSTING:
                _update(record, status=RecordStatus.PENDING, reason=reason, shopify_total=row.net, order_date=row.payout_date,
                        currency=row.currency)
            raise RetryLater(reason, 900)
        log.warning("payout %s: orders %s still not in QuickBooks after %s days; posting clearing lines",
                    row.payout_id, missing, WAIT_DAYS)
    Payout.update(wait_reason=None, updated_at=utcnow()).where(Payout.id == row.id).execute()
    home = conn.home_currency or shop.currency or "USD"
    plans = []

    def plan():
        if not plans:
            try:
                documents = linkable_documents(shop, client, orders, accounts.clearing_id) \
                    if accounts.clearing_is_undeposited else {}
                plans.append(plan_deposit({"id": row.payout_id, "net": row.net, "currency": row.currency,
                                           "issued_at": row.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                                           if row.issued_at else None},
                                          txns, accounts, documents, shop_timezone=shop.timezone or "UTC",
                                          home_currency=home, returned=returned))
            except DepositError as exc:
                reason = f"payout cannot be translated: {exc}"
                flag(record, reason, shopify_total=row.net)
                raise FatalError(reason, {"field": exc.field}) from None
        return plans[0]

    def find() -> dict | None:
        return find_deposit(client, row.payout_date or plan().txn_date, f"ecomflux:payout:{row.payout_id}")

    def build() -> Document | PostResult:
        p = plan()
        if p.flag_reason:
            return flag(record, p.flag_reason, shopify_total=p.net, qbo_total=p.total, currency=p.currency,
                        order_date=p.txn_date)
        return Document(entity=DEPOSIT_DOC.entity, payload=render_deposit(p, shop.name or shop.domain), doc_number=None,
                        marker=p.marker, figures={"shopify_total": p.net, "qbo_total": p.total},
                        ledger={"currency": p.currency, "order_date": p.txn_date})

    return post_document(shop, client, record, build, find=find)


def reverse_payout(shop: Shop, client: QboClient, row: Payout) -> bool:
    """A payout that failed after its Deposit was posted: delete the Deposit (its sales go back to clearing)."""
    record = payout_record(shop, row.payout_id)
    if record is None or record.status not in (RecordStatus.POSTED, RecordStatus.POSTING, RecordStatus.PENDING,
                                               RecordStatus.FAILED, RecordStatus.FLAGGED):
        return False
    reason = f"payout {row.status.lower()}: Shopify did not pay it out"
    if record.status != RecordStatus.POSTED or not record.qbo_id:
        found = find_deposit(client, record.order_date, f"ecomflux:payout:{row.payout_id}") \
            if record.status == RecordStatus.POSTING and record.order_date else None
        if found is None:
            _update(record, status=RecordStatus.SKIPPED, reason=reason + " (nothing was posted)")
            return False
        record.qbo_id = str(found["Id"])
    try:
        current = client.read(DEPOSIT_DOC.entity, record.qbo_id)
        if current.get("status") != "Deleted":
            client.undo(DEPOSIT_DOC.entity, current["Id"], str(current.get("SyncToken", "0")),
                        make_request_id(shop.domain, record.source_key, "delete"))
    except QboError as exc:
        record_attempt(record, None, client, "error", exc)
        raise translate_error(exc, record) from None
    record_attempt(record, None, client, "voided")
    _update(record, status=RecordStatus.VOIDED, reason=reason + f": Deposit {record.qbo_id} deleted")
    return True


# -- runs ------------------------------------------------------------------------------------------
def sync_payouts(shop: Shop, since: date | None = None, until: date | None = None) -> dict:
    """Read the window's payouts and post the paid ones; returns counts (posted, waiting, flagged, failed...)."""
    conn = connection_for(shop)
    settings = shop_settings(shop, conn)
    if not settings.payouts_enabled:
        return {"status": "not_configured", "reason": "set the clearing, bank and fee accounts for payouts"}
    start = since or window_start(shop, settings)
    if settings.payouts_start_date and start < settings.payouts_start_date:
        start = settings.payouts_start_date
    cursor, seen = None, 0
    try:
        while True:
            page, cursor = fetch_payouts(shop, start, until, cursor)
            for payout in page:
                store_payout(shop, payout)
                seen += 1
            if not cursor:
                break
    except NoPaymentsAccount as exc:
        return {"status": "no_payments_account", "reason": str(exc)}
    except (ShopifyThrottled, ShopifyUnavailable) as exc:
        raise RetryLater(str(exc), getattr(exc, "retry_after", 30)) from None
    except ShopifyError as exc:
        if "ACCESS_DENIED" in (getattr(exc, "codes", None) or set()):
            return {"status": "no_access", "reason": "the app needs the read_shopify_payments_payouts scope: "
                                                     "open the app in Shopify to grant it"}
        raise
    client = QboClient(conn)
    counts = {"status": "done", "seen": seen, "posted": 0, "already": 0, "waiting": 0, "flagged": 0, "failed": 0,
              "reversed": 0, "since": start.isoformat()}
    rows = list(Payout.select().where((Payout.shop == shop.id) & Payout.payout_date.is_null(False)
                                      & (Payout.payout_date >= start)).order_by(Payout.issued_at, Payout.id))
    accounts = None
    for row in rows:
        if until is not None and row.payout_date > until:
            continue
        try:
            if row.status in ENDED:
                counts["reversed"] += int(reverse_payout(shop, client, row))
                continue
            if row.status != "PAID":
                continue
            record = payout_record(shop, row.payout_id)
            if record is not None and record.status in DONE:
                counts["already"] += 1
                continue
            accounts = accounts or payout_accounts(client, settings)
            result = post_payout(shop, client, settings, accounts, row, conn)
            counts["flagged" if result.status == DeliveryStatus.FLAGGED else "posted"] += 1
        except RetryLater as exc:
            counts["waiting"] += 1
            log.info("payout %s waits: %s", row.payout_id, exc.reason)
        except FatalError as exc:
            counts["failed"] += 1
            log.warning("payout %s failed: %s", row.payout_id, exc.reason)
            if exc.detail and str(exc.detail.get("field", "")).startswith("payout_"):
                counts["error"] = exc.reason
                break  # a settings problem: every payout would fail the same way
        except (ShopifyThrottled, ShopifyUnavailable) as exc:
            raise RetryLater(str(exc), getattr(exc, "retry_after", 30)) from None
    return counts


def start_payout_sync(shop: Shop, since: date | None = None, history: bool = False) -> str:
    """Queue a run for the shop (its own queue; a history import on the bulk queue)."""
    queue = BULK_QUEUE if history else shop_queue_name(shop.domain)
    job = enqueue(runtime.redis(), queue, "workers.jobs.sync_payouts", shop.id,
                  since.isoformat() if since else None, job_id=f"payouts-{shop.id}")
    return job.id if hasattr(job, "id") else str(job)


def history_after_backfill(shop: Shop, since: date) -> str | None:
    """A history import also brings in the payouts since that date, when payouts are set up."""
    row = ShopSettings.get_or_none(ShopSettings.shop == shop.id)
    if row is None or not SyncSettings.from_values(row.values or {}).payouts_enabled:
        return None
    return start_payout_sync(shop, since, history=True)


def _configured_shops() -> list[Shop]:
    out = []
    for row in ShopSettings.select(ShopSettings, Shop).join(Shop).where(Shop.status == ShopStatus.ACTIVE):
        if SyncSettings.from_values(row.values or {}).payouts_enabled:
            out.append(row.shop)
    return out


def sync_all_shops() -> dict:
    """The daily job: every shop with payouts configured and QuickBooks connected."""
    results = {}
    for shop in _configured_shops():
        try:
            results[shop.domain] = sync_payouts(shop)
        except (WaitingForReconnect, RetryLater) as exc:
            results[shop.domain] = {"status": "later", "reason": getattr(exc, "reason", str(exc))}
        except Exception as exc:  # noqa: BLE001 - one shop's trouble must not stop the others
            log.exception("payout sync failed for %s", shop.domain)
            results[shop.domain] = {"status": "error", "reason": type(exc).__name__}
    return results


def retry_waiting() -> dict:
    """Every 15 minutes: shops with payouts waiting for their orders try again (no Shopify read when none wait)."""
    shops = {row.shop_id for row in Payout.select(Payout.shop).where(Payout.wait_reason.is_null(False))}
    results = {}
    for shop in Shop.select().where(Shop.id.in_(list(shops)) & (Shop.status == ShopStatus.ACTIVE)) if shops else []:
        try:
            results[shop.domain] = sync_payouts(shop)
        except (WaitingForReconnect, RetryLater) as exc:
            results[shop.domain] = {"status": "later", "reason": getattr(exc, "reason", str(exc))}
        except Exception as exc:  # noqa: BLE001
            log.exception("payout retry failed for %s", shop.domain)
            results[shop.domain] = {"status": "error", "reason": type(exc).__name__}
    return results


def payout_view(shop: Shop, row: Payout) -> dict:
    """What the page and support show for a payout: figures, the Deposit, and whether it matches the bank."""
    record = payout_record(shop, row.payout_id)
    deposit = None
    match = None
    if record is not None and record.status == RecordStatus.POSTED:
        deposit = {"qbo_id": record.qbo_id, "total": record.qbo_total}
        difference = (record.qbo_total or ZERO) - (row.net or ZERO)
        match = {"matches": difference == 0, "difference": difference,
                 "cause": None if difference == 0 else record.reason or "the Deposit differs from the payout's net"}
    elif record is not None and record.status == RecordStatus.FLAGGED:
        difference = (record.qbo_total or ZERO) - (row.net or ZERO)
        match = {"matches": False, "difference": difference, "cause": record.reason}
    return {"payout_id": row.payout_id, "date": row.payout_date.isoformat() if row.payout_date else None,
            "status": row.status, "net": row.net, "fees": row.fees, "currency": row.currency,
            "deposit": deposit, "match": match, "ledger_status": record.status if record else None,
            "reason": row.wait_reason or (record.reason if record else None),
            "transactions": len(row.transactions) if row.transactions is not None else None}


def clearing_balance(shop: Shop, settings: SyncSettings) -> dict:
    """What should sit in clearing: Shopify Payments money in posted documents not yet in a posted Deposit."""
    paid_out = set()
    for row in Payout.select().where((Payout.shop == shop.id) & (Payout.status == "PAID")):
        rec = payout_record(shop, row.payout_id)
        if rec is not None and rec.status == RecordStatus.POSTED:
            for t in row.transactions or []:
                if t.get("order_id") and t.get("type") == "CHARGE":
                    paid_out.add(str(t["order_id"]))
    waiting = [r for r in Payout.select().where((Payout.shop == shop.id) & Payout.status.in_(
        ("SCHEDULED", "IN_TRANSIT", "PAID")))
        if (payout_record(shop, r.payout_id) is None or payout_record(shop, r.payout_id).status != RecordStatus.POSTED)]
    return {"orders_paid_out": len(paid_out),
            "payouts_not_deposited": [{"payout_id": r.payout_id, "status": r.status, "net": r.net} for r in waiting],
            "in_transit": sum((r.net or ZERO for r in waiting), ZERO)}


__all__ = ["sync_payouts", "post_payout", "reverse_payout", "sync_all_shops", "retry_waiting", "start_payout_sync",
           "payout_view", "clearing_balance"]
