"""The one release pipeline every flow that lets data leave a member's own account goes through."""

from coopfed.node.release.pipeline import (
    Ask,
    Cells,
    Recipient,
    Release,
    ReleasePipeline,
    Revocations,
    check_live,
)

__all__ = ["Ask", "Cells", "Recipient", "Release", "ReleasePipeline", "Revocations", "check_live"]
