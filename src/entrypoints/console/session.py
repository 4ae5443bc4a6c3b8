"""Console sign-in sessions: a signed cookie, so any instance behind a load balancer can read it.

Hand-written because it is a few lines over the standard library's HMAC: Litestar's cookie sessions
encrypt a server-side dict but fix ``Secure`` at start-up, and the console must set it per request
(Secure over TLS, plain on a loopback HTTP port). The cookie holds who signed in, a CSRF token for the
console's forms, and an expiry; nothing secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE = "workcast_console"
LIFETIME_SECONDS = 8 * 3600


@dataclass(frozen=True)
class ConsoleSession:
    subject: str  # "key:<fingerprint of the admin API key>" or "operator:<profile id>"
    csrf: str
    expires: int  # unix seconds


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def signing_key(console_secret: str | None, admin_api_keys: tuple[str, ...]) -> bytes:
    """CONSOLE_SECRET; else derived from the admin API keys (the same on every instance that shares them, and
    rotating the keys ends the sessions); else random, so sessions last as long as this process."""
    if console_secret:
        return hashlib.sha256(b"workcast-console\0" + console_secret.encode()).digest()
    if admin_api_keys:
        return hashlib.sha256(b"workcast-console-keys\0" + "\0".join(sorted(admin_api_keys)).encode()).digest()
    return secrets.token_bytes(32)


class ConsoleSessions:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, subject: str, now: float) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(subject, secrets.token_urlsafe(24), int(now) + LIFETIME_SECONDS)
        payload = _b64(json.dumps({"s": session.subject, "c": session.csrf, "e": session.expires}).encode())
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None, now: float) -> ConsoleSession | None:
        """The session in a cookie this service signed and that has not expired; None otherwise."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = ConsoleSession(str(fields["s"]), str(fields["c"]), int(fields["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
