"""Bearer tokens: which verifier the settings pick, the tokens the CLI issues, and where a token is read from.

Verification lives in ``adapters.identity`` (a static key: HS256 secret or RS256/ES256 public key; or
an auth server's JWKS). The CLI issues tokens for the users it makes, when it has a signing key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from adapters.identity.jwks import JwksKeys
from adapters.identity.verifier import JwtVerifier
from application.errors import InvalidToken
from entrypoints.settings import Settings

__all__ = ["InvalidToken", "TokenService", "bearer_token", "pick_verifier"]


def pick_verifier(settings: Settings) -> JwtVerifier:
    """The token verifier the settings describe (the composition root calls this once)."""
    common = {
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "user_claim": settings.jwt_user_id_claim,
        "required_claims": dict(settings.jwt_required_claims),
    }
    if settings.jwt_jwks_url:
        jwks = JwksKeys(settings.jwt_jwks_url, settings.jwks_cache_seconds, settings.auth_timeout)
        return JwtVerifier([settings.jwt_algorithm], jwks=jwks, **common)
    key = settings.jwt_secret if settings.jwt_algorithm == "HS256" else settings.jwt_public_key
    if not key:
        raise ValueError("no key to verify tokens with")
    return JwtVerifier([settings.jwt_algorithm], key=key, **common)


class TokenService:
    """Issues tokens for the users the CLI makes (``sub`` = the external id, which is the id for them)."""

    def __init__(self, settings: Settings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._sign_key = settings.jwt_secret if self._algorithm == "HS256" else settings.jwt_private_key
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._claim = settings.jwt_user_id_claim
        self._required = dict(settings.jwt_required_claims)
        self._ttl = settings.token_ttl

    @property
    def can_issue(self) -> bool:
        return bool(self._sign_key)

    def issue(self, subject: int | str, ttl: timedelta | None = None) -> str:
        """A token for the user the external id ``subject`` names. Needs the signing key."""
        if not self._sign_key:
            raise ValueError(
                "cannot issue tokens: set JWT_SECRET (HS256) or JWT_PRIVATE_KEY(_PATH); with JWT_JWKS_URL the"
                " auth server issues them"
            )
        now = datetime.now(UTC)
        claims: dict = {**self._required, "iat": now, "exp": now + (ttl or self._ttl), self._claim: str(subject)}
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._sign_key, algorithm=self._algorithm)


def bearer_token(authorization: str | None, query_token: str | None = None) -> str | None:
    """The token from an ``Authorization: Bearer`` header, or from ``?token=`` (browsers' WebSockets)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return query_token or None
