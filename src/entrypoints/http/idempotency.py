"""The ``Idempotency-Key`` header (assign-work, respond, cancel): read it, fingerprint the request, and
answer a replay with the stored first answer (``Idempotent-Replayed: true``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.params import HeaderParameter

from application.idempotency import IdempotentRequest, Replayed
from domain.errors import InvalidInput

_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII, as payment APIs take it
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="1-255 visible ASCII characters: the same key within 24 h returns the first answer",
    ),
]


def idempotent(
    key: str | None, user_id: int, operation: str, request: Any, render: Callable[[Any], tuple[int, Any]]
) -> IdempotentRequest | None:
    """The request's idempotency, or None without a key. ``render`` turns the use case's result into
    (status, the response's envelope), which is stored as JSON text."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1-255 visible ASCII characters", field="Idempotency-Key")
    fingerprint = hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(request)).hexdigest()

    def as_text(result: Any) -> tuple[int, str]:
        status, body = render(result)
        return status, msgspec.json.encode(body).decode()

    return IdempotentRequest(user_id, key, fingerprint, as_text)


def on_replayed(request: Request, replayed: Replayed) -> Response:
    answer = replayed.answer
    return Response(
        (answer.body or "").encode(),
        status_code=answer.status_code or 200,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
