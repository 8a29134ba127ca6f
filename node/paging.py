"""Pages of every List RPC (Google AIP-158): `page_size` clamped to a maximum, and opaque page
tokens the node signs, so a token is valid only for the request and the caller it was made for.

A token carries the sort key of the last item of its page (keyset pagination): the next page is
the items after that key, so rows added meanwhile never make a page skip or repeat an item.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from google.protobuf.message import Message

from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import InvalidArgument

T = TypeVar("T")
Key = tuple[Any, ...]  # an item's place in its list's order: strings and integers

DEFAULT_SIZE = 100
MAX_SIZE = 1000
_MAC_BYTES = 16


class Page:
    """What one List request asks for: `size` items after `after` (None on the first page)."""

    def __init__(
        self,
        decision_log: DecisionLog,  # its masking key signs the tokens
        request: Any,  # a List request: it has page_size and page_token
        *,
        caller: str = "",
        default: int = DEFAULT_SIZE,
        maximum: int = MAX_SIZE,
    ) -> None:
        size = request.page_size
        if size < 0:
            raise InvalidArgument("page_size: zero or more", code="list.page_size", field="page_size")
        self.size = min(size or default, maximum)
        self._key = decision_log.masker.derive(b"page-token")
        self._bound = _bound(request, caller)
        token = request.page_token
        self.after: Key | None = self._open(token) if token else None

    @property
    def fetch(self) -> int:
        """How many items to read: one more than a page says whether another page follows."""
        return self.size + 1

    def cut(self, items: Sequence[T], key: Callable[[T], Key]) -> tuple[list[T], str]:
        """The page of `items` (read with limit `fetch`, in order) and the next page's token,
        '' after the last page."""
        page = list(items[: self.size])
        return page, self.token(key(page[-1])) if len(items) > self.size else ""

    def of_sorted(self, items: Sequence[T], key: Callable[[T], Key]) -> tuple[list[T], str]:
        """The page of a short list held in memory and sorted by `key` (a policy's vocabulary)."""
        after = self.after
        rest = [item for item in items if after is None or key(item) > after]
        return self.cut(rest[: self.fetch], key)

    def token(self, key: Key) -> str:
        payload = json.dumps([self._bound, list(key)], separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def _open(self, token: str) -> Key:
        refused = InvalidArgument(
            "page_token: not a token this node gave for this request; start again without one",
            code="list.page_token",
            field="page_token",
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise refused from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
            raise refused
        bound, key = json.loads(payload)
        if bound != self._bound:  # signed by this node, but for another RPC, filter or caller
            raise refused
        return tuple(key)


def _bound(request: Message, caller: str) -> str:
    """What a token is valid for: the RPC (its request type), the caller, and every field of the
    request but the page ones, so a token cannot carry a page over to another query."""
    fields = type(request)()
    fields.CopyFrom(request)
    fields.ClearField("page_size")
    fields.ClearField("page_token")
    digest = hashlib.sha256(request.DESCRIPTOR.full_name.encode() + b"\0" + caller.encode() + b"\0")
    digest.update(fields.SerializeToString(deterministic=True))
    return digest.hexdigest()[:32]
