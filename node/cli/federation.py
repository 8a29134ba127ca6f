"""`coopfed federation ...`: an operator's commands for joining peers, grants and aggregates."""

from __future__ import annotations

import argparse
import asyncio
import csv
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from coopfed.federation.grants import Granularity
from coopfed.federation.keys import open_private
from coopfed.federation.tls import is_loopback
from coopfed.node.cli.common import NodeAction, add_period_options, bind_on_node, period_of, period_text
from coopfed.node.cli.output import Col, add_json_option, print_json, show
from coopfed.node.federation import issuer
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.federation.grantee import Grantee
from coopfed.node.federation.manifest import Manifest, own_manifest
from coopfed.node.federation.refresh import PeerRefresh
from coopfed.node.localtime import local_time
from coopfed.node.model import DATASETS, Flow
from coopfed.node.runtime import Node


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    add_json_option(
        commands.add_parser("manifest", help="this node's manifest and fingerprints, to read out to peers")
    )
    join = commands.add_parser("join", help="fetch a co-op's manifest, check alignment, pin its keys")
    join.add_argument("address", help="the co-op's public host:port (on loopback: plaintext unless --ca)")
    join.add_argument("--plaintext", action="store_true", help="no TLS (loopback only; the default there)")
    join.add_argument(
        "--ca", type=Path, help="CA certificate of the public port (default: trust on first use)"
    )
    join.add_argument("--yes", action="store_true", help="pin without asking (fingerprints checked already)")
    join.add_argument(
        "--allow-unaligned", action="store_true", help="pin even if the policy finds it unaligned"
    )
    add_json_option(commands.add_parser("peers", help="pinned peers"))
    leave = commands.add_parser("leave", help="unpin a peer: it can no longer connect or be granted")
    leave.add_argument("peer")
    ask = commands.add_parser("request-grant", help="ask a pinned peer for a grant to aggregates")
    ask.add_argument("peer")
    ask.add_argument("--dataset", action="append", default=[], help="a dataset (repeatable; default: all)")
    ask.add_argument(
        "--field", action="append", default=[], help="a field (repeatable; default: all offered)"
    )
    add_period_options(ask)
    ask.add_argument("--purpose", default="dpv:CommunityEnergyForecasting", help="purpose code")
    ask.add_argument("--min-group-size", type=int, default=0, help="ask for a larger k than the peer's")
    add_json_option(commands.add_parser("grants", help="grants held from peers, and grants this node issued"))
    fetch = commands.add_parser("fetch", help="fetch the aggregates a held grant allows, as CSV")
    fetch.add_argument("grant", help="the grant id (jti)")
    fetch.add_argument("--out", type=Path, required=True, help="CSV file to write")
    fetch.add_argument("--dataset", action="append", default=[], help="a dataset (repeatable; default: all)")
    revoke = commands.add_parser("revoke", help="revoke a grant this node issued")
    revoke.add_argument("grant", help="the grant id (jti)")
    revoke.add_argument("--reason", required=True, help="why, for the grantee to read")
    commands.add_parser("refresh", help="fetch peers' manifests and revocation lists now")
    commands.add_parser("rotate-key", help="add a signing key and sign with it; old keys still verify")
    retire = commands.add_parser("retire-key", help="stop accepting tokens signed by an old key")
    # Key ids are base64url and may start with "-": write `retire-key -- KID`.
    retire.add_argument("kid", help="the key id; put -- before it (ids may start with '-')")
    actions: dict[str, NodeAction] = {
        "manifest": _manifest,
        "join": _join,
        "peers": _peers,
        "leave": _leave,
        "request-grant": _request_grant,
        "grants": _grants,
        "fetch": _fetch,
        "revoke": _revoke,
        "refresh": _refresh,
        "rotate-key": _rotate,
        "retire-key": _retire,
    }
    bind_on_node(commands, actions, console)


def _show_manifest(manifest: Manifest, console: Console) -> None:
    gov = manifest.governance
    lines = [
        f"{manifest.name} ({manifest.coop_id})",
        "aims: " + ", ".join(manifest.aims),
        f"governance: {gov['legal_form']}, {gov['decision_making']}, {gov['consent_model']} consent, "
        f"k >= {gov['min_group_size']}, policy reviewed by {gov['policy_review']}",
        f"policy: {manifest.policy_revision} ({manifest.policy_hash})",
        f"endpoints: public {manifest.endpoints['public']}, peer {manifest.endpoints['peer']}",
        f"TLS certificate SHA-256: {manifest.tls_fingerprint}",
        *(f"signing key {kid}: {fp}" for kid, fp in manifest.key_fingerprints().items()),
    ]
    for line in lines:
        _say(console, line)


def _say(console: Console, text: str) -> None:
    """Print exactly: fingerprints are compared character by character, so no wrapping, no
    highlighting, no emoji (rich would turn ':CD:' into one), and no markup from a peer's text."""
    console.print(text, soft_wrap=True, highlight=False, emoji=False, markup=False)


def _manifest(args: argparse.Namespace, node: Node, console: Console) -> int:
    manifest = own_manifest(node.federation, node.keys, node.policy)
    if args.json:
        fingerprints = {
            "tls_fingerprint": manifest.tls_fingerprint,
            "key_fingerprints": manifest.key_fingerprints(),
        }
        print_json({**manifest.to_dict(), **fingerprints})
    else:
        _show_manifest(manifest, console)
    return 0


def _join(args: argparse.Namespace, node: Node, console: Console) -> int:
    plaintext = args.plaintext or (args.ca is None and is_loopback(args.address))
    grantee = _grantee(node)
    preview = asyncio.run(grantee.preview_join(args.address, plaintext=plaintext, ca=args.ca))
    _say(console, f"fetched over {preview.contact.transport}")
    if preview.contact.presented_fingerprint:
        _say(console, f"public port certificate SHA-256: {preview.contact.presented_fingerprint}")
    _show_manifest(preview.contact.manifest, console)
    verdict = "aligned" if preview.alignment.aligned else "not aligned"
    console.print(f"federation policy: {verdict}", style="green" if preview.alignment.aligned else "red")
    for reason in preview.alignment.reasons:
        _say(console, f"  - {reason}")
    _show_changes(node, preview.contact.manifest, console)
    if not args.yes and not _confirmed(
        console, "Do these fingerprints match what the co-op told you? Pin them"
    ):
        console.print("nothing pinned")
        return 1
    record = grantee.pin(preview, allow_unaligned=args.allow_unaligned)
    _say(console, f"pinned {record.peer_id}; it must also pin this node to exchange data")
    return 0


def _grantee(node: Node) -> Grantee:
    return Grantee(node.federation, node.keys, node.policy)


def _confirmed(console: Console, question: str) -> bool:
    """Ask [y/N]; anything but yes, or the input ending, is no."""
    try:
        answer = console.input(f"{question} [y/N] ", markup=False)
    except EOFError:
        console.print()
        return False
    return answer.strip().lower() in {"y", "yes"}


def _show_changes(node: Node, manifest: Manifest, console: Console) -> None:
    """Re-joining a pinned peer replaces its pin: say what would change."""
    pinned = node.federation.state.peers().get(manifest.coop_id)
    if pinned is None:
        return
    old = pinned.manifest
    changed = [
        what
        for what, differs in (
            ("TLS certificate", old.tls_certificate_pem != manifest.tls_certificate_pem),
            ("signing keys", set(old.jwks) != set(manifest.jwks)),
            ("aims", old.aims != manifest.aims),
            ("governance", old.governance != manifest.governance),
        )
        if differs
    ]
    note = f"changes its {', '.join(changed)}" if changed else "changes nothing"
    _say(console, f"{manifest.coop_id} is pinned already; pinning again {note}")


def _peers(args: argparse.Namespace, node: Node, console: Console) -> int:
    records = [
        {
            "peer": r.manifest.coop_id, "name": r.manifest.name, "aligned": r.aligned,
            "peer_endpoint": r.manifest.endpoints["peer"], "tls_fingerprint": r.manifest.tls_fingerprint,
            "keys": len(r.manifest.jwks), "updated": _at(r.updated_at),
        }
        for r in node.federation.state.peers().values()
    ]  # fmt: skip
    columns = [
        Col("peer", "peer", True), Col("name", "name"), Col("aligned", "aligned"),
        Col("peer_endpoint", "peer endpoint"), Col("tls_fingerprint", "TLS fingerprint", True),
        Col("keys", "keys"), Col("updated", "updated"),
    ]  # fmt: skip
    show(console, records, columns, as_json=args.json, empty="no peers pinned")
    return 0


def _leave(args: argparse.Namespace, node: Node, console: Console) -> int:
    node.federation.state.unpin(args.peer)
    _say(console, f"unpinned {args.peer}")
    return 0


def _request_grant(args: argparse.Namespace, node: Node, console: Console) -> int:
    start, end = period_of(args)
    ask = GrantAsk(
        datasets=tuple(args.dataset) or DATASETS,
        fields=tuple(args.field),
        granularity=Granularity.AGGREGATE.value,
        flow=Flow.COOP_TO_COOP.value,
        purpose=args.purpose,
        period_start=start,
        period_end=end,
        min_group_size=args.min_group_size,
    )
    held, reasons = asyncio.run(_grantee(node).obtain_grant(args.peer, ask))
    _say(console, f"granted {held.jti} by {held.issuer}, until {local_time(held.expires_at)}")
    for reason in reasons:
        _say(console, f"  - {reason}")
    return 0


def _grants(args: argparse.Namespace, node: Node, console: Console) -> int:
    state = node.federation.state
    held = [
        {
            "grant_id": g.jti, "issuer": g.issuer, "datasets": sorted(g.scope.datasets),
            "period": period_text(g.scope.period_start, g.scope.period_end),
            "min_group_size": g.constraints.min_group_size, "expires": _at(g.expires_at),
            "status": "valid" if g.revoked_reason is None else f"revoked: {g.revoked_reason}",
        }
        for g in state.held().values()
    ]  # fmt: skip
    revoked = state.revocations()
    issued = [
        {
            "grant_id": g["jti"], "to": g["subject"], "datasets": list(g["scope"]["datasets"]),
            "expires": _at(g["expires_at"]),
            "status": f"revoked: {revoked.reason_for(g['jti'])}" if g["jti"] in revoked else "valid",
        }
        for g in state.issued()
    ]  # fmt: skip
    if args.json:
        print_json({"held": held, "issued": issued})
        return 0
    show(console, held, [
        Col("grant_id", "held grant", True), Col("issuer", "issuer"), Col("datasets", "datasets"),
        Col("period", "period"), Col("min_group_size", "k"), Col("expires", "expires"),
        Col("status", "status"),
    ], as_json=False, empty="no grants held from peers", title="held from peers")  # fmt: skip
    show(console, issued, [
        Col("grant_id", "issued grant", True), Col("to", "to"), Col("datasets", "datasets"),
        Col("expires", "expires"), Col("status", "status"),
    ], as_json=False, empty="no grants issued to peers", title="issued to peers")  # fmt: skip
    return 0


def _fetch(args: argparse.Namespace, node: Node, console: Console) -> int:
    result = asyncio.run(_grantee(node).fetch_aggregates(args.grant, datasets=tuple(args.dataset)))
    rows = 0
    with open_private(args.out, newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["dataset", "period_start", "kwh", "member_count"])
        for dataset, series in sorted(result.series.items()):
            for i, period in enumerate(series.periods.tolist()):
                kwh = "" if series.kwh is None else f"{series.kwh[i]:.6f}"
                count = "" if series.member_count is None else str(int(series.member_count[i]))
                out.writerow([dataset, _iso(period), kwh, count])
                rows += 1
    s = result.summary
    console.print(
        f"wrote {rows} cells to {args.out}; {s.cells_suppressed} cells withheld (fewer than "
        f"{result.header.min_group_size} members)"
    )
    return 0


def _revoke(args: argparse.Namespace, node: Node, console: Console) -> int:
    entry = issuer.revoke(node.federation.state, args.grant, args.reason)
    _say(console, f"revoked {entry.jti}: refused here at once, by peers at their next refresh")
    return 0


def _refresh(args: argparse.Namespace, node: Node, console: Console) -> int:
    report = asyncio.run(PeerRefresh(node.federation, node.keys, node.policy, node.governance).refresh_all())
    _say(console, f"refreshed {', '.join(report.refreshed) or 'no peers'}")
    for peer in report.rekeyed:
        _say(console, f"  {peer}: signing keys re-pinned from its manifest")
    for jti in report.newly_revoked:
        console.print(f"  grant {jti} was revoked by its issuer", markup=False, style="red")
    for peer, problem in report.failures.items():
        _say(console, f"  {peer}: {problem}")
    return 0 if not report.failures else 1


def _rotate(args: argparse.Namespace, node: Node, console: Console) -> int:
    from coopfed.node.admin import ask
    from coopfed.node.operations import serving_note
    from coopfed.v1 import admin_pb2

    folder = node.settings.base_dir
    if serving_note(folder) is not None:  # the running node rotates its own ring, and says so
        reply = ask(folder, "RotateKey", admin_pb2.RotateKeyRequest())
        kid, kids = reply.kid, list(reply.kids)
    else:
        kid, kids = node.keys.rotate().kid, node.keys.kids
        _say(console, f"no node is running in {folder}: its key ring was rotated, for when it starts")
    _say(console, f"signing with {kid}; older keys verify until retired: {', '.join(kids[:-1])}")
    console.print(
        "retire an old key with `coopfed federation retire-key -- KID`, only after peers "
        "refreshed (they re-pin from the manifest)"
    )
    return 0


def _retire(args: argparse.Namespace, node: Node, console: Console) -> int:
    node.keys.retire(args.kid)
    _say(console, f"retired {args.kid}: tokens and grants it signed no longer verify")
    return 0


def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()
