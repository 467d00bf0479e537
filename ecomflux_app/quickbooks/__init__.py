"""Everything that knows Intuit: OAuth, tokens, the QBO REST client, its errors and limits."""
