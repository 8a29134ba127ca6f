"""Keys, JWKS, JWT tokens and grants, revocation lists and TLS material for coopfed nodes."""

from coopfed.federation.errors import (
    FederationError,
    KeyStoreError,
    ScopeError,
    TokenError,
)
from coopfed.federation.grants import (
    Constraints,
    Grant,
    GrantScope,
    Granularity,
    Noise,
    issue_grant,
    verify_grant,
)
from coopfed.federation.keys import Jwks, KeyRing, SigningKey, TrustStore
from coopfed.federation.revocation import RevocationList, verify_publication
from coopfed.federation.tls import TlsIdentity
from coopfed.federation.tokens import TokenUse, VerifiedToken, issue_token, verify_token

__all__ = [
    "Constraints",
    "FederationError",
    "Grant",
    "GrantScope",
    "Granularity",
    "Jwks",
    "KeyRing",
    "KeyStoreError",
    "Noise",
    "RevocationList",
    "ScopeError",
    "SigningKey",
    "TlsIdentity",
    "TokenError",
    "TokenUse",
    "TrustStore",
    "VerifiedToken",
    "issue_grant",
    "issue_token",
    "verify_grant",
    "verify_publication",
    "verify_token",
]
