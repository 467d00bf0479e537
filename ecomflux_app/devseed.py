"""Demo data for `ecomflux dev`: a shop installed through the Shopify sandbox, orders, a QBO company, staff."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .models import Shop, StaffUser
from .sandbox.demo_orders import OrderGenerator
from .shopify.session_token import verify_session_token
from .staff import create_staff
from .sync.installs import install_via_token_exchange

log = logging.getLogger(__name__)

DEMO_STAFF_EMAIL = "support@ecomflux.local"
DEMO_COMPANY = "Demo Goods LLC"


def _staff_password(instance: str) -> str:
    """The demo operator's password, generated once into instance/ (never a constant in the code)."""
    path = Path(instance) / "demo-staff.password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def seed_demo(config: dict, sandbox_apps: tuple, shop_domain: str) -> dict:
    """Idempotently seed the sandboxes and our database; returns a summary for the console."""
    shopify_app, intuit_app = sandbox_apps
    summary: dict = {}

    shopify = shopify_app.sandbox
    shopify.ensure_shop(shop_domain, name="Demo Shop", email="owner@demo-shop.example", currency="USD",
                        timezone="America/New_York", country="US")
    if not shopify.shops[shop_domain].orders:  # kept across restarts (instance/sandbox-shopify.state)
        generator = OrderGenerator(seed=11, customers=25)
        start = datetime.now(timezone.utc) - timedelta(days=7)
        for order in generator.week(30, start=start):
            shopify.put_order(shop_domain, order)
    summary["orders"] = len(shopify.shops[shop_domain].orders)
    shopify.app_url = config["APP_URL"]

    shop = Shop.get_or_none(Shop.domain == shop_domain)
    if shop is None or not shop.access_token:
        token = shopify.session_token(shop_domain)
        session = verify_session_token(token, config["SHOPIFY_API_KEY"], [config["SHOPIFY_API_SECRET"]])
        install_via_token_exchange(session)

    intuit = intuit_app.sandbox
    if not any(c.name == DEMO_COMPANY for c in intuit.companies.values()):  # kept across restarts too
        intuit.create_company(name=DEMO_COMPANY, country="US")

    password = _staff_password(config["INSTANCE_PATH"])
    if StaffUser.get_or_none(StaffUser.email == DEMO_STAFF_EMAIL) is None:
        create_staff(DEMO_STAFF_EMAIL, password, role="operator")
    summary["staff"] = f"{DEMO_STAFF_EMAIL} / password in instance/demo-staff.password"
    return summary
