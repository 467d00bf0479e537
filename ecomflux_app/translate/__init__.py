"""Pure translation core: Shopify order JSON + settings in, QBO entity payloads out (no I/O)."""
