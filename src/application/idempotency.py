"""Idempotency keys: a client that retries a request (its first attempt timed out) gets the first answer
instead of a second order. The key is claimed in the same transaction as the change it guards, so a
crash can never leave one without the other; the answer is stored with it (provisional until the
delivery behind it has finished, then final).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from application.ports import StoredAnswer, UnitOfWork, UnitOfWorkFactory
from domain.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)
KEY_LIFETIME = timedelta(hours=24)
# A provisional answer younger than the request budget plus this is a first request still at work.
IN_FLIGHT_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class IdempotentRequest:
    user_id: int
    key: str
    fingerprint: str  # the operation and its canonical body, hashed: the same key must mean the same request
    render: Callable[[Any], tuple[int, str]]  # the use case's result as the answer to store (status, body)


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class RequestInProgress(DomainError):
    code = "request_in_progress"


class Replayed(Exception):
    """The key was used before for this very request: here is the answer it got."""

    def __init__(self, answer: StoredAnswer) -> None:
        super().__init__("replayed")
        self.answer = answer


async def claim(uow: UnitOfWork, request: IdempotentRequest | None, now: datetime, in_flight: timedelta) -> None:
    """Claim the key in this transaction, or raise what its earlier use calls for.

    On PostgreSQL a concurrent first use holds the key's row until it commits: this waits for it, then
    sees its answer. An answer still provisional (the first request is delivering) within ``in_flight``
    is ``RequestInProgress``; after that, a crash ended the first request and its provisional answer
    (order made, delivery unknown) is the answer.
    """
    if request is None:
        return
    prior = await uow.idempotency.claim(request.user_id, request.key, request.fingerprint, now)
    if prior is None:
        return
    if prior.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for another request: use a new key for a new request",
            field="Idempotency-Key",
        )
    if prior.body is None or (not prior.final and now - prior.created_at < in_flight):
        raise RequestInProgress("the first request with this Idempotency-Key is still being processed: retry shortly")
    raise Replayed(prior)


async def remember(uow: UnitOfWork, request: IdempotentRequest | None, result: Any, final: bool) -> None:
    """Store the answer in this transaction (before commit)."""
    if request is not None:
        status, body = request.render(result)
        await uow.idempotency.save_answer(request.user_id, request.key, status, body, final)


async def remember_final(uow_factory: UnitOfWorkFactory, request: IdempotentRequest | None, result: Any) -> None:
    """After the delivery: the final answer. Best effort: if it fails, a replay gets the provisional one."""
    if request is None:
        return
    try:
        async with uow_factory() as uow:
            await remember(uow, request, result, final=True)
            await uow.commit()
    except Exception:
        log.exception("could not store an idempotent request's final answer", extra={"user_id": request.user_id})
