"""Authentication in one server interceptor that fails closed: every method needs a credential
unless it is listed as public."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from coopfed.node.errors import Unauthenticated, Unavailable, as_coopfed_error
from coopfed.node.rpc import around_calls, status_for


@dataclass(frozen=True)
class Principal:
    """Who is calling: a member, an organisation, a peer co-op or the board."""

    kind: str
    id: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


Authenticator = Callable[[str], Principal]
"""Verifies a bearer token and returns its principal, or raises."""

HOLDER_HEADER = "coopfed-organisation-token"
"""Metadata carrying the organisation's own token beside a grant: a grant is bound to its holder."""

_caller: contextvars.ContextVar[Principal] = contextvars.ContextVar("coopfed_caller")

PUBLIC_METHODS = frozenset(
    {
        "/coopfed.v1.MemberService/Register",
        "/coopfed.v1.MemberService/ListPersonas",
        "/coopfed.v1.GovernanceService/ListDatasets",
        "/coopfed.v1.GovernanceService/ListPurposes",
        "/coopfed.v1.GovernanceService/RegisterOrganisation",
        "/coopfed.v1.FederationService/GetManifest",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.health.v1.Health/List",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)


def caller() -> Principal:
    """The authenticated caller of the RPC being served."""
    try:
        return _caller.get()
    except LookupError:
        raise Unauthenticated("no authenticated caller", code="auth.missing") from None


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("authorization must be 'Bearer <token>'", code="auth.scheme")
    raise Unauthenticated("missing bearer token", code="auth.missing")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Picks the authenticator by service; a method with none is refused."""

    def __init__(self, authenticators: dict[str, Authenticator]) -> None:
        self._authenticators = authenticators  # "/coopfed.v1.MemberService/" -> authenticator

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in PUBLIC_METHODS:
            return handler
        service = method[: method.rindex("/") + 1]
        return _guarded(handler, self._authenticators.get(service))


async def _authenticate(authenticate: Authenticator | None, context: grpc.aio.ServicerContext) -> Principal:
    if authenticate is None:
        raise Unauthenticated("this method accepts no credential", code="auth.no_method")
    token = bearer_token(context.invocation_metadata())
    return await asyncio.to_thread(authenticate, token)  # it reads the store: off the event loop


def _guarded(handler: grpc.RpcMethodHandler, authenticate: Authenticator | None) -> grpc.RpcMethodHandler:
    """The same handler, with authentication run first inside the RPC's own task."""

    @contextlib.asynccontextmanager
    async def authenticated(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        try:
            _caller.set(await _authenticate(authenticate, context))
        except Exception as exc:  # noqa: BLE001 - any failure to authenticate refuses the call
            error = as_coopfed_error(exc) or Unauthenticated("invalid credential", code="auth.invalid")
            # the node cannot check just now (its database is away): retry, the token may be good
            if not isinstance(error, Unauthenticated | Unavailable):
                error = Unauthenticated(error.message, code=error.code)
            await context.abort_with_status(status_for(error))
        yield

    return around_calls(handler, authenticated)
