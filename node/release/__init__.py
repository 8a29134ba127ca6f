"""The one release pipeline every flow that lets data leave a member's own account goes through."""

from coopfed.node.release.pipeline import (
    Ask,
    Cells,
    Recipient,
    Release,
    Revocations,
    cells,
    check_live,
    eligible_profiles,
    log_access,
    plan,
    record,
)

__all__ = [
    "Ask",
    "Cells",
    "Recipient",
    "Release",
    "Revocations",
    "cells",
    "check_live",
    "eligible_profiles",
    "log_access",
    "plan",
    "record",
]
