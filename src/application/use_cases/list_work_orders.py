from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import InvalidInput
from domain.work_orders import WorkOrder, WorkStatus

MAX_PAGE = 100
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: int | None  # pass as ``before_id`` to get the next (older) page; None: this was the last


class ListWorkOrders:
    """The caller's orders, newest first: a seeker's created ones, a provider's assigned ones."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(
        self, user_id: int, status: WorkStatus | None = None, limit: int = 20, before_id: int | None = None
    ) -> Page[WorkOrder]:
        check_page(limit, before_id)
        async with self._uow_factory() as uow:
            profile = await caller_profile(uow, user_id)
            orders = await uow.work_orders.list_for_user(user_id, profile.role, status, limit + 1, before_id)
        return page_of(orders, limit)


def check_page(limit: int, before_id: int | None) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if before_id is not None and before_id < 1:
        raise InvalidInput("cursor must be a positive id", field="cursor")


def page_of(rows: list[T], limit: int) -> Page[T]:
    """Rows were read with ``limit + 1``: the extra one only says there is a next page."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items, items[-1].id if more and items else None)  # type: ignore[attr-defined]
