"""The terms of a settlement run, as the ledger policy decides them: key, parameters, prices.

The policy (`policies/ledger/settlement.rego`) is asked once per run, with only the run's span
as input, so its cost does not grow with members or periods. It names the allocation key and
its parameters; `Terms.tiers` turns them into the weights `settle.allocate` applies:

- `pro_rata`: one tier, in proportion to each member's import (the default);
- `equal`: equal weights for every member importing in the period;
- `static`: the co-op's fixed percentages for named members (others weigh 0);
- `priority`: the named members first, pro rata among them.

After the key's tiers, whatever matched energy is left (members capped at their import) is
shared pro rata among everyone who still imports, so no local energy goes to the grid while a
neighbour buys from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from coopfed.node.errors import FailedPrecondition
from coopfed.node.ledger.money import millipence

TERMS_PATH = "coopfed/ledger/settlement/terms"


@dataclass(frozen=True)
class Terms:
    key: str
    key_title: str
    local_mp: int  # millipence per kWh
    import_mp: int
    export_mp: int
    cutoff_days: int
    priority_members: tuple[str, ...] = ()
    static_shares: dict[str, int] = field(default_factory=dict)  # member -> thousandths of a percent
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_decision(cls, result: Any) -> Terms:
        """The policy's answer as terms; FailedPrecondition (with its reasons) where it refused."""
        if not isinstance(result, dict) or result.get("allowed") is not True:
            reasons = result.get("reasons") if isinstance(result, dict) else None
            words = " ".join(reasons) if reasons else "the ledger policy gave no terms"
            raise FailedPrecondition(f"cannot settle: {words}", code="ledger.terms")
        prices = result["prices_pence_per_kwh"]
        return cls(
            key=result["key"],
            key_title=result["key_title"],
            local_mp=millipence(prices["local"]),
            import_mp=millipence(prices["grid_import"]),
            export_mp=millipence(prices["grid_export"]),
            cutoff_days=int(result["cutoff_days"]),
            priority_members=tuple(result["priority_members"]),
            static_shares={m: _thousandths(p) for m, p in result["static_shares"].items()},
            reasons=tuple(result["reasons"]),
        )

    def tiers(self, member_ids: tuple[str, ...]) -> list[np.ndarray | None]:
        """Weights per tier for members in this order; None is pro rata to import."""
        if self.key == "equal":
            return [np.ones(len(member_ids), np.int64)]
        if self.key == "static":
            return [np.array([self.static_shares.get(m, 0) for m in member_ids], np.int64)]
        if self.key == "priority":
            named = set(self.priority_members)
            return [np.array([m in named for m in member_ids], bool), None]
        return [None]

    def public(self) -> dict[str, Any]:
        """What the decision log and the run record keep: prices in pence per kWh, as decided."""
        return {
            "key": self.key,
            "key_title": self.key_title,
            "prices_pence_per_kwh": {
                "local": _pence(self.local_mp),
                "grid_import": _pence(self.import_mp),
                "grid_export": _pence(self.export_mp),
            },
            "cutoff_days": self.cutoff_days,
            "priority_members": list(self.priority_members),
            "static_shares": {m: _pence(t) for m, t in self.static_shares.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.public(), sort_keys=True, separators=(",", ":"))


def _thousandths(value: Any) -> int:
    """A percentage as whole thousandths (the policy checked it is a positive number)."""
    try:
        return int(Decimal(str(value)) * 1000)
    except InvalidOperation:
        raise FailedPrecondition(
            f"cannot settle: {value!r} is not a percentage", code="ledger.terms"
        ) from None


def _pence(millipence: int) -> str:
    """Exact decimal text: 28500 -> '28.5'."""
    return format((Decimal(millipence) / 1000).normalize(), "f")
