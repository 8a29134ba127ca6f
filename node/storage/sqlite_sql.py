"""SQL text of the SQLite store, apart from the profile totals."""

from functools import lru_cache

# The member's readings a batch may replace: ?3 first and ?4 last period of the batch.
HELD_READINGS = """SELECT period_start, kwh FROM readings
WHERE member_key = ?1 AND dataset_id = ?2 AND period_start BETWEEN ?3 AND ?4"""

MEMBER_READINGS = """SELECT dataset_id, period_start, kwh FROM readings
WHERE member_key = ? ORDER BY dataset_id, period_start"""

# Admitted members only: applicants' readings join the totals at admission.
MEMBERS_IN_PROFILES = (
    "SELECT member_key, profile_key FROM members WHERE profile_key IS NOT NULL AND admitted_at IS NOT NULL"
)

MEMBER_KEYS = """SELECT member_key, profile_key, settings_json, erased_at, admitted_at
FROM members WHERE member_id = ?"""

# MEMBER_KEYS of many members at once, each led by its id
MEMBERS_KEYS = """SELECT member_id, member_key, profile_key, settings_json, erased_at, admitted_at
FROM members WHERE member_id IN (SELECT value FROM json_each(?))"""

_MEMBER_COLUMNS = """m.member_id, m.display_name, m.created_at, m.settings_json,
    coalesce(p.profile_id, ''), m.erased_at, m.admitted_at, m.admitted_by, m.refused_at, m.refusal_reason,
    m.meter_hash IS NOT NULL"""

_MEMBERS = "FROM members AS m LEFT JOIN profiles AS p USING (profile_key)"

MEMBER = f"SELECT {_MEMBER_COLUMNS} {_MEMBERS} WHERE m.member_id = ?"

# Applicants the board has not decided on, oldest first (a refused one is listed again only if
# admitted), after member ?1 (or from the first, for ''), at most ?2.
_AFTER_MEMBER = "m.member_key > coalesce((SELECT member_key FROM members WHERE member_id = ?1), 0)"
APPLICANTS = f"""SELECT {_MEMBER_COLUMNS} {_MEMBERS}
WHERE m.admitted_at IS NULL AND m.refused_at IS NULL AND m.erased_at IS NULL AND {_AFTER_MEMBER}
ORDER BY m.member_key LIMIT ?2"""

INSERT_MEMBER = """INSERT INTO members (member_id, display_name, created_at, settings_json, profile_key,
    meter_hash, admitted_at, admitted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

METER_HOLDER = "SELECT member_id FROM members WHERE meter_hash = ?"
METER_HOLDERS = "SELECT meter_hash, member_id FROM members WHERE meter_hash IN"  # + (?, ...)

ADMIT = """UPDATE members SET admitted_at = ?, admitted_by = ?, refused_at = NULL, refusal_reason = ''
WHERE member_key = ?"""

REFUSE = "UPDATE members SET refused_at = ?, refusal_reason = ? WHERE member_key = ?"

INSERT_INVITATION = """INSERT INTO invitations (invitation_id, code_hash, created_at, created_by, expires_at)
VALUES (?, ?, ?, ?, ?)"""

# The invitation a code opens, if unused and unexpired (?2 now); using it is the UPDATE below.
OPEN_INVITATION = """SELECT invitation_key, invitation_id FROM invitations
WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2"""

USE_INVITATION = "UPDATE invitations SET used_at = ?, used_by = ? WHERE invitation_key = ?"

UPDATE_CONSENT = "UPDATE members SET settings_json = ?, profile_key = ? WHERE member_key = ?"

ERASE_MEMBER = """UPDATE members SET display_name = '', settings_json = ?, profile_key = NULL,
    meter_hash = NULL, erased_at = ? WHERE member_key = ?"""

DELETE_READINGS = "DELETE FROM readings WHERE member_key = ?"

DELETE_EXTENTS = "DELETE FROM reading_extents WHERE member_key = ?"

# ?4 first and ?5 last period of a batch's readings in bucket ?3 (migrations/0018)
EXTEND = """INSERT INTO reading_extents (member_key, dataset_id, bucket, first_period, last_period)
VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (member_key, dataset_id, bucket) DO UPDATE SET
    first_period = CASE WHEN ?4 < reading_extents.first_period THEN ?4 ELSE reading_extents.first_period END,
    last_period = CASE WHEN ?5 > reading_extents.last_period THEN ?5 ELSE reading_extents.last_period END"""

ENSURE_PROFILE = """INSERT INTO profiles (profile_id, settings_json) VALUES (?, ?)
ON CONFLICT (profile_id) DO NOTHING"""

PROFILE_KEY = "SELECT profile_key FROM profiles WHERE profile_id = ?"

INSERT_RECORD = """INSERT INTO consent_records (member_key, at, settings_json, profile_id,
    changes_json, terms_version, withdrawal_reason) VALUES (?, ?, ?, ?, ?, ?, ?)"""

_RECORD_COLUMNS = """c.record_id, m.member_id, c.at, c.settings_json, c.profile_id, c.changes_json,
    c.terms_version, c.withdrawal_reason"""

_RECORDS = "FROM consent_records AS c JOIN members AS m USING (member_key)"

INSERT_RECEIPT = "INSERT INTO consent_receipts (record_id, receipt) VALUES (?, ?)"

# The history carries each record's receipt; the write path reads records without them.
# Member ?1's records after record ?2, at most ?3.
HISTORY = f"""SELECT {_RECORD_COLUMNS}, coalesce(r.receipt, '') {_RECORDS}
LEFT JOIN consent_receipts AS r USING (record_id) WHERE m.member_id = ?1 AND c.record_id > ?2
ORDER BY c.record_id LIMIT ?3"""

LAST_RECORD = (
    f"SELECT {_RECORD_COLUMNS}, '' {_RECORDS} WHERE c.member_key = ? ORDER BY c.record_id DESC LIMIT 1"
)

READINGS_RANGE = """SELECT period_start, kwh FROM readings
WHERE member_key = ? AND dataset_id = ? AND period_start >= ? AND period_start < ?
ORDER BY period_start"""

PROFILES = """SELECT p.profile_id, p.settings_json, count(*)
FROM admitted_members AS m JOIN profiles AS p USING (profile_key)
GROUP BY p.profile_key ORDER BY p.profile_id"""

# An index probe per profile (members_by_profile) where PROFILES reads every member.
PROFILES_IN_USE = """SELECT p.profile_id, p.settings_json FROM profiles AS p
WHERE EXISTS (SELECT 1 FROM admitted_members AS m WHERE m.profile_key = p.profile_key)
ORDER BY p.profile_id"""

LOAD_CHUNK = 1024  # readings per INSERT; binding one multi-row VALUES beats executemany several-fold


_UPSERT_READINGS = (
    "INSERT INTO readings (member_key, dataset_id, period_start, kwh) VALUES {}"
    " ON CONFLICT (member_key, dataset_id, period_start) DO UPDATE SET kwh = excluded.kwh"
)


@lru_cache(maxsize=16)
def upsert_readings(rows: int) -> str:
    """?1 member_key, ?2 dataset_id, then period_start and kwh of each row: placeholders only."""
    return _UPSERT_READINGS.format(",".join(f"(?1,?2,?{2 * i + 3},?{2 * i + 4})" for i in range(rows)))


def load_sizes(n: int, largest: int = LOAD_CHUNK) -> list[int]:
    """Split n rows into full chunks and powers of two, so only a few statements are compiled."""
    sizes = [largest] * (n // largest)
    rest = n % largest
    return sizes + [1 << bit for bit in reversed(range(rest.bit_length())) if rest & (1 << bit)]


def no_limit(limit: int | None) -> int:
    """A LIMIT for at most `limit` rows, or (None) for every row, that both databases take."""
    return 2**62 if limit is None else limit
