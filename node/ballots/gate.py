"""The rule a node applies to every signed bundle: ballot-governed policy data changes only as
passed ballots changed it, and the bundle names those ballots (id and tally digest).

The governed data a node holds is its own policy folder's (what `coopfed node init` wrote) with
every ballot the node has applied since, in order: every other change to it was refused, so that
is what the data must be. A bundle is checked against that plus the ballots it names that were
not applied yet. A rollback is no exception: undoing what members decided needs a ballot too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coopfed.node.policy.archive import BundleError
from coopfed.node.policy.bundle import VerifiedBundle
from coopfed.node.policy.data_changes import merge_patch, unexplained
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import load_policies
from coopfed.node.storage import base as storage
from coopfed.node.storage.ballots import BallotStore

log = logging.getLogger(__name__)


class BallotGate:
    """Checks bundles against the node's ballots; records the ballots a bundle it ran applied."""

    def __init__(self, store: BallotStore, policy_dir: Path) -> None:
        self.store, self.policy_dir = store, policy_dir

    def governed_now(self) -> dict[str, Any] | None:
        """The policy data members have decided so far: the node's folder with every applied
        ballot's change; None where the node has no policy folder to start from."""
        try:
            data: dict[str, Any] = load_policies(self.policy_dir).data
        except PolicyError:
            return None
        for ballot_id in self._applied():
            tally = self.store.get_ballot(ballot_id).tally or {}
            data = merge_patch(data, tally.get("change") or {})
        return data

    def _applied(self) -> list[str]:
        seen: dict[str, None] = {}
        for ballot_id, _, _ in self.store.applications():
            seen.setdefault(ballot_id, None)
        return list(seen)

    def check(self, verified: VerifiedBundle) -> None:
        """BundleError, in plain words, unless every change the bundle makes to governed data is
        a passed ballot's that it names."""
        try:
            self._check(verified)
        except storage.StorageError as exc:
            raise BundleError(f"cannot read the node's ballots to check the bundle: {exc}") from exc

    def _check(self, verified: VerifiedBundle) -> None:
        current = self.governed_now()
        if current is None:
            log.warning("no policy folder at %s: ballot-governed data is not checked", self.policy_dir)
            return
        applied = set(self._applied())
        patches = [self._passed(b, d) for b, d in verified.info.ballots if b not in applied]
        wrong = unexplained(current, verified.policies.data, patches)
        if wrong:
            raise BundleError(
                "the bundle changes policy data that members decide by ballot without a passed ballot "
                f"naming that change: {', '.join(wrong[:8])}"
            )

    def _passed(self, ballot_id: str, tally_digest: str) -> dict[str, Any]:
        try:
            ballot = self.store.get_ballot(ballot_id)
        except storage.NotFound:
            raise BundleError(f"the bundle names ballot {ballot_id}, which this node does not hold") from None
        if ballot.tally is None:
            raise BundleError(f"the bundle names ballot {ballot_id}, which is not closed and counted")
        if ballot.tally_digest != tally_digest:
            raise BundleError(
                f"the bundle names ballot {ballot_id} with a tally digest that is not its tally's"
            )
        if not ballot.tally.get("passed"):
            raise BundleError(f"the bundle names ballot {ballot_id}, which did not pass")
        return ballot.tally["change"]

    def accepted(self, verified: VerifiedBundle) -> None:
        """Record the named ballots as applied by the revision the node now runs."""
        named: Sequence[str] = [b for b, _ in verified.info.ballots]
        if named:
            self.store.record_application(named, verified.info.revision, int(time.time()))
