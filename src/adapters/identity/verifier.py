"""``JwtVerifier``: the TokenVerifier port for JWTs, with one static key or an auth server's JWKS."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from adapters.identity.jwks import JwksKeys
from application.errors import InvalidToken
from application.ports import TokenVerifier, VerifiedToken

SUBJECT_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUMERIC_ID = re.compile(r"[1-9][0-9]{0,17}")
# A token verified once is taken as verified for this long (never past its exp): an app sends the same token
# with every request, and checking the signature again cost 7 % of assign-work's CPU (bench/). Bounded so a key
# removed from the JWKS stops working within a minute.
VERIFIED_FOR_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000


class JwtVerifier(TokenVerifier):
    """Checks signature, ``exp`` (required), ``iss``/``aud`` when configured, and required claims.

    The algorithms are fixed by configuration, never taken from the token: ``alg: none`` and an HS256
    token signed with an RS256 public key as its secret are refused.
    """

    def __init__(
        self,
        algorithms: Sequence[str],
        *,
        key: Any = None,
        jwks: JwksKeys | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        user_claim: str = "sub",
        required_claims: Mapping[str, str] | None = None,
        leeway: float = 5.0,
    ) -> None:
        if (key is None) == (jwks is None):
            raise ValueError("give exactly one of a key and a JWKS")
        self._algorithms = list(algorithms)
        self._key = key
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._user_claim = user_claim
        self._required = dict(required_claims or {})
        self._leeway = leeway
        self._verified: dict[str, tuple[VerifiedToken, float]] = {}

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    async def verify(self, token: str) -> VerifiedToken:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            if now < cached[1]:
                return cached[0]
            del self._verified[token]
        verified = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude, but bounded
        self._verified[token] = (verified, min(now + VERIFIED_FOR_SECONDS, verified.claims["exp"]))
        return verified

    async def _verify(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        if header.get("alg") not in self._algorithms:
            raise InvalidToken("the token is not valid")
        kid = header.get("kid")
        key = self._key if self._jwks is None else await self._jwks.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        for name, expected in self._required.items():
            if str(claims.get(name)) != expected:
                raise InvalidToken(f"the token's {name} must be {expected}")
        return VerifiedToken(subject_of(claims.get(self._user_claim)), claims)


def subject_of(value: Any) -> str:
    """The user claim as an external id: a string of 1-128 characters without control characters, or a
    positive integer (SimpleJWT's ``user_id``), taken as its decimal text. Compared exactly afterwards."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return str(value)
    if not isinstance(value, str) or not 0 < len(value) <= SUBJECT_MAX or _CONTROL.search(value):
        raise InvalidToken("the token's subject is not a user id")
    # A numeric id is ASCII digits, no sign or leading zero: int() and str.isdigit() also take other
    # scripts' digits (Arabic-Indic, full-width, superscripts), which must never name user 1.
    if value.isdigit() and not _NUMERIC_ID.fullmatch(value):
        raise InvalidToken("the token's subject is not a user id")
    return value
