"""Local stand-ins for Shopify and Intuit that speak their real HTTP protocols (dev and tests)."""
