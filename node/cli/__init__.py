"""The `coopfed` command line: one module per command group, one entry point, one error path."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

# gRPC's core logs a failed TLS handshake at info level to stderr, beside our one-line error; it
# reads this once, when grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc

from coopfed.node.cli import (
    ballot,
    federation,
    forecast,
    governance,
    ledger,
    member,
    meters,
    node,
    opendata,
    output,
    policy,
)
from coopfed.node.errors import as_coopfed_error
from coopfed.node.logs import configure_logging

console = output.make_console()
log = logging.getLogger("coopfed.cli")

# What a person reads for each gRPC status the node answers with, and the exit code it gives.
_STATUS_WORDS: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.UNAVAILABLE: ("cannot reach the node", 3),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("the node did not answer in time", 3),
    grpc.StatusCode.UNAUTHENTICATED: ("the node does not accept your credential", 1),
    grpc.StatusCode.PERMISSION_DENIED: ("refused", 1),
    grpc.StatusCode.INVALID_ARGUMENT: ("the node refused the input", 1),
    grpc.StatusCode.NOT_FOUND: ("not found", 1),
    grpc.StatusCode.ALREADY_EXISTS: ("already exists", 1),
    grpc.StatusCode.FAILED_PRECONDITION: ("not possible now", 1),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("too much at once", 1),
    grpc.StatusCode.UNIMPLEMENTED: ("the node does not offer this", 1),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # usage errors exit 2 here, with argparse's message
    configure_logging("info" if args.verbose else "warning")
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes a message and a code
        return report(exc, verbose=args.verbose)
    except KeyboardInterrupt:
        console.print("stopped", markup=False)
        return 130


def report(exc: BaseException, *, verbose: bool = False) -> int:
    """Print what went wrong in plain words and return the exit code; a traceback only with -v."""
    message, code = _explain(exc)
    console.print(f"error: {message}", markup=False, style="red")
    if verbose:
        log.error("details", exc_info=exc)
    return code


def _explain(exc: BaseException) -> tuple[str, int]:
    error = as_coopfed_error(exc)  # the same mapping the node's RPCs use
    if error is not None and not (error is not exc and error.status is grpc.StatusCode.INTERNAL):
        return error.message, error.exit_code
    if isinstance(exc, grpc.RpcError):
        words, code = _STATUS_WORDS.get(exc.code(), ("the node failed", 1))
        details = exc.details() or ""
        return (f"{words}: {details}" if details else words), code
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return f"{exc.strerror.lower() if exc.strerror else 'cannot open'}: {exc.filename}", 2
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{(exc.strerror or str(exc)).lower()}{where}", 1
    if isinstance(exc, EOFError):
        return "no answer given (the input ended)", 1
    return f"unexpected failure ({type(exc).__name__}: {exc}); run with -v for the details", 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coopfed", description="Policy-as-code federation for data co-ops.")
    parser.add_argument("--version", action="version", version=f"coopfed {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more, with details of failures")
    groups = parser.add_subparsers(required=True, metavar="COMMAND")
    node.add_commands(groups.add_parser("node", help="set up and run a co-op's node"), console)
    member.add_commands(groups.add_parser("member", help="a member's own data and consent"), console)
    policy.add_commands(
        groups.add_parser("policy", help="the board: test, check, diff, sign, reload"), console
    )
    federation.add_commands(
        groups.add_parser("federation", help="join peer co-ops, grant and fetch aggregates"), console
    )
    governance.add_commands(groups, console)
    forecast.add_commands(
        groups.add_parser("forecast", help="train, backtest and run the co-op's forecaster"), console
    )
    ledger.add_commands(
        groups.add_parser("ledger", help="settle local energy, statements, the journal"), console
    )
    opendata.add_commands(groups.add_parser("opendata", help="publish the co-op's open data"), console)
    meters.add_commands(
        groups.add_parser("meters", help="the board: import the meter-data provider's readings"), console
    )
    ballot.add_commands(
        groups.add_parser("ballot", help="members decide the rules: propose, vote, count"), console
    )
    node.add_demo(groups.add_parser("demo", help="a node on embedded defaults with a sample member"), console)
    return parser


def _version() -> str:
    try:
        return version("coopfed")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
