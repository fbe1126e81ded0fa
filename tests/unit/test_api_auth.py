"""JWT checks of the API: good tokens pass, every kind of bad token fails with its reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from creatorpulse.graphql.auth import (
    ALGORITHMS,
    DEVELOPMENT_KEY,
    AuthConfigError,
    AuthError,
    Forbidden,
    Principal,
    Role,
    authenticate,
    bearer_token,
    mint,
    require,
    signing_key,
    verify,
)
from creatorpulse.settings import Settings, SettingsError

KEY = "k" * 40


def make_settings(**env: str) -> Settings:
    return Settings.from_env({f"CREATORPULSE_{k}": v for k, v in env.items()}, dotenv=None)


@pytest.fixture
def settings() -> Settings:
    return make_settings(JWT_SECRET=KEY)


def claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    base: dict[str, object] = {
        "sub": "alice", "tenant": "t-a", "role": "editor", "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience, "iat": now, "nbf": now, "exp": now + timedelta(minutes=5),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def reason(token: str, settings: Settings) -> str:
    with pytest.raises(AuthError) as caught:
        verify(token, settings)
    assert not token or token not in str(caught.value)
    return caught.value.reason


def test_a_minted_token_verifies_to_its_principal(settings: Settings) -> None:
    token = mint(settings, subject="alice", tenant_id="t-a", role=Role.ADMIN)
    principal = verify(token, settings)
    assert (principal.subject, principal.tenant_id, principal.role) == ("alice", "t-a", Role.ADMIN)
    assert principal.expires_at is not None
    assert principal.expires_at > datetime.now(UTC) + timedelta(minutes=59)


def test_the_algorithm_list_is_a_constant() -> None:
    assert ALGORITHMS == ("HS256",)


def test_alg_none_is_refused(settings: Settings) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = json.dumps(claims(settings), default=lambda d: int(d.timestamp())).encode()
    body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    assert reason(f"{header}.{body}.", settings) == "bad_algorithm"


def test_an_rs256_token_is_refused_even_when_signed_correctly(settings: Settings) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(settings), private, algorithm="RS256")
    assert reason(token, settings) == "bad_algorithm"


def test_a_token_signed_with_another_key_is_refused(settings: Settings) -> None:
    token = jwt.encode(claims(settings), "x" * 40, algorithm="HS256")
    assert reason(token, settings) == "bad_signature"


def test_an_expired_token_is_refused(settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    token = mint(settings, subject="a", tenant_id="t", role=Role.VIEWER, now=past)
    assert reason(token, settings) == "expired"


def test_expiry_within_the_leeway_is_tolerated_and_beyond_it_is_not(settings: Settings) -> None:
    now = datetime.now(UTC)
    fresh = jwt.encode(claims(settings, exp=now - timedelta(seconds=10)), KEY, algorithm="HS256")
    assert verify(fresh, settings).subject == "alice"
    stale = jwt.encode(claims(settings, exp=now - timedelta(seconds=90)), KEY, algorithm="HS256")
    assert reason(stale, settings) == "expired"


def test_a_token_not_valid_yet_is_refused(settings: Settings) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    token = jwt.encode(claims(settings, nbf=later), KEY, algorithm="HS256")
    assert reason(token, settings) == "not_yet_valid"


def test_wrong_audience_and_issuer_are_refused(settings: Settings) -> None:
    token = jwt.encode(claims(settings, aud="another-api"), KEY, algorithm="HS256")
    assert reason(token, settings) == "wrong_audience"
    token = jwt.encode(claims(settings, iss="someone-else"), KEY, algorithm="HS256")
    assert reason(token, settings) == "wrong_issuer"


def test_a_tampered_payload_is_refused(settings: Settings) -> None:
    token = mint(settings, subject="alice", tenant_id="t-a", role=Role.VIEWER)
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["tenant"], data["role"] = "t-b", "admin"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    assert reason(f"{header}.{forged}.{signature}", settings) == "bad_signature"


@pytest.mark.parametrize("missing", ["exp", "nbf", "iat", "sub", "tenant", "role", "aud", "iss"])
def test_every_required_claim_must_be_present(settings: Settings, missing: str) -> None:
    token = jwt.encode(claims(settings, **{missing: None}), KEY, algorithm="HS256")
    assert reason(token, settings) in ("bad_claims", "wrong_audience", "wrong_issuer")


def test_an_unknown_role_or_empty_tenant_is_refused(settings: Settings) -> None:
    assert reason(jwt.encode(claims(settings, role="root"), KEY, algorithm="HS256"),
                  settings) == "bad_claims"
    assert reason(jwt.encode(claims(settings, tenant=""), KEY, algorithm="HS256"),
                  settings) == "bad_claims"


def test_garbage_is_malformed(settings: Settings) -> None:
    assert reason("not-a-jwt", settings) == "malformed"
    assert reason("", settings) == "missing"


def test_bearer_header_parsing(settings: Settings) -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    with pytest.raises(AuthError):
        bearer_token("Basic dXNlcjpwdw==")
    assert authenticate(None, settings) is None
    token = mint(settings, subject="bob", tenant_id="t-b", role=Role.VIEWER)
    principal = authenticate(f"Bearer {token}", settings)
    assert principal is not None
    assert principal.tenant_id == "t-b"


def test_roles_are_ordered_and_required() -> None:
    viewer = Principal("v", "t", Role.VIEWER)
    admin = Principal("a", "t", Role.ADMIN)
    assert require(viewer) is viewer
    assert require(admin, Role.EDITOR) is admin
    with pytest.raises(Forbidden):
        require(viewer, Role.EDITOR)
    with pytest.raises(AuthError) as caught:
        require(None)
    assert caught.value.reason == "missing"
    assert Role.parse("Admin") is Role.ADMIN
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse("root")


def test_development_uses_a_fixed_key_and_production_demands_one() -> None:
    assert signing_key(make_settings()).reveal() == DEVELOPMENT_KEY
    with pytest.raises(AuthConfigError, match="CREATORPULSE_JWT_SECRET"):
        signing_key(make_settings(ENV="production"))
    assert signing_key(make_settings(ENV="production", JWT_SECRET=KEY)).reveal() == KEY


def test_a_short_key_is_a_settings_error_that_does_not_echo_it() -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(JWT_SECRET="short-secret")
    assert "short-secret" not in str(caught.value)
    assert "JWT_SECRET" in str(caught.value)


def test_a_verified_token_is_remembered_until_it_expires(settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token = jwt.encode(claims(settings), KEY, algorithm="HS256")
    first = verify(token, settings)
    decoded: list[str] = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append("full check") or {})
    assert verify(token, settings) is first
    assert decoded == []  # the second use did not check the signature again
    # ... but its lifetime is still checked at every use, with the same leeway as PyJWT's.
    later = datetime.now(UTC) + timedelta(minutes=5, seconds=31)
    with pytest.raises(AuthError) as caught:
        verify(token, settings, now=later)
    assert caught.value.reason == "expired"


def test_a_remembered_token_is_checked_anew_against_another_key(settings: Settings) -> None:
    token = jwt.encode(claims(settings), KEY, algorithm="HS256")
    assert verify(token, settings).subject == "alice"
    assert reason(token, make_settings(JWT_SECRET="o" * 40)) == "bad_signature"
    assert reason(token, make_settings(JWT_SECRET=KEY, JWT_AUDIENCE="other")) == "wrong_audience"


def test_a_token_that_failed_is_never_remembered(settings: Settings) -> None:
    future = datetime.now(UTC) + timedelta(minutes=2)
    early = jwt.encode(claims(settings, nbf=future, iat=future), KEY, algorithm="HS256")
    assert reason(early, settings) == "not_yet_valid"
    assert reason(early, settings) == "not_yet_valid"
