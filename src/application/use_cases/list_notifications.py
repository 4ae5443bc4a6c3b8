from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from application.use_cases.list_work_orders import Page, check_page, page_of
from domain.notifications import Notification


class ListNotifications:
    """The caller's notification history with delivery states, newest first."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int, limit: int = 20, before_id: int | None = None) -> Page[Notification]:
        check_page(limit, before_id)
        async with self._uow_factory() as uow:
            await caller_profile(uow, user_id)
            rows = await uow.notifications.list_for_user(user_id, limit + 1, before_id)
        return page_of(rows, limit)
