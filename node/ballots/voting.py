"""Proposals, petitions, votes and tallies on a node: the rules members decide by ballot.

A proposal opens at once when the board makes it; a member's proposal is a petition until the
number of admitted members the policy data names have signed it. Only admitted members sign and
vote, once each. The tally is counted only once the ballot closes, in the transaction that
closes it, and is published in the decision log with every receipt hash and its choice.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coopfed.node.auth import Principal
from coopfed.node.ballots.tally import ABSTAIN, Rules, count, new_receipt, receipt_hash
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from coopfed.node.limits import limit_of
from coopfed.node.policy import data_changes as changes
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.storage import Store
from coopfed.node.storage import base as storage
from coopfed.node.storage.ballots import BallotRecord, BallotStore, Box, Closing
from coopfed.node.storage.governance import Conflict, GovernanceStore

OPENED_PATH = "coopfed/ballots/opened"
TALLY_PATH = "coopfed/ballots/tally"
HOUR = 3600
DAY = 86_400
MAX_ALTERNATIVES = 8
MAX_VOTING_DAYS = 366
STATE_WORDS = {  # each state of a ballot as members read it
    "petition": "a petition gathering signatures",
    "scheduled": "scheduled: voting has not started",
    "open": "open for voting",
    "awaiting its count": "voting has ended; not counted yet",
    "closed": "closed and counted",
}


@dataclass(frozen=True)
class Change:
    """One alternative a proposal offers: its title and its JSON merge patch over policy data."""

    title: str
    patch: dict[str, Any]


def rules_of(data: Mapping[str, Any]) -> Rules:
    """The ballot rules in policy data; FailedPrecondition where they are missing or unusable."""
    section: Any = data.get("ballots")
    try:
        rules = Rules(
            float(section["quorum_percent"]), float(section["majority_percent"]),
            int(section["petition_signatures"]), float(section["voting_days"]),
            float(section["min_voting_hours"]),
        )  # fmt: skip
    except (TypeError, KeyError, ValueError):
        raise FailedPrecondition(
            "the policy data has no usable ballots section (quorum_percent, majority_percent, "
            "petition_signatures, voting_days, min_voting_hours)",
            code="ballot.no_rules",
        ) from None
    ok = (
        0 <= rules.quorum_percent <= 100 and 0 <= rules.majority_percent < 100
        and rules.petition_signatures >= 1 and 0 < rules.voting_days <= MAX_VOTING_DAYS
        and 0 <= rules.min_voting_hours <= rules.voting_days * 24
    )  # fmt: skip
    if not ok:
        raise FailedPrecondition("the ballot rules in the policy data are out of range", code="ballot.rules")
    return rules


# --- proposing --------------------------------------------------------------------------------


def _text(value: str, name: str) -> str:
    text = value.strip()
    if not text or len(text) > limit_of(name):
        raise InvalidArgument(f"{name}: 1 to {limit_of(name)} characters", code=f"ballot.{name}", field=name)
    return text


def _check_change(
    data: Mapping[str, Any], change: Change, where: str, *, keeps: bool = False
) -> list[dict[str, Any]]:
    """What the change changes, in words; InvalidArgument unless it changes governed data
    only, keeps each value's kind, and leaves ballot rules that still work. An alternative of a
    choice may change nothing (`keeps`: keep the rules as they are)."""
    patch = change.patch
    touched = changes.changed_pointers(data, changes.merge_patch(data, patch))
    if not touched and not keeps:
        raise InvalidArgument(
            f"{where}: changes nothing in the policy data", code="ballot.no_change", field=where
        )
    outside = changes.ungoverned_changes(data, patch)
    if outside:
        raise InvalidArgument(
            f"{where}: members do not decide {', '.join(outside[:5])}; ballots change only "
            f"{', '.join(changes.governed_paths(data))}",
            code="ballot.not_governed",
            field=where,
        )
    kinds = changes.type_changes(data, patch)
    if kinds:
        raise InvalidArgument(
            f"{where}: {', '.join(kinds[:5])} would hold another kind of value than now",
            code="ballot.kind",
            field=where,
        )
    try:
        rules_of(changes.merge_patch(data, patch))
    except FailedPrecondition as exc:
        raise InvalidArgument(f"{where}: {exc.message}", code="ballot.rules", field=where) from None
    return changes.describe(data, changes.merge_patch(data, patch), touched)


def _choices(entries: Sequence[tuple[str, Change, list[dict[str, Any]]]]) -> list[dict[str, str]]:
    if len(entries) == 1:
        return [
            {"key": "yes", "title": "yes: make the change"},
            {"key": "no", "title": "no: keep the rules as they are"},
            {"key": ABSTAIN, "title": "abstain"},
        ]
    return [{"key": k, "title": a.title.strip()} for k, a, _ in entries] + [
        {"key": ABSTAIN, "title": "abstain"}
    ]


def _window(rules: Rules, opens: int | None, closes: int | None, now: int) -> tuple[int, int]:
    start = now if opens is None else opens
    if not now - 60 <= start <= now + MAX_VOTING_DAYS * DAY:
        raise InvalidArgument(
            f"opens_at: not in the past, nor more than {MAX_VOTING_DAYS} days ahead",
            code="ballot.opens_at",
            field="opens_at",
        )
    end = start + int(rules.voting_days * DAY) if closes is None else closes
    if not max(rules.min_voting_hours * HOUR, 1) <= end - start <= MAX_VOTING_DAYS * DAY:
        raise InvalidArgument(
            f"closes_at: a ballot is open for at least {rules.min_voting_hours:g} hours "
            f"and at most {MAX_VOTING_DAYS} days",
            code="ballot.closes_at",
            field="closes_at",
        )
    return start, end


def _iso(unix: int | None) -> str:
    return datetime.fromtimestamp(unix or 0, UTC).isoformat()


def state(ballot: BallotRecord, now: int) -> str:
    """petition, scheduled, open, awaiting its count, or closed."""
    if ballot.closed_unix is not None:
        return "closed"
    if ballot.opens_unix is None or ballot.closes_unix is None:
        return "petition"
    if now < ballot.opens_unix:
        return "scheduled"
    return "open" if now < ballot.closes_unix else "awaiting its count"


class Ballots:
    """The ballots of one node: who may propose, sign and vote, and the count at the close."""

    def __init__(
        self,
        *,
        store: Store,
        ballots: BallotStore,
        governance: GovernanceStore,
        decision_log: DecisionLog,
        policy: PolicyHolder,
        opa_binary: str = "",
    ) -> None:
        self.store, self.ballots, self.governance = store, ballots, governance
        self.decision_log, self.policy, self.opa_binary = decision_log, policy, opa_binary

    def all_ballots(self) -> list[BallotRecord]:
        return self.ballots.list_ballots()

    def has_voted(self, ballot_id: str, member_id: str) -> bool:
        return self.ballots.has_voted(ballot_id, member_id)

    def propose(
        self,
        who: Principal,
        title: str,
        explanation: str,
        alternatives: Sequence[Change],
        opens: int | None,
        closes: int | None,
        now: int,
    ) -> BallotRecord:
        """Open a ballot (the board) or a petition (an admitted member), with the impact of each
        alternative on the real decision log stored beside it."""
        title, explanation = _text(title, "title"), _text(explanation, "explanation")
        if not 1 <= len(alternatives) <= MAX_ALTERNATIVES:
            raise InvalidArgument(
                f"alternatives: one change, or 2 to {MAX_ALTERNATIVES} alternatives",
                code="ballot.alternatives",
                field="alternatives",
            )
        if len(alternatives) > 1 and any(not a.title.strip() for a in alternatives):
            raise InvalidArgument(
                "alternatives: each needs a title", code="ballot.alternatives", field="alternatives"
            )
        policies = self.policy.policies
        rules = rules_of(policies.data)
        signer = self._proposer(who)
        entries = []
        for i, alt in enumerate(alternatives):
            where = "change_json" if len(alternatives) == 1 else f"alternatives[{i}]"
            touched = _check_change(policies.data, alt, where, keeps=len(alternatives) > 1)
            entries.append((f"a{i + 1}" if len(alternatives) > 1 else "yes", alt, touched))
        if not any(touched for _, _, touched in entries):
            raise InvalidArgument(
                "alternatives: at least one must change the policy data",
                code="ballot.no_change",
                field="alternatives",
            )
        opens_now = who.kind == "board" or rules.petition_signatures <= 1
        window = _window(rules, opens, closes, now) if opens_now else None  # checked before the replay
        reports = self.impacts([alt.patch for _, alt, _ in entries])
        proposal = {
            "title": title,
            "explanation": explanation,
            "kind": "choice" if len(entries) > 1 else "yes_no",
            "alternatives": [
                {
                    "key": key,
                    "title": alt.title.strip() or "make the change",
                    "patch": alt.patch,
                    "changes": touched,
                    "impact": report,
                }
                for (key, alt, touched), report in zip(entries, reports, strict=True)
            ],
            "choices": _choices(entries),
            "rules": rules.to_json(),
            "base_revision": policies.revision,
        }
        ballot_id = "ballot-" + uuid.uuid4().hex[:12]
        record = BallotRecord(ballot_id, proposal, f"{who.kind}:{who.id}", now, *(window or (None, None)))
        log = [self._opened_event(record)] if window else []
        with self.decision_log.batch(*log) as events:
            try:
                return self.ballots.create_ballot(record, signer, events)
            except storage.AlreadyExists:
                raise AlreadyExists(
                    "a ballot with this id exists; propose again", code="ballot.exists"
                ) from None

    def _proposer(self, who: Principal) -> str:
        """The member who signs a petition first ("" for the board); refuses anyone else."""
        if who.kind == "board":
            return ""
        self._admitted(who, "propose")
        return who.id

    def _admitted(self, who: Principal, what: str) -> None:
        if who.kind != "member":
            raise PermissionDenied(f"only members {what}", code="ballot.members_only")
        member = self.store.get_member(who.id)
        if member.status != "admitted":
            raise PermissionDenied(
                f"only admitted members {what}; your membership is {member.status}",
                code="ballot.not_admitted",
            )

    def _opened_event(self, record: BallotRecord) -> dict[str, Any]:
        return self.decision_log.event(
            OPENED_PATH,
            {"ballot_id": record.ballot_id, "title": record.proposal["title"],
             "proposed_by": record.proposed_by, "proposal_digest": changes.digest(record.proposal)},
            {"opens_at": _iso(record.opens_unix), "closes_at": _iso(record.closes_unix)},
            self.policy.revision,
        )  # fmt: skip

    def impacts(self, patches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """`coopfed policy diff` of each patch against the policies in force, over the node's own
        decision log: how many past decisions would change, with examples."""
        from coopfed.node.policy.errors import PolicyEngineError
        from coopfed.node.policy.impact import ImpactAnalysis, ImpactReport, parse_entries
        from coopfed.node.policy.loader import make_policy_set
        from coopfed.node.policy.regotest import find_tool
        from coopfed.node.policy.replay import replayer_for

        self.decision_log.flush()  # the waiting consent decisions are part of the record
        base_set = self.policy.policies
        opa = find_tool("opa", self.opa_binary or None)
        base = replayer_for(base_set, "auto", opa)
        reports = []
        try:
            for patch in patches:
                head_set = make_policy_set(base_set.modules, changes.merge_patch(base_set.data, patch))
                try:
                    head = replayer_for(head_set, "auto", opa)
                except PolicyEngineError as exc:
                    raise InvalidArgument(
                        f"the policies do not compile with this change: {exc}", code="ballot.compile"
                    ) from None
                report = ImpactReport("in force", "proposed", base_set.revision, head_set.revision, base.name)
                try:
                    ImpactAnalysis(base, head, report).run(
                        parse_entries(self.governance.decision_log(), report.malformed)
                    )
                finally:
                    head.close()
                reports.append(
                    {
                        "summary": f"{report.changed:,} of {report.replayed:,} past decisions would change",
                        "changed": report.changed,
                        "replayed": report.replayed,
                        "markdown": report.to_markdown(),
                        "report": report.to_json(),
                    }
                )
        finally:
            base.close()
        return reports

    # --- petitions and votes --------------------------------------------------------------------

    def get(self, ballot_id: str) -> BallotRecord:
        try:
            return self.ballots.get_ballot(ballot_id)
        except storage.NotFound:
            raise NotFound(f"no ballot {ballot_id!r}", code="ballot.not_found", field="ballot_id") from None

    def sign(self, who: Principal, ballot_id: str, now: int) -> BallotRecord:
        """An admitted member signs a petition; the signature that makes the number opens it."""
        self._admitted(who, "sign petitions")
        ballot = self.get(ballot_id)
        rules = Rules(**ballot.proposal["rules"])
        opens, closes = _window(rules, None, None, now)
        opened = dataclasses.replace(ballot, opens_unix=opens, closes_unix=closes)
        # appended only by the signature that opens it (so without the decisions waiting in memory)
        event = self._opened_event(opened)
        try:
            return self.ballots.sign_petition(
                ballot_id, who.id, rules.petition_signatures, opens, closes, [event]
            )
        except Conflict as exc:
            raise FailedPrecondition(str(exc), code="ballot.signed") from None

    def vote(self, who: Principal, ballot_id: str, choice: str, now: int) -> tuple[str, str]:
        """Cast an admitted member's one vote; returns (receipt, its hash). The receipt is the
        voter's alone: the node keeps only its hash, beside the choice and apart from the voter."""
        self._admitted(who, "vote")
        ballot = self.get(ballot_id)
        keys = [c["key"] for c in ballot.proposal["choices"]]
        if choice not in keys:
            raise InvalidArgument(f"choice: one of {', '.join(keys)}", code="ballot.choice", field="choice")
        where = state(ballot, now)
        if where != "open":
            raise FailedPrecondition(
                f"ballot {ballot_id} is {where}: it takes no votes now", code="ballot.not_open"
            )
        receipt = new_receipt()
        digest = receipt_hash(ballot_id, receipt)
        try:
            self.ballots.cast_vote(ballot_id, who.id, digest, choice)
        except Conflict:
            raise AlreadyExists(
                f"you voted in {ballot_id} already: one member, one vote", code="ballot.voted"
            ) from None
        return receipt, digest

    # --- closing --------------------------------------------------------------------------------

    def tally(self, ballot_id: str, now: int) -> BallotRecord:
        """The closed ballot with its tally; closes and counts it first where its time is up."""
        ballot = self.get(ballot_id)
        where = state(ballot, now)
        if where == "closed":
            return ballot
        if where != "awaiting its count":
            raise FailedPrecondition(
                f"ballot {ballot_id} is {where}; it is counted only once it closes", code="ballot.not_closed"
            )
        log = self.decision_log
        try:
            with log.batch() as waiting:

                def counted(record: BallotRecord, box: Box, eligible: int) -> Closing:
                    result = count(record.ballot_id, record.proposal, box, eligible, _iso(now))
                    event = log.event(
                        TALLY_PATH,
                        {"ballot_id": record.ballot_id, "title": record.proposal["title"],
                         "proposal_digest": result["proposal_digest"]},
                        result, self.policy.revision,
                    )  # fmt: skip
                    return Closing(result, changes.digest(result), [*waiting, event])

                return self.ballots.close_ballot(ballot_id, now, counted)
        except Conflict:
            return self.get(ballot_id)  # closed meanwhile by another caller
