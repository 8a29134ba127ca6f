"""`coopfed federation ...`: an operator's commands for joining peers, grants and aggregates."""

from __future__ import annotations

import argparse
import asyncio
import csv
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coopfed.federation.grants import Granularity
from coopfed.federation.keys import open_private
from coopfed.node.cli.common import NodeAction, bind_on_node, id_column
from coopfed.node.errors import UsageError
from coopfed.node.federation import grantee, issuer
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.federation.manifest import Manifest, own_manifest
from coopfed.node.federation.refresh import refresh_all
from coopfed.node.model import DATASETS, Flow
from coopfed.node.runtime import Node


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--config", type=Path, default=Path("coopfed.toml"), help="the node's coopfed.toml")
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    commands.add_parser("manifest", help="this node's manifest and fingerprints, to read out to peers")
    join = commands.add_parser("join", help="fetch a co-op's manifest, check alignment, pin its keys")
    join.add_argument("address", help="the co-op's public host:port")
    join.add_argument("--plaintext", action="store_true", help="no TLS (loopback development only)")
    join.add_argument(
        "--ca", type=Path, help="CA certificate of the public port (default: trust on first use)"
    )
    join.add_argument("--yes", action="store_true", help="pin without asking (fingerprints checked already)")
    join.add_argument(
        "--allow-unaligned", action="store_true", help="pin even if the policy finds it unaligned"
    )
    commands.add_parser("peers", help="pinned peers")
    leave = commands.add_parser("leave", help="unpin a peer: it can no longer connect or be granted")
    leave.add_argument("peer")
    ask = commands.add_parser("request-grant", help="ask a pinned peer for a grant to aggregates")
    ask.add_argument("peer")
    ask.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated datasets")
    ask.add_argument("--fields", default="", help="comma-separated fields (default: all offered)")
    ask.add_argument("--start", required=True, help="first day, ISO 8601 (UTC)")
    ask.add_argument("--end", required=True, help="first day excluded, ISO 8601 (UTC)")
    ask.add_argument("--purpose", default="dpv:CommunityEnergyForecasting", help="purpose code")
    ask.add_argument("--min-group-size", type=int, default=0, help="ask for a larger k than the peer's")
    commands.add_parser("grants", help="grants held from peers, and grants this node issued")
    fetch = commands.add_parser("fetch", help="fetch the aggregates a held grant allows, as CSV")
    fetch.add_argument("grant", help="the grant id (jti)")
    fetch.add_argument("--out", type=Path, required=True, help="CSV file to write")
    fetch.add_argument("--datasets", default="", help="comma-separated (default: all granted)")
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
    _show_manifest(own_manifest(node), console)
    return 0


def _join(args: argparse.Namespace, node: Node, console: Console) -> int:
    preview = asyncio.run(grantee.preview_join(node, args.address, plaintext=args.plaintext, ca=args.ca))
    console.print(f"fetched over {preview.contact.transport}")
    if preview.contact.presented_fingerprint:
        _say(console, f"public port certificate SHA-256: {preview.contact.presented_fingerprint}")
    _show_manifest(preview.contact.manifest, console)
    verdict = "[green]aligned[/green]" if preview.alignment.aligned else "[red]not aligned[/red]"
    console.print(f"federation policy: {verdict}")
    for reason in preview.alignment.reasons:
        _say(console, f"  - {reason}")
    _show_changes(node, preview.contact.manifest, console)
    if not args.yes:
        answer = console.input("Do these fingerprints match what the co-op told you? Pin them [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            console.print("nothing pinned")
            return 1
    record = grantee.pin(node, preview, allow_unaligned=args.allow_unaligned)
    console.print(f"pinned [bold]{record.peer_id}[/bold]; it must also pin this node to exchange data")
    return 0


def _show_changes(node: Node, manifest: Manifest, console: Console) -> None:
    """Re-joining a pinned peer replaces its pin: say what would change."""
    pinned = issuer.federation_of(node).state.peers().get(manifest.coop_id)
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
    table = Table("peer", "name", "aligned", "peer endpoint", "TLS fingerprint", "keys", "updated")
    for record in issuer.federation_of(node).state.peers().values():
        m = record.manifest
        table.add_row(
            m.coop_id, escape(m.name), "yes" if record.aligned else "no", m.endpoints["peer"],
            m.tls_fingerprint[:23] + "...", str(len(m.jwks)), _when(record.updated_at),
        )  # fmt: skip
    console.print(table)
    return 0


def _leave(args: argparse.Namespace, node: Node, console: Console) -> int:
    issuer.federation_of(node).state.unpin(args.peer)
    console.print(f"unpinned {args.peer}")
    return 0


def _request_grant(args: argparse.Namespace, node: Node, console: Console) -> int:
    ask = GrantAsk(
        datasets=_list(args.datasets),
        fields=_list(args.fields),
        granularity=Granularity.AGGREGATE.value,
        flow=Flow.COOP_TO_COOP.value,
        purpose=args.purpose,
        period_start=_day(args.start, "--start"),
        period_end=_day(args.end, "--end"),
        min_group_size=args.min_group_size,
    )
    held, reasons = asyncio.run(grantee.obtain_grant(node, args.peer, ask))
    console.print(f"granted [bold]{held.jti}[/bold] by {held.issuer}, until {_when(held.expires_at)}")
    for reason in reasons:
        _say(console, f"  - {reason}")
    return 0


def _grants(args: argparse.Namespace, node: Node, console: Console) -> int:
    state = issuer.federation_of(node).state
    held = Table(
        id_column("held grant"),
        "issuer",
        "datasets",
        "period",
        "k",
        "expires",
        "status",
        title="held from peers",
    )
    for g in state.held().values():
        status = "valid" if g.revoked_reason is None else escape(f"revoked: {g.revoked_reason}")
        held.add_row(
            g.jti, g.issuer, ",".join(sorted(g.scope.datasets)),
            f"{_when(g.scope.period_start)} - {_when(g.scope.period_end)}",
            str(g.constraints.min_group_size), _when(g.expires_at), status,
        )  # fmt: skip
    console.print(held)
    revoked = state.revocations()
    issued = Table(id_column("issued grant"), "to", "datasets", "expires", "status", title="issued to peers")
    for g in state.issued():
        status = "valid" if g["jti"] not in revoked else escape(f"revoked: {revoked.reason_for(g['jti'])}")
        issued.add_row(
            g["jti"], g["subject"], ",".join(g["scope"]["datasets"]), _when(g["expires_at"]), status
        )
    console.print(issued)
    return 0


def _fetch(args: argparse.Namespace, node: Node, console: Console) -> int:
    result = asyncio.run(grantee.fetch_aggregates(node, args.grant, datasets=_list(args.datasets)))
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
    entry = issuer.revoke(node, args.grant, args.reason)
    console.print(f"revoked {entry.jti}: refused here at once, by peers at their next refresh")
    return 0


def _refresh(args: argparse.Namespace, node: Node, console: Console) -> int:
    report = asyncio.run(refresh_all(node))
    console.print(f"refreshed {', '.join(report.refreshed) or 'no peers'}")
    for peer in report.rekeyed:
        console.print(f"  {peer}: signing keys re-pinned from its manifest")
    for jti in report.newly_revoked:
        console.print(f"  [red]grant {jti} was revoked by its issuer[/red]")
    for peer, problem in report.failures.items():
        _say(console, f"  {peer}: {problem}")
    return 0 if not report.failures else 4


def _rotate(args: argparse.Namespace, node: Node, console: Console) -> int:
    key = node.keys.rotate()
    console.print(
        f"signing with {key.kid}; older keys verify until retired: {', '.join(node.keys.kids[:-1])}"
    )
    console.print(
        "retire an old key with `coopfed federation retire-key -- KID`, only after peers "
        "refreshed (they re-pin from the manifest)"
    )
    return 0


def _retire(args: argparse.Namespace, node: Node, console: Console) -> int:
    node.keys.retire(args.kid)
    console.print(f"retired {args.kid}: tokens and grants it signed no longer verify")
    return 0


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _day(text: str, option: str) -> int:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option}: not an ISO 8601 date or time: {text!r}", code="cli.date") from exc
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def _when(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M")


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()
