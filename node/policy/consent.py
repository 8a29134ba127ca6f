"""The consent decision the node asks for: one profile, one dataset, one flow, one purpose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coopfed.node.policy.engine import PolicyEngine
from coopfed.node.policy.errors import PolicyError

if TYPE_CHECKING:
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.policy.holder import PolicyHolder

CONSENT_PATH = "coopfed/consent/decision"


@dataclass(frozen=True)
class ConsentDecision:
    """The policy's answer, its plain-language reasons, and the policy revision that gave it."""

    allowed: bool
    reasons: tuple[str, ...]
    revision: str
    profile_level: str = ""  # the level applied: a persona's level where one was chosen
    persona: str = ""  # the persona applied, "" where none (or an unknown one) was named


def consent_input(profile: dict[str, Any], dataset: str, flow: str, purpose: str) -> dict[str, Any]:
    """The consent policy's input; `profile` is `ConsentSettings.policy_input()`."""
    return {"profile": profile, "dataset": str(dataset), "flow": str(flow), "purpose": str(purpose)}


def decide_consent(
    engine: PolicyEngine, settings_input: dict[str, Any], dataset: str, flow: str, purpose: str
) -> ConsentDecision:
    """Ask `engine` whether the profile allows the release; fail closed on a malformed answer."""
    revision = engine.revision
    result = engine.evaluate(CONSENT_PATH, consent_input(settings_input, dataset, flow, purpose))
    return parse_decision(result, revision)


def parse_decision(result: Any, revision: str) -> ConsentDecision:
    """Check the decision document's shape; anything unexpected is a PolicyError, never an allow."""
    if not isinstance(result, dict):
        raise PolicyError(f"{CONSENT_PATH} is undefined or not an object")
    allowed, reasons = result.get("allowed"), result.get("reasons")
    if not isinstance(allowed, bool):
        raise PolicyError(f"{CONSENT_PATH}.allowed is not a boolean")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise PolicyError(f"{CONSENT_PATH}.reasons is not a list of strings")
    level, persona = result.get("profile_level", ""), result.get("persona", "")
    return ConsentDecision(
        allowed=allowed,
        reasons=tuple(reasons),
        revision=revision,
        profile_level=level if isinstance(level, str) else "",
        persona=persona if isinstance(persona, str) else "",
    )


class ConsentAnswers:
    """The consent policy's answers, each evaluated and logged once per profile and policy
    revision (when first asked), never per member: the one place features ask consent."""

    def __init__(self, policy: PolicyHolder, decision_log: DecisionLog | None) -> None:
        self._policy, self._log = policy, decision_log
        # (revision, profile, dataset, flow, purpose) -> (decision, id of its decision-log entry)
        self._cache: dict[tuple[str, str, str, str, str], tuple[ConsentDecision, str]] = {}

    def allows(self, profile: dict[str, Any], dataset: str, flow: str, purpose: str) -> bool:
        return self.logged(profile, dataset, flow, purpose)[0].allowed

    def logged(
        self, profile: dict[str, Any], dataset: str, flow: str, purpose: str
    ) -> tuple[ConsentDecision, str]:
        """The answer and the id of the decision-log entry recording it ("" with no log)."""
        revision = self._policy.revision
        if self._cache and next(iter(self._cache))[0] != revision:
            self._cache.clear()  # a reload: answers of the old revision are never asked again
        key = (revision, str(sorted(profile.items())), str(dataset), str(flow), str(purpose))
        cached = self._cache.get(key)
        if cached is None:
            decision = decide_consent(self._policy, profile, dataset, flow, purpose)
            decision_id = ""
            if self._log is not None:
                result = {
                    "allowed": decision.allowed,
                    "reasons": list(decision.reasons),
                    "profile_level": decision.profile_level,
                    "persona": decision.persona,
                }
                query = consent_input(profile, dataset, flow, purpose)
                decision_id = self._log.record(CONSENT_PATH, query, result, decision.revision)
            cached = self._cache[key] = (decision, decision_id)
        return cached
