"""preview_document and the `ecomflux preview ORDER.json` command: a dry run that posts nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from ecomflux_app.cli import cli
from ecomflux_app.translate.jsonout import dumps, loads
from ecomflux_app.translate.order import ShopFacts
from ecomflux_app.translate.preview import preview_document
from ecomflux_app.translate.settings import SyncSettings

ORDERS = Path(__file__).parent / "golden" / "orders"


def _order(name):
    return loads((ORDERS / f"{name}.json").read_text())


def test_preview_uses_placeholder_refs_and_reports_balance():
    result = preview_document(_order("us_discount_code"), SyncSettings(deposit_account_id="35"),
                              ShopFacts("America/New_York", "USD"))
    assert result["ok"] is True
    doc = result["document"]
    refs = [l["SalesItemLineDetail"]["ItemRef"]["value"] for l in doc["Line"] if "SalesItemLineDetail" in l]
    assert refs == ["<item:sku:MUG-BLU>", "<item:sku:KET-01>", "SHIPPING_ITEM_ID"]
    assert doc["CustomerRef"]["value"].startswith("<customer:email:")
    assert "sam" not in doc["CustomerRef"]["value"]
    assert result["balance"] == {"expected": "88.81", "computed": "88.81", "ok": True, "reason": None}
    assert result["summary"]["discount_total"] == "8.10"


def test_preview_of_guest_uses_default_customer_and_of_bad_order_reports_the_field():
    guest = preview_document(_order("guest_pos"), SyncSettings(default_customer_id="58"))
    assert guest["document"]["CustomerRef"] == {"value": "58"}
    bad = _order("guest_pos")
    bad["line_items"][0]["quantity"] = "many"
    result = preview_document(bad, SyncSettings())
    assert result == {"ok": False, "error": "expected a whole number, got 'many'",
                      "field": "line_items[0].quantity"}


def test_preview_output_serializes_without_floats():
    result = preview_document(_order("foreign_currency_multicurrency"),
                              SyncSettings.from_values({"company": {"multicurrency": True}}))
    text = dumps(result)
    parsed = loads(text)
    assert parsed["document"]["ExchangeRate"] == Decimal("1.086957")
    assert parsed["document"]["CurrencyRef"] == {"value": "EUR"}


def test_cli_preview_prints_the_document(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["preview", str(ORDERS / "line_and_order_discounts_invoice.json"),
                              "--document-type", "invoice"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["document_type"] == "Invoice"
    assert out["document"]["DocNumber"] == "1002"
    assert "DueDate" in out["document"]


def test_cli_preview_settings_file_and_exit_codes(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"deposit_account_id": "35", "doc_number_prefix": "WEB-"}))
    runner = CliRunner()
    res = runner.invoke(cli, ["preview", str(ORDERS / "us_discount_code.json"), "--settings", str(settings)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["document"]["DocNumber"] == "WEB-1001"
    assert out["document"]["DepositToAccountRef"] == {"value": "35"}

    res = runner.invoke(cli, ["preview", str(ORDERS / "unbalanced_total.json")])
    assert res.exit_code == 1
    assert json.loads(res.output)["balance"]["ok"] is False

    settings.write_text(json.dumps({"document_type": "estimate"}))
    res = runner.invoke(cli, ["preview", str(ORDERS / "us_discount_code.json"), "--settings", str(settings)])
    assert res.exit_code == 2
    assert "document_type" in json.loads(res.output)["settings_errors"]


def test_cli_preview_accepts_a_rest_wrapped_order(tmp_path):
    wrapped = tmp_path / "order.json"
    wrapped.write_text(json.dumps({"order": json.loads((ORDERS / "tips.json").read_text())}))
    res = CliRunner().invoke(cli, ["preview", str(wrapped)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["summary"]["tips_total"] == "8.00"
