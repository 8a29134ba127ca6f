"""Domain types shared by the node's storage, policy and service layers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum

from coopfed.federation.canonical import canonical_json

HALF_HOUR = 1800  # seconds in one settlement period


class ConsentLevel(StrEnum):
    """The traffic light a member sets."""

    GREEN = "green"  # the co-op may share as it sees fit, within its aims and governance
    AMBER = "amber"  # the member chooses per dataset and per flow
    RED = "red"  # internal use only (flow 1)


class Flow(StrEnum):
    """The five data flows; every release of data names one."""

    INTERNAL = "internal"  # 1: member -> own co-op
    MEMBER_TO_MEMBER = "member_to_member"  # 2: benchmarking inside the co-op
    COOP_TO_COOP = "coop_to_coop"  # 3: federated aggregates with aligned co-ops
    THIRD_PARTY = "third_party"  # 4: licensing or research
    OPEN_DATA = "open_data"  # 5: aggregated, k-anonymous


DATASETS = ("demand", "generation", "export")
"""Half-hourly kWh datasets a member can upload."""


@dataclass(frozen=True)
class ConsentSettings:
    """What a member allows. Members with equal settings share one consent profile.

    `choices` maps a dataset id to the flows the member allows for it; it matters only at
    amber. `persona`, when set, names a preset in policy data that the policy applies.
    """

    level: ConsentLevel = ConsentLevel.RED
    choices: dict[str, frozenset[Flow]] = field(default_factory=dict)
    persona: str = ""
    nudges: bool = False  # opted in to appliance-shifting nudges (not part of the profile)

    def policy_input(self) -> dict:
        """The consent profile as the consent policy reads it (no member identifiers)."""
        return {
            "level": self.level.value,
            "persona": self.persona,
            "choices": {ds: sorted(f.value for f in flows) for ds, flows in sorted(self.choices.items())},
        }

    @property
    def profile_id(self) -> str:
        """Stable id of the consent profile: a hash of everything the policy reads."""
        return hashlib.sha256(canonical_json(self.policy_input())).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({**self.policy_input(), "nudges": self.nudges}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConsentSettings:
        raw = json.loads(text)
        return cls(
            level=ConsentLevel(raw["level"]),
            choices={ds: frozenset(Flow(f) for f in fl) for ds, fl in raw["choices"].items()},
            persona=raw.get("persona", ""),
            nudges=bool(raw.get("nudges", False)),
        )
