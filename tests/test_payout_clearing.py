"""Money through Shopify Payments goes into and out of the clearing account; other gateways keep their accounts."""

from __future__ import annotations

from ecomflux_app.sync.refunds import refund_account
from ecomflux_app.translate.order import plan_order
from ecomflux_app.translate.payment import deposit_account_for
from ecomflux_app.translate.settings import SyncSettings
from tests.after_sale_helpers import make_refund
from tests.fixtures_flow import simple_order

SETTINGS = SyncSettings.from_values({
    "deposit_account_id": "35", "refund_account_id": "36", "deposit_account_map": {"paypal": "37"},
    "payout_clearing_account_id": "40", "payout_bank_account_id": "41", "payout_fee_account_id": "42"})


def test_sales_receipts_deposit_to_clearing_only_for_shopify_payments():
    assert plan_order(simple_order(), SETTINGS).deposit_account_id == "40"
    paypal = dict(simple_order(), payment_gateway_names=["paypal"])
    assert plan_order(paypal, SETTINGS).deposit_account_id == "35"
    manual = dict(simple_order(), payment_gateway_names=["manual"])
    assert plan_order(manual, SETTINGS).deposit_account_id == "35"
    unset = SyncSettings.from_values({"deposit_account_id": "35"})
    assert plan_order(simple_order(), unset).deposit_account_id == "35"  # no payouts set up: as before


def test_invoice_payments_and_refunds_follow_the_gateway():
    assert deposit_account_for(SETTINGS, "shopify_payments") == "40"
    assert deposit_account_for(SETTINGS, "paypal") == "37"
    assert deposit_account_for(SETTINGS, "gift_card") == "35"
    refund = make_refund(simple_order(), qty=1)
    assert refund_account(None, SETTINGS, refund) == "40"
    refund["transactions"][0]["gateway"] = "paypal"
    assert refund_account(None, SETTINGS, refund) == "36"


def test_payout_settings_parse_and_validate():
    assert SETTINGS.payouts_enabled and SETTINGS.validate() == {}
    values = SETTINGS.to_values()
    assert SyncSettings.from_values(values) == SETTINGS
    errors = SyncSettings.validate_values({"payout_fee_account_id": "42", "payouts_start_date": "soon"})
    assert set(errors) == {"payout_clearing_account_id", "payout_bank_account_id", "payouts_start_date"}
    assert not SyncSettings.from_values({"payout_fee_account_id": "42"}).payouts_enabled
