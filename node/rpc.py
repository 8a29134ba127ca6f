"""Applying the error mapping to every RPC: domain errors become gRPC status with rich details."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from coopfed.node import errors, limits
from coopfed.node.errors import as_coopfed_error
from coopfed.node.limits import truncated
from coopfed.node.policy.holder import PolicyHolder
from coopfed.v1 import common_pb2

log = logging.getLogger(__name__)


def status_for(error: errors.CoopfedError) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(common_pb2.ErrorDetail(code=error.code, field=error.field, message=error.message))
    code = getattr(code_pb2, error.status.name)
    return rpc_status.to_status(status_pb2.Status(code=code, message=error.message, details=[detail]))


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    error = as_coopfed_error(exc)
    if error is None or (error is not exc and error.status is grpc.StatusCode.INTERNAL):
        incident = uuid.uuid4().hex[:12]  # the details go to the node's log, not to the caller
        log.exception("unexpected error, incident %s", incident)
        error = errors.CoopfedError(
            f"internal error (incident {incident})", code=error.code if error else None
        )
    await context.abort_with_status(status_for(error))


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method (unary, client- or server-streaming) so errors map to status once."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in method(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                await _abort(context, exc)

        return streaming

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            await _abort(context, exc)

    return unary


def still_wanted(context: grpc.aio.ServicerContext) -> Callable[[], None]:
    """A check, safe to run on any thread, that raises once the call is over for its caller:
    cancelled, disconnected, cut off by the node's shutdown, or past its deadline. gRPC ends a
    cut-off request stream as if the client had finished it, so a handler must ask."""
    over = threading.Event()
    context.add_done_callback(lambda _: over.set())
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining

    def check() -> None:
        if over.is_set() or context.cancelled():
            raise errors.Cancelled("the call ended before it was complete; nothing was stored")
        if deadline is not None and time.monotonic() >= deadline:
            raise errors.DeadlineExceeded(
                "the call's deadline passed before it was complete; nothing was stored"
            )

    return check


class _Malformed:
    """What a request that does not parse becomes, so that the handler can refuse it by name."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def error(self, method: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            f"the request is not a valid {method.rsplit('/', 1)[-1]} message: {truncated(self.problem)}",
            code="request.malformed",
        )


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, or whatever a parser raises
            return _Malformed(str(exc) or type(exc).__name__)

    return parse


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Bytes that are not the method's request message get INVALID_ARGUMENT, not the UNKNOWN
    (or INTERNAL) gRPC gives when its deserializer raises; so does text over its length limit.
    Outermost, so nothing else sees them."""

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method

        def parsed(request: Any) -> Any:
            if isinstance(request, _Malformed):
                raise request.error(method)
            limits.check_request(request)
            return request

        async def each_parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                yield parsed(request)

        checked = with_requests(handler, each_parsed if handler.request_streaming else parsed)
        return checked._replace(request_deserializer=_lenient(handler.request_deserializer))


def with_requests(handler: grpc.RpcMethodHandler, prepare: Callable[[Any], Any]) -> grpc.RpcMethodHandler:
    """The same handler, given `prepare(request)` (or of the request iterator) instead; a
    CoopfedError that `prepare` raises, there or while iterating, ends the call with its status."""
    kind = _KINDS[handler.request_streaming, handler.response_streaming]
    inner = getattr(handler, kind)

    if not handler.response_streaming:

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(prepare(request), context)
            except errors.CoopfedError as exc:
                await context.abort_with_status(status_for(exc))

        return handler._replace(**{kind: unary})

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in inner(prepare(request), context):
                yield item
        except errors.CoopfedError as exc:
            await context.abort_with_status(status_for(exc))

    async def writing(request: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            await inner(prepare(request), context)
        except errors.CoopfedError as exc:
            await context.abort_with_status(status_for(exc))

    return handler._replace(**{kind: streaming if inspect.isasyncgenfunction(inner) else writing})


_KINDS = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


CallScope = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]
"""Something every call of a method runs inside, in the call's own task (interceptors use it)."""


def around_calls(handler: grpc.RpcMethodHandler, scope: CallScope) -> grpc.RpcMethodHandler:
    """The same handler, each call running inside `scope(context)`; for server interceptors."""
    if handler.unary_unary or handler.stream_unary:
        inner = handler.unary_unary or handler.stream_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with scope(context):
                return await inner(request, context)

        factory = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler
        )
        return factory(unary, handler.request_deserializer, handler.response_serializer)

    inner_stream = handler.unary_stream or handler.stream_stream

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with scope(context):
            async for item in inner_stream(request, context):
                yield item

    async def writing(request: Any, context: grpc.aio.ServicerContext) -> None:
        async with scope(context):
            await inner_stream(request, context)  # a handler that sends with `context.write`

    factory = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    wrapped = streaming if inspect.isasyncgenfunction(inner_stream) else writing
    return factory(wrapped, handler.request_deserializer, handler.response_serializer)


def call_code(context: grpc.aio.ServicerContext, exc: BaseException | None = None) -> grpc.StatusCode:
    """The status a call ended with: the one it was aborted with or set, else OK, or for an
    exception that escaped, CANCELLED or UNKNOWN (as gRPC reports them)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next(c for c in grpc.StatusCode if c.value[0] == code)
    if exc is None:
        return grpc.StatusCode.OK
    return grpc.StatusCode.CANCELLED if isinstance(exc, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN


class PolicyPinInterceptor(grpc.aio.ServerInterceptor):
    """Pins every RPC to the policy revision current when it started (see PolicyHolder.pinned)."""

    def __init__(self, holder: PolicyHolder) -> None:
        self._holder = holder

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        return None if handler is None else _pinned_handler(handler, self._holder)


def _pinned_handler(handler: grpc.RpcMethodHandler, holder: PolicyHolder) -> grpc.RpcMethodHandler:
    # The pin is a context variable set inside the RPC's own task; asyncio.to_thread copies it.
    @contextlib.asynccontextmanager
    async def pinned(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        with holder.pinned():
            yield

    return around_calls(handler, pinned)
