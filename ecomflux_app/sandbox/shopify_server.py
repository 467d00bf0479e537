"""A local Shopify stand-in: OAuth (code grant, token exchange, rotating refresh), Admin GraphQL, webhooks.

Reached as SHOPIFY_SHOP_BASE_URL = "<url>/{shop}", so a shop's admin lives at <url>/<shop>/admin/...
A JSON control API under /_sandbox/ (and the same methods on `app.sandbox` in-process) seeds shops and
orders, mints session tokens, tunes token lifetimes, revokes tokens, forces throttling and sends signed
webhooks (duplicates and out-of-order batches on demand).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode, urlparse

import jwt
import requests
from flask import Flask, jsonify, redirect, request

from ..config import SHOPIFY_API_VERSION
from ..shopify import api_versions
from .graphql_args import field_arguments
from .shopify_cost import MAX_QUERY_COST, requested_cost
from .shopify_paging import connection_page, parse_search
from .shopify_payouts import PayoutBook, build_scenario
from .shopify_render import parse_time, render_order

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
ONLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:online-access-token"
SHOP_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")

# Shopify's GraphQL leaky bucket on a standard plan (Plus shops get 10x both).
BUCKET_MAX = 2000.0
RESTORE_RATE = 100.0
# A held answer is sent anyway after this long, so a test that forgets to release cannot hang a worker.
HOLD_MAX_SECONDS = 60.0


@dataclass
class Hold:
    """A slow Shopify, deterministically: the shop's next `count` GraphQL reads of one root field are
    answered only when the test releases them; `arrived` is set once a read is waiting."""

    domain: str
    root: str
    count: int = 1
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


def query_hmac(params: dict, secret: str) -> str:
    """Hex HMAC-SHA256 over the query parameters sorted by name, `hmac` excluded (Shopify's rule)."""
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("hmac", "signature"))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def webhook_hmac(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class SandboxShop:
    domain: str
    name: str
    email: str
    currency: str = "USD"
    timezone: str = "America/New_York"
    country: str = "US"
    id: int = 0
    orders: dict = field(default_factory=dict)  # order id -> REST-shaped order
    payouts: PayoutBook = field(default_factory=PayoutBook)  # Shopify Payments payouts + balance transactions

    def info(self) -> dict:
        return {"domain": self.domain, "name": self.name, "email": self.email, "currency": self.currency,
                "timezone": self.timezone, "country": self.country, "id": self.id, "orders": len(self.orders)}


class ShopifySandboxState:
    """All sandbox state behind one lock; every method is safe to call from any thread."""

    def __init__(self, api_key: str, api_secret: str):
        self.api_key = api_key
        self.api_secret = api_secret
        self.lock = threading.RLock()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.shops: dict[str, SandboxShop] = {}
            self.codes: dict[str, dict] = {}
            self.access_tokens: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self.access_ttl = 3600
            self.refresh_ttl = 7776000
            self.bucket_max = BUCKET_MAX
            self.restore_rate = RESTORE_RATE
            self.throttle_next: dict[str, int] = {}
            self.buckets: dict[str, tuple[float, float]] = {}
            self.stats = {"code_grants": 0, "token_exchanges": 0, "refreshes": 0, "refresh_failures": 0,
                          "graphql_calls": 0, "graphql_unauthorized": 0, "throttled": 0}
            self.webhooks_sent: list[dict] = []
            self.graphql_log: list[dict] = []
            self.app_url: str | None = None  # where "opening the app in the admin" sends the browser
            for held in getattr(self, "holds", []):
                held.release()  # nobody stays stuck across a reset
            self.holds: list[Hold] = []

    def admin_app_launch(self, domain: str) -> str | None:
        """What the admin does when the merchant opens the app: the app URL with embedded params."""
        if not self.app_url:
            return None
        host = base64.b64encode(f"admin.shopify.com/store/{domain.split('.')[0]}".encode()).decode().rstrip("=")
        params = {"embedded": "1", "host": host, "id_token": self.session_token(domain),
                  "locale": "en", "session": uuid.uuid4().hex, "shop": domain, "timestamp": str(int(time.time()))}
        params["hmac"] = query_hmac(params, self.api_secret)
        return f"{self.app_url.rstrip('/')}/?{urlencode(params)}"

    def set_token_lifetimes(self, access_ttl: int | None = None, refresh_ttl: int | None = None) -> None:
        with self.lock:
            if access_ttl is not None:
                self.access_ttl = int(access_ttl)
            if refresh_ttl is not None:
                self.refresh_ttl = int(refresh_ttl)

    def set_rate_limits(self, bucket_max: float | None = None, restore_rate: float | None = None) -> None:
        """The GraphQL cost bucket: its size and how many points per second flow back."""
        with self.lock:
            if bucket_max is not None:
                self.bucket_max = float(bucket_max)
            if restore_rate is not None:
                self.restore_rate = float(restore_rate)
            self.buckets.clear()

    # -- shops and orders ------------------------------------------------------------------------
    def ensure_shop(self, domain: str, **info) -> SandboxShop:
        domain = domain.lower()
        if not SHOP_RE.match(domain):
            raise ValueError(f"not a myshopify.com domain: {domain!r}")
        with self.lock:
            shop = self.shops.get(domain)
            if shop is None:
                handle = domain.split(".")[0]
                shop = SandboxShop(domain=domain, name=handle.replace("-", " ").title(), email=f"owner@{domain}",
                                   id=len(self.shops) + 1000)
                self.shops[domain] = shop
            for key in ("name", "email", "currency", "timezone", "country"):
                if info.get(key) is not None:
                    setattr(shop, key, info[key])
            return shop

    def put_order(self, domain: str, order: dict) -> dict:
        """Store (or replace) a REST-shaped order; the GraphQL endpoint renders it as an Order node."""
        if order.get("id") is None:
            raise ValueError("order needs an id")
        with self.lock:
            shop = self.ensure_shop(domain)
            stored = json.loads(json.dumps(order))
            stored.setdefault("currency", shop.currency)
            stored.setdefault("created_at", stored.get("processed_at") or _now_text())
            stored.setdefault("processed_at", stored["created_at"])
            stored.setdefault("updated_at", stored["created_at"])
            shop.orders[int(order["id"])] = stored
            return stored

    def put_payout(self, domain: str, payout: dict, transactions: list[dict] = (), seal: bool = True) -> dict:
        """Store a Shopify Payments payout with its balance transactions (payout_id set for them)."""
        with self.lock:
            book = self.ensure_shop(domain).payouts
            stored = book.put_payout(payout)
            for txn in transactions:
                book.put_transaction(dict(txn, payout_id=stored["id"]))
            if seal:
                book.seal(stored["id"])
            return stored

    def set_payout_status(self, domain: str, payout_id, status: str) -> dict:
        with self.lock:
            payout = self.ensure_shop(domain).payouts.payouts[int(payout_id)]
            payout["status"] = status
            return payout

    def payout_scenario(self, domain: str, orders: list[dict], **options) -> dict:
        """The standard payouts over orders (see shopify_payouts.build_scenario)."""
        with self.lock:
            return build_scenario(self.ensure_shop(domain).payouts, orders, **options)

    def delete_order(self, domain: str, order_id) -> bool:
        with self.lock:
            shop = self.shops.get(domain.lower())
            return bool(shop and shop.orders.pop(int(order_id), None))

    # -- tokens ----------------------------------------------------------------------------------
    def session_token(self, domain: str, *, user_id: str = "42", expires_in: int = 60, secret: str | None = None,
                      audience: str | None = None, dest: str | None = None, issued_offset: int = 0) -> str:
        """An App Bridge session token (id_token) for the shop, signed like Shopify signs it."""
        self.ensure_shop(domain)
        now = int(time.time()) + issued_offset
        claims = {
            "iss": f"https://{domain}/admin",
            "dest": dest or f"https://{domain}",
            "aud": audience or self.api_key,
            "sub": user_id,
            "exp": now + expires_in,
            "nbf": now,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "sid": uuid.uuid4().hex,
        }
        return jwt.encode(claims, secret or self.api_secret, algorithm="HS256")

    def _issue(self, domain: str, scope: str, expiring: bool) -> dict:
        now = time.time()
        access = "shpat_" + secrets.token_hex(16)
        out = {"access_token": access, "scope": scope}
        if expiring:
            refresh = "shprt_" + secrets.token_hex(24)
            self.access_tokens[access] = {"shop": domain, "expires_at": now + self.access_ttl, "scope": scope}
            self.refresh_tokens[refresh] = {"shop": domain, "expires_at": now + self.refresh_ttl, "scope": scope}
            out.update(expires_in=self.access_ttl, refresh_token=refresh, refresh_token_expires_in=self.refresh_ttl)
        else:
            self.access_tokens[access] = {"shop": domain, "expires_at": None, "scope": scope}
        return out

    def revoke(self, domain: str) -> int:
        """Invalidate every access and refresh token of the shop (what an uninstall does)."""
        with self.lock:
            dead = [t for t, v in self.access_tokens.items() if v["shop"] == domain]
            dead_refresh = [t for t, v in self.refresh_tokens.items() if v["shop"] == domain]
            for t in dead:
                del self.access_tokens[t]
            for t in dead_refresh:
                del self.refresh_tokens[t]
            return len(dead) + len(dead_refresh)

    def expire_access_tokens(self, domain: str) -> None:
        with self.lock:
            for value in self.access_tokens.values():
                if value["shop"] == domain:
                    value["expires_at"] = time.time() - 1

    def token_shop(self, token: str | None) -> str | None:
        """The shop a valid, unexpired access token belongs to."""
        with self.lock:
            entry = self.access_tokens.get(token or "")
            if entry is None or (entry["expires_at"] is not None and entry["expires_at"] <= time.time()):
                return None
            return entry["shop"]

    def access_token_request(self, domain: str, params: dict) -> tuple[dict, int]:
        """POST /admin/oauth/access_token: code grant, token exchange or refresh-token grant."""
        if params.get("client_id") != self.api_key or not hmac.compare_digest(
                str(params.get("client_secret") or ""), self.api_secret):
            return {"error": "invalid_client", "error_description": "Client credentials are invalid"}, 401
        grant = params.get("grant_type") or "authorization_code"
        expiring = str(params.get("expiring", "0")) == "1"
        with self.lock:
            if grant == TOKEN_EXCHANGE:
                return self._token_exchange(domain, params, expiring)
            if grant == "refresh_token":
                return self._refresh(domain, params)
            if grant == "authorization_code" or "code" in params:
                code = self.codes.pop(params.get("code") or "", None)
                if code is None or code["shop"] != domain or code["expires_at"] < time.time():
                    return {"error": "invalid_request",
                            "error_description": "The authorization code was not found or was already used"}, 400
                self.stats["code_grants"] += 1
                return self._issue(domain, code["scope"], expiring), 200
        return {"error": "unsupported_grant_type"}, 400

    def _token_exchange(self, domain: str, params: dict, expiring: bool) -> tuple[dict, int]:
        if params.get("subject_token_type") != ID_TOKEN_TYPE:
            return {"error": "invalid_request", "error_description": "subject_token_type must be id_token"}, 400
        if params.get("requested_token_type") not in (OFFLINE_TOKEN_TYPE, ONLINE_TOKEN_TYPE):
            return {"error": "invalid_request", "error_description": "unsupported requested_token_type"}, 400
        try:
            claims = jwt.decode(params.get("subject_token") or "", self.api_secret, algorithms=["HS256"],
                                audience=self.api_key, leeway=10)
        except jwt.PyJWTError as exc:
            return {"error": "invalid_subject_token", "error_description": str(exc)}, 400
        if urlparse(str(claims.get("dest", ""))).hostname != domain:
            return {"error": "invalid_subject_token", "error_description": "token is for another shop"}, 400
        self.ensure_shop(domain)
        self.stats["token_exchanges"] += 1
        return self._issue(domain, self.default_scope, expiring), 200

    def _refresh(self, domain: str, params: dict) -> tuple[dict, int]:
        # Rotation: a refresh token works once; the old one is invalid from then on.
        entry = self.refresh_tokens.pop(params.get("refresh_token") or "", None)
        if entry is None or entry["shop"] != domain or entry["expires_at"] <= time.time():
            self.stats["refresh_failures"] += 1
            return {"error": "invalid_grant",
                    "error_description": "The refresh token is invalid, expired or already used"}, 400
        self.stats["refreshes"] += 1
        return self._issue(domain, entry["scope"], True), 200

    default_scope = ("read_orders,read_all_orders,read_customers,read_products,read_fulfillments,"
                     "read_shopify_payments_payouts")

    def authorize(self, domain: str, params: dict) -> tuple[str | None, str | None]:
        """Approve an install at once; returns (redirect URL, error)."""
        if params.get("client_id") != self.api_key:
            return None, "unknown client_id"
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return None, "redirect_uri is required"
        self.ensure_shop(domain)
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = {"shop": domain, "scope": params.get("scope") or self.default_scope,
                                "expires_at": time.time() + 600}
        host = base64.b64encode(f"admin.shopify.com/store/{domain.split('.')[0]}".encode()).decode().rstrip("=")
        back = {"code": code, "host": host, "shop": domain, "state": params.get("state", ""),
                "timestamp": str(int(time.time()))}
        back["hmac"] = query_hmac(back, self.api_secret)
        sep = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{sep}{urlencode(back)}", None

    # -- GraphQL ---------------------------------------------------------------------------------
    def throttle(self, domain: str, count: int = 1) -> None:
        """Answer the shop's next `count` GraphQL calls with a THROTTLED error."""
        with self.lock:
            self.throttle_next[domain] = self.throttle_next.get(domain, 0) + count

    def hold(self, domain: str, root: str = "order", count: int = 1) -> Hold:
        """Hold the answers of the shop's next `count` GraphQL reads of `root` until released."""
        held = Hold(domain=domain.lower(), root=root, count=int(count))
        with self.lock:
            self.holds.append(held)
        return held

    def release_hold(self, hold_id: str) -> bool:
        with self.lock:
            found = [h for h in self.holds if h.id == hold_id]
        for held in found:
            held.release()
        return bool(found)

    def wait_if_held(self, domain: str, body: dict) -> None:
        """Called after a read is answered, before the answer is sent: a held read waits here (outside
        the state lock, so other reads and writes go on meanwhile)."""
        try:
            root, _args = _root_field(body.get("query") or "", body.get("variables") or {})
        except ValueError:
            return
        with self.lock:
            held = next((h for h in self.holds if h.domain == domain and h.root == root and h.count > 0), None)
            if held is not None:
                held.count -= 1
        if held is not None:
            held.arrived.set()
            held.released.wait(HOLD_MAX_SECONDS)

    def _bucket(self, domain: str, cost: float) -> tuple[bool, float]:
        now = time.monotonic()
        available, at = self.buckets.get(domain, (self.bucket_max, now))
        available = min(self.bucket_max, available + (now - at) * self.restore_rate)
        forced = self.throttle_next.get(domain, 0)
        if forced:
            self.throttle_next[domain] = forced - 1
            self.buckets[domain] = (available, now)
            return False, min(available, max(0.0, cost - 1))
        if cost > available:
            self.buckets[domain] = (available, now)
            return False, available
        self.buckets[domain] = (available - cost, now)
        return True, available - cost

    def served_version(self, asked: str) -> str:
        """The version Shopify answers with: the one asked for while supported, else the oldest supported."""
        today = api_versions.today_utc()
        return asked if api_versions.is_supported(asked, today) else api_versions.oldest_supported(today)

    def graphql(self, domain: str, token: str | None, body: dict,
                version: str = SHOPIFY_API_VERSION) -> tuple[dict, int]:
        with self.lock:
            if self.token_shop(token) != domain:
                self.stats["graphql_unauthorized"] += 1
                return {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401
            self.stats["graphql_calls"] += 1
            shop = self.shops[domain]
            query = body.get("query") or ""
            variables = body.get("variables") or {}
            try:
                root, args = _root_field(query, variables)
            except ValueError as exc:
                return {"errors": [{"message": str(exc), "extensions": {"code": "PARSE_ERROR"}}]}, 200
            try:
                requested = requested_cost(query, variables)
            except (ValueError, IndexError) as exc:
                return {"errors": [{"message": f"syntax error: {exc}", "extensions": {"code": "PARSE_ERROR"}}]}, 200
            if requested > MAX_QUERY_COST:
                return {"errors": [{"message": f"Query cost is {requested}, which exceeds the single query max cost "
                                               f"limit ({MAX_QUERY_COST}).",
                                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                                   "maxCost": MAX_QUERY_COST}}]}, 200
            ok, available = self._bucket(domain, requested)
            self.graphql_log.append({"shop": domain, "root": root, "args": args, "requested_cost": requested,
                                     "version": version})
            if not ok:
                self.stats["throttled"] += 1
                return {"errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                    "extensions": {"cost": self._cost(requested, 0, available)}}, 200
            window = _line_items_window(query, variables)
            if root == "shop":
                data = {"shop": {
                    "id": f"gid://shopify/Shop/{shop.id}", "name": shop.name, "email": shop.email,
                    "myshopifyDomain": shop.domain, "currencyCode": shop.currency,
                    "ianaTimezone": shop.timezone, "billingAddress": {"countryCodeV2": shop.country},
                }}
                if version >= "2026-01":  # shopAddress replaces the deprecated billingAddress from 2026-01
                    data["shop"]["shopAddress"] = {"countryCodeV2": shop.country}
                actual = 1
            elif root == "order":
                order_id = _legacy_id(args.get("id"))
                order = shop.orders.get(order_id) if order_id is not None else None
                data = {"order": render_order(order, shop.currency, *window, version=version) if order else None}
                actual = _actual_cost(order)
            elif root == "refund":
                refund_id = _legacy_id(args.get("id"))
                found = None
                for order in shop.orders.values():
                    for refund in order.get("refunds") or []:
                        if refund_id is not None and int(refund.get("id") or 0) == refund_id:
                            found = render_order(dict(order, refunds=[refund]), shop.currency)["refunds"][0]
                data = {"refund": found}
                actual = 10 if found else 1
            elif root == "shopifyPaymentsAccount":
                scopes = (self.access_tokens.get(token or "") or {}).get("scope") or ""
                if "read_shopify_payments_payouts" not in scopes.split(",") and \
                        "shopify_payments" not in scopes.split(","):
                    return {"errors": [{"message": "Access denied for shopifyPaymentsAccount field. Required access: "
                                                   "`read_shopify_payments_payouts` access scope.",
                                        "extensions": {"code": "ACCESS_DENIED"}, "path": ["shopifyPaymentsAccount"]}],
                            "data": None}, 200
                try:
                    account, actual = shop.payouts.answer(query, variables)
                except ValueError as exc:
                    return {"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}, 200
                data = {"shopifyPaymentsAccount": account}
            elif root == "orders":
                try:
                    data, count = self._orders_page(shop, args, window, version)
                except ValueError as exc:
                    return {"errors": [{"message": str(exc), "extensions": {"code": "BAD_REQUEST"}}]}, 200
                actual = 2 + count
            else:
                return {"errors": [{"message": f"Field '{root}' doesn't exist on type 'QueryRoot'",
                                    "extensions": {"code": "undefinedField"}}]}, 200
            actual = min(actual, requested)
            # Refund what was requested but not used, as Shopify does.
            left, at = self.buckets[domain]
            self.buckets[domain] = (min(self.bucket_max, left + requested - actual), at)
            return {"data": data, "extensions": {"cost": self._cost(requested, actual, self.buckets[domain][0])}}, 200

    def _cost(self, requested: float, actual: float, available: float) -> dict:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": self.bucket_max, "currentlyAvailable": round(available, 1),
                                   "restoreRate": self.restore_rate}}

    def _orders_page(self, shop: SandboxShop, args: dict, window: tuple = (None, None),
                     version: str | None = None) -> tuple[dict, int]:
        first = int(args.get("first") or 0)
        if first < 1 or first > 250:
            raise ValueError("first must be between 1 and 250")
        sort_key = (args.get("sortKey") or "ID").upper()
        sort_field = {"PROCESSED_AT": "processed_at", "CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}.get(sort_key)
        filters = parse_search(args.get("query") or "")
        rows = []
        for order in shop.orders.values():
            if all(_matches(order, f) for f in filters):
                key = parse_time(order[sort_field]).timestamp() if sort_field else 0
                rows.append(((key, int(order["id"])), order))
        orders, size = connection_page(rows, args, lambda o: render_order(o, shop.currency, *window, version=version))
        return {"orders": orders}, size

    # -- webhooks --------------------------------------------------------------------------------
    def build_webhook(self, shop: str, topic: str, payload, *, webhook_id: str | None = None,
                      event_id: str | None = None, triggered_at: str | None = None, api_version: str = SHOPIFY_API_VERSION,
                      secret: str | None = None) -> dict:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": webhook_hmac(body, secret or self.api_secret),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            # Shopify stamps the event with sub-second precision (it sends nanoseconds).
            "X-Shopify-Triggered-At": triggered_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "X-Shopify-API-Version": api_version,
        }
        return {"headers": headers, "body": body}

    def deliver(self, target: str, webhook: dict, timeout: float = 10.0) -> int:
        try:
            resp = requests.post(target, data=webhook["body"], headers=webhook["headers"], timeout=timeout)
            status = resp.status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.webhooks_sent.append({"webhook_id": webhook["headers"]["X-Shopify-Webhook-Id"],
                                       "topic": webhook["headers"]["X-Shopify-Topic"], "status": status,
                                       "target": target})
        return status

    def send_webhook(self, target: str, shop: str, topic: str, payload, *, duplicate: int = 0, **options) -> list[dict]:
        """Sign and POST one webhook, then re-send the identical delivery `duplicate` more times."""
        webhook = self.build_webhook(shop, topic, payload, **options)
        return [{"webhook_id": webhook["headers"]["X-Shopify-Webhook-Id"], "status": self.deliver(target, webhook)}
                for _ in range(1 + int(duplicate))]

    def send_batch(self, target: str, deliveries: list[dict], *, order: str = "reverse", seed: int = 0,
                   duplicate: int = 0) -> list[dict]:
        """Sign a batch with increasing Triggered-At times and deliver it out of order (reverse or shuffle)."""
        base = time.time()
        built = []
        for i, d in enumerate(deliveries):
            stamp = datetime.fromtimestamp(base + i, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            built.append(self.build_webhook(d["shop"], d["topic"], d["payload"], webhook_id=d.get("webhook_id"),
                                            event_id=d.get("event_id"), triggered_at=d.get("triggered_at") or stamp))
        if order == "reverse":
            built.reverse()
        elif order == "shuffle":
            random.Random(seed).shuffle(built)
        sends = [w for w in built for _ in range(1 + int(duplicate))]
        return [{"webhook_id": w["headers"]["X-Shopify-Webhook-Id"], "status": self.deliver(target, w)} for w in sends]


# -- query helpers -------------------------------------------------------------------------------
def _root_field(query: str, variables: dict) -> tuple[str, dict]:
    """The first root field of the operation and its arguments (variables resolved)."""
    start = query.find("{")
    if start < 0:
        raise ValueError("syntax error: no selection set")
    match = re.match(r"\s*(?:\w+\s*:\s*)?(\w+)\s*(\(([^)]*)\))?", query[start + 1:])
    if not match:
        raise ValueError("syntax error: no root field")
    return match.group(1), field_arguments(match.group(3), variables)


def _line_items_window(query: str, variables: dict) -> tuple[int | None, str | None]:
    """`first`/`after` of a nested lineItems(...) selection, so long orders page like on Shopify."""
    match = re.search(r"lineItems\s*\(([^)]*)\)", query)
    if not match:
        return None, None
    args = field_arguments(match.group(1), variables)
    first = args.get("first")
    return (int(first) if first is not None else None), args.get("after")


def _actual_cost(order: dict | None) -> int:
    """What a rendered order really cost: about one point per object returned."""
    if not order:
        return 1
    parts = (order.get("line_items"), order.get("shipping_lines"), order.get("discount_applications"),
             order.get("transactions"), order.get("refunds"))
    return 20 + 12 * sum(len(p or []) for p in parts)


def _legacy_id(value) -> int | None:
    if value is None:
        return None
    text = str(value).rsplit("/", 1)[-1]
    return int(text) if text.isdigit() else None


def _matches(order: dict, term: tuple[str, str, str]) -> bool:
    name, op, value = term
    if name in ("processed_at", "created_at", "updated_at"):
        have = parse_time(order.get(name) or order["created_at"])
        want = parse_time(value)
        return {"=": have.date() == want.date(), ">": have > want, ">=": have >= want,
                "<": have < want, "<=": have <= want}[op]
    if name == "id":
        return str(order["id"]) == value.rsplit("/", 1)[-1]
    if name == "name":
        return str(order.get("name", "")).lstrip("#") == value.lstrip("#")
    if name == "status":
        if value == "any":
            return True
        return (value == "cancelled") == bool(order.get("cancelled_at"))
    if name == "financial_status":
        return (order.get("financial_status") or "") == value
    return True  # unknown filters are ignored by Shopify's search too


def _now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _params() -> dict:
    """Token endpoint parameters from a JSON or form body (Shopify accepts both)."""
    if request.is_json:
        return {k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                for k, v in (request.get_json(silent=True) or {}).items()}
    return request.form.to_dict()


# -- the Flask app --------------------------------------------------------------------------------
def create_shopify_sandbox(api_key: str, api_secret: str) -> Flask:
    """The sandbox WSGI app; its state is `app.sandbox` (a ShopifySandboxState)."""
    app = Flask("shopify_sandbox")
    state = ShopifySandboxState(api_key, api_secret)
    app.sandbox = state  # type: ignore[attr-defined]

    def shop_or_404(shop: str):
        shop = shop.lower()
        if not SHOP_RE.match(shop):
            return None
        return shop

    @app.get("/<shop>/admin/oauth/authorize")
    def authorize(shop):
        domain = shop_or_404(shop)
        if domain is None:
            return "Unknown shop", 404
        url, error = state.authorize(domain, request.args.to_dict())
        if error:
            return f"Oauth error invalid_request: {error}", 400
        return redirect(url, code=302)

    @app.get("/<shop>/admin/apps/<client_id>")
    def open_app(shop, client_id):
        domain = shop_or_404(shop)
        if domain is None or client_id != state.api_key:
            return "App not found", 404
        url = state.admin_app_launch(domain)
        if url is None:
            return f"<!doctype html><title>Shopify admin</title><p>{domain} opened app {client_id}</p>", 200
        return redirect(url, code=302)

    @app.post("/<shop>/admin/oauth/access_token")
    def access_token(shop):
        domain = shop_or_404(shop)
        if domain is None:
            return jsonify(error="shop_not_found"), 404
        body, status = state.access_token_request(domain, _params())
        return jsonify(body), status

    @app.post("/<shop>/admin/api/<version>/graphql.json")
    def graphql(shop, version):
        domain = shop_or_404(shop)
        if domain is None or domain not in state.shops:
            return jsonify(errors="Not Found"), 404
        # Like Shopify: an unsupported version is answered silently with the oldest supported one,
        # and the response header names the version that answered.
        served = state.served_version(version)
        asked = request.get_json(silent=True) or {}
        body, status = state.graphql(domain, request.headers.get("X-Shopify-Access-Token"), asked, version=served)
        if status == 200 and isinstance(asked, dict):
            state.wait_if_held(domain, asked)
        resp = jsonify(body)
        resp.status_code = status
        resp.headers["X-Shopify-API-Version"] = served
        return resp

    # -- control API --------------------------------------------------------------------------
    @app.post("/_sandbox/reset")
    def reset():
        state.reset()
        return jsonify(ok=True)

    @app.get("/_sandbox/shops")
    def list_shops():
        with state.lock:
            return jsonify(shops=[s.info() for s in state.shops.values()])

    @app.post("/_sandbox/shops")
    def create_shop():
        data = request.get_json(force=True)
        try:
            shop = state.ensure_shop(data["domain"], **{k: data.get(k) for k in
                                                          ("name", "email", "currency", "timezone", "country")})
        except (KeyError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(shop.info()), 201

    @app.put("/_sandbox/shops/<shop>/orders")
    def put_orders(shop):
        data = request.get_json(force=True)
        orders = data if isinstance(data, list) else data.get("orders", [data])
        try:
            stored = [state.put_order(shop, o) for o in orders]
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(count=len(stored))

    @app.put("/_sandbox/shops/<shop>/payouts")
    def put_payouts(shop):
        """[{"payout": {...}, "transactions": [...]}] or {"scenario": {"order_ids": [...]}}."""
        data = request.get_json(force=True)
        try:
            if isinstance(data, dict) and "scenario" in data:
                with state.lock:
                    s = state.ensure_shop(shop)
                    chosen = [s.orders[int(i)] for i in data["scenario"].get("order_ids") or list(s.orders)]
                return jsonify(state.payout_scenario(shop, chosen))
            items = data if isinstance(data, list) else [data]
            stored = [state.put_payout(shop, item["payout"], item.get("transactions") or []) for item in items]
        except (KeyError, ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(payouts=[p["id"] for p in stored])

    @app.get("/_sandbox/shops/<shop>/orders")
    def get_orders(shop):
        with state.lock:
            s = state.shops.get(shop.lower())
            return jsonify(orders=list(s.orders.values()) if s else [])

    @app.post("/_sandbox/shops/<shop>/session_token")
    def mint_session_token(shop):
        data = request.get_json(silent=True) or {}
        try:
            token = state.session_token(shop.lower(), user_id=str(data.get("sub", "42")),
                                        expires_in=int(data.get("expires_in", 60)))
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(session_token=token)

    @app.post("/_sandbox/shops/<shop>/revoke")
    def revoke(shop):
        return jsonify(revoked=state.revoke(shop.lower()))

    @app.post("/_sandbox/shops/<shop>/uninstall")
    def uninstall(shop):
        """The merchant uninstalls: tokens die at once, then app/uninstalled is sent to `target` if given."""
        domain = shop.lower()
        revoked = state.revoke(domain)
        target = (request.get_json(silent=True) or {}).get("target")
        results = []
        if target and domain in state.shops:
            s = state.shops[domain]
            results = state.send_webhook(target, domain, "app/uninstalled",
                                         {"id": s.id, "name": s.name, "domain": domain, "myshopify_domain": domain,
                                          "email": s.email, "currency": s.currency, "iana_timezone": s.timezone})
        return jsonify(revoked=revoked, results=results)

    @app.post("/_sandbox/shops/<shop>/throttle")
    def throttle(shop):
        state.throttle(shop.lower(), int((request.get_json(silent=True) or {}).get("count", 1)))
        return jsonify(ok=True)

    @app.post("/_sandbox/shops/<shop>/hold")
    def hold(shop):
        data = request.get_json(silent=True) or {}
        held = state.hold(shop.lower(), str(data.get("root") or "order"), int(data.get("count", 1)))
        return jsonify(hold=held.id)

    @app.post("/_sandbox/holds/<hold_id>/release")
    def release(hold_id):
        return (jsonify(ok=True), 200) if state.release_hold(hold_id) else (jsonify(error="no such hold"), 404)

    @app.put("/_sandbox/app_url")
    def set_app_url():
        state.app_url = (request.get_json(force=True) or {}).get("app_url")
        return jsonify(app_url=state.app_url)

    @app.put("/_sandbox/rate_limits")
    def rate_limits():
        data = request.get_json(force=True)
        state.set_rate_limits(data.get("bucket_max"), data.get("restore_rate"))
        return jsonify(bucket_max=state.bucket_max, restore_rate=state.restore_rate)

    @app.put("/_sandbox/token_lifetimes")
    def lifetimes():
        data = request.get_json(force=True)
        state.set_token_lifetimes(data.get("access_ttl"), data.get("refresh_ttl"))
        return jsonify(access_ttl=state.access_ttl, refresh_ttl=state.refresh_ttl)

    @app.get("/_sandbox/stats")
    def stats():
        with state.lock:
            return jsonify(dict(state.stats, webhooks_sent=len(state.webhooks_sent)))

    @app.post("/_sandbox/webhooks")
    def send_webhook():
        data = request.get_json(force=True)
        options = {k: data[k] for k in ("webhook_id", "event_id", "triggered_at", "api_version") if data.get(k)}
        results = state.send_webhook(data["target"], data["shop"], data["topic"], data.get("payload", {}),
                                     duplicate=int(data.get("duplicate", 0)), **options)
        return jsonify(results=results)

    @app.post("/_sandbox/webhooks/batch")
    def send_batch():
        data = request.get_json(force=True)
        results = state.send_batch(data["target"], data["deliveries"], order=data.get("order", "reverse"),
                                   seed=int(data.get("seed", 0)), duplicate=int(data.get("duplicate", 0)))
        return jsonify(results=results)

    return app
