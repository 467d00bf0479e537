"""Response headers: per-shop frame-ancestors CSP on embedded HTML; staff pages never framed, cached or scripted inline."""

from __future__ import annotations

import re

from flask import Flask, g, request

SHOP_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
# On every response, the webhook intake's included (it answers before Flask, web/webhooks.py).
BASE_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "strict-origin-when-cross-origin"))
# The support console runs only its own static script and stylesheet: no inline code, no other origin.
SUPPORT_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def valid_shop_domain(shop: str | None) -> bool:
    return bool(shop) and bool(SHOP_DOMAIN_RE.match(shop))


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        for name, value in BASE_HEADERS:
            response.headers.setdefault(name, value)
        if request.path.startswith("/support"):
            # Console pages show personal data (the reveal page): never kept by a browser or proxy cache.
            response.headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html":
            if request.path.startswith("/support"):
                response.headers["Content-Security-Policy"] = SUPPORT_CSP
                response.headers["X-Frame-Options"] = "DENY"
            else:
                shop = getattr(g, "shop_domain", None) or request.args.get("shop", "").lower()
                ancestors = "https://admin.shopify.com"
                if valid_shop_domain(shop):
                    ancestors = f"https://{shop} {ancestors}"
                response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors};"
        return response
