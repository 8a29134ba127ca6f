"""Data grants: a signed scope and constraints, and the check that a request stays inside them."""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coopfed.federation import errors
from coopfed.federation.keys import KeyRing, TrustStore
from coopfed.federation.tokens import DEFAULT_LEEWAY, TokenUse, issue_token, verify_token

DEFAULT_GRANT_TTL = 30 * 24 * 3600  # a month; long-running access is re-granted, not extended


class Granularity(StrEnum):
    """How fine the released data may be; individual is finer than aggregate."""

    AGGREGATE = "aggregate"
    INDIVIDUAL = "individual"

    @property
    def fineness(self) -> int:
        return 1 if self is Granularity.INDIVIDUAL else 0


def _strings(values: Iterable[str] | str, name: str) -> frozenset[str]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{name} must be a collection of non-empty strings")
    return frozenset(values)


def _unix(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be non-negative UTC unix seconds")
    return value


@dataclass(frozen=True)
class GrantScope:
    """What a grant allows: datasets and fields, granularity, the half-open period [start, end),
    one purpose code (DPV style) and one flow."""

    datasets: frozenset[str]
    period_start: int
    period_end: int
    purpose: str
    flow: str
    granularity: Granularity = Granularity.AGGREGATE
    fields: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "datasets", _strings(self.datasets, "datasets"))
        set_(self, "fields", _strings(self.fields, "fields"))
        set_(self, "granularity", Granularity(self.granularity))
        if not self.datasets:
            raise ValueError("a grant names at least one dataset")
        if _unix(self.period_start, "period_start") >= _unix(self.period_end, "period_end"):
            raise ValueError("period_start must be before period_end")
        for name in ("purpose", "flow"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        set_(self, "flow", str(self.flow))  # a node's Flow enum is stored as its plain value

    def check(
        self,
        *,
        datasets: Iterable[str],
        period_start: int,
        period_end: int,
        flow: str,
        purpose: str,
        granularity: Granularity | str = Granularity.AGGREGATE,
        fields: Iterable[str] = (),
    ) -> None:
        """Raise `ScopeError` if the request asks for more than this scope allows.

        A request with `period_start >= period_end` is malformed: `ValueError`.
        """
        if period_start >= period_end:
            raise ValueError("request period_start must be before period_end")
        if flow != self.flow:
            raise errors.ScopeError("wrong_flow", f"grant is for flow {self.flow}")
        if purpose != self.purpose:
            raise errors.ScopeError("wrong_purpose", f"grant is for purpose {self.purpose}")
        missing = sorted(_strings(datasets, "datasets") - self.datasets)
        if missing:
            raise errors.ScopeError("dataset_not_granted", f"datasets not granted: {missing}")
        missing = sorted(_strings(fields, "fields") - self.fields)
        if missing:
            raise errors.ScopeError("field_not_granted", f"fields not granted: {missing}")
        if Granularity(granularity).fineness > self.granularity.fineness:
            raise errors.ScopeError("granularity_too_fine", f"grant allows {self.granularity} data")
        if period_start < self.period_start or period_end > self.period_end:
            raise errors.ScopeError(
                "period_outside",
                f"grant covers [{self.period_start}, {self.period_end}) only",
            )

    def to_claim(self) -> dict[str, Any]:
        return {
            "datasets": sorted(self.datasets),
            "fields": sorted(self.fields),
            "granularity": self.granularity.value,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "purpose": self.purpose,
            "flow": self.flow,
        }

    @classmethod
    def from_claim(cls, claim: Any) -> GrantScope:
        claim = _mapping(claim)
        return cls(
            datasets=_strings(_list(claim["datasets"]), "datasets"),
            fields=_strings(_list(claim["fields"]), "fields"),
            granularity=Granularity(claim["granularity"]),
            period_start=claim["period_start"],
            period_end=claim["period_end"],
            purpose=claim["purpose"],
            flow=claim["flow"],
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("expected an object")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


class NoiseMechanism(StrEnum):
    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"


@dataclass(frozen=True)
class Noise:
    """Noise the releasing node must add to each released total (differential privacy epsilon)."""

    mechanism: NoiseMechanism
    epsilon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mechanism", NoiseMechanism(self.mechanism))
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps):
            raise ValueError("epsilon must be a finite number")
        if eps <= 0:
            raise ValueError("epsilon must be positive")


@dataclass(frozen=True)
class Constraints:
    """Release conditions that travel with a grant: at least `min_group_size` contributing
    members per released value, and optional noise."""

    min_group_size: int = 5
    noise: Noise | None = None

    def __post_init__(self) -> None:
        if type(self.min_group_size) is not int or self.min_group_size < 1:
            raise ValueError("min_group_size must be a positive integer")

    def to_claim(self) -> dict[str, Any]:
        claim: dict[str, Any] = {"min_group_size": self.min_group_size}
        if self.noise is not None:
            claim["noise"] = {"mechanism": self.noise.mechanism.value, "epsilon": self.noise.epsilon}
        return claim

    @classmethod
    def from_claim(cls, claim: Any) -> Constraints:
        claim = _mapping(claim)
        noise = _mapping(claim["noise"]) if claim.get("noise") is not None else None
        return cls(
            min_group_size=claim["min_group_size"],
            noise=Noise(noise["mechanism"], noise["epsilon"]) if noise is not None else None,
        )


@dataclass(frozen=True)
class Grant:
    """A verified grant: who issued it to whom, for how long, and what it allows."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    jti: str
    issued_at: int
    not_before: int
    expires_at: int
    scope: GrantScope
    constraints: Constraints

    def check(self, **request: Any) -> None:
        """Shorthand for `self.scope.check(...)`."""
        self.scope.check(**request)


def issue_grant(
    ring: KeyRing,
    *,
    issuer: str,
    subject: str,
    audience: str,
    scope: GrantScope,
    constraints: Constraints | None = None,
    ttl: int = DEFAULT_GRANT_TTL,
    now: int | None = None,
    not_before: int | None = None,
    jti: str | None = None,
) -> str:
    """Sign a grant for `subject` (the grantee), to be presented to `audience` (the serving node)."""
    claims = {"scope": scope.to_claim(), "constraints": (constraints or Constraints()).to_claim()}
    return issue_token(
        ring,
        issuer=issuer,
        subject=subject,
        audience=audience,
        use=TokenUse.GRANT,
        ttl=ttl,
        claims=claims,
        now=now,
        not_before=not_before,
        jti=jti,
    )


def verify_grant(
    token: str,
    *,
    trust: TrustStore,
    audience: str,
    issuer: str | Container[str] | None = None,
    revoked: Container[str] | None = None,
    leeway: int = DEFAULT_LEEWAY,
    now: int | None = None,
) -> Grant:
    """Verify a grant token (see `verify_token`) and parse its scope and constraints."""
    token_ = verify_token(
        token,
        trust=trust,
        audience=audience,
        use=TokenUse.GRANT,
        issuer=issuer,
        revoked=revoked,
        leeway=leeway,
        now=now,
    )
    try:
        scope = GrantScope.from_claim(token_.claims["scope"])
        constraints = Constraints.from_claim(token_.claims["constraints"])
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.Malformed("grant scope or constraints are malformed") from exc
    return Grant(
        issuer=token_.issuer,
        subject=token_.subject,
        audience=token_.audience,
        jti=token_.jti,
        issued_at=token_.issued_at,
        not_before=token_.not_before,
        expires_at=token_.expires_at,
        scope=scope,
        constraints=constraints,
    )
