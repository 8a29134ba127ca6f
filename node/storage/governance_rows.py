"""SQL text and row mapping of the SQLite governance store."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from coopfed.federation.grants import GrantScope
from coopfed.node.storage.base import NotFound
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.governance import GrantKind
from coopfed.node.storage.records import (
    AccessEntry,
    Assessment,
    DataRequestRecord,
    Decision,
    GrantRecord,
    Organisation,
    OrganisationProfile,
    Outcome,
    RequestSpec,
    RequestState,
    Review,
)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- SQL -------------------------------------------------------------------------------------

REQUEST = """SELECT r.request_key, r.request_id, o.organisation_id, r.spec_json, r.state, r.submitted_at,
    r.decision_id, r.revision, r.result_json
FROM data_requests AS r JOIN organisations AS o USING (org_key)"""

REQUEST_BY_ID = REQUEST + " WHERE r.request_id = ?"

# ?1 organisation id or '', ?2 state or '', after request ?3 (or from the first, for ''), at most ?4.
_REQUESTS_WHERE = " WHERE (?1 = '' OR o.organisation_id = ?1) AND (?2 = '' OR r.state = ?2) AND (?3 = ''"
_AFTER_REQUEST = "(SELECT request_key FROM data_requests WHERE request_id = ?3))"
REQUESTS_NEWEST = (
    REQUEST + _REQUESTS_WHERE + f" OR r.request_key < {_AFTER_REQUEST} ORDER BY r.request_key DESC LIMIT ?4"
)
REQUESTS_OLDEST = (
    REQUEST + _REQUESTS_WHERE + f" OR r.request_key > {_AFTER_REQUEST} ORDER BY r.request_key ASC LIMIT ?4"
)

GRANT = """SELECT g.grant_id, r.request_id, o.organisation_id, g.token, g.issued_unix, g.expires_unix,
    g.scope_json, g.min_group_size, g.revoked_at, g.revocation_reason
FROM grants AS g JOIN data_requests AS r USING (request_key)
JOIN organisations AS o ON o.org_key = g.org_key"""

GRANT_BY_ID = GRANT + " WHERE g.grant_id = ?"
GRANT_BY_REQUEST = GRANT + " WHERE g.request_key = ?"
# ?1's grants, newest first, after the grant issued at ?2 with id ?3 (NULL: from the first), at most ?4.
GRANTS_OF = (
    GRANT
    + """ WHERE o.organisation_id = ?1
    AND (CAST(?2 AS BIGINT) IS NULL OR g.issued_unix < ?2 OR (g.issued_unix = ?2 AND g.grant_id > ?3))
ORDER BY g.issued_unix DESC, g.grant_id LIMIT ?4"""
)

# Organisations in order of registration after ?1 (or from the first, for ''), at most ?2.
ORGANISATIONS = """SELECT org_key FROM organisations
WHERE org_key > coalesce((SELECT org_key FROM organisations WHERE organisation_id = ?1), 0)
ORDER BY org_key LIMIT ?2"""

INSERT_REQUEST = """INSERT INTO data_requests (request_id, org_key, spec_json, state, submitted_at,
    decision_id, revision, result_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

AWAITING = "SELECT request_key, org_key FROM data_requests WHERE request_id = ? AND state = 'awaiting_review'"

INSERT_REVIEW = """INSERT INTO reviews (request_key, decision_id, reviewer, outcome, reason, proposed,
    decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)"""

REVIEW_OF = """SELECT decision_id, reviewer, outcome, reason, proposed, decided_at
FROM reviews WHERE request_key = ?"""

# Policy decisions and board decisions as one list, filtered by
# ?1 organisation id or '', ?2 since or NULL, ?3 until or NULL.
_DECISIONS = """WITH d AS (
SELECT 'policy' AS decided_by, r.request_id, o.organisation_id, r.submitted_at AS decided_at,
    json_extract(r.result_json, '$.outcome') AS outcome, NULL AS agreed
FROM data_requests AS r JOIN organisations AS o USING (org_key)
UNION ALL
SELECT 'board', r.request_id, o.organisation_id, v.decided_at, v.outcome,
    CASE WHEN v.proposed = 'refer' THEN NULL ELSE v.outcome = v.proposed END
FROM reviews AS v JOIN data_requests AS r USING (request_key) JOIN organisations AS o USING (org_key))
SELECT {columns} FROM d
WHERE (?1 = '' OR organisation_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR decided_at >= ?2)
    AND (CAST(?3 AS TEXT) IS NULL OR decided_at < ?3)"""

# ... and ?4 decided_by or '', ?5 outcome or '', after the decision ?6 decided_at, ?7 decided_by,
# ?8 request_id (?6 NULL: from the first), at most ?9.
DECISIONS = (
    _DECISIONS.format(columns="decided_by, request_id")
    + """
    AND (?4 = '' OR decided_by = ?4) AND (?5 = '' OR outcome = ?5)
    AND (CAST(?6 AS TEXT) IS NULL OR decided_at < ?6
        OR (decided_at = ?6 AND (decided_by, request_id) > (?7, ?8)))
ORDER BY decided_at DESC, decided_by, request_id LIMIT ?9"""
)

AGREEMENT = (
    _DECISIONS.format(columns="count(*), count(*) FILTER (WHERE agreed)")
    + """
    AND decided_by = 'board' AND agreed IS NOT NULL"""
)

TRACK_RECORD = """SELECT count(*) FILTER (WHERE revoked_at IS NULL AND expires_unix <= ?),
    count(*) FILTER (WHERE revoked_at IS NOT NULL)
FROM grants WHERE org_key = ?"""

REVOKE = """UPDATE grants SET revoked_at = ?, revocation_reason = ?, revoked_by = ?
WHERE grant_id = ? AND revoked_at IS NULL"""

REVOCATION = "SELECT revocation_reason FROM grants WHERE grant_id = ? AND revoked_at IS NOT NULL"

HEAD = "SELECT seq, hash FROM decision_log_head"

SIGNED_HEAD = "SELECT seq, hash, signed FROM decision_log_head"

DECISION_BY_ID = "SELECT entry_json FROM decision_log WHERE decision_id = ? ORDER BY position LIMIT 1"

SET_HEAD = """INSERT INTO decision_log_head (only_row, seq, hash) VALUES (1, ?, ?)
ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"""

SET_SIGNED_HEAD = """INSERT INTO decision_log_head (only_row, seq, hash, signed) VALUES (1, ?, ?, ?)
ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signed = excluded.signed"""

KEEP_HEAD = """INSERT INTO witnessed_heads (node_id, seq, hash, signed, received_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (node_id, seq, hash) DO NOTHING"""

HEADS_OF = (
    """SELECT signed FROM witnessed_heads WHERE node_id = ? ORDER BY seq DESC, witness_key DESC LIMIT ?"""
)

MEMBERS_OF = """SELECT p.profile_id, m.member_id FROM admitted_members AS m
JOIN profiles AS p USING (profile_key)
WHERE p.profile_id IN (SELECT value FROM json_each(?)) ORDER BY p.profile_id, m.member_key"""

PROFILES_OF = """SELECT m.member_id, p.profile_id FROM admitted_members AS m
JOIN profiles AS p USING (profile_key)
WHERE m.member_id IN (SELECT value FROM json_each(?))"""

# ?3 start and ?4 end of a span, ?5 the extents' bucket: a member whose first or last period
# in a bucket lies in the span has a reading there; only a span strictly inside an extent
# needs a look at the readings.
CONTRIBUTORS = """SELECT DISTINCT m.member_id, p.profile_id FROM reading_extents AS x
JOIN admitted_members AS m USING (member_key) JOIN profiles AS p USING (profile_key)
WHERE p.profile_id IN (SELECT value FROM json_each(?1)) AND x.dataset_id = ?2
AND x.bucket BETWEEN ?3 / ?5 AND (?4 - 1) / ?5 AND x.first_period < ?4 AND x.last_period >= ?3
AND (x.first_period >= ?3 OR x.last_period < ?4 OR EXISTS (
    SELECT 1 FROM readings AS r WHERE r.member_key = x.member_key AND r.dataset_id = ?2
    AND r.period_start >= ?3 AND r.period_start < ?4))"""

# How many admitted members hold a reading in any released span, by the rule of CONTRIBUTORS:
# ?1 the spans, [{"d": dataset, "s": start, "e": end}]; ?2 the consenting profiles, [{"d":
# dataset, "p": profile id}]; ?3 the extents' bucket; ?4 and ?5 the first start and last end of
# all spans. `held` reads the extents once, by bucket, with their members; its constant bounds
# and its fence (MATERIALIZED) let PostgreSQL see that it is every member, and hash them.
COUNT_CONTRIBUTORS = """WITH spans AS MATERIALIZED (
    SELECT d.dataset_id, CAST(json_extract(s.value, '$.s') AS BIGINT) AS s,
        CAST(json_extract(s.value, '$.e') AS BIGINT) AS e
    FROM json_each(?1) AS s JOIN datasets AS d ON d.name = json_extract(s.value, '$.d')),
consenting AS MATERIALIZED (
    SELECT d.dataset_id, p.profile_key FROM json_each(?2) AS c
    JOIN datasets AS d ON d.name = json_extract(c.value, '$.d')
    JOIN profiles AS p ON p.profile_id = json_extract(c.value, '$.p')),
held AS MATERIALIZED (
    SELECT x.member_key, x.dataset_id, m.profile_key, x.first_period, x.last_period
    FROM reading_extents AS x JOIN admitted_members AS m ON m.member_key = x.member_key
    WHERE x.dataset_id IN (SELECT dataset_id FROM consenting)
    AND x.bucket BETWEEN ?4 / ?3 AND (?5 - 1) / ?3 AND x.first_period < ?5 AND x.last_period >= ?4)
SELECT count(DISTINCT h.member_key) FROM held AS h
WHERE (h.dataset_id, h.profile_key) IN (SELECT dataset_id, profile_key FROM consenting)
AND EXISTS (SELECT 1 FROM spans WHERE spans.dataset_id = h.dataset_id
    AND h.first_period < spans.e AND h.last_period >= spans.s AND (
    h.first_period >= spans.s OR h.last_period < spans.e OR EXISTS (
    SELECT 1 FROM readings AS r WHERE r.member_key = h.member_key AND r.dataset_id = h.dataset_id
    AND r.period_start >= spans.s AND r.period_start < spans.e)))"""

INSERT_ACCESS = """INSERT INTO access_log (pseudonym, at, release_id, grant_kind, grant_id, recipient_id,
    recipient_name, dataset, granularity, period_start, period_end, purpose, flow, decision_id,
    consent_decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

# A release-level entry: no pseudonym, its profile; its spans follow (INSERT_SPAN).
INSERT_RELEASE_ACCESS = """INSERT INTO access_log (pseudonym, profile_id, at, release_id, grant_kind,
    grant_id, recipient_id, recipient_name, dataset, granularity, period_start, period_end, purpose,
    flow, decision_id, consent_decision_id) VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

INSERT_SPAN = "INSERT INTO access_spans (access_key, span_start, span_end) VALUES (?, ?, ?)"

# ?1 member id, ?2 limit, ?3 key to start before (0: the newest). A member sees the entries
# under their pseudonym, and each release-level entry of the profile they were in at its time,
# admitted, where they hold a reading in one of its spans. An erased member sees none.
# A governance entry's organisation and request come from its grant; a federation entry names its peer.
ACCESS = """WITH me AS (
    SELECT member_key, admitted_at FROM members WHERE member_id = ?1 AND erased_at IS NULL
), seen AS (
    SELECT a.access_key FROM me JOIN member_pseudonyms AS s USING (member_key)
    JOIN access_log AS a ON a.pseudonym = s.pseudonym
    WHERE ?3 = 0 OR a.access_key < ?3
    UNION ALL
    SELECT a.access_key FROM me JOIN access_log AS a ON a.pseudonym = '' AND a.profile_id IN (
        SELECT profile_id FROM consent_records WHERE member_key = me.member_key)
    WHERE (?3 = 0 OR a.access_key < ?3) AND me.admitted_at <= a.at
    AND a.profile_id = (SELECT c.profile_id FROM consent_records AS c
        WHERE c.member_key = me.member_key AND c.at <= a.at ORDER BY c.at DESC, c.record_id DESC LIMIT 1)
    AND EXISTS (SELECT 1 FROM access_spans AS sp JOIN datasets AS d ON d.name = a.dataset
        JOIN readings AS r ON r.member_key = me.member_key AND r.dataset_id = d.dataset_id
            AND r.period_start >= sp.span_start AND r.period_start < sp.span_end
        WHERE sp.access_key = a.access_key)
)
SELECT a.at, a.release_id, a.grant_id, coalesce(r.request_id, ''),
    coalesce(o.organisation_id, a.recipient_id),
    coalesce(json_extract(o.profile_json, '$.name'), a.recipient_name),
    a.purpose, a.flow, a.dataset, a.granularity, a.period_start, a.period_end, a.decision_id,
    a.consent_decision_id, a.access_key
FROM seen JOIN access_log AS a USING (access_key)
LEFT JOIN grants AS g ON g.grant_id = a.governance_grant_id
LEFT JOIN data_requests AS r ON r.request_key = g.request_key
LEFT JOIN organisations AS o ON o.org_key = g.org_key
ORDER BY a.access_key DESC LIMIT ?2"""

_MISSING_PSEUDONYMS = """SELECT m.member_key
FROM members AS m LEFT JOIN member_pseudonyms AS s USING (member_key)
WHERE m.member_id IN (SELECT value FROM json_each(?)) AND s.pseudonym IS NULL AND m.erased_at IS NULL"""

_PSEUDONYMS = """SELECT m.member_id, s.pseudonym
FROM members AS m JOIN member_pseudonyms AS s USING (member_key)
WHERE m.member_id IN (SELECT value FROM json_each(?))"""


# --- rows ------------------------------------------------------------------------------------


def org_key(conn: Connection, organisation_id: str) -> int:
    row = conn.execute(
        "SELECT org_key FROM organisations WHERE organisation_id = ?", (organisation_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no organisation {organisation_id!r}")
    return row[0]


def save_assessment(conn: Connection, org_key: int, a: Assessment) -> None:
    conn.execute(
        "INSERT INTO assessments (org_key, decision_id, revision, result_json) VALUES (?, ?, ?, ?)",
        (org_key, a.decision_id, a.revision, to_json(a.result)),
    )


def organisation(conn: Connection, org_key: int) -> Organisation:
    org_id, profile, registered_at, verified, note = conn.execute(
        "SELECT organisation_id, profile_json, registered_at, verified, verification_note "
        "FROM organisations WHERE org_key = ?",
        (org_key,),
    ).fetchone()
    raw = json.loads(profile)
    latest = conn.execute(
        "SELECT decision_id, revision, result_json FROM assessments WHERE org_key = ? "
        "ORDER BY assessment_key DESC LIMIT 1",
        (org_key,),
    ).fetchone()
    assessment = Assessment(latest[0], latest[1], json.loads(latest[2])) if latest else None
    return Organisation(
        org_id,
        OrganisationProfile(**raw | {"commitments": tuple(raw["commitments"])}),
        datetime.fromisoformat(registered_at),
        bool(verified),
        note,
        assessment,
    )


def insert_grant(conn: Connection, request_key: int, org_key: int, g: GrantRecord) -> None:
    conn.execute(
        "INSERT INTO grants (grant_id, request_key, org_key, token, issued_unix, expires_unix, scope_json, "
        "min_group_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            g.grant_id, request_key, org_key, g.token, g.issued_at, g.expires_at, to_json(g.scope.to_claim()),
            g.min_group_size,
        ),
    )  # fmt: skip


def grant(row: tuple) -> GrantRecord:
    gid, rid, oid, token, issued, expires, scope, k, revoked_at, reason = row
    return GrantRecord(
        gid, rid, oid, token, issued, expires, GrantScope.from_claim(json.loads(scope)), k,
        datetime.fromisoformat(revoked_at) if revoked_at else None, reason,
    )  # fmt: skip


def request(conn: Connection, row: tuple) -> DataRequestRecord:
    key, request_id, org_id, spec, state, submitted, decision_id, revision, result = row
    submitted_at = datetime.fromisoformat(submitted)
    reviewed = conn.execute(REVIEW_OF, (key,)).fetchone()
    granted = conn.execute(GRANT_BY_REQUEST, (key,)).fetchone()
    return DataRequestRecord(
        request_id=request_id,
        organisation_id=org_id,
        spec=RequestSpec.from_json(spec),
        state=RequestState(state),
        submitted_at=submitted_at,
        decision=Decision(decision_id, revision, json.loads(result), submitted_at),
        review=review(reviewed) if reviewed else None,
        grant=grant(granted) if granted else None,
    )


def review(row: tuple) -> Review:
    decision_id, reviewer, outcome, reason, proposed, decided_at = row
    return Review(
        decision_id, reviewer, Outcome(outcome), reason, Outcome(proposed), datetime.fromisoformat(decided_at)
    )


def pseudonyms(conn: Connection, member_ids: list[str]) -> dict[str, str]:
    """Each member's pseudonym, made on first use (random: it says nothing about the member)."""
    ids = json.dumps(member_ids)
    missing = conn.execute(_MISSING_PSEUDONYMS, (ids,)).fetchall()
    conn.executemany(
        "INSERT INTO member_pseudonyms (member_key, pseudonym) VALUES (?, ?)",
        [(key, "p-" + secrets.token_hex(16)) for (key,) in missing],
    )
    return dict(conn.execute(_PSEUDONYMS, (ids,)).fetchall())  # a member erased meanwhile has none


def access_values(
    pseudonyms: dict[str, str], kind: GrantKind, rows: Sequence[tuple[str, AccessEntry]]
) -> list[tuple]:
    """INSERT_ACCESS parameters of the rows whose member has a pseudonym. An entry shared by many
    members (one per consent profile in a release) is converted once."""
    converted: dict[int, tuple] = {}
    values = []
    for member, e in rows:
        if member not in pseudonyms:
            continue
        tail = converted.get(id(e))
        if tail is None:
            tail = converted[id(e)] = access_columns(kind, e)
        values.append((pseudonyms[member], *tail))
    return values


def access_columns(kind: GrantKind, e: AccessEntry) -> tuple:
    """An entry's INSERT_ACCESS columns from `at` on. A governance grant names its own
    organisation, so only a federation or open-data entry's recipient is stored."""
    named = kind in (GrantKind.FEDERATION, GrantKind.OPEN_DATA)
    recipient = (e.organisation_id, e.organisation_name) if named else ("", "")
    return (
        iso(e.at), e.release_id, kind.value, e.grant_id, *recipient, e.dataset, e.granularity,
        e.period_start, e.period_end, e.purpose, e.flow, e.decision_id, e.consent_decision_id,
    )  # fmt: skip


def access(row: tuple) -> AccessEntry:
    at, rel, gid, rid, oid, name, purpose, flow, ds, gran, ps, pe, did, cid, key = row
    return AccessEntry(
        at=datetime.fromisoformat(at),
        release_id=rel,
        grant_id=gid,
        request_id=rid,
        organisation_id=oid,
        organisation_name=name,
        purpose=purpose,
        flow=flow,
        dataset=ds,
        granularity=gran,
        period_start=ps,
        period_end=pe,
        decision_id=did,
        consent_decision_id=cid,
        key=key,
    )
