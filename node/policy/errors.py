"""Errors of the policy engines, with stable codes the node maps to gRPC status as `policy.<code>`."""

from __future__ import annotations


class PolicyEngineError(Exception):
    """Base of the policy engines' errors; `code` is stable, the message is for people."""

    code = "engine"


class PolicyError(PolicyEngineError):
    """The policy set could not be loaded or compiled, or evaluation failed or gave a bad shape."""

    code = "error"


class PolicyUnavailable(PolicyEngineError):
    """The engine cannot be reached (OPA down, refused or timed out); the caller may retry."""

    code = "unavailable"


class PolicyRevisionMismatch(PolicyUnavailable):
    """The engine answered from another policy revision than the node's active one; refused."""

    code = "revision_mismatch"
