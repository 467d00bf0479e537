"""QuickBooks change notifications (Intuit webhooks, CloudEvents 1.0): verify, parse, and note what
changed, so the customer and item directories are brought up to date only when something did.

Intuit signs each POST with intuit-signature = base64(HMAC-SHA256(verifier token, raw body)). A
notification names the company (intuitaccountid), the entity and its id, and the operation
(type qbo.<entity>.<operation>.v1); it carries no data. Nothing is read here: a change to a customer
or an item bumps the company's change generation, and the next order that consults a directory
runs ONE change-data-capture call for both (sync/references.py). Our own creates are noted as ours
and their notifications ignored. A change to an account is noted with its time (a default account we
chose is then chosen again), and any change to a list the settings page offers bumps the company's list
generation (the page's cached lists are read again). Changes to documents are kept for support (last 30 days).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from ..translate.document_kinds import entities

log = logging.getLogger(__name__)

DIRECTORY_ENTITIES = ("Customer", "Item")
DOCUMENT_ENTITIES = entities()  # every kind EcomFlux writes (translate.document_kinds)
ACCOUNT = "Account"
# The lists the settings page offers (accounts, items, classes, locations, customers): a change to any
# of them, ours or not, makes the page read them again.
LIST_ENTITIES = ("Account", "Item", "Class", "Department", "Customer")
KNOWN = {e.lower(): e for e in DIRECTORY_ENTITIES + DOCUMENT_ENTITIES + LIST_ENTITIES}
OWN_SECONDS = 24 * 3600  # how long we remember a record as created by us (notifications come in minutes)
DOC_CHANGES_SECONDS = 30 * 24 * 3600
LEGACY_OPERATIONS = {"create": "created", "update": "updated", "delete": "deleted", "merge": "merged",
                     "void": "voided", "emailed": "emailed"}


@dataclass(frozen=True)
class Change:
    realm: str
    entity: str
    entity_id: str
    operation: str  # created | updated | deleted | merged | voided | emailed ...
    time: str | None


def verify(body: bytes, signature: str | None, verifier_token: str | None) -> bool:
    """Constant-time check of the intuit-signature header over the raw body."""
    if not signature or not verifier_token:
        return False
    expected = base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def parse(body: bytes) -> list[Change]:
    """The changes in a notification: the CloudEvents array Intuit sends now, or the legacy
    eventNotifications document it sent before the migration. Raises ValueError when it is neither."""
    data = json.loads(body)
    out: list[Change] = []
    if isinstance(data, list):
        for event in data:
            if not isinstance(event, dict) or not str(event.get("type", "")).startswith("qbo."):
                raise ValueError("not a QuickBooks CloudEvent")
            parts = str(event["type"]).split(".")  # qbo.<entity>.<operation>.v<n>
            if len(parts) < 4:
                raise ValueError(f"unexpected event type {event['type']!r}")
            entity = KNOWN.get(parts[1].lower(), parts[1])
            out.append(Change(str(event.get("intuitaccountid") or ""), entity, str(event.get("intuitentityid") or ""),
                              parts[2].lower(), event.get("time")))
        return out
    if isinstance(data, dict) and isinstance(data.get("eventNotifications"), list):
        for note in data["eventNotifications"]:
            for entity in ((note.get("dataChangeEvent") or {}).get("entities") or []):
                name = str(entity.get("name") or "")
                operation = str(entity.get("operation") or "").lower()
                out.append(Change(str(note.get("realmId") or ""), KNOWN.get(name.lower(), name),
                                  str(entity.get("id") or ""), LEGACY_OPERATIONS.get(operation, operation),
                                  entity.get("lastUpdated")))
        return out
    raise ValueError("not a QuickBooks change notification")


def generation_key(realm: str) -> str:
    """Bumped for every change to the company's customers or items that we did not make ourselves."""
    return f"ecomflux:qbo-changes:{realm}"


def own_key(realm: str) -> str:
    return f"ecomflux:qbo-own:{realm}"


def doc_changes_key(realm: str) -> str:
    return f"ecomflux:qbo-doc-changes:{realm}"


def lists_generation_key(realm: str) -> str:
    """Bumped for every notified change to a list the settings page offers (LIST_ENTITIES)."""
    return f"ecomflux:qbo-list-changes:{realm}"


def lists_generation(conn: redis.Redis, realm: str) -> int:
    return int(conn.get(lists_generation_key(realm)) or 0)


def account_changes_key(realm: str) -> str:
    """Account id -> when a change to it (not its creation) was notified (epoch seconds)."""
    return f"ecomflux:qbo-account-changes:{realm}"


def account_changed_since(conn: redis.Redis, realm: str, account_id, since: datetime) -> bool:
    """Whether a change to the account was notified after `since` (naive UTC): a default account we
    chose may have been deleted, merged or made inactive since, so it is chosen again."""
    stamp = conn.hget(account_changes_key(realm), str(account_id))
    return stamp is not None and float(stamp) >= since.replace(tzinfo=timezone.utc).timestamp()


def last_notified_key(realm: str) -> str:
    return f"ecomflux:qbo-notified:{realm}"


def generation(conn: redis.Redis, realm: str) -> int:
    return int(conn.get(generation_key(realm)) or 0)


def note_own(conn: redis.Redis, realm: str, entity: str, entity_id) -> None:
    """A record we just created or matched: its 'created' notification tells us nothing new."""
    with conn.pipeline() as pipe:
        pipe.sadd(own_key(realm), f"{entity}:{entity_id}")
        pipe.expire(own_key(realm), OWN_SECONDS)
        pipe.execute()


def apply(conn: redis.Redis, changes: list[Change]) -> dict:
    """Note the changes in Redis; returns counts (directory changes, ignored as ours, documents)."""
    counts = {"directory": 0, "ours": 0, "documents": 0, "other": 0}
    own: dict[str, set[str]] = {}
    for realm in {c.realm for c in changes if c.realm and c.entity in LIST_ENTITIES}:
        conn.incr(lists_generation_key(realm))
    for change in changes:
        if not change.realm:
            continue
        if change.entity in DIRECTORY_ENTITIES:
            if change.operation == "created":
                if change.realm not in own:
                    own[change.realm] = {m.decode() if isinstance(m, bytes) else m
                                         for m in conn.smembers(own_key(change.realm))}
                if f"{change.entity}:{change.entity_id}" in own[change.realm]:
                    counts["ours"] += 1
                    continue
            conn.incr(generation_key(change.realm))
            counts["directory"] += 1
        elif change.entity == ACCOUNT and change.operation != "created":
            with conn.pipeline() as pipe:
                pipe.hset(account_changes_key(change.realm), change.entity_id,
                          repr(datetime.now(timezone.utc).timestamp()))
                pipe.expire(account_changes_key(change.realm), DOC_CHANGES_SECONDS)
                pipe.execute()
            counts["other"] += 1
        elif change.entity in DOCUMENT_ENTITIES and change.operation != "created":
            with conn.pipeline() as pipe:
                pipe.hset(doc_changes_key(change.realm), f"{change.entity}:{change.entity_id}",
                          f"{change.operation}@{change.time or ''}")
                pipe.expire(doc_changes_key(change.realm), DOC_CHANGES_SECONDS)
                pipe.execute()
            counts["documents"] += 1
        else:
            counts["other"] += 1
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for realm in {c.realm for c in changes if c.realm}:
        conn.set(last_notified_key(realm), now, ex=DOC_CHANGES_SECONDS)
    return counts
