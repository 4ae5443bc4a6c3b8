"""A local fake of Google's FCM HTTP v1 API and OAuth2 token endpoint, answering like Google does.

A raw ASGI app under uvicorn (``workcast fake-fcm``, and the tests): the real firebase-admin SDK
talks to it as to Google, with a throwaway service-account key whose ``token_uri`` points here.
Chosen tokens fail with the real error bodies (``google.firebase.fcm.v1.FcmError`` details), so a
team can watch what workcast does with ``UNREGISTERED``, ``QUOTA_EXCEEDED`` and the rest, offline.
``GET /received`` lists what it accepted (``DELETE /received`` forgets it).

Written by hand because no package fakes FCM's v1 API; it is a few routes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# errorCode -> (HTTP status, google.rpc status, message), as FCM answers them.
FCM_ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}
SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")


@dataclass(frozen=True)
class Failure:
    error_code: str
    retry_after: int | None = None
    payload_error: bool = False  # INVALID_ARGUMENT about the message, not the token


@dataclass
class FakeFcm:
    base_url: str
    token_uri: str
    project_id: str = "workcast-test"
    failures: dict[str, Failure] = field(default_factory=dict)  # by token or fid
    failure_patterns: list[tuple[str, Failure]] = field(default_factory=list)  # (glob on token or fid, failure)
    delay: float = 0.0  # seconds before answering a send
    hang: set[str] = field(default_factory=set)  # targets whose sends get no answer while listed here
    sent: list[dict[str, Any]] | deque = field(default_factory=list)  # accepted messages, as posted
    accepted: int = 0  # messages accepted in all
    requests: list[dict[str, Any]] = field(default_factory=list)  # every send request
    token_requests: int = 0
    abandoned: int = 0  # held sends whose client went away before the answer (nothing was delivered)
    keep_messages: bool = True  # the benchmark turns it off to keep memory flat
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _access_tokens: set[str] = field(default_factory=set)

    def fail(self, target: str, error_code: str, retry_after: int | None = None, payload_error: bool = False) -> None:
        self.failures[target] = Failure(error_code, retry_after, payload_error)

    def fail_matching(self, pattern: str, error_code: str) -> None:
        """Every token or fid matching the glob ``pattern`` fails with ``error_code`` (e.g. ``dead-*``)."""
        if error_code not in FCM_ERRORS:
            raise ValueError(f"unknown FCM error {error_code!r}; known: {', '.join(FCM_ERRORS)}")
        retry_after = 60 if error_code == "QUOTA_EXCEEDED" else None
        self.failure_patterns.append((pattern, Failure(error_code, retry_after)))

    def failure_for(self, target: str) -> Failure | None:
        if target in self.failures:
            return self.failures[target]
        return next((f for pattern, f in self.failure_patterns if fnmatch.fnmatchcase(target, pattern)), None)

    def messages_to(self, target: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("token") == target or m.get("fid") == target]

    def service_account(self, directory: Path) -> Path:
        """A throwaway key whose token_uri is this fake, as ``service-account.json`` in ``directory``."""
        return self.write_service_account(directory / "service-account.json")

    def write_service_account(self, path: Path) -> Path:
        """A throwaway service-account key whose token_uri is this fake, written to ``path``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": "test-key-1",
                    "private_key": pem,
                    "client_email": f"workcast@{self.project_id}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "token_uri": self.token_uri,
                }
            )
        )
        return path

    # --- the ASGI app ---------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        path = scope["path"]
        if path == "/token" and scope["method"] == "POST":
            await self._token(body, send)
        elif path == "/received" and scope["method"] in ("GET", "DELETE"):
            if scope["method"] == "DELETE":
                self.sent.clear()
            await _respond(send, 200, {"accepted": self.accepted, "messages": list(self.sent)})
        elif (match := SEND_PATH.match(path)) and scope["method"] == "POST":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            await self._send_message(match.group(1), headers, body, send, receive)
        else:
            await _respond(send, 404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})

    async def _token(self, body: bytes, send) -> None:
        # A JWT-bearer grant from google-auth. The assertion's aud names Google's URL: not checked.
        if b"grant_type=urn" not in body or b"assertion=" not in body:
            await _respond(send, 400, {"error": "invalid_grant", "error_description": "bad request"})
            return
        self.token_requests += 1
        token = f"fake-access-token-{self.token_requests}"
        self._access_tokens.add(token)
        await _respond(send, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _send_message(self, project: str, headers: dict[str, str], body: bytes, send, receive) -> None:
        payload = json.loads(body)
        if self.keep_messages:
            self.requests.append({"project": project, "headers": headers, "body": payload})
        if headers.get("authorization", "").removeprefix("Bearer ") not in self._access_tokens:
            await _respond(send, 401, _error_body(401, "UNAUTHENTICATED", "Request had invalid authentication"))
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        message = payload.get("message", {})
        target = message.get("token") or message.get("fid")
        if target in self.hang:
            # Hold the answer. A client that goes away meanwhile (a killed server) delivered nothing.
            gone = asyncio.ensure_future(receive())
            # Polled: tests change ``hang`` from another thread, so an asyncio.Event would not do.
            while target in self.hang and not gone.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            if gone.done():
                self.abandoned += 1
                return
            gone.cancel()
        failure = self.failure_for(target or "")
        if failure:
            status, rpc_status, text = FCM_ERRORS[failure.error_code]
            if failure.payload_error:
                text = "Invalid value at 'message.data[0].value' (TYPE_STRING)"
            extra = [("retry-after", str(failure.retry_after))] if failure.retry_after is not None else []
            await _respond(send, status, _error_body(status, rpc_status, text, failure.error_code), extra)
            return
        self.accepted += 1
        if self.keep_messages:
            self.sent.append(message)
        await _respond(send, 200, {"name": f"projects/{project}/messages/{next(self._ids)}"})


def _error_body(status: int, rpc_status: str, message: str, fcm_code: str | None = None) -> dict:
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if fcm_code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
    return {"error": error}


async def _respond(send, status: int, body: dict, headers: list[tuple[str, str]] = ()) -> None:
    data = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json; charset=UTF-8"), (b"content-length", str(len(data)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})
