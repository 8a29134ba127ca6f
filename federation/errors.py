"""One error family for credentials and grants, each error with a stable string code."""

from __future__ import annotations


class FederationError(Exception):
    """Base of every error this package raises on purpose; `code` is stable across releases."""

    code = "federation_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))


class KeyStoreError(FederationError):
    """A key file, key ring or trust store is missing, corrupt or unsafe (e.g. readable by others)."""

    code = "unusable"


class TokenError(FederationError):
    """A token was refused; the node maps every subclass to UNAUTHENTICATED.

    Messages name the failed check, never the token itself.
    """

    code = "invalid_token"


class Malformed(TokenError):
    code = "malformed"


class BadHeader(TokenError):
    """A header parameter outside the allowed set (e.g. `jwk`, `jku`, `x5u`, `crit`)."""

    code = "bad_header"


class BadAlgorithm(TokenError):
    code = "bad_algorithm"


class WrongType(TokenError):
    """An access token offered as a grant, or the other way round."""

    code = "wrong_type"


class UnknownKey(TokenError):
    code = "unknown_key"


class BadSignature(TokenError):
    code = "bad_signature"


class MissingClaim(TokenError):
    code = "missing_claim"


class Expired(TokenError):
    code = "expired"


class NotYetValid(TokenError):
    code = "not_yet_valid"


class BadAudience(TokenError):
    code = "bad_audience"


class BadIssuer(TokenError):
    code = "bad_issuer"


class Revoked(TokenError):
    """The token's jti is on the issuer's revocation list; `reason` is meant for the grantee."""

    code = "revoked"

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(f"token revoked: {reason}" if reason else "token revoked")


class Rollback(TokenError):
    """A revocation list older than, or inconsistent with, one already accepted."""

    code = "rollback"


class ScopeError(FederationError):
    """A request exceeds what its grant allows; the node maps it to PERMISSION_DENIED."""

    code = "out_of_scope"

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)
