"""The in-process engine that needs OPA to compile: OPA's policies as WebAssembly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coopfed.node.policy import PolicySet
from coopfed.node.policy.wasm import WasmEngine


@pytest.fixture(scope="session")
def wasm_engine(opa_binary: str, policy_set: PolicySet) -> Iterator[WasmEngine]:
    engine = WasmEngine(policy_set, opa_binary)
    yield engine
    engine.close()
