"""The forecaster's errors, light to import: the node maps them to its own without loading XGBoost."""

from __future__ import annotations


class ArtifactError(Exception):
    """Base of model artifact errors; `code` is stable, and the node names it `artifact.<code>`."""

    code = "error"


class ArtifactFormatError(ArtifactError):
    """The bytes are not a well-formed artifact."""

    code = "malformed"


class ArtifactVerificationError(ArtifactError):
    """Signature, key or hash check failed: the artifact must not be used."""

    code = "unverified"
