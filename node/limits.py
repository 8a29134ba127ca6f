"""The length limits of free text a caller sends, in one table, enforced as each request parses.

Every string field of every request is checked by name before a handler sees it, so no text is
stored, logged or quoted in an error unbounded. Domain checks (blank, control characters,
vocabulary) read their limits from the same table."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from coopfed.node.errors import InvalidArgument

NAME = 200  # a person's or an organisation's name
WORDS = 2000  # a reason, a note, a description: a few paragraphs
IDENTIFIER = 64  # a persona, dataset, field, purpose or commitment name; a code or id

TEXT_LIMITS: dict[str, int] = {
    # names
    "display_name": NAME,
    "name": NAME,
    "organisation_name": NAME,
    # words
    "reason": WORDS,
    "withdrawal_reason": WORDS,
    "note": WORDS,
    "description": WORDS,
    "purpose_description": WORDS,
    "title": NAME,  # a ballot's title
    "explanation": 5 * WORDS,  # a proposal in plain words
    # an organisation's particulars
    "registration_number": 64,
    "website": 500,
    "contact": 320,
    # names from a vocabulary, ids and codes
    "persona": IDENTIFIER,
    "dataset": IDENTIFIER,
    "datasets": IDENTIFIER,
    "fields": IDENTIFIER,
    "commitments": IDENTIFIER,
    "purpose": IDENTIFIER,
    "type": IDENTIFIER,
    "invitation_code": IDENTIFIER,
    "meter_id": IDENTIFIER,
    "jti": IDENTIFIER,
    "page_token": 512,
    # signed things peers exchange
    "head": 16_384,
    "token": 16_384,
    "jwks_json": 65_536,
    "change_json": 65_536,  # a proposal's change to policy data
    "tls_certificate_pem": 65_536,
}
OTHER_TEXT = 1000  # any string field the table does not name (ids, enum-like words)

TRUNCATE_AT = 120


def truncated(text: str, limit: int = TRUNCATE_AT) -> str:
    """At most `limit` characters of what a caller sent, for quoting it in an error message:
    an error must never grow with the input (gRPC refuses status messages past its header size)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def limit_of(field: str) -> int:
    """The most characters a request's field `field` may hold."""
    return TEXT_LIMITS.get(field, OTHER_TEXT)


def check_request(message: Any) -> None:
    """Refuse a request any of whose string fields (nested or repeated) is over its limit."""
    if isinstance(message, Message):
        _check(message, "")


def _check(message: Message, prefix: str) -> None:
    for field, value in message.ListFields():
        path = prefix + field.name
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            for key, item in value.items():  # a map: its keys and values, named by the field
                _text(f"{path}[{truncated(str(key), 32)}]", field.name, key)
                _text(f"{path}[{truncated(str(key), 32)}]", field.name, item)
                if isinstance(item, Message):
                    _check(item, f"{path}[{truncated(str(key), 32)}].")
        elif entry is not None:
            items = value if field.is_repeated else (value,)
            for i, item in enumerate(items):
                _check(item, f"{path}[{i}]." if field.is_repeated else path + ".")
        elif field.type == FieldDescriptor.TYPE_STRING:
            texts, limit = (value if field.is_repeated else (value,)), limit_of(field.name)
            # tens of thousands of meter ids in a bulk message: their lengths in one pass
            if max(map(len, texts), default=0) > limit:
                i = next(i for i, text in enumerate(texts) if len(text) > limit)
                _text(f"{path}[{i}]" if field.is_repeated else path, field.name, texts[i])


def _text(where: str, name: str, value: object) -> None:
    if isinstance(value, str) and len(value) > limit_of(name):
        raise InvalidArgument(
            f"{where}: at most {limit_of(name)} characters (this one has {len(value)})",
            code="request.text_too_long",
            field=where,
        )
