"""The auth server's published keys (a JWKS), fetched over HTTP and cached.

PyJWT's ``PyJWKClient`` fetches with urllib, blocking the event loop, and refetches on every unknown
``kid``; so, by hand, on httpx: the key set is cached for the ``Cache-Control: max-age`` the server
gives (else ``cache_seconds``); an unknown ``kid`` (a rotation) refetches at most once a minute, so a
stream of forged kids is not a stream of fetches; when the server is down or answers garbage, the last
good keys stay in use (and it is logged); with no keys at all, ``KeysUnavailable`` (503), never accept.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import httpx
import jwt

from application.errors import InvalidToken, KeysUnavailable

log = logging.getLogger(__name__)
UNKNOWN_KID_REFETCH_SECONDS = 60.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class JwksKeys:
    def __init__(self, url: str, cache_seconds: float = 600.0, timeout: float = 5.0) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._keys: dict[str | None, Any] = {}
        self._fresh_until = 0.0
        self._last_unknown_refetch = float("-inf")
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    async def key_for(self, kid: str | None) -> Any:
        """The verification key for ``kid``."""
        if time.monotonic() >= self._fresh_until:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_unknown_refetch >= UNKNOWN_KID_REFETCH_SECONDS:
            self._last_unknown_refetch = time.monotonic()
            await self._refresh(force=True)
            key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise KeysUnavailable("the auth server's keys are not available")
            raise InvalidToken("the token is not valid")  # signed with a key the auth server does not publish
        return key

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _refresh(self, force: bool = False) -> None:
        async with self._lock:  # one fetch at a time; the others use its result
            if not force and time.monotonic() < self._fresh_until:
                return
            try:
                keys, max_age = await self._fetch()
            except Exception as error:
                log.warning(
                    "JWKS fetch failed; using the last good keys" if self._keys else "JWKS fetch failed; no keys yet",
                    extra={"url": self._url, "error": repr(error)[:200], "keys": len(self._keys)},
                )
                # Do not hammer a failing server: try again in a little while.
                self._fresh_until = time.monotonic() + min(30.0, self._cache_seconds)
                return
            self._keys = keys
            self._fresh_until = time.monotonic() + (max_age if max_age is not None else self._cache_seconds)

    async def _fetch(self) -> tuple[dict[str | None, Any], float | None]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        response = await self._client.get(self._url)
        response.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(response.json())
        keys = {key.key_id: key.key for key in key_set.keys}
        if not keys:
            raise ValueError("the JWKS has no usable key")
        found = _MAX_AGE.search(response.headers.get("cache-control", ""))
        return keys, float(found.group(1)) if found else None
