"""Tokens and settings: what is accepted, what is refused, and the messages an operator sees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entrypoints.auth import InvalidToken, TokenService, bearer_token, pick_verifier
from entrypoints.settings import PushBackend, Settings, SettingsError

SECRET = "s" * 40


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


def hs256_signed_with(secret: str, claims: dict) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


async def subject(settings: Settings, token: str | None) -> str:
    return (await pick_verifier(settings).verify(token or "")).subject


async def test_hs256_round_trip_and_refusals():
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    tokens = TokenService(settings)
    assert await subject(settings, tokens.issue(42)) == "42"
    with pytest.raises(InvalidToken, match="expired"):
        await subject(settings, tokens.issue(42, ttl=timedelta(seconds=-30)))
    with pytest.raises(InvalidToken):
        await subject(settings, jwt.encode({"sub": "42", "exp": 4102444800}, "t" * 40, algorithm="HS256"))
    with pytest.raises(InvalidToken, match="subject"):
        await subject(settings, jwt.encode({"sub": "x" * 129, "exp": 4102444800}, SECRET, algorithm="HS256"))
    with pytest.raises(InvalidToken, match="subject"):
        await subject(settings, jwt.encode({"sub": "a\u0000b", "exp": 4102444800}, SECRET, algorithm="HS256"))
    with pytest.raises(InvalidToken):
        await subject(settings, jwt.encode({"sub": "42"}, SECRET, algorithm="HS256"))  # no exp
    with pytest.raises(InvalidToken):
        await subject(settings, None)


async def test_a_verified_token_is_remembered_for_a_minute_at_most_and_never_past_its_expiry(monkeypatch):
    from adapters.identity import verifier as module

    now = [1_800_000_000.0]
    monkeypatch.setattr(module.time, "time", lambda: now[0])
    monkeypatch.setattr(jwt.api_jwt, "datetime", _frozen_datetime(now))
    verifier = pick_verifier(Settings.from_env({"JWT_SECRET": SECRET}))
    short = jwt.encode({"sub": "7", "exp": int(now[0]) + 30}, SECRET, algorithm="HS256")
    long = jwt.encode({"sub": "8", "exp": int(now[0]) + 3600}, SECRET, algorithm="HS256")
    assert (await verifier.verify(short)).subject == "7" and (await verifier.verify(long)).subject == "8"
    checks = []
    real_verify = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda token: checks.append(token) or real_verify(token))
    assert (await verifier.verify(short)).subject == "7" and checks == []  # remembered
    now[0] += 40  # past the short one's exp (and its 5 s leeway): remembered no longer
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(short)
    assert (await verifier.verify(long)).subject == "8" and checks == [short]
    now[0] += 30  # a minute after the long one was verified: its signature is checked again
    assert (await verifier.verify(long)).subject == "8" and checks == [short, long]


def _frozen_datetime(now: list[float]) -> type[datetime]:
    """PyJWT reads the time as ``datetime.now(tz=UTC)``: give it the same fake time as the verifier's cache."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now[0], tz)

    return Frozen


async def test_rs256_verifies_with_the_public_key_and_refuses_the_hs256_confusion_attack():
    private, public = rsa_pair()
    settings = Settings.from_env({"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": public, "JWT_PRIVATE_KEY": private})
    tokens = TokenService(settings)
    assert await subject(settings, jwt.encode({"sub": "7", "exp": 4102444800}, private, algorithm="RS256")) == "7"
    assert await subject(settings, tokens.issue(8)) == "8"
    # The key-confusion attack: HS256 signed with the (public) RSA key as the HMAC secret.
    with pytest.raises(InvalidToken):
        await subject(settings, hs256_signed_with(public, {"sub": "7", "exp": 4102444800}))
    with pytest.raises(InvalidToken):
        await subject(settings, jwt.encode({"sub": "7", "exp": 4102444800}, SECRET, algorithm="HS256"))
    verify_only = TokenService(Settings.from_env({"JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY": public}))
    with pytest.raises(ValueError, match="JWT_PRIVATE_KEY"):
        verify_only.issue(1)


async def test_issuer_audience_user_claim_and_required_claims_are_enforced_when_configured():
    settings = Settings.from_env({"JWT_SECRET": SECRET, "JWT_ISSUER": "auth.example", "JWT_AUDIENCE": "wc"})
    assert await subject(settings, TokenService(settings).issue(3)) == "3"
    with pytest.raises(InvalidToken):
        await subject(
            settings,
            jwt.encode({"sub": "3", "exp": 4102444800, "iss": "other", "aud": "wc"}, SECRET, algorithm="HS256"),
        )
    simple = Settings.from_env({"JWT_SECRET": SECRET, "AUTH_PRESET": "simplejwt"})
    access = {"user_id": 42, "token_type": "access", "exp": 4102444800, "jti": "x"}
    assert await subject(simple, jwt.encode(access, SECRET, algorithm="HS256")) == "42"
    with pytest.raises(InvalidToken, match="token_type"):  # a refresh token used as an access token
        await subject(simple, jwt.encode(access | {"token_type": "refresh"}, SECRET, algorithm="HS256"))
    with pytest.raises(InvalidToken, match="subject"):
        await subject(simple, jwt.encode(access | {"user_id": True}, SECRET, algorithm="HS256"))


def test_bearer_token_sources():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None, "fromquery") == "fromquery"
    assert bearer_token(None, None) is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PUBLIC_KEY"),
        ({"PUSH_BACKEND": "carrier-pigeon"}, "PUSH_BACKEND"),
        ({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE"),
        ({"DELIVERY_REQUEST_BUDGET_MS": "-1"}, "DELIVERY_REQUEST_BUDGET_MS"),
        ({"AUTO_MIGRATE": "perhaps"}, "AUTO_MIGRATE"),
        ({"CORS_ALLOW_ORIGINS": "app.example.com"}, "CORS_ALLOW_ORIGINS"),
        ({"JWT_ALGORITHM": "RS256", "JWT_JWKS_URL": "https://auth.example/jwks"}, "JWT_ISSUER"),
        ({"JWT_JWKS_URL": "https://a/jwks", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a"}, "RS256"),
        ({"AUTH_PRESET": "firebase"}, "FIREBASE_PROJECT_ID"),
        ({"AUTH_PRESET": "keycloak"}, "AUTH_PRESET"),
        ({"JWT_REQUIRED_CLAIMS": "token_type"}, "JWT_REQUIRED_CLAIMS"),
        ({"ADMIN_API_KEYS": "short"}, "ADMIN_API_KEYS"),
        ({"CORS_ALLOW_ORIGINS": "https://app.example.com/path"}, "CORS_ALLOW_ORIGINS"),
        ({"JWT_PUBLIC_KEY_PATH": "/nonexistent/key.pem"}, "JWT_PUBLIC_KEY_PATH"),
        ({"REMEMBERED_PROFILES": "-1"}, "REMEMBERED_PROFILES"),
    ],
)
def test_bad_settings_name_the_variable(env, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_only_what_verifies_or_issues_tokens_needs_jwt_secret(tmp_path):
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x/y"})  # enough for `workcast migrate`
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        settings.require_token_keys()
    from entrypoints.http.app import create_app

    with pytest.raises(SettingsError, match="JWT_SECRET"):
        create_app(settings)


def test_defaults_are_the_embedded_service(tmp_path):
    settings = Settings.from_env({"WORKCAST_DATA_DIR": str(tmp_path)})
    assert settings.embedded and settings.auto_migrate and settings.push_backend is PushBackend.LOG
    assert settings.redis_url is None and settings.jwt_secret is None
    with_secret = settings.with_jwt_secret()
    assert len(with_secret.jwt_secret) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert settings.with_jwt_secret().jwt_secret == with_secret.jwt_secret  # generated once, then kept
    shown = repr(
        Settings.from_env(
            {
                "JWT_SECRET": SECRET,
                "DATABASE_URL": "postgresql://u:hunter2@db/x",
                "REDIS_URL": "redis://:pw9@r",
                "ADMIN_API_KEYS": "adminkey-" + "z" * 32,
            }
        )
    )
    assert SECRET not in shown and "hunter2" not in shown and "pw9" not in shown and "adminkey" not in shown


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PUSH_BACKEND": "fcm"}, "FIREBASE_CREDENTIALS_PATH"),
        ({"PUSH_BACKEND": "fcm", "FIREBASE_CREDENTIALS_PATH": "/nonexistent/key.json"}, "FIREBASE_CREDENTIALS_PATH"),
        (
            {"PUSH_BACKEND": "fcm", "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/k.json"},
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
    ],
)
def test_fcm_without_readable_credentials_refuses_to_start(tmp_path, env, named):
    from entrypoints.http.app import create_app

    with pytest.raises(SettingsError, match=named):
        create_app(Settings.from_env({"WORKCAST_DATA_DIR": str(tmp_path), **env}))
