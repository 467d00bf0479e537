"""The OrderPlan and its parts: what one Shopify order becomes before it is rendered for QBO."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from .customer import CustomerIdentity
from .item import SPECIAL_ITEMS, ItemRequest, sanitize_item_name
from .money import ZERO, format_money

DOC_NUMBER_MAX = 21
PRIVATE_NOTE_MAX = 4000
DESCRIPTION_MAX = 4000
MARKER_PREFIX = "ecomflux:order:"
SHIPPING_ITEM_ID = "SHIPPING_ITEM_ID"
GIFT_CARD_GATEWAY = "gift_card"
CENT_STEP = Decimal("0.01")

# Line kinds in a plan.
PRODUCT, GIFT_CARD, SHIPPING, DUTY, FEE, TIP, TAX, DISCOUNT, REDEMPTION = (
    "product", "gift_card", "shipping", "duty", "fee", "tip", "tax", "discount", "gift_card_redemption",
)

# How tax appears on the document.
TAX_US = "us_total_tax"           # US company: TxnTaxDetail.TotalTax + line TaxCodeRef TAX/NON
TAX_EXCLUDED = "tax_excluded"     # non-US: GlobalTaxCalculation TaxExcluded + TotalTax
TAX_INCLUSIVE = "tax_inclusive"   # taxes_included order: GlobalTaxCalculation TaxInclusive
TAX_AS_LINE = "tax_line"          # settings.tax_handling == tax_line: tax is an item line


class TranslationError(ValueError):
    """The order cannot be translated; field names the offending part of the input."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ShopFacts:
    """What the translation needs to know about the shop."""

    timezone: str = "UTC"
    currency: str = "USD"


@dataclass(frozen=True)
class PlanLine:
    """One document line. item_id is known from settings; otherwise item_key is resolved by sync."""

    kind: str
    description: str
    qty: Decimal
    unit_price: Decimal
    amount: Decimal
    taxable: bool
    item_key: str | None = None
    item_id: str | None = None
    item_name: str | None = None
    sku: str | None = None
    source_id: str | None = None
    # Tax-inclusive documents: amount/unit_price are net of tax (QBO's Line.Amount) and
    # gross_amount is what Shopify charged (SalesItemLineDetail.TaxInclusiveAmt).
    gross_amount: Decimal | None = None
    # Non-US companies (translate.tax_codes): Shopify's tax lines on this line, whether Shopify
    # calls the product not taxable, and the QBO tax code chosen for it.
    tax_lines: tuple["TaxEntry", ...] = ()
    tax_exempt: bool = False
    tax_code_id: str | None = None


@dataclass(frozen=True)
class DiscountEntry:
    """One Shopify discount application and how much of it this order still carries."""

    title: str
    code: str | None
    amount: Decimal
    target: str  # line_item | shipping_line


@dataclass(frozen=True)
class TaxEntry:
    title: str
    rate: Decimal | None
    amount: Decimal


@dataclass(frozen=True)
class RemovedLine:
    source_id: str | None
    description: str
    quantity: int


@dataclass(frozen=True)
class BalanceCheck:
    """Shopify's total vs. the total the payload implies; ok only when equal to the cent."""

    expected: Decimal
    computed: Decimal
    ok: bool
    reason: str | None = None

    def to_values(self) -> dict[str, Any]:
        return {"expected": format_money(self.expected), "computed": format_money(self.computed),
                "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class OrderPlan:
    """Everything needed to render one QBO document for one Shopify order."""

    doc_type: str  # SalesReceipt | Invoice
    order_id: str
    order_name: str
    source_key: str
    doc_number: str
    txn_date: date
    due_date: date | None
    private_note: str
    marker: str
    currency: str
    home_currency: str
    currency_ref: str | None
    exchange_rate: Decimal | None
    customer: CustomerIdentity
    lines: tuple[PlanLine, ...]
    discounts: tuple[DiscountEntry, ...]
    discount_total: Decimal
    discount_line_amount: Decimal  # the DiscountLineDetail amount (0 when discounts are item lines)
    discount_description: str
    subtotal: Decimal  # products + gift cards sold, before discounts
    shipping_total: Decimal  # before shipping discounts
    shipping_discount_total: Decimal
    tax_total: Decimal
    tax_mode: str
    tax_lines: tuple[TaxEntry, ...]
    tips_total: Decimal
    duties_total: Decimal
    gift_card_sold: Decimal
    gift_card_redeemed: Decimal
    document_total: Decimal
    payment_gateway: str | None
    payment_method_id: str | None
    deposit_account_id: str | None
    class_id: str | None
    department_id: str | None
    bill_email: str | None
    removed_lines: tuple[RemovedLine, ...]
    balance: BalanceCheck
    warnings: tuple[str, ...] = ()
    us_company: bool = True
    # Refunds whose effect the document already carries (current_* figures are net of them):
    # the refund sync must not post them again.
    reflected_refund_ids: tuple[str, ...] = ()
    shipping_refunded: Decimal = ZERO
    taxable_tax_code_id: str | None = None  # non-US TaxCodeRef for taxable lines
    exempt_tax_code_id: str | None = None
    discount_account_id: str | None = None
    # Non-US companies: Shopify's tax per QBO rate (TxnTaxDetail.TaxLine), see translate.tax_codes.
    tax_rates: tuple[Any, ...] = ()
    tax_unmapped: tuple[Any, ...] = ()  # tax_codes.UnmappedTax: what the admin must map before it posts

    @property
    def item_keys(self) -> list[str]:
        """Item keys the sync must resolve to QBO item ids (deduplicated, in line order)."""
        keys: list[str] = []
        for line in self.lines:
            if line.item_id is None and line.item_key and line.item_key not in keys:
                keys.append(line.item_key)
        return keys

    def item_requests(self, item_type: str = "NonInventory") -> list[ItemRequest]:
        """What to look up or create for each unresolved item key."""
        out: list[ItemRequest] = []
        for key in self.item_keys:
            line = next(line for line in self.lines if line.item_key == key)
            if key in SPECIAL_ITEMS:
                name, special_type = SPECIAL_ITEMS[key]
                out.append(ItemRequest(key=key, name=name, sku=None, item_type=special_type))
            else:
                out.append(ItemRequest(key=key, name=line.item_name or sanitize_item_name(line.description),
                                       sku=line.sku, item_type=item_type, description=line.description))
        return out


@dataclass(frozen=True)
class Refs:
    """QBO ids the sync resolved for a plan: the customer and every unresolved item key."""

    customer_id: str
    items: Mapping[str, str] = field(default_factory=dict)
    payment_method_id: str | None = None
