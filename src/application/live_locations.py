"""Live location: providers' positions from their sockets, coalesced and written in batches.

An app may send its position every second or more often; a row write per message would cost a
transaction each. Instead the latest position of each provider waits here (a newer one replaces
it) and a flusher writes them all every ``flush_interval`` in one statement, so a nearby search
sees a position at most about one interval old. Positions are not notifications: one lost in a
crash is replaced by the app's next send, so they are kept in memory only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from application.errors import StorageUnavailable
from application.ports import Clock, UnitOfWorkFactory
from domain.geo import GeoPoint

log = logging.getLogger(__name__)


class LiveLocations:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        flush_interval: timedelta = timedelta(seconds=1),
        on_flush: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._interval = flush_interval.total_seconds()
        self._waiting: dict[int, tuple[GeoPoint, datetime]] = {}
        self._received = 0  # positions noted since the last flush (a newer one replaces a waiting one)
        # (positions received, positions written, age of the oldest written in seconds): for the metrics
        self._on_flush = on_flush

    def note(self, provider_id: int, position: GeoPoint) -> None:
        """Keep the provider's newest position for the next flush (an older waiting one is dropped)."""
        self._waiting.pop(provider_id, None)  # re-inserted last: the dict stays ordered by arrival
        self._waiting[provider_id] = (position, self._clock.now())
        self._received += 1

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def flush(self) -> int:
        """Write every waiting position in one statement; returns how many provider rows moved."""
        if not self._waiting:
            return 0
        batch, self._waiting = self._waiting, {}
        received, self._received = self._received, 0
        now = self._clock.now()
        try:
            async with self._uow_factory() as uow:
                moved = await uow.nearby.move_many({p: position for p, (position, _) in batch.items()}, now)
                await uow.commit()
        except StorageUnavailable:
            # Put them back unless a newer position arrived meanwhile; the next flush tries again.
            self._waiting = batch | self._waiting
            self._received += received
            raise
        if self._on_flush is not None:
            oldest = min(noted for _, noted in batch.values())
            self._on_flush(received, len(batch), (now - oldest).total_seconds())
        return moved

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except StorageUnavailable as error:
                log.warning("live locations not written, will retry", extra={"error": str(error)})
            except Exception:
                log.exception("live locations flush failed")
