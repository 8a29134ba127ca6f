"""Policy engines behind one interface: embedded Rego (regopy) and an OPA server (REST)."""

from coopfed.node.policy.engine import PolicyEngine, make_engine
from coopfed.node.policy.errors import PolicyEngineError, PolicyError, PolicyUnavailable
from coopfed.node.policy.loader import PolicySet, load_policies, make_policy_set

__all__ = [
    "PolicyEngine",
    "PolicyEngineError",
    "PolicyError",
    "PolicySet",
    "PolicyUnavailable",
    "load_policies",
    "make_engine",
    "make_policy_set",
]
