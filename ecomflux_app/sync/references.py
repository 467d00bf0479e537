"""Resolve the QBO customer and items an order plan needs, costing as few QBO calls as possible.

Cached mappings (CustomerMap, ItemMap) answer repeat buyers and known SKUs with no call at all.
A new buyer is looked for in the company's customer directory (read once, kept current with a
change query at most once a minute), so a buyer QBO does not know costs only the create. What the
directory cannot settle (an inactive match, a foreign currency) and unknown items are looked up in
ONE batch request (customer by email, then name; items by Sku, then Name), and whatever is still
missing is created in ONE more batch. Query batches use a
fresh requestid (a replayed answer to a read would be stale); create batches use one derived
from their content, so a retry of the same creates is replayed, not duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import redis
from peewee import IntegrityError

from ..models import CustomerMap, ItemMap, Shop, WebhookDelivery
from ..statuses import DeliveryStatus
from ..quickbooks.client import PAGE, QboClient
from ..quickbooks import notifications
from ..quickbooks.limiter import BATCHES_PER_MINUTE, PER_MINUTE
from ..quickbooks.errors import QboDuplicateName, QboValidationError, RealmBusy, parse_fault
from ..translate.customer import (
    DISPLAY_NAME_MAX,
    GUEST_DISPLAY_NAME,
    CustomerIdentity,
    base_display_name,
    email_key,
    name_postal_key,
    customer_payload,
    display_name_candidates,
    guest_customer_payload,
    match_keys,
)
from ..translate.item import ItemRequest, item_payload, name_candidates
from ..translate.settings import SyncSettings
from ..translate.jsonout import dumps
from ..translate.query import quote
from ..translate.requestid import request_id as make_request_id
from ..work_results import FatalError, RetryLater
from .posting import Document, PostResult, post_document
from .. import runtime

log = logging.getLogger(__name__)

BATCH_MAX = 30
# Fewer creates than this go one request each: a batch spends one of the realm's batch requests a
# minute (38 of Intuit's 40), singles spend that many of its requests (480 of 500), so below 480/38
# the batch is the dearer.
# A backlog's drain is bound by the batch budget: its rounds' few new buyers sent as small batches
# took 38 of the 137 batch requests of a 3,000-order drain (make bench BENCH=batch_drain).
MIN_BATCH_CREATES = -(-PER_MINUTE // BATCHES_PER_MINUTE)
# The customer and item directories: every customer (item) of the company read once (one call per
# 1,000), then kept current with one change query (MetaData.LastUpdatedTime) whenever it is older
# than DIRECTORY_FRESH_SECONDS, instead of one lookup per new buyer or SKU. A record typed into QBO
# is thus seen within a minute; each change query reaches DIRECTORY_OVERLAP_SECONDS further back than the
# last one began, so clock skew between us and Intuit cannot hide an update. Unused, it is dropped
# after an hour per 1,000 records its full read cost (at most a week): a large company's read is
# repaid by as long a life, so it costs no more than one call an hour, like a small one's.
DIRECTORY_TTL = 3600
DIRECTORY_MAX_TTL = 7 * 24 * 3600
DIRECTORY_LIFE = "~ttl"  # the hash field holding the directory's own TTL (seconds)
DIRECTORY_FRESH_SECONDS = 60
DIRECTORY_OVERLAP_SECONDS = 300
DIRECTORY_AS_OF = "~as_of"  # the hash field holding when the last read began (epoch seconds)
# With QuickBooks change notifications on (INTUIT_WEBHOOK_VERIFIER_TOKEN), a directory is not polled:
# it is brought up to date by ONE change-data-capture call (customers and items together) only when a
# notification said something changed since its last read, or, as a catch-up for notifications that
# never arrived (our endpoint down longer than Intuit retries), when its last read is older than
# DIRECTORY_CATCHUP_SECONDS. Kept current at no read cost, it is kept at least a day.
DIRECTORY_SEEN = "~seen"  # the hash field holding the change generation the last read covered
DIRECTORY_CATCHUP_SECONDS = 6 * 3600
DIRECTORY_NOTIFIED_TTL = 24 * 3600
CDC_LOOKBACK_SECONDS = 29 * 24 * 3600  # QBO's change data capture reaches back 30 days
CDC_MAX_OBJECTS = 1000  # a CDC answer this large may be cut short: read the directory afresh instead
BACKLOG_DELIVERIES = 5  # this many waiting deliveries make a backlog: their references are resolved together
GUEST_KEY = "guest"
INCOME_ACCOUNT_KEY = "account:income"
GIFT_CARD_ACCOUNT_KEY = "account:gift_card"


@dataclass
class _Lookup:
    bid: str
    sql: str
    entity: str


def _batch_queries(client: QboClient, lookups: list[_Lookup]) -> dict[str, list[dict]]:
    """Run queries in batches of 30; returns bId -> rows."""
    out: dict[str, list[dict]] = {}
    if len(lookups) == 1:  # a batch of one saves nothing and spends the scarcer batch budget
        return {lookups[0].bid: client.query(lookups[0].sql)}
    for start in range(0, len(lookups), BATCH_MAX):
        chunk = lookups[start:start + BATCH_MAX]
        try:
            answers = client.batch([{"bId": q.bid, "Query": q.sql} for q in chunk],
                                   request_id=f"q-{uuid.uuid4().hex}")
        except RealmBusy:
            # The realm's 40 batches/min are spent: the same reads as single queries (500/min budget).
            for q in chunk:
                out[q.bid] = client.query(q.sql)
            continue
        by_id = {a.get("bId"): a for a in answers}
        for q in chunk:
            answer = by_id.get(q.bid, {})
            if "Fault" in answer:
                raise parse_fault(400, json.dumps({"Fault": answer["Fault"]}), client.last_exchange and
                                  client.last_exchange.get("intuit_tid"))
            out[q.bid] = (answer.get("QueryResponse") or {}).get(q.entity, [])
    return out


def _create_batch(client: QboClient, shop: Shop, creates: list[tuple[str, str, dict]]) -> dict[str, dict | Exception]:
    """Create (bId, entity, payload) items in batches; returns bId -> entity or the QBO error."""
    out: dict[str, dict | Exception] = {}
    for start in range(0, len(creates), BATCH_MAX):
        chunk = creates[start:start + BATCH_MAX]
        items = [{"bId": bid, "operation": "create", entity: payload} for bid, entity, payload in chunk]
        digest = hashlib.sha256(dumps(items).encode()).hexdigest()[:24]
        try:
            if len(chunk) < MIN_BATCH_CREATES:
                raise RealmBusy(0, "so few creates cost less as single requests than as a batch")
            # Refused before anything is sent when the batch budget is spent: nothing to undo.
            answers = client.batch(items, request_id=make_request_id(shop.domain, f"refs:{digest}", "Batch"))
        except RealmBusy:
            for bid, entity, payload in chunk:
                try:
                    out[bid] = client.create(entity, payload,
                                             make_request_id(shop.domain, f"refs:{digest}:{bid}", entity))
                except QboValidationError as exc:
                    out[bid] = exc
            continue
        by_id = {a.get("bId"): a for a in answers}
        for bid, entity, _payload in chunk:
            answer = by_id.get(bid, {})
            if entity in answer:
                out[bid] = answer[entity]
            else:
                out[bid] = parse_fault(400, json.dumps({"Fault": answer.get("Fault") or {}}),
                                       (client.last_exchange or {}).get("intuit_tid"))
    return out


def same_product(request: ItemRequest, item_sku: str | None) -> bool:
    """Whether an item found by its name may stand for the request: not when both carry SKUs and
    they differ (another product, however alike the names: it gets a name of its own)."""
    sku = (request.sku or "").strip().lower()
    return not sku or (item_sku or "").strip().lower() in ("", sku)


def item_matches(found: dict[str, list[dict]], prefix: str, request: ItemRequest) -> list[dict]:
    """The items a lookup found for a request: by Sku, else by Name when `same_product`."""
    if found.get(f"{prefix}-sku"):
        return found[f"{prefix}-sku"]
    return [row for row in found.get(f"{prefix}-name") or [] if same_product(request, row.get("Sku"))]


def names_seen(found: dict[str, list[dict]], bid: str, field: str) -> set[str]:
    """Lower-cased names (`field`: DisplayName, Name) in use among the rows a name lookup found."""
    return {(row.get(field) or "").lower() for row in found.get(bid) or []}


def free_item_name(request: ItemRequest, taken: set[str]) -> str:
    """The first name candidate for the request that is not known to be taken."""
    return next((n for n in name_candidates(request.name) if n.lower() not in taken), request.name)


def _remember(model, shop: Shop, key: str, qbo_id: str, **extra) -> None:
    try:
        model.create(shop=shop, key=key, **{("qbo_customer_id" if model is CustomerMap else "qbo_item_id"): qbo_id},
                     **extra)
    except IntegrityError:
        pass  # another worker cached it first; same company, same answer


def _reactivate(client: QboClient, entity: str, row: dict, shop: Shop) -> dict:
    """An inactive match is reactivated rather than duplicated (the bookkeeper's record is kept)."""
    if row.get("Active", True) in (True, "true"):
        return row
    rid = make_request_id(shop.domain, f"reactivate:{entity}:{row['Id']}:{row.get('SyncToken')}", entity)
    return client.update(entity, {"Id": row["Id"], "SyncToken": row.get("SyncToken", "0"), "Active": True}, rid)


def directory_key(realm: str, shop_id: int, entity: str = "Customer") -> str:
    """The Redis key of a company's customer directory, its item directory ('Item') or its names ('names')."""
    suffix = {"Customer": "", "Item": ":items", "names": ":names"}[entity]
    return f"ecomflux:qbo-directory:{realm}:{shop_id}{suffix}"


def directory_entry(qbo_id, active: bool, sku: str | None = None) -> str:
    """One directory field's value: 'id|active' for a customer, 'id|active|sku' for an item."""
    return "|".join([str(qbo_id), "1" if active else "0", *([] if sku is None else [sku])])


def directory_ttl(records: int) -> int:
    """How long an unused directory of `records` is kept: an hour per page its full read cost (capped)."""
    return min(DIRECTORY_MAX_TTL, max(1, -(-records // PAGE)) * DIRECTORY_TTL)


class Directory:
    """A read view of the customer directory: match key -> (customer id, active)."""

    def __init__(self, conn, key: str):
        self.conn = conn
        self.key = key

    def _entries(self, fields: list[str]) -> list[list[str] | None]:
        """Each field's entry as [id, active, (sku)], or None where the directory has none."""
        return [None if v is None else (v.decode() if isinstance(v, bytes) else v).split("|", 2)
                for v in self.conn.hmget(self.key, fields)]

    def find(self, keys: list[str]) -> tuple[str, bool] | None:
        """The entry of the first key the directory knows (strongest key first), else None."""
        hit = next((e for e in self._entries(keys) if e is not None), None) if keys else None
        return (hit[0], hit[1] == "1") if hit else None


class ItemDirectory(Directory):
    """A read view of the item directory: the item a request's SKU or name finds, and taken names."""

    def lookup(self, request: ItemRequest) -> tuple[tuple[str, bool] | None, set[str]]:
        """(the matching item as (id, active) or None, lower-cased names taken by other products):
        the rules of the lookup queries (`item_matches`)."""
        sku, name = (request.sku or "").strip().lower(), request.name.lower()
        by_sku, by_name = self._entries([f"sku:{sku}", f"name:{name}"])
        if sku and by_sku:
            return (by_sku[0], by_sku[1] == "1"), set()
        if by_name and same_product(request, by_name[2]):
            return (by_name[0], by_name[1] == "1"), set()
        return None, ({name} if by_name else set())


class ReferenceResolver:
    """Resolves one plan's customer and items against one company."""

    def __init__(self, shop: Shop, client: QboClient, settings):
        self.shop = shop
        self.client = client
        self.settings = settings

    # -- customers ---------------------------------------------------------------------------
    def customer_keys(self, identity: CustomerIdentity, currency: str | None) -> list[str]:
        if identity.guest or self.settings.customer_matching == "none":
            return []
        return match_keys(identity, salt=self.shop.domain, currency=currency)

    def cached_customer(self, keys: list[str]) -> str | None:
        if not keys:
            return None
        rows = {r.key: r.qbo_customer_id for r in
                CustomerMap.select().where((CustomerMap.shop == self.shop.id) & (CustomerMap.key.in_(keys)))}
        return next((rows[k] for k in keys if k in rows), None)

    def busy(self) -> bool:
        """The shop has a backlog (at least BACKLOG_DELIVERIES deliveries waiting)."""
        return WebhookDelivery.select().where(
            (WebhookDelivery.shop == self.shop.id)
            & WebhookDelivery.status.in_((DeliveryStatus.QUEUED, DeliveryStatus.PENDING, DeliveryStatus.RECEIVED))
        ).limit(BACKLOG_DELIVERIES).count() >= BACKLOG_DELIVERIES

    def _directory_key(self, entity: str = "Customer") -> str:
        return directory_key(self.client.realm, self.shop.id, entity)

    def directory(self) -> "Directory":
        """The company's customer directory, read or brought up to date first when needed."""
        return Directory(self.client.limiter.conn, self._current_directory("Customer"))

    def item_directory(self) -> "ItemDirectory":
        """The company's item directory (by SKU and by name), read or brought up to date first when needed."""
        return ItemDirectory(self.client.limiter.conn, self._current_directory("Item"))

    def _notified(self) -> bool:
        """Whether QuickBooks change notifications keep the directories current (else they are polled)."""
        return bool(runtime.config().get("INTUIT_WEBHOOK_VERIFIER_TOKEN"))

    def _current_directory(self, entity: str) -> str:
        """Read the entity's directory if there is none; bring it up to date (a change query when it
        is over a minute old, or with notifications on, one CDC call when something changed);
        returns its Redis key."""
        conn = self.client.limiter.conn
        key = self._directory_key(entity)
        notified = self._notified()
        generation = notifications.generation(conn, self.client.realm) if notified else 0
        as_of, life, seen = conn.hmget(key, [DIRECTORY_AS_OF, DIRECTORY_LIFE, DIRECTORY_SEEN])
        ttl = int(life or DIRECTORY_TTL)
        started = time.time()
        if as_of is not None and notified and started - float(as_of) > CDC_LOOKBACK_SECONDS:
            as_of = None  # too old for change data capture: read it afresh
        if as_of is None:
            rows = self.client.query(f"SELECT * FROM {entity} WHERE Active IN (true, false)")
            ttl = directory_ttl(len(rows))
            self._store_directory(entity, rows, started, max(ttl, DIRECTORY_NOTIFIED_TTL) if notified else ttl,
                                  fresh=True, seen=generation)
        elif notified:
            if int(seen or 0) != generation or started - float(as_of) > DIRECTORY_CATCHUP_SECONDS:
                self._catch_up(float(as_of), started, generation)
            else:
                self._keep(entity, key, ttl)
        elif started - float(as_of) > DIRECTORY_FRESH_SECONDS:
            since = datetime.fromtimestamp(float(as_of) - DIRECTORY_OVERLAP_SECONDS, timezone.utc)
            rows = self.client.query(f"SELECT * FROM {entity} WHERE MetaData.LastUpdatedTime >= "
                                     f"{quote(since.strftime('%Y-%m-%dT%H:%M:%S-00:00'))} AND Active IN (true, false)")
            self._store_directory(entity, rows, started, ttl, fresh=False)
        else:
            self._keep(entity, key, ttl)
        return key

    def _entries(self, entity: str, row: dict) -> dict[str, str]:
        """The directory fields one QBO row answers for."""
        active = row.get("Active", True) is not False
        if entity == "Item":
            if row.get("Type") == "Category":
                return {}
            sku = (row.get("Sku") or "").strip()
            entry = directory_entry(row["Id"], active, sku)
            out = {f"name:{(row.get('Name') or '').lower()}": entry}
            if sku:
                out[f"sku:{sku.lower()}"] = entry
            return out
        out = {}
        display = (row.get("DisplayName") or "").lower()
        if display.startswith(GUEST_DISPLAY_NAME.lower()):  # the shared guest customer(s), by name
            out[f"{GUEST_KEY}:{display}"] = directory_entry(row["Id"], active)
        # A customer in another currency cannot take a home-currency order: it is no match.
        if not self._home_currency(row):
            return out
        return {**out, **dict.fromkeys(self._row_keys(row), directory_entry(row["Id"], active))}

    def _catch_up(self, as_of: float, started: float, generation: int) -> None:
        """ONE change-data-capture call brings both directories (those we hold) up to `generation`."""
        conn = self.client.limiter.conn
        stamps = {e: conn.hget(self._directory_key(e), DIRECTORY_AS_OF) for e in ("Customer", "Item")}
        too_old = [e for e, stamp in stamps.items() if stamp is not None and started - float(stamp) > CDC_LOOKBACK_SECONDS]
        if too_old:  # out of CDC's reach: read afresh when next needed
            conn.delete(*(self._directory_key(e) for e in too_old))
        held = [e for e, stamp in stamps.items() if stamp is not None and e not in too_old]
        # From the older of the two reads, so one call covers both.
        oldest = min([as_of] + [float(stamps[e]) for e in held])
        since = datetime.fromtimestamp(oldest - DIRECTORY_OVERLAP_SECONDS, timezone.utc)
        changed, total = self.client.cdc(held, since.strftime("%Y-%m-%dT%H:%M:%S-00:00"))
        for entity in held:
            key = self._directory_key(entity)
            ttl = max(int(conn.hget(key, DIRECTORY_LIFE) or DIRECTORY_TTL), DIRECTORY_NOTIFIED_TTL)
            if total >= CDC_MAX_OBJECTS:  # the answer may be cut short: start the directory afresh
                conn.delete(key, *([self._names_key()] if entity == "Customer" else []))
                continue
            # Deleted or merged records come as Id + status only: the document that names one is
            # refused and its mapping forgotten (post_with_current_references).
            rows = [r for r in changed.get(entity, []) if r.get("status") != "Deleted"]
            self._store_directory(entity, rows, started, ttl, fresh=False, seen=generation)

    def _store_directory(self, entity: str, rows: list[dict], started: float, ttl: int, fresh: bool,
                         seen: int | None = None) -> None:
        """Write rows into the directory (a fresh read replaces it) and stamp when the read began."""
        entries: dict[str, str] = {}
        names: set[str] = set()
        for row in rows:
            if entity == "Customer":
                names.add((row.get("DisplayName") or "").lower())
            for field_key, entry in self._entries(entity, row).items():
                # A fresh read keeps the first (oldest) row per key; a change is the newest word.
                if fresh:
                    entries.setdefault(field_key, entry)
                else:
                    entries[field_key] = entry
        key = self._directory_key(entity)
        with self.client.limiter.conn.pipeline() as pipe:
            if fresh:
                pipe.delete(key)
            stamps = {DIRECTORY_AS_OF: repr(started), DIRECTORY_LIFE: str(ttl)}
            if seen is not None:
                stamps[DIRECTORY_SEEN] = str(seen)
            pipe.hset(key, mapping={**entries, **stamps})
            pipe.expire(key, ttl)
            if entity == "Customer":
                if fresh:
                    pipe.delete(self._names_key())
                # The empty-name sentinel keeps the set alive when the company has no customers yet,
                # so names created meanwhile are still tracked.
                pipe.sadd(self._names_key(), "", *names)
                pipe.expire(self._names_key(), ttl)
            pipe.execute()

    def _keep(self, entity: str, key: str, ttl: int) -> None:
        """A directory in use is kept (with its names) as long again."""
        with self.client.limiter.conn.pipeline() as pipe:
            pipe.expire(key, ttl)
            if entity == "Customer":
                pipe.expire(self._names_key(), ttl)
            pipe.execute()

    def _names_key(self) -> str:
        return directory_key(self.client.realm, self.shop.id, "names")

    def free_display_name(self, identity: CustomerIdentity, also_taken: set[str] = frozenset(),
                          currency: str | None = None) -> str | None:
        """The first display-name candidate no customer in the snapshot (nor `also_taken`, lower case)
        uses: saves a 6240 round trip."""
        conn = self.client.limiter.conn
        candidates = currency_names(identity, currency)
        if not candidates:
            return None
        used = [c.lower() in also_taken for c in candidates]
        if conn.exists(self._names_key()):
            in_snapshot = conn.smismember(self._names_key(), [c.lower() for c in candidates])
            used = [a or bool(b) for a, b in zip(used, in_snapshot)]
        return next((c for c, u in zip(candidates, used) if not u), candidates[-1])

    def note(self, entity: str, row: dict) -> None:
        """Put a customer or item we just created or matched into its directory at once (the next
        change query would bring it too, but a same-named buyer or product may come first)."""
        conn = self.client.limiter.conn
        if self._notified() and row.get("Id"):
            notifications.note_own(conn, self.client.realm, entity, row["Id"])  # its notification is no news
        key = self._directory_key(entity)
        if not conn.hexists(key, DIRECTORY_AS_OF):
            return
        entries = self._entries(entity, row)
        with conn.pipeline() as pipe:
            if entity == "Customer" and row.get("DisplayName"):
                pipe.sadd(self._names_key(), row["DisplayName"].lower())
            if entries:
                pipe.hset(key, mapping=entries)
            pipe.execute()

    def _home_currency(self, row: dict) -> bool:
        """Whether the customer is in the home currency (the only one the directory answers for)."""
        currency = ((row.get("CurrencyRef") or {}).get("value") or "").upper()
        return not currency or currency == (self.settings.company.home_currency or "").upper()

    def _row_keys(self, row: dict) -> list[str]:
        """The match keys a QBO customer answers to: its email, and each of its names (display,
        given + family, company) with each of its postal codes."""
        keys = []
        email = (row.get("PrimaryEmailAddr") or {}).get("Address")
        if email:
            keys.append(email_key(email, self.shop.domain))
        person = " ".join(p for p in (row.get("GivenName"), row.get("FamilyName")) if p)
        names = [n for n in dict.fromkeys((row.get("DisplayName"), person, row.get("CompanyName"))) if n]
        for address in ("ShipAddr", "BillAddr"):
            postal = (row.get(address) or {}).get("PostalCode")
            if postal:
                keys.extend(name_postal_key(name, postal, self.shop.domain) for name in names)
        return list(dict.fromkeys(keys))

    def customer_lookups(self, identity: CustomerIdentity) -> list[_Lookup]:
        out = []
        if identity.email:
            out.append(_Lookup("c-email", f"SELECT * FROM Customer WHERE PrimaryEmailAddr = {quote(identity.email)}"
                               " AND Active IN (true, false)", "Customer"))
        name = base_display_name(identity)
        if name:
            # Every customer whose name starts with ours, in the same call: a same-named buyer at this
            # postal code is a match, and the names taken are skipped instead of costing a 6240 each.
            out.append(_Lookup("c-name", f"SELECT * FROM Customer WHERE DisplayName LIKE {quote(name + '%')}"
                               " AND Active IN (true, false)", "Customer"))
        return out

    def pick_customer(self, identity: CustomerIdentity, found: dict[str, list[dict]],
                      currency: str | None = None) -> dict | None:
        # QBO fixes a customer's currency: only one in the document's currency can take it.
        wanted = (currency or self.settings.company.home_currency or "").upper()
        found = {k: [r for r in rows if (((r.get("CurrencyRef") or {}).get("value") or wanted).upper() == wanted)]
                 for k, rows in found.items()}
        rows = found.get("c-email") or []
        if rows:
            return sorted(rows, key=lambda r: (r.get("Active") is False, int(r.get("Id", 0))))[0]
        postal = (identity.postal_code or "").replace(" ", "").upper()
        if self.settings.customer_matching != "email_then_name" or not postal:
            return None
        # Our own names for this person: the plain name or one we suffixed because it was taken.
        ours = {n.lower() for n in currency_names(identity, currency)}
        for row in found.get("c-name") or []:
            codes = {((row.get(a) or {}).get("PostalCode") or "").replace(" ", "").upper() for a in ("ShipAddr", "BillAddr")}
            if (row.get("DisplayName") or "").lower() in ours and postal in codes:
                return row
        return None

    def guest_customer(self, currency: str | None) -> str:
        if self.settings.default_customer_id:
            return self.settings.default_customer_id
        key = f"{GUEST_KEY}:{currency}" if currency else GUEST_KEY
        cached = self.cached_customer([key])
        if cached:
            return cached
        payload = guest_customer_payload(currency)
        row = self._guest_from_directory(payload, key)
        if row is None:
            rows = self.client.query(f"SELECT * FROM Customer WHERE DisplayName = {quote(payload['DisplayName'])}"
                                     " AND Active IN (true, false)")
            row = _reactivate(self.client, "Customer", rows[0], self.shop) if rows else self.client.create(
                "Customer", payload, make_request_id(self.shop.domain, key, "Customer"))
        _remember(CustomerMap, self.shop, key, str(row["Id"]), display_name=row.get("DisplayName"))
        self.note("Customer", row)  # ours: its change notification is no news
        return str(row["Id"])

    def _guest_from_directory(self, payload: dict, key: str) -> dict | None:
        """The guest customer as the customer directory (when we hold it) knows it: its id, or created
        at once when QBO has no customer of that name (no lookup read); None when the directory is not
        held or cannot settle it (an inactive guest, a name taken meanwhile), for the lookup query."""
        conn = self.client.limiter.conn
        if not conn.hexists(self._directory_key("Customer"), DIRECTORY_AS_OF):
            return None  # not worth a directory read (a shop whose buyers are all guests needs none)
        hit = self.directory().find([f"{GUEST_KEY}:{payload['DisplayName'].lower()}"])
        if hit is not None:
            return {"Id": hit[0], "DisplayName": payload["DisplayName"]} if hit[1] else None
        try:
            return self.client.create("Customer", payload, make_request_id(self.shop.domain, key, "Customer"))
        except QboDuplicateName:
            return None  # typed into QuickBooks since the directory's last read: look it up

    def create_customer(self, identity: CustomerIdentity, currency: str | None, taken: set[str] = frozenset()) -> dict:
        """Create with the first display name not known to be `taken` (lower case); 6240 (taken by any
        customer/vendor/employee) tries the next."""
        names = currency_names(identity, currency)
        # The requestid names the person as well as the name: two buyers who share a name must never
        # share a requestid, or QBO answers the second with the first one's customer.
        who = next(iter(self.customer_keys(identity, currency)), identity.shopify_customer_id or "")
        for name in names:
            if name.lower() in taken:
                continue
            try:
                return self.client.create("Customer", customer_payload(identity, name, currency=currency),
                                          make_request_id(self.shop.domain, f"customer:{who}:{name}", "Customer"))
            except QboDuplicateName:
                continue
        raise FatalError(f"every display name for this customer is taken in QuickBooks (last: {names[-1]!r})")

    # -- items -------------------------------------------------------------------------------
    def cached_items(self, requests: list[ItemRequest]) -> dict[str, str]:
        keys = [r.key for r in requests]
        if not keys:
            return {}
        return {r.key: r.qbo_item_id for r in
                ItemMap.select().where((ItemMap.shop == self.shop.id) & (ItemMap.key.in_(keys)))}

    @staticmethod
    def item_lookups(index: int, request: ItemRequest) -> list[_Lookup]:
        out = []
        if request.sku:
            out.append(_Lookup(f"i{index}-sku", f"SELECT * FROM Item WHERE Sku = {quote(request.sku)}"
                               " AND Active IN (true, false)", "Item"))
        out.append(_Lookup(f"i{index}-name", f"SELECT * FROM Item WHERE Name = {quote(request.name)}"
                           " AND Active IN (true, false)", "Item"))
        return out

    def account(self, key: str) -> str:
        """Income account for new items (settings, else the company's product income account), or the
        gift-card liability account; chosen from ONE read of the chart of accounts, then remembered
        until QuickBooks notifies a change to the chosen account."""
        if key == INCOME_ACCOUNT_KEY and self.settings.income_account_id:
            return self.settings.income_account_id
        cached = ItemMap.get_or_none((ItemMap.shop == self.shop.id) & (ItemMap.key == key))
        if cached and not notifications.account_changed_since(self.client.limiter.conn, self.client.realm,
                                                              cached.qbo_item_id, cached.created_at):
            return cached.qbo_item_id
        if cached:  # deleted, merged or edited in QuickBooks since we chose it: choose again
            cached.delete_instance()
        chosen = self._read_chart()
        if key in chosen:
            return chosen[key]
        if key == INCOME_ACCOUNT_KEY:
            raise FatalError("the QuickBooks company has no income account: choose one in settings")
        # Gift card sales are owed to the buyer, not revenue: a liability account, created when the
        # company has none (its Id comes with the create's answer).
        row = self.client.create("Account", {"Name": "Gift Card Liability", "AccountType": "Other Current Liability"},
                                 make_request_id(self.shop.domain, GIFT_CARD_ACCOUNT_KEY, "Account"))
        _remember(ItemMap, self.shop, key, str(row["Id"]), name=key)
        return str(row["Id"])

    def _read_chart(self) -> dict[str, str]:
        """ONE query of the active chart of accounts answers every default account we need (income
        for new items, gift-card liability); each found is remembered. Returns key -> account id."""
        return remember_default_accounts(self.shop, self.client.query("SELECT * FROM Account"))

    def create_item(self, request: ItemRequest, taken: set[str] = frozenset()) -> dict:
        """Create under the first name not known to be `taken` (lower case); 6240 tries the next."""
        account_key = GIFT_CARD_ACCOUNT_KEY if request.key == "special:gift_card" else INCOME_ACCOUNT_KEY
        account_id = self.account(account_key)
        last = None
        for name in name_candidates(request.name):
            if name.lower() in taken:
                continue
            payload = item_payload(name, item_type=request.item_type, income_account_id=account_id, sku=request.sku,
                                   description=request.description)
            try:
                return self.client.create("Item", payload, make_request_id(self.shop.domain, f"item:{request.key}:{name}", "Item"))
            except QboDuplicateName as exc:
                last = exc
            except QboValidationError as exc:
                if exc.code != "6240":
                    raise
                last = exc
        raise FatalError(f"no free QuickBooks item name for {request.name!r}: {last}")

    # -- both --------------------------------------------------------------------------------
    def calls_needed(self, identity: CustomerIdentity, currency: str | None, requests: list[ItemRequest]) -> int:
        """QBO calls this order may need: 1 when customer and items are cached, up to 6 when cold."""
        keys = self.customer_keys(identity, currency)
        cold_customer = bool(keys) and self.cached_customer(keys) is None
        cold_items = len(self.cached_items(requests)) < len(requests)
        return 1 + (3 if cold_customer else 0) + (2 if cold_items else 0)

    def resolve(self, identity: CustomerIdentity, currency: str | None, requests: list[ItemRequest]) -> tuple[str, dict]:
        """(customer id, {item key: item id}) with at most one lookup batch and one create batch."""
        keys = self.customer_keys(identity, currency)
        if keys and self.cached_customer(keys) and len(self.cached_items(requests)) == len(requests):
            return self._resolve(identity, currency, requests)  # all known: nothing to create
        with one_creator(self.shop):
            return self._resolve(identity, currency, requests)

    def _resolve(self, identity: CustomerIdentity, currency: str | None, requests: list[ItemRequest]) -> tuple[str, dict]:
        """resolve() itself; creates run under one_creator."""
        keys = self.customer_keys(identity, currency)
        customer_id = self.cached_customer(keys) if keys else None
        guest = not keys
        items = self.cached_items(requests)
        missing = [r for r in requests if r.key not in items]

        customer_id, lookups = self._customer_from_directory(identity, currency, keys, customer_id, guest)
        item_taken = self._items_from_directory(missing, items, lookups)
        found = _batch_queries(self.client, lookups) if lookups else {}

        creates: list[tuple[str, str, dict]] = []
        customer_row, taken = None, set()
        if not guest and customer_id is None:
            customer_row, taken, guest = self._match_or_name_customer(identity, currency, found, creates)
        self._match_or_name_items(missing, items, found, item_taken, creates)
        results = _create_batch(self.client, self.shop, creates) if creates else {}

        self._take_created_items(missing, items, results, item_taken)
        if guest:
            customer_id = self.guest_customer(currency)
        elif customer_id is None:
            customer_id = self._take_customer(identity, currency, keys, customer_row, results, taken)
        return customer_id, items

    def _customer_from_directory(self, identity: CustomerIdentity, currency: str | None, keys: list[str],
                                 customer_id: str | None, guest: bool) -> tuple[str | None, list[_Lookup]]:
        """The customer from the company's directory when the cache has none; else the lookups to find it
        by (none when the directory knows it is absent)."""
        lookups: list[_Lookup] = []
        known_absent = False
        if not guest and customer_id is None and not currency:
            hit = self.directory().find(keys)
            if hit and hit[1]:
                customer_id = hit[0]
                for k in keys:
                    _remember(CustomerMap, self.shop, k, customer_id, shopify_customer_id=identity.shopify_customer_id)
            else:
                known_absent = hit is None  # an inactive hit is looked up normally (to reactivate)
        if not guest and customer_id is None and not known_absent:
            lookups += self.customer_lookups(identity)
        return customer_id, lookups

    def _items_from_directory(self, missing: list[ItemRequest], items: dict, lookups: list[_Lookup]
                              ) -> dict[str, set[str]]:
        """Items the company's item directory settles, the lookups for the others it knows (an inactive
        match is looked up, to reactivate it); returns the names taken per item key."""
        item_taken: dict[str, set[str]] = {}
        item_dir = self.item_directory() if missing else None
        for index, request in enumerate(missing):
            hit, item_taken[request.key] = item_dir.lookup(request)
            if hit and hit[1]:
                items[request.key] = hit[0]
            elif hit is not None:
                lookups += self.item_lookups(index, request)
        return item_taken

    def _match_or_name_customer(self, identity: CustomerIdentity, currency: str | None, found: dict,
                                creates: list[tuple[str, str, dict]]) -> tuple[dict | None, set[str], bool]:
        """The customer the lookups found (reactivated if inactive), else its create with a free display
        name; returns (the row found, names taken, guest: no free name left)."""
        guest, taken = False, set()
        customer_row = self.pick_customer(identity, found, currency)
        if customer_row is not None:
            customer_row = _reactivate(self.client, "Customer", customer_row, self.shop)
        else:
            taken = names_seen(found, "c-name", "DisplayName")
            name = self.free_display_name(identity, also_taken=taken, currency=currency)
            if name is None:
                guest = True
            else:
                taken.add(name.lower())  # if its create fails with 6240, the retry starts past it
                creates.append(("c-new", "Customer", customer_payload(identity, name, currency=currency)))
        return customer_row, taken, guest

    def _match_or_name_items(self, missing: list[ItemRequest], items: dict, found: dict,
                             item_taken: dict[str, set[str]], creates: list[tuple[str, str, dict]]) -> None:
        """Each item the lookups found (reactivated if inactive), else its create with a free name (the gift
        card item is created on its own, after the batch)."""
        for index, request in enumerate(missing):
            if request.key in items:
                continue
            rows = item_matches(found, f"i{index}", request)
            if rows:
                items[request.key] = str(_reactivate(self.client, "Item", rows[0], self.shop)["Id"])
                self.note("Item", rows[0])
            elif not request.key.startswith("special:gift_card"):
                item_taken[request.key] |= names_seen(found, f"i{index}-name", "Name")
                name = free_item_name(request, item_taken[request.key])
                item_taken[request.key].add(name.lower())
                creates.append((f"i{index}-new", "Item", item_payload(
                    name, item_type=request.item_type, income_account_id=self.account(INCOME_ACCOUNT_KEY),
                    sku=request.sku, description=request.description)))

    def _take_created_items(self, missing: list[ItemRequest], items: dict, results: dict,
                            item_taken: dict[str, set[str]]) -> None:
        """The created items' ids (created one by one where the batch did not), each remembered for next time."""
        for index, request in enumerate(missing):
            if request.key in items:
                continue
            created = results.get(f"i{index}-new")
            if isinstance(created, Exception) and not isinstance(created, QboDuplicateName):
                raise created
            row = created if isinstance(created, dict) else self.create_item(request, item_taken.get(request.key, set()))
            items[request.key] = str(row["Id"])
            self.note("Item", row)
        for request in missing:
            _remember(ItemMap, self.shop, request.key, items[request.key], name=request.name[:255])

    def _take_customer(self, identity: CustomerIdentity, currency: str | None, keys: list[str],
                       customer_row: dict | None, results: dict, taken: set[str]) -> str:
        """The found or created customer's id (created on its own if the batch did not), remembered under
        each of its match keys."""
        created = results.get("c-new")
        if isinstance(created, Exception) and not isinstance(created, QboDuplicateName):
            raise created
        row = customer_row or (created if isinstance(created, dict) else self.create_customer(
            identity, currency, taken=taken))
        customer_id = str(row["Id"])
        self.note("Customer", row)
        for key in keys:
            _remember(CustomerMap, self.shop, key, customer_id, display_name=row.get("DisplayName"),
                      shopify_customer_id=identity.shopify_customer_id)
        return customer_id


def remember_default_accounts(shop: Shop, rows: list[dict]) -> dict[str, str]:
    """Choose the default accounts from the company's active accounts (`rows`: a read of the chart of
    accounts, ours or the settings page's) and remember each found: the income account for new items (one
    named for products, else the first) and the gift-card liability account. Returns key -> account id."""
    income = [r for r in rows if r.get("AccountType") == "Income"]
    preferred = [r for r in income if "product" in (r.get("Name") or "").lower()] or income
    gift = [r for r in rows if r.get("AccountType") == "Other Current Liability"
            and "gift" in (r.get("Name") or "").lower()]
    chosen = {key: str(found[0]["Id"]) for key, found in ((INCOME_ACCOUNT_KEY, preferred),
                                                          (GIFT_CARD_ACCOUNT_KEY, gift)) if found}
    for key, account_id in chosen.items():
        _remember(ItemMap, shop, key, account_id, name=key)
    # Another worker may have remembered its choice first: the remembered one is the answer.
    return {r.key: r.qbo_item_id for r in ItemMap.select().where(
        (ItemMap.shop == shop.id) & ItemMap.key.in_(list(chosen)))} if chosen else {}


# QBO's answers when a document names a record that was deleted, merged away or made inactive.
STALE_REFERENCE_CODES = frozenset({"2500", "610", "6000"})


def stale_reference(detail: dict | None) -> str | None:
    """'Customer' or 'Item' when a refused document named a customer or item that QBO no longer takes
    (deleted, merged or inactive), from QBO's code, element and words; else None."""
    detail = detail or {}
    if detail.get("code") not in STALE_REFERENCE_CODES:
        return None
    element = detail.get("element") or ""
    words = f"{detail.get('message') or ''} {detail.get('detail') or ''}"
    if detail.get("code") == "6000" and "inactive" not in words.lower():
        return None  # 6000 is QBO's catch-all business rule: only its inactive-record case is ours
    for entity in ("Customer", "Item"):
        if element.endswith(f"{entity}Ref") or (not element and entity in words):
            return entity
    return None


def forget_references(shop: Shop, client: QboClient, entity: str, payload: dict) -> int:
    """Drop what we cached about the customer or items a refused document named (the mappings and
    the company's directories), so the next build resolves them afresh; returns the mappings dropped."""
    if entity == "Customer":
        ids = [str((payload.get("CustomerRef") or {}).get("value"))]
        dropped = CustomerMap.delete().where((CustomerMap.shop == shop.id) & CustomerMap.qbo_customer_id.in_(ids)).execute()
    else:
        ids = sorted({str(ref["value"]) for line in payload.get("Line") or []
                      for detail in line.values() if isinstance(detail, dict)
                      for ref in [detail.get("ItemRef")] if isinstance(ref, dict) and ref.get("value")})
        # Account ids live in ItemMap too, under account: keys, and may equal an item id.
        dropped = ItemMap.delete().where((ItemMap.shop == shop.id) & ItemMap.qbo_item_id.in_(ids)
                                         & ~ItemMap.key.startswith("account:")).execute()
    client.limiter.conn.delete(*(directory_key(client.realm, shop.id, e) for e in ("Customer", "names", "Item")))
    log.info("shop %s: QBO refused %s %s as deleted or inactive; %d cached mappings dropped, resolving again",
             shop.domain, entity, ",".join(ids), dropped)
    return dropped


def post_with_current_references(shop: Shop, client: QboClient, record,
                                 build: Callable[[], Document | PostResult],
                                 delivery: WebhookDelivery | None = None) -> PostResult:
    """post_document, built again when QBO refuses a cached customer or item as deleted, merged or inactive.

    The bookkeeper may delete, merge or deactivate a record we cached after we cached it: the refused
    document's mappings are forgotten and it is built again (the record is then reactivated, matched
    by email or created). Any other refusal stands, with QBO's message on the ledger row."""
    built: list[Document] = []

    def build_noting():
        doc = build()
        if isinstance(doc, Document):
            built.append(doc)
        return doc

    forgotten: set[str] = set()  # at most one more build per entity: a customer and an item may both be gone
    while True:
        try:
            return post_document(shop, client, record, build_noting, delivery)
        except FatalError as exc:
            entity = stale_reference(exc.detail)
            if (not built or entity is None or entity in forgotten
                    or not forget_references(shop, client, entity, built[-1].payload)):
                raise
            forgotten.add(entity)


CREATE_LOCK_SECONDS = 150  # a create batch may run until QBO ends the request (120 s)
CREATE_WAIT_SECONDS = 60


@contextmanager
def one_creator(shop: Shop):
    """One worker at a time looks up and creates a shop's customers and items: two resolving the same new
    buyer at once (a backlog drain beside a single post) would each miss the other's create, and the
    second would create the buyer again under a free name ('Ren Okafor (2)')."""
    try:
        lock = runtime.redis().lock(f"ecomflux:refs:{shop.id}", timeout=CREATE_LOCK_SECONDS,
                                    blocking_timeout=CREATE_WAIT_SECONDS)
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise RetryLater(f"reference lock unavailable: {exc}", 15) from None
    if not acquired:
        raise RetryLater("another worker is creating this shop's customers and items", 15)
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.RedisError:  # expired under a very slow create: the next holder re-reads the cache
            pass


def prepare_references(shop: Shop, client: QboClient, settings: SyncSettings, plans: list) -> None:
    """Fill CustomerMap/ItemMap for many orders' plans (a backfill page, a shop's webhook backlog) with
    a handful of batch calls, so each order's own resolve() afterwards is answered from the cache."""
    with one_creator(shop):
        _prepare_references(shop, client, settings, plans)


def _prepare_references(shop: Shop, client: QboClient, settings: SyncSettings, plans: list) -> None:
    """prepare_references() itself, under one_creator."""
    resolver = ReferenceResolver(shop, client, settings)
    # Items: one lookup batch for all unknown keys, one create batch for what QBO does not have.
    requests: dict[str, ItemRequest] = {}
    for plan in plans:
        for req in plan.item_requests(settings.item_type):
            requests.setdefault(req.key, req)
    cached = resolver.cached_items(list(requests.values()))
    missing = [r for r in requests.values() if r.key not in cached]
    if missing:
        item_dir = resolver.item_directory()
        creates, by_bid = [], {}
        for i, req in enumerate(missing):
            hit, taken = item_dir.lookup(req)
            if hit and hit[1]:
                _remember(ItemMap, shop, req.key, hit[0], name=req.name[:255])
            elif hit is None and not req.key.startswith("special:gift_card"):
                # An inactive match is left to the order's own resolve(), which reactivates it.
                by_bid[f"i{i}-new"] = req
                creates.append((f"i{i}-new", "Item", item_payload(
                    free_item_name(req, taken), item_type=req.item_type, income_account_id=resolver.account(INCOME_ACCOUNT_KEY),
                    sku=req.sku, description=req.description)))
        for bid, row in (_create_batch(client, shop, creates) if creates else {}).items():
            if isinstance(row, dict):  # a failed create is left to the order's own resolve()
                req = by_bid[bid]
                resolver.note("Item", row)
                _remember(ItemMap, shop, req.key, str(row["Id"]), name=req.name[:255])
    # Customers: the directory snapshot (one read) answers who exists; the rest are created in batches.
    pending: dict[str, tuple] = {}
    for plan in plans:
        keys = resolver.customer_keys(plan.customer, plan.currency_ref)
        if not keys or plan.currency_ref or resolver.cached_customer(keys):
            continue
        pending.setdefault(keys[0], (plan.customer, keys))
    if not pending:
        return
    directory = resolver.directory()
    creates, new, taken = [], {}, set()
    for n, (first, (identity, keys)) in enumerate(pending.items()):
        hit = directory.find(keys)
        if hit and hit[1]:
            for k in keys:
                _remember(CustomerMap, shop, k, hit[0], shopify_customer_id=identity.shopify_customer_id)
        elif hit is None:
            # Same-named buyers are common: pick a name neither QBO (snapshot) nor this batch uses.
            name = resolver.free_display_name(identity, also_taken=taken)
            if name and name.lower() not in taken:
                taken.add(name.lower())
                new[f"c{n}"] = (identity, keys)
                creates.append((f"c{n}", "Customer", customer_payload(identity, name, currency=None)))
    results = _create_batch(client, shop, creates) if creates else {}
    for bid, (identity, keys) in new.items():
        row = results.get(bid)
        if isinstance(row, dict):  # a name clash (6240) is left to the order's own resolve()
            resolver.note("Customer", row)
            for k in keys:
                _remember(CustomerMap, shop, k, str(row["Id"]), display_name=row.get("DisplayName"),
                          shopify_customer_id=identity.shopify_customer_id)


def currency_names(identity: CustomerIdentity, currency: str | None) -> list[str]:
    """Display names to try; a customer in a foreign currency is named for it ("Ann Lee (EUR)"),
    since the same buyer's home-currency customer keeps the plain name."""
    names = list(display_name_candidates(identity))
    if not currency:
        return names
    suffix = f" ({currency})"
    return list(dict.fromkeys(n[:DISPLAY_NAME_MAX - len(suffix)] + suffix for n in names))
