"""One error hierarchy with stable codes, and its one mapping to gRPC status and to CLI exit codes.

Exit codes (documented in the README): 0 done, 1 refused or failed, 2 usage error, 3 node unreachable.
"""

from __future__ import annotations

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
