"""Response headers: per-shop frame-ancestors CSP on embedded HTML, no framing for staff pages."""

from __future__ import annotations

import re

from flask import Flask, g, request

SHOP_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
# On every response, the webhook intake's included (it answers before Flask, web/webhooks.py).
BASE_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "strict-origin-when-cross-origin"))


def valid_shop_domain(shop: str | None) -> bool:
    return bool(shop) and bool(SHOP_DOMAIN_RE.match(shop))


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        for name, value in BASE_HEADERS:
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            if request.path.startswith("/support"):
                response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
                response.headers["X-Frame-Options"] = "DENY"
            else:
                shop = getattr(g, "shop_domain", None) or request.args.get("shop", "").lower()
                ancestors = "https://admin.shopify.com"
                if valid_shop_domain(shop):
                    ancestors = f"https://{shop} {ancestors}"
                response.headers["Content-Security-Policy"] = f"frame-ancestors {ancestors};"
        return response
