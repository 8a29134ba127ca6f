"""The policy holder: atomic swaps, requests that finish on the revision they started with."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from coopfed.node.policy import PolicyError, PolicySet, make_policy_set
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.rpc import PolicyPinInterceptor

from ..policy.cases import question

GREEN_RESEARCH = question("green", "demand", "third_party", "dpv:CommercialResearch")


def _with_aims(policies: PolicySet, aims: list[str]) -> PolicySet:
    data = {**policies.data, "coop": {**policies.data["coop"], "aims": aims}}
    return make_policy_set(dict(policies.modules), data)


class GatedEngine(EmbeddedEngine):
    """A real embedded engine whose evaluations wait for a gate, so a test can swap meanwhile."""

    def __init__(self, policies: PolicySet) -> None:
        super().__init__(policies)
        self.entered, self.gate, self.closed = threading.Event(), threading.Event(), False

    def evaluate(self, path: str, input: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(30)
        return super().evaluate(path, input)

    def close(self) -> None:
        self.closed = True
        super().close()


@pytest.fixture
def revisions(policy_set: PolicySet) -> tuple[PolicySet, PolicySet]:
    """Two revisions that answer GREEN_RESEARCH differently."""
    return policy_set, _with_aims(policy_set, [*policy_set.data["coop"]["aims"], "dpv:CommercialResearch"])


@pytest.fixture
def holder(revisions: tuple[PolicySet, PolicySet]) -> Iterator[PolicyHolder]:
    holder = PolicyHolder(EmbeddedEngine(revisions[0]), revisions[0])
    yield holder
    holder.close()


def test_swap_changes_what_new_evaluations_see(holder: PolicyHolder, revisions: tuple) -> None:
    old, new = revisions
    assert holder.evaluate(CONSENT_PATH, GREEN_RESEARCH)["allowed"] is False
    assert holder.swap(EmbeddedEngine(new), new) == old.revision
    assert holder.revision == new.revision
    assert holder.data["coop"]["aims"][-1] == "dpv:CommercialResearch"
    assert holder.evaluate(CONSENT_PATH, GREEN_RESEARCH)["allowed"] is True


def test_a_pinned_block_finishes_on_its_revision_and_the_old_engine_closes_after(
    holder: PolicyHolder, revisions: tuple
) -> None:
    old, new = revisions
    first = holder._slot.engine
    with holder.pinned():
        holder.swap(EmbeddedEngine(new), new)
        assert holder.revision == old.revision
        assert holder.decide(CONSENT_PATH, GREEN_RESEARCH) == (
            holder.evaluate(CONSENT_PATH, GREEN_RESEARCH),
            old.revision,
        )
        assert holder.evaluate(CONSENT_PATH, GREEN_RESEARCH)["allowed"] is False
        assert first._runner is not None  # still open while a request uses it
    assert first._runner is None  # closed once the last user left
    assert holder.revision == new.revision


def test_an_evaluation_in_flight_during_a_swap_completes_on_the_old_engine(revisions: tuple) -> None:
    old, new = revisions
    gated = GatedEngine(old)
    holder = PolicyHolder(gated, old)
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(holder.decide(CONSENT_PATH, GREEN_RESEARCH)))
    worker.start()
    assert gated.entered.wait(30)
    holder.swap(EmbeddedEngine(new), new)
    assert not gated.closed  # still in use
    gated.gate.set()
    worker.join(30)
    assert answers[0][1] == old.revision
    assert answers[0][0]["allowed"] is False
    assert gated.closed
    holder.close()


def test_mismatched_or_closed_holders_refuse(holder: PolicyHolder, revisions: tuple) -> None:
    old, new = revisions
    with pytest.raises(PolicyError, match="does not hold"):
        holder.swap(EmbeddedEngine(old), new)
    holder.close()
    with pytest.raises(PolicyError, match="closed"):
        holder.evaluate(CONSENT_PATH, GREEN_RESEARCH)
    with pytest.raises(PolicyError, match="closed"):
        holder.swap(EmbeddedEngine(new), new)


async def _serve_one_method(holder: PolicyHolder, started: asyncio.Event, proceed: asyncio.Event) -> Any:
    """A real grpc.aio server whose one method reports the revisions it saw before and after a wait."""

    async def method(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        before = holder.revision
        started.set()
        await proceed.wait()
        allowed, revision = await asyncio.to_thread(holder.decide, CONSENT_PATH, GREEN_RESEARCH)
        return f"{before} {revision} {allowed['allowed']}".encode()

    server = grpc.aio.server(interceptors=[PolicyPinInterceptor(holder)])
    handler = grpc.unary_unary_rpc_method_handler(method)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", {"M": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def test_a_grpc_request_finishes_on_the_revision_it_started_with(
    holder: PolicyHolder, revisions: tuple
) -> None:
    old, new = revisions

    async def scenario() -> tuple[str, str]:
        started, proceed = asyncio.Event(), asyncio.Event()
        server, port = await _serve_one_method(holder, started, proceed)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.T/M")
            in_flight = asyncio.ensure_future(call(b""))
            await started.wait()
            holder.swap(EmbeddedEngine(new), new)  # a reload lands mid-request
            proceed.set()
            first = (await in_flight).decode()
            second = (await call(b"")).decode()
        await server.stop(None)
        return first, second

    first, second = asyncio.run(scenario())
    assert first == f"{old.revision} {old.revision} False"
    assert second == f"{new.revision} {new.revision} True"


def test_node_consent_answers_follow_a_swap_and_drop_the_old_revision(tmp_path, revisions: tuple) -> None:
    from coopfed.node.runtime import init_node, open_node
    from coopfed.node.settings import load_settings

    from ..node.conftest import POLICIES

    _, new = revisions
    config = init_node(tmp_path, node_id="coop-a", name="a", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={})) as node:
        ask = (GREEN_RESEARCH["profile"], "demand", "third_party", "dpv:CommercialResearch")
        assert node.consent.allows(*ask) is False
        node.policy.swap(EmbeddedEngine(new), new)
        assert node.consent.allows(*ask) is True
        assert {key[0] for key in node.consent._cache} == {new.revision}
