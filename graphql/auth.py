"""Who is calling: JWT bearer tokens, the principal they carry, and role checks.

Tokens are HS256 JWTs (PyJWT) signed with ``CREATORPULSE_JWT_SECRET``. The accepted algorithm
list is a constant, never read from the token's header (RFC 8725 §2.1), so ``alg=none`` and
algorithm-confusion tokens fail. ``exp``, ``nbf``, ``iat``, ``iss`` and ``aud`` are required and
checked with a small leeway. A token carries ``sub``, ``tenant`` and ``role``; every operation is
scoped to that tenant.

Errors: :class:`AuthError` (the caller is not authenticated: HTTP 401, WebSocket close 4403) with
a machine-readable :attr:`AuthError.reason`; :class:`Forbidden` (authenticated, but the role is
too weak). Neither message ever contains the token.

Example::

    token = mint(settings, subject="alice", tenant_id="t1", role=Role.VIEWER)
    principal = verify(token, settings)      # Principal(subject='alice', tenant_id='t1', ...)
    require(principal, Role.EDITOR)          # raises Forbidden
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from creatorpulse.settings import Secret, Settings

ALGORITHMS = ("HS256",)
"""The only accepted signing algorithms: a constant, never taken from a token."""

LEEWAY = timedelta(seconds=30)
"""Clock skew tolerated on ``exp``/``nbf``/``iat``."""

REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "aud", "sub", "tenant", "role")

# Development only: a fixed, public key so that `api token` works out of the box. Production
# refuses to start without CREATORPULSE_JWT_SECRET.
DEVELOPMENT_KEY = "creatorpulse-development-only-jwt-signing-key"


class Role(enum.IntEnum):
    """Roles in increasing power: each role may do everything the ones below it may."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            msg = f"unknown role {text!r}; expected viewer, editor or admin"
            raise ValueError(msg) from None

    @property
    def label(self) -> str:
        return self.name.lower()


class AuthConfigError(RuntimeError):
    """The API cannot check tokens with this configuration (no key in production)."""


class AuthError(Exception):
    """The request is not authenticated. ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


REASONS = (
    "missing", "malformed", "bad_algorithm", "bad_signature", "expired", "not_yet_valid",
    "wrong_issuer", "wrong_audience", "bad_claims",
)


class Forbidden(Exception):
    """The caller is authenticated but may not do this."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who, in which tenant, with which role, until when."""

    subject: str
    tenant_id: str
    role: Role
    expires_at: datetime | None = None

    def can(self, role: Role) -> bool:
        return self.role >= role


def signing_key(settings: Settings) -> Secret:
    """The HS256 key: the configured one, or the development key outside production."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    if settings.environment == "production":
        msg = "CREATORPULSE_JWT_SECRET must be set in production (32 characters or more)"
        raise AuthConfigError(msg)
    return Secret(DEVELOPMENT_KEY)


def mint(
    settings: Settings,
    *,
    subject: str,
    tenant_id: str,
    role: Role,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """A signed token for ``subject`` in ``tenant_id`` (for development and tests)."""
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "tenant": tenant_id,
        "role": role.label,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + (ttl if ttl is not None else settings.jwt_ttl),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, signing_key(settings).reveal(), algorithm=ALGORITHMS[0])


_PYJWT_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token is for another audience"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token is from another issuer"),
    (jwt.InvalidAlgorithmError, "bad_algorithm", "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature does not match"),
    (jwt.MissingRequiredClaimError, "bad_claims", "the token lacks a required claim"),
    (jwt.DecodeError, "malformed", "the token is not a well-formed JWT"),
)


# Tokens that verified, with when they stop being valid: a client sends the same token with
# every request, and PyJWT's checks cost more than the rest of a cached answer. Keyed by the
# token and what it was checked against, so another key, audience or issuer checks anew.
_VERIFIED: OrderedDict[tuple[str, str, str, str], tuple[Principal, float, float]] = OrderedDict()
_VERIFIED_MAX = 10_000


def verify(token: str, settings: Settings, *, now: datetime | None = None) -> Principal:
    """The principal of a valid ``token``; :class:`AuthError` saying why otherwise.

    A token that verified once is remembered until it expires (at most ``_VERIFIED_MAX`` of
    them): each later use only checks its ``nbf`` and ``exp`` again."""
    if not token:
        raise AuthError("missing", "no token")
    key = (token, signing_key(settings).reveal(), settings.jwt_audience, settings.jwt_issuer)
    known = _VERIFIED.get(key)
    if known is not None:
        principal, not_before, expires = known
        at = (now or datetime.now(UTC)).timestamp()
        if at < not_before - LEEWAY.total_seconds():
            raise AuthError("not_yet_valid", "the token is not valid yet")
        if at >= expires + LEEWAY.total_seconds():
            _VERIFIED.pop(key, None)
            raise AuthError("expired", "the token has expired")
        return principal
    principal, not_before = _decode(token, settings)
    assert principal.expires_at is not None
    _VERIFIED[key] = (principal, not_before, principal.expires_at.timestamp())
    while len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return principal


def _decode(token: str, settings: Settings) -> tuple[Principal, float]:
    """PyJWT's full check of ``token``: its principal and its ``nbf``."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings).reveal(),
            algorithms=list(ALGORITHMS),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    except jwt.PyJWTError as exc:
        for kind, reason, message in _PYJWT_REASONS:
            if isinstance(exc, kind):
                raise AuthError(reason, message) from None
        raise AuthError("malformed", "the token could not be checked") from None
    subject, tenant, role = claims["sub"], claims["tenant"], claims["role"]
    if not all(isinstance(v, str) and v for v in (subject, tenant, role)):
        raise AuthError("bad_claims", "sub, tenant and role must be non-empty strings")
    try:
        parsed = Role.parse(role)
    except ValueError:
        raise AuthError("bad_claims", "the token's role is unknown") from None
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    principal = Principal(subject=subject, tenant_id=tenant, role=parsed, expires_at=expires)
    return principal, float(claims["nbf"])


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is no header."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed", "expected 'Authorization: Bearer <token>'")
    return token.strip()


def authenticate(authorization: str | None, settings: Settings) -> Principal | None:
    """The principal of an Authorization header: None when absent, AuthError when invalid."""
    token = bearer_token(authorization)
    return None if token is None else verify(token, settings)


def require(principal: Principal | None, role: Role = Role.VIEWER) -> Principal:
    """``principal`` if it holds at least ``role``; AuthError when anonymous, Forbidden else."""
    if principal is None:
        raise AuthError("missing", "authentication required")
    if not principal.can(role):
        msg = f"this needs the {role.label} role"
        raise Forbidden(msg)
    return principal
