"""SetConsent with an update mask: changes made at the same time are merged, none undone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage import ConsentChanged
from coopfed.v1 import common_pb2, member_pb2

AMBER = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_AMBER)


def _change(stub, member, settings, *paths):
    request = member_pb2.SetConsentRequest(settings=settings, update_mask=FieldMask(paths=list(paths)))
    return stub.SetConsent(request, metadata=member.md)


def test_concurrent_changes_of_different_settings_all_survive(stub, member):
    _change(stub, member, AMBER, "level")
    changes = [
        member_pb2.ConsentSettings(choices=[common_pb2.DatasetChoice(dataset=ds, allowed_flows=[flow])])
        for ds, flow in [
            ("demand", common_pb2.FLOW_OPEN_DATA),
            ("generation", common_pb2.FLOW_COOP_TO_COOP),
            ("export", common_pb2.FLOW_MEMBER_TO_MEMBER),
        ]
    ]
    with ThreadPoolExecutor(4) as pool:
        done = [pool.submit(_change, stub, member, c, "choices") for c in changes * 4]
        done.append(pool.submit(_change, stub, member, member_pb2.ConsentSettings(nudges=True), "nudges"))
        receipts = [f.result().receipt for f in done]
    now = stub.GetConsent(member_pb2.GetConsentRequest(), metadata=member.md)
    assert {c.dataset for c in now.choices} == {"demand", "generation", "export"}
    assert now.nudges
    assert now.level == common_pb2.CONSENT_LEVEL_AMBER
    history = stub.ListConsentHistory(member_pb2.ListConsentHistoryRequest(), metadata=member.md).records
    assert len(history) == 2 + len(done)  # joining, amber, then every change: none lost or merged away
    assert {r.receipt for r in history[2:]} == set(receipts)
    assert all(receipts)


def test_an_unknown_mask_path_is_refused(stub, member):
    with pytest.raises(grpc.RpcError) as caught:
        _change(stub, member, AMBER, "level", "member_id")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot change member_id" in caught.value.details()


def test_the_store_refuses_a_change_made_from_stale_settings(node, member):
    store = node[0].store
    before = store.get_member(member.id).settings
    store.set_consent(member.id, ConsentSettings(level=ConsentLevel.GREEN))
    with pytest.raises(ConsentChanged):
        store.set_consent(member.id, ConsentSettings(nudges=True), expected=before)
    assert store.get_member(member.id).settings == ConsentSettings(level=ConsentLevel.GREEN)


def test_a_record_and_its_receipt_are_kept_together_or_not_at_all(node, member):
    store = node[0].store

    def broken_seal(record):
        raise RuntimeError("the signing key is gone")

    with pytest.raises(RuntimeError):
        store.set_consent(member.id, ConsentSettings(level=ConsentLevel.GREEN), seal=broken_seal)
    assert len(store.consent_history(member.id)) == 1  # only the record made on joining
    assert store.get_member(member.id).settings.level is ConsentLevel.RED
    record = store.set_consent(
        member.id, ConsentSettings(level=ConsentLevel.GREEN), seal=lambda r: f"sig-{r.record_id}"
    )
    assert store.consent_history(member.id)[-1].receipt == f"sig-{record.record_id}" == record.receipt
