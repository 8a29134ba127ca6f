"""Fixtures for forecaster tests: a small simulated three-co-op federation and signing keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.forecaster import CoopData, SimulatedCoop, simulate_federation

from .fctools import END, SMALL_FEDERATION, START


@pytest.fixture(scope="session")
def federation() -> dict[str, SimulatedCoop]:
    return simulate_federation(SMALL_FEDERATION, START, END)


@pytest.fixture(scope="session")
def coops(federation: dict[str, SimulatedCoop]) -> list[CoopData]:
    return [sim.coop_data() for sim in federation.values()]


@pytest.fixture(scope="session")
def keys() -> dict[str, Ed25519PrivateKey]:
    return {spec.coop_id: Ed25519PrivateKey.generate() for spec in SMALL_FEDERATION}
