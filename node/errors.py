"""One error hierarchy with stable codes, and its one mapping to gRPC status and to CLI exit codes.

Codes are dotted, `<area>.<what>`: the node's own errors name theirs where they are raised, and
the errors of the layers below (storage, policy engines, tokens and keys, model artifacts) keep a
short code within their family that `as_coopfed_error` puts in the family's namespace
(`storage.not_found`, `token.bad_signature`, `artifact.unverified`).

Exit codes (documented in the README): 0 done, 1 refused or failed, 2 usage error, 3 node unreachable.
"""

from __future__ import annotations

import functools

import grpc


class CoopfedError(Exception):
    """A failure the caller should hear about: a stable code, a field and a plain message."""

    status = grpc.StatusCode.INTERNAL
    code = "internal"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidArgument(CoopfedError):
    status = grpc.StatusCode.INVALID_ARGUMENT
    code = "invalid_argument"


class UsageError(InvalidArgument):
    """The command line itself is wrong: an option, a path, a value the user typed."""

    code = "usage"
    exit_code = 2


class Unauthenticated(CoopfedError):
    status = grpc.StatusCode.UNAUTHENTICATED
    code = "unauthenticated"


class PermissionDenied(CoopfedError):
    status = grpc.StatusCode.PERMISSION_DENIED
    code = "permission_denied"


class NotFound(CoopfedError):
    status = grpc.StatusCode.NOT_FOUND
    code = "not_found"


class AlreadyExists(CoopfedError):
    status = grpc.StatusCode.ALREADY_EXISTS
    code = "already_exists"


class FailedPrecondition(CoopfedError):
    status = grpc.StatusCode.FAILED_PRECONDITION
    code = "failed_precondition"


class ResourceExhausted(CoopfedError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    code = "resource_exhausted"


class Cancelled(CoopfedError):
    """The caller went away (cancelled, disconnected, or the node is stopping) before the end."""

    status = grpc.StatusCode.CANCELLED
    code = "cancelled"


class DeadlineExceeded(CoopfedError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "deadline_exceeded"


class Unavailable(CoopfedError):
    status = grpc.StatusCode.UNAVAILABLE
    code = "unavailable"
    exit_code = 3


def as_coopfed_error(exc: BaseException) -> CoopfedError | None:
    """`exc` in the node's hierarchy: itself, or a lower layer's error translated by the one table
    below; None for anything else (an internal error, whose details only the node's log sees)."""
    if isinstance(exc, CoopfedError):
        return exc
    for foreign, ours, family in _foreign_errors():
        if isinstance(exc, foreign):
            code = str(getattr(exc, "code", "") or ours.code)
            return ours(str(exc), code=code if "." in code else f"{family}.{code}")
    return None


@functools.cache
def _foreign_errors() -> tuple[tuple[type[Exception], type[CoopfedError], str], ...]:
    """(error, the node's class for it, its family), most specific first. Imported on first use:
    these layers import this module. The forecaster's errors are a light module of their own."""
    from coopfed.federation.errors import KeyStoreError, ScopeError, TokenError
    from coopfed.forecaster.errors import ArtifactFormatError, ArtifactVerificationError
    from coopfed.node import storage
    from coopfed.node.policy.errors import PolicyUnavailable
    from coopfed.node.storage.governance import Conflict

    return (
        (TokenError, Unauthenticated, "token"),
        (ScopeError, PermissionDenied, "grant"),  # a request beyond its grant
        (KeyStoreError, FailedPrecondition, "keys"),  # e.g. a key ring or TLS file that is unsafe
        (PolicyUnavailable, Unavailable, "policy"),
        (storage.NotFound, NotFound, "storage"),
        (storage.MemberErased, NotFound, "storage"),
        (storage.AlreadyExists, AlreadyExists, "storage"),
        (storage.ConstraintBroken, CoopfedError, "storage"),  # INTERNAL: the node's own write
        (storage.InvalidData, InvalidArgument, "storage"),
        (storage.StorageBusy, Unavailable, "storage"),
        (storage.StorageFull, ResourceExhausted, "storage"),
        (storage.StorageUnavailable, Unavailable, "storage"),
        (Conflict, FailedPrecondition, "storage"),
        # A signature or hash check failed: the caller is authenticated already (token, pinned
        # certificate) and a fresh credential cannot help; this node refuses to use what was
        # offered, as it refuses data beyond a grant's scope.
        (ArtifactVerificationError, PermissionDenied, "artifact"),
        (ArtifactFormatError, InvalidArgument, "artifact"),
    )
