"""The QBO REST client: QBO_API_BASE_URL, minorversion on every call, requestid on every write.

A thin client of our own rather than python-quickbooks' object layer: the translation core
already produces QBO JSON, and we need what that library does not give us in one place: a
configurable base URL per the configuration contract, a caller-chosen requestid on every write
(including batch and void), QBO's Fault details plus intuit_tid on every error, the shared
per-realm limiter and a lock-protected refresh on 401.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

from .. import runtime
from ..models import QboConnection, Shop, utcnow
from ..statuses import ConnectionStatus
from ..work_results import WaitingForReconnect
from ..translate.document_kinds import DELETE, VOID_BY_UPDATE, kind_of
from ..translate.jsonout import dumps
from .errors import QboAuthError, QboAuthorizationFailed, QboError, QboThrottled, QboTransient, parse_fault
from .limiter import MAX_WAIT_SECONDS as MAX_WAIT
from .limiter import RealmLimiter
from .metering import count_reads, reads_in
from .tokens import fresh_access_token, mark_reconnect_required

log = logging.getLogger(__name__)

TIMEOUT = (5, 60)  # connect, read: well under Intuit's 120 s request limit
PAGE = 1000  # QBO MAXRESULTS ceiling
MAX_BODY_KEPT = 20_000  # response text kept for support, per exchange

_session = requests.Session()


class QboClient:
    """One company's API; not thread-safe (one per job)."""

    def __init__(self, conn: QboConnection, limiter: RealmLimiter | None = None):
        self.conn = conn
        self.realm = conn.realm_id
        self.limiter = limiter or RealmLimiter(runtime.redis())
        cfg = runtime.config()
        self.base = f"{cfg['QBO_API_BASE_URL']}/company/{self.realm}"
        self.minor_version = cfg["QBO_MINOR_VERSION"]
        self.last_exchange: dict | None = None
        self.calls = 0
        # Seconds a batch call may wait for the realm's batch budget; 0 fails fast (callers fall back).
        self.batch_wait = 0.0

    # -- transport ---------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: dict, body: Any, token: str) -> requests.Response:
        # A batch that would exceed the batch budget fails fast: callers fall back to single calls.
        batch = path == "batch"
        slot = self.limiter.acquire(self.realm, max_wait=self.batch_wait if batch else MAX_WAIT, batch=batch)
        release = True
        try:
            # Amounts are Decimal: jsonout writes them as exact JSON numbers (json= would need floats).
            resp = _session.request(
                method, f"{self.base}/{path}", params=params, data=None if body is None else dumps(body),
                timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "Content-Type": "application/json"},
            )
            count_reads(self.limiter.conn, self.realm, reads_in(method, path, body))  # Intuit meters reads
            return resp
        except requests.RequestException as exc:
            # A request we stopped waiting for may still be running in QBO: its concurrency slot stays
            # taken until its lease ends, so the realm never has more than 10 calls in flight.
            release = not isinstance(exc, requests.ReadTimeout)
            raise QboTransient(f"QBO unreachable: {type(exc).__name__}") from None
        finally:
            if release:
                self.limiter.release(self.realm, slot)

    def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                request_id: str | None = None) -> dict:
        """One API call with auth refresh on 401; returns the parsed JSON body or raises a QboError."""
        params = dict(params or {})
        params["minorversion"] = self.minor_version
        if method != "GET":
            if not request_id:
                raise ValueError("every QBO write needs a deterministic requestid")
            params["requestid"] = request_id
        token = fresh_access_token(self.conn)
        started = time.perf_counter()
        resp = self._send(method, path, params, body, token)
        self.calls += 1
        if resp.status_code == 401:
            token = fresh_access_token(self.conn, rejected=token)
            resp = self._send(method, path, params, body, token)
            self.calls += 1
        tid = resp.headers.get("intuit_tid")
        self.last_exchange = {
            "method": method, "path": path, "params": params, "request": body, "status": resp.status_code,
            "response": resp.text[:MAX_BODY_KEPT], "intuit_tid": tid,
            "duration_ms": int((time.perf_counter() - started) * 1000),
        }
        if resp.status_code == 200:
            self._note_success()
            try:
                return resp.json()
            except ValueError:
                raise QboTransient("QBO answered 200 with a body that is not JSON", intuit_tid=tid) from None
        error = parse_fault(resp.status_code, resp.text, tid)
        if isinstance(error, QboThrottled):
            self.limiter.pause(self.realm, QboThrottled.retry_after)
        if isinstance(error, QboAuthError):
            log.warning("QBO still answers 401 after a refresh for realm %s", self.realm)
        if isinstance(error, QboAuthorizationFailed):
            # The company is unknown or shut to us: every call would fail alike. Park the connection so
            # the page shows Reconnect and work waits for it, instead of failing order after order.
            mark_reconnect_required(self.conn, f"QuickBooks does not let EcomFlux reach company {self.realm} "
                                               f"any more ({error.describe()}); reconnect QuickBooks")
            raise WaitingForReconnect(self.conn.status_reason) from error
        raise error

    def _note_success(self) -> None:
        # At most one write a minute per client: the page shows "last success", not every call.
        last = self.conn.last_success_at
        now = utcnow()
        if last is None or (now - last).total_seconds() > 60:
            QboConnection.update(last_success_at=now).where(QboConnection.id == self.conn.id).execute()
            self.conn.last_success_at = now

    # -- entity API --------------------------------------------------------------------------
    def query(self, sql: str) -> list[dict]:
        """Run a QBO query; without MAXRESULTS in it, pages through every result."""
        upper = sql.upper()
        if "MAXRESULTS" in upper or "COUNT(*)" in upper:
            return self._query_page(sql)
        rows, start = [], 1
        while True:
            page = self._query_page(f"{sql} STARTPOSITION {start} MAXRESULTS {PAGE}")
            rows.extend(page)
            if len(page) < PAGE:
                return rows
            start += PAGE

    def _query_page(self, sql: str) -> list[dict]:
        body = self.request("GET", "query", params={"query": sql}).get("QueryResponse", {})
        for value in body.values():
            if isinstance(value, list):
                return value
        return []

    def read(self, entity: str, entity_id: str) -> dict:
        return self.request("GET", f"{entity.lower()}/{entity_id}")[entity]

    def create(self, entity: str, payload: dict, request_id: str) -> dict:
        return self.request("POST", entity.lower(), body=payload, request_id=request_id)[entity]

    def update(self, entity: str, payload: dict, request_id: str, sparse: bool = True) -> dict:
        body = dict(payload, sparse=sparse)
        return self.request("POST", entity.lower(), body=body, request_id=request_id)[entity]

    def void(self, entity: str, entity_id: str, sync_token: str, request_id: str) -> dict:
        """Void keeps the document (history) with zero amounts: Invoice via operation=void, others via include=void."""
        return self.undo(entity, entity_id, sync_token, request_id)

    def undo(self, entity: str, entity_id: str, sync_token: str, request_id: str) -> dict:
        """Take a document back the way its kind is taken back (translate.document_kinds): void or delete."""
        doc_kind = kind_of(entity)
        body: dict[str, Any] = {"Id": entity_id, "SyncToken": sync_token}
        if doc_kind.undo == VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void"}
            body["sparse"] = True
        else:
            params = {"operation": doc_kind.undo}  # QBO's operation names: void, delete
        answer = self.request("POST", doc_kind.endpoint, params=params, body=body, request_id=request_id)
        return answer[entity] if doc_kind.undo != DELETE else answer.get(entity) or {}

    def batch(self, items: list[dict], request_id: str) -> list[dict]:
        """Up to 30 operations in one call; each answer carries its bId and either the entity or a Fault."""
        if len(items) > 30:
            raise ValueError("QBO batches hold at most 30 items")
        body = self.request("POST", "batch", body={"BatchItemRequest": items}, request_id=request_id)
        return body.get("BatchItemResponse", [])

    def cdc(self, entities: list[str], since: str) -> tuple[dict[str, list[dict]], int]:
        """Change data capture: ({entity: objects changed since `since`, deleted ones as Id + status},
        objects in all). QBO answers at most 1,000 objects, so a full answer may be cut short."""
        body = self.request("GET", "cdc", params={"entities": ",".join(entities), "changedSince": since})
        out: dict[str, list[dict]] = {e: [] for e in entities}
        for block in body.get("CDCResponse") or []:
            for answer in block.get("QueryResponse") or []:
                for entity in entities:
                    out[entity].extend(answer.get(entity) or [])
        return out, sum(len(rows) for rows in out.values())

    def company_info(self) -> dict:
        return self.request("GET", f"companyinfo/{self.realm}")["CompanyInfo"]

    def preferences(self) -> dict:
        return self.request("GET", "preferences")["Preferences"]


def connection_for(shop: Shop) -> QboConnection:
    """The shop's QBO connection if it can be used; otherwise the work waits for the admin."""
    conn = QboConnection.get_or_none(QboConnection.shop == shop.id)
    if conn is None or conn.status == ConnectionStatus.NOT_CONNECTED or not conn.realm_id:
        raise WaitingForReconnect("QuickBooks is not connected")
    if conn.status != ConnectionStatus.CONNECTED:
        raise WaitingForReconnect(conn.status_reason or "QuickBooks reconnect required")
    return conn


def client_for_shop(shop: Shop) -> QboClient:
    return QboClient(connection_for(shop))


__all__ = ["QboClient", "QboError", "client_for_shop", "connection_for"]
