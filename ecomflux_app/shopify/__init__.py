"""Everything that knows Shopify's protocols and nothing about QuickBooks."""
