"""The writes that go to the driver directly (adapters/sqlalchemy/driver.py) behave as through SQLAlchemy."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from adapters.sqlalchemy.tables import notifications, work_orders
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from tests.integration.test_repository_contract import T0, add_people, new_notification, new_order


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


async def count(engine, table) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


async def test_driver_errors_surface_as_sqlalchemy_errors(engine):
    seeker, (provider, _) = await add_people(lambda: SqlAlchemyUnitOfWork(engine))
    ghost = type(provider)(provider.role, "Ghost", "0", id=999_999)
    with pytest.raises(IntegrityError):  # the foreign key to profiles, checked by the database
        async with SqlAlchemyUnitOfWork(engine) as uow:
            await uow.work_orders.add(new_order(seeker, ghost))
    assert await count(engine, work_orders) == 0


async def test_driver_writes_are_inside_the_unit_of_work(engine):
    seeker, (provider, _) = await add_people(lambda: SqlAlchemyUnitOfWork(engine))
    async with SqlAlchemyUnitOfWork(engine) as uow:  # not committed: everything is rolled back
        order = await uow.work_orders.add(new_order(seeker, provider))
        notification = new_notification(provider, order)
        await uow.notifications.add_many([notification])
        notification.socket_sent()
        await uow.notifications.save_deliveries([notification])
    assert (await count(engine, work_orders), await count(engine, notifications)) == (0, 0)

    async with SqlAlchemyUnitOfWork(engine) as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        notification = new_notification(provider, order)
        await uow.notifications.add_many([notification])
        await uow.commit()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        notification.socket_sent()
        notification.delivered_at = T0
        await uow.notifications.save_deliveries([notification])
        await uow.commit()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        assert await uow.notifications.get(notification.id) == notification
        assert await uow.work_orders.get(order.id) == order
