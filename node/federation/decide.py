"""The federation policy's two questions: is a peer aligned, and may it have this grant."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coopfed.federation.grants import Constraints, GrantScope
from coopfed.node.federation.manifest import Manifest
from coopfed.node.policy import PolicyEngine
from coopfed.node.policy.errors import PolicyError

ALIGNMENT_PATH = "coopfed/federation/alignment/decision"
GRANT_PATH = "coopfed/federation/grant/decision"


@dataclass(frozen=True)
class Alignment:
    aligned: bool
    reasons: tuple[str, ...]
    shared_aims: tuple[str, ...]
    offer: dict[str, tuple[str, ...]]
    revision: str
    question: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    result: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class GrantDecision:
    """The policy's answer to a grant request; scope, constraints and ttl only when allowed."""

    allowed: bool
    reasons: tuple[str, ...]
    revision: str
    scope: GrantScope | None = None
    constraints: Constraints | None = None
    ttl_seconds: int = 0
    question: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    result: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class GrantAsk:
    """A peer's grant request as the policy reads it."""

    datasets: tuple[str, ...]
    fields: tuple[str, ...]
    granularity: str
    flow: str
    purpose: str
    period_start: int
    period_end: int
    min_group_size: int = 0

    def policy_input(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets),
            "fields": list(self.fields),
            "granularity": self.granularity,
            "flow": self.flow,
            "purpose": self.purpose,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "min_group_size": self.min_group_size,
        }


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what} is not a list of strings")
    return tuple(value)


def _verdict(result: Any, path: str, flag: str) -> tuple[bool, tuple[str, ...]]:
    """Check the decision's shape; anything unexpected is a PolicyError, never an allow."""
    if not isinstance(result, dict):
        raise PolicyError(f"{path} is undefined or not an object")
    if not isinstance(result.get(flag), bool):
        raise PolicyError(f"{path}.{flag} is not a boolean")
    return result[flag], _strings(result.get("reasons"), f"{path}.reasons")


def decide_alignment(engine: PolicyEngine, peer: Manifest) -> Alignment:
    revision = engine.revision
    question = {"peer": peer.policy_input()}
    result = engine.evaluate(ALIGNMENT_PATH, question)
    aligned, reasons = _verdict(result, ALIGNMENT_PATH, "aligned")
    offer = result.get("offer")
    if not isinstance(offer, dict):
        raise PolicyError(f"{ALIGNMENT_PATH}.offer is not an object")
    return Alignment(
        aligned=aligned,
        reasons=reasons,
        shared_aims=_strings(result.get("shared_aims"), f"{ALIGNMENT_PATH}.shared_aims"),
        offer={k: _strings(v, f"{ALIGNMENT_PATH}.offer.{k}") for k, v in offer.items()},
        revision=revision,
        question=question,
        result=result,
    )


def decide_grant(engine: PolicyEngine, peer: Manifest, ask: GrantAsk) -> GrantDecision:
    revision = engine.revision
    question = {"peer": peer.policy_input(), "request": ask.policy_input()}
    result = engine.evaluate(GRANT_PATH, question)
    allowed, reasons = _verdict(result, GRANT_PATH, "allowed")
    if not allowed:
        return GrantDecision(False, reasons, revision, question=question, result=result)
    try:
        scope = GrantScope.from_claim(result["scope"])
        constraints = Constraints.from_claim(result["constraints"])
        ttl = result["ttl_seconds"]
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"{GRANT_PATH} allowed a grant without a valid scope: {exc}") from exc
    if type(ttl) is not int or ttl <= 0:
        raise PolicyError(f"{GRANT_PATH}.ttl_seconds is not a positive integer")
    _check_matches(scope, ask)
    return GrantDecision(True, reasons, revision, scope, constraints, ttl, question, result)


def _check_matches(scope: GrantScope, ask: GrantAsk) -> None:
    """The policy shapes a grant from the request; a scope wider or other than asked is a fault."""
    same = (
        scope.datasets == frozenset(ask.datasets)
        and (not ask.fields or scope.fields == frozenset(ask.fields))
        and (scope.period_start, scope.period_end) == (ask.period_start, ask.period_end)
        and (scope.flow, scope.purpose, scope.granularity.value) == (ask.flow, ask.purpose, ask.granularity)
    )
    if not same:
        raise PolicyError(f"{GRANT_PATH} returned a scope other than the one requested")
