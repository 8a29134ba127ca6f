"""Signed models on the node: training (pooled or local), verifying artifacts against pinned keys,
and the verified ensemble that forecasts.

Every artifact is signed with the trainer's active Ed25519 key and verified against the keys
pinned for its trainer (this node's own key ring, or a peer's JWKS from its manifest) before it
is stored and again before it is used. A retired key no longer verifies what it signed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coopfed.forecaster import (
    FEATURES,
    TARGETS,
    ArtifactError,
    ArtifactVerificationError,
    Forecaster,
    ModelArtifact,
    train_local,
    train_pooled,
)
from coopfed.node.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from coopfed.node.federation.state import PeerRecord
from coopfed.node.forecast.data import ForecastData, OwnData, PeerData
from coopfed.node.forecast.store import ModelFile, ModelRecord
from coopfed.node.model import Flow

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.federation.context import Federation
    from coopfed.node.forecast.context import ForecastContext
    from coopfed.node.forecast.store import ForecastStore
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.settings import ForecastSection

TRAINING_PATH = "coopfed/forecast/training"


@dataclass(frozen=True)
class Trained:
    artifact: ModelArtifact
    file: ModelFile
    decision_id: str


@dataclass(frozen=True)
class Ensemble:
    """A verified forecaster, what it is made of, and the peers' models left out (and why)."""

    forecaster: Forecaster
    mode: str
    records: tuple[ModelRecord, ...]
    skipped: dict[str, str]


def trusted_keys(
    keys: KeyRing, federation: Federation, node_id: str, coop_id: str
) -> Mapping[str, Ed25519PublicKey]:
    """kid -> key of the keys pinned for a co-op: this node's own ring (`keys`, read now: a
    rotation made with the CLI is picked up), or a pinned peer's JWKS."""
    if coop_id == node_id:
        return keys.jwks()
    jwks = federation.state.peer_trust().jwks_for(coop_id)
    return jwks if jwks is not None else {}


def verifying_key(artifact: ModelArtifact, keys: Mapping[str, Ed25519PublicKey]) -> Ed25519PublicKey:
    """The pinned key that signed exactly this artifact; ArtifactVerificationError if none did."""
    meta = artifact.metadata
    what = f"model v{meta.version} from {meta.coop_id!r}"
    if not keys:
        raise ArtifactVerificationError(f"{what}: no signing key is pinned for {meta.coop_id!r}")
    artifact.check_hashes()
    for key in keys.values():
        try:
            artifact.verify(key)
        except ArtifactVerificationError:
            continue
        return key
    raise ArtifactVerificationError(
        f"{what} is not signed by any of the {len(keys)} key(s) pinned for it (altered, or signed "
        "with another key)"
    )


@contextlib.contextmanager
def _too_little(own: OwnData) -> Iterator[None]:
    """The forecaster refuses data too thin to learn from (ValueError): say why in the co-op's terms."""
    try:
        yield
    except ValueError as exc:
        frame = own.coop.aggregates
        days = len(frame) / 48
        if own.min_group_size > 1:
            why = (
                f"a model shared with aligned co-ops learns only from half-hours where at least "
                f"k = {own.min_group_size} members consent to sharing with them (the co-op's minimum "
                f"group size, coop.k_min in its policy data); {days:.1f} days of such half-hours are "
                f"held, with at most {int(frame['members'].max())} members in any"
            )
        else:
            why = f"{days:.1f} days of the co-op's half-hourly totals are held"
        raise FailedPrecondition(
            f"cannot train: {why}, and that is too little to learn from ({exc}). The forecaster needs "
            "about three weeks of history.",
            code="forecast.too_little_data",
        ) from exc


def accept_peer_artifact(
    store: ForecastStore, pinned: Mapping[str, Ed25519PublicKey], peer: PeerRecord, data: bytes
) -> tuple[ModelArtifact, ModelFile]:
    """Check a peer's artifact before keeping it in `store`: its own local model, signed by one
    of the keys `pinned` for it, loadable, built for these features, and newer than the one held."""
    if not peer.aligned:
        raise PermissionDenied(
            f"{peer.peer_id} is pinned but not aligned with this co-op: no models are exchanged",
            code="forecast.not_aligned",
        )
    art = ModelArtifact.from_bytes(data)
    meta = art.metadata
    if meta.coop_id != peer.peer_id:
        raise PermissionDenied(
            f"{peer.peer_id} sent a model trained by {meta.coop_id!r}: a co-op publishes only its own",
            code="forecast.not_trainer",
        )
    if meta.kind != "local":
        raise InvalidArgument(
            f"only local models are exchanged, not {meta.kind!r}", code="forecast.kind", field="artifact"
        )
    art.load_booster(verifying_key(art, pinned))
    if meta.feature_names != FEATURES or meta.targets != TARGETS:
        raise InvalidArgument(
            "the model was built for other features or targets than this node's forecaster",
            code="forecast.features",
            field="artifact",
        )
    held = store.latest_model(peer.peer_id, "local")
    if held is not None and held.version >= meta.version:
        raise FailedPrecondition(
            f"model v{meta.version} from {peer.peer_id} is not newer than v{held.version} held",
            code="forecast.stale_model",
        )
    return art, store.save_model(peer.peer_id, "local", meta.version, data)


class Models:
    """Training, signing and loading this node's models, built once with what they use."""

    def __init__(
        self, *, data: ForecastData, forecast: ForecastContext, keys: KeyRing, federation: Federation,
        decision_log: DecisionLog, policy: PolicyHolder, conf: ForecastSection, node_id: str,
    ) -> None:  # fmt: skip
        self.data, self.forecast, self.keys, self.federation = data, forecast, keys, federation
        self.decision_log, self.policy, self.conf, self.node_id = decision_log, policy, conf, node_id

    def train_local_model(self, **fit_args: Any) -> Trained:
        """Model federation: train on this co-op's releasable aggregates only, sign, keep."""
        own = self.data.own_aggregates(Flow.COOP_TO_COOP)
        store = self.forecast.store
        version = store.next_version(self.node_id)
        with _too_little(own):
            art = train_local(
                own.coop, self.keys.signer.private_key, version=version, **self.fit_settings(fit_args)
            )
        saved = store.save_model(self.node_id, "local", version, art.to_bytes())
        decision_id = self._record_training(own, (), art)
        store.set_mode("federated")
        return Trained(art, saved, decision_id)

    def train_pooled_model(self, peers: Sequence[PeerData], **fit_args: Any) -> Trained:
        """Pooled: one model on this co-op's aggregates and those peers released under grants."""
        own = self.data.own_aggregates(Flow.INTERNAL)
        store = self.forecast.store
        version = store.next_version(self.node_id)
        coops = [own.coop, *(p.coop for p in peers)]
        with _too_little(own):
            art = train_pooled(
                coops,
                self.keys.signer.private_key,
                trainer_id=self.node_id,
                version=version,
                **self.fit_settings(fit_args),
            )
        saved = store.save_model(self.node_id, "pooled", version, art.to_bytes())
        decision_id = self._record_training(own, peers, art)
        store.set_mode("pooled")
        return Trained(art, saved, decision_id)

    def fit_settings(self, args: dict[str, Any]) -> dict[str, Any]:
        """Training arguments, with the node's [forecast] rounds and device where none are given."""
        conf = self.conf
        out = {**args}
        out["rounds"] = out.get("rounds") or conf.rounds
        out["device"] = out.get("device") or conf.device
        return out

    def _record_training(self, own: OwnData, peers: Sequence[PeerData], art: ModelArtifact) -> str:
        """The decision log keeps what a model was trained on: consenting profiles and peers' releases."""
        log = self.decision_log
        meta = art.metadata
        question = {"kind": meta.kind, "flow": own.flow, "purpose": self.data.forecast_policy().purpose}
        answer = {
            "consenting_profiles": own.consenting,
            "min_group_size": own.min_group_size,
            "peers": {p.coop.coop_id: {"grant_id": p.grant_id, "release": p.decision_id} for p in peers},
            "model": {"version": meta.version, "sha256": meta.sha256, "training_rows": meta.training_rows},
        }
        event = log.event(TRAINING_PATH, question, answer, self.policy.revision)
        log.append(event)
        return str(event["decision_id"])

    def _members(self, mode: str) -> list[ModelFile]:
        store = self.forecast.store
        own = store.latest_model(self.node_id, "pooled" if mode == "pooled" else "local")
        if own is None:
            raise FailedPrecondition(
                f"this node has no {mode} model yet: run `coopfed forecast train --mode {mode}`",
                code="forecast.no_model",
            )
        if mode == "pooled" or self.federation is None:
            return [own]
        aligned = [p for p, r in self.federation.state.peers().items() if r.aligned and p != self.node_id]
        peers = [store.latest_model(p, "local") for p in sorted(aligned)]
        return [own, *(f for f in peers if f is not None)]

    def load_ensemble(self, mode: str | None = None) -> Ensemble:
        """The verified forecaster of `mode` (default: the mode last trained).

        Pooled: this node's newest pooled model. Federated: its newest local model and the newest
        local model of each aligned pinned peer, weighted by training rows. A peer's model that no
        longer verifies (its key was retired, the file altered) is left out and reported; this
        node's own model must verify.
        """
        mode = mode or self.forecast.store.mode()
        if mode is None:
            raise FailedPrecondition(
                "no model has been trained yet: run `coopfed forecast train`", code="forecast.no_model"
            )
        artifacts: list[ModelArtifact] = []
        keys: dict[str, Ed25519PublicKey] = {}
        skipped: dict[str, str] = {}
        for file in self._members(mode):
            try:
                art = ModelArtifact.load(file.path)
                if art.metadata.coop_id != file.coop_id:
                    raise ArtifactVerificationError(f"{file.path} holds a model of {art.metadata.coop_id!r}")
                keys[file.coop_id] = verifying_key(
                    art, trusted_keys(self.keys, self.federation, self.node_id, file.coop_id)
                )
            except (ArtifactError, OSError) as exc:
                if file.coop_id == self.node_id:
                    raise
                skipped[file.coop_id] = str(exc)
                continue
            artifacts.append(art)
        forecaster = Forecaster.from_artifacts(artifacts, keys)
        records = tuple(
            ModelRecord(
                m.coop_id,
                m.version,
                m.kind,
                m.trained_at,
                m.training_rows,
                float(w),
                m.contributors,
                m.sha256,
            )
            for m, w in zip(forecaster.metadata, forecaster.weights, strict=True)
        )
        return Ensemble(forecaster, mode, records, skipped)
