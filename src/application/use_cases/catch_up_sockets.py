from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from application.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)
CHUNK = 500  # users per statement
MARGIN = timedelta(seconds=5)  # the subscription may have been dead a moment before the loss was noticed
SECOND_PASS_AFTER = 2.0  # seconds: outcomes of publishes made just before the resubscription land late


class CatchUpSockets:
    """After the broker's subscription was lost and is back: what the outage kept from open sockets goes out now.

    While an instance is resubscribing, another instance publishing to its users hears "nobody
    listens" and records the message not connected; the socket stayed open, so no replay on connect
    would ever bring it. And socket attempts that failed with the broker down wait for their backoff.
    Both become due now, on the socket channel, and the dispatcher delivers them through the usual
    path (claimed, sent, recorded). A second pass a moment later catches outcomes of publishes made just
    before the resubscription that were written after the first pass (at least once: the app may see
    a message twice, never miss it).
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, user_ids: list[int], down_for: timedelta) -> int:
        since = self._clock.now() - down_for - MARGIN
        changed = await self._retry(user_ids, since)
        await asyncio.sleep(SECOND_PASS_AFTER)
        changed += await self._retry(user_ids, since)
        log.info("sockets caught up after a broker outage", extra={"users": len(user_ids), "notifications": changed})
        return changed

    async def _retry(self, user_ids: list[int], since) -> int:
        changed = 0
        for start in range(0, max(len(user_ids), 1), CHUNK):
            async with self._uow_factory() as uow:
                changed += await uow.notifications.retry_sockets_now(
                    user_ids[start : start + CHUNK], since, self._clock.now()
                )
                await uow.commit()
        return changed
