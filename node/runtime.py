"""The running node: settings, storage, policy engine and keys, opened and closed together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coopfed.federation.keys import KeyRing, write_private
from coopfed.node.ballots.gate import BallotGate
from coopfed.node.credentials import Credentials
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import AlreadyExists
from coopfed.node.federation.context import (
    Federation,
    check_node_id,
    create_tls,
    default_peer_listen,
    open_federation,
)
from coopfed.node.forecast.context import ForecastContext, open_forecast
from coopfed.node.loghead import HeadSigner
from coopfed.node.masking import Masker, load_or_create_key
from coopfed.node.meters import ensure_key as ensure_meter_key
from coopfed.node.metrics import Metrics
from coopfed.node.operations import check_database
from coopfed.node.policy import load_policies
from coopfed.node.policy.consent import ConsentAnswers
from coopfed.node.policy.defaults import write_coop_policies
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.policy.reload import open_policy
from coopfed.node.release.pipeline import ReleasePipeline
from coopfed.node.settings import FederationSection, NodeSection, Settings, render_toml
from coopfed.node.storage import Store
from coopfed.node.storage.ballots import BallotStore
from coopfed.node.storage.ballots_sqlite import SqlBallotStore
from coopfed.node.storage.configured import open_store
from coopfed.node.storage.federation_sqlite import SqlFederationStore
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.governance_sqlite import SqlGovernanceStore

DAY = 86_400
CONFIG_NAME = "coopfed.toml"


@dataclass
class Node:
    """Everything a request handler needs. Built once in `open_node`, passed down."""

    settings: Settings
    store: Store
    policy: PolicyHolder  # the current policy engine; swapped atomically on reload
    keys: KeyRing
    credentials: Credentials  # people's tokens: issued, verified, revoked
    consent: ConsentAnswers  # the consent policy's answers, logged once per profile and revision
    federation: Federation  # TLS identity, pinned peers, grants, revocations
    governance: GovernanceStore  # organisations, requests, grants, decision and access logs
    decision_log: DecisionLog
    pipeline: ReleasePipeline  # the one release pipeline every flow that lets data leave goes through
    forecast: ForecastContext  # signed models, the latest forecast, nudge streams
    ballots: BallotStore | None = None  # members' proposals, who voted, the ballot box, tallies
    metrics: Metrics = field(default_factory=Metrics)  # served over HTTP where [metrics] says

    @property
    def node_id(self) -> str:
        return self.settings.node.id

    @property
    def policy_data(self) -> dict[str, Any]:
        """The data (personas, purposes, weights) of the policy revision this request runs on."""
        return self.policy.data


@contextlib.contextmanager
def open_node(settings: Settings) -> Iterator[Node]:
    """Open storage, the policy engine and the keys; close whatever was opened on the way out."""
    if not settings.storage.url:  # missing, read-only or damaged: refuse with a reason, create nothing
        check_database(settings.path(settings.storage.path))
    with contextlib.ExitStack() as stack:
        store = open_store(settings)
        ensure_meter_key(settings.base_dir)  # nodes made before meters were keyed get theirs now
        stack.callback(store.close)
        governance = SqlGovernanceStore(store)
        ballots = SqlBallotStore(store, governance)
        conf = settings.policy
        engine = stack.enter_context(
            open_policy(
                kind=conf.engine, policy_dir=settings.path(conf.dir),
                bundle=settings.path(conf.bundle) if conf.bundle else None,
                board_keys=[settings.path(k) for k in conf.board_keys], threshold=conf.signatures_required,
                scope=conf.signature_scope, state_dir=settings.base_dir, watch=conf.watch,
                rollback_threshold=conf.rollback_signatures_required,
                gate=BallotGate(ballots, settings.path(conf.dir)),
                opa_url=conf.opa_url, opa_binary=conf.opa_binary,
                opa_token_file=settings.path(conf.opa_token_file) if conf.opa_token_file else None,
                opa_ca_file=settings.path(conf.opa_ca_file) if conf.opa_ca_file else None,
            )
        )  # fmt: skip
        keys = KeyRing.load_or_create(settings.keys_dir)
        # masks by the rules of the revision that made each decision, so a reload applies at once
        masker = Masker(engine, load_or_create_key(settings.keys_dir))
        metrics = Metrics(lambda: engine.revision)
        decision_log = DecisionLog(
            masker, {"id": settings.node.id}, governance.append_decisions, logged=metrics.logged
        )
        stack.callback(decision_log.flush)  # before the store closes: no waiting decision is lost
        consent = ConsentAnswers(engine, decision_log)
        node = Node(
            settings, store, engine, keys,
            Credentials(settings.node, keys, store, governance, decision_log, engine), consent,
            federation=open_federation(settings, SqlFederationStore(store)),
            governance=governance, ballots=ballots, decision_log=decision_log,
            pipeline=ReleasePipeline(
                store=store, governance=governance, policy=engine, decision_log=decision_log,
                consent=consent, metrics=metrics,
            ),
            forecast=open_forecast(settings, SqlForecastIndex(store)), metrics=metrics,
        )  # fmt: skip
        governance.heads = HeadSigner(node.node_id, lambda: node.keys)  # signs with the ring in use
        yield node


def init_node(folder: Path, *, node_id: str, name: str, listen: str, policies: Path | None = None) -> Path:
    """Create a node's folder (mode 0700): config, its own policies, keys, TLS identity and database.

    The co-op's policies go to `<folder>/policies`, copied from `policies` (default: the ones
    coopfed ships) with the co-op's id and name filled in; a `policies` that is already that
    folder is used as it is. Refuses to overwrite. The peer port listens next to the public one
    (see default_peer_listen).
    """
    check_node_id(node_id)
    config = folder / CONFIG_NAME
    if config.exists():
        raise AlreadyExists(f"{config} already exists; a node is set up there", code="node.exists")
    settings = Settings(
        base_dir=folder.resolve(),
        node=replace(NodeSection(), id=node_id, name=name, listen=listen),
        federation=replace(FederationSection(), listen=default_peer_listen(listen)),
    )
    own = settings.path(settings.policy.dir)
    _make_private_folder(folder)
    if policies is None or policies.resolve() != own:
        if own.exists():
            raise AlreadyExists(
                f"{own} already exists; pass --policies {own} to use it as it is", code="node.policies_exist"
            )
        write_coop_policies(own, coop_id=node_id, name=name, source=policies)
    load_policies(own)  # fail early on a wrong policies folder
    KeyRing.load_or_create(settings.keys_dir)
    ensure_meter_key(settings.base_dir)
    create_tls(settings)  # TLS key and certificate (CN = node id)
    open_store(settings, create=True).close()
    write_private(config, render_toml(settings).encode("utf-8"))
    return config


def _make_private_folder(folder: Path) -> None:
    """The node's folder holds its keys and members' data: only its owner may enter it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
