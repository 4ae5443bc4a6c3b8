from __future__ import annotations

from application.ports import UnitOfWorkFactory
from domain.errors import ProfileNotFound
from domain.profiles import Profile


class GetProfile:
    """Who is this user? (A WebSocket checks the caller's role once, when it connects.)"""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int) -> Profile:
        async with self._uow_factory() as uow:
            profile = await uow.profiles.get(user_id)
        if profile is None:
            raise ProfileNotFound("no profile for this user")
        return profile
