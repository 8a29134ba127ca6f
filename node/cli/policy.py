"""`coopfed policy ...`: what a technical board runs on a policy change: test, check, diff, sign, explain."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from coopfed.federation.errors import KeyStoreError
from coopfed.node.cli.common import node_settings
from coopfed.node.cli.output import add_json_option, print_json
from coopfed.node.errors import FailedPrecondition, UsageError
from coopfed.node.policy import bundle as bundles
from coopfed.node.policy.boardkeys import BoardKeySet, BoardSigningKey, fingerprint
from coopfed.node.policy.errors import PolicyEngineError
from coopfed.node.policy.regotest import find_tool, run_checks, run_tests

if TYPE_CHECKING:
    from coopfed.node.policy.impact import LogEntry
    from coopfed.node.storage.governance import GovernanceStore
    from coopfed.node.storage.sql import SqlStore

Action = Callable[[argparse.Namespace, Console], int]


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    """Register the `policy` group's actions."""
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    actions: dict[str, tuple[Action, Callable[[argparse.ArgumentParser], None], str]] = {
        "test": (_test, _args_test, "run the Rego tests on OPA (with coverage) and on the embedded engine"),
        "check": (_check, _args_check, "opa check --strict, opa fmt --diff and the Regal linter"),
        "diff": (
            _diff,
            _args_diff,
            "replay a node's decision log through two revisions; report what changes",
        ),
        "keygen": (_keygen, _args_keygen, "create a board member's bundle-signing key (ES256)"),
        "bundle": (_bundle, _args_bundle, "build a signed OPA bundle of the policies"),
        "sign": (_sign, _args_sign, "add a board member's signature to a bundle"),
        "verify": (_verify, _args_verify, "verify a bundle against the board's keys"),
        "reload": (_reload, _args_reload, "ask a running node to load its bundle again; say what happened"),
        "explain": (_explain, _args_explain, "a logged decision in plain words"),
    }
    for name, (action, configure, help_text) in actions.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        configure(sub)
        sub.set_defaults(func=lambda args, action=action: _guarded(action, args, console))


def _guarded(action: Action, args: argparse.Namespace, console: Console) -> int:
    """Errors of the policy layer and of key files are the user's to fix: say so, no traceback."""
    try:
        return action(args, console)
    except (PolicyEngineError, KeyStoreError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return 2


def _policies_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policies", type=Path, help="the policy folder (default: the node's, from --config, or ./policies)"
    )
    p.add_argument("--config", type=Path, help="a node's coopfed.toml: use its policies folder")


def _policy_dir(args: argparse.Namespace) -> Path:
    """--policies, else the node's own copy ([policy] dir of --config), else ./policies."""
    if args.policies is not None:
        folder = args.policies
    elif args.config is not None:
        settings = node_settings(args.config)
        folder = settings.path(settings.policy.dir)
    else:
        folder = Path("policies")
    if not folder.is_dir():
        raise UsageError(
            f"no policy folder at {folder}: give --policies DIR or --config of a node", code="cli.policies"
        )
    return folder


def _opa(args: argparse.Namespace) -> str:
    opa = find_tool("opa", args.opa)
    if opa is None:
        raise FailedPrecondition("OPA not found: make install, --opa PATH or COOPFED_OPA", code="cli.no_opa")
    return opa


# --- test and check -----------------------------------------------------------------------


def _args_test(p: argparse.ArgumentParser) -> None:
    _policies_arg(p)
    p.add_argument("--opa", help="the opa binary")
    p.add_argument("--coverage-threshold", type=float, default=90.0, help="least line coverage (percent)")


def _test(args: argparse.Namespace, console: Console) -> int:
    report = run_tests(_policy_dir(args), _opa(args))
    passed = sum(o.opa == "pass" for o in report.outcomes)
    console.print(f"OPA: {passed} of {len(report.outcomes)} Rego tests pass")
    for o in report.opa_failures:
        console.print(f"  [red]{o.opa}[/red] {o.package}.{o.name} {escape(o.message)}", highlight=False)
    table = Table("policy file", "coverage", "lines not covered")
    for name, pct in report.coverage.items():
        table.add_row(name, f"{pct:.1f}%", ", ".join(map(str, report.uncovered[name][:20])))
    console.print(table)
    console.print(f"coverage {report.total_coverage:.1f}% (threshold {args.coverage_threshold:.1f}%)")
    ran = [o for o in report.outcomes if o.embedded in ("pass", "fail")]
    console.print(f"embedded engine: ran {len(ran)} of {len(report.outcomes)} Rego tests", markup=False)
    if len(ran) < len(report.outcomes):
        why = Counter(
            "it crashed" if o.embedded.startswith("crashed") else o.embedded
            for o in report.outcomes
            if o not in ran
        )
        console.print(
            "  only OPA runs all of *_test.rego: rego-cpp (regopy) does not support OPA's test runner "
            f"({', '.join(f'{n} {w}' for w, n in why.items())}); the two engines are compared on the case "
            "tables instead",
            markup=False,
            style="yellow",
        )
    for o in report.disagreements:
        console.print(f"  [red]disagree[/red] {o.package}.{o.name}: OPA {o.opa}, embedded {o.embedded}")
    console.print(f"case tables: {report.cases_replayed} inputs replayed through both engines")
    for d in report.differences:
        console.print(
            f"  [red]engines differ[/red] {d.package} {escape(d.case)} on {d.entrypoint}", highlight=False
        )
        opa, embedded = _differing(d.opa[1], d.embedded[1])
        for name, value in (("OPA:     ", opa), ("embedded:", embedded)):
            console.print(
                f"    {name} {escape(json.dumps(value, sort_keys=True))}", highlight=False, soft_wrap=True
            )
    ok = report.ok(args.coverage_threshold)
    scope = (
        "on OPA, and both engines agree on the case tables" if ran != report.outcomes else "on both engines"
    )
    console.print(f"policy tests pass {scope}" if ok else "policy tests fail", style="green" if ok else "red")
    return 0 if ok else 1


def _differing(a: Any, b: Any) -> tuple[Any, Any]:
    """Only the members of two decisions that differ, so a reader sees the difference at once."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return a, b
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return {k: a.get(k) for k in keys}, {k: b.get(k) for k in keys}


def _args_check(p: argparse.ArgumentParser) -> None:
    _policies_arg(p)
    p.add_argument("--opa", help="the opa binary")
    p.add_argument("--regal", help="the regal binary")
    p.add_argument("--require-regal", action="store_true", help="fail where Regal is not installed")


def _check(args: argparse.Namespace, console: Console) -> int:
    results = run_checks(_policy_dir(args), _opa(args), find_tool("regal", args.regal))
    failed = False
    for r in results:
        if r.skipped:
            failed |= args.require_regal
            console.print(f"[yellow]SKIPPED[/yellow] {r.name}: {r.skipped}", highlight=False)
            continue
        failed |= not r.ok
        console.print(f"{'[green]ok[/green]' if r.ok else '[red]FAIL[/red]'} {r.name}")
        if r.output and not r.ok:
            console.print(escape(r.output), highlight=False, soft_wrap=True)
    return 1 if failed else 0


# --- impact analysis ----------------------------------------------------------------------


def _args_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, help="git revision (or directory) of the policies now in force")
    p.add_argument("--head", required=True, help="git revision (or directory) of the proposed policies")
    p.add_argument("--repo", type=Path, default=Path("."), help="the git repository")
    p.add_argument("--policies", default="policies", help="the policy directory inside the repository")
    _log_args(p)
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "wasm", "opa", "embedded"],
        help="auto: wasm (OPA compiled to WebAssembly) if OPA is installed, else embedded",
    )
    p.add_argument("--opa", help="the opa binary")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here (else it is printed)")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--examples", type=int, default=3, help="examples per kind of change")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="a node's coopfed.toml: read its decision log")
    p.add_argument("--log", type=Path, help="a decision log exported as JSON lines (coopfed audit export)")


@contextlib.contextmanager
def _entries(args: argparse.Namespace, bad: Counter[str]) -> Iterator[Iterator[LogEntry]]:
    """The decision log from a JSON-lines file or straight from a node's database (read only)."""
    from coopfed.node.policy.impact import parse_entries  # the replay engines load only for diff

    if args.log:
        with args.log.open(encoding="utf-8") as lines:
            yield parse_entries((line for line in lines if line.strip()), bad)
    elif args.config:
        with _governance(args.config) as governance:
            yield parse_entries(governance.decision_log(), bad)
    else:
        raise UsageError("give --config (a node's log) or --log (an export)", code="cli.log")


def _log_size(args: argparse.Namespace) -> int | None:
    """How many entries the log holds, for the progress bar (None where it cannot tell)."""
    if args.log:
        with args.log.open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())
    if args.config:
        with _governance(args.config) as governance:
            return governance.decision_log_head()[0]
    return None


@contextlib.contextmanager
def _database(config: Path) -> Iterator[SqlStore]:
    """The store of a node's database (either backend), given its coopfed.toml."""
    from coopfed.node.storage.configured import open_store

    store = open_store(node_settings(config), create=True)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def _governance(config: Path) -> Iterator[GovernanceStore]:
    """The governance store of a node's database, given its coopfed.toml."""
    from coopfed.node.storage.governance_sqlite import SqlGovernanceStore

    with _database(config) as store:
        yield SqlGovernanceStore(store)


def _diff(args: argparse.Namespace, console: Console) -> int:
    import tempfile

    from coopfed.node.policy.impact import ImpactAnalysis, ImpactReport
    from coopfed.node.policy.replay import checkout, make_replayer

    opa = find_tool("opa", args.opa)
    with tempfile.TemporaryDirectory(prefix="coopfed-diff-") as tmp:
        base_dir = checkout(args.base, Path(tmp), repo=args.repo, subdir=args.policies)
        head_dir = checkout(args.head, Path(tmp), repo=args.repo, subdir=args.policies)
        base = make_replayer(base_dir, args.engine, opa)
        try:
            head = make_replayer(head_dir, args.engine, opa)
        except BaseException:
            base.close()
            raise
        report = ImpactReport(args.base, args.head, base.policies.revision, head.policies.revision, base.name)
        try:
            with (
                _entries(args, report.malformed) as entries,
                Progress(
                    *Progress.get_default_columns(), MofNCompleteColumn(), console=console, transient=True
                ) as bar,
            ):
                task = bar.add_task("replaying decisions", total=_log_size(args))
                analysis = ImpactAnalysis(
                    base, head, report, examples_per_change=args.examples,
                    progress=lambda n: bar.advance(task, n),
                )  # fmt: skip
                analysis.run(entries)
        finally:
            base.close()
            head.close()
    markdown = report.to_markdown()
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
        console.print(
            f"{report.changed:,} of {report.replayed:,} replayed decisions change; report in {args.markdown}"
        )
    else:
        print(markdown, end="")
    return 0


# --- keys and bundles ---------------------------------------------------------------------


def _args_keygen(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="writes OUT.key (private, 0600) and OUT.pub")


def _keygen(args: argparse.Namespace, console: Console) -> int:
    private, public = args.out.with_suffix(".key"), args.out.with_suffix(".pub")
    if private.exists():
        raise UsageError(f"{private} exists; not overwriting a key", code="cli.key_exists")
    key = BoardSigningKey.generate()
    key.save(private, public)
    console.print(f"board key {key.kid}\nfingerprint {fingerprint(key.public_key)}", highlight=False)
    console.print(f"private key {private} (keep it secret); public key {public} (give it to the nodes)")
    return 0


def _args_bundle(p: argparse.ArgumentParser) -> None:
    _policies_arg(p)
    p.add_argument("--key", type=Path, action="append", required=True, help="a board signing key (repeat)")
    p.add_argument("--out", type=Path, required=True, help="the bundle to write (.tar.gz)")
    p.add_argument("--scope", default=bundles.DEFAULT_SCOPE, help="the scope claim signatures carry")
    p.add_argument("--source", help="where the policies come from (default: git describe)")
    p.add_argument(
        "--serial", type=int, help="the bundle's counter (default: one more than the bundle at --out, or 1)"
    )
    p.add_argument(
        "--rollback", action="store_true", help="re-issue earlier content on purpose (needs more signatures)"
    )
    p.add_argument(
        "--ballot", action="append", default=[], type=_ballot_arg, metavar="ID:DIGEST",
        help="a passed ballot whose change this bundle carries (`coopfed ballot apply` prints it; repeat)",
    )  # fmt: skip


def _ballot_arg(text: str) -> tuple[str, str]:
    ballot_id, sep, digest = text.partition(":")
    if not (sep and ballot_id and len(digest) == 64):
        raise argparse.ArgumentTypeError(f"a ballot as ID:TALLY_DIGEST, not {text!r}")
    return ballot_id, digest


def _bundle(args: argparse.Namespace, console: Console) -> int:
    keys = [BoardSigningKey.load(k) for k in args.key]
    policies = _policy_dir(args)
    source = args.source if args.source is not None else _git_source(policies)
    serial = args.serial if args.serial is not None else bundles.next_serial(args.out)
    info = bundles.build_bundle(
        policies, args.out, keys, scope=args.scope, source=source, serial=serial, rollback=args.rollback,
        ballots=args.ballot,
    )  # fmt: skip
    console.print(
        f"bundle {info.path}: serial {info.serial}{' (rollback)' if info.rollback else ''}, "
        f"revision {info.revision}, {len(info.files)} files",
        markup=False,
    )
    console.print(f"signed by {', '.join(info.signers)}", highlight=False)
    return 0


def _git_source(policies: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(policies), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _args_sign(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True, help="your board signing key")
    p.add_argument("--scope", default=bundles.DEFAULT_SCOPE)


def _sign(args: argparse.Namespace, console: Console) -> int:
    key = BoardSigningKey.load(args.key)
    info = bundles.sign_bundle(args.bundle, key, scope=args.scope)
    console.print(
        f"added the signature of {key.kid} to {info.path} (revision {info.revision})", highlight=False
    )
    return 0


def _args_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--board-key", type=Path, action="append", required=True, help="a board public key (repeat)"
    )
    p.add_argument("--threshold", type=int, default=1, help="how many board keys must have signed")
    p.add_argument("--scope", default=bundles.DEFAULT_SCOPE)


def _verify(args: argparse.Namespace, console: Console) -> int:
    keys = BoardKeySet.load(args.board_key)
    try:
        verified = bundles.verify_bundle(args.bundle, keys, threshold=args.threshold, scope=args.scope)
    except bundles.BundleError as exc:
        console.print(f"[red]refused[/red]: {escape(str(exc))}", highlight=False)
        return 1
    info = verified.info
    console.print(f"[green]verified[/green] revision {info.revision}", highlight=False)
    console.print(f"signed by {len(info.signers)} board key(s): {', '.join(info.signers)}", highlight=False)
    return 0


# --- a running node -----------------------------------------------------------------------


def _args_reload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node's answer")


def _reload(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.admin import ask
    from coopfed.v1 import admin_pb2

    settings = node_settings(args.config)
    if not settings.policy.bundle:
        raise FailedPrecondition(
            f"{args.config} runs the policies folder ({settings.policy.dir}), not a signed bundle: "
            "there is nothing to reload; set bundle in the policy section and restart the node",
            code="cli.no_bundle",
        )
    outcome = ask(settings.base_dir, "ReloadPolicy", admin_pb2.ReloadPolicyRequest(), timeout=args.timeout)
    if outcome.ok:
        console.print(f"[green]running[/green] revision {outcome.revision}", highlight=False)
        console.print(f"signed by {', '.join(outcome.signers)}", highlight=False)
        return 0
    console.print(f"[red]refused[/red]: {escape(outcome.reason)}", highlight=False)
    console.print(f"the node keeps revision {outcome.revision}", highlight=False)
    return 1


def _args_explain(p: argparse.ArgumentParser) -> None:
    p.add_argument("decision_id")
    _log_args(p)
    add_json_option(p)


def _node_modules(config: Path) -> dict[str, str]:
    """The Rego modules of the node's own policy folder ({} where it has none)."""
    from coopfed.node.policy.loader import load_policies

    settings = node_settings(config)
    try:
        return load_policies(settings.path(settings.policy.dir)).modules
    except PolicyEngineError:
        return {}


def _explain(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.policy.explain import ballots_behind, explain, find_entry, lookup_entry, not_found
    from coopfed.node.storage.ballots_sqlite import SqlBallotStore
    from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore

    behind: list[dict[str, Any]] = []
    if args.config and not args.log:  # a node's own log: one indexed lookup, no scan
        with _database(args.config) as store:
            entry = lookup_entry(SqliteGovernanceStore(store), args.decision_id)
            behind = ballots_behind(SqlBallotStore(store), entry, _node_modules(args.config))
    else:
        with _entries(args, Counter()) as entries:
            found = find_entry(entries, args.decision_id)
        if found is None:
            raise not_found(args.decision_id)
        entry = found
    if args.json:
        print_json({**dataclasses.asdict(entry), "ballots": behind})
        return 0
    for line in explain(entry, behind):
        console.print(line, highlight=False, markup=line.startswith(("[bold]", "Result")), soft_wrap=True)
    return 0
