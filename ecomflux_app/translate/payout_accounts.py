"""Which QuickBooks account types each Shopify Payments payout setting takes, and the errors for a wrong one (pure)."""

from __future__ import annotations

# What each payout setting must be in QuickBooks (checked against the company's account list).
ACCOUNT_TYPES = {
    "payout_clearing_account_id": ({"Other Current Asset", "Bank"}, "an Other Current Asset account such as "
                                                                    "Undeposited Funds"),
    "payout_bank_account_id": ({"Bank"}, "a Bank account"),
    "payout_fee_account_id": ({"Expense", "Other Expense", "Cost of Goods Sold"}, "an Expense account"),
    "payout_chargeback_account_id": ({"Expense", "Other Expense", "Cost of Goods Sold", "Income", "Other Income"},
                                     "an Expense or Income account"),
    "payout_adjustment_account_id": ({"Expense", "Other Expense", "Cost of Goods Sold", "Income", "Other Income"},
                                     "an Expense or Income account"),
}


def payout_account_errors(options: dict, values: dict, submitted: set[str]) -> dict[str, str]:
    """Per-field errors for payout accounts of the wrong type (the company's account list at hand)."""
    accounts = {str(a["id"]): a for a in options.get("accounts") or []}
    errors = {}
    for name, (types, wanted) in ACCOUNT_TYPES.items():
        value = values.get(name)
        if name not in submitted or value in (None, "") or str(value) not in accounts:
            continue
        found = accounts[str(value)]
        if found.get("type") not in types:
            errors[name] = f"must be {wanted}; {found.get('name')} is {found.get('type')}"
        elif name == "payout_bank_account_id" and found.get("subtype") == "UndepositedFunds":
            errors[name] = "must be a Bank account (the one the payout reaches)"
    return errors
