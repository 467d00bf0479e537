"""Where I/O meets translation: jobs that read Shopify data and write QuickBooks documents."""
