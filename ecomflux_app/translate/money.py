"""Decimal money helpers: parsing, cent rounding, sums and to-the-cent allocation."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Iterable, Sequence

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Far beyond any order (QBO amounts stop well before), small enough that cent arithmetic stays exact.
MAX_AMOUNT = Decimal("1e13")


class MoneyError(ValueError):
    """A value that cannot be read as money."""


def parse_money(value: object, field: str = "amount") -> Decimal:
    """Read a Shopify money value (a string such as "12.50", an int, or a Decimal) as Decimal.

    A float (a JSON number parsed without parse_float=Decimal) is read back through its
    shortest repr, which is exactly the literal the JSON held; arithmetic never sees a float.
    """
    if isinstance(value, bool) or value is None:
        raise MoneyError(f"{field}: expected a money string, got {value!r}")
    if isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise MoneyError(f"{field}: empty money string")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise MoneyError(f"{field}: {value!r} is not a number") from exc
    else:
        raise MoneyError(f"{field}: expected a money string, got {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError(f"{field}: {value!r} is not a finite number")
    if abs(result) >= MAX_AMOUNT:
        raise MoneyError(f"{field}: {value!r} is out of range")
    return result


def quantize(value: Decimal) -> Decimal:
    """Round to cents the way Shopify does (half up)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: object, field: str = "amount") -> Decimal:
    """parse_money then quantize to cents."""
    return quantize(parse_money(value, field))


def sum_money(values: Iterable[Decimal]) -> Decimal:
    """Sum Decimals, starting from 0.00 so an empty sum is still a cent amount."""
    total = ZERO
    for value in values:
        total += value
    return quantize(total)


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split total across weights so the parts are cents and add up to total exactly.

    Largest-remainder method: each part is floored to the cent, and the cents left over go to
    the parts with the largest remainders (earlier parts win ties), so the result is
    deterministic. With all-zero weights the parts are shared equally.
    """
    total = quantize(total)
    if not weights:
        if total != ZERO:
            raise MoneyError("cannot allocate a non-zero amount across no parts")
        return []
    sign = -1 if total < 0 else 1
    cents = int((abs(total) / CENT).to_integral_value())
    ws = [abs(w) for w in weights]
    weight_sum = sum(ws, Decimal(0))
    if weight_sum == 0:
        ws = [Decimal(1)] * len(weights)
        weight_sum = Decimal(len(weights))
    exact = [Decimal(cents) * w / weight_sum for w in ws]
    floors = [int(e) for e in exact]
    left = cents - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [quantize(Decimal(sign * f) * CENT) for f in floors]


def format_money(value: Decimal) -> str:
    """Two-decimal string (for descriptions and reasons)."""
    return f"{quantize(value):.2f}"
