"""The node's logs: one timestamped line per event (text or JSON), a request id per call, no secrets."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import IO, Any

import grpc

from coopfed.node.errors import InvalidArgument
from coopfed.node.rpc import around_calls

REQUEST_ID_HEADER = "x-request-id"
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

log = logging.getLogger(__name__)
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("coopfed_request_id", default="-")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# A JWT (three base64url parts, the first a JSON header: "eyJ") or whatever follows "Bearer".
_SECRET = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*|(?i:(?<=bearer )\s*[^\s\"',;]+)")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """The text with anything that looks like a bearer token or a JWT replaced."""
    return _SECRET.sub(REDACTED, text)


def request_id() -> str:
    """The id of the gRPC call being served ("-" outside a call)."""
    return _request_id.get()


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message` on one line: line breaks (a traceback's) become " | "."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} [{request_id()}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line.replace("\n", " | "))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": request_id(),
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "info", format: str = "text", stream: IO[str] | None = None) -> None:
    """Send every logger's records to `stream` (stderr) in the chosen format, replacing any setup."""
    if level.lower() not in LEVELS:
        raise InvalidArgument(
            f"[log] level must be one of {', '.join(LEVELS)}, not {level!r}", code="config.log"
        )
    if format not in FORMATS:
        raise InvalidArgument(
            f"[log] format must be one of {', '.join(FORMATS)}, not {format!r}", code="config.log"
        )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Gives every call a request id, the caller's `x-request-id` if it is a short plain token,
    for every log line of the call; sends it back as initial metadata."""

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        return None if handler is None else around_calls(handler, _identified)


@contextlib.asynccontextmanager
async def _identified(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    token = _request_id.set(_incoming_id(context) or uuid.uuid4().hex[:16])
    try:
        await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id()),))
        yield
    finally:
        # An abandoned stream's generator is closed by asyncio's finaliser in another context,
        # where the token means nothing and the variable holds nothing of this call's.
        with contextlib.suppress(ValueError):
            _request_id.reset(token)


def _incoming_id(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _SANE_ID.fullmatch(value):
            return value
    return None
