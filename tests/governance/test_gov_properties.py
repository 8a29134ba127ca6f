"""Property: the members whose data leaves the node are exactly those the consent policy permits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopfed.federation.grants import Granularity
from coopfed.node.governance.release import FetchSpec, authenticate_grant
from coopfed.node.governance.service import _chunks, parts
from coopfed.node.model import DATASETS, ConsentLevel, ConsentSettings, Flow
from coopfed.node.policy.consent import decide_consent
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.records import DataRequestRecord, Decision, RequestSpec, RequestState

from ..node.conftest import POLICIES
from .conftest import FAST, HH

DAY = 86_400
YEAR_START = 1704067200  # 2024-01-01T00:00Z
PURPOSES = ["dpv:AcademicResearch", "dpv:CommercialResearch", "dpv:PublicBenefit"]
PERSONAS = ["", "", "community_first", "research_friendly", "privacy_first", "generation_sharer", "unknown"]

_settings = st.builds(
    ConsentSettings,
    level=st.sampled_from(list(ConsentLevel)),
    choices=st.dictionaries(
        st.sampled_from(DATASETS), st.frozensets(st.sampled_from(list(Flow))), max_size=len(DATASETS)
    ),
    persona=st.sampled_from(PERSONAS),
)
_member = st.tuples(_settings, st.frozensets(st.sampled_from(DATASETS), min_size=1), st.integers(1, 48))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("property-node")
    config = init_node(folder, node_id="coop-p", name="p", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ=FAST)) as opened:
        opened.governance.create_organisation(*_organisation())
        yield opened


def _organisation() -> tuple:
    from coopfed.node.storage.records import Organisation, OrganisationProfile

    return Organisation("org-p", OrganisationProfile("Prop Uni", "university"), datetime.now(UTC)), []


_grants: dict[tuple[str, str], str] = {}


def _grant(node: Node, granularity: Granularity, purpose: str) -> str:
    """One grant per granularity and purpose covering the whole year, stored as the policy would."""
    key = (granularity.value, purpose)
    if key not in _grants:
        fields = ("kwh", "member_count") if granularity is Granularity.AGGREGATE else ("kwh", "member_ref")
        spec = RequestSpec(
            DATASETS, fields, granularity, YEAR_START, YEAR_START + 360 * DAY, "third_party", purpose, "test"
        )
        result = {"outcome": "approve", "proposed": "approve", "grant": {"ttl_days": 30, "min_group_size": 3}}
        decision = Decision("dec-" + uuid.uuid4().hex, node.policy.revision, result, datetime.now(UTC))
        record = DataRequestRecord(
            "req-" + uuid.uuid4().hex, "org-p", spec, RequestState.APPROVED, decision.decided_at, decision
        )
        grant, _ = parts(node).requests._grant(record, result, int(datetime.now(UTC).timestamp()))
        node.governance.create_request(record, grant, None, [])
        _grants[key] = grant.token
    return _grants[key]


def _permitted(node: Node, settings: ConsentSettings, dataset: str, purpose: str) -> bool:
    """The consent policy's answer for this member alone (not through the node's per-profile cache)."""
    return decide_consent(node.policy, settings.policy_input(), dataset, "third_party", purpose).allowed


_day = iter(range(1, 10_000))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    members=st.lists(_member, min_size=1, max_size=7),
    granularity=st.sampled_from(list(Granularity)),
    purpose=st.sampled_from(PURPOSES),
    dataset=st.sampled_from(DATASETS),
)
def test_released_members_are_exactly_the_permitted_ones(
    node: Node, members: list, granularity: Granularity, purpose: str, dataset: str
) -> None:
    # each example owns one day of the year, so earlier examples' members hold no data in it
    start = YEAR_START + next(_day) * DAY
    ids = {}
    for settings_, datasets, periods in members:
        member_id = "m-" + uuid.uuid4().hex[:12]
        node.store.create_member(member_id, "p", settings_, admitted_by="test")
        times = start + HH * np.arange(periods, dtype=np.int64)
        node.store.put_readings(member_id, [(ds, times, np.ones(periods)) for ds in datasets])
        ids[member_id] = (settings_, datasets)
    permitted = {m for m, (s, ds) in ids.items() if dataset in ds and _permitted(node, s, dataset, purpose)}
    token = _grant(node, granularity, purpose)
    grant = authenticate_grant(node.credentials, node.governance, token).claims["grant"]
    chunks = list(
        _chunks(parts(node).releases, grant, FetchSpec(datasets=(dataset,), period=(start, start + DAY)))
    )
    release_id = chunks[0].header.release_id
    released = {
        m for m in ids if any(e.release_id == release_id for e in node.governance.access_for_member(m))
    }
    summary = chunks[-1].summary
    if granularity is Granularity.INDIVIDUAL:
        assert released == permitted
        refs = {c.individual.member_ref for c in chunks if c.HasField("individual")}
        assert len(refs) == len(permitted)
    else:
        # the stricter of the grant's k (3 here) and the co-op's current k (5 in policy data)
        k = max(grant.constraints.min_group_size, node.policy_data["coop"]["k_min"])
        assert chunks[0].header.min_group_size == k
        # every permitted member holds the first period; the first cell is released iff k of them do
        assert released == (permitted if len(permitted) >= k else set())
        series = chunks[1].aggregate
        assert all(n >= k for n in series.member_count)
    assert summary.members_released == len(released)
