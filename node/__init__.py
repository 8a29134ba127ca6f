"""coopfed.node package."""
