"""Errors of the policy engines, with stable codes the node maps to gRPC status."""

from __future__ import annotations


class PolicyEngineError(Exception):
    """Base of the policy engines' errors; `code` is stable, the message is for people."""

    code = "policy_engine_error"


class PolicyError(PolicyEngineError):
    """The policy set could not be loaded or compiled, or evaluation failed or gave a bad shape."""

    code = "policy_error"


class PolicyUnavailable(PolicyEngineError):
    """The engine cannot be reached (OPA down, refused or timed out); the caller may retry."""

    code = "policy_unavailable"


class PolicyRevisionMismatch(PolicyUnavailable):
    """The engine answered from another policy revision than the node's active one; refused."""

    code = "policy_revision_mismatch"
