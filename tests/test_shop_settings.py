"""One function builds a shop's effective settings: posting, the page's Preview, the settings API and the CLI agree."""

from __future__ import annotations

import json

from ecomflux_app.cli import cli
from ecomflux_app.models import QboConnection
from tests.api_fixtures import bearer  # noqa: F401
from tests.fixtures_flow import connect_shop_to_company
from tests.helpers import drain, post_webhook
from tests.nonus_orders import corpus, country_of

DOMAIN = "ca-shop.myshopify.com"


def _ca_shop_connected_before_its_company_was_read(install_shop, intuit_sandbox):
    """A CA shop linked to a CA company whose country and currency the connection does not hold (yet)."""
    shop = install_shop(DOMAIN, name="CA Shop", currency="CAD", timezone="America/Toronto", country="CA")
    realm = intuit_sandbox.create_company(name="CA Ltd", country="CA")
    connect_shop_to_company(shop, intuit_sandbox, realm)
    QboConnection.update(company_country=None, home_currency=None).execute()


def _seen(settings, facts) -> dict:
    return {"company": settings.company.to_values(), "tax_setup": settings.company.tax_setup is not None,
            "settings": {k: v for k, v in settings.to_values().items() if k != "company"},
            "shop": (facts.timezone, facts.currency)}


def test_preview_settings_api_and_cli_see_the_settings_posting_uses_for_a_non_us_shop(
        app, client, redis_conn, install_shop, intuit_sandbox, shopify_sandbox, bearer, monkeypatch):  # noqa: F811
    import ecomflux_app.sync.orders as orders_module
    import ecomflux_app.cli as cli_module
    import ecomflux_app.web.api as api_module

    _ca_shop_connected_before_its_company_was_read(install_shop, intuit_sandbox)
    order = next(o for n, o in corpus().items() if country_of(n) == "CA" and "unmapped" not in n)
    seen: dict[str, dict] = {}

    def spy(name, real):
        def wrapper(order, settings, facts, *args, **kwargs):
            seen.setdefault(name, _seen(settings, facts))
            return real(order, settings, facts, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(orders_module, "plan_order", spy("posting", orders_module.plan_order))
    for user in (api_module, cli_module):  # Preview on the page and in the CLI
        monkeypatch.setattr(user, "preview_document", spy("preview", user.preview_document))

    assert post_webhook(client, "orders/fulfilled", DOMAIN, order).status_code == 200
    drain(redis_conn)
    assert client.post("/api/preview", json={"order": order}, headers=bearer(DOMAIN)).status_code == 200
    api_company = client.get("/api/settings", headers=bearer(DOMAIN)).json["company"]

    order_file = app.instance_path + "/ca-order.json"
    with open(order_file, "w") as out:
        json.dump(order, out)
    seen_before_cli = seen.pop("preview")
    result = app.test_cli_runner().invoke(cli, ["preview", order_file, "--shop", DOMAIN])
    assert result.exit_code in (0, 1), result.output  # 1: the document does not balance (not this order)

    assert seen["posting"]["company"]["country"] == "CA" and seen["posting"]["company"]["home_currency"] == "CAD"
    assert seen_before_cli == seen["posting"]
    assert seen["preview"] == seen["posting"]  # the CLI's preview of the shop
    assert api_company == seen["posting"]["company"]
