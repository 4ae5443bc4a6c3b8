"""JWT bearer tokens: HS256 with a shared secret by default, RS256 with a public key for tokens of an
existing auth server. ``sub`` is the user id; ``exp`` is required; ``alg: none`` is never accepted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import jwt

from entrypoints.settings import Settings

# A user id as a token subject: ASCII digits, no sign or leading zero, at most 18 digits (fits 63 bits).
_USER_ID = re.compile(r"[1-9][0-9]{0,17}")


class InvalidToken(Exception):
    """Missing, malformed, tampered, expired or not for us. The message is safe to show the client."""


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._algorithm = settings.jwt_algorithm
        self._verify_key = settings.jwt_public_key if self._algorithm == "RS256" else settings.jwt_secret
        self._sign_key = settings.jwt_private_key if self._algorithm == "RS256" else settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = settings.token_ttl
        if not self._verify_key:
            raise ValueError("no key to verify tokens with")

    def user_id(self, token: str | None) -> int:
        """The user the token speaks for, or ``InvalidToken``."""
        if not token:
            raise InvalidToken("authentication required: send 'Authorization: Bearer <token>'")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self._algorithm],  # one algorithm, ours: no 'none', no HS/RS confusion
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        subject = claims.get("sub")
        # str.isdigit() and int() also take other scripts' digits (Arabic-Indic, full-width, superscripts): only ASCII.
        if not isinstance(subject, str) or not _USER_ID.fullmatch(subject):
            raise InvalidToken("the token's subject is not a user id")
        return int(subject)

    def issue(self, user_id: int, ttl: timedelta | None = None) -> str:
        """A token for the user (the CLI and the demo use this). Needs the signing key."""
        if not self._sign_key:
            raise ValueError("cannot issue tokens: set JWT_PRIVATE_KEY(_PATH) for RS256")
        now = datetime.now(UTC)
        claims = {"sub": str(user_id), "iat": now, "exp": now + (ttl or self._ttl)}
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
