"""The Tax codes card and per-line tax codes in Preview, for a company outside the US (browser)."""

from __future__ import annotations

import json

import pytest

from tests.api_fixtures import SHOP_A, add_delivery, connect_qbo
from tests.browser.embedded_fixtures import screenshot
from tests.nonus_orders import corpus


@pytest.fixture
def de_shop(install_shop, db):
    from ecomflux_app.models import QboConnection, SyncRecord, utcnow
    from ecomflux_app.sandbox.intuit_server import Company
    from ecomflux_app.translate.tax_codes import TaxSetup

    shop = install_shop(SHOP_A, name="Kaffee GmbH", currency="EUR")
    conn = connect_qbo(shop)
    seeded = Company("1", "Kaffee GmbH", "DE", False, "EUR", True)
    setup = TaxSetup.from_qbo(seeded.entities["TaxCode"].values(), seeded.entities["TaxRate"].values())
    QboConnection.update(company_country="DE", home_currency="EUR", tax_setup=json.dumps(setup.to_values()),
                         tax_setup_read_at=utcnow()).where(QboConnection.id == conn.id).execute()
    order = corpus()["eu_oss_to_austria_same_rate_as_france"]  # AT and FR share 20%: two codes offered
    order["shipping_address"]["country_code"] = order["billing_address"]["country_code"] = "BE"
    for line in order["line_items"] + order["shipping_lines"]:
        for tax in line["tax_lines"]:
            tax["title"] = "VAT"  # no country in the title: AT and FR 20% are equally good
    delivery = add_delivery(shop, order, status="flagged")
    SyncRecord.create(shop=shop, source_key=f"order:{order['id']}", kind="order", order_id=str(order["id"]),
                      order_name=order["name"], status="flagged", delivery=delivery, updated_at=utcnow(),
                      reason="not posted: unmapped tax: VAT 20% on 'Kaffeemühle' has no QuickBooks tax code")
    return shop, setup


def test_tax_codes_card_offers_same_rate_codes_and_preview_names_each_lines_code(browser_page, page_url, de_shop):
    from playwright.sync_api import expect

    _shop, setup = de_shop
    page = browser_page()
    page.goto(page_url(SHOP_A))
    expect(page.locator("#app")).to_have_attribute("data-ready", "true")
    card = page.locator("#taxcodes")
    expect(card).to_be_visible()
    expect(card).to_contain_text("VAT 20%")
    select = page.get_by_label("QuickBooks tax code for VAT 20%")
    options = select.locator("option").all_inner_texts()
    assert any("OSS FR 20%" in o for o in options) and any("OSS AT 20%" in o for o in options)
    screenshot(page, "12-tax-codes")
    page.get_by_label("Order JSON").fill(json.dumps(corpus()["eu_de_domestic_inclusive"]))
    page.get_by_role("button", name="Preview document").click()
    expect(page.locator("#preview-result")).to_be_visible()
    expect(page.locator("#preview-lines tr").first).to_contain_text("19% USt (19%)")
    expect(page.locator("#preview-lines")).to_contain_text("7% USt (7%)")
