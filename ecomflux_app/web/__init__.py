"""HTTP layer: blueprints only; each module registers one blueprint named `bp`."""

BLUEPRINT_MODULES = [
    "health",
    "webhooks",
    "install",
    "embedded",
    "api",
    "qbo_oauth",
    "qbo_webhooks",
    "backfill_reconcile_api",
    "payouts_api",
    "taxcodes",
    "support",
    "support_payouts",
    "dev",
]
