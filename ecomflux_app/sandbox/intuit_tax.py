"""Non-US QBO companies in the Intuit stand-in: seeded tax codes and rates, per-rate tax, overrides, currencies.

Modelled on QBO's global tax model: a TaxCode lists one or more TaxRates (SalesTaxRateList); every
sales line carries a TaxCodeRef; QBO adds the tax per rate over the lines' net amounts and rounds
each rate's tax half up; TxnTaxDetail.TaxLine may correct a rate's amount by rounding only;
GlobalTaxCalculation says whether line amounts exclude or include tax.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
MODES = ("TaxExcluded", "TaxInclusive", "NotApplicable")

# country -> [(code name, [(rate name, percent)], taxable)]; a code without rates is out of scope.
REGIMES: dict[str, list[tuple[str, list[tuple[str, str]], bool]]] = {
    "GB": [
        ("20.0% S", [("20.0% S", "20")], True),
        ("5.0% R", [("5.0% R", "5")], True),
        ("0.0% Z", [("0.0% Z", "0")], True),
        ("Exempt", [("Exempt", "0")], False),
        ("No VAT", [], False),
    ],
    "CA": [
        ("GST", [("GST", "5")], True),
        ("HST ON", [("HST ON", "13")], True),
        ("HST NS", [("HST NS", "15")], True),
        ("GST/PST BC", [("GST", "5"), ("PST BC", "7")], True),
        ("GST/QST QC", [("GST", "5"), ("QST QC", "9.975")], True),
        ("Zero-rated", [("GST ZR", "0")], True),
        ("Exempt", [("GST EX", "0")], False),
        ("Out of scope", [], False),
    ],
    "AU": [
        ("GST", [("GST (sales)", "10")], True),
        ("GST free", [("GST free (sales)", "0")], True),
        ("Out of scope", [], False),
    ],
    "DE": [
        ("19% USt", [("USt 19%", "19")], True),
        ("7% USt", [("USt 7%", "7")], True),
        ("0% Zero-rated", [("USt 0%", "0")], True),
        ("Exempt", [("Steuerfrei", "0")], False),
        ("Out of scope", [], False),
        ("OSS FR 20%", [("OSS FR 20%", "20")], True),
        ("OSS AT 20%", [("OSS AT 20%", "20")], True),
        ("OSS NL 21%", [("OSS NL 21%", "21")], True),
    ],
    "FR": [
        ("TVA 20%", [("TVA 20%", "20")], True),
        ("TVA 10%", [("TVA 10%", "10")], True),
        ("TVA 5.5%", [("TVA 5.5%", "5.5")], True),
        ("TVA 0%", [("TVA 0%", "0")], True),
        ("Exempt", [("Exonéré", "0")], False),
        ("Out of scope", [], False),
    ],
}
HOME_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "AU": "AUD", "DE": "EUR", "FR": "EUR", "IE": "EUR",
                 "NL": "EUR", "ES": "EUR", "IT": "EUR"}
# What QBO would use for a foreign-currency transaction sent without ExchangeRate (its own daily rate:
# a stand-in figure, deliberately not Shopify's).
DEFAULT_RATES = {"USD": "0.79", "EUR": "0.86", "GBP": "1.00", "CAD": "0.57", "AUD": "0.52"}


def round_half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def seed(company, regime: list[tuple[str, list[tuple[str, str]], bool]] | None = None) -> None:
    """Add the country's TaxRates and TaxCodes (sales rate lists), plus a purchase-only code as QBO has."""
    regime = REGIMES.get(company.country, []) if regime is None else regime
    rate_ids: dict[tuple[str, str], str] = {}
    for code_name, rates, taxable in regime:
        details = []
        for order, (rate_name, percent) in enumerate(rates):
            key = (rate_name, percent)
            if key not in rate_ids:
                rate = company.add("TaxRate", {
                    "Name": rate_name, "Description": rate_name, "Active": True, "RateValue": float(Decimal(percent)),
                    "AgencyRef": {"value": "1"}, "SpecialTaxType": "ZERO_RATE" if Decimal(percent) == 0 else "NONE",
                    "DisplayType": "ReadOnly", "EffectiveTaxRate": [{"RateValue": float(Decimal(percent)),
                                                                     "EffectiveDate": "2011-01-01T00:00:00-08:00"}]})
                rate_ids[key] = rate["Id"]
            details.append({"TaxRateRef": {"value": rate_ids[key], "name": rate_name},
                             "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": order})
        company.add("TaxCode", {"Name": code_name, "Description": code_name, "Active": True, "Taxable": taxable,
                                "TaxGroup": len(details) > 1, "SalesTaxRateList": {"TaxRateDetail": details},
                                "PurchaseTaxRateList": {"TaxRateDetail": []}})
    if company.country == "GB":
        # Reverse-charge services: a purchase-only code, unusable on a sale.
        rate = company.add("TaxRate", {"Name": "20.0% ECS (purchase)", "Active": True, "RateValue": 20.0,
                                       "SpecialTaxType": "NONE"})
        company.add("TaxCode", {"Name": "20.0% ECS", "Description": "EC services", "Active": True, "Taxable": True,
                                "TaxGroup": False, "SalesTaxRateList": {"TaxRateDetail": []},
                                "PurchaseTaxRateList": {"TaxRateDetail": [
                                    {"TaxRateRef": {"value": rate["Id"]}, "TaxTypeApplicable": "TaxOnAmount",
                                     "TaxOrder": 0}]}})


def _fault(fault_cls, detail: str, element: str):
    return fault_cls(400, "6000", "A business validation error has occurred while processing your request",
                     f"Business Validation Error: {detail}", element)


def sales_rates(company, code: dict) -> list[tuple[str, str, Decimal]]:
    """(rate id, rate name, percent) for each sales rate of a TaxCode."""
    out = []
    for detail in (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []:
        rate_id = str((detail.get("TaxRateRef") or {}).get("value"))
        rate = company.entities["TaxRate"].get(rate_id) or {}
        out.append((rate_id, rate.get("Name", rate_id), Decimal(str(rate.get("RateValue", 0)))))
    return out


def apply_global_tax(company, obj: dict, fault_cls, money) -> Decimal:
    """Validate a non-US sales transaction's tax and fill TxnTaxDetail as QBO does; returns the total tax.

    Per line: a TaxCodeRef naming an active code that has sales rates (or none: out of scope).
    Per rate: tax = round_half_up(net taxable * rate) where net is the lines' Amount (net of tax in
    both modes) less their share of any DiscountLineDetail. A TaxLine may replace a rate's tax by
    at most a cent per line at that rate (rounding); more, a rate no line uses, or a zero rate
    carrying tax is refused. TotalTax without TaxLine detail is the US model: refused unless it
    equals QBO's own figure.
    """
    mode = obj.get("GlobalTaxCalculation") or "TaxExcluded"
    if mode not in MODES:
        raise fault_cls(400, "2010", "Request has invalid or unsupported property",
                        f"GlobalTaxCalculation {mode!r}", "GlobalTaxCalculation")
    detail_in = obj.get("TxnTaxDetail") or {}
    if detail_in.get("TxnTaxCodeRef"):
        raise _fault(fault_cls, "TxnTaxCodeRef is a US sales tax field; set TaxCodeRef on each line",
                     "TxnTaxDetail.TxnTaxCodeRef")
    lines = obj.get("Line") or []
    taxed: list[tuple[int, Decimal, Decimal | None, list[tuple[str, str, Decimal]]]] = []
    discount = Decimal(0)
    for n, line in enumerate(lines):
        if line.get("DetailType") == "DiscountLineDetail":
            discount += money(line.get("Amount", 0), f"Line[{n}].Amount")
            continue
        if line.get("DetailType") != "SalesItemLineDetail":
            continue
        detail = line.get("SalesItemLineDetail") or {}
        code_id = str((detail.get("TaxCodeRef") or {}).get("value") or "")
        if not code_id:
            raise _fault(fault_cls, "Make sure all your transactions have a tax code (VAT/GST rate) before you save.",
                         f"Line[{n}].SalesItemLineDetail.TaxCodeRef")
        code = company.entities["TaxCode"].get(code_id)
        if code is None:
            raise fault_cls(400, "2500", "Invalid Reference Id",
                            f"Invalid Reference Id : TaxCode {code_id} does not exist in this company",
                            f"Line[{n}].SalesItemLineDetail.TaxCodeRef")
        if code.get("Active") is False:
            raise _fault(fault_cls, f"the TaxCode {code.get('Name')} is inactive", f"Line[{n}].TaxCodeRef")
        rates = sales_rates(company, code)
        purchase_only = not rates and (code.get("PurchaseTaxRateList") or {}).get("TaxRateDetail")
        if purchase_only:
            raise _fault(fault_cls, f"the TaxCode {code.get('Name')} has no sales rate and cannot be used on a sale",
                         f"Line[{n}].SalesItemLineDetail.TaxCodeRef")
        total_rate = sum((r[2] for r in rates), Decimal(0))
        if mode == "NotApplicable" and total_rate:
            raise _fault(fault_cls, "GlobalTaxCalculation NotApplicable cannot carry a taxable line",
                         "GlobalTaxCalculation")
        amount = money(line.get("Amount", 0), f"Line[{n}].Amount")
        gross = None
        if mode == "TaxInclusive":
            raw = detail.get("TaxInclusiveAmt")
            gross = money(raw, f"Line[{n}].TaxInclusiveAmt") if raw is not None else \
                round_half_up(amount * (HUNDRED + total_rate) / HUNDRED)
            expected_net = gross * HUNDRED / (HUNDRED + total_rate)
            if abs(amount - expected_net) > CENT:
                raise _fault(fault_cls, f"Amount {amount} is not TaxInclusiveAmt {gross} net of "
                                        f"{total_rate}% tax ({round_half_up(expected_net)})", f"Line[{n}].Amount")
        taxed.append((n, amount, gross, rates))

    # Net taxable per rate; a document discount is shared over the lines by amount (before tax).
    base = sum((a for _, a, _, _ in taxed), Decimal(0))
    per_rate: dict[str, dict] = {}
    for n, amount, _gross, rates in taxed:
        share = discount * amount / base if base else Decimal(0)
        for rate_id, name, percent in rates:
            entry = per_rate.setdefault(rate_id, {"name": name, "percent": percent, "net": Decimal(0), "lines": 0})
            entry["net"] += amount - share
            entry["lines"] += 1
    for entry in per_rate.values():
        entry["net"] = round_half_up(entry["net"])
        entry["computed"] = round_half_up(entry["net"] * entry["percent"] / HUNDRED)
        entry["amount"] = entry["computed"]

    overrides = detail_in.get("TaxLine") or []
    seen: set[str] = set()
    for k, tax_line in enumerate(overrides):
        where = f"TxnTaxDetail.TaxLine[{k}]"
        if tax_line.get("DetailType") != "TaxLineDetail":
            raise fault_cls(400, "2010", "Request has invalid or unsupported property",
                            f"DetailType {tax_line.get('DetailType')!r}", f"{where}.DetailType")
        tld = tax_line.get("TaxLineDetail") or {}
        rate_id = str((tld.get("TaxRateRef") or {}).get("value") or "")
        if rate_id not in company.entities["TaxRate"]:
            raise fault_cls(400, "2500", "Invalid Reference Id", f"TaxRate {rate_id or '(missing)'} does not exist",
                            f"{where}.TaxLineDetail.TaxRateRef")
        if rate_id not in per_rate:
            raise _fault(fault_cls, f"tax rate {rate_id} is not used by any line of this transaction",
                         f"{where}.TaxLineDetail.TaxRateRef")
        if rate_id in seen:
            raise _fault(fault_cls, f"tax rate {rate_id} appears twice in TxnTaxDetail", where)
        seen.add(rate_id)
        entry = per_rate[rate_id]
        amount = money(tax_line.get("Amount", 0), f"{where}.Amount")
        if entry["percent"] == 0 and amount != 0:
            raise _fault(fault_cls, f"a {entry['name']} (0%) tax line cannot carry tax", f"{where}.Amount")
        if tld.get("NetAmountTaxable") is not None:
            net = money(tld["NetAmountTaxable"], f"{where}.TaxLineDetail.NetAmountTaxable")
            if abs(net - entry["net"]) > CENT * max(1, entry["lines"]):
                raise _fault(fault_cls, f"NetAmountTaxable {net} for {entry['name']} does not match the lines "
                                        f"({entry['net']})", f"{where}.TaxLineDetail.NetAmountTaxable")
        if abs(amount - entry["computed"]) > CENT * max(1, entry["lines"]):
            raise _fault(fault_cls, f"the tax for {entry['name']} may differ from the calculated "
                                    f"{entry['computed']} by rounding only (got {amount})", f"{where}.Amount")
        entry["amount"] = amount
    total_tax = sum((e["amount"] for e in per_rate.values()), Decimal(0))
    if detail_in.get("TotalTax") is not None:
        sent = money(detail_in["TotalTax"], "TxnTaxDetail.TotalTax")
        if sent != total_tax:
            why = ("does not equal the sum of its TaxLine amounts" if overrides else
                   "cannot be set without TaxLine detail for a company outside the US")
            raise _fault(fault_cls, f"TxnTaxDetail.TotalTax {sent} {why} ({total_tax})", "TxnTaxDetail.TotalTax")
    if mode == "TaxInclusive" and taxed and not discount:
        gross_sum = sum((g for _, _, g, _ in taxed if g is not None), Decimal(0))
        net_sum = sum((a for _, a, _, _ in taxed), Decimal(0))
        if net_sum + total_tax != gross_sum:
            raise _fault(fault_cls, f"amounts net of tax ({net_sum}) plus tax ({total_tax}) must equal the "
                                    f"tax-inclusive amounts ({gross_sum})", "TxnTaxDetail")
    obj["GlobalTaxCalculation"] = mode
    obj["TxnTaxDetail"] = {"TotalTax": float(total_tax), "TaxLine": [
        {"Amount": float(e["amount"]), "DetailType": "TaxLineDetail", "TaxLineDetail": dict(
            {"TaxRateRef": {"value": rate_id, "name": e["name"]}, "PercentBased": True,
             "TaxPercent": float(e["percent"]), "NetAmountTaxable": float(e["net"])},
            **({"OverrideDeltaAmount": float(e["amount"] - e["computed"])} if e["amount"] != e["computed"] else {}))}
        for rate_id, e in per_rate.items()]}
    return total_tax


def check_currency(company, obj: dict, customer: dict | None, fault_cls, element: str = "CurrencyRef") -> None:
    """A transaction's currency is its customer's; ExchangeRate is home units per foreign unit."""
    currency = str((obj.get("CurrencyRef") or {}).get("value") or company.home_currency)
    if customer is not None and company.multicurrency:
        theirs = str((customer.get("CurrencyRef") or {}).get("value") or company.home_currency)
        if theirs != currency:
            raise _fault(fault_cls, f"the customer's currency is {theirs}; a transaction for it must be in "
                                    f"{theirs}, not {currency}", element)
    rate = obj.get("ExchangeRate")
    if currency == company.home_currency:
        if rate is not None and Decimal(str(rate)) != 1:
            raise _fault(fault_cls, "ExchangeRate must be 1 for a home-currency transaction", "ExchangeRate")
        return
    if rate is None:
        obj["ExchangeRate"] = float(DEFAULT_RATES.get(currency, "1"))
    elif Decimal(str(rate)) <= 0:
        raise fault_cls(400, "2010", "Request has invalid or unsupported property", f"ExchangeRate {rate}",
                        "ExchangeRate")
