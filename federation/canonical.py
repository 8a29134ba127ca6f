"""The one canonical JSON that digests and signatures are computed over: RFC 8785 (JCS).

`legacy_json` is the sorted-keys form digests were computed over before JCS. It is byte-identical
to JCS for strings, integers up to 2**53, booleans, null, lists, and objects whose keys sort alike
by UTF-16 unit and by code point (all keys below U+E000 do); it differs for floats (`1.0` against
`1`, `1e-07` against `1e-7`). It is only read: where stored data may hold such values (the
decision-log chain, policy revisions in signed bundles, model metadata) verification accepts
either form.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """`value` as RFC 8785 canonical JSON (UTF-8); like `json.dumps`, a TypeError for what is not
    JSON (a set, bytes) and a ValueError for NaN, infinities and lone surrogates."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        # JCS numbers are doubles; an integer beyond 2**53 keeps its exact digits, as before JCS
        return legacy_json(value)
    except rfc8785.FloatDomainError:
        raise
    except rfc8785.CanonicalizationError as exc:
        if isinstance(exc.__cause__, UnicodeError):  # a lone surrogate
            raise
        raise TypeError(f"not JSON: {exc}") from exc  # a set, bytes: json.dumps's TypeError


def legacy_json(value: Any, *, ensure_ascii: bool = False) -> bytes:
    """The sorted-keys form some stored digests were computed over before JCS; read only."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=False
    )
    return text.encode("utf-8")
