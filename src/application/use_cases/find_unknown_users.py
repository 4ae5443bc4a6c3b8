from __future__ import annotations

from collections.abc import Collection

from application.ports import UnitOfWorkFactory

CHUNK = 500  # ids per read: a bounded statement, and the event loop gets a turn between chunks


class FindUnknownUsers:
    """Which of these users no longer have a profile (deleted since they connected).

    Sockets are authenticated once, at connect; each instance asks this every few seconds about the
    users it holds sockets for and closes those of users that are gone, so a deleted user is cut off
    everywhere without any message between instances.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_ids: Collection[int]) -> set[int]:
        ids = list(user_ids)
        unknown: set[int] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            async with self._uow_factory() as uow:
                unknown |= set(chunk) - await uow.profiles.existing_ids(chunk)
        return unknown
