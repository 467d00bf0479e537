"""HTTP layer: blueprints only; each module registers one blueprint named `bp`."""

BLUEPRINT_MODULES = [
    "health",
    "webhooks",
    "install",
    "embedded",
    "api",
    "qbo_oauth",
    "after_sale_api",
    "taxcodes",
    "support",
    "dev",
]
