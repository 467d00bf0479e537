"""A strict local stand-in for Intuit OAuth 2 and the QBO v3 REST API (dev, tests, benchmarks).

Speaks the real protocol: discovery document, consent page, token endpoint with rotating
refresh tokens and invalid_grant, revoke; QBO entities with SyncTokens, requestid replay,
query language, batch, void; QBO's validation rules and Fault shapes; 429/3001 over 500
requests/min or 10 concurrent per realm; faults and latency on demand.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import deque
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from html import escape
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request

from . import intuit_tax, qbo_deposit, qbo_query
from .qbo_fault import Fault, now_text as _now_text

ACCESS_TTL = 3600
REFRESH_TTL = 100 * 24 * 3600
HARD_TTL = 5 * 365 * 24 * 3600
PER_MINUTE = 500
CONCURRENT = 10
BATCH_MAX = 30
BATCHES_PER_MINUTE = 40
MIN_MINOR_VERSION = 75
CDC_LOOKBACK_DAYS = 30  # QBO's change data capture reaches back this far
CDC_MAX_OBJECTS = 1000  # and answers at most this many objects across the entities asked for
TRANSACTIONS = ("SalesReceipt", "Invoice", "RefundReceipt", "CreditMemo", "Payment")
NAMES = ("Customer", "Vendor", "Employee")
ENTITIES = NAMES + TRANSACTIONS + ("Item", "Account", "Class", "Department", "PaymentMethod", "TaxCode", "TaxRate",
                                   "Deposit")
CENT = Decimal("0.01")


def _money(value, element: str) -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        raise Fault(400, "2010", "Request has invalid or unsupported property", f"bad amount {value!r}",
                    element) from None


def _ref(obj: dict | None) -> str | None:
    return str(obj.get("value")) if isinstance(obj, dict) and obj.get("value") not in (None, "") else None


class Company:
    """One QBO company (realm) and everything in it."""

    def __init__(self, realm: str, name: str, country: str, multicurrency: bool, home_currency: str,
                 shipping_allowed: bool, tax_codes: list | None = None):
        self.realm, self.name, self.country = realm, name, country
        self.tax_codes = tax_codes  # a regime in intuit_tax.REGIMES' shape; None: the country's own
        self.multicurrency, self.home_currency, self.shipping_allowed = multicurrency, home_currency, shipping_allowed
        self.entities: dict[str, dict[str, dict]] = {e: {} for e in ENTITIES}
        self.next_id = 1
        self.replies: dict[str, tuple[int, dict]] = {}  # requestid -> original answer
        self.window: deque[float] = deque()
        self.batch_window: deque[float] = deque()
        self.in_flight = 0
        self.faults: deque[dict] = deque()  # {"kind", "count", optional "endpoint", "seconds"}
        self.latency = 0.0  # seconds every request takes
        # Seconds per operation on top: QBO works through a batch's items one after another, so a
        # batch takes this times its items (a single call is one operation).
        self.item_latency = 0.0
        # reads: what Intuit meters (GET reads, queries, CDC, and each query inside a batch)
        self.counters = {"requests": 0, "throttled": 0, "created": {}, "by_endpoint": {}, "reads": 0}
        self.events: list[dict] = []  # change notifications not yet sent to the app
        self._seed()

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def add(self, entity: str, obj: dict) -> dict:
        obj = dict(obj)
        obj.setdefault("Id", self.new_id())
        obj.setdefault("SyncToken", "0")
        obj.setdefault("domain", "QBO")
        obj.setdefault("MetaData", {"CreateTime": _now_text(), "LastUpdatedTime": _now_text()})
        if entity in NAMES + ("Item", "Account", "Class", "Department", "PaymentMethod"):
            obj.setdefault("Active", True)
        self.entities[entity][obj["Id"]] = obj
        return obj

    def _seed(self) -> None:
        accounts = [
            ("Sales of Product Income", "Income", "SalesOfProductIncome"),
            ("Services", "Income", "ServiceFeeIncome"),
            ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
            ("Checking", "Bank", "Checking"),
            ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
            ("Gift Card Liability", "Other Current Liability", "OtherCurrentLiabilities"),
            ("Discounts given", "Income", "DiscountsRefundsGiven"),
            ("Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
        ]
        for name, kind, sub in accounts:
            self.add("Account", {"Name": name, "AccountType": kind, "AccountSubType": sub, "FullyQualifiedName": name})
        income = self.find("Account", "Name", "Services")
        self.add("Item", {"Name": "Shipping", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}})
        for name in ("Cash", "Credit Card", "Shopify Payments"):
            self.add("PaymentMethod", {"Name": name})
        for name in ("Retail", "Wholesale"):
            self.add("Class", {"Name": name, "FullyQualifiedName": name})
        self.add("Department", {"Name": "Warehouse East", "FullyQualifiedName": "Warehouse East"})
        if self.country == "US":
            self.entities["TaxCode"]["TAX"] = {"Id": "TAX", "Name": "TAX", "Active": True}
            self.entities["TaxCode"]["NON"] = {"Id": "NON", "Name": "NON", "Active": True}
        else:
            # Non-US companies have no TAX/NON pseudo-codes: real codes with sales rate lists.
            intuit_tax.seed(self, self.tax_codes)

    def changed(self, entity: str, obj: dict, operation: str) -> None:
        """Queue a change notification (CloudEvents): 'created', 'updated', 'deleted', 'voided', 'merged'."""
        self.events.append({"entity": entity, "id": str(obj.get("Id")), "operation": operation, "time": time.time()})

    def find(self, entity: str, field: str, value) -> dict | None:
        return next((o for o in self.entities[entity].values() if o.get(field) == value), None)

    def get(self, entity: str, obj_id: str | None, element: str, active: bool = True) -> dict:
        obj = self.entities.get(entity, {}).get(str(obj_id)) if obj_id is not None else None
        if obj is None or obj.get("status") == "Deleted":
            raise Fault(400, "2500", "Invalid Reference Id",
                        f"Invalid Reference Id : {entity} assigned to this transaction has been deleted or does not exist",
                        element)
        if active and obj.get("Active") is False:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: the {entity} {obj_id} is inactive", element)
        return obj


class IntuitSandbox:
    """All state, guarded by one lock; Flask routes call into it."""

    def __init__(self, client_id: str, client_secret: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.companies: dict[str, Company] = {}
            self.codes: dict[str, tuple[str, str]] = {}
            self.access: dict[str, tuple[str, float]] = {}
            self.refresh: dict[str, tuple[str, float, float]] = {}
            self.access_ttl, self.refresh_ttl, self.hard_ttl = ACCESS_TTL, REFRESH_TTL, HARD_TTL
            # Each realm's authorization has one hard deadline, set at consent (5 years), which refreshes never move.
            self.hard_deadlines: dict[str, float] = {}
            self.rotate = True
            self.token_faults: deque[str] = deque()
            self.token_stats = {"refreshes": 0, "invalid_grant": 0}
            # Webhooks: where change notifications go (a URL, or a callable(body, headers) -> status
            # for an app served in-process) and the app's verifier token that signs them.
            self.notification_target = None
            self.verifier_token: str | None = None
            self.notification_stats = {"posts": 0, "events": 0, "failed": 0}

    # -- change notifications (webhooks) ------------------------------------------------------
    def user_change(self, realm: str, entity: str, obj_id: str | None = None, operation: str | None = None,
                    **fields) -> dict:
        """A QuickBooks user adds (no obj_id) or edits a record in the QBO UI; queues its notification."""
        with self.lock:
            company = self.company(realm)
            if obj_id is None:
                obj = company.add(entity, fields)
                company.changed(entity, obj, "created")
                return copy.deepcopy(obj)
            obj = company.entities[entity][str(obj_id)]
            obj.update(fields)
            obj["SyncToken"] = str(int(obj.get("SyncToken", "0")) + 1)
            obj.setdefault("MetaData", {})["LastUpdatedTime"] = _now_text()
            company.changed(entity, obj, operation or ("deleted" if obj.get("status") == "Deleted" else "updated"))
            return copy.deepcopy(obj)

    def deliver_notifications(self) -> int:
        """Send every queued change as one signed CloudEvents POST per company, as Intuit does after
        its aggregation window; returns the events sent. Undelivered events stay queued (Intuit retries)."""
        with self.lock:
            target, token = self.notification_target, self.verifier_token
            batches = [(c.realm, list(c.events)) for c in self.companies.values() if c.events]
        if target is None or not token:
            return 0
        sent = 0
        for realm, events in batches:
            body = json.dumps(cloud_events(realm, events)).encode()
            headers = {"Content-Type": "application/cloudevents-batch+json",
                       "intuit-signature": sign_notification(body, token)}
            try:
                if callable(target):
                    status = target(body, headers)
                else:
                    import requests

                    status = requests.post(target, data=body, headers=headers, timeout=10).status_code
            except Exception:  # noqa: BLE001 - the app being down is a failed delivery, retried later
                status = 0
            with self.lock:
                self.notification_stats["posts"] += 1
                if 200 <= status < 300:
                    company = self.companies.get(realm)
                    if company is not None:
                        del company.events[:len(events)]
                    self.notification_stats["events"] += len(events)
                    sent += len(events)
                else:
                    self.notification_stats["failed"] += 1
        return sent

    def start_notifier(self, every: float = 1.0) -> threading.Event:
        """Deliver notifications every `every` seconds in a daemon thread (the sandbox fires "near real
        time"); set the returned event to stop it."""
        stop = threading.Event()

        def loop():
            while not stop.wait(every):
                self.deliver_notifications()

        threading.Thread(target=loop, name="intuit-sandbox-notifier", daemon=True).start()
        return stop

    # -- companies and tokens ----------------------------------------------------------------
    def create_company(self, name: str = "Sandbox Company", country: str = "US", multicurrency: bool = False,
                       home_currency: str | None = None, shipping_allowed: bool = True, realm: str | None = None,
                       tax_codes: list | None = None) -> str:
        with self.lock:
            realm = realm or str(9130350000000000 + len(self.companies) + secrets.randbelow(10_000) * 100)
            currency = home_currency or intuit_tax.HOME_CURRENCY.get(country, "USD")
            self.companies[realm] = Company(realm, name, country, multicurrency, currency, shipping_allowed,
                                            tax_codes)
            return realm

    def company(self, realm: str) -> Company:
        company = self.companies.get(str(realm))
        if company is None:
            raise Fault(403, "3100", "ApplicationAuthorizationFailed", f"unknown realm {realm}", kind="AUTHORIZATION")
        return company

    def issue_tokens(self, realm: str, hard_expiry: bool = False, consent: bool = False) -> dict:
        """A fresh token pair; `consent` (an authorization code) starts a new 5-year hard deadline."""
        with self.lock:
            access, refresh = "eyJ" + secrets.token_urlsafe(24), "AB11" + secrets.token_urlsafe(24)
            now = time.time()
            self.access[access] = (realm, now + self.access_ttl)
            if consent or realm not in self.hard_deadlines:
                self.hard_deadlines[realm] = now + self.hard_ttl
            hard = self.hard_deadlines[realm]
            # A refresh token never outlives its authorization: the rolling expiry stops at the hard one.
            rolling = min(now + self.refresh_ttl, hard)
            self.refresh[refresh] = (realm, rolling, hard)
            return self._token_body(access, refresh, now, rolling, hard, hard_expiry)

    def _token_body(self, access: str, refresh: str, now: float, rolling: float, hard: float,
                    hard_expiry: bool) -> dict:
        body = {"token_type": "bearer", "access_token": access, "expires_in": self.access_ttl,
                "refresh_token": refresh, "x_refresh_token_expires_in": max(0, int(rolling - now))}
        if hard_expiry:  # only when asked (header x-include-refresh-token-hard-expires-in: true)
            body["x_refresh_token_hard_expires_in"] = max(0, int(hard - now))
        return body

    def set_hard_deadline(self, realm: str, seconds_from_now: float) -> None:
        """Move a realm's hard deadline (an authorization given almost five years ago) for every live token."""
        with self.lock:
            hard = time.time() + seconds_from_now
            self.hard_deadlines[realm] = hard
            self.refresh = {t: (r, min(rolling, hard), hard) if r == realm else (r, rolling, h)
                            for t, (r, rolling, h) in self.refresh.items()}

    def revoke_all(self, realm: str) -> None:
        with self.lock:
            self.access = {t: v for t, v in self.access.items() if v[0] != realm}
            self.refresh = {t: v for t, v in self.refresh.items() if v[0] != realm}
            self.hard_deadlines.pop(realm, None)  # the next consent is a new authorization

    def token_grant(self, form: dict, hard_expiry: bool) -> tuple[int, dict]:
        with self.lock:
            if self.token_faults:
                fault = self.token_faults.popleft()
                if fault == "invalid_grant":
                    self.token_stats["invalid_grant"] += 1
                    return 400, {"error": "invalid_grant"}
                return 503, {"error": "temporarily_unavailable"}
            grant = form.get("grant_type")
            if grant == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code[1] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant"}
                return 200, self.issue_tokens(code[0], hard_expiry, consent=True)
            if grant == "refresh_token":
                entry = self.refresh.get(form.get("refresh_token", ""))
                if entry is None or entry[1] < time.time() or entry[2] < time.time():
                    self.token_stats["invalid_grant"] += 1
                    return 400, {"error": "invalid_grant"}
                self.token_stats["refreshes"] += 1
                realm = entry[0]
                if self.rotate:
                    del self.refresh[form["refresh_token"]]  # the old value is dead at once
                    return 200, self.issue_tokens(realm, hard_expiry)
                access, now = "eyJ" + secrets.token_urlsafe(24), time.time()
                self.access[access] = (realm, now + self.access_ttl)
                rolling = min(now + self.refresh_ttl, entry[2])  # using it renews its rolling window
                self.refresh[form["refresh_token"]] = (realm, rolling, entry[2])
                return 200, self._token_body(access, form["refresh_token"], now, rolling, entry[2], hard_expiry)
            return 400, {"error": "unsupported_grant_type"}

    def revoke_token(self, token: str) -> bool:
        with self.lock:
            realm = (self.refresh.get(token) or self.access.get(token) or (None,))[0]
            if realm is None:
                return False
            self.revoke_all(realm)  # revoking disconnects the app from the company
            return True

    def authenticate(self, realm: str, header: str | None) -> None:
        token = (header or "")[7:] if (header or "").lower().startswith("bearer ") else ""
        entry = self.access.get(token)
        if entry is None or entry[0] != realm or entry[1] < time.time():
            raise Fault(401, "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "Token expired or invalid", kind="AUTHENTICATION")

    # -- limits and faults -------------------------------------------------------------------
    def admit(self, company: Company, batch: bool) -> None:
        now = time.time()
        while company.window and company.window[0] < now - 60:
            company.window.popleft()
        while company.batch_window and company.batch_window[0] < now - 60:
            company.batch_window.popleft()
        over_rate = len(company.window) >= PER_MINUTE or (batch and len(company.batch_window) >= BATCHES_PER_MINUTE)
        if over_rate or company.in_flight >= CONCURRENT:
            company.counters["throttled"] += 1
            raise Fault(429, "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                        "Too many requests", kind="SERVICE")
        company.window.append(now)
        if batch:
            company.batch_window.append(now)
        company.in_flight += 1


def _next_fault(company: Company, endpoint: str) -> dict | None:
    """The first queued fault for this request; one with an endpoint ("POST payment") waits for that endpoint."""
    for fault in company.faults:
        if fault.get("endpoint") in (None, endpoint):
            fault["count"] -= 1
            if fault["count"] <= 0:
                company.faults.remove(fault)
            return fault
    return None


def create_intuit_sandbox(client_id: str, client_secret: str) -> Flask:
    app = Flask("intuit_sandbox")
    state = IntuitSandbox(client_id, client_secret)
    app.sandbox = state  # in-process access for tests and `ecomflux dev`

    def base() -> str:
        return request.host_url.rstrip("/")

    def client_ok() -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, client_id) and secrets.compare_digest(password, client_secret)

    # -- OAuth -------------------------------------------------------------------------------
    @app.get("/.well-known/openid_configuration")
    def discovery():
        b = base()
        return jsonify(issuer=b, authorization_endpoint=f"{b}/connect/oauth2",
                       token_endpoint=f"{b}/oauth2/v1/tokens/bearer", revocation_endpoint=f"{b}/oauth2/v1/tokens/revoke",
                       userinfo_endpoint=f"{b}/v1/openid_connect/userinfo", jwks_uri=f"{b}/oauth2/v1/keys",
                       response_types_supported=["code"], scopes_supported=["com.intuit.quickbooks.accounting"])

    @app.get("/connect/oauth2")
    def authorize():
        args = request.args
        if args.get("client_id") != client_id or args.get("response_type") != "code":
            return "invalid client_id or response_type", 400
        if "com.intuit.quickbooks.accounting" not in (args.get("scope") or ""):
            return "scope com.intuit.quickbooks.accounting required", 400
        with state.lock:
            companies = list(state.companies.values())
        options = "".join(
            f'<label><input type="radio" name="realm" value="{c.realm}" {"checked" if i == 0 else ""}> '
            f"{escape(c.name)} ({c.country})</label><br>" for i, c in enumerate(companies)) or "<p>No companies.</p>"
        hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(args.get(k, ""))}">'
                         for k in ("redirect_uri", "state"))
        return (f"<!doctype html><html><head><title>Intuit sandbox: connect</title></head><body>"
                f"<h1>Connect EcomFlux to QuickBooks</h1><p>Choose a company to share with this app.</p>"
                f'<form method="post" action="/connect/oauth2/decide">{hidden}{options}'
                f'<button name="decision" value="approve" id="approve">Connect</button> '
                f'<button name="decision" value="deny" id="deny">Cancel</button></form></body></html>')

    @app.post("/connect/oauth2/decide")
    def decide():
        form = request.form
        redirect_uri, oauth_state = form.get("redirect_uri", ""), form.get("state", "")
        if form.get("decision") != "approve":
            return Response(status=302, headers={"Location": f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': oauth_state})}"})
        code = "AB" + secrets.token_urlsafe(20)
        with state.lock:
            state.codes[code] = (form.get("realm", ""), redirect_uri)
        query = urlencode({"code": code, "state": oauth_state, "realmId": form.get("realm", "")})
        return Response(status=302, headers={"Location": f"{redirect_uri}?{query}"})

    @app.post("/oauth2/v1/tokens/bearer")
    def token():
        if not client_ok():
            return jsonify(error="invalid_client"), 401
        status, body = state.token_grant(request.form.to_dict(),
                                         request.headers.get("x-include-refresh-token-hard-expires-in") == "true")
        return jsonify(body), status

    @app.post("/oauth2/v1/tokens/revoke")
    def revoke():
        if not client_ok():
            return jsonify(error="invalid_client"), 401
        data = request.get_json(silent=True) or request.form.to_dict()
        state.revoke_token(data.get("token", ""))
        return "", 200

    # -- QBO REST ----------------------------------------------------------------------------
    @app.route("/v3/company/<realm>/<path:path>", methods=["GET", "POST"])
    def qbo(realm, path):
        tid = f"sandbox-{uuid.uuid4().hex[:16]}"
        company = None
        try:
            with state.lock:
                company = state.company(realm)
                company.counters["requests"] += 1
                key = f"{request.method} {path.split('/')[0]}"
                company.counters["by_endpoint"][key] = company.counters["by_endpoint"].get(key, 0) + 1
                company.counters["reads"] += _reads(request.method, path)
                minor = request.args.get("minorversion", "")
                if not minor.isdigit() or int(minor) < MIN_MINOR_VERSION:
                    raise Fault(400, "2010", "Request has invalid or unsupported property",
                                f"minorversion {minor or '(missing)'} is not supported; use {MIN_MINOR_VERSION}+",
                                "minorversion")
                state.authenticate(realm, request.headers.get("Authorization"))
                fault = _next_fault(company, key)
                state.admit(company, path == "batch")
            # A 5xx "after_items" N: QBO fails a batch midway, after creating its first N documents.
            cut = fault.get("after_items") if fault and path == "batch" else None
            try:
                if fault and cut is None:
                    answer = _fault_response(fault, tid)
                    if answer is not None:
                        return answer
                # The stand-in's configured service time. A batch's items are worked through one after
                # another, each taking item_latency: its documents appear one by one, as in QBO, so a
                # client that dies mid-batch leaves some created and the rest still coming.
                batch = path == "batch" and company.item_latency > 0
                delay = company.latency + (0 if batch else company.item_latency * _operations(path))
                if delay:
                    time.sleep(delay)

                def pace() -> None:
                    state.lock.release()  # held once, by the `with` below: other requests run meanwhile
                    try:
                        time.sleep(company.item_latency)
                    finally:
                        state.lock.acquire()

                with state.lock:
                    status, body = _handle(company, request.method, path, pace if batch else None, cut)
            finally:
                with state.lock:
                    company.in_flight -= 1
        except Fault as exc:
            status, body = exc.status, exc.body()
        resp = jsonify(body)
        resp.status_code = status
        resp.headers["intuit_tid"] = tid
        return resp

    def _fault_response(fault: dict, tid: str):
        kind = fault["kind"]
        if kind == "hold":  # the call waits inside QBO until the test sets the fault's event
            fault["event"].wait(fault.get("seconds", 60.0))
            return None
        if kind == "latency":
            time.sleep(fault.get("seconds", 1.0))
            return None
        if kind == "timeout":
            time.sleep(fault.get("seconds", 65.0))
            return None
        if kind == "429-xml":
            xml = ('<?xml version="1.0" encoding="UTF-8"?><IntuitResponse time="' + _now_text() + '">'
                   '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; '
                   'statusCode=429</Message><Detail>Too many requests</Detail></Error></Fault></IntuitResponse>')
            return Response(xml, status=429, mimetype="application/xml", headers={"intuit_tid": tid})
        status = {"429": 429, "500": 500, "503": 503, "401": 401}.get(kind, 500)
        code = {"429": "3001", "401": "3200"}.get(kind, "10000")
        body = Fault(status, code, {"429": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                                    "401": "message=AuthenticationFailed; errorCode=003200; statusCode=401"}
                     .get(kind, "An application error has occurred while processing your request"),
                     kind="SERVICE").body()
        resp = jsonify(body)
        resp.status_code = status
        resp.headers["intuit_tid"] = tid
        return resp

    def _handle(company: Company, method: str, path: str, pace=None, cut: int | None = None) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        head = parts[0].lower()
        if method == "GET" and head == "query":
            return 200, {"QueryResponse": _query(company, request.args.get("query", "")), "time": _now_text()}
        if method == "GET" and head == "companyinfo":
            return 200, {"CompanyInfo": {"Id": "1", "CompanyName": company.name, "Country": company.country,
                                         "LegalName": company.name, "SyncToken": "0"}, "time": _now_text()}
        if method == "GET" and head == "preferences":
            return 200, {"Preferences": {
                "CurrencyPrefs": {"MultiCurrencyEnabled": company.multicurrency,
                                  "HomeCurrency": {"value": company.home_currency}},
                "SalesFormsPrefs": {"AllowShipping": company.shipping_allowed, "CustomTxnNumbers": True},
                "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": company.country == "US"}}, "time": _now_text()}
        if method == "GET" and head == "cdc":
            return 200, {"CDCResponse": [{"QueryResponse": _cdc(company, request.args)}], "time": _now_text()}
        entity = _entity_name(head)
        if method == "GET" and entity and len(parts) == 2:
            obj = company.get(entity, parts[1], "Id", active=False)
            return 200, {entity: copy.deepcopy(obj), "time": _now_text()}
        if method != "POST" or (entity is None and head != "batch"):
            raise Fault(400, "2010", "Request has invalid or unsupported property", f"unsupported {method} {path}")
        rid = request.args.get("requestid")
        if not rid:
            raise Fault(400, "2010", "Request has invalid or unsupported property",
                        "this sandbox requires a requestid on every write", "requestid")
        if len(rid) > 50:
            raise Fault(400, "2010", "Request has invalid or unsupported property", "requestid over 50 characters",
                        "requestid")
        if rid in company.replies:
            return copy.deepcopy(company.replies[rid])
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                        "request body is not a JSON object")
        try:
            if head == "batch":
                answer = (200, {"BatchItemResponse": _batch(company, body, pace, cut), "time": _now_text()})
            else:
                answer = (200, {entity: _write(company, entity, body, request.args), "time": _now_text()})
        except Fault as exc:
            answer = (exc.status, exc.body())
        if answer[0] in (200, 400):  # Intuit replays the original outcome for a repeated requestid
            company.replies[rid] = copy.deepcopy(answer)
        return answer

    return app


def _reads(method: str, path: str) -> int:
    """Metered reads in this request: a GET (read, query, CDC, company info) is one; a batch counts
    each query it carries; writes are free."""
    if method == "GET":
        return 1
    if path != "batch":
        return 0
    body = request.get_json(silent=True)
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    return sum(1 for item in items if isinstance(item, dict) and "Query" in item) if isinstance(items, list) else 0


def _operations(path: str) -> int:
    """Operations in this request: a batch's items, else one."""
    if path != "batch":
        return 1
    body = request.get_json(silent=True)
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    return max(1, len(items)) if isinstance(items, list) else 1


def _entity_name(head: str) -> str | None:
    return next((e for e in ENTITIES if e.lower() == head), None)


def _query(company: Company, text: str) -> dict:
    try:
        query = qbo_query.parse(text)
    except qbo_query.QueryError as exc:
        raise Fault(400, "4000", "Error parsing query", str(exc)) from None
    entity = _entity_name(query.entity.lower())
    if entity is None:
        raise Fault(400, "4001", "Invalid query", f"unknown entity {query.entity}")
    try:
        qbo_query.check_filterable(entity, query)
    except qbo_query.QueryValidationError as exc:
        raise Fault(400, "4001", "Invalid query", str(exc)) from None
    rows = [o for o in company.entities[entity].values() if o.get("status") != "Deleted"]
    page, total = qbo_query.run(query, rows)
    if query.count:
        return {"totalCount": total}
    out: dict = {"startPosition": query.start, "maxResults": len(page)}
    if page:
        out[entity] = copy.deepcopy(page)
    return out


def _cdc(company: Company, args) -> list[dict]:
    """Change data capture: every object of the listed entities changed at or after changedSince (at
    most 30 days back), deleted ones as Id + status only; at most 1,000 objects in all."""
    names = [n.strip() for n in (args.get("entities") or "").split(",") if n.strip()]
    since_text = args.get("changedSince") or ""
    if not names or not since_text:
        raise Fault(400, "2020", "Required param missing", "entities and changedSince are required",
                    "entities" if not names else "changedSince")
    try:
        since = qbo_query._instant(since_text)
    except qbo_query.QueryValidationError:
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    f"changedSince {since_text!r} is not a date-time", "changedSince") from None
    if since < datetime.now(timezone.utc) - timedelta(days=CDC_LOOKBACK_DAYS):
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    f"changedSince may be at most {CDC_LOOKBACK_DAYS} days ago", "changedSince")
    out, left = [], CDC_MAX_OBJECTS
    for name in names:
        entity = _entity_name(name.lower())
        if entity is None:
            raise Fault(400, "2010", "Request has invalid or unsupported property", f"unknown entity {name}",
                        "entities")
        rows = []
        for obj in company.entities[entity].values():
            stamp = (obj.get("MetaData") or {}).get("LastUpdatedTime")
            if not stamp or qbo_query._instant(stamp) < since or left <= 0:
                continue
            left -= 1
            if obj.get("status") == "Deleted":
                rows.append({"domain": "QBO", "status": "Deleted", "Id": obj["Id"], "MetaData": obj.get("MetaData")})
            else:
                rows.append(copy.deepcopy(obj))
        answer: dict = {"startPosition": 1, "maxResults": len(rows)}
        if rows:
            answer[entity] = rows
        out.append(answer)
    return out


def cloud_events(realm: str, events: list[dict]) -> list[dict]:
    """Intuit's webhook payload (CloudEvents 1.0): one object per change, type qbo.<entity>.<operation>.v1."""
    return [{
        "specversion": "1.0", "id": f"{uuid.uuid4()}-{e['entity']}-{e['id']}", "source": "intuit.ecomflux-sandbox",
        "type": f"qbo.{e['entity'].lower()}.{e['operation']}.v1", "datacontenttype": "application/json",
        "time": datetime.fromtimestamp(e["time"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "intuitentityid": e["id"], "intuitaccountid": realm, "data": {},
    } for e in events]


def sign_notification(body: bytes, verifier_token: str) -> str:
    """The intuit-signature header: base64 of HMAC-SHA256 over the raw body, keyed by the verifier token."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


def _batch(company: Company, body: dict, pace=None, cut: int | None = None) -> list[dict]:
    """A batch's items in turn; pace() (the per-item service time) runs before each one; after `cut`
    items the batch fails with a 500, the documents created so far staying created."""
    items = body.get("BatchItemRequest") or []
    if len(items) > BATCH_MAX:
        raise Fault(400, "1000", "Batch request limit exceeded", f"at most {BATCH_MAX} items per batch")
    answers = []
    for done, item in enumerate(items):
        if cut is not None and done >= cut:
            raise Fault(500, "10000", "An application error has occurred while processing your request",
                        kind="SERVICE")
        if pace is not None:
            pace()
        bid = item.get("bId")
        try:
            if "Query" in item:
                answers.append({"bId": bid, "QueryResponse": _query(company, item["Query"])})
                continue
            entity = next((e for e in ENTITIES if e in item), None)
            if entity is None:
                raise Fault(400, "2010", "Request has invalid or unsupported property", "no entity in batch item")
            operation = item.get("operation", "create")
            args = {"operation": "delete"} if operation == "delete" else {}
            payload = dict(item[entity])
            if operation == "update":
                payload.setdefault("sparse", True)
            answers.append({"bId": bid, entity: _write(company, entity, payload, args)})
        except Fault as exc:
            fault = exc.body()["Fault"]
            answers.append({"bId": bid, "Fault": fault})
    return answers


def _write(company: Company, entity: str, body: dict, args) -> dict:
    operation = args.get("operation")
    if body.get("Id") or operation in ("void", "delete"):
        return _update(company, entity, body, operation, args.get("include"))
    obj = _validate(company, entity, copy.deepcopy(body))
    created = company.add(entity, obj)
    company.changed(entity, created, "created")
    if entity == "Payment":
        _settle(company, created)
    if entity == "Deposit":
        qbo_deposit.settle(company, created)
    company.counters["created"][entity] = company.counters["created"].get(entity, 0) + 1
    return copy.deepcopy(created)


def _update(company: Company, entity: str, body: dict, operation: str | None, include: str | None) -> dict:
    current = company.get(entity, body.get("Id"), "Id", active=False)
    if str(body.get("SyncToken")) != str(current.get("SyncToken")):
        raise Fault(400, "5010", "Stale Object Error",
                    f"Stale Object Error : You and root were working on this at the same time. "
                    f"root finished before you did, so your work was not saved.", "SyncToken")
    if entity == "Deposit":
        # Deleting or editing a deposit puts what it had emptied back into Undeposited Funds.
        qbo_deposit.settle(company, current, undo=True)
        try:
            answer = _change(company, entity, current, body, operation, include)
        except Fault:
            qbo_deposit.settle(company, current)
            raise
        if current.get("status") != "Deleted":
            qbo_deposit.settle(company, current)
        return answer
    if entity != "Payment":
        return _change(company, entity, current, body, operation, include)
    # An edited Payment is validated as if its old application never happened; deleting or voiding
    # one reopens what it had settled.
    _settle(company, current, undo=True)
    try:
        answer = _change(company, entity, current, body, operation, include)
    except Fault:
        _settle(company, current)  # refused: the old application stands
        raise
    if current.get("status") != "Deleted":
        _settle(company, current)
    return answer


def _change(company: Company, entity: str, current: dict, body: dict, operation: str | None,
            include: str | None) -> dict:
    if operation == "delete":
        current["status"] = "Deleted"
        current.setdefault("MetaData", {})["LastUpdatedTime"] = _now_text()
        company.changed(entity, current, "deleted")
        return {"Id": current["Id"], "status": "Deleted", "domain": "QBO"}
    if operation == "void" or include == "void":
        if entity not in ("SalesReceipt", "Invoice", "Payment", "RefundReceipt", "CreditMemo"):
            raise Fault(400, "2010", "Request has invalid or unsupported property", f"{entity} cannot be voided")
        for line in current.get("Line", []):
            line["Amount"] = 0
        current["TotalAmt"] = 0
        current["Balance"] = 0
        current["PrivateNote"] = ("Voided " + (current.get("PrivateNote") or "")).strip()
    else:
        merged = dict(current, **{k: v for k, v in body.items() if k not in ("sparse", "SyncToken")}) \
            if body.get("sparse") else dict(body, Id=current["Id"])
        validated = _validate(company, entity, merged, updating=True)
        current.clear()
        current.update(validated)
    current["SyncToken"] = str(int(body.get("SyncToken", 0)) + 1)
    current.setdefault("MetaData", {})["LastUpdatedTime"] = _now_text()
    company.changed(entity, current, "voided" if operation == "void" or include == "void" else "updated")
    return copy.deepcopy(current)


def _validate(company: Company, entity: str, obj: dict, updating: bool = False) -> dict:
    if entity in ("TaxCode", "TaxRate"):
        # QBO writes these only through the TaxService endpoint (which this app must never call).
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    f"Operation create/update is not supported for {entity}", entity)
    if entity in NAMES:
        return _validate_name(company, entity, obj)
    if entity == "Item":
        return _validate_item(company, obj)
    if entity == "Account":
        name = (obj.get("Name") or "").strip()
        if not name or ":" in name or len(name) > 100:
            raise Fault(400, "2050", "Invalid String", "Account Name is required, <= 100 chars, no ':'", "Name")
        if any(a.get("Name") == name and a["Id"] != obj.get("Id") for a in company.entities["Account"].values()):
            raise Fault(400, "6240", "Duplicate Name Exists Error", "The name supplied already exists.", "Name")
        return qbo_deposit.validate_account(company, obj)
    if entity == "Deposit":
        return qbo_deposit.validate_deposit(company, obj)
    if entity in ("SalesReceipt", "Invoice", "RefundReceipt", "CreditMemo"):
        return _validate_txn(company, entity, obj)
    if entity == "Payment":
        return _validate_payment(company, obj)
    return obj


def _validate_name(company: Company, entity: str, obj: dict) -> dict:
    name = obj.get("DisplayName") or " ".join(p for p in (obj.get("GivenName"), obj.get("FamilyName")) if p)
    if not name:
        raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter DisplayName is missing", "DisplayName")
    if any(ch in name for ch in ":\t\n") or len(name) > 500:
        raise Fault(400, "2050", "Invalid String", f"DisplayName {name!r} contains ':' tab or newline or is too long",
                    "DisplayName")
    for other in NAMES:
        for existing in company.entities[other].values():
            same = existing.get("DisplayName", "").lower() == name.lower()
            if same and not (other == entity and existing["Id"] == obj.get("Id")):
                raise Fault(400, "6240", "Duplicate Name Exists Error",
                            f"The name supplied already exists. : Another customer, vendor or employee is already "
                            f"using this name. Please use a different name.", "DisplayName")
    obj["DisplayName"] = name
    obj.setdefault("FullyQualifiedName", name)
    if obj.get("CurrencyRef") and _ref(obj["CurrencyRef"]) != company.home_currency and not company.multicurrency:
        raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                    "Multicurrency is not enabled for this company", "CurrencyRef")
    if company.multicurrency and entity == "Customer":
        # A customer's currency is fixed for life once it is created.
        before = company.entities["Customer"].get(str(obj.get("Id"))) if obj.get("Id") else None
        obj.setdefault("CurrencyRef", {"value": company.home_currency})
        if before and _ref(before.get("CurrencyRef")) not in (None, _ref(obj["CurrencyRef"])):
            raise _business_fault("a customer's currency cannot be changed", "CurrencyRef")
    return obj


def _validate_item(company: Company, obj: dict) -> dict:
    name = obj.get("Name") or ""
    if not name.strip() or len(name) > 100 or any(ch in name for ch in ":\t\n"):
        raise Fault(400, "2050", "Invalid String", f"Item Name {name!r} must be 1-100 characters without ':'", "Name")
    if any(i.get("Name", "").lower() == name.lower() and i["Id"] != obj.get("Id")
           for i in company.entities["Item"].values()):
        raise Fault(400, "6240", "Duplicate Name Exists Error", "The name supplied already exists.", "Name")
    if obj.get("Type") not in ("NonInventory", "Service", "Inventory", "Group", "Category"):
        raise Fault(400, "2010", "Request has invalid or unsupported property", f"bad Item Type {obj.get('Type')}",
                    "Type")
    if obj.get("Type") in ("NonInventory", "Service"):
        company.get("Account", _ref(obj.get("IncomeAccountRef")), "IncomeAccountRef")
    obj.setdefault("FullyQualifiedName", name)
    return obj


def _validate_txn(company: Company, entity: str, obj: dict) -> dict:
    doc = obj.get("DocNumber")
    if doc is not None:
        if len(str(doc)) > 21:
            raise Fault(400, "2050", "String length is either shorter or longer than supported by specification",
                        f"DocNumber {doc!r} is longer than 21 characters", "DocNumber")
        clash = any(t.get("DocNumber") == doc and t["Id"] != obj.get("Id") and t.get("status") != "Deleted"
                    for t in company.entities[entity].values())
        if clash:
            raise Fault(400, "6140", "Duplicate Document Number Error",
                        f"Duplicate Document Number Error : You must specify a different number. "
                        f"This number has already been used. DocNumber={doc}", "DocNumber")
    customer_id = _ref(obj.get("CustomerRef"))
    if entity in ("Invoice", "CreditMemo") and not customer_id:
        raise Fault(400, "2020", "Required param missing", "CustomerRef is required", "CustomerRef")
    customer = company.get("Customer", customer_id, "CustomerRef") if customer_id else None
    if entity in ("RefundReceipt",) and not _ref(obj.get("DepositToAccountRef")):
        raise Fault(400, "2020", "Required param missing", "DepositToAccountRef is required", "DepositToAccountRef")
    for ref in ("DepositToAccountRef",):
        if _ref(obj.get(ref)):
            company.get("Account", _ref(obj[ref]), ref)
    if _ref(obj.get("PaymentMethodRef")):
        company.get("PaymentMethod", _ref(obj["PaymentMethodRef"]), "PaymentMethodRef")
    if _ref(obj.get("ClassRef")):
        company.get("Class", _ref(obj["ClassRef"]), "ClassRef")
    if _ref(obj.get("DepartmentRef")):
        company.get("Department", _ref(obj["DepartmentRef"]), "DepartmentRef")
    currency = _ref(obj.get("CurrencyRef"))
    if currency and currency != company.home_currency and not company.multicurrency:
        raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                    "Multicurrency is not enabled for this company", "CurrencyRef")
    intuit_tax.check_currency(company, obj, customer, Fault)
    lines = obj.get("Line") or []
    if not lines:
        raise Fault(400, "2020", "Required param missing", "Line is required", "Line")
    items_total, discounts = Decimal(0), Decimal(0)
    for n, line in enumerate(lines):
        kind = line.get("DetailType")
        amount = _money(line.get("Amount", 0), f"Line[{n}].Amount")
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            item_id = _ref(detail.get("ItemRef"))
            if item_id == "SHIPPING_ITEM_ID":
                if not company.shipping_allowed:
                    raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                                "Shipping is not enabled for this company (SHIPPING_ITEM_ID)", f"Line[{n}].ItemRef")
            else:
                company.get("Item", item_id, f"Line[{n}].SalesItemLineDetail.ItemRef")
            if detail.get("Qty") is not None and detail.get("UnitPrice") is not None:
                expected = (Decimal(str(detail["Qty"])) * Decimal(str(detail["UnitPrice"]))).quantize(CENT)
                if expected != amount:
                    raise Fault(400, "6070", "Amount calculation error",
                                f"Amount {amount} is not equal to UnitPrice * Qty ({expected})",
                                f"Line[{n}].Amount")
            tax_code = _ref(detail.get("TaxCodeRef"))
            if tax_code and tax_code not in company.entities["TaxCode"] and company.country == "US":
                raise Fault(400, "2500", "Invalid Reference Id", f"TaxCode {tax_code} does not exist",
                            f"Line[{n}].TaxCodeRef")
            items_total += amount
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            if _ref(detail.get("DiscountAccountRef")):
                company.get("Account", _ref(detail["DiscountAccountRef"]), f"Line[{n}].DiscountAccountRef")
            if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
                amount = (items_total * Decimal(str(detail["DiscountPercent"])) / 100).quantize(CENT)
                line["Amount"] = float(amount)
            discounts += amount
        elif kind in ("SubTotalLineDetail", "DescriptionOnly"):
            continue
        else:
            raise Fault(400, "2010", "Request has invalid or unsupported property", f"DetailType {kind!r}",
                        f"Line[{n}].DetailType")
    tax_detail = obj.get("TxnTaxDetail") or {}
    if company.country != "US":
        total_tax = intuit_tax.apply_global_tax(company, obj, Fault, _money)
    else:
        total_tax = _money(tax_detail.get("TotalTax", 0), "TxnTaxDetail.TotalTax")
    mode = obj.get("GlobalTaxCalculation")
    if company.country == "US" and mode not in (None, "NotApplicable", "TaxExcluded", "TaxInclusive"):
        raise Fault(400, "2010", "Request has invalid or unsupported property", f"GlobalTaxCalculation {mode}",
                    "GlobalTaxCalculation")
    total = (items_total - discounts + total_tax).quantize(CENT)
    obj["TotalAmt"] = float(total)
    obj["HomeTotalAmt"] = float((total * Decimal(str(obj.get("ExchangeRate") or 1))).quantize(CENT))
    obj["Balance"] = float(total) if entity in ("Invoice", "CreditMemo") else 0
    if entity == "CreditMemo":
        obj["RemainingCredit"] = float(total)  # what a Payment may still apply to invoices
    obj.setdefault("TxnDate", date.today().isoformat())
    obj.setdefault("CurrencyRef", {"value": company.home_currency})
    return obj


PAYMENT_LINK_TYPES = ("Invoice", "CreditMemo")


def _business_fault(detail: str, element: str) -> Fault:
    return Fault(400, "6000", "A business validation error has occurred while processing your request",
                 f"Business Validation Error: {detail}", element)


def _payment_links(company: Company, obj: dict) -> tuple[Decimal, Decimal]:
    """(charges applied to invoices, credit used from credit memos), each link checked as QBO does."""
    customer_id = _ref(obj.get("CustomerRef"))
    charges, credits = Decimal(0), Decimal(0)
    per_txn: dict[tuple[str, str], Decimal] = {}
    for n, line in enumerate(obj.get("Line") or []):
        amount = _money(line.get("Amount", 0), f"Line[{n}].Amount")
        if amount < 0:
            raise _business_fault("a payment line amount cannot be negative", f"Line[{n}].Amount")
        links = line.get("LinkedTxn") or []
        if not links:
            raise Fault(400, "2020", "Required param missing", "Line.LinkedTxn is required", f"Line[{n}].LinkedTxn")
        for link in links:
            kind = link.get("TxnType")
            if kind not in PAYMENT_LINK_TYPES:
                raise Fault(400, "2010", "Request has invalid or unsupported property",
                            f"LinkedTxn.TxnType {kind!r} is not supported here (Invoice, CreditMemo)",
                            f"Line[{n}].LinkedTxn.TxnType")
            linked = company.get(kind, link.get("TxnId"), f"Line[{n}].LinkedTxn")
            if _ref(linked.get("CustomerRef")) != customer_id:
                raise _business_fault(f"the {kind} {linked['Id']} belongs to another customer",
                                      f"Line[{n}].LinkedTxn")
            key = (kind, str(linked["Id"]))
            per_txn[key] = per_txn.get(key, Decimal(0)) + amount
            open_amount = Decimal(str(linked.get("Balance" if kind == "Invoice" else "RemainingCredit",
                                                 linked.get("Balance", 0)))).quantize(CENT)
            if per_txn[key] > open_amount:
                what = "the invoice balance" if kind == "Invoice" else "the credit remaining on the credit memo"
                raise _business_fault(f"{per_txn[key]} applied exceeds {what} {open_amount}", f"Line[{n}].Amount")
            if kind == "Invoice":
                charges += amount
            else:
                credits += amount
    return charges, credits


def _validate_payment(company: Company, obj: dict) -> dict:
    """Checks a Payment without changing anything: an invalid one must leave every balance as it was."""
    customer = company.get("Customer", _ref(obj.get("CustomerRef")), "CustomerRef")
    intuit_tax.check_currency(company, obj, customer, Fault)
    total = _money(obj.get("TotalAmt"), "TotalAmt")
    if total < 0:
        raise _business_fault("TotalAmt cannot be negative", "TotalAmt")
    charges, credits = _payment_links(company, obj)
    if credits > charges:
        raise _business_fault("credit applied exceeds the charges it is applied to", "Line")
    if total == 0 and (charges != credits or not obj.get("Line")):
        raise _business_fault("a zero payment must link charges and credits that net to 0", "TotalAmt")
    if charges - credits > total:
        raise _business_fault("Applied amount exceeds the payment total", "TotalAmt")
    obj["TotalAmt"] = float(total)
    obj["UnappliedAmt"] = float(total - (charges - credits))
    obj.setdefault("TxnDate", date.today().isoformat())
    obj.setdefault("CurrencyRef", {"value": company.home_currency})
    return obj


def _settle(company: Company, payment: dict, undo: bool = False) -> None:
    """Lower (or, undoing, restore) each linked Invoice's Balance and CreditMemo's RemainingCredit."""
    applied: dict[tuple[str, str], Decimal] = {}
    for n, line in enumerate(payment.get("Line") or []):
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") in PAYMENT_LINK_TYPES:
                key = (link["TxnType"], str(link.get("TxnId")))
                applied[key] = applied.get(key, Decimal(0)) + _money(line.get("Amount", 0), f"Line[{n}].Amount")
    back = {"TxnId": payment["Id"], "TxnType": "Payment"}
    for (kind, txn_id), amount in applied.items():
        linked = company.entities[kind].get(txn_id)
        if linked is None:
            continue
        field = "Balance" if kind == "Invoice" else "RemainingCredit"
        left = Decimal(str(linked.get(field, 0))) + (amount if undo else -amount)
        linked[field] = float(left)
        if kind == "CreditMemo":
            linked["Balance"] = float(left)
        links = linked.setdefault("LinkedTxn", [])
        if undo and back in links:
            links.remove(back)
        elif not undo and amount and back not in links:
            links.append(back)
