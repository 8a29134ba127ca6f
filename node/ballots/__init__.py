"""Members decide the rules: proposals, secret ballots with receipts, and bundles that carry them."""
