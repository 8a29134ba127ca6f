"""Governance: third parties request data, the policy decides, the board reviews, releases are logged."""
