from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile


class UnregisterDevice:
    """The app logs out: this device (or, with no token, every device of the user) is never pushed again."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int, token: str | None = None) -> int:
        async with self._uow_factory() as uow:
            await caller_profile(uow, user_id)
            removed = await uow.devices.remove_for_user(user_id, token)
            await uow.commit()
        return removed
