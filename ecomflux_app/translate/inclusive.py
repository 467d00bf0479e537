"""Tax-inclusive orders: split each Shopify (gross) amount into the net QBO keeps and its tax."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from .money import ZERO, allocate, quantize
from .plan import CENT_STEP, PRODUCT, PlanLine


def tax_share(gross: Decimal, discount: Decimal, tax: Decimal) -> Decimal:
    """The part of a tax-inclusive gross amount that is tax, given Shopify's tax on gross - discount."""
    base = gross - discount
    if base == 0 or tax == 0:
        return tax if base == 0 else ZERO
    return quantize(gross * tax / base)


def net_discount(line: PlanLine, meta: tuple[Decimal, Decimal, int | None]) -> Decimal:
    discount, tax, _ = meta
    gross = line.gross_amount if line.gross_amount is not None else line.amount
    return discount - (tax_share(gross, discount, tax) - tax)


def net_of_included_tax(lines: list[PlanLine], taxed: dict[int, tuple[Decimal, Decimal, int | None]],
                         tax_total: Decimal) -> list[PlanLine]:
    """Split tax-inclusive amounts into net + tax the way QBO stores a TaxInclusive document.

    Per line: tax share T = gross * tax / (gross - discount); net = gross - T; the discount's
    net is discount - (T - tax). So net - net discount + tax == gross - discount exactly, and
    the document's lines + TotalTax add up to Shopify's total. Shopify's per-line taxes are
    first reconciled (to the cent) with its order tax total, which is what TotalTax carries.
    """
    metas = dict(taxed)
    line_tax_sum = sum((m[1] for m in metas.values()), ZERO)
    gap = tax_total - line_tax_sum
    if gap:
        keys = [i for i, m in metas.items() if m[1] > 0] or \
               [i for i in metas if lines[i].taxable] or \
               [i for i in metas if lines[i].kind == PRODUCT]
        if keys:
            weights = [metas[i][1] if metas[i][1] > 0 else lines[i].amount - metas[i][0] for i in keys]
            for i, extra in zip(keys, allocate(gap, weights)):
                d, t, di = metas[i]
                metas[i] = (d, t + extra, di)
    out = [dataclasses.replace(line, gross_amount=line.amount) for line in lines]
    for i, (discount, tax, discount_index) in metas.items():
        line = out[i]
        gross = line.amount
        share = tax_share(gross, discount, tax)
        net = gross - share
        out[i] = dataclasses.replace(line, amount=net, unit_price=_unit(net, line.qty),
                                     taxable=line.taxable or tax != 0)
        taxed[i] = (discount, tax, discount_index)
        if discount_index is not None:
            d_line = out[discount_index]
            net_discount = discount - (share - tax)
            out[discount_index] = dataclasses.replace(d_line, amount=-net_discount, unit_price=-net_discount,
                                                      taxable=out[i].taxable)
    return out


def _unit(amount: Decimal, qty: Decimal) -> Decimal:
    """Unit price for a net amount: exact cents when they divide, else 7 places (QBO's limit)."""
    if qty in (0, 1):
        return amount
    unit = amount / qty
    return unit.quantize(CENT_STEP) if unit == unit.quantize(CENT_STEP) else unit.quantize(Decimal("0.0000001"))
