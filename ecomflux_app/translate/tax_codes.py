"""Non-US tax: Shopify's tax lines -> the company's existing QBO tax codes, per line, plus per-rate TaxLine amounts.

A company outside the US computes tax from the TaxCodeRef on every line: QBO adds each rate's tax
over the lines' net amounts and rounds it, which can differ from Shopify's per-line rounding by a
cent or so. The document therefore carries TxnTaxDetail.TaxLine with Shopify's amount per rate
(QBO accepts a rounding correction), so its tax and total equal Shopify's to the cent.

Codes are only ever chosen, never created: a Shopify tax (title + rate) with no code of the same
rate(s), or with several equally good ones, leaves the order flagged until the admin maps it
(SyncSettings.tax_code_map, keyed by tax_signature()).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping, Sequence

from .money import ZERO, allocate, quantize
from .plan import (CENT_STEP, DISCOUNT, DUTY, FEE, GIFT_CARD, PRODUCT, REDEMPTION, SHIPPING, TAX, TAX_EXCLUDED,
                   TAX_INCLUSIVE, TIP, BalanceCheck, PlanLine, TaxEntry)
from .reading import objects, rate_of, text

HUNDRED = Decimal(100)
UNMAPPED_PREFIX = "unmapped tax"
# What a line with no tax is, for the accountant: a zero-rated supply (taxable at 0%, e.g. exports,
# children's clothes), an exempt one (the product is not taxable), or outside the scope of tax
# altogether (gift cards, tips, duties: not supplies).
ZERO_RATED, EXEMPT, OUT_OF_SCOPE, TAXED = "zero_rated", "exempt", "out_of_scope", "taxed"
_KIND_WORDS = {
    OUT_OF_SCOPE: re.compile(r"out of scope|no vat|no gst|not subject|outside|n-t\b|\bnt\b", re.I),
    EXEMPT: re.compile(r"exempt|exon|steuerfrei|\bex\b|input taxed", re.I),
    ZERO_RATED: re.compile(r"zero|0(\.0)?\s*%|\bz\b|free|\bfre\b|\bzr\b", re.I),
}
# Codes for special regimes a shop sale never uses unless the admin maps it.
_SPECIAL = re.compile(r"\bec[gs]?\b|reverse|\brc\b|import|purchase|\bcis\b|margin|postponed", re.I)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class QboRate:
    id: str
    name: str
    percent: Decimal


@dataclass(frozen=True)
class QboTaxCode:
    id: str
    name: str
    rates: tuple[QboRate, ...]
    active: bool = True
    taxable: bool | None = None

    @property
    def total_percent(self) -> Decimal:
        return sum((r.percent for r in self.rates), Decimal(0))

    @property
    def percents(self) -> tuple[Decimal, ...]:
        return tuple(sorted(r.percent.normalize() for r in self.rates))

    @property
    def kind(self) -> str:
        """taxed, zero_rated, exempt or out_of_scope, from the rates and, for 0%, the name."""
        if not self.rates:
            return OUT_OF_SCOPE
        if self.total_percent:
            return TAXED
        if _KIND_WORDS[EXEMPT].search(self.name) or self.taxable is False:
            return EXEMPT
        return ZERO_RATED

    def describe(self) -> str:
        rates = " + ".join(f"{_pct(r.percent)}%" for r in self.rates) or "no rate"
        return f"{self.name} ({rates})"


@dataclass(frozen=True)
class TaxSetup:
    """The company's sales tax codes, as read from QBO (TaxCode + TaxRate)."""

    codes: tuple[QboTaxCode, ...] = ()

    @classmethod
    def from_qbo(cls, tax_codes: Iterable[Mapping[str, Any]], tax_rates: Iterable[Mapping[str, Any]]) -> "TaxSetup":
        rates = {str(r.get("Id")): r for r in tax_rates if isinstance(r, Mapping)}
        out = []
        for code in tax_codes:
            if not isinstance(code, Mapping) or str(code.get("Id")) in ("TAX", "NON"):
                continue
            details = ((code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or [])
            purchase = ((code.get("PurchaseTaxRateList") or {}).get("TaxRateDetail") or [])
            if not details and purchase:
                continue  # a purchase-only code (reverse charge, imports): never on a sale
            code_rates = []
            for d in details:
                rate_id = str((d.get("TaxRateRef") or {}).get("value"))
                rate = rates.get(rate_id, {})
                code_rates.append(QboRate(rate_id, str(rate.get("Name") or (d.get("TaxRateRef") or {}).get("name")
                                                       or rate_id), Decimal(str(rate.get("RateValue", 0)))))
            out.append(QboTaxCode(str(code.get("Id")), str(code.get("Name") or code.get("Id")), tuple(code_rates),
                                  code.get("Active") is not False,
                                  code.get("Taxable") if isinstance(code.get("Taxable"), bool) else None))
        return cls(tuple(out))

    def to_values(self) -> list[dict[str, Any]]:
        return [{"id": c.id, "name": c.name, "active": c.active, "taxable": c.taxable,
                 "rates": [{"id": r.id, "name": r.name, "percent": str(r.percent)} for r in c.rates]}
                for c in self.codes]

    @classmethod
    def from_values(cls, values: Any) -> "TaxSetup | None":
        if not isinstance(values, list):
            return None
        return cls(tuple(QboTaxCode(str(c["id"]), str(c["name"]),
                                    tuple(QboRate(str(r["id"]), str(r["name"]), Decimal(str(r["percent"])))
                                          for r in c.get("rates") or []),
                                    bool(c.get("active", True)), c.get("taxable"))
                         for c in values if isinstance(c, Mapping) and "id" in c))

    def code(self, code_id: str | None) -> QboTaxCode | None:
        return next((c for c in self.codes if c.id == code_id), None)

    def active(self) -> list[QboTaxCode]:
        return [c for c in self.codes if c.active]


@dataclass(frozen=True)
class RateAmount:
    """One TxnTaxDetail.TaxLine: Shopify's tax for one QBO rate, and the net it is charged on."""

    rate_id: str
    rate_name: str
    percent: Decimal
    amount: Decimal
    net: Decimal
    qbo_computed: Decimal


@dataclass(frozen=True)
class UnmappedTax:
    signature: str
    line: str
    suggestions: tuple[str, ...]  # code ids with the same total rate, best first


@dataclass(frozen=True)
class GlobalTax:
    lines: tuple[PlanLine, ...]
    rates: tuple[RateAmount, ...]
    issue: str | None
    unmapped: tuple[UnmappedTax, ...] = ()


def _pct(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def percent_of(rate: Decimal | None) -> Decimal:
    """Shopify's rate (a fraction, 0.2) as QBO's percent (20)."""
    return (rate or Decimal(0)) * HUNDRED


def tax_signature(entries: Sequence[TaxEntry]) -> str:
    """The mapping key for a line's Shopify taxes: "VAT 20%", "GST 5% + PST 7%" (sorted, stable)."""
    parts = sorted(f"{(e.title or 'Tax').strip()} {_pct(percent_of(e.rate))}%" for e in entries)
    return " + ".join(parts)


def shopify_tax_lines(obj: Mapping[str, Any], where: str, read: Any, current: int = 1, original: int = 1
                      ) -> tuple[TaxEntry, ...]:
    """The tax lines of a line item or shipping line (prorated to its current quantity)."""
    out = []
    for k, t in enumerate(objects(obj, "tax_lines")):
        amount = read.amount(t, "price", f"{where}.tax_lines[{k}]")
        if original > 0 and current != original:
            amount = quantize(amount * current / original)
        out.append(TaxEntry(title=text(t.get("title")) or "Tax", rate=rate_of(t.get("rate"), f"{where}.tax_lines[{k}].rate"),
                            amount=amount))
    return tuple(out)


def destination_country(order: Mapping[str, Any]) -> str | None:
    for name in ("shipping_address", "billing_address"):
        addr = order.get(name)
        if isinstance(addr, Mapping) and addr.get("country_code"):
            return str(addr["country_code"]).upper()
    return None


def _words(*texts: str) -> set[str]:
    return {w for t in texts for w in _WORD.findall(t.lower())}


def candidates(setup: TaxSetup, entries: Sequence[TaxEntry], country: str | None = None) -> list[QboTaxCode]:
    """Active codes with exactly the same rate(s), best first (title words, destination country, no
    special regime), for matching and for the page's suggestions."""
    wanted = tuple(sorted(percent_of(e.rate).normalize() for e in entries))
    same = [c for c in setup.active() if c.kind == TAXED and c.percents == wanted]
    return sorted(same, key=lambda c: (-_score(c, entries, country), c.name))


def _score(code: QboTaxCode, entries: Sequence[TaxEntry], country: str | None) -> int:
    names = _words(code.name, *(r.name for r in code.rates))
    score = -3 if _SPECIAL.search(code.name) else 0
    title_words = _words(*(e.title for e in entries)) - {"tax", "vat", "sales"}
    score += len(title_words & names)
    if country and country.lower() in names:
        score += 2
    return score


def suggestions_for(setup: TaxSetup, entries: Sequence[TaxEntry], country: str | None = None) -> list[QboTaxCode]:
    """Codes to offer for an unmapped tax: same rates first, then the same total rate."""
    same = candidates(setup, entries, country)
    total = sum((percent_of(e.rate) for e in entries), Decimal(0))
    near = [c for c in setup.active() if c.kind == TAXED and c not in same and c.total_percent == total]
    return same + near


def choose_code(setup: TaxSetup, entries: Sequence[TaxEntry], mapping: Mapping[str, str],
                country: str | None) -> QboTaxCode | None:
    """The code for a taxed line: the admin's mapping, else the one best code with the same rates."""
    signature = tax_signature(entries)
    mapped = setup.code(mapping.get(signature))
    wanted = tuple(sorted(percent_of(e.rate).normalize() for e in entries))
    if mapped is not None and mapped.active and mapped.percents == wanted:
        return mapped
    found = candidates(setup, entries, country)
    if len(found) == 1:
        return found[0]
    if len(found) > 1 and _score(found[0], entries, country) > _score(found[1], entries, country):
        return found[0]
    return None


def untaxed_code(setup: TaxSetup, kind: str, exempt_code_id: str | None = None) -> QboTaxCode | None:
    """The company's zero-rated, exempt or out-of-scope code (the admin's exempt code first)."""
    if kind == EXEMPT and exempt_code_id:
        chosen = setup.code(exempt_code_id)
        if chosen is not None and chosen.active and not chosen.total_percent:
            return chosen
    fallbacks = {ZERO_RATED: (ZERO_RATED, EXEMPT), EXEMPT: (EXEMPT, ZERO_RATED), OUT_OF_SCOPE: (OUT_OF_SCOPE, EXEMPT)}
    for wanted in fallbacks[kind]:
        found = [c for c in setup.active() if c.kind == wanted and not _SPECIAL.search(c.name)]
        if found:
            named = [c for c in found if _KIND_WORDS[wanted].search(c.name)]
            return sorted(named or found, key=lambda c: (len(c.name), c.name))[0]
    return None


def _net(gross: Decimal, percent: Decimal) -> Decimal:
    return (gross * HUNDRED / (HUNDRED + percent)).quantize(CENT_STEP, rounding=ROUND_HALF_UP)


def _unit(amount: Decimal, qty: Decimal) -> Decimal:
    if qty in (0, 1):
        return amount
    unit = amount / qty
    return unit.quantize(CENT_STEP) if unit == unit.quantize(CENT_STEP) else unit.quantize(Decimal("0.0000001"))


def assign_tax_codes(lines: Sequence[PlanLine], tax_total: Decimal, inclusive: bool, setup: TaxSetup,
                     mapping: Mapping[str, str], exempt_code_id: str | None, country: str | None) -> GlobalTax:
    """Give every line a tax code and work out the TaxLine amounts (Shopify's, per QBO rate).

    lines: as plan_order built them (tax-inclusive orders: amounts still gross); a DISCOUNT line
    takes the code of the line above it. Returns the lines with tax_code_id (and, inclusive, net
    amounts that with the tax add up to Shopify's gross to the cent), one RateAmount per rate,
    and an issue (unmapped tax, or a tax QBO could not be brought to by rounding) that must flag
    the order.
    """
    coded, unmapped = _codes_per_line(lines, setup, mapping, exempt_code_id, country)
    if unmapped:
        named = "; ".join(f"{u.signature} on {u.line!r}" for u in unmapped)
        issue = (f"{UNMAPPED_PREFIX}: {named} has no QuickBooks tax code with the same rate "
                 "(map it under Tax codes; the order posts once it is mapped)")
        return GlobalTax(tuple(lines), (), issue, tuple(unmapped))

    shopify = _shopify_tax_per_rate(coded, tax_total)
    if shopify is None:
        return GlobalTax(tuple(lines), (), f"Shopify charged tax {tax_total} but no line carries a taxed rate")

    out_lines: list[PlanLine] = []
    for line, code in coded:
        assert code is not None
        line = dataclasses.replace(line, tax_code_id=code.id, taxable=bool(code.total_percent))
        if inclusive:
            net = _net(line.amount, code.total_percent)
            line = dataclasses.replace(line, gross_amount=line.amount, amount=net, unit_price=_unit(net, line.qty))
        out_lines.append(line)

    if inclusive:
        residual = _nets_to_gross(out_lines, coded, tax_total)
        if residual is not None:
            return GlobalTax(tuple(lines), (), (
                f"Shopify's tax {tax_total} on tax-inclusive prices is {residual} away from what the lines' rates "
                "give; QuickBooks cannot carry it"))

    rates, issue = _rate_amounts(out_lines, coded, shopify, tax_total)
    return GlobalTax(tuple(out_lines), tuple(rates), issue)


def _codes_per_line(lines: Sequence[PlanLine], setup: TaxSetup, mapping: Mapping[str, str],
                    exempt_code_id: str | None, country: str | None
                    ) -> tuple[list[tuple[PlanLine, QboTaxCode | None]], list[UnmappedTax]]:
    """Each line's tax code (None where none fits) and the taxes no code fits, for the admin to map."""
    coded: list[tuple[PlanLine, QboTaxCode | None]] = []
    unmapped: list[UnmappedTax] = []
    last: QboTaxCode | None = None
    first_shipping: QboTaxCode | None = None
    for line in lines:
        positive = [e for e in line.tax_lines if e.rate]
        code: QboTaxCode | None
        if line.kind == DISCOUNT:
            code = last
        elif line.kind in (GIFT_CARD, TIP, REDEMPTION, DUTY, TAX):
            code = untaxed_code(setup, OUT_OF_SCOPE, exempt_code_id)
        elif positive:
            code = choose_code(setup, positive, mapping, country)
            if code is None:
                signature = tax_signature(positive)
                if not any(u.signature == signature for u in unmapped):
                    unmapped.append(UnmappedTax(signature, line.description,
                                                tuple(c.id for c in suggestions_for(setup, positive, country))))
        elif line.kind == SHIPPING and line.amount < 0 and first_shipping is not None:
            code = first_shipping  # shipping refunded takes the shipping's code
        elif line.kind == FEE:
            code = untaxed_code(setup, OUT_OF_SCOPE, exempt_code_id)
        elif line.tax_exempt:
            code = untaxed_code(setup, EXEMPT, exempt_code_id)
        else:
            code = untaxed_code(setup, ZERO_RATED, exempt_code_id)
        if code is None and not positive and line.kind != DISCOUNT:
            kind = "out-of-scope" if line.kind in (GIFT_CARD, TIP, REDEMPTION, DUTY, TAX, FEE) else \
                "exempt" if line.tax_exempt else "zero-rated"
            unmapped.append(UnmappedTax(f"no tax ({kind})", line.description, ()))
        coded.append((line, code))
        if line.kind != DISCOUNT:
            last = code
        if line.kind == SHIPPING and first_shipping is None and line.amount >= 0:
            first_shipping = code
    return coded, unmapped


def _shopify_tax_per_rate(coded: list[tuple[PlanLine, QboTaxCode | None]], tax_total: Decimal
                          ) -> dict[str, Decimal] | None:
    """Shopify's tax per QBO rate id, reconciled to the order's tax total; None when tax is left with
    no taxed rate to carry it."""
    # Shopify's tax per QBO rate: each tax line goes to the code's rate with the same percent.
    shopify: dict[str, Decimal] = {}
    for line, code in coded:
        assert code is not None
        for entry in line.tax_lines:
            rate = next((r for r in code.rates if r.percent == percent_of(entry.rate)), None)
            if rate is None:
                continue
            shopify[rate.id] = shopify.get(rate.id, ZERO) + entry.amount
    # Shopify's order total tax is the truth (edits and refunds): reconcile the lines to it.
    rate_ids = [r.id for _, c in coded if c for r in c.rates if r.percent]
    rate_ids = list(dict.fromkeys(rate_ids))
    gap = tax_total - sum(shopify.values(), ZERO)
    if gap and rate_ids:
        for rate_id, extra in zip(rate_ids, allocate(gap, [shopify.get(r, ZERO) for r in rate_ids])):
            shopify[rate_id] = shopify.get(rate_id, ZERO) + extra
    elif gap:
        return None
    return shopify


def _nets_to_gross(out_lines: list[PlanLine], coded: list[tuple[PlanLine, QboTaxCode | None]],
                   tax_total: Decimal) -> Decimal | None:
    """Tax-inclusive: move the rounding cents so nets + tax add up to Shopify's gross exactly; returns
    the residual when the lines cannot absorb it, else None."""
    # Move the rounding cents onto the largest taxed lines, one cent each (QBO accepts a net within a
    # cent of gross / (1 + rate)).
    gross_sum = sum((l.gross_amount or ZERO for l in out_lines), ZERO)
    residual = gross_sum - tax_total - sum((l.amount for l in out_lines), ZERO)
    step = CENT_STEP if residual > 0 else -CENT_STEP
    exact = {i: (out_lines[i].gross_amount or ZERO) * HUNDRED / (HUNDRED + c.total_percent)
             for i, (_, c) in enumerate(coded) if c is not None and c.total_percent}
    # Only lines whose exact net lies on the step's side of their rounded net stay within a cent.
    movable = sorted((i for i in exact if abs(out_lines[i].amount + step - exact[i]) <= CENT_STEP),
                     key=lambda i: (-(exact[i] - out_lines[i].amount) * step, i))
    steps = int(abs(residual) / CENT_STEP)
    if steps > len(movable):
        return residual
    for i in movable[:steps]:
        l = out_lines[i]
        out_lines[i] = dataclasses.replace(l, amount=l.amount + step, unit_price=_unit(l.amount + step, l.qty))
    return None


def _rate_amounts(out_lines: list[PlanLine], coded: list[tuple[PlanLine, QboTaxCode | None]],
                  shopify: Mapping[str, Decimal], tax_total: Decimal) -> tuple[list[RateAmount], str | None]:
    """Per rate: net taxable, Shopify's tax and QBO's own figure, with an issue when they differ by
    more than rounding or Shopify's tax is not all carried."""
    rates: list[RateAmount] = []
    problems: list[str] = []
    seen: dict[str, dict[str, Any]] = {}
    for line, (_, code) in zip(out_lines, coded):
        assert code is not None
        for rate in code.rates:
            entry = seen.setdefault(rate.id, {"rate": rate, "net": ZERO, "lines": 0})
            entry["net"] += line.amount
            entry["lines"] += 1
    for rate_id, entry in seen.items():
        rate = entry["rate"]
        net = quantize(entry["net"])
        computed = (net * rate.percent / HUNDRED).quantize(CENT_STEP, rounding=ROUND_HALF_UP)
        amount = quantize(shopify.get(rate_id, ZERO)) if rate.percent else ZERO
        if abs(amount - computed) > CENT_STEP * max(1, entry["lines"]):
            problems.append(f"{rate.name} {_pct(rate.percent)}%: Shopify charged {amount} on {net}, "
                            f"QuickBooks computes {computed}")
        rates.append(RateAmount(rate_id, rate.name, rate.percent, amount, net, computed))
    issue = None
    if problems:
        issue = ("tax differs from what QuickBooks computes by more than rounding: " + "; ".join(problems))
    elif sum((r.amount for r in rates), ZERO) != tax_total:
        issue = f"Shopify's tax {tax_total} is not carried by any taxed line"
    return rates, issue


def applies(settings: Any) -> bool:
    """Whether an order for this company is posted with per-line codes from its tax setup."""
    company = settings.company
    return (not company.is_us and getattr(company, "tax_setup", None) is not None
            and settings.tax_handling == "shopify")


def order_line_codes(order: Mapping[str, Any], settings: Any) -> tuple[dict[str, str], str | None, list[str]]:
    """({line item id: code id}, shipping code id, unmapped taxes) from the order's original tax lines:
    what a refund of those lines posts with (the same codes as the order document)."""
    setup: TaxSetup = settings.company.tax_setup
    country = destination_country(order)
    mapping, exempt = settings.tax_code_map, settings.exempt_tax_code_id
    unmapped: list[str] = []

    def code_for(obj: Mapping[str, Any], where: str, exempt_line: bool, out_of_scope: bool) -> str | None:
        entries = [TaxEntry(text(t.get("title")) or "Tax", rate_of(t.get("rate"), f"{where}.rate"), ZERO)
                   for t in objects(obj, "tax_lines")]
        positive = [e for e in entries if e.rate]
        if out_of_scope:
            code = untaxed_code(setup, OUT_OF_SCOPE, exempt)
        elif positive:
            code = choose_code(setup, positive, mapping, country)
            if code is None:
                unmapped.append(tax_signature(positive))
        else:
            code = untaxed_code(setup, EXEMPT if exempt_line else ZERO_RATED, exempt)
        return code.id if code else None

    lines: dict[str, str] = {}
    for i, li in enumerate(objects(order, "line_items")):
        code_id = code_for(li, f"line_items[{i}]", li.get("taxable") is False, bool(li.get("gift_card")))
        if code_id and text(li.get("id")):
            lines[str(text(li.get("id")))] = code_id
    shipping = next((code_for(sl, f"shipping_lines[{i}]", False, False)
                     for i, sl in enumerate(objects(order, "shipping_lines"))), None)
    return lines, shipping, unmapped


def code_refund_lines(lines: Sequence[PlanLine], tax_total: Decimal, order: Mapping[str, Any], settings: Any
                      ) -> tuple[tuple[PlanLine, ...], tuple[RateAmount, ...], str | None]:
    """A refund's lines with the codes their order lines had, and Shopify's refunded tax per rate.

    Shopify gives a refund's tax per line, not per rate: each rate gets its share of the refunded
    tax in proportion to the tax its lines' net would carry, which equals QBO's own figure up to
    rounding (checked: more than rounding flags the refund).
    """
    setup: TaxSetup = settings.company.tax_setup
    by_line, shipping, unmapped = order_line_codes(order, settings)
    if unmapped:
        return tuple(lines), (), (f"{UNMAPPED_PREFIX}: {', '.join(dict.fromkeys(unmapped))} has no QuickBooks tax "
                                  "code with the same rate (map it under Tax codes)")
    out: list[PlanLine] = []
    for line in lines:
        if line.kind in (PRODUCT, GIFT_CARD) and line.source_id in by_line:
            code_id: str | None = by_line[str(line.source_id)]
        elif line.kind == SHIPPING:
            code_id = shipping or getattr(untaxed_code(setup, ZERO_RATED, settings.exempt_tax_code_id), "id", None)
        else:  # adjustments, refund discrepancies: not a supply
            code_id = getattr(untaxed_code(setup, OUT_OF_SCOPE, settings.exempt_tax_code_id), "id", None)
        if code_id is None:
            return tuple(lines), (), f"{UNMAPPED_PREFIX}: no QuickBooks tax code for refund line {line.description!r}"
        code = setup.code(code_id)
        out.append(dataclasses.replace(line, tax_code_id=code_id, taxable=bool(code and code.total_percent)))
    seen: dict[str, dict[str, Any]] = {}
    for line in out:
        code = setup.code(line.tax_code_id)
        for rate in (code.rates if code else ()):
            entry = seen.setdefault(rate.id, {"rate": rate, "net": ZERO, "lines": 0})
            entry["net"] += line.amount
            entry["lines"] += 1
    ids = list(seen)
    exact = [seen[r]["net"] * seen[r]["rate"].percent / HUNDRED for r in ids]
    if tax_total and not any(exact):
        return tuple(out), (), f"Shopify refunded tax {tax_total} on lines QuickBooks taxes at 0%"
    shares = allocate(tax_total, exact) if ids else []
    rates, problems = [], []
    for rate_id, share in zip(ids, shares):
        entry, rate = seen[rate_id], seen[rate_id]["rate"]
        net = quantize(entry["net"])
        computed = (net * rate.percent / HUNDRED).quantize(CENT_STEP, rounding=ROUND_HALF_UP)
        if abs(share - computed) > CENT_STEP * max(1, entry["lines"]):
            problems.append(f"{rate.name}: Shopify refunded {share} on {net}, QuickBooks computes {computed}")
        rates.append(RateAmount(rate_id, rate.name, rate.percent, share, net, computed))
    issue = "refunded tax differs from what QuickBooks computes by more than rounding: " + "; ".join(problems) \
        if problems else None
    return tuple(out), tuple(rates), issue


def code_refund(plan: Any, order: Mapping[str, Any], settings: Any) -> Any:
    """A RefundPlan for a non-US company with per-line codes and TaxLine amounts (unchanged otherwise);
    an unmapped tax or a tax QBO cannot carry flags it like an order."""
    if not applies(settings) or plan.tax_mode not in (TAX_EXCLUDED, TAX_INCLUSIVE) or not plan.lines:
        return plan
    lines, rates, issue = code_refund_lines(plan.lines, plan.tax_total, order, settings)
    plan = dataclasses.replace(plan, lines=lines, tax_rates=rates)
    if issue:
        b = plan.balance
        plan = dataclasses.replace(plan, balance=BalanceCheck(b.expected, b.computed, False, issue))
    return plan
