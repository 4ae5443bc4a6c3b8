from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from application.ports import Clock, UnitOfWorkFactory

CHUNK = 500  # ids per read of the full check: a bounded statement, and the event loop gets a turn between chunks
# Erasures are asked about with this much overlap: the erasing instance's clock may run behind this one's, and
# a socket may be registered a moment after the check that saw its user's erasure.
OVERLAP = timedelta(minutes=1)
# Every so many checks the full one runs again: a profile row deleted by hand in SQL leaves no ``deleted_at``
# behind (with SOCKET_USER_RECHECK_SECONDS=5, once a minute: 20 reads of 500 ids at 10,000 sockets, not 240).
FULL_CHECK_EVERY = 12


class FindUnknownUsers:
    """Which of these users no longer have a profile (erased since they connected).

    Sockets are authenticated once, at connect; each instance asks this every few seconds about the
    users it holds sockets for and closes those of users that are gone, so an erased user is cut off
    everywhere without any message between instances. Most checks only ask who was erased lately (one
    small indexed read, whatever the number of sockets: asking about each user read 10,000 profiles every
    5 s at 10,000 sockets); the first check, and every ``FULL_CHECK_EVERY``-th, asks about every user.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._asked_at: datetime | None = None
        self._checks = 0

    async def execute(self, user_ids: Collection[int]) -> set[int]:
        now = self._clock.now()
        if self._asked_at is None or self._checks % FULL_CHECK_EVERY == 0:
            unknown = await self._missing(user_ids)
        else:
            async with self._uow_factory() as uow:
                unknown = set(user_ids) & await uow.profiles.erased_since(self._asked_at - OVERLAP)
        self._asked_at, self._checks = now, self._checks + 1
        return unknown

    async def _missing(self, user_ids: Collection[int]) -> set[int]:
        ids = list(user_ids)
        unknown: set[int] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            async with self._uow_factory() as uow:
                unknown |= set(chunk) - await uow.profiles.existing_ids(chunk)
        return unknown
