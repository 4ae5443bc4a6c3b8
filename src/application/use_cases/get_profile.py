from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.profiles import Profile


class GetProfile:
    """Who is this user? (A WebSocket checks the caller's role once, when it connects.)"""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int) -> Profile:
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
        return profile
