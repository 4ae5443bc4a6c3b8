from __future__ import annotations

from application.ports import UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import WorkOrderNotFound
from domain.work_orders import WorkOrder


class GetWorkOrder:
    """One order, for its parties (the app opens it when the user taps a push); others read it as missing."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, user_id: int, work_id: int) -> WorkOrder:
        async with self._uow_factory() as uow:
            await caller_profile(uow, user_id)
            order = await uow.work_orders.get(work_id)
        if order is None or not order.is_party(user_id):
            raise WorkOrderNotFound(f"there is no work order {work_id}")
        return order
